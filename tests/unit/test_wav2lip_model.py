"""The generator's layout: parameter count, state_dict names, shapes through the network."""

from __future__ import annotations

import torch

from heygemd.engines.wav2lip.model import Wav2LipGenerator, parameter_count


def test_parameter_count_matches_the_published_model() -> None:
    count = parameter_count(Wav2LipGenerator())
    assert 36.2e6 < count < 36.4e6


def test_state_dict_names_follow_the_published_layout() -> None:
    keys = set(Wav2LipGenerator().state_dict())
    for key in (
        "face_encoder_blocks.0.0.conv_block.0.weight",
        "face_encoder_blocks.6.1.conv_block.0.weight",
        "audio_encoder.12.conv_block.1.running_mean",
        "face_decoder_blocks.1.0.conv_block.0.weight",
        "face_decoder_blocks.6.2.conv_block.1.running_var",
        "output_block.0.conv_block.1.weight",
        "output_block.1.weight",
        "output_block.1.bias",
    ):
        assert key in keys
    assert not any(k.startswith("audio_encoder.13") for k in keys)
    assert not any(k.startswith("face_encoder_blocks.7") for k in keys)


def test_key_shapes_of_the_unusual_layers() -> None:
    state = Wav2LipGenerator().state_dict()
    assert state["face_encoder_blocks.0.0.conv_block.0.weight"].shape == (16, 6, 7, 7)
    assert state["audio_encoder.3.conv_block.0.weight"].shape == (64, 32, 3, 3)
    # ConvTranspose2d weights are (in, out, k, k)
    assert state["face_decoder_blocks.1.0.conv_block.0.weight"].shape == (1024, 512, 3, 3)
    assert state["face_decoder_blocks.3.0.conv_block.0.weight"].shape == (768, 384, 3, 3)
    assert state["output_block.1.weight"].shape == (3, 32, 1, 1)


def test_forward_shapes_and_range() -> None:
    torch.manual_seed(0)
    model = Wav2LipGenerator().eval()
    with torch.no_grad():
        out = model(torch.randn(3, 1, 80, 16), torch.rand(3, 6, 96, 96))
    assert out.shape == (3, 3, 96, 96)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
