"""VideoReader's hardware decoding (media.hardware): where NVDEC does not open it decodes in
software by itself and says so once; the path that feeds a separate decoder the demuxed packets
gives the same frames as the stream's own decoder, also after a seek and when that decoder
fails part-way."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from structlog.testing import capture_logs

from heygemd.media import hardware
from heygemd.media.video import VideoReader, read_frames, read_range
from tests.mediagen import make_video


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_video(tmp_path / "clip.mp4", width=96, height=64, seconds=2.0)


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with nothing said or known about hardware decoders."""
    monkeypatch.setattr(hardware, "_unavailable", {})
    monkeypatch.setattr(hardware, "_said_using", set())


def software(path: Path) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return [f.copy() for f in reader]


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


class StandIn:
    """A separately opened software decoder posing as the hardware one; ``fail_after``: raise
    an FFmpeg error at that packet, as a GPU decoder refusing a stream part-way would."""

    name = "h264_cuvid"

    def __init__(self, stream: Any, fail_after: int | None = None) -> None:
        self.context = av.CodecContext.create("h264", "r")
        self.context.extradata = stream.codec_context.extradata
        self.context.open()
        self.fail_after = fail_after
        self.packets = 0

    def flush_buffers(self) -> None:
        self.context.flush_buffers()

    def decode(self, packet: Any) -> list[Any]:
        self.packets += 1
        if self.fail_after is not None and self.packets > self.fail_after:
            raise av.error.InvalidDataError(errno.EINVAL, "stand-in decoder gave up")
        return self.context.decode(packet)


def test_no_cuda_no_trial(clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "cuda_present", lambda: False)
    with capture_logs() as logs, VideoReader(clip) as reader:
        assert reader.decoder == "h264"
        assert len(list(reader)) == 50
    assert not events(logs, "media.hw_decode_unavailable") and not hardware._unavailable


def test_nvdec_that_does_not_open_falls_back_and_is_said_once(
    clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CUDA device reported but no driver here: h264_cuvid really fails to open."""
    expected = software(clip)
    monkeypatch.setattr(hardware, "cuda_present", lambda: True)
    with capture_logs() as logs:
        with VideoReader(clip) as reader:
            assert reader.decoder == "h264"
            frames = [f.copy() for f in reader]
        again = read_frames(clip, [3, 40])
    assert len(frames) == len(expected)
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))
    assert np.array_equal(again[40], expected[40])
    said = events(logs, "media.hw_decode_unavailable")
    assert len(said) == 1 and said[0]["decoder"] == "h264_cuvid"
    assert said[0]["then"] == "software decoding" and said[0]["error"]
    assert "h264_cuvid" in hardware._unavailable


def test_hw_decoder_names() -> None:
    assert hardware.hw_decoder_name("hevc", "yuv420p10le") == "hevc_cuvid"
    assert hardware.hw_decoder_name("h264", "yuv420p") == "h264_cuvid"
    assert hardware.hw_decoder_name("h264", "yuv444p") is None  # NVDEC: 4:2:0 only here
    assert hardware.hw_decoder_name("vp9", "yuv420p") is None
    assert hardware.hw_decoder_name("h264", "yuv420p", "High") == "h264_cuvid"
    assert hardware.hw_decoder_name("hevc", "yuv420p10le", "Main 10") == "hevc_cuvid"
    # lossless x264 output (crf 0) is yuv420p but High 4:4:4 Predictive: not for NVDEC
    assert hardware.hw_decoder_name("h264", "yuv420p", "High 4:4:4 Predictive") is None
    assert hardware.hw_decoder_name("hevc", "yuv420p", "Rext") is None


def stand_in(monkeypatch: pytest.MonkeyPatch, fail_after: int | None = None) -> list[StandIn]:
    made: list[StandIn] = []

    def open_decoder(stream: Any, file: str) -> StandIn | None:
        if "h264_cuvid" in hardware._unavailable:
            return None
        made.append(StandIn(stream, fail_after))
        return made[-1]

    monkeypatch.setattr(hardware, "open_decoder", open_decoder)
    return made


def test_separate_decoder_gives_the_same_frames(
    clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = software(clip)
    made = stand_in(monkeypatch)
    with VideoReader(clip) as reader:
        assert reader.decoder == "h264_cuvid"
        frames = [f.copy() for f in reader]
    assert made and made[0].packets > 0
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))
    assert len(frames) == len(expected)
    tail = dict(read_range(clip, 31, 45))  # seeks: the decoder is flushed there
    assert sorted(tail) == list(range(31, 45))
    assert all(np.array_equal(tail[i], expected[i]) for i in tail)


@pytest.mark.parametrize("start", [0, 31])
def test_decoder_failing_part_way_goes_on_in_software(
    clip: Path, monkeypatch: pytest.MonkeyPatch, start: int
) -> None:
    expected = software(clip)
    stand_in(monkeypatch, fail_after=20)
    with capture_logs() as logs:
        got = dict(read_range(clip, start, 50))
    assert sorted(got) == list(range(start, 50))
    assert all(np.array_equal(got[i], expected[i]) for i in got)
    said = events(logs, "media.hw_decode_unavailable")
    assert len(said) == 1 and "gave up" in said[0]["error"]


class Nv12StandIn(StandIn):
    """The stand-in decoder giving nv12, as NVDEC does (the same samples, chroma interleaved)."""

    def decode(self, packet: Any) -> list[Any]:
        return [frame.reformat(format="nv12") for frame in super().decode(packet)]


def test_nvdec_frames_travel_as_decoded(clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """nv12 from the hardware decoder comes as YuvFrames (the render passes their pixels on as
    decoded), holding the software decode's samples."""
    from heygemd.media.yuv import YuvFrame, planes

    with av.open(str(clip)) as container:
        want = [[p.copy() for p in planes(f)] for f in container.decode(video=0)]
    monkeypatch.setattr(hardware, "open_decoder", lambda stream, file: Nv12StandIn(stream))
    with VideoReader(clip) as reader:
        assert reader.decoder == "h264_cuvid"
        got = [frame for _, frame in reader.pictures()]
    assert len(got) == len(want) and all(isinstance(f, YuvFrame) for f in got)
    assert all(np.array_equal(a, b) for f, w in zip(got, want, strict=True)
               for a, b in zip(planes(f.frame), w, strict=True))
