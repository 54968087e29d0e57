"""silero-vad, the one speech model of a process, and its probabilities remembered by content.

Every use of silero goes through here: the audio check (:func:`speech_probabilities`), the
builtin engine's speech spans (``audio_features.VoiceDetector``) and ``heygemd eval``. The model
is loaded once per process (:func:`model`) and used by one caller at a time (:func:`running`):
it keeps recurrent state between chunks.

A job's audio is heard twice: the audio check measures its speech share and noise, and the
builtin engine finds its speech spans. Both run the same model over the same 512-sample frames
from a fresh state, so the probabilities are the same numbers (checked on every shared clip and
speech file: equal to the last bit, spans equal): the check keeps them here and the engine
takes them instead of running the model again (~55 ms per 5 s of audio).

Only a few recent tracks are kept; a miss just means the model runs.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import numpy as np
import structlog

from heygemd.contract import AUDIO_RATE, ProgressFn

log = structlog.get_logger(__name__)

REMEMBER = 4  # tracks: a job's audio, with room for the templates heard around it
FRAME = 512  # samples per probability (32 ms at 16 kHz)
VAD_BLOCK = 64  # frames (~2 s of audio, ~20 ms of CPU) per progress call of speech_probabilities

_known: OrderedDict[bytes, np.ndarray] = OrderedDict()
_lock = threading.Lock()  # the remembered tracks and the import of silero_vad
_model: Any = None
_model_lock = threading.Lock()  # the model keeps recurrent state between chunks: one user


def digest(samples: np.ndarray) -> bytes:
    """What a track is known by: a hash of its float32 samples."""
    data = np.ascontiguousarray(samples, dtype=np.float32)
    return hashlib.blake2b(data.tobytes(), digest_size=16).digest()


def remember(samples: np.ndarray, probabilities: np.ndarray) -> None:
    """Keep the speech probabilities (one per FRAME samples, the last frame zero-padded) of
    float32 (N,) 16 kHz ``samples``."""
    expected = -(-len(samples) // FRAME)
    probabilities = np.asarray(probabilities, dtype=np.float32).reshape(-1)
    if len(probabilities) != expected:
        raise ValueError(f"{len(probabilities)} probabilities for {expected} frames")
    probabilities = probabilities.copy()
    probabilities.flags.writeable = False
    key = digest(samples)
    with _lock:
        _known[key] = probabilities
        _known.move_to_end(key)
        while len(_known) > REMEMBER:
            _known.popitem(last=False)


def recall(samples: np.ndarray) -> np.ndarray | None:
    """The remembered probabilities (read-only float32) of ``samples``, or None."""
    key = digest(samples)
    with _lock:
        found = _known.get(key)
        if found is not None:
            _known.move_to_end(key)
        return found


def forget() -> None:
    """Forget every track (a benchmark's timed run must run the model)."""
    with _lock:
        _known.clear()


def silero() -> ModuleType:
    """The silero_vad package, imported without its side effect: importing it sets torch to
    one thread for the whole process (silero_vad/model.py), which left every later torch
    computation in the daemon (the builtin engine's transplant, Wav2Lip on the CPU) on one core.
    Every use of silero goes through here."""
    import sys

    with _lock:
        if "silero_vad" not in sys.modules:
            import torch

            threads = torch.get_num_threads()
            import silero_vad  # noqa: F401 - sets torch to one thread

            torch.set_num_threads(threads)
        return sys.modules["silero_vad"]


def load_model() -> Any:
    """silero-vad's TorchScript model (bundled in the wheel: nothing is downloaded)."""
    vad = silero()
    with warnings.catch_warnings():
        # silero-vad ships a TorchScript model; torch 2.13 deprecates jit.load itself.
        warnings.filterwarnings(
            "ignore", message=r".*torch\.jit\.load.* is deprecated", category=DeprecationWarning
        )
        return vad.load_silero_vad()


def _loaded() -> Any:
    """The process's model, loaded on first use; the caller holds _model_lock."""
    global _model
    if _model is None:
        _model = load_model()
        log.debug("voice.model_loaded")
    return _model


def model() -> Any:
    """The process's one silero-vad model, loaded on first use (the builtin engine's start-up
    loads it early, through VoiceDetector.load)."""
    with _model_lock:
        return _loaded()


@contextmanager
def running() -> Iterator[Any]:
    """The process's one model, for this caller alone while the block runs: it keeps recurrent
    state between chunks, so the caller resets it first (silero's own functions do).

    torch computes on one thread while the block runs (as silero-vad itself wants): its
    operations on 512-sample frames are too small to share, and two threads contending with
    other work spin: 11 s of speech took 0.26 s on one thread against 0.61 s on two on an idle
    2-core machine, and 0.6 s against 8-10 s with the machine busy."""
    import torch

    with _model_lock:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield _loaded()
        finally:
            torch.set_num_threads(threads)


def _no_progress(fraction: float) -> None:
    pass


def speech_probabilities(samples: np.ndarray, progress: ProgressFn | None = None) -> np.ndarray:
    """silero-vad speech probability per 512-sample frame: samples float32 (N,) at 16 kHz ->
    float32 (ceil(N / 512),).

    The frames go through the model one by one (what silero's ``audio_forward`` does), so that
    ``progress`` gets the fraction done every VAD_BLOCK frames; it may raise JobInterrupted.
    The probabilities are remembered (:func:`remember`) for the engine's VAD.
    """
    import torch

    report = progress or _no_progress
    if len(samples) == 0:
        report(1.0)
        return np.zeros(0, np.float32)
    count = -(-len(samples) // FRAME)
    padded = np.zeros(count * FRAME, np.float32)
    padded[: len(samples)] = samples
    frames = torch.from_numpy(padded).reshape(count, 1, FRAME)
    out: list[torch.Tensor] = []
    with running() as vad, torch.inference_mode():
        vad.reset_states()
        for i in range(count):
            if i % VAD_BLOCK == 0:
                report(i / count)
            out.append(vad(frames[i], AUDIO_RATE))
    report(1.0)
    probabilities = torch.cat(out, 1).numpy().reshape(-1).astype(np.float32)
    remember(samples, probabilities)  # the engine's VAD takes them
    return probabilities
