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
from collections import OrderedDict

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
