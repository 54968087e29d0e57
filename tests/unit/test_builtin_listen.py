"""What the engine hears: one feature layout for the template's audio and the new audio."""

from __future__ import annotations

import numpy as np
import pytest

from heygemd.contract import AUDIO_RATE
from heygemd.engines.builtin import audio_features as af
from heygemd.engines.builtin import listen
from heygemd.engines.builtin import phones as ph


def test_feature_windows_put_visemes_beside_the_normalised_mel() -> None:
    rng = np.random.default_rng(0)
    count = 30
    mel = rng.normal(3.0, 2.0, (count, af.N_MELS)).astype(np.float32)
    speech = np.ones(count, bool)
    visemes = np.zeros((count, ph.N_VISEME_CLASSES), np.float32)
    visemes[10, ph.VISEME_CLASS["AA"]] = 1.0
    windows = listen.feature_windows(mel, speech, visemes)
    assert windows.shape == (count, listen.FEATURE_DIM) and windows.dtype == np.float32
    width = af.N_MELS + ph.N_VISEME_CLASSES
    centre = windows[:, af.CONTEXT * width : (af.CONTEXT + 1) * width]  # each frame's own row
    assert np.allclose(centre[:, : af.N_MELS].mean(axis=0), 0.0, atol=1e-4)
    assert centre[10, af.N_MELS + ph.VISEME_CLASS["AA"]] == listen.VISEME_WEIGHT
    # the neighbour one frame later sees frame 10 one slot to the left of centre
    left = windows[11, (af.CONTEXT - 1) * width : af.CONTEXT * width]
    assert left[af.N_MELS + ph.VISEME_CLASS["AA"]] == listen.VISEME_WEIGHT


def test_a_silent_track_has_the_same_layout() -> None:
    heard = listen.Heard.silence(7)
    assert heard.features.shape == (7, listen.FEATURE_DIM)
    assert not heard.speech.any() and not heard.closed_lips.any()


def test_hear_a_voice_like_signal() -> None:
    fps, seconds = 25.0, 2.0
    t = np.arange(int(AUDIO_RATE * seconds)) / AUDIO_RATE
    voiced = (np.sin(2 * np.pi * 3 * t) > 0).astype(np.float32)
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * voiced).astype(np.float32)
    count = af.frame_count(len(audio), fps)
    heard = listen.Listener().hear(audio, fps, count)
    assert heard.features.shape == (count, listen.FEATURE_DIM)
    assert heard.level.shape == heard.speech.shape == heard.phone_opening.shape == (count,)
    assert np.isfinite(heard.features).all()
    assert heard.level.max() > heard.level.min() + 20  # the gaps are heard as quiet


def test_the_same_audio_is_heard_once(monkeypatch: pytest.MonkeyPatch) -> None:
    listener = listen.Listener(remember=2)
    calls: list[int] = []

    def hear(audio: np.ndarray, fps: float, count: int,
             speech: np.ndarray | None = None) -> listen.Heard:
        calls.append(count)
        return listen.Heard.silence(count)

    monkeypatch.setattr(listener, "_hear", hear)
    one = np.zeros(AUDIO_RATE, np.float32)
    other = np.full(AUDIO_RATE, 0.1, np.float32)
    first = listener.hear(one, 25.0, 25)
    assert listener.hear(one.copy(), 25.0, 25) is first  # same content: remembered
    listener.hear(one, 30.0, 30)  # another frame rate: heard again
    listener.hear(other, 25.0, 25)  # evicts the oldest (one @ 25)
    listener.hear(one, 25.0, 25)
    assert calls == [25, 30, 25, 25]


def test_a_50_fps_video_hears_at_the_planning_rate() -> None:
    """At 50 fps each pair of frames hears what one 25 fps frame hears (the models' time
    scale: +-160 ms of context, 40 ms a row); the hearing worker, sent a voice mask found
    beside it, hears what is heard inside, voice edges within a planned frame included."""
    assert [af.plan_step(f) for f in (23.976, 25, 30, 48, 50, 59.94, 120)] == [1, 1, 1, 2, 2, 2, 5]
    t = np.arange(int(AUDIO_RATE * 2.0)) / AUDIO_RATE
    voiced = (np.sin(2 * np.pi * 3 * t) > 0).astype(np.float32)
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * voiced).astype(np.float32)

    def spans(audio: np.ndarray, fps: float, count: int, level: np.ndarray) -> np.ndarray:
        centre = (np.arange(count) + 0.5) / fps  # voice edges that fall inside planned frames
        return ((centre >= 0.13) & (centre <= 0.61)) | ((centre >= 0.83) & (centre <= 1.45))

    listener = listen.Listener(remember=0)
    listener.voice.speech_mask = spans  # type: ignore[method-assign]
    slow = listener.hear(audio, 25.0, 50)
    fast = listener.hear(audio, 50.0, 100)
    assert slow.speech.sum() > 20
    for name in listen.HEARD_FIELDS:
        a, b = getattr(slow, name), getattr(fast, name)
        np.testing.assert_array_equal(b[::2], a)
        np.testing.assert_array_equal(b[1::2], a)
    given = listener.hear(audio, 50.0, 100, speech=listener.speech_mask(audio, 50.0, 100))
    for name in listen.HEARD_FIELDS:
        np.testing.assert_array_equal(getattr(given, name), getattr(fast, name))
    mask = np.zeros(101, bool)
    mask[[3, 40, 41, 100]] = True
    odd = listener.hear(audio, 50.0, 101, speech=mask)
    assert odd.features.shape == (101, listen.FEATURE_DIM)
    assert np.flatnonzero(odd.speech).tolist() == [2, 3, 40, 41, 100]


def test_a_12_fps_video_hears_at_twice_its_rate() -> None:
    """A slow video is heard at a multiple of its rate (the models' 40 ms rows and +-160 ms of
    context), each frame taking the row its time starts; a voice mask given with the audio
    gives the same answer as one found inside."""
    assert [af.hearing_steps(f) for f in (5, 10, 12.5, 15, 16.6, 17, 24, 60)] == \
        [5, 2, 2, 2, 2, 1, 1, 1]
    t = np.arange(int(AUDIO_RATE * 2.0)) / AUDIO_RATE
    voiced = (np.sin(2 * np.pi * 3 * t) > 0).astype(np.float32)
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * voiced).astype(np.float32)

    def spans(audio: np.ndarray, fps: float, count: int, level: np.ndarray) -> np.ndarray:
        centre = (np.arange(count) + 0.5) / fps
        return ((centre >= 0.13) & (centre <= 0.61)) | ((centre >= 0.83) & (centre <= 1.45))

    listener = listen.Listener(remember=0)
    listener.voice.speech_mask = spans  # type: ignore[method-assign]
    slow = listener.hear(audio, 12.5, 25)
    mask = listener.speech_mask(audio, 12.5, 25)
    assert slow.speech.tolist() == mask.tolist() and mask.sum() > 5
    twice = listener.hear(audio, 25.0, 50, speech=np.repeat(mask, 2))
    for name in listen.HEARD_FIELDS:
        np.testing.assert_array_equal(getattr(slow, name), getattr(twice, name)[::2])
    given = listener.hear(audio, 12.5, 25, speech=mask)
    for name in listen.HEARD_FIELDS:
        np.testing.assert_array_equal(getattr(given, name), getattr(slow, name))
