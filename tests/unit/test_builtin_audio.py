"""Audio features of the builtin engine: synthetic signals, and the log-mel against librosa's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from heygemd.contract import AUDIO_RATE
from heygemd.engines.builtin import audio_features as af
from heygemd.media.audio import load_audio


def test_to_video_frames_averages_rows_per_frame() -> None:
    rows = np.arange(100, dtype=np.float32).reshape(100, 1)  # 1 s at 10 ms hops
    out = af.to_video_frames(rows, 0.01, fps=25.0, count=25)
    assert out.shape == (25, 1)
    assert np.allclose(out[0, 0], np.mean(np.arange(4)))  # rows 0..3 -> first 40 ms
    assert np.all(np.diff(out[:, 0]) > 0)


def test_loudness_tracks_level_and_silence_is_floored() -> None:
    t = np.arange(AUDIO_RATE) / AUDIO_RATE
    tone = 0.5 * np.sin(2 * np.pi * 220 * t)
    audio = np.concatenate([tone, np.zeros(AUDIO_RATE)]).astype(np.float32)
    level = af.loudness_db(audio, 25.0, 50)
    assert np.allclose(level[:25], 20 * np.log10(0.5 / np.sqrt(2)), atol=0.2)
    assert np.all(level[25:] == af.FLOOR_DB)
    quiet = af.quiet_frames(level)
    assert not quiet[:25].any() and quiet[25:].all()
    env = af.envelope(level)
    assert env[:25].min() > 0.9 and env[25:].max() == 0.0


def test_normalise_uses_speech_frames_only() -> None:
    rng = np.random.default_rng(0)
    feats = rng.normal(5.0, 3.0, size=(200, 4)).astype(np.float32)
    feats[150:] = 100.0  # non-speech frames with a wild level must not set the statistics
    speech = np.arange(200) < 150
    out = af.normalise(feats, speech)
    assert np.allclose(out[speech].mean(axis=0), 0.0, atol=1e-4)
    assert np.allclose(out[speech].std(axis=0), 1.0, atol=1e-2)


def test_normalise_maps_a_louder_voice_onto_the_same_space() -> None:
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(120, 6)).astype(np.float32)
    speech = np.ones(120, dtype=bool)
    assert np.allclose(af.normalise(feats, speech), af.normalise(feats * 2 + 7, speech), atol=1e-2)


def test_stack_context_shapes_and_neighbours() -> None:
    feats = np.arange(10, dtype=np.float32).reshape(10, 1)
    out = af.stack_context(feats, context=2)
    assert out.shape == (10, 5)
    assert out[5].tolist() == [3, 4, 5, 6, 7]
    assert out[0].tolist() == [0, 0, 0, 1, 2]


def test_log_mel_rows_follow_the_hop() -> None:
    audio = np.random.default_rng(2).normal(size=AUDIO_RATE).astype(np.float32) * 0.1
    mel = af.log_mel(audio)
    assert mel.shape[1] == af.N_MELS
    assert abs(len(mel) - AUDIO_RATE // af.HOP) <= 2


def librosa_log_mel(audio: np.ndarray) -> np.ndarray:
    """The engine's log-mel settings computed with librosa (keyword arguments only)."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=audio, sr=AUDIO_RATE, n_fft=512, hop_length=160, win_length=400, n_mels=40,
        fmin=60.0, fmax=7600.0,
    )
    return np.log(mel.T + 1e-6).astype(np.float32)


@pytest.mark.parametrize("name", ["en01", "zh01"])
def test_log_mel_gives_librosa_s_numbers_on_real_speech(speech_files: list[Path],
                                                        name: str) -> None:
    audio = load_audio(next(p for p in speech_files if p.name.startswith(name)))
    mine = af.log_mel(audio)
    assert mine.dtype == np.float32 and mine.shape == (1 + len(audio) // af.HOP, af.N_MELS)
    np.testing.assert_allclose(mine, librosa_log_mel(audio), atol=1e-5, rtol=0)


def test_log_mel_of_long_noise_silence_and_a_short_clip_match_librosa() -> None:
    rng = np.random.default_rng(3)
    blocks = (af.MEL_BLOCK + 700) * af.HOP  # rows computed in two blocks
    for audio in (0.1 * rng.standard_normal(blocks), np.zeros(AUDIO_RATE),
                  0.2 * rng.standard_normal(300)):  # shorter than one FFT window
        audio = audio.astype(np.float32)
        padded = np.pad(audio, (0, max(0, af.N_FFT - len(audio))))
        np.testing.assert_allclose(af.log_mel(audio), librosa_log_mel(padded), atol=1e-5, rtol=0)


def test_hearing_a_track_imports_neither_librosa_nor_numba() -> None:
    """The hearing worker's start-up (and an engine hearing in process) skips their ~2 s."""
    code = ("import sys, numpy as np; from heygemd.engines.builtin import audio_features as af; "
            "af.log_mel(np.zeros(16000, np.float32)); "
            "print(sorted(m for m in ('librosa', 'numba', 'scipy.signal') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_speech_mask_from_spans() -> None:
    mask = af.speech_mask_from_spans([(0.2, 0.4)], fps=10.0, count=8)
    assert mask.tolist() == [False, False, True, True, False, False, False, False]
