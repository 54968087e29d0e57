"""A large template's faces found in segments at once (analysis._segmented), with analyzers
whose answers depend on what they followed before, as a tracker's do: the segmented answers
must equal one analyzer's in order, whatever each boundary turns out to be."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from structlog.testing import capture_logs

from heygemd.engines.builtin.analysis import MIN_SEGMENT_FRAMES, _segmented, segment_starts

PERIOD = 10  # the fake tracker re-detects every PERIOD frames, as FaceAnalyzer does
HIDDEN = -1  # a frame where the fake detector misses the face it follows


class Tracker:
    """A fake tracking analyzer: a detection answers the frame's own value (fresh); between
    detections it answers the last answer + 1 (followed, not fresh); where the detector misses
    (HIDDEN) while following, it keeps following (not fresh)."""

    def __init__(self) -> None:
        self.last: int | None = None
        self.since = 0
        self.was_fresh = True
        self.closed = False

    def analyze(self, frame: np.ndarray, index: int) -> list[int]:
        value = int(frame[0])
        if self.last is not None and self.since < PERIOD:
            self.last, self.since, self.was_fresh = self.last + 1, self.since + 1, False
        elif value == HIDDEN and self.last is not None:
            self.last, self.since, self.was_fresh = self.last + 1, 1, False
        else:
            self.last, self.since, self.was_fresh = value, 1, True
        return [self.last]

    def reset(self) -> None:
        self.last, self.since = None, 0

    def close(self) -> None:
        self.closed = True


def _frames(values: list[int]) -> list[np.ndarray]:
    return [np.array([v]) for v in values]


def _decoded(values: list[int]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    for index, frame in enumerate(_frames(values)):
        yield index, frame, frame


def _serial(values: list[int]) -> list[list[int]]:
    tracker = Tracker()
    return [tracker.analyze(frame, i) for i, frame in enumerate(_frames(values))]


def _segmented_run(values: list[int], starts: list[int], cut: int | None = None,
                   fail_at: int | None = None) -> tuple[list[list[int]], list[Tracker], list]:
    """The answers of _segmented over ``values``; the workers' trackers; the log."""
    spawned: list[Tracker] = []

    def spawn() -> Tracker:
        spawned.append(Tracker())
        return spawned[-1]

    def frames_from(start: int) -> Iterator[tuple[int, np.ndarray]]:
        for index, frame in enumerate(_frames(values)):
            if index == fail_at:
                raise ValueError("damaged")
            if cut is not None and index >= cut:
                return
            if index >= start:
                yield index, frame

    with capture_logs() as logs:
        answers = [faces for _, _, faces in
                   _segmented(_decoded(values), Tracker(), spawn, starts, frames_from)]
    return answers, spawned, logs


def _segments_log(logs: list) -> dict:
    [entry] = [e for e in logs if e["event"] == "template.segments"]
    return entry


def test_segments_start_on_the_redetection_period_one_per_core_and_long_enough() -> None:
    assert segment_starts(502, 1) == [0]
    assert segment_starts(502, 2) == [0, 250]
    assert segment_starts(502, 4) == [0, 130, 250, 380]
    assert segment_starts(MIN_SEGMENT_FRAMES * 2 - 1, 16) == [0]  # too short for two
    assert len(segment_starts(100_000, 64)) == 8  # MAX_SEGMENTS


def test_fresh_boundaries_hand_over_and_the_answers_equal_one_pass() -> None:
    values = list(range(1000, 1400))
    starts = [0, 100, 200, 300]
    answers, spawned, logs = _segmented_run(values, starts)
    assert answers == _serial(values)
    assert _segments_log(logs)["taken"] == [100, 200, 300]
    assert len(spawned) == 3 and all(t.closed for t in spawned)


def test_a_boundary_where_the_tracker_only_followed_is_not_handed_over() -> None:
    """At frame 200 the detector misses the face followed: the one answering goes on through
    the next segment (its worker's fresh start would differ there); 300 is handed over."""
    values = list(range(1000, 1400))
    values[200] = HIDDEN
    starts = [0, 100, 200, 300]
    answers, spawned, logs = _segmented_run(values, starts)
    assert answers == _serial(values)
    assert _segments_log(logs)["taken"] == [100, 300]
    assert all(t.closed for t in spawned)


def test_the_first_segment_not_fresh_at_its_end_goes_on_itself() -> None:
    values = list(range(1000, 1300))
    values[100] = HIDDEN
    answers, _, logs = _segmented_run(values, [0, 100, 200])
    assert answers == _serial(values)
    assert _segments_log(logs)["taken"] == [200]


def test_a_worker_whose_decode_ends_early_is_dropped_and_the_rest_found_here() -> None:
    """The workers' decodes end at frame 250, the file at 300: frames 250+ are analysed here
    from a fresh start (the tracker there re-detects, as at a segment's start)."""
    values = list(range(1000, 1300))
    answers, _, logs = _segmented_run(values, [0, 100, 200], cut=250)
    assert answers[:250] == _serial(values)[:250]
    assert answers[250:] == _serial(values[250:])  # afresh: from a detection at 250
    assert [e["frame"] for e in logs if e["event"] == "template.segment_short"] == [250]


def test_a_worker_error_is_raised_where_its_answer_is_wanted() -> None:
    values = list(range(1000, 1300))
    with pytest.raises(ValueError, match="damaged"):
        _segmented_run(values, [0, 100, 200], fail_at=150)


def test_closing_early_stops_every_worker() -> None:
    values = list(range(1000, 1400))
    spawned: list[Tracker] = []

    def spawn() -> Tracker:
        spawned.append(Tracker())
        return spawned[-1]

    def frames_from(start: int) -> Iterator[tuple[int, np.ndarray]]:
        for index, frame in enumerate(_frames(values)):
            if index >= start:
                yield index, frame

    answers = _segmented(_decoded(values), Tracker(), spawn, [0, 100, 200, 300], frames_from)
    assert next(answers)[0] == 0
    answers.close()
    assert len(spawned) <= 3 and all(t.closed for t in spawned)
