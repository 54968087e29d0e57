"""probe(): facts of synthetic files in every container, pure judgements, typed errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heygemd.errors import MediaError
from heygemd.media.probe import (
    check_complete,
    check_extension,
    is_variable_rate,
    probe,
    rotation_clockwise,
)
from heygemd.media.writer import VideoWriter
from heygemd.settings import OutputSettings
from tests.mediagen import make_audio, make_video, misnamed_audio, pattern_frame, write_noise

FAST = OutputSettings(preset="ultrafast")

VIDEO_CODEC = {
    "mp4": "h264",
    "mov": "h264",
    "mkv": "h264",
    "avi": "mpeg4",
    "webm": "vp8",
    "flv": "flv1",
}
AUDIO_CODEC = {
    "wav": "pcm_s16le",
    "mp3": "mp3",
    "m4a": "aac",
    "aac": "aac",
    "flac": "flac",
    "ogg": "opus",
}


@pytest.mark.parametrize(
    ("display", "tag", "expected"),
    [
        (None, None, 0),
        (-90.0, None, 90),
        (90.0, None, 270),
        (180.0, None, 180),
        (-180.0, None, 180),
        (None, "90", 90),
        (None, "270", 270),
        (None, "junk", 0),
        (-89.6, "180", 90),
    ],
)
def test_rotation_clockwise(display: float | None, tag: str | None, expected: int) -> None:
    assert rotation_clockwise(display, tag) == expected


def test_regular_spacing_in_decode_order_is_not_vfr() -> None:
    regular = [i / 25 for i in range(48)]
    reordered = [regular[i] for i in (0, 3, 1, 2, 6, 4, 5)] + regular[7:]
    assert not is_variable_rate(regular)
    assert not is_variable_rate(reordered)


def test_millisecond_rounding_and_one_dropped_frame_are_not_vfr() -> None:
    rounded = [round(i / 30, 3) for i in range(48)]
    dropped = [i / 25 for i in range(48) if i != 20]
    assert not is_variable_rate(rounded)
    assert not is_variable_rate(dropped)


def test_irregular_spacing_is_vfr() -> None:
    gaps = np.where(np.arange(48) % 2 == 0, 0.02, 0.06)
    assert is_variable_rate(np.cumsum(gaps).tolist())


def test_check_extension() -> None:
    check_extension(Path("a.mp4"), "mov,mp4,m4a,3gp,3g2,mj2")
    check_extension(Path("a.unknownext"), "wav")
    with pytest.raises(MediaError) as err:
        check_extension(Path("speech.mp4"), "wav")
    assert err.value.code == "wrong_extension"
    assert "WAV" in err.value.message


@pytest.mark.parametrize("ext", sorted(VIDEO_CODEC))
def test_probe_video_containers(tmp_path: Path, ext: str) -> None:
    path = make_video(tmp_path / f"clip.{ext}", width=64, height=48, fps=25, seconds=1.0)
    info = probe(path)
    assert info.video is not None and info.audio is not None
    assert info.video.codec == VIDEO_CODEC[ext]
    assert (info.video.width, info.video.height) == (64, 48)
    assert info.video.avg_fps == pytest.approx(25.0)
    assert not info.video.is_vfr
    assert info.video.rotation == 0
    assert info.duration == pytest.approx(1.0, abs=0.08)
    assert info.size_bytes == path.stat().st_size
    assert f"video:{VIDEO_CODEC[ext]}" in info.streams
    assert info.summary()["video"]["width"] == 64


@pytest.mark.parametrize("ext", sorted(AUDIO_CODEC))
def test_probe_audio_containers(tmp_path: Path, ext: str) -> None:
    path = make_audio(tmp_path / f"tone.{ext}", seconds=1.0, rate=24000, channels=2)
    info = probe(path)
    assert info.video is None and info.audio is not None
    assert info.audio.codec.startswith(AUDIO_CODEC[ext])
    assert info.audio.channels == 2
    assert info.audio.sample_rate == (48000 if ext == "ogg" else 24000)
    assert info.duration == pytest.approx(1.0, abs=0.08)


@pytest.mark.parametrize("ext", ["mp4", "mov", "mkv", "webm"])
def test_probe_rotation_swaps_size(tmp_path: Path, ext: str) -> None:
    info = probe(make_video(tmp_path / f"r.{ext}", width=64, height=48, rotation=90))
    assert info.video is not None
    assert info.video.rotation == 90
    assert (info.video.width, info.video.height) == (48, 64)


@pytest.mark.parametrize("ext", ["mp4", "mkv", "webm"])
def test_probe_flags_vfr(tmp_path: Path, ext: str) -> None:
    info = probe(make_video(tmp_path / f"v.{ext}", seconds=2.0, vfr=True, audio=False))
    assert info.video is not None and info.video.is_vfr


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(MediaError) as err:
        probe(path)
    assert err.value.code == "empty_file"
    assert "0 bytes" in err.value.message


def test_random_bytes(tmp_path: Path) -> None:
    path = write_noise(tmp_path / "noise.mp4", 4096)
    with pytest.raises(MediaError) as err:
        probe(path)
    assert err.value.code == "unreadable_media"
    assert "cannot be read" in err.value.message and "noise.mp4" in err.value.message
    assert "FFmpeg" not in err.value.message


def test_truncated_mp4(tmp_path: Path) -> None:
    whole = make_video(tmp_path / "whole.mp4", seconds=1.0).read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(whole[: len(whole) // 2])  # the index (moov) is written last
    with pytest.raises(MediaError) as err:
        probe(path)
    assert err.value.code == "unreadable_media"
    assert "cut short" in err.value.message


def test_truncated_faststart_mp4(tmp_path: Path) -> None:
    """With the index at the front, a cut file opens; its index then points past the end."""
    whole = tmp_path / "whole.mp4"
    with VideoWriter(whole, 64, 48, 25.0, audio=None, audio_rate=16000, settings=FAST) as writer:
        for i in range(50):
            writer.write(pattern_frame(i, 64, 48))
    data = whole.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) * 2 // 3])
    assert probe(whole).video is not None
    with pytest.raises(MediaError) as err:
        probe(path)
    assert err.value.code == "truncated_media"
    assert "copy it again" in err.value.message and "READY" in err.value.message
    assert "watch." not in err.value.message


def test_check_complete() -> None:
    check_complete(Path("a.mp4"), 100, [100, 60])
    check_complete(Path("a.mp4"), 100, [])
    with pytest.raises(MediaError):
        check_complete(Path("a.mp4"), 100, [101])


def test_wav_named_mp4(tmp_path: Path) -> None:
    path = misnamed_audio(tmp_path / "speech.mp4", ".wav")
    with pytest.raises(MediaError) as err:
        probe(path)
    assert err.value.code == "wrong_extension"
    assert "speech.mp4" in err.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError) as err:
        probe(tmp_path / "nothing.mp4")
    assert err.value.code == "missing_file"


def test_audio_only_mp4_probes_without_video(tmp_path: Path) -> None:
    path = misnamed_audio(tmp_path / "voice.mp4", ".m4a")
    info = probe(path)
    assert info.video is None and info.has_audio
