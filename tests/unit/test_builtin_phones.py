"""Phones -> visemes (speaker-independent mouth prior)."""

from __future__ import annotations

import numpy as np

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
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    segments = rec.segments(tone)
    assert segments, "the decoder returned no segments"
    assert all(end >= start for _, start, end in segments)
    assert segments[-1][2] <= 101
