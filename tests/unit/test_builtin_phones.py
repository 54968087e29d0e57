"""Phones -> visemes (speaker-independent mouth prior)."""

from __future__ import annotations

import numpy as np

from heygemd.contract import AUDIO_RATE
from heygemd.engines.builtin import phones


def test_bilabials_are_closed_and_open_vowels_wide() -> None:
    for phone in ("B", "P", "M"):
        assert phones.viseme_opening(phone) == 0.0
    assert phones.viseme_opening("AA") == 1.0
    assert phones.viseme_opening("SIL") == 0.0
    assert 0.0 < phones.viseme_opening("S") < phones.viseme_opening("AE")


def test_phones_to_frames_places_closure_and_vowel() -> None:
    # 100 phone frames per second; video at 25 fps: 4 phone frames per video frame.
    segments = [("SIL", 0, 7), ("M", 8, 15), ("AA", 16, 31), ("SIL", 32, 39)]
    opening, closed = phones.phones_to_frames(segments, fps=25.0, count=10)
    assert closed[2:4].all() and not closed[:2].any() and not closed[4:].any()
    assert np.allclose(opening[4:8], 1.0)
    assert np.allclose(opening[:4], 0.0)


def test_recognizer_finds_phones_in_speech_like_audio() -> None:
    rec = phones.PhoneRecognizer()
    t = np.arange(AUDIO_RATE) / AUDIO_RATE
    tone = (0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    segments = rec.segments(tone)
    assert segments, "the decoder returned no segments"
    assert all(end >= start for _, start, end in segments)
    assert segments[-1][2] <= 101


def test_viseme_frames_share_each_frame_between_classes() -> None:
    # video frame 2 (phone frames 8-11) is half M, half AA; frame 0 is silence
    segments = [("SIL", 0, 7), ("M", 8, 9), ("AA", 10, 15), ("XX", 16, 19)]
    occupancy = phones.viseme_frames(segments, fps=25.0, count=6)
    assert occupancy.shape == (6, phones.N_VISEME_CLASSES)
    assert not occupancy[:2].any()  # silence has no class
    bilabial, wide = phones.VISEME_CLASS["M"], phones.VISEME_CLASS["AA"]
    assert np.allclose(occupancy[2, [bilabial, wide]], [0.5, 0.5])
    assert np.allclose(occupancy[3, wide], 1.0)
    assert np.allclose(occupancy[4, phones.OTHER_CLASS], 1.0)  # an unknown phone
    assert np.allclose(occupancy[:5].sum(axis=1), [0, 0, 1, 1, 1])
    assert not occupancy[5].any()


def test_every_viseme_opening_phone_has_a_class() -> None:
    assert set(phones.VISEME_OPENING) == set(phones.VISEME_CLASS)
    assert max(phones.VISEME_CLASS.values()) < phones.OTHER_CLASS < phones.N_VISEME_CLASSES


def test_the_same_audio_gives_the_same_phones_whatever_came_before() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(24000) / AUDIO_RATE
    voice = (0.3 * np.sin(2 * np.pi * 140 * t) * (np.sin(2 * np.pi * 4 * t) > 0)).astype(np.float32)
    noise = (0.2 * rng.standard_normal(32000)).astype(np.float32)
    rec = phones.PhoneRecognizer()
    first = rec.segments(voice)
    rec.segments(noise)  # a decoder kept across calls would adapt to this
    assert rec.segments(voice) == first


def test_a_decoder_built_ahead_gives_the_phones_of_one_built_in_the_call() -> None:
    t = np.arange(24000) / AUDIO_RATE
    voice = (0.3 * np.sin(2 * np.pi * 140 * t) * (np.sin(2 * np.pi * 4 * t) > 0)).astype(np.float32)
    rec = phones.PhoneRecognizer()
    fresh = rec.segments(voice)
    rec.make_spare()
    rec.make_spare()
    assert rec.spares == 2
    rec.segments(voice[::-1].copy())  # takes one spare; the other stays unused meanwhile
    assert rec.spares == 1
    assert rec.segments(voice) == fresh
    assert rec.spares == 0
    assert rec.segments(voice) == fresh  # none left: built in the call
