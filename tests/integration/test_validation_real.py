"""Validation on the real media in ../shared/media: real faces, real speech, real refusals."""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from heygemd import examine
from heygemd.faces.analyze import FaceAnalyzer
from heygemd.media.audio import load_audio
from heygemd.report import Severity
from heygemd.settings import Settings

SETTINGS = Settings()
CFG, LIMITS = SETTINGS.validation, SETTINGS.limits


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def refusal_codes(findings: list) -> list[str]:
    return [f.code for f in findings if f.severity is Severity.REFUSE]


@pytest.fixture(scope="module")
def analyzer() -> Iterator[FaceAnalyzer]:
    with FaceAnalyzer(SETTINGS.faces) as a:
        yield a


@pytest.fixture(scope="module")
def jfk(shared_media: Path) -> np.ndarray:
    return load_audio(shared_media / "speech" / "en01_male_jfk_inaugural_11s.flac")


# ---------------------------------------------------------------- audio


def test_every_speech_file_is_accepted(speech_files: list[Path]) -> None:
    assert len(speech_files) == 4
    for path in speech_files:
        exam = examine.examine_audio(path, CFG, LIMITS)
        assert exam.findings == [], (path.name, exam.findings)
        assert exam.samples is not None and exam.samples.dtype == np.float32
        assert exam.info is not None and exam.info.has_audio


def test_silent_audio_is_refused(tmp_path: Path) -> None:
    exam = examine.examine_audio(write_wav(tmp_path / "quiet.wav", np.zeros(48000)), CFG, LIMITS)
    assert refusal_codes(exam.findings) == ["silent_audio"]
    assert exam.findings[0].file == "quiet.wav"


def test_clipped_audio_is_refused(tmp_path: Path, jfk: np.ndarray) -> None:
    exam = examine.examine_audio(write_wav(tmp_path / "loud.wav", jfk * 8.0), CFG, LIMITS)
    assert "clipped_audio" in refusal_codes(exam.findings)
    [f] = [f for f in exam.findings if f.code == "clipped_audio"]
    assert isinstance(f.value, float) and f.value > CFG.clipping_share


def test_noisy_audio_is_refused(tmp_path: Path, jfk: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(len(jfk)) * float(np.sqrt(np.mean(jfk**2)))  # 0 dB SNR
    exam = examine.examine_audio(
        write_wav(tmp_path / "noisy.wav", jfk * 0.5 + noise * 0.5), CFG, LIMITS
    )
    codes = refusal_codes(exam.findings)
    assert "noisy_audio" in codes or "too_little_speech" in codes, exam.findings


def test_unreadable_and_wrong_type_audio_give_findings_not_errors(tmp_path: Path) -> None:
    junk = tmp_path / "voice.wav"
    junk.write_bytes(b"this is not a wav file at all" * 20)
    exam = examine.examine_audio(junk, CFG, LIMITS)
    assert exam.samples is None and refusal_codes(exam.findings) == ["unreadable_audio"]
    assert "voice.wav" in exam.findings[0].message
    wma = tmp_path / "voice.wma"
    wma.write_bytes(b"x")
    assert refusal_codes(examine.examine_audio(wma, CFG, LIMITS).findings) == ["unsupported_format"]


def test_a_video_without_sound_is_refused_as_audio(shared_media: Path, tmp_path: Path) -> None:
    # rj01 has no audio stream; renamed to an audio extension it must say so, not crash.
    fake = tmp_path / "voice.m4a"
    fake.symlink_to(shared_media / "reject" / "rj01_profile_man_interview_orlando_bloom.avi")
    exam = examine.examine_audio(fake, CFG, LIMITS)
    assert exam.samples is None
    assert refusal_codes(exam.findings) in (["unreadable_audio"], ["no_audio_stream"])
