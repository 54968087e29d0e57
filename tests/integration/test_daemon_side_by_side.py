"""The daemon with a farm (no broker: a stand-in for the farm's intake): jobs run side by side,
each in a thread of its own, only while the farm has room; the loop settles each job's end and
writes the status; a stop waits for every job out."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from heygemd.cli import build_pipeline
from heygemd.daemon.making import ClaimedJob, JobHooks, make_job
from heygemd.daemon.service import Daemon
from heygemd.daemon.status import FarmVideo
from heygemd.daemon.store import State, Store
from heygemd.report import JobReport
from heygemd.settings import Settings
from tests.integration.conftest import Harness, wait_for


@dataclass
class StandInFarm:
    """Room while fewer than ``room`` jobs run; each job waits for its release, then makes its
    videos with the real pipeline."""

    room: int = 8
    started: list[str] = field(default_factory=list)  # job names, in the order they started
    release: dict[str, threading.Event] = field(default_factory=dict)
    fail: set[str] = field(default_factory=set)  # job names whose first run breaks
    # the real farm makes nothing in the intake; here the one pipeline makes each job's video,
    # one at a time (its face models are not for two threads at once)
    making: threading.Lock = field(default_factory=threading.Lock)

    def notes(self) -> dict[str, str]:
        return {}

    def videos_out(self) -> Sequence[FarmVideo]:
        return ()

    def room_beside(self, running: Sequence[str]) -> bool:
        return len(running) < self.room

    def make(self, job: ClaimedJob, pipeline: Any, settings: Settings,
             engine: dict[str, str], hooks: JobHooks) -> JobReport:
        gate = self.release.setdefault(job.name, threading.Event())
        self.started.append(job.name)
        while not gate.wait(0.05):
            hooks.progress(1, 1, "face.mp4", 0.5)
            if hooks.should_stop():
                break
        if job.name in self.fail:
            self.fail.discard(job.name)
            raise RuntimeError(f"{job.name} broke on our side")
        with self.making:
            return make_job(job, pipeline, settings, engine, hooks)


def farm_daemon(settings: Settings, farm: StandInFarm) -> Daemon:
    return Daemon(settings, build_pipeline, env={}, make=farm.make, farm=farm)


def tick_until(daemon: Daemon, done: Any, what: str, timeout: float = 60) -> Any:
    def ticked() -> Any:
        daemon.tick()
        return done()

    return wait_for(ticked, timeout, what)


def test_jobs_run_side_by_side_and_each_is_published_once(harness: Harness,
                                                          settings: Settings) -> None:
    farm = StandInFarm()
    daemon = farm_daemon(settings, farm)
    daemon.startup()
    try:
        for name in ("first", "second", "third"):
            harness.good_job(name)
        tick_until(daemon, lambda: len(farm.started) == 3, "three jobs started")
        rows = daemon.store.in_states(State.VALIDATING, State.RUNNING)
        assert sorted(r.name for r in rows) == ["first", "second", "third"]
        status = harness.outbox / "STATUS.txt"
        tick_until(daemon, lambda: status.read_text().count("Also working on: ") == 2,
                   "the status to show all three")
        assert "Working on: first - " in status.read_text()
        farm.release["second"].set()  # the second ends first: nothing waits on the first
        second = next(r.job_id for r in rows if r.name == "second")
        tick_until(daemon, lambda: second not in daemon._flying, "the second settled")
        assert "second" in harness.published() and "first" not in harness.published()
        assert len(daemon._flying) == 2
        for gate in farm.release.values():
            gate.set()
        tick_until(daemon, lambda: len(harness.published()) == 3 and not daemon._flying,
                   "every job published")
        assert {r["status"] for r in harness.published().values()} == {"done"}
        assert not daemon.store.in_states(State.QUEUED, State.VALIDATING, State.RUNNING)
    finally:
        for gate in farm.release.values():
            gate.set()
        daemon.stop_requested = True
        while daemon._flying:
            daemon.tick()
        daemon.shutdown()


def test_no_job_starts_beside_another_while_the_farm_has_no_room(harness: Harness,
                                                                   settings: Settings) -> None:
    farm = StandInFarm(room=1)
    daemon = farm_daemon(settings, farm)
    daemon.startup()
    try:
        harness.good_job("first")
        harness.good_job("second")
        tick_until(daemon, lambda: farm.started == ["first"], "the first job started")
        for _ in range(20):
            daemon.tick()
        assert farm.started == ["first"]
        assert [r.name for r in daemon.store.in_states(State.QUEUED)] == ["second"]
        assert ("first" in (harness.outbox / "STATUS.txt").read_text())
        farm.release["first"] = farm.release.get("first", threading.Event())
        farm.release["first"].set()
        tick_until(daemon, lambda: farm.started == ["first", "second"], "the second started")
        farm.release["second"].set()
        tick_until(daemon, lambda: len(harness.published()) == 2 and not daemon._flying,
                   "both published")
    finally:
        for gate in farm.release.values():
            gate.set()
        daemon.stop_requested = True
        while daemon._flying:
            daemon.tick()
        daemon.shutdown()


def test_a_stop_waits_for_every_job_out(harness: Harness, settings: Settings) -> None:
    farm = StandInFarm()
    daemon = farm_daemon(settings, farm)
    harness.good_job("first")
    harness.good_job("second")

    def stop_once_both_run() -> None:
        wait_for(lambda: len(farm.started) == 2, 60, "two jobs started")
        daemon.request_stop()  # warm: each job finishes its video, then the loop ends

    stopper = threading.Thread(target=stop_once_both_run)
    stopper.start()
    try:
        assert daemon.run() == 0  # the loop in this (the main) thread: it sets signal handlers
        assert sorted(harness.published()) == ["first", "second"]
        assert not daemon._flying
    finally:
        stopper.join(60)


def test_leaving_the_loop_with_jobs_out_puts_each_back_before_the_store_closes(
    harness: Harness, settings: Settings,
) -> None:
    farm = StandInFarm()
    daemon = farm_daemon(settings, farm)
    daemon.startup()
    harness.good_job("first")
    harness.good_job("second")
    tick_until(daemon, lambda: len(farm.started) == 2, "two jobs started")
    daemon.shutdown()  # as after an error or a Ctrl-C in `heygemd once`: no stop was asked
    assert not daemon._flying and harness.published() == {}
    store = Store(settings.paths.state)
    try:
        rows = store.in_states(State.QUEUED)
        assert sorted(r.name for r in rows) == ["first", "second"]
        assert all(r.interruptions == 1 and r.faults == 0 for r in rows), rows
    finally:
        store.close()


def test_a_job_that_breaks_goes_back_while_the_others_are_published(
    harness: Harness, settings: Settings,
) -> None:
    farm = StandInFarm(fail={"broken"})
    # the back-off pause: long, so the broken job's next try comes after the test
    settings = settings.model_copy(update={"watch": settings.watch.model_copy(
        update={"rescan_seconds": 600.0})})
    daemon = farm_daemon(settings, farm)
    daemon.startup()
    try:
        harness.good_job("broken")
        harness.good_job("fine")
        tick_until(daemon, lambda: len(farm.started) == 2, "two jobs started")
        farm.release["broken"].set()
        tick_until(daemon, lambda: len(daemon._flying) == 1, "the broken job settled")
        status = harness.outbox / "STATUS.txt"
        tick_until(daemon, lambda: "job 'broken' could not be finished" in status.read_text(),
                   "the status to say so")
        farm.release["fine"].set()
        tick_until(daemon, lambda: "fine" in harness.published() and not daemon._flying,
                   "the other one published")
        daemon.tick()
        # the broken job still waits for its next try: the words stay until it is finished
        assert "job 'broken' could not be finished" in status.read_text()
        broken = daemon.store.in_states(State.QUEUED)
        assert [r.name for r in broken] == ["broken"] and broken[0].faults == 1
    finally:
        for gate in farm.release.values():
            gate.set()
        daemon.stop_requested = True
        while daemon._flying:
            daemon.tick()
        daemon.shutdown()
