"""What the engine hears in a track: per-video-frame features, speech, loudness and phones.

One function serves the template's own audio (at analysis, cached) and the new audio (at
planning), so the per-template regression is fitted and applied on exactly the same features.
"""

from __future__ import annotations

import functools
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from heygemd import voice
from heygemd.contract import AUDIO_RATE
from heygemd.engines.builtin import audio_features as af
from heygemd.engines.builtin import phones as ph

# Viseme-class occupancy is stacked next to the normalised log-mel (whose columns are z-scores):
# this weight sets how much the regression's shrinkage lets it lean on the phones. At 3, plan r
# against the truth is 0.488 on the five shared clips (template = first 60%, linear ridge), every
# clip above log-mel alone (0.454); weight 2 gives 0.468, weight 4 0.483.
VISEME_WEIGHT = 3.0
FEATURE_DIM = (af.N_MELS + ph.N_VISEME_CLASSES) * (2 * af.CONTEXT + 1)
REMEMBER = 4  # results kept: a job's audio, plus templates analysed between its videos


@functools.cache
def feature_signature() -> str:
    """What the features depend on besides the code's version: a cached template analysis made
    with other constants or models must not meet new-audio features of another kind."""
    from importlib.metadata import version

    parts = [
        VISEME_WEIGHT, FEATURE_DIM, af.N_MELS, af.CONTEXT, af.HOP, af.N_FFT, AUDIO_RATE,
        sorted(ph.VISEME_CLASS.items()), version("pocketsphinx"), version("silero-vad"),
        ph.PIECE_SECONDS, ph.MIN_PAUSE_SECONDS,
    ]
    return hashlib.blake2b(repr(parts).encode(), digest_size=6).hexdigest()


@dataclass(frozen=True)
class Heard:
    """Per video frame (T rows): features float32 (T, FEATURE_DIM); speech bool (T,); level
    float32 (T,) dBFS; phone_opening float32 (T,) in [0, 1]; closed_lips bool (T,) (b/p/m)."""

    features: np.ndarray
    speech: np.ndarray
    level: np.ndarray
    phone_opening: np.ndarray
    closed_lips: np.ndarray

    @classmethod
    def silence(cls, count: int) -> Heard:
        """A track with nothing to hear (a template without audio)."""
        return cls(
            features=np.zeros((count, FEATURE_DIM), np.float32), speech=np.zeros(count, bool),
            level=np.full(count, af.FLOOR_DB, np.float32),
            phone_opening=np.zeros(count, np.float32), closed_lips=np.zeros(count, bool),
        )


HEARD_FIELDS = ("features", "speech", "level", "phone_opening", "closed_lips")


def any_of_steps(mask: np.ndarray, step: int) -> np.ndarray:
    """bool (ceil(T / step),): whether any of each ``step`` consecutive frames of ``mask`` (T,)
    is set."""
    padded = np.zeros(-(-len(mask) // step) * step, dtype=bool)
    padded[: len(mask)] = mask
    return padded.reshape(-1, step).any(axis=1)


def feature_windows(mel: np.ndarray, speech: np.ndarray, visemes: np.ndarray) -> np.ndarray:
    """Per-utterance normalised log-mel (T, N_MELS) beside viseme occupancy (T, classes), each
    row stacked with its neighbours -> float32 (T, FEATURE_DIM)."""
    rows = np.concatenate([af.normalise(mel, speech), visemes * VISEME_WEIGHT], axis=1)
    return af.stack_context(rows).astype(np.float32)


Key = tuple[bytes, float, int]


def key_of(audio: np.ndarray, fps: float, count: int) -> Key:
    """What a track is remembered by: its samples' digest, the frame rate and frame count."""
    return voice.digest(audio), round(float(fps), 6), int(count)


class Hears(Protocol):
    """What planning needs: :meth:`Listener.hear`'s signature (a Listener, or the engine's
    Hearing, which asks a worker process)."""

    def hear(self, audio: np.ndarray, fps: float, count: int) -> Heard: ...


class HeardMemory:
    """The last ``size`` answers, by :func:`key_of`. Their arrays are made read-only: a
    remembered answer is shared by every caller that hears the same audio."""

    def __init__(self, size: int = REMEMBER) -> None:
        self.size = size
        self._items: OrderedDict[Key, Heard] = OrderedDict()

    def __contains__(self, key: Key) -> bool:
        return key in self._items

    def get(self, key: Key) -> Heard | None:
        heard = self._items.get(key)
        if heard is not None:
            self._items.move_to_end(key)
        return heard

    def put(self, key: Key, heard: Heard) -> Heard:
        for array in (heard.features, heard.speech, heard.level, heard.phone_opening,
                      heard.closed_lips):
            array.flags.writeable = False
        self._items[key] = heard
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return heard

    def clear(self) -> None:
        self._items.clear()


class Listener:
    """The voice-activity detector (loaded once) and the phone decoder (its models found once,
    a fresh decoder per track: see PhoneRecognizer).

    The last few results are remembered by content: the videos of one job all hear the same
    audio (a minute of speech is seconds of phone decoding), usually at the same frame rate.
    """

    def __init__(self, remember: int = REMEMBER) -> None:
        self.voice = af.VoiceDetector()
        self.phones = ph.PhoneRecognizer()
        self._heard = HeardMemory(remember)

    def load(self) -> None:
        """Load the models now (start-up), not in the middle of the first job."""
        self.voice.load()
        self.phones.load()

    def hear(self, audio: np.ndarray, fps: float, count: int,
             speech: np.ndarray | None = None) -> Heard:
        """float32 (N,) 16 kHz mono -> what ``count`` video frames at ``fps`` hear; a video
        faster than the planning rate is heard at it (af.plan_step) and each of its frames gets
        the row of the planned frame it falls in; a slower one is heard at a multiple of its
        rate (af.hearing_steps), each frame taking the row its time starts. The arrays
        are read-only: a remembered result is shared by every caller that hears this audio.
        ``speech``: :meth:`speech_mask` of these samples where the caller found it (the hearing
        worker is sent it: it never loads the voice detector, nor torch)."""
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        key = key_of(audio, fps, count)
        heard = self._heard.get(key)
        if heard is None:
            heard = self._heard.put(key, self._hear(audio, fps, count, speech))
        return heard

    def speech_mask(self, audio: np.ndarray, fps: float, count: int) -> np.ndarray:
        """bool (count,): the frames where ``audio`` holds voice, as :meth:`hear` finds them
        (a video faster than the planning rate: each planned frame's answer for its frames; a
        slower one: the answer for the heard row its time starts)."""
        step, rows = af.plan_step(fps), af.hearing_steps(fps)
        heard = -(-count // step) * rows
        rate = fps / step * rows
        mask = self.voice.speech_mask(audio, rate, heard, af.loudness_db(audio, rate, heard))
        return np.repeat(mask, step)[:count] if step > 1 else mask[::rows]

    def _hear(self, audio: np.ndarray, fps: float, count: int,
              speech: np.ndarray | None = None) -> Heard:
        if speech is not None and (speech.shape != (count,) or speech.dtype != np.bool_):
            raise ValueError(f"a bool speech mask of {count} frames was expected, got "
                             f"{speech.dtype} {speech.shape}")
        step, rows = af.plan_step(fps), af.hearing_steps(fps)
        if rows > 1:  # heard at a multiple of a slow video's rate, each frame taking its first
            voice_mask = self.speech_mask(audio, fps, count) if speech is None else speech
            heard = self._hear_at(audio, fps * rows, count * rows, np.repeat(voice_mask, rows))
            return Heard(**{name: np.ascontiguousarray(getattr(heard, name)[::rows])
                            for name in HEARD_FIELDS})
        if step == 1:
            return self._hear_at(audio, fps, count, speech)
        # heard at the planning rate, each planned frame's row given to its STEP video frames
        planned = self._hear_at(audio, fps / step, -(-count // step),
                                None if speech is None else any_of_steps(speech, step))
        return Heard(**{name: np.repeat(getattr(planned, name), step, axis=0)[:count]
                        for name in HEARD_FIELDS})

    def _hear_at(self, audio: np.ndarray, fps: float, count: int,
                 speech: np.ndarray | None = None) -> Heard:
        mel = af.to_video_frames(af.log_mel(audio), af.HOP / AUDIO_RATE, fps, count)
        level = af.loudness_db(audio, fps, count)
        if speech is None:
            speech = self.voice.speech_mask(audio, fps, count, level)
        segments = self.phones.segments(audio, ph.piece_cuts(speech, fps, len(audio)))
        phone_opening, closed = ph.phones_to_frames(segments, fps, count)
        return Heard(
            features=feature_windows(mel, speech, ph.viseme_frames(segments, fps, count)),
            speech=speech, level=level, phone_opening=phone_opening, closed_lips=closed,
        )
