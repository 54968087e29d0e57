"""silero-vad's speech probabilities of audio already examined, remembered by content.

A job's audio goes through silero-vad twice: the audio check measures its speech share and noise
(:func:`heygemd.examine.speech_probabilities`) and the builtin engine finds its speech spans
(``audio_features.VoiceDetector``). Both run the same model over the same 512-sample frames from
a fresh state, so the probabilities are the same numbers (checked on every shared clip and
speech file: equal to the last bit, spans equal): the check keeps them here and the engine
takes them instead of running the model again (~55 ms per 5 s of audio).

Only a few recent tracks are kept; a miss just means the model runs.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections import OrderedDict
from types import ModuleType
from typing import Any

import numpy as np

REMEMBER = 4  # tracks: a job's audio, with room for the templates heard around it
FRAME = 512  # samples per probability (32 ms at 16 kHz)

_known: OrderedDict[bytes, np.ndarray] = OrderedDict()
_lock = threading.Lock()


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
