"""A template's faces found in segments at once, each segment with a decoder and a tracking
analyzer of its own, the answers equal to one analyzer's in order.

Face analysis is the serial part of a cold template analysis (one mediapipe graph, one frame
after another). A segment's worker decodes its part of the file itself, finds the faces, cuts
the crops of the frames it answers for (and of the short gaps it bridges between its own
faces), and offers its frames to the frame pass's tap; the analysis takes the answers in frame
order (:func:`segmented`) and decodes nothing past the first segment.

Why the answers are the same: what a tracker finds from a frame on depends only on that frame
and those after it when its answer there came from the frame alone (``was_fresh``: it ran the
full-frame detector there and kept what that found). A segment starts on a multiple of the
tracker's re-detection period, where a tracker that started on one re-detects too (its period
counts from its last detection: a face lost and found again elsewhere moves it); whoever
answers for the segment before it analyses that frame too. Fresh there, the next segment's
worker (which started there from nothing) answers from there on; not, that worker is stopped
(before its crops from there on can be overwritten) and the one answering goes on through
the next segment, which costs the speed, never the result. Forced into 2-4 segments, every
clip of talking/ and corpus/ (51) was handed over at every start (115) and analysed as in
one pass.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from typing import Any

import numpy as np
import structlog

from heygemd.engines.builtin.prefetch import start_worker
from heygemd.errors import ProcessingError
from heygemd.faces.bridge import GapBridge

log = structlog.get_logger(__name__)

Answer = tuple[int, list[Any], bool]  # (frame index, faces found in it, fresh)
# (index, frame or None where a worker holds it, faces, the worker that answered or None)
Merged = Generator[tuple[int, np.ndarray | None, list[Any], "Segment | None"], None, None]


class Segment:
    """The faces of a template from frame ``start`` on, found in a worker thread (:meth:`begin`)
    by an analyzer of ``spawn``'s (built there, closed after) on the frames of
    ``frames(start)`` (index, full-size frame: its own decode), each shrunk by ``shrink``.

    It answers up to and including the first later boundary where its answer came from the
    frame alone (then the next segment answers), or to the end of its frames. Where its answer
    at a boundary was not fresh, it stops the segment starting there before going on. For each
    frame it answers it cuts the crop (``write_crop(index, frame, landmarks)``) where a face was
    measured (``points_of(faces)``: landmarks or None, pose), and where a gap of at most
    ``max_gap`` frames between two of its own faces is bridged (:attr:`wrote`: those frames);
    a gap at its start or end, bridged or not by what lies beyond, is not its to cut.
    ``offer``: each frame decoded, before it is analysed (the frame pass's tap). ``limit``:
    it answers no frame from there on (the analysis's own limit).
    """

    def __init__(
        self,
        start: int,
        boundaries: frozenset[int],
        spawn: Callable[[], Any],
        frames: Callable[[int], Iterator[tuple[int, np.ndarray]]],
        shrink: Callable[[np.ndarray], np.ndarray],
        points_of: Callable[[list[Any]], tuple[np.ndarray | None, np.ndarray]],
        write_crop: Callable[[int, np.ndarray, np.ndarray], Any],
        max_gap: int,
        offer: Callable[[int, np.ndarray], None] | None = None,
        limit: int | None = None,
    ) -> None:
        self.start = start
        self.boundaries = boundaries
        self._spawn, self._frames, self._shrink = spawn, frames, shrink
        self._points_of, self._write_crop, self._offer = points_of, write_crop, offer
        self._max_gap, self._limit = max_gap, limit
        self.wrote: set[int] = set()  # bridged frames whose crop this worker cut
        self.last = start - 1  # the last frame whose crop it may have cut
        self.reached_end = False  # its decode ended at the end of the file
        self._answers: deque[Answer] = deque()  # from frame _first on: those not yet asked
        self._first = start
        self._changed = threading.Condition()
        self._ended = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._successor: Segment | None = None
        self._thread: threading.Thread | None = None

    def begin(self, successor: Segment | None) -> None:
        """Start the worker; ``successor``: the segment starting at the next boundary."""
        self._successor = successor
        self._thread = start_worker(self._run, "builtin-faces")

    def _run(self) -> None:
        analyzer = None
        try:
            analyzer = self._spawn()
            self._answer_all(analyzer)
        except BaseException as err:  # noqa: BLE001 - raised where its answers are wanted
            self._error = err
        finally:
            try:
                if analyzer is not None:
                    analyzer.close()
            finally:
                with self._changed:
                    self._ended = True
                    self._changed.notify_all()

    def _answer_all(self, analyzer: Any) -> None:
        bridge = GapBridge(self._max_gap)
        gap: deque[tuple[int, np.ndarray]] = deque()  # frames the bridge holds
        expected = self.start
        frames = self._frames(self.start)
        with closing(frames):  # type: ignore[type-var]  # its decoder closes here
            for index, frame in frames:
                if self._stop.is_set() or (self._limit is not None and index >= self._limit):
                    return
                if index != expected:
                    raise ProcessingError(f"a segment from frame {self.start} decoded frame "
                                          f"{index} where {expected} was due")
                expected += 1
                if self._offer is not None:
                    self._offer(index, frame)
                faces = analyzer.analyze(self._shrink(frame), index)
                fresh = bool(analyzer.was_fresh)
                successor = self._successor
                ends = index > self.start and index in self.boundaries
                if ends and not fresh and successor is not None and successor.start == index:
                    # the faces it found from here on are not the ones followed here: it stops
                    # before this worker cuts crops where it may have cut them
                    successor.stop()
                    self._successor = successor._successor
                points, pose = self._points_of(faces)
                gap.append((index, frame))
                for filled in bridge.push(points, pose):
                    at, held = gap.popleft()
                    if filled.landmarks is not None:
                        self._write_crop(at, held, filled.landmarks)
                        if filled.bridged:
                            self.wrote.add(at)
                self.last = index
                with self._changed:
                    self._answers.append((index, faces, fresh))
                    self._changed.notify_all()
                if ends and fresh:
                    return
        self.reached_end = True

    @property
    def stopped(self) -> bool:
        """Whether it was told to stop (its answers may end anywhere)."""
        return self._stop.is_set()

    def answer(self, index: int) -> Answer | None:
        """The answer for frame ``index`` once found (asked in order: the answers before it
        are let go); None when the worker ended before it; the worker's error raised there."""
        with self._changed:
            self._changed.wait_for(lambda: self._first + len(self._answers) > index
                                   or self._ended)
            while self._answers and self._first < index:
                self._answers.popleft()
                self._first += 1
            if self._answers and self._first == index:
                return self._answers[0]
            if self._error is not None:
                raise self._error
            return None

    def stop(self) -> None:
        """Stop the worker (after its current frame) and wait for it; its answers go.
        Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._changed:
            self._answers.clear()


def segmented(
    frames: Generator[tuple[int, np.ndarray, np.ndarray], None, None],
    analyzer: Any,
    starts: list[int],
    make: Callable[[int], Segment],
    state: Handover,
) -> Merged:
    """The faces of every frame of a template in order: ``frames`` (index, frame, shrunk: the
    analysis's own decode) through ``analyzer`` here; once the first frame has been taken, a
    worker (``make(start)``, not yet begun) for each later start of ``starts``, answering from
    there as the module explains (none where ``state.ready()`` says no after the first frame).
    Frames past the first hand-over are not decoded here (``frames`` is closed there): they
    come as None with the worker that answered for them. The workers made are in
    ``state.made``; ``state.finished`` ends True when the frames answered for reached the end
    of the file."""
    workers: dict[int, Segment] = {}
    owner: Segment | None = None  # None: ``analyzer`` answers, here
    taken: list[int] = []
    made = state.made
    try:
        index = -1
        for index, frame, small in frames:
            faces = analyzer.analyze(small, index)
            following = workers.pop(index, None)
            if following is not None and analyzer.was_fresh:
                owner = _begun(following, make, made)
                taken.append(index)
                break
            if following is not None:
                following.stop()  # before the crops from here on are cut here
            yield index, frame, faces, None
            if index == 0 and state.ready():
                made += [make(start) for start in starts[1:]]
                for segment, successor in zip(made, [*made[1:], None], strict=True):
                    segment.begin(successor)
                workers = {segment.start: segment for segment in made}
        else:
            state.finished = state.decoded_to_end
        frames.close()
        again: set[int] = set()  # the starts whose worker failed and was made again
        while owner is not None:
            try:
                answer = owner.answer(index)
            except Exception as err:
                if owner.start in again:
                    raise
                # a fresh worker from the same start answers as the failed one would have
                log.warning("template.segment_failed", start=owner.start, frame=index,
                            error=f"{type(err).__name__}: {err}")
                again.add(owner.start)
                owner = _made_again(owner, make, made)
                continue
            if answer is None:  # its frames ended: the file's end (or the analysis's limit)
                state.finished = owner.reached_end
                return
            _, faces, fresh = answer
            following = workers.pop(index, None) if index > owner.start else None
            yield index, None, faces, owner
            if following is not None and fresh:
                # the next worker's answer at its own start equals this one's
                owner = _begun(following, make, made)
                taken.append(index)
            elif following is not None:
                following.stop()  # the owner stopped it too, before cutting from here on
            index += 1
    finally:
        for worker in made:
            worker.stop()
        log.debug("template.segments", starts=starts, taken=taken)


def _begun(segment: Segment, make: Callable[[int], Segment], made: list[Segment]) -> Segment:
    """``segment``, or where a worker that was not to answer after all stopped it, a new one
    from the same start."""
    if not segment.stopped:
        return segment
    log.debug("template.segment_again", start=segment.start)
    return _made_again(segment, make, made)


def _made_again(segment: Segment, make: Callable[[int], Segment],
                made: list[Segment]) -> Segment:
    """A new worker from ``segment``'s start (begun, its successor the old one's)."""
    segment.stop()
    again = make(segment.start)
    again.begin(segment._successor)
    made.append(again)
    return again


class Handover:
    """What :func:`segmented` shares with the analysis around it: ``ready()``, whether workers
    may start (their crops have somewhere to go); ``made``, the workers made; whether the
    analysis's own decode reached the end of the file (``decoded_to_end``, set by it) and
    whether the frames answered for did (``finished``)."""

    def __init__(self, ready: Callable[[], bool]) -> None:
        self.ready = ready
        self.made: list[Segment] = []
        self.decoded_to_end = False
        self.finished = False

    def stale(self, index: int) -> bool:
        """Whether a worker that was stopped may have cut frame ``index``'s crop (a frame then
        found without a face must have it cleared)."""
        return any(w.stopped and w.start <= index <= w.last for w in self.made)
