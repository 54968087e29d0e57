"""What `heygemd doctor` hears from the wav2lip engine, and the template frame source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from heygemd.engines.base import EngineContext, Evaluable
from heygemd.engines.wav2lip.engine import Wav2LipEngine
from heygemd.engines.wav2lip.framing import ping_pong_index
from heygemd.engines.wav2lip.template import TemplateFrames
from heygemd.errors import ConfigError
from heygemd.settings import Settings
from tests.mediagen import make_video


def engine_for(models: Path) -> Wav2LipEngine:
    settings = Settings()
    return Wav2LipEngine(
        EngineContext.within(
            settings.paths.model_copy(update={"models": models}),
            options=settings.engine.wav2lip,
            faces=settings.faces,
            device="cpu",
        )
    )


def test_missing_checkpoint_is_explained(tmp_path: Path) -> None:
    engine = engine_for(tmp_path)
    [problem] = engine.problems()
    assert f"place your Wav2Lip checkpoint at {tmp_path / 'wav2lip_gan.pth'}" in problem
    with pytest.raises(ConfigError, match="engine.wav2lip.checkpoint"):
        engine.prepare()


def test_wav2lip_shows_no_evaluation_hooks(tmp_path: Path) -> None:
    engine = engine_for(tmp_path)
    assert engine.device == "cpu" and engine.cfg == Settings().engine.wav2lip
    assert not isinstance(engine, Evaluable)  # `heygemd eval` refuses it in one line


def test_wrong_checkpoint_is_explained_and_rechecked_when_replaced(tmp_path: Path) -> None:
    path = tmp_path / "wav2lip_gan.pth"
    torch.save({"state_dict": {"x": torch.zeros(2)}}, path, _use_new_zipfile_serialization=False)
    engine = engine_for(tmp_path)
    [problem] = engine.problems()
    assert "does not match the Wav2Lip generator" in problem
    path.write_bytes(b"garbage")
    [problem] = engine.problems()
    assert "cannot read" in problem


@pytest.mark.parametrize("budget_frames", [1000, 3])
def test_template_frames_in_ping_pong_order(tmp_path: Path, budget_frames: int) -> None:
    video = make_video(tmp_path / "t.mp4", width=64, height=48, seconds=0.4, audio=False)
    frame_bytes = 64 * 48 * 3
    template = TemplateFrames(video, 25.0, frame_bytes, budget_frames * frame_bytes)
    first = [frame.copy() for _, frame in template.first_pass(limit=100)]
    assert len(first) == 10
    try:
        for out_index in range(40):
            index = ping_pong_index(out_index, len(first))
            assert np.array_equal(template.get(index), first[index]), (out_index, index)
    finally:
        template.close()


@pytest.mark.parametrize("as_yuv", [True, False])
def test_the_template_budget_counts_the_frames_as_held(tmp_path: Path, as_yuv: bool) -> None:
    """Sized as if frames were held as decoded (1.5 bytes a pixel), a template whose frames come
    as RGB (asked so here; on a GPU host NVDEC's nv12 is not carried) holds half as many frames,
    not twice the budget; decoded ones fill it."""
    from heygemd.media.yuv import YuvFrame, as_rgb

    video = make_video(tmp_path / "odd.mp4", width=64, height=48, seconds=0.8, audio=False)
    rgb_bytes = 64 * 48 * 3
    template = TemplateFrames(video, 25.0, rgb_bytes // 2, 5 * rgb_bytes, as_yuv=as_yuv)
    first = [(isinstance(f, YuvFrame), as_rgb(f).copy()) for _, f in template.first_pass(100)]
    try:
        assert len(first) == 20 and all(kind == as_yuv for kind, _ in first)
        assert template.chunk == (10 if as_yuv else 5)
        for out_index in range(60):
            index = ping_pong_index(out_index, len(first))
            assert np.array_equal(as_rgb(template.get(index)), first[index][1])
    finally:
        template.close()
