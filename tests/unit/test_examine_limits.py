"""Files over the length limits are refused on the probe, before anything is decoded."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from heygemd.faces.analyze import FaceAnalyzer
from heygemd.settings import LimitSettings, ValidationSettings
from heygemd.validation import examine
from tests.mediagen import make_audio, make_video

CFG = ValidationSettings()


def refused(findings: list[Any]) -> list[str]:
    return [f.code for f in findings if f.severity == "refuse"]


def test_audio_declared_too_long_is_refused_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: Any, **kwargs: Any) -> np.ndarray:
        raise AssertionError("decoded")

    monkeypatch.setattr(examine, "read_sound", never)
    path = make_audio(tmp_path / "long.wav", seconds=3.0)
    exam = examine.examine_audio(path, CFG, LimitSettings(max_audio_seconds=2.0))
    assert refused(exam.findings) == ["audio_too_long"] and exam.samples is None


def test_audio_decode_is_capped_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    caps: list[float | None] = []
    real = examine.read_sound

    def spy(path: Path, rate: int = 16000, mono: bool = True,
            max_seconds: float | None = None) -> Any:
        caps.append(max_seconds)
        return real(path, rate, mono, max_seconds)

    monkeypatch.setattr(examine, "read_sound", spy)
    path = make_audio(tmp_path / "ok.wav", seconds=1.0)
    examine.examine_audio(path, CFG, LimitSettings(max_audio_seconds=2.0))
    assert caps == [2.0 + examine.AUDIO_CAP_MARGIN_SECONDS]


def _many_channels(path: Path, channels: int, seconds: float = 1.0) -> Path:
    """A 16-bit WAV of ``channels`` tones (no channel layout: WAVE_FORMAT_PCM)."""
    rate = 16000
    t = np.arange(int(rate * seconds)) / rate
    tones = np.stack([0.3 * np.sin(2 * np.pi * (200 + 40 * c) * t) for c in range(channels)], 1)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((tones * 32767).astype("<i2").tobytes())
    return path


@pytest.mark.parametrize("channels", [9, 12])
def test_audio_with_more_channels_than_a_layout_names_is_refused_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, channels: int
) -> None:
    def never(*args: Any, **kwargs: Any) -> np.ndarray:
        raise AssertionError("decoded")

    monkeypatch.setattr(examine, "read_sound", never)
    exam = examine.examine_audio(_many_channels(tmp_path / "poly.wav", channels), CFG,
                                 LimitSettings())
    assert refused(exam.findings) == ["too_many_channels"] and exam.samples is None
    words = exam.findings[0].message
    assert f"has {channels} channels" in words and "mono or stereo" in words


def test_audio_of_8_channels_is_decoded_and_takes_no_refusal_for_them(tmp_path: Path) -> None:
    exam = examine.examine_audio(_many_channels(tmp_path / "octo.wav", 8), CFG, LimitSettings())
    assert exam.samples is not None and len(exam.samples) == 16000
    assert "too_many_channels" not in refused(exam.findings)


def test_video_declared_too_long_is_refused_without_the_frame_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("frames decoded")

    monkeypatch.setattr(examine, "sample_frames", never)
    path = make_video(tmp_path / "long.mp4", seconds=3.0)
    exam = examine.examine_video(path, cast(FaceAnalyzer, None), CFG,
                                 LimitSettings(max_video_seconds=2.0), tmp_path)
    assert "video_too_long" in refused(exam.findings) and exam.pictures == []
