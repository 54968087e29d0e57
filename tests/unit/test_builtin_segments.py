"""A large template's faces found in segments at once (engines.builtin.segments, driven as the
analysis drives it): with fake trackers whose answers depend on what they followed before, the
landmarks, bridged gaps, crop origins and crops must equal one analyzer's pass in order,
whatever each boundary turns out to be, and the frame pass's tap gets every wanted frame once."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from heygemd.cache import AnalysisCache
from heygemd.engines.builtin.analysis import (
    MIN_SEGMENT_FRAMES,
    _CropBank,
    _face_arrays,
    _Found,
    _in_order,
    _in_segments,
    segment_starts,
)
from heygemd.engines.builtin.segments import Handover, Segment
from heygemd.media.tap import FrameTap

PERIOD = 10  # the fake tracker re-detects every PERIOD frames, as FaceAnalyzer does
# a frame's kind: a face; none; one the detector misses; one only a tracker whose count of
# frames since its detection is odd keeps (and the count stays odd; others lose it: history
# decides)
FACE, NONE, HIDDEN, FLAKY = 0, 1, 2, 3
SIZE = 200
FPS = 25.0  # gaps of up to 3 frames are bridged
BASE = np.random.default_rng(7).uniform(60, 140, (478, 3)).astype(np.float32)


class Tracker:
    """A fake tracking analyzer. A detection answers a face placed by the frame's own number;
    between detections it answers the face followed, moved on by one step (history: a fresh
    start gives another answer); where the detector misses (HIDDEN) while following, it keeps
    following. Frames without a face lose it (a fresh, empty answer)."""

    def __init__(self) -> None:
        self.place: float | None = None
        self.since = 0
        self.was_fresh = True
        self.closed = False

    def analyze(self, frame: np.ndarray, index: int) -> list[Any]:
        kind, number = int(frame[0, 0, 0]), float(frame[0, 0, 1])
        following = self.place is not None
        if kind == FLAKY and following and self.since % 2 == 1:
            self.place, self.since, self.was_fresh = self.place + 0.25, self.since + 2, False
            return [self._face()]
        if kind in (NONE, FLAKY):
            self.place, self.since, self.was_fresh = None, 0, True
            return []
        if following and self.since < PERIOD:
            self.place, self.since, self.was_fresh = self.place + 0.25, self.since + 1, False
        elif following and kind == HIDDEN:
            self.place, self.since, self.was_fresh = self.place + 0.25, 1, False
        else:
            self.place, self.since, self.was_fresh = number / 4, 1, True
        return [self._face()]

    def _face(self) -> Any:
        assert self.place is not None
        points = BASE + np.array([self.place, self.place / 2, 0], np.float32)
        return SimpleNamespace(landmarks=points, yaw=0.0, pitch=0.0, roll=0.0)

    def reset(self) -> None:
        self.place, self.since = None, 0

    def close(self) -> None:
        self.closed = True


def _frames(kinds: list[int]) -> list[np.ndarray]:
    """Frames whose pixels differ from frame to frame (crops tell them apart), each carrying
    its kind and number in its first pixel."""
    out = []
    for index, kind in enumerate(kinds):
        frame = np.full((SIZE, SIZE, 3), index % 200, np.uint8)
        frame[:, :, 2] = np.arange(SIZE, dtype=np.uint8)[None, :]
        frame[0, 0, :2] = (kind, index % 256)
        out.append(frame)
    return out


def _decoded(frames: list[np.ndarray], handover: Handover | None, tap: FrameTap | None = None,
             slow: range = range(0)) -> Generator[tuple[int, np.ndarray, np.ndarray], None, None]:
    """The analysis's own decode (analysis._decoded): each frame offered to ``tap`` first;
    the frames of ``slow`` take a while (the workers run ahead meanwhile)."""
    for index, frame in enumerate(frames):
        if index in slow:
            time.sleep(0.02)
        if tap is not None:
            tap.offer(index, frame)
        yield index, frame, frame
    if handover is not None:
        handover.decoded_to_end = True


def _found(root: Path, frames: list[np.ndarray]) -> _Found:
    found = _Found(AnalysisCache(root), "key", len(frames), SIZE, SIZE, 1.0, FPS)
    found.fetch = lambda index: frames[index]
    return found


def _serial(root: Path, kinds: list[int]) -> _Found:
    frames = _frames(kinds)
    found = _found(root, frames)
    _in_order(_decoded(frames, None), Tracker(), found, len(frames), False, lambda f: None)
    found.close()
    return found


def _segmented(root: Path, kinds: list[int], starts: list[int], wanted: list[int] = (),
               cut: int | None = None, slow: range = range(0), fail: set[int] | None = None,
               ) -> tuple[_Found, list[Tracker], list, list[int], bool]:
    """The segmented analysis of ``kinds``; its workers' trackers; the log; the frames the
    tap handed (``wanted`` asked by a consumer thread) and whether it closed finished.
    ``cut``: the workers' decodes end there; ``slow``: frames the analysis's own decode takes
    a while over; ``fail``: starts whose first worker's decode fails (once each)."""
    frames = _frames(kinds)
    found = _found(root, frames)
    trackers: list[Tracker] = []
    tap = FrameTap()
    taken: list[int] = []
    consumer = threading.Thread(target=lambda: taken.extend(
        i for i, _ in tap.take(list(wanted), lambda: None)))
    consumer.start()

    def spawn() -> Tracker:
        trackers.append(Tracker())
        return trackers[-1]

    def frames_from(start: int) -> Iterator[tuple[int, np.ndarray]]:
        for index in range(start, len(frames) if cut is None else cut):
            if fail is not None and start in fail and index == start + 5:
                fail.discard(start)
                raise ValueError("damaged")
            yield index, frames[index]

    def make(start: int) -> Segment:
        return Segment(start, frozenset(starts[1:]), spawn, frames_from, lambda f: f,
                       lambda faces: _face_arrays(faces, 1.0),
                       lambda i, frame, points: found.crops.store(i, frame, points),
                       3, tap.offer)

    handover = Handover(lambda: found.crops is not None)
    try:
        with capture_logs() as logs:
            _in_segments(_decoded(frames, handover, tap, slow), Tracker(), found, len(frames),
                         lambda f: None, starts, make, handover, tap)
            found.close()
    finally:
        tap.close()  # as analyse_template does however the analysis ends
        consumer.join(5)
        tap.stop()
    return found, trackers, logs, taken, tap.finished


def _assert_same(serial: _Found, segmented: _Found) -> None:
    np.testing.assert_array_equal(np.stack(serial.landmarks), np.stack(segmented.landmarks))
    np.testing.assert_array_equal(np.stack(serial.poses), np.stack(segmented.poses))
    assert serial.bridged == segmented.bridged
    np.testing.assert_array_equal(np.stack(serial.origins), np.stack(segmented.origins))
    assert serial.crops is not None and segmented.crops is not None
    np.testing.assert_array_equal(_rows(serial.crops.entry), _rows(segmented.crops.entry))


def _taken(logs: list) -> list[int]:
    [entry] = [e for e in logs if e["event"] == "template.segments"]
    return entry["taken"]


def _kinds(n: int, **at: int) -> list[int]:
    kinds = [FACE] * n
    for key, kind in at.items():
        kinds[int(key[1:])] = kind
    return kinds


def test_segments_start_on_the_redetection_period_one_per_core_and_long_enough() -> None:
    assert segment_starts(502, 1) == [0]
    assert segment_starts(502, 2) == [0, 250]
    assert segment_starts(502, 4) == [0, 130, 250, 380]
    assert segment_starts(MIN_SEGMENT_FRAMES * 2 - 1, 16) == [0]  # too short for two
    assert len(segment_starts(100_000, 64)) == 8  # MAX_SEGMENTS


def test_segments_start_at_keyframes_where_they_are_known() -> None:
    """th10's keyframes (0, 250, 500 of 502 frames): however many cores, the one start that
    decodes nothing before it; keyframes every 12 frames: the period's multiple after the one
    nearest each equal split."""
    assert segment_starts(502, 5, [0, 250, 500]) == [0, 250]
    assert segment_starts(502, 2, [0]) == [0]  # one keyframe: a second segment would decode
    assert segment_starts(400, 4, list(range(0, 400, 12))) == [0, 100, 200, 300]
    assert segment_starts(400, 3, list(range(0, 400, 12))) == [0, 140, 270]


def test_fresh_boundaries_hand_over_and_everything_equals_one_pass(tmp_path: Path) -> None:
    """Gaps inside segments (bridged by the worker) and one across a boundary (bridged here,
    its frames decoded again): all as in one pass; every wanted frame reaches the tap once."""
    kinds = [FACE] * 160
    # each gap ends on a frame before a multiple of the period (the trackers' detections stay
    # in step with the starts); the last one is too long to bridge
    for i in (18, 19, 59, 67, 68, 69, 118, 119, 120, 121, 122):
        kinds[i] = NONE
    kinds[78] = kinds[79] = kinds[80] = NONE  # around the start at 80: bridged here
    wanted = [0, 33, 79, 80, 81, 120, 159]
    found, trackers, logs, handed, finished = _segmented(tmp_path / "s", kinds, [0, 40, 80, 120],
                                                         wanted)
    _assert_same(_serial(tmp_path / "one", kinds), found)
    assert found.bridged[78] and found.bridged[80] and found.bridged[68]
    assert not found.bridged[120]
    assert _taken(logs) == [40, 80, 120]
    assert sorted(handed) == wanted and finished
    assert len(trackers) == 3 and all(t.closed for t in trackers)


def test_a_boundary_where_the_tracker_only_followed_is_not_handed_over(tmp_path: Path) -> None:
    """At frame 80 the detector misses the face followed: the worker answering goes on through
    the next segment (the one starting there is stopped, its crops undone); 120 is handed over."""
    kinds = _kinds(160, f80=HIDDEN, f118=NONE, f119=NONE)
    found, trackers, logs, handed, finished = _segmented(tmp_path / "s", kinds, [0, 40, 80, 120],
                                                         [0, 90, 159])
    _assert_same(_serial(tmp_path / "one", kinds), found)
    assert _taken(logs) == [40, 120]
    assert sorted(handed) == [0, 90, 159] and finished


def test_the_first_segment_not_fresh_at_its_end_goes_on_itself(tmp_path: Path) -> None:
    kinds = _kinds(120, f40=HIDDEN, f79=NONE)
    found, _, logs, _, finished = _segmented(tmp_path / "s", kinds, [0, 40, 80])
    _assert_same(_serial(tmp_path / "one", kinds), found)
    assert _taken(logs) == [80] and finished


def test_a_stopped_worker_to_answer_after_all_is_made_again() -> None:
    """A worker stopped by one that was not to answer (it ran ahead, not fresh at the next
    start) must not answer with the few frames it found: a new one starts there instead."""
    from heygemd.engines.builtin.segments import _begun

    frames = _frames([FACE] * 50)

    def make(start: int) -> Segment:
        return Segment(start, frozenset([20]), Tracker,
                       lambda s: ((i, frames[i]) for i in range(s, 50)), lambda f: f,
                       lambda faces: _face_arrays(faces, 1.0), lambda *a: None, 3)

    stopped = make(20)
    stopped.begin(None)
    stopped.stop()
    made: list[Segment] = [stopped]
    again = _begun(stopped, make, made)
    assert again is not stopped and made == [stopped, again] and again.start == 20
    assert again.answer(49) is not None and again.answer(50) is None  # all its frames
    again.stop()
    running = make(20)
    running.begin(None)
    assert _begun(running, make, made) is running
    running.stop()


def test_the_analysis_ends_where_the_answering_workers_decode_ends(tmp_path: Path) -> None:
    """A worker's decode ending is the file's end as it sees it: the analysis ends there."""
    kinds = [FACE] * 120
    found, _, _, _, _ = _segmented(tmp_path / "s", kinds, [0, 40, 80], cut=100)
    assert len(found.landmarks) == 100


def test_a_stopped_workers_crops_go_where_the_one_answering_finds_no_face(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The analysis here is not fresh at 40 (its detections moved to 37 after a lost face):
    the worker from 40, run ahead meanwhile, is stopped, having found a face in 41-45 (FLAKY:
    its count since its detection is odd there) where the analysis here (even) finds none, a
    gap too long to bridge; the crops it cut there are cleared, as in one pass."""
    cleared: list[int] = []
    clear = _CropBank.clear

    def spy(self: _CropBank, index: int) -> None:
        if self.entry.row(index).any():
            cleared.append(index)
        clear(self, index)

    monkeypatch.setattr(_CropBank, "clear", spy)
    kinds = _kinds(120, f36=NONE, f41=FLAKY, f42=FLAKY, f43=FLAKY, f44=FLAKY, f45=FLAKY)
    found, _, logs, _, _ = _segmented(tmp_path / "s", kinds, [0, 40, 80], slow=range(30, 41))
    _assert_same(_serial(tmp_path / "one", kinds), found)
    assert 40 not in _taken(logs) and cleared == [41, 42, 43, 44, 45]


def test_a_failed_worker_is_made_again_from_its_start_and_answers_the_same(
    tmp_path: Path,
) -> None:
    kinds = _kinds(160, f18=NONE, f19=NONE, f69=NONE)
    found, trackers, logs, _, finished = _segmented(tmp_path / "s", kinds, [0, 40, 80, 120],
                                                    fail={40, 120})
    _assert_same(_serial(tmp_path / "one", kinds), found)
    assert _taken(logs) == [40, 80, 120] and finished
    assert [e["start"] for e in logs if e["event"] == "template.segment_failed"] == [40, 120]
    assert len(trackers) == 5 and all(t.closed for t in trackers)


def test_a_worker_failing_again_raises(tmp_path: Path) -> None:
    kinds = [FACE] * 120
    frames = _frames(kinds)
    found = _found(tmp_path, frames)

    def broken(start: int) -> Iterator[tuple[int, np.ndarray]]:
        yield start, frames[start]
        raise ValueError("damaged")

    def make(start: int) -> Segment:
        return Segment(start, frozenset([40, 80]), Tracker, broken, lambda f: f,
                       lambda faces: _face_arrays(faces, 1.0),
                       lambda i, frame, points: found.crops.store(i, frame, points), 3)

    handover = Handover(lambda: found.crops is not None)
    with pytest.raises(ValueError, match="damaged"):
        _in_segments(_decoded(frames, handover), Tracker(), found, len(frames), lambda f: None,
                     [0, 40, 80], make, handover, None)


def test_the_first_frame_without_a_face_keeps_the_analysis_in_one_pass(tmp_path: Path) -> None:
    """The crops' size comes from the first face: without one in frame 0, no worker starts."""
    kinds = _kinds(120, f0=NONE)
    found, trackers, logs, _, finished = _segmented(tmp_path / "s", kinds, [0, 40, 80])
    _assert_same(_serial(tmp_path / "one", kinds), found)
    assert trackers == [] and _taken(logs) == [] and finished


def test_an_analysis_stopped_midway_stops_every_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the analysis raises while taking frame 60 (a job interrupted) ends it there: no
    segment thread is left, every analyzer is closed."""
    from heygemd.errors import JobInterrupted

    take = _Found.take

    def interrupted(self: _Found, index: int, *args: Any) -> None:
        if index == 60:
            raise JobInterrupted("stop")
        take(self, index, *args)

    monkeypatch.setattr(_Found, "take", interrupted)
    with pytest.raises(JobInterrupted):
        _segmented(tmp_path / "s", [FACE] * 160, [0, 40, 80, 120], wanted=[0, 150])
    assert not [t for t in threading.enumerate() if t.name.startswith("builtin-faces")]


def _rows(entry: Any) -> np.ndarray:
    """Every row of a crops entry still being filled."""
    return np.stack([entry.row(index) for index in range(entry.shape[0])])
