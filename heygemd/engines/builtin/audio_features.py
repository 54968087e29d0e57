"""Audio -> per-video-frame features: log-mel context windows, loudness, voice activity.

Everything here is pure array -> array except :class:`VoiceDetector`, which runs silero-vad
(the process's one model, :mod:`heygemd.voice`; loaded in the engine's ``prepare()``). Audio is
float32 (N,) mono at AUDIO_RATE.
"""

from __future__ import annotations

import functools

import numpy as np

from heygemd import voice
from heygemd.contract import AUDIO_RATE
from heygemd.engines import melscale

HOP = 160  # 10 ms mel hop
N_FFT = 512
WIN_LENGTH = 400  # 25 ms
N_MELS = 40
FMIN, FMAX = 60.0, 7600.0  # Hz, the mel filters' range
MEL_BLOCK = 2048  # log-mel rows computed at once (20 s of audio)
CONTEXT = 4  # video frames each side stacked into one feature window (+-160 ms at 25 fps)
QUIET_DB = 35.0  # frames this far below the loudest are quiet (ENGINE-NOTES 6)
FLOOR_DB = -80.0


# The rate the mouth is planned at: the speaker model's context, the template fit's windows and
# the selection's run costs are all counted in frames of 24-30 fps footage. A faster video (50 or
# 60 fps) is heard and planned on every STEP-th frame (plan_step), and the frames between follow
# their source's own motion (planning.drive). Planned at 50 fps instead, with the same models,
# leave-one-speaker-out plan r fell 0.032 [0.004, 0.064] on the 51 clips shown at twice their rate
# (heygemd eval --corpus --faster 2); planned so, 0.000.
PLAN_FPS = 25.0


def plan_step(fps: float) -> int:
    """Frames of a ``fps`` video per planned frame: 1 below 37.5 fps, 2 at 50 and 60 fps (25
    and 30 planned a second), 5 at 120."""
    return max(1, int(round(fps / PLAN_FPS)))


def hearing_steps(fps: float) -> int:
    """Rows heard per frame of a video slower than the planning rate, each frame taking the
    first of its own: 2 at 10-16.6 fps (20-33 heard a second), 5 at 5 fps; 1 from 16.7 fps
    (25 / 1.5), where the video's own rate is nearer the planning rate than twice it is.
    At half their rate, each frame heard only at that rate, the corpus clips lost plan r
    0.153 [0.107, 0.202] against their own plan on those frames; heard so, 0.010 [-0.007,
    0.029] (heygemd eval --corpus --slower 2)."""
    return max(1, int(round(PLAN_FPS / fps)))


def frame_count(n_samples: int, fps: float) -> int:
    """Video frames covering ``n_samples`` of 16 kHz audio (at least one)."""
    return max(1, int(round(n_samples / AUDIO_RATE * fps)))


def log_mel(audio: np.ndarray) -> np.ndarray:
    """float32 (N,) -> float32 (M, N_MELS) log-mel (natural log), one row per 10 ms hop.

    The power spectrum of 25 ms periodic-Hann windows (WIN_LENGTH, centred in N_FFT points),
    frames centred on each hop with zero padding, through Slaney mel filters 60-7600 Hz: the
    numbers librosa's ``feature.melspectrogram`` gives for these settings (tested), in numpy.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) < N_FFT:
        audio = np.pad(audio, (0, N_FFT - len(audio)))
    padded = np.pad(audio, N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]  # a view
    out = np.empty((len(frames), N_MELS), dtype=np.float32)
    for start in range(0, len(frames), MEL_BLOCK):  # ~10 MB of spectra at a time
        block = np.fft.rfft(frames[start : start + MEL_BLOCK] * _window(), axis=1)  # float64
        spectrum = block.astype(np.complex64)  # rounded where librosa's stft rounds
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        out[start : start + MEL_BLOCK] = np.log(power @ _mel_filters().T + 1e-6)
    return out


@functools.cache
def _window() -> np.ndarray:
    """float64 (N_FFT,): a periodic Hann window of WIN_LENGTH points in the middle of N_FFT."""
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN_LENGTH) / WIN_LENGTH)
    left = (N_FFT - WIN_LENGTH) // 2
    return np.pad(hann, (left, N_FFT - WIN_LENGTH - left))


@functools.cache
def _mel_filters() -> np.ndarray:
    """float32 (N_MELS, N_FFT // 2 + 1)."""
    return melscale.filterbank(AUDIO_RATE, N_FFT, N_MELS, FMIN, FMAX).astype(np.float32)


def to_video_frames(rows: np.ndarray, hop_seconds: float, fps: float, count: int) -> np.ndarray:
    """Average hop-rate rows (M, D) into ``count`` video frames (count, D) at ``fps``.

    Video frame t covers [t/fps, (t+1)/fps); rows past the end repeat the last row.
    """
    starts = np.floor(np.arange(count) / fps / hop_seconds).astype(int)
    ends = np.maximum(starts + 1, np.floor(np.arange(1, count + 1) / fps / hop_seconds).astype(int))
    last = len(rows) - 1
    cum = np.concatenate([np.zeros((1, rows.shape[1])), np.cumsum(rows, axis=0)])
    s = np.clip(starts, 0, last)
    e = np.clip(ends, s + 1, last + 1)
    return ((cum[e] - cum[s]) / (e - s)[:, None]).astype(np.float32)


def loudness_db(audio: np.ndarray, fps: float, count: int) -> np.ndarray:
    """RMS level per video frame in dBFS, float32 (count,), floored at FLOOR_DB."""
    audio = np.asarray(audio, dtype=np.float32)
    per = AUDIO_RATE / fps
    out = np.full(count, FLOOR_DB, dtype=np.float32)
    for t in range(count):
        chunk = audio[int(t * per) : int((t + 1) * per)]
        if len(chunk):
            rms = float(np.sqrt(np.mean(chunk.astype(np.float64) ** 2)))
            out[t] = max(FLOOR_DB, 20 * np.log10(rms + 1e-10))
    return out


def normalise(features: np.ndarray, speech: np.ndarray) -> np.ndarray:
    """Per-utterance normalisation: z-score each column with the statistics of speech frames.

    features: (T, D); speech: bool (T,). Another voice (or TTS) lands in the same space because
    its own mean spectrum and spread are removed. Falls back to all frames when too few are speech.
    """
    rows = features[speech] if int(speech.sum()) >= 10 else features
    mean = rows.mean(axis=0)
    std = rows.std(axis=0) + 1e-3
    return ((features - mean) / std).astype(np.float32)


def stack_context(features: np.ndarray, context: int = CONTEXT) -> np.ndarray:
    """(T, D) -> (T, (2*context+1)*D): each row with its neighbours (edges repeat)."""
    padded = np.pad(features, ((context, context), (0, 0)), mode="edge")
    t = len(features)
    return np.concatenate([padded[i : i + t] for i in range(2 * context + 1)], axis=1)


def quiet_frames(level_db: np.ndarray, below_peak_db: float = QUIET_DB) -> np.ndarray:
    """bool (T,): frames more than ``below_peak_db`` under the loudest frame (robust peak)."""
    peak = float(np.percentile(level_db, 99)) if len(level_db) else 0.0
    return level_db < peak - below_peak_db


def envelope(level_db: np.ndarray) -> np.ndarray:
    """Loudness envelope in [0, 1] per frame: dB relative to the peak, clipped to 40 dB range."""
    peak = float(np.percentile(level_db, 99)) if len(level_db) else 0.0
    return np.clip((level_db - (peak - 40.0)) / 40.0, 0.0, 1.0).astype(np.float32)


def speech_mask_from_spans(
    spans: list[tuple[float, float]], fps: float, count: int
) -> np.ndarray:
    """Speech spans in seconds -> bool (count,) per video frame (frame centre inside a span)."""
    centres = (np.arange(count) + 0.5) / fps
    mask = np.zeros(count, dtype=bool)
    for start, end in spans:
        mask |= (centres >= start) & (centres < end)
    return mask


class VoiceDetector:
    """Speech spans from silero-vad: the process's one model (:func:`heygemd.voice.model`,
    bundled in the wheel: nothing is downloaded)."""

    def load(self) -> None:
        """Load the model now (start-up), not in the middle of the first job."""
        voice.model()

    def spans(self, audio: np.ndarray) -> list[tuple[float, float]]:
        """Speech spans (start, end) in seconds of float32 (N,) 16 kHz audio.

        Where the audio check already ran silero over these samples (heygemd.voice remembers
        its probabilities: the same model, frames and numbers), only the spans are derived
        (silero-vad versions with get_speech_timestamps_from_probs, which the model path ends in).
        """
        import torch

        silero_vad = voice.silero()
        from_probs = getattr(silero_vad, "get_speech_timestamps_from_probs", None)
        known = voice.recall(audio) if from_probs is not None else None
        if from_probs is not None and known is not None:
            stamps = from_probs(
                known.tolist(), sampling_rate=AUDIO_RATE, min_silence_duration_ms=120,
                speech_pad_ms=20, audio_length_samples=len(audio),
            )
            return [(s["start"] / AUDIO_RATE, s["end"] / AUDIO_RATE) for s in stamps]
        with voice.running() as model, torch.no_grad():
            stamps = silero_vad.get_speech_timestamps(
                torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
                model, sampling_rate=AUDIO_RATE, min_silence_duration_ms=120,
                speech_pad_ms=20,
            )
        return [(s["start"] / AUDIO_RATE, s["end"] / AUDIO_RATE) for s in stamps]

    def speech_mask(
        self, audio: np.ndarray, fps: float, count: int, level: np.ndarray | None = None
    ) -> np.ndarray:
        """bool (count,) per video frame: voice present (silero) and not quiet. ``level``: the
        frames' loudness_db when the caller has it already."""
        mask = speech_mask_from_spans(self.spans(audio), fps, count)
        if level is None:
            level = loudness_db(audio, fps, count)
        return mask & ~quiet_frames(level)
