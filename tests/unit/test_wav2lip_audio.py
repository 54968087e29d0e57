"""Wav2Lip mel features (checked against librosa) and the per-frame silence gate."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
from scipy.signal import lfilter

from heygemd.engines.wav2lip.audio import (
    frame_levels_dbfs,
    mel_filterbank,
    mel_spectrogram,
    mel_window_start,
    mel_windows,
    silence_threshold,
    speech_weights,
)
from heygemd.media.audio import load_audio


def librosa_reference(wav: np.ndarray) -> np.ndarray:
    """The published recipe computed independently with librosa (keyword arguments only)."""
    emphasised = lfilter([1, -0.97], [1], wav)
    spec = np.abs(
        librosa.stft(
            y=emphasised, n_fft=800, hop_length=200, win_length=800, window="hann",
            center=True, pad_mode="reflect",
        )
    )  # fmt: skip
    basis = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    db = 20 * np.log10(np.maximum(1e-5, basis @ spec)) - 20
    return np.clip(8 * (db + 100) / 100 - 4, -4, 4)


@pytest.fixture(scope="module")
def speech(speech_files: list[Path]) -> np.ndarray:
    jfk = next(p for p in speech_files if p.name.startswith("en01"))
    return load_audio(jfk, rate=16000, mono=True)


def test_filterbank_matches_librosa() -> None:
    expected = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600)
    assert np.allclose(mel_filterbank(), expected, atol=1e-7)


def test_features_match_librosa_on_real_speech(speech: np.ndarray) -> None:
    mel = mel_spectrogram(speech)
    reference = librosa_reference(speech.astype(np.float64))
    assert mel.shape == reference.shape == (80, 1 + len(speech) // 200)
    assert np.abs(mel - reference).max() < 1e-4


def test_shape_dtype_and_range(speech: np.ndarray) -> None:
    mel = mel_spectrogram(speech[:16000])
    assert mel.shape == (80, 81) and mel.dtype == np.float32
    assert mel.min() >= -4 and mel.max() <= 4
    assert mel.max() > 0  # real speech is far above the floor


def test_silence_sits_at_the_floor() -> None:
    mel = mel_spectrogram(np.zeros(8000, dtype=np.float32))
    assert np.all(mel == -4.0)


def test_tiny_audio_still_gives_columns() -> None:
    assert mel_spectrogram(np.zeros(100, dtype=np.float32)).shape == (80, 5)


def test_window_starts_follow_fps() -> None:
    assert mel_window_start(0, 25.0, 1000) == 0
    assert mel_window_start(25, 25.0, 1000) == 80
    assert mel_window_start(3, 30.0, 1000) == 8
    assert mel_window_start(500, 25.0, 100) == 84  # pinned to the last 16 columns


def test_windows_are_the_right_slices() -> None:
    mel = np.tile(np.arange(200, dtype=np.float32), (80, 1))
    windows = mel_windows(mel, np.array([0, 1, 10]), 25.0)
    assert windows.shape == (3, 1, 80, 16)
    assert windows[1, 0, 0, 0] == 3.0 and windows[2, 0, 5, 15] == 32 + 15


def test_windows_pad_short_features() -> None:
    windows = mel_windows(np.zeros((80, 5), dtype=np.float32), np.array([0]), 25.0)
    assert windows.shape == (1, 1, 80, 16) and windows[0, 0, 0, -1] == -4.0


def test_frame_levels() -> None:
    tone = 0.5 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 440)
    levels = frame_levels_dbfs(np.concatenate([tone, np.zeros(16000)]), 25.0, 60)
    assert levels.shape == (60,)
    assert np.allclose(levels[:25], 20 * np.log10(0.5 / np.sqrt(2)), atol=0.1)
    assert np.all(levels[25:] == -120.0)


def test_threshold_is_relative_to_the_loud_part() -> None:
    levels = np.array([-10.0] * 90 + [-60.0] * 10)
    assert silence_threshold(levels, -50.0, 30.0) == pytest.approx(-40.0)
    assert silence_threshold(np.full(10, -70.0), -50.0, 30.0) == -50.0


def test_long_silence_closes_short_pauses_do_not() -> None:
    levels = np.full(100, -20.0)
    levels[10:13] = -80  # 120 ms pause between words
    levels[50:80] = -80  # 1.2 s silence
    weights = speech_weights(levels, 25.0, -40.0, min_silence_s=0.25, ramp_s=0.12)
    assert weights.shape == (100,) and weights.dtype == np.float32
    assert np.all(weights[10:13] == 1.0)
    assert np.all(weights[55:75] == 0.0)
    assert 0.0 < weights[50] < 1.0  # ramps, not a jump
    assert np.all(weights[:50] == 1.0) and np.all(weights[82:] == 1.0)


def test_all_speech_gives_ones() -> None:
    assert np.all(speech_weights(np.full(20, -10.0), 25.0, -40.0, 0.25, 0.12) == 1.0)
