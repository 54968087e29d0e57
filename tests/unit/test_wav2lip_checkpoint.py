"""Checkpoints saved the way Wav2Lip's training code saved them load; broken ones fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from heygemd.engines.wav2lip.checkpoint import (
    checkpoint_problems,
    expected_shapes,
    load_generator,
    read_state_dict,
    strip_prefix,
    verify_state_dict,
)
from heygemd.engines.wav2lip.model import Wav2LipGenerator
from heygemd.errors import ConfigError


def save_training_checkpoint(
    model: Wav2LipGenerator, path: Path, *, prefix: str = "", step_optimizer: bool = False
) -> Path:
    """Write ``model`` like Wav2Lip's train script: legacy torch format, optimizer state inside."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    if step_optimizer:
        model(torch.randn(2, 1, 80, 16), torch.rand(2, 6, 96, 96)).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    state = {prefix + k: v for k, v in model.state_dict().items()}
    content = {
        "state_dict": state,
        "optimizer": optimizer.state_dict(),
        "global_step": 123,
        "global_epoch": 4,
    }
    torch.save(content, path, _use_new_zipfile_serialization=False)
    return path


@pytest.fixture(scope="module")
def model() -> Wav2LipGenerator:
    torch.manual_seed(1)
    return Wav2LipGenerator()


@pytest.fixture(scope="module")
def plain_file(model: Wav2LipGenerator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "wav2lip_gan.pth"
    return save_training_checkpoint(model, path, step_optimizer=True)


def test_legacy_file_is_not_a_zip(plain_file: Path) -> None:
    with plain_file.open("rb") as f:
        assert f.read(4) != b"PK\x03\x04"


def test_loads_with_identical_weights(model: Wav2LipGenerator, plain_file: Path) -> None:
    loaded = load_generator(plain_file, "cpu")
    assert not loaded.training
    assert next(loaded.parameters()).dtype == torch.float32
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_data_parallel_prefix_is_stripped(model: Wav2LipGenerator, tmp_path: Path) -> None:
    path = save_training_checkpoint(model, tmp_path / "dp.pth", prefix="module.")
    state = read_state_dict(path)
    assert "face_encoder_blocks.0.0.conv_block.0.weight" in state
    assert torch.equal(state["output_block.1.weight"], model.state_dict()["output_block.1.weight"])
    assert checkpoint_problems(path) == []


def test_loaded_generator_computes_the_same_output(
    model: Wav2LipGenerator, plain_file: Path
) -> None:
    loaded = load_generator(plain_file, "cpu")
    mel, face = torch.randn(2, 1, 80, 16), torch.rand(2, 6, 96, 96)
    with torch.no_grad():
        expected = model.eval()(mel, face)
        got = loaded(mel, face)
    assert torch.allclose(expected, got)


def test_missing_file_says_where_to_put_it(tmp_path: Path) -> None:
    path = tmp_path / "models" / "wav2lip_gan.pth"
    problems = checkpoint_problems(path)
    assert len(problems) == 1
    assert f"place your Wav2Lip checkpoint at {path}" in problems[0]
    with pytest.raises(ConfigError, match="engine.wav2lip.checkpoint"):
        load_generator(path, "cpu")


def test_truncated_file_is_reported(plain_file: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.pth"
    with plain_file.open("rb") as f:
        truncated.write_bytes(f.read(5_000_000))
    with pytest.raises(ConfigError, match="truncated, corrupt or not a torch checkpoint"):
        read_state_dict(truncated)


def test_garbage_file_is_reported(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all" * 100)
    [problem] = checkpoint_problems(junk)
    assert "cannot read" in problem and str(junk) in problem


def test_wrong_shape_is_named(model: Wav2LipGenerator, tmp_path: Path) -> None:
    state = dict(model.state_dict())
    state["output_block.1.weight"] = torch.zeros(4, 32, 1, 1)
    path = tmp_path / "wrong.pth"
    torch.save({"state_dict": state}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(ConfigError) as caught:
        read_state_dict(path)
    assert "output_block.1.weight is (4, 32, 1, 1), expected (3, 32, 1, 1)" in caught.value.message


def test_missing_key_is_named(model: Wav2LipGenerator, tmp_path: Path) -> None:
    state = dict(model.state_dict())
    del state["audio_encoder.0.conv_block.0.weight"]
    path = tmp_path / "missing.pth"
    torch.save({"state_dict": state}, path, _use_new_zipfile_serialization=False)
    [problem] = checkpoint_problems(path)
    assert "1 generator weights are missing: audio_encoder.0.conv_block.0.weight" in problem


def test_a_different_model_is_refused(tmp_path: Path) -> None:
    other = torch.nn.Sequential(torch.nn.Conv2d(15, 32, 7), torch.nn.BatchNorm2d(32))
    path = tmp_path / "syncnet.pth"
    torch.save({"state_dict": other.state_dict()}, path, _use_new_zipfile_serialization=False)
    [problem] = checkpoint_problems(path)
    assert "does not match the Wav2Lip generator" in problem
    assert "keys are not Wav2Lip's" in problem


def test_a_dict_without_tensors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.pth"
    torch.save({"global_step": 3}, path, _use_new_zipfile_serialization=False)
    [problem] = checkpoint_problems(path)
    assert "holds no state_dict of tensors" in problem


def test_verify_tolerates_missing_batch_counters(model: Wav2LipGenerator) -> None:
    state = {k: v for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
    assert verify_state_dict(state, expected_shapes()) == []


def test_strip_prefix_only_when_every_key_has_it() -> None:
    t = torch.zeros(1)
    assert list(strip_prefix({"module.a": t, "module.b": t})) == ["a", "b"]
    assert list(strip_prefix({"module.a": t, "b": t})) == ["module.a", "b"]
