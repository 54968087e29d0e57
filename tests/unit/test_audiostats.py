"""audiostats on synthetic signals: levels, clipping, speech share and the SNR estimate."""

from __future__ import annotations

import numpy as np
import pytest

from heygemd.contract import AUDIO_RATE as RATE
from heygemd.validation import audiostats as a


def tone(seconds: float, amplitude: float, hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def noise(seconds: float, rms: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * rms).astype(np.float32)


def test_rms_of_full_scale_sine_is_minus_3_dbfs() -> None:
    assert a.rms_dbfs(tone(1.0, 1.0)) == pytest.approx(-3.01, abs=0.05)
    assert a.peak_dbfs(tone(1.0, 0.5)) == pytest.approx(-6.02, abs=0.05)


def test_digital_silence_is_floored_not_infinite() -> None:
    assert a.rms_dbfs(np.zeros(16000, np.float32)) == pytest.approx(-100.0)
    assert a.rms_dbfs(np.zeros(0, np.float32)) == pytest.approx(-100.0)


def test_frame_powers_pad_the_last_frame() -> None:
    x = np.ones(a.FRAME + 10, np.float32)
    powers = a.frame_powers(x)
    assert powers.shape == (2,)
    assert powers[0] == pytest.approx(1.0)
    assert powers[1] == pytest.approx(10 / a.FRAME)


def test_clipped_share_counts_full_scale_samples() -> None:
    clean = tone(1.0, 0.5)
    assert a.clipped_share(clean) == 0.0
    clipped = np.clip(tone(1.0, 3.0), -1.0, 1.0)
    assert a.clipped_share(clipped) > 0.5


def test_speech_mask_pads_and_cuts() -> None:
    mask = a.speech_mask(np.array([0.9, 0.1, 0.5]), 5)
    assert mask.tolist() == [True, False, True, False, False]
    assert a.speech_mask(np.ones(10), 3).tolist() == [True, True, True]


def test_snr_from_vad_mask_matches_the_mixture() -> None:
    # 1 s of noise only, then 2 s of tone + the same noise: the tone is 20 dB above the noise.
    n = noise(3.0, 0.01)
    x = n.copy()
    x[RATE:] += tone(2.0, 0.1 * np.sqrt(2))  # tone power 0.01 = noise power 1e-4 * 100
    powers = a.frame_powers(x)
    is_speech = np.zeros(len(powers), bool)
    is_speech[RATE // a.FRAME :] = True  # frame 31 holds the onset
    assert a.estimate_snr_db(powers, is_speech) == pytest.approx(20.0, abs=0.5)


def test_snr_falls_back_to_percentiles_without_pauses() -> None:
    # Speech everywhere by the VAD: the noise floor comes from the quietest frames.
    x = noise(2.0, 0.01)
    x[: RATE // 2] = 0.001 * x[: RATE // 2]  # a quiet quarter
    x[RATE:] += tone(1.0, 0.3)
    powers = a.frame_powers(x)
    snr = a.estimate_snr_db(powers, np.ones(len(powers), bool))
    assert snr > 30.0


def test_snr_is_not_lowered_by_speech_the_vad_calls_non_speech() -> None:
    # Clean speech cut mid-sentence: tone bursts over a quiet floor, 40 dB apart. The VAD,
    # without context at the start, calls the first 13 frames (loud) non-speech.
    x = noise(3.0, 0.0005)
    for start in np.arange(0.0, 3.0, 0.25):
        i = int(start * RATE)
        x[i : i + RATE // 8] += tone(0.125, 0.05 * np.sqrt(2))
    powers = a.frame_powers(x)
    is_speech = np.ones(len(powers), bool)
    is_speech[:13] = False
    assert np.median(powers[:13]) > 100 * np.percentile(powers, 10)  # the VAD's "noise" is speech
    assert a.estimate_snr_db(powers, is_speech) > 20.0


def test_snr_of_noisy_speech_after_digital_silence_is_low() -> None:
    # 2.5 s of digital silence (more frames than the pauses after it), then bursts under noise
    # of their own power (0 dB): the silent frames must not stand for the noise floor.
    x = noise(5.0, 0.05)
    x[: int(2.5 * RATE)] = 0.0
    for start in np.arange(2.5, 5.0, 0.25):
        i = int(start * RATE)
        x[i : i + RATE // 8] += tone(0.125, 0.05 * np.sqrt(2))
    powers = a.frame_powers(x)
    is_speech = np.zeros(len(powers), bool)
    is_speech[int(2.5 * RATE) // a.FRAME :] = powers[int(2.5 * RATE) // a.FRAME :] > np.median(
        powers[int(2.5 * RATE) // a.FRAME :])
    assert a.estimate_snr_db(powers, is_speech) < 6.0


def test_snr_of_pure_noise_is_low() -> None:
    x = noise(3.0, 0.1)
    powers = a.frame_powers(x)
    assert a.estimate_snr_db(powers, np.zeros(len(powers), bool)) < 3.0


def test_snr_with_noiseless_background_is_capped() -> None:
    x = np.zeros(2 * RATE, np.float32)
    x[RATE:] = tone(1.0, 0.5)
    powers = a.frame_powers(x)
    is_speech = powers > 1e-6
    assert a.estimate_snr_db(powers, is_speech) == a.MAX_SNR_DB


def test_measure_audio_puts_it_together() -> None:
    x = noise(2.0, 0.001)
    x[RATE:] += tone(1.0, 0.2)
    n_frames = len(a.frame_powers(x))
    probs = np.zeros(n_frames)
    probs[RATE // a.FRAME :] = 0.95
    stats = a.measure_audio(x, probs)
    assert stats.duration_s == pytest.approx(2.0)
    assert stats.speech_share == pytest.approx(0.5, abs=0.05)
    assert stats.clipped_share == 0.0
    assert stats.snr_db > 30.0
    assert -25.0 < stats.rms_dbfs < -15.0
