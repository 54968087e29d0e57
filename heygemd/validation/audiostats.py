"""Pure measurements of a job's audio: level, clipping, speech share and estimated SNR.

Everything works on ``float32 (N,)`` mono samples at 16 kHz (``contract.AUDIO_RATE``) cut
into frames of 512 samples (32 ms), the frame size of silero-vad, so a per-frame speech
probability from the VAD lines up with the per-frame powers measured here.

SNR estimate (documented choice): the noise power is the median power of the frames silero-vad
calls non-speech (the median, because frames at the edges of words leak speech energy into that
set, and a mean would follow them); the speech power is the mean power of the speech frames
minus that noise power. Of the first :data:`VAD_WARMUP_FRAMES` frames, those louder than
:data:`LOUD_WARMUP` times the later noise are not taken for noise: without context there the VAD
calls speech non-speech (a track cut mid-sentence: corpus clip c21, clean speech, read -5 dB
from 13 such frames as loud as its speech); a short clip's quiet lead-in still counts. Digitally
silent frames are left out too where enough others remain (a silent lead-in longer than the
pauses read any noisy speech as 99 dB). When fewer than :data:`MIN_NOISE_FRAMES` non-speech
frames remain (continuous speech), the noise power falls back to the 10th percentile of all
frame powers (an energy-percentile estimate), and when the VAD finds no speech at all the
signal power is the 95th percentile of frame powers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heygemd.contract import AUDIO_RATE

FRAME = 512  # samples per frame (32 ms at 16 kHz), silero-vad's window
SPEECH_PROBABILITY = 0.5  # a frame with VAD probability at or above this is speech
CLIP_LEVEL = 0.99  # |sample| at or above this (full scale = 1.0) counts as clipped
MIN_NOISE_FRAMES = 8  # 0.26 s of non-speech needed to measure the noise floor directly
VAD_WARMUP_FRAMES = 16  # the first 0.51 s, where the VAD lacks context
LOUD_WARMUP = 4.0  # a warm-up frame this many times the later noise power is missed speech
NOISE_PERCENTILE = 10.0
SIGNAL_PERCENTILE = 95.0
POWER_FLOOR = 1e-10  # -100 dBFS: keeps logarithms finite on digital silence
MAX_SNR_DB = 99.0  # reported for noiseless (digitally silent) backgrounds


@dataclass(frozen=True)
class AudioStats:
    """What the rules need to know about a piece of audio.

    duration_s: seconds; rms_dbfs / peak_dbfs: dB relative to full scale (1.0);
    clipped_share: fraction 0..1 of samples at full scale; speech_share: fraction 0..1 of frames
    the VAD calls speech; snr_db: estimated speech-to-noise ratio in dB; damaged_s: seconds of
    samples that were not numbers (NaN or infinite) in the file, made silent when decoded, the
    first at damaged_from_s.
    """

    duration_s: float
    rms_dbfs: float
    peak_dbfs: float
    clipped_share: float
    speech_share: float
    snr_db: float
    damaged_s: float = 0.0
    damaged_from_s: float = 0.0


def to_db(power: float) -> float:
    """Power (mean square, full scale 1.0) -> dBFS, floored at -100 dB."""
    return float(10.0 * np.log10(max(power, POWER_FLOOR)))


def frame_powers(samples: np.ndarray, frame: int = FRAME) -> np.ndarray:
    """Mean square per frame. samples: float (N,) -> float64 (ceil(N / frame),); the last frame
    is zero-padded, as silero-vad pads it."""
    x = np.asarray(samples, dtype=np.float64)
    n_frames = max(1, -(-len(x) // frame))
    padded = np.zeros(n_frames * frame, dtype=np.float64)
    padded[: len(x)] = x
    return np.mean(padded.reshape(n_frames, frame) ** 2, axis=1)


def rms_dbfs(samples: np.ndarray) -> float:
    """Overall RMS level in dBFS (a full-scale square wave is 0 dBFS, a full-scale sine -3)."""
    if len(samples) == 0:
        return to_db(0.0)
    return to_db(float(np.mean(np.asarray(samples, dtype=np.float64) ** 2)))


def peak_dbfs(samples: np.ndarray) -> float:
    """Largest absolute sample in dBFS."""
    if len(samples) == 0:
        return to_db(0.0)
    return to_db(float(np.max(np.abs(samples))) ** 2)


def clipped_share(samples: np.ndarray, level: float = CLIP_LEVEL) -> float:
    """Fraction 0..1 of samples whose magnitude reaches ``level`` (full scale = 1.0)."""
    if len(samples) == 0:
        return 0.0
    return float(np.mean(np.abs(samples) >= level))


def speech_mask(probabilities: np.ndarray, n_frames: int) -> np.ndarray:
    """Per-frame VAD probabilities (F,) -> bool (n_frames,), padded with False or cut to fit."""
    mask = np.zeros(n_frames, dtype=bool)
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)[:n_frames]
    mask[: len(p)] = p >= SPEECH_PROBABILITY
    return mask


def estimate_snr_db(powers: np.ndarray, is_speech: np.ndarray) -> float:
    """Speech-to-noise ratio in dB from frame powers (F,) and a speech mask bool (F,).

    See the module docstring for the estimate and its fallbacks.
    """
    if len(powers) == 0:
        return 0.0
    quiet = ~is_speech
    warmup = np.arange(len(powers)) < VAD_WARMUP_FRAMES
    later = powers[quiet & ~warmup]
    reference = float(np.median(later)) if len(later) >= MIN_NOISE_FRAMES \
        else float(np.percentile(powers, NOISE_PERCENTILE))
    quiet &= ~(warmup & (powers > LOUD_WARMUP * reference))  # speech the VAD missed
    audible = quiet & (powers > POWER_FLOOR)  # digital silence is no noise floor either
    if int(audible.sum()) >= MIN_NOISE_FRAMES:
        quiet = audible
    noise_frames = powers[quiet]
    if len(noise_frames) >= MIN_NOISE_FRAMES:
        noise = float(np.median(noise_frames))
    else:
        noise = float(np.percentile(powers, NOISE_PERCENTILE))
    if is_speech.any():
        total = float(np.mean(powers[is_speech]))
    else:
        total = float(np.percentile(powers, SIGNAL_PERCENTILE))
    signal = max(total - noise, 0.0)
    if noise <= POWER_FLOOR:
        return MAX_SNR_DB if signal > POWER_FLOOR else 0.0
    if signal <= 0.0:
        return 0.0
    return float(min(10.0 * np.log10(signal / noise), MAX_SNR_DB))


def measure_audio(
    samples: np.ndarray, speech_probabilities: np.ndarray, rate: int = AUDIO_RATE,
    damaged: int = 0, damaged_from_s: float = 0.0,
) -> AudioStats:
    """All stats of ``samples`` (float32 (N,) mono at ``rate``) given per-frame VAD
    probabilities (F,) for frames of :data:`FRAME` samples; ``damaged``: how many of them were
    not numbers in the file (made silent when decoded), the first at ``damaged_from_s``."""
    powers = frame_powers(samples)
    is_speech = speech_mask(speech_probabilities, len(powers))
    return AudioStats(
        duration_s=len(samples) / rate,
        rms_dbfs=rms_dbfs(samples),
        peak_dbfs=peak_dbfs(samples),
        clipped_share=clipped_share(samples),
        speech_share=float(np.mean(is_speech)) if len(samples) else 0.0,
        snr_db=estimate_snr_db(powers, is_speech),
        damaged_s=damaged / rate,
        damaged_from_s=damaged_from_s,
    )
