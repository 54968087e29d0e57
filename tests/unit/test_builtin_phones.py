"""Phones -> visemes (speaker-independent mouth prior)."""

from __future__ import annotations

import numpy as np

from heygemd.contract import AUDIO_RATE
from heygemd.engines.builtin import decoders, phones


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


def _speech(pauses: list[tuple[float, float]], seconds: float, fps: float = 25.0) -> np.ndarray:
    """bool per video frame: speech everywhere but in ``pauses`` ((start, end) seconds)."""
    t = np.arange(int(seconds * fps)) / fps
    quiet = np.zeros(len(t), bool)
    for start, end in pauses:
        quiet |= (t >= start) & (t < end)
    return ~quiet


def test_a_long_track_is_cut_in_the_middle_of_its_pauses() -> None:
    # pauses at 5 s (too soon after the start), 20 s, 30 s (too soon after the cut at 20 s),
    # 36 s, and 52 s (too near the end of the 58 s track)
    pauses = [(5.0, 5.4), (20.0, 20.6), (30.0, 30.4), (36.0, 36.4), (52.0, 52.4)]
    cuts = phones.piece_cuts(_speech(pauses, 58.0), 25.0, 58 * AUDIO_RATE)
    assert [c / AUDIO_RATE for c in cuts] == [20.3, 36.2]
    assert all(c % phones.PHONE_HOP == 0 for c in cuts)


def test_the_cutting_rules_hold_at_their_limits() -> None:
    # a pause whose middle is exactly 15 s from the start, leaving exactly 7.5 s: cut there
    speech = _speech([(14.88, 15.12)], 22.5)
    assert phones.piece_cuts(speech, 25.0, int(22.5 * AUDIO_RATE)) == [15 * AUDIO_RATE]
    # leaving a little less, or with its middle a little less than 15 s in: not cut
    assert phones.piece_cuts(speech, 25.0, int(22.49 * AUDIO_RATE)) == []
    assert phones.piece_cuts(_speech([(14.8, 15.0)], 23.0), 25.0, 23 * AUDIO_RATE) == []
    # a pause of exactly 0.2 s (5 frames) is cut in, one of 0.16 s (4 frames) is not
    assert phones.piece_cuts(_speech([(20.0, 20.2)], 40.0), 25.0, 40 * AUDIO_RATE) == \
        [int(20.1 * AUDIO_RATE)]
    assert phones.piece_cuts(_speech([(20.0, 20.16)], 40.0), 25.0, 40 * AUDIO_RATE) == []


def test_short_tracks_and_short_pauses_are_not_cut() -> None:
    assert phones.piece_cuts(_speech([(10.0, 10.4)], 20.0), 25.0, 20 * AUDIO_RATE) == []
    # a pause of 0.12 s (3 frames) is a gap between words, not a place to cut
    assert phones.piece_cuts(_speech([(20.0, 20.12)], 40.0), 25.0, 40 * AUDIO_RATE) == []
    # no pause at all: one piece however long
    assert phones.piece_cuts(np.ones(25 * 60, bool), 25.0, 60 * AUDIO_RATE) == []


def test_pieces_are_placed_where_they_lie_in_the_track() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(AUDIO_RATE) / AUDIO_RATE
    burst = (0.3 * np.sin(2 * np.pi * 180 * t) * rng.uniform(0.5, 1.0, len(t))).astype(np.float32)
    track = np.concatenate([burst, np.zeros(AUDIO_RATE // 2, np.float32), burst])
    recognizer = phones.PhoneRecognizer()
    recognizer.load()
    cut = int(1.25 * AUDIO_RATE)
    pieces = recognizer.segments(track, [cut])
    # each piece as pocketsphinx itself places it (frames from its own start), moved by hand
    pcm = (np.clip(track, -1.0, 1.0) * 32767).astype(np.int16)
    first = decoders.decode(recognizer._options, pcm[:cut].tobytes())  # type: ignore[arg-type]
    second = decoders.decode(recognizer._options, pcm[cut:].tobytes())  # type: ignore[arg-type]
    assert pieces == first + [(p, s + 125, e + 125) for p, s, e in second]  # 1.25 s: frame 125


def test_phone_workers_come_with_eight_cores() -> None:
    assert [phones.phone_workers(c) for c in (1, 2, 4, 7, 8, 12, 16, 64)] == \
        [0, 0, 0, 0, 2, 3, 4, 4]
