"""Wav2Lip's audio features and the silence gate. Pure numpy: array in, array out.

Features follow the published model exactly: 16 kHz mono, pre-emphasis 0.97, centred STFT
(n_fft 800, hop 200, Hann window 800, reflect padding), magnitude -> 80 Slaney mel bands
55-7600 Hz -> 20*log10(max(1e-5, x)) - 20 dB -> clip(8*(S+100)/100 - 4, -4, 4).
That gives 80 mel columns per second; video frame i sees the 16 columns (200 ms) that start at
int(80 * i / fps).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from heygemd.contract import AUDIO_RATE
from heygemd.engines import melscale

PREEMPHASIS = 0.97
N_FFT = 800
HOP = 200
N_MELS = 80
FMIN = 55.0
FMAX = 7600.0
REF_LEVEL_DB = 20.0
MIN_LEVEL_DB = -100.0
MAX_ABS = 4.0
MEL_STEPS = 16  # columns per video frame
COLUMNS_PER_SECOND = AUDIO_RATE / HOP  # 80

def mel_filterbank() -> np.ndarray:
    """Area-normalised triangular filters: float64 (80, N_FFT // 2 + 1)."""
    return melscale.filterbank(AUDIO_RATE, N_FFT, N_MELS, FMIN, FMAX)


def stft_magnitude(wav: np.ndarray) -> np.ndarray:
    """|STFT| of a float (N,) signal, centred with reflect padding: float64 (401, 1 + N // 200)."""
    padded = np.pad(wav.astype(np.float64), N_FFT // 2, mode="reflect")
    count = 1 + (len(padded) - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:count]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    return np.abs(np.fft.rfft(frames * window, axis=1)).T


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """Wav2Lip features of float32 (N,) mono 16 kHz audio: float32 (80, 1 + N // 200) in [-4, 4].

    Audio shorter than one FFT window is zero-padded to one window first.
    """
    wav = np.asarray(wav, dtype=np.float64).reshape(-1)
    if len(wav) < N_FFT:
        wav = np.pad(wav, (0, N_FFT - len(wav)))
    emphasised = lfilter([1.0, -PREEMPHASIS], [1.0], wav)
    mel = mel_filterbank() @ stft_magnitude(emphasised)
    db = 20.0 * np.log10(np.maximum(1e-5, mel)) - REF_LEVEL_DB
    normalised = 2 * MAX_ABS * (db - MIN_LEVEL_DB) / -MIN_LEVEL_DB - MAX_ABS
    return np.clip(normalised, -MAX_ABS, MAX_ABS).astype(np.float32)


def mel_window_start(frame_index: int, fps: float, columns: int) -> int:
    """First mel column seen by video frame ``frame_index``; windows past the end are pinned to
    the last MEL_STEPS columns (as the original inference does)."""
    start = int(COLUMNS_PER_SECOND * frame_index / fps)
    return max(0, min(start, columns - MEL_STEPS))


def mel_windows(mel: np.ndarray, frame_indices: np.ndarray, fps: float) -> np.ndarray:
    """Per-frame windows of ``mel`` (80, T): float32 (F, 1, 80, 16) for int frame indices (F,).

    ``mel`` needs at least MEL_STEPS columns (any audio of >= 0.19 s has them).
    """
    columns = mel.shape[1]
    if columns < MEL_STEPS:
        mel = np.pad(mel, ((0, 0), (0, MEL_STEPS - columns)), constant_values=-MAX_ABS)
        columns = MEL_STEPS
    starts = [mel_window_start(int(i), fps, columns) for i in frame_indices]
    return np.stack([mel[None, :, s : s + MEL_STEPS] for s in starts]).astype(np.float32)


def frame_levels_dbfs(wav: np.ndarray, fps: float, frame_count: int) -> np.ndarray:
    """RMS level of the audio under each video frame, dBFS: float64 (frame_count,).

    Frame i covers samples [i, i + 1) / fps seconds; frames beyond the audio read as -120 dBFS.
    """
    wav = np.asarray(wav, dtype=np.float64).reshape(-1)
    bounds = np.round(np.arange(frame_count + 1) * AUDIO_RATE / fps).astype(np.int64)
    squares = np.concatenate([[0.0], np.cumsum(wav * wav)])
    lo = np.minimum(bounds[:-1], len(wav))
    hi = np.minimum(bounds[1:], len(wav))
    energy = squares[hi] - squares[lo]
    mean = np.where(hi > lo, energy / np.maximum(hi - lo, 1), 0.0)
    return 10.0 * np.log10(np.maximum(mean, 1e-12))


def silence_threshold(levels_dbfs: np.ndarray, floor_dbfs: float, relative_db: float) -> float:
    """Level (dBFS) below which a frame is silent: ``relative_db`` under the loud end of the
    audio (its 95th percentile frame level), never below ``floor_dbfs``.

    A relative gate keeps a noisy recording's pauses (a -42 dBFS hiss floor) silent.
    """
    if len(levels_dbfs) == 0:
        return floor_dbfs
    return max(floor_dbfs, float(np.percentile(levels_dbfs, 95)) - relative_db)


def speech_weights(
    levels_dbfs: np.ndarray, fps: float, silence_dbfs: float, min_silence_s: float, ramp_s: float
) -> np.ndarray:
    """Per-frame weight of the generated mouth: float32 (F,) in [0, 1] for levels (F,) in dBFS.

    Frames quieter than ``silence_dbfs`` are silent, but only runs of at least ``min_silence_s``
    count (pauses between syllables keep the generated mouth). Silent runs get weight 0 (the
    template's own mouth), speech 1, with linear ramps of ``ramp_s`` into and out of silence.
    """
    loud = levels_dbfs >= silence_dbfs
    silent = ~loud
    min_run = max(1, int(round(min_silence_s * fps)))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], silent.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if stop - start < min_run:
            silent[start:stop] = False
    ramp = max(1, int(round(ramp_s * fps)))
    weights = (~silent).astype(np.float64)
    if ramp > 1 and silent.any() and (~silent).any():
        kernel = np.ones(ramp) / ramp
        padded = np.pad(weights, ramp, mode="edge")
        weights = np.maximum(weights, np.convolve(padded, kernel, mode="same")[ramp:-ramp])
    return np.clip(weights, 0.0, 1.0).astype(np.float32)
