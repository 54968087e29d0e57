"""output.encoder (media.encoder): the rule, the x264 -> NVENC mapping, and on this machine (no
NVENC) a writer asked for NVENC that falls back to libx264 and says so in the log and in the
video's report."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
import pytest
from structlog.testing import capture_logs

from heygemd.contract import AUDIO_RATE, ProgressFn
from heygemd.engines.base import Engine, Rendering, RenderRequest
from heygemd.faces.analyze import FaceAnalyzer
from heygemd.media import encoder
from heygemd.media.encoder import NVENC, X264, choose, nvenc_options
from heygemd.media.writer import VideoWriter
from heygemd.pipeline import AudioCheck, Pipeline
from heygemd.report import AudioResult, VideoStatus
from heygemd.settings import OutputSettings, Settings
from heygemd.validation import examine
from tests.mediagen import make_video, pattern_frame


def opens(codec: str, options: dict[str, str]) -> str | None:
    return None


def refuses(codec: str, options: dict[str, str]) -> str | None:
    return f"{codec}: no capable device"


@pytest.mark.parametrize("asked", ["auto", "nvenc"])
def test_nvenc_where_cuda_is_present_and_it_opens(asked: str) -> None:
    choice, error = choose(asked, 18, "medium", cuda=True, open_error=opens)
    assert choice.codec == NVENC and not choice.fell_back and error is None
    assert choice.options == nvenc_options(18, "medium")


def test_libx264_asked_for_is_never_nvenc() -> None:
    tried: list[str] = []

    def spy(codec: str, options: dict[str, str]) -> str | None:
        tried.append(codec)
        return None

    choice, _ = choose("libx264", 20, "fast", cuda=True, open_error=spy)
    assert (choice.codec, tried) == (X264, [])
    assert choice.options == {"crf": "20", "preset": "fast", "a53cc": "0"}


def test_auto_without_cuda_is_libx264_and_no_fallback() -> None:
    choice, error = choose("auto", 18, "medium", cuda=False, open_error=refuses)
    assert choice.codec == X264 and not choice.fell_back and error is None
    assert choice.reason == "no CUDA device is present"


@pytest.mark.parametrize(("asked", "cuda"), [("auto", True), ("nvenc", True), ("nvenc", False)])
def test_nvenc_wanted_but_unavailable_falls_back(asked: str, cuda: bool) -> None:
    choice, error = choose(asked, 18, "medium", cuda=cuda, open_error=refuses)
    assert choice.codec == X264 and choice.fell_back
    assert choice.options == {"crf": "18", "preset": "medium", "a53cc": "0"}
    assert (error is not None) == cuda  # FFmpeg's words only where it was tried


def test_nvenc_mapping() -> None:
    options = nvenc_options(18, "medium")
    assert options["rc"] == "vbr" and options["cq"] == "18" and options["b"] == "0"
    assert options["preset"] == "p5" and options["tune"] == "hq"
    speeds = [nvenc_options(23, p)["preset"] for p in
              ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
               "slower")]
    assert speeds == sorted(speeds) and speeds[0] == "p1" and speeds[-1] == "p7"
    # every preset the settings allow has a mapping
    allowed = OutputSettings.model_fields["preset"].annotation.__args__  # type: ignore[union-attr]
    assert set(allowed) == set(encoder.NVENC_PRESETS)
    # the options are all h264_nvenc's or generic codec options of this FFmpeg
    context = av.CodecContext.create(NVENC, "w")
    known = {o.name for o in context.supported_options.private}
    known |= {o.name for o in context.supported_options.generic}
    assert set(options) <= known


def test_nvenc_really_fails_to_open_here() -> None:
    """This machine has no NVIDIA driver: the trial open reports FFmpeg's error."""
    error = encoder.open_error(NVENC, nvenc_options(18, "medium"), 64, 48, Fraction(25))
    assert error
    assert encoder.open_error(X264, {"crf": "18", "preset": "ultrafast"}, 64, 48,
                              Fraction(25)) is None


def write_clip(path: Path, settings: OutputSettings) -> VideoWriter:
    with VideoWriter(path, 64, 48, 25.0, audio=None, audio_rate=48000,
                     settings=settings) as writer:
        for i in range(10):
            writer.write(pattern_frame(i, 64, 48))
    return writer


@pytest.mark.parametrize("asked", ["nvenc", "auto"])
def test_writer_asked_for_nvenc_falls_back_to_libx264_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, asked: str
) -> None:
    monkeypatch.setattr(encoder, "cuda_present", lambda: True)  # the device "is there"...
    with capture_logs() as logs:  # ...but NVENC cannot open on it
        writer = write_clip(tmp_path / "out.mp4",
                            OutputSettings(preset="ultrafast", encoder=asked))  # type: ignore[arg-type]
    assert writer.encoder.codec == X264 and writer.encoder.fell_back
    with av.open(str(tmp_path / "out.mp4")) as made:
        assert made.streams.video[0].codec_context.name == "h264"
        assert made.streams.video[0].frames == 10
    said = [e for e in logs if e["event"] == "video.encoder_fallback"]
    assert len(said) == 1 and said[0]["encoder"] == X264 and said[0]["asked"] == asked
    assert said[0]["error"] and "NVENC" in said[0]["why"]


def test_writer_on_a_machine_without_cuda_uses_libx264(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encoder, "cuda_present", lambda: False)
    with capture_logs() as logs:
        writer = write_clip(tmp_path / "out.mp4", OutputSettings(preset="ultrafast"))
    assert writer.encoder.summary() == {"name": X264, "asked": "auto",
                                        "why": "no CUDA device is present"}
    assert [e["encoder"] for e in logs if e["event"] == "video.encoder"] == [X264]


class GreyEngine:
    name, version = "grey", "1"

    def prepare(self) -> None: ...

    def problems(self) -> list[str]:
        return []

    def close(self) -> None: ...

    def render(self, request: RenderRequest, progress: ProgressFn) -> Rendering:
        info = request.info.video
        assert info is not None

        def frames() -> Iterator[np.ndarray]:
            for _ in range(request.frame_count):
                yield np.full((info.height, info.width, 3), 128, np.uint8)

        return Rendering(info.width, info.height, request.fps, request.frame_count, frames())


def test_the_video_report_names_the_encoder_and_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    video = make_video(tmp_path / "clip.mp4", width=320, height=240, seconds=1.2)
    monkeypatch.setattr(examine, "examine_frames", lambda path, checked, *a, **k: checked)
    monkeypatch.setattr(encoder, "cuda_present", lambda: True)
    output = OutputSettings(preset="ultrafast", encoder="nvenc")
    pipeline = Pipeline.from_settings(Settings(), cast(Engine, GreyEngine()))
    pipeline._analyzer = cast(FaceAnalyzer, object())  # the frame pass is skipped
    samples = np.zeros(int(1.2 * AUDIO_RATE), np.float32)
    audio = AudioCheck(video, AudioResult(name="a.wav", accepted=True), samples,
                       output=output)
    with capture_logs() as logs:
        result = pipeline.process_video(video, audio, tmp_path / "out.mp4", tmp_path / "pics",
                                        lambda f: None)
    assert result.status is VideoStatus.DONE
    assert result.encoder["name"] == X264 and result.encoder["asked"] == "nvenc"
    assert "NVENC could not be opened" in result.encoder["why"]
    assert "encoder" in result.model_dump(mode="json")  # report.json carries it
    assert any(e["event"] == "video.encoder_fallback" for e in logs)
