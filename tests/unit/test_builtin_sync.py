"""sync.py: a template's own sound out of step with its picture, found and moved into step."""

from __future__ import annotations

import numpy as np

from heygemd.engines.builtin import sync

N = 400  # frames: 16 s at 25 fps


def _mouth(seed: int = 0) -> np.ndarray:
    """A talking mouth: an opening per syllable (4 frames), smoothed over 3 frames."""
    rng = np.random.default_rng(seed)
    syllables = np.repeat(rng.uniform(0.0, 1.0, N // 4 + 1), 4)[:N]
    return np.convolve(syllables, np.ones(3) / 3, mode="same")


def _heard(opening: np.ndarray, late: int, seed: int = 1) -> np.ndarray:
    """The model's mouth for a sound ``late`` frames late: frame t hears what went with the
    mouth at t - late (the first frames repeat), plus noise."""
    source = np.clip(np.arange(len(opening)) - late, 0, len(opening) - 1)
    noise = np.random.default_rng(seed).normal(0.0, 0.3, len(opening))
    return opening[source] + noise


def _find(late: int, fps: float = 25.0) -> sync.TemplateSync:
    opening = _mouth()
    return sync.find_offset(_heard(opening, late), opening, np.ones(N, bool), np.ones(N, bool),
                            fps)


def test_a_late_sound_is_found_and_allowed_for() -> None:
    found = _find(6)
    assert found.frames == 6 and found.ms(25.0) == 240.0 and found.corrected
    assert found.r_at_offset > found.r_in_step + 0.5
    early = _find(-5)
    assert early.frames == -5 and early.corrected


def test_a_sound_beyond_the_search_is_found_at_its_end_and_says_so() -> None:
    """10 frames late (400 ms) where 8 (320 ms) are looked for: the best lag is the last one
    looked at, flagged, so the person is told it may be further out."""
    beyond = _find(10)
    assert beyond.frames == 8 and beyond.at_limit
    assert not _find(6).at_limit and _find(-8).at_limit


def test_a_small_offset_is_left_alone() -> None:
    # 80 ms: within the scatter of ordinary footage around the model's timing
    found = _find(2)
    assert found.frames == 2 and not found.corrected
    in_step = _find(0)
    assert in_step.frames == 0 and not in_step.corrected


def test_the_least_offset_allowed_for_is_in_milliseconds() -> None:
    # 4 frames: 160 ms at 25 fps, 133 ms at 30 fps
    assert _find(4, fps=25.0).corrected
    assert _find(4, fps=30.0).frames == 4 and not _find(4, fps=30.0).corrected


def test_an_offset_the_two_halves_do_not_share_is_left_alone() -> None:
    opening = _mouth()
    half = N // 2
    heard = np.concatenate([_heard(opening, 6)[:half], _heard(opening, -6)[half:]])
    found = sync.find_offset(heard, opening, np.ones(N, bool), np.ones(N, bool), 25.0)
    assert abs(found.frames) == 6 and not found.corrected


def test_only_speech_and_measured_mouths_count() -> None:
    opening = _mouth()
    heard = _heard(opening, 6)
    speech = np.ones(N, bool)
    seen = np.ones(N, bool)
    seen[::2] = False  # every other mouth unmeasured (NaN): still found
    unmeasured = np.where(seen, opening, np.nan)
    found = sync.find_offset(heard, unmeasured, speech, seen, 25.0)
    # as well matched as with every mouth measured (0.69), not pulled down by the gaps (0.34)
    assert found.frames == 6 and found.r_at_offset > 0.6
    # a late sound's speech is late too: what is heard as silence at t + lag is not paired
    # with the mouth at t, even where a predicted mouth is wildly off there
    silent = np.arange(N) % 10 < 3
    wild = np.where(silent, 5.0, heard)
    found = sync.find_offset(wild, opening, ~silent, np.ones(N, bool), 25.0)
    assert found.frames == 6 and found.corrected
    # too little speech to tell: nothing found, nothing allowed for
    speech[:] = False
    speech[:5] = True
    assert sync.find_offset(heard, opening, speech, seen, 25.0) == sync.NOT_FOUND


def test_in_step_moves_the_sound_and_its_speech() -> None:
    features = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    speech = np.ones(10, bool)
    moved, heard = sync.in_step(features, speech, 3)
    assert moved[:7, 0].tolist() == [3, 4, 5, 6, 7, 8, 9] and not heard[7:].any()
    moved, heard = sync.in_step(features, speech, -2)
    assert moved[2:, 0].tolist() == list(range(8)) and not heard[:2].any() and heard[2:].all()


def test_an_offset_barely_better_than_none_is_left_alone() -> None:
    # a mouth that repeats every 6 frames matches its sound in step almost as well as 6 frames
    # off: the lag found is not worth moving the sound for
    beat = np.tile([0.0, 0.4, 1.0, 1.0, 0.4, 0.0], N // 6 + 1)[:N]
    opening = beat + 0.15 * _mouth()
    found = sync.find_offset(_heard(opening, 6, seed=2), opening,
                             np.ones(N, bool), np.ones(N, bool), 25.0)
    assert found.frames == 6 and found.r_at_offset - found.r_in_step < sync.MIN_GAIN
    assert not found.corrected


def test_the_least_offset_allowed_for_is_150_ms_exactly() -> None:
    # at 20 fps three frames are 150 ms: allowed for; two (100 ms) are not
    assert _find(3, fps=20.0).corrected and not _find(2, fps=20.0).corrected


def test_halves_agree_within_two_frames() -> None:
    opening = _mouth()
    half = N // 2
    # halves late by 8 and 4 frames: the whole finds 6, each half 2 away: allowed for
    # halves late by 7 and 3: the whole finds 4, the first half 3 away: left alone
    for first, second, whole, allowed in ((-8, -4, -6, True), (-7, -3, -4, False)):
        heard = np.concatenate([_heard(opening, first)[:half], _heard(opening, second)[half:]])
        found = sync.find_offset(heard, opening, np.ones(N, bool), np.ones(N, bool), 25.0)
        assert found.frames == whole and found.corrected is allowed, (first, second)


def test_a_template_that_talks_then_listens_is_split_by_its_speech() -> None:
    # speech in the first 55% of the frames only: both halves of the speech are in there
    opening = _mouth()
    speech = np.arange(N) < int(N * 0.55)
    found = sync.find_offset(_heard(opening, 6), opening, speech, np.ones(N, bool), 25.0)
    assert found.frames == 6 and found.corrected


def test_a_clear_offset_is_allowed_for_whatever_its_gain() -> None:
    # a large gain: the gain rule is a floor, never a ceiling
    found = _find(8)
    assert found.r_at_offset - found.r_in_step > 0.3 and found.corrected


def test_allowed_for_moves_the_sound_only_when_corrected() -> None:
    opening = _mouth()
    features = np.arange(N, dtype=np.float32)[:, None]
    speech = np.ones(N, bool)
    found, moved, heard = sync.allowed_for(_heard(opening, 6), features, speech, opening,
                                           np.ones(N, bool), 25.0)
    assert found.corrected and moved[0, 0] == 6.0 and not heard[-6:].any()
    found, moved, heard = sync.allowed_for(_heard(opening, 2), features, speech, opening,
                                           np.ones(N, bool), 25.0)
    assert not found.corrected and moved is features and heard is speech
