"""The frame pass beside the engine (heygemd.validation.framepass): threads, progress, stopping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from heygemd.contract import ProgressFn
from heygemd.errors import JobInterrupted
from heygemd.report import Finding, Severity
from heygemd.validation.examine import VideoExamination
from heygemd.validation.framepass import FramePass, RefusedMeanwhile, Shares

ACCEPTED = VideoExamination(None, [], [])
REFUSED = VideoExamination(None, [Finding(code="no_face", severity=Severity.REFUSE,
                                          message="No face.")], [])


def slow_pass(result: VideoExamination, steps: int = 5, pause: float = 0.02,
              started: threading.Event | None = None) -> Callable[[ProgressFn], VideoExamination]:
    def work(report: ProgressFn) -> VideoExamination:
        if started is not None:
            started.set()
        for i in range(steps):
            report(i / steps)
            time.sleep(pause)
        return result
    return work


def test_the_pass_runs_in_another_thread_beside_the_caller() -> None:
    started = threading.Event()
    threads: list[str] = []

    def work(report: ProgressFn) -> VideoExamination:
        threads.append(threading.current_thread().name)
        started.set()
        return ACCEPTED

    with FramePass(work) as frames:
        assert started.wait(5)  # it ran while this thread did nothing for it
        assert frames.wait(lambda: None) is ACCEPTED
    assert threads == ["examine-frames"] and frames.duration_ms >= 0


def test_progress_reaches_the_caller_from_the_calling_thread_only() -> None:
    calls: list[tuple[float, str]] = []

    def progress(fraction: float) -> None:
        calls.append((fraction, threading.current_thread().name))

    with FramePass(slow_pass(ACCEPTED, steps=20, pause=0.03)) as frames:
        shares = Shares(progress, frames, 0.1)
        shares.rendering(0.5)
        assert frames.wait(shares.waiting) is ACCEPTED
        shares.rendering(1.0)
    fractions = [f for f, _ in calls]
    assert {name for _, name in calls} == {threading.current_thread().name}
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert 0.45 <= fractions[0] <= 0.55  # half the engine's 0.9, a little of the frames' 0.1
    assert len(calls) >= 4  # the wait reported while the frames were examined (~0.6 s)


def test_a_refusal_found_meanwhile_stops_the_engine_at_its_next_report() -> None:
    with FramePass(slow_pass(REFUSED, steps=1, pause=0.0)) as frames:
        shares = Shares(lambda f: None, frames, 0.1)
        deadline = time.monotonic() + 5
        with pytest.raises(RefusedMeanwhile):
            while time.monotonic() < deadline:  # an engine, reporting as it works
                shares.rendering(0.2)
                time.sleep(0.01)
        assert frames.refused
        assert frames.wait(lambda: None) is REFUSED


def test_an_accepted_pass_never_stops_the_engine() -> None:
    with FramePass(slow_pass(ACCEPTED, steps=1, pause=0.0)) as frames:
        frames.wait(lambda: None)
        shares = Shares(lambda f: None, frames, 0.1)
        shares.rendering(0.5)  # does not raise
        assert not frames.refused


def test_an_interrupt_while_waiting_stops_the_pass_and_leaves_no_thread() -> None:
    reports: list[float] = []
    started = threading.Event()

    def work(report: ProgressFn) -> VideoExamination:
        started.set()
        while True:  # stops only when its report raises
            report(0.5)
            reports.append(0.5)
            time.sleep(0.01)

    def interrupt() -> None:
        raise JobInterrupted("second stop")

    with pytest.raises(JobInterrupted, match="second stop"), FramePass(work) as frames:
        assert started.wait(5)
        frames.wait(interrupt)
    assert frames.done
    assert not any(t.name == "examine-frames" for t in threading.enumerate())


def test_the_pass_errors_are_raised_in_the_waiting_thread() -> None:
    def work(report: ProgressFn) -> VideoExamination:
        raise ValueError("decoder broke")

    with pytest.raises(ValueError, match="decoder broke"), FramePass(work) as frames:
        frames.wait(lambda: None)


def test_the_engine_gets_the_hand_sightings_before_the_pass_ends() -> None:
    """Sightings are handed over as soon as the samples are known (the rules and pictures come
    later); a pass that ends without them gives None; one that refused stops the engine."""
    from heygemd.faces.hands import HandSightings
    from heygemd.validation.framepass import Sightings

    seen = HandSightings(frames=[0, 8], cover=[0.0, 0.1])  # type: ignore[arg-type]
    sightings, release = Sightings(), threading.Event()

    def work(report: ProgressFn) -> VideoExamination:
        sightings.put(seen)
        release.wait(5)  # the rules and pictures, still to come
        return ACCEPTED

    reports: list[int] = []
    with FramePass(work) as frames:
        assert sightings.wait(frames, lambda: reports.append(1)) is seen
        assert not frames.done and reports
        release.set()
    with FramePass(slow_pass(ACCEPTED)) as frames:
        assert Sightings().wait(frames, lambda: None) is None
    with FramePass(slow_pass(REFUSED)) as frames, pytest.raises(RefusedMeanwhile):
        Sightings().wait(frames, lambda: None)
