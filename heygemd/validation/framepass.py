"""Validation's frame pass in a worker thread, beside the engine's planning.

The pipeline starts the frame pass (decode the sampled frames, find the faces, apply the rules:
:func:`heygemd.validation.examine.examine_frames`) in a thread, and meanwhile asks the engine
to plan the video. Nothing is encoded before the frames' verdict. Progress from both reaches
the caller's callback from the calling thread only (the daemon's callback writes its SQLite
store), and a refusal found meanwhile is raised into the engine through its progress callback
(:class:`RefusedMeanwhile`, a JobInterrupted: engines let it through) so that it stops.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable

from heygemd.contract import ProgressFn
from heygemd.errors import JobInterrupted
from heygemd.faces.hands import HandSightings
from heygemd.timing import ms_since
from heygemd.validation.examine import VideoExamination
from heygemd.validation.rules import refusals

WAIT_STEP_SECONDS = 0.25  # progress is reported this often while waiting for the frame pass


class RefusedMeanwhile(JobInterrupted):  # noqa: N818 - control flow, like JobInterrupted
    """Raised into the engine (through its progress callback) once the frame pass refused the
    video: its work is wasted, stop it."""


class FramePass:
    """``work(report)`` in a worker thread (the caller's logging context copied), its progress
    kept in ``fraction``; :meth:`stop` makes its next report raise JobInterrupted."""

    def __init__(self, work: Callable[[ProgressFn], VideoExamination]) -> None:
        self.fraction = 0.0
        self.duration_ms = 0.0
        self._result: VideoExamination | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        context = contextvars.copy_context()  # the job id bound to log lines
        self._thread = threading.Thread(target=context.run, args=(self._run, work),
                                        name="examine-frames", daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[ProgressFn], VideoExamination]) -> None:
        t0 = time.monotonic()
        try:
            self._result = work(self._report)
        except BaseException as err:  # noqa: BLE001 - handed to the waiting thread
            self._error = err
        self.duration_ms = ms_since(t0)

    def _report(self, fraction: float) -> None:
        if self._stop.is_set():
            raise JobInterrupted("the video's processing stopped")
        self.fraction = fraction

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    @property
    def refused(self) -> bool:
        return self.done and self._result is not None and bool(refusals(self._result.findings))

    def wait(self, report: Callable[[], None]) -> VideoExamination:
        """The frame pass's result (its exception raised here); ``report`` runs first and then
        every WAIT_STEP_SECONDS meanwhile, and may raise."""
        report()
        while True:
            self._thread.join(WAIT_STEP_SECONDS)
            if self.done:
                break
            report()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def stop(self) -> None:
        """Stop the frame pass (at its next progress report) and wait for the thread."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> FramePass:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Sightings:
    """The frame pass's hand sightings (examine_frames' ``seen``), handed to the engine as soon
    as its samples are known, before its rules and pictures."""

    def __init__(self) -> None:
        self._known = threading.Event()
        self._value: HandSightings | None = None

    def put(self, value: HandSightings) -> None:
        self._value = value
        self._known.set()

    def wait(self, frame_pass: FramePass, report: Callable[[], None]) -> HandSightings | None:
        """The sightings once known; None where the frame pass ended without them (a video it
        could not read, an error: its verdict tells). ``report`` runs first and then every
        WAIT_STEP_SECONDS meanwhile, and may raise; a frame pass that refused the video raises
        RefusedMeanwhile."""
        report()
        while not self._known.wait(WAIT_STEP_SECONDS) and not frame_pass.done:
            report()
        if frame_pass.refused:
            raise RefusedMeanwhile("the frame pass refused the video")
        return self._value


class Shares:
    """A video's progress from two threads' work: the frame pass (the first ``share``) and the
    engine (the rest), reported to ``progress`` from the calling thread only."""

    def __init__(self, progress: ProgressFn, frame_pass: FramePass, share: float) -> None:
        self._progress = progress
        self._frame_pass = frame_pass
        self._share = share
        self._rendered = 0.0

    def _report(self) -> None:
        examined = 1.0 if self._frame_pass.done else self._frame_pass.fraction
        self._progress(self._share * examined + (1 - self._share) * self._rendered)

    def rendering(self, fraction: float) -> None:
        """The engine's progress callback: raises RefusedMeanwhile once the frames refused."""
        self._rendered = max(self._rendered, fraction)
        self._report()
        if self._frame_pass.refused:
            raise RefusedMeanwhile("the frame pass refused the video")

    def waiting(self) -> None:
        self._report()
