"""The Daemon: startup() -> while not stopping: tick() -> shutdown().

``tick()`` does at most one unit of work (starts one job) and is what tests drive directly.
Alone, the daemon runs that job in the loop itself, one job at a time. The farm's intake
(``farm``) makes nothing itself, so its jobs run side by side, each in a thread of its own, as
long as the farm has room (:meth:`Farmed.room_beside`); the loop alone then writes the status
and settles how each job ended. Signal handlers only set flags: the first SIGTERM/SIGINT takes
no new job and lets the current video finish (on the farm: each job out goes back to the queue
at once, its videos left with the workers and collected after the restart); the second, or
``graceful_timeout_seconds`` after the first, abandons the job (it goes back to the queue). The
watchdog observer thread only records names; this loop consumes them through
:class:`heygemd.daemon.intake.Intake`, which notices, waits for and claims job folders.
"""

from __future__ import annotations

import errno
import queue
import shutil
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Protocol

import structlog

from heygemd import faults
from heygemd.daemon import recovery
from heygemd.daemon.intake import Intake, same_filesystem
from heygemd.daemon.jobs import FilesChanged, JobRunner, MakeJob
from heygemd.daemon.lock import InstanceLock
from heygemd.daemon.making import Prepared
from heygemd.daemon.outbox import write_atomic
from heygemd.daemon.status import (
    STATUS_JSON,
    FarmVideo,
    Problem,
    StatusView,
    snapshot_json,
    status_line,
    status_text,
    store_view,
)
from heygemd.daemon.store import JobRow, JobStore, State, Store
from heygemd.daemon.systemd import Notifier
from heygemd.daemon.watcher import Watcher, choose_mode, read_mount
from heygemd.errors import ConfigError, JobInterrupted
from heygemd.settings import Settings

log = structlog.get_logger(__name__)

PipelineFactory = Callable[[Settings], Prepared]
STATUS_INTERVAL = 1.0  # seconds between status file / STATUS= / store progress updates
GIB = 1024**3
MAX_COPY_RERUNS = 3  # runs of one job undone because its files changed while it ran
DRAIN_SECONDS = 60.0  # shutting down: how long the farm's job threads get to put their jobs back


class Farmed(Protocol):
    """What the daemon asks of the farm's intake (:class:`heygemd.farm.intake.Farm`)."""

    def notes(self) -> dict[str, str]:
        """More problems for the status (kind "farm...": the broker down), replacing the last."""
        ...

    def videos_out(self) -> Sequence[FarmVideo]:
        """The videos out on the workers, for the status."""
        ...

    def room_beside(self, running: Sequence[str]) -> bool:
        """May one more job start beside ``running`` (their job ids)?"""
        ...


class Daemon:
    """The service. Build it with settings and a factory for the (heavy) pipeline."""

    def __init__(
        self, settings: Settings, pipeline_factory: PipelineFactory,
        env: Mapping[str, str] | None = None, make: MakeJob | None = None,
        farm: Farmed | None = None,
    ) -> None:
        self.settings = settings
        self._factory = pipeline_factory
        self._make = make
        self._farm = farm  # the farm's intake: jobs side by side, their videos on workers
        # the farm's jobs in flight (job id -> its thread) and how each ended, for the loop
        self._flying: dict[str, threading.Thread] = {}
        self._landed: queue.SimpleQueue[tuple[JobRow, BaseException | None]] = \
            queue.SimpleQueue()
        self._progress_shown: dict[str, tuple[int, int, str, float]] = {}  # by the job threads
        self.notifier = Notifier(env)
        self.stop_requested = False
        self.abort_requested = False
        self._stop_at = 0.0
        self._signals: list[int] = []  # appended by the handler, logged by the loop
        self._stop_noted = self._abort_noted = False
        self._last_status = float("-inf")
        self._problems: dict[str, str] = {}  # Problem kind -> its words, shown in the status
        self._shown: tuple[str, ...] = ()  # the problems in the last status written
        self._retry_at = float("-inf")  # monotonic: no job is taken before this (back-off)
        self._failed: set[str] = set()  # job ids that could not be finished on our side
        self._copy_reruns: dict[str, int] = {}  # job id -> runs undone by files changing
        self._ran_once = False  # `heygemd once`: the status says so when it stops
        self._skipped: set[str] = set()  # ... that `once` takes no more in this run
        self.unfinished: str | None = None  # `once`: why jobs are left waiting, in a line
        self._store: JobStore | None = None
        self._runner: JobRunner | None = None
        self._watcher: Watcher | None = None
        self._intake: Intake | None = None
        self._lock = InstanceLock(settings.paths.state)

    # -- lifecycle -------------------------------------------------------------------------

    def startup(self) -> None:
        """Dirs, the single-instance lock, store, crash recovery, the watcher and a first look
        at the inbox (no claim), the pipeline (models load here), READY. Raises AlreadyRunning
        when another daemon holds the state directory: recovery must never "recover" a job
        that a live daemon is running."""
        paths = self.settings.paths
        for folder in (paths.work, paths.state, paths.outbox):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            self._start_locked()
        except BaseException:
            if self._watcher is not None:
                self._watcher.stop()
            if self._store is not None:
                self._store.close()
                self._store = None
            self._lock.release()
            raise

    def _start_locked(self) -> None:
        paths = self.settings.paths
        if paths.inbox.is_dir() and not same_filesystem(paths.inbox, paths.work):
            raise ConfigError(
                f"config error: paths.work: {paths.work} is not on the same filesystem as "
                f"paths.inbox {paths.inbox}; claiming a job must be an atomic rename"
            )
        self._store = Store(paths.state)
        recovery.reconcile(self.settings, self._store)
        mode = choose_mode(self.settings.watch.mode, read_mount(paths.inbox.parent))
        self._watcher = Watcher(paths.inbox, mode, self.settings.watch.poll_interval_seconds)
        self._intake = Intake(self.settings, self._store, self._watcher, self._problems,
                              on_change=lambda: self._refresh_status(force=True))
        # the folders already waiting start settling now, while the models load (seconds),
        # not after; nothing leaves the inbox before the daemon is ready
        self._intake.discover(time.monotonic(), claim=False)
        self._intake.request_rescan()  # the first tick lists the whole inbox again
        pipeline = self._factory(self.settings)
        pipeline.startup()
        engine = pipeline.engine
        engine_info = {
            "name": str(engine.name), "version": str(engine.version),
            "device": engine.device,
        }
        self._runner = JobRunner(
            self.settings, self._store, pipeline, engine_info, self._on_progress,
            lambda: self.stop_requested, self._make, side_by_side=self._farm is not None,
        )
        log.info("daemon.started", inbox=str(paths.inbox), outbox=str(paths.outbox),
                 watch_mode=mode, engine=engine_info)
        self._refresh_status(force=True)
        self.notifier.ready(status_line(self._view()))

    def run(self) -> int:
        """The service loop with signal handling. Returns the exit status."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.startup()
        try:
            while not self.stop_requested or self._flying:  # a stop waits for the jobs out
                if not self.tick():
                    time.sleep(self.settings.daemon.idle_tick_seconds)
        finally:
            self.shutdown()
        return 0

    def run_once(self) -> int:
        """Take every job that is ready (or becomes ready within one settle period), run the
        queue dry, then stop. A job that cannot be finished on our side (e.g. an unwritable
        outbox) is not waited for with back-off pauses: it stays queued for the next run, the
        others go on, and the exit status is 1. Below ``daemon.min_free_gb`` no job starts:
        the queued ones stay queued, and it stops with status 1 and a line saying why."""
        self._ran_once = True
        self.startup()
        deadline = time.monotonic() + self.settings.watch.settle_seconds + 2.0
        try:
            while not self.stop_requested:
                worked = self.tick()
                if self._failed - self._skipped:
                    self._skipped |= self._failed
                    self._retry_at = float("-inf")  # the others go on now
                waiting = self.intake.candidates and time.monotonic() < deadline
                if not worked and not waiting and not self._flying:
                    runnable = self._runnable()
                    if not runnable:
                        break
                    if "disk" in self._problems:  # no job can start until space is freed
                        self._skipped |= {r.job_id for r in runnable}
                        break
                if not worked:
                    time.sleep(min(self.settings.daemon.idle_tick_seconds, 0.5))
            if self._skipped:
                problems = [self._problems[k] for k in ("disk", "job") if k in self._problems]
                names = sorted(r.name for r in self.store.in_states(State.QUEUED)
                               if r.job_id in self._skipped)
                self.unfinished = (f"{len(names)} job{'s' if len(names) != 1 else ''} still "
                                   f"waiting ({', '.join(names)}): {'; '.join(problems)}. "
                                   "Run `heygemd once` again once that is fixed.")
                log.error("once.unfinished", jobs=sorted(self._skipped),
                          problem="; ".join(problems) or None,
                          hint="these jobs stay queued; run `heygemd once` again once the "
                               "problem is fixed")
                return 1
            return 0
        finally:
            self.shutdown()

    def _runnable(self) -> list[JobRow]:
        """Queued jobs, less those this process has given up on for its run (``once``) and
        those just started in a thread of their own (still queued in the store a moment)."""
        return [r for r in self.store.in_states(State.QUEUED)
                if r.job_id not in self._skipped and r.job_id not in self._flying]

    def shutdown(self) -> None:
        self._note_stop()
        self.notifier.stopping()
        self._drain()
        if self._watcher is not None:
            self._watcher.stop()
        if self._runner is not None:
            self._runner.pipeline.shutdown()
        if self._store is not None:
            self._refresh_status(force=True, stopped=True)
            self._store.close()
            self._store = None
        self._lock.release()
        log.info("daemon.stopped")

    def _drain(self) -> None:
        """Before the store closes: every farm job still out is abandoned (put back, its videos
        left with the workers) and settled, for at most DRAIN_SECONDS. The loop ends with jobs
        out only when it is left by an error or a KeyboardInterrupt (`heygemd once`)."""
        if not self._flying:
            return
        self.stop_requested = self.abort_requested = True
        log.warning("daemon.draining", jobs=sorted(self._flying), limit_s=DRAIN_SECONDS)
        deadline = time.monotonic() + DRAIN_SECONDS
        while self._flying and time.monotonic() < deadline:
            try:
                self._land()
            except BaseException as err:  # shutting down already: say it, settle the rest
                log.error("daemon.drain_error", error=repr(err))
            time.sleep(0.1)
        if self._flying:  # recovery puts them back at the next start
            log.error("daemon.drain_timeout", jobs=sorted(self._flying))

    def request_stop(self) -> None:
        """First call: warm stop. Second: abort the running job. Only sets flags."""
        if self.stop_requested:
            self.abort_requested = True
        else:
            self.stop_requested = True
            self._stop_at = time.monotonic()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals.append(signum)
        self.request_stop()

    def _note_stop(self) -> None:
        """From the loop (never the handler): log a stop request once and show it."""
        while self._signals:
            log.warning("daemon.signal", signal=signal.Signals(self._signals.pop(0)).name)
        if self.stop_requested and not self._stop_noted:
            self._stop_noted = True
            log.warning("daemon.stopping", hint="no new job is taken; the current video is "
                        "finished", graceful_timeout_seconds=self.settings.daemon
                        .graceful_timeout_seconds)
            self.notifier.stopping()
            if self._store is not None:
                self._refresh_status(force=True)
        if self.abort_requested and not self._abort_noted:
            self._abort_noted = True
            log.warning("daemon.aborting", hint="second stop: the running job goes back to "
                        "the queue now")

    @property
    def store(self) -> JobStore:
        if self._store is None:
            raise RuntimeError("Daemon.startup() was not called")
        return self._store

    @property
    def intake(self) -> Intake:
        """The inbox side: folders noticed, waited for, claimed (exists after startup())."""
        if self._intake is None:
            raise RuntimeError("Daemon.startup() was not called")
        return self._intake

    # -- one unit of work ------------------------------------------------------------------

    def tick(self) -> bool:
        """Settle the farm's jobs that ended; discover and claim ready folders; start at most
        one queued job (alone: run it to its end). True if a job started or ended."""
        self.notifier.ping()
        self._note_stop()
        landed = self._land()
        self.intake.discover(time.monotonic())
        now = time.monotonic()
        settled = None
        if not self.stop_requested and now >= self._retry_at and self._has_room():
            settled = self.intake.next_settled(self._runnable(), now)
        if settled is None or not self._has_disk_space():
            self._refresh_status()
            return landed
        self._start(*settled)
        return True

    def _has_room(self) -> bool:
        if self._farm is None or not self._flying:
            return True
        return self._farm.room_beside(tuple(self._flying))

    def _start(self, row: JobRow, quiet_until: float) -> None:
        """Run ``row``: here, to its end; on the farm, in a thread of its own (it lands in
        :attr:`_landed`, settled by :meth:`_land`). Published once its folder stayed unchanged
        until ``quiet_until`` (monotonic) and while it ran."""
        runner = self._runner
        assert runner is not None
        self._refresh_status(force=True)
        # a READY marker says the copy is done; and a folder written to for ever is run as
        # it is after a few tries rather than never
        watch_copy = not self.settings.watch.require_ready_marker and \
            self._copy_reruns.get(row.job_id, 0) < MAX_COPY_RERUNS

        def attempt() -> BaseException | None:
            try:
                runner.run(row, watch_copy=watch_copy, quiet_until=quiet_until)
            except BaseException as err:  # settled by the loop (_settle), raised there if fatal
                return err
            return None

        if self._farm is None:
            self._settle(row, attempt())
            return
        thread = threading.Thread(target=lambda: self._landed.put((row, attempt())),
                                  name=f"heygemd-job-{row.job_id}", daemon=True)
        self._flying[row.job_id] = thread
        try:
            thread.start()
        except RuntimeError as err:  # no thread to be had: the job stays queued, tried later
            del self._flying[row.job_id]
            self._settle(row, err)
            return
        log.info("farm.job_started", job_id=row.job_id, beside=len(self._flying) - 1)

    def _land(self) -> bool:
        """Settle every farm job whose thread ended. True if one did."""
        landed = False
        while True:
            try:
                row, err = self._landed.get_nowait()
            except queue.Empty:
                return landed
            self._flying.pop(row.job_id).join()
            self._progress_shown.pop(row.job_id, None)
            self._settle(row, err)
            landed = True

    def _settle(self, row: JobRow, err: BaseException | None) -> None:
        """What the loop does after a job's run, by how it ended (``err``; None: published)."""
        try:
            if err is None:
                self._copy_reruns.pop(row.job_id, None)
                self._failed.discard(row.job_id)
                # the pause and the problem's words are for the jobs that could not be finished:
                # they stay while one of them still waits (side by side, another job may end
                # well meanwhile)
                if not self._failed:
                    self._retry_at = float("-inf")
                    if self._problems.pop("job", None) is not None:
                        log.info("job.recovered", job_id=row.job_id)
            elif isinstance(err, JobInterrupted):
                log.warning("job.interrupted", job_id=row.job_id, reason=str(err) or "stop")
                self.stop_requested = True
            elif isinstance(err, FilesChanged):  # nothing published (logged in the job); runs
                self._copy_reruns[row.job_id] = self._copy_reruns.get(row.job_id, 0) + 1
                self.intake.wait_for_copy(row, time.monotonic())  # again once the copy is done
            elif isinstance(err, Exception):  # the job was put back; the service goes on,
                log.error("job.error", job_id=row.job_id, exc_info=err)  # after a pause
                self._back_off(row, err)
            else:  # KeyboardInterrupt, SystemExit: the process ends
                raise err
        finally:
            self._refresh_status(force=True)

    def _back_off(self, row: JobRow, err: Exception) -> None:
        """Take no job for a while (the same one would fail again at once: a busy loop) and
        say why in the status until a job succeeds."""
        pause = self.settings.watch.rescan_seconds
        self._retry_at = time.monotonic() + pause
        self._failed.add(row.job_id)
        paths = self.settings.paths
        if faults.is_machine_fault(err):
            place = faults.place_of(err, {"the outbox": paths.outbox, "the work area": paths.work,
                                          "the cache": paths.cache})
            what = (f"job '{row.name}' is waiting: {faults.machine_words(err, place)}; it runs "
                    "again once that is fixed")
        else:  # an error of ours: the words for the operator are in the log, not on the share
            what = f"job '{row.name}' could not be finished (an internal error, see the log)"
        self._problems["job"] = f"{what}; next try in {pause:.0f} s"

    def _on_progress(self, row: JobRow, index: int, count: int, video: str, frac: float) -> None:
        """Called from inside the pipeline: may abandon the job, keeps everyone informed. In a
        farm job's thread it only records the progress: the loop writes the status."""
        threaded = self._farm is not None
        if not threaded:
            self._note_stop()
        if self.abort_requested:
            raise JobInterrupted("second stop signal")
        timeout = self.settings.daemon.graceful_timeout_seconds
        if self.stop_requested and time.monotonic() - self._stop_at > timeout:
            raise JobInterrupted(f"graceful stop took longer than {timeout:.0f} s")
        if threaded:  # the farm's progress comes once a poll: only a change is written
            shown = (index, count, video, round(frac, 3))
            if self._progress_shown.get(row.job_id) != shown:
                self._progress_shown[row.job_id] = shown
                self.store.update(row.job_id, video_index=index, video_count=count,
                                  video_name=video, fraction=shown[3])
            return
        now = time.monotonic()
        if frac in (0.0, 1.0) or now - self._last_status >= STATUS_INTERVAL:
            self.store.update(row.job_id, video_index=index, video_count=count, video_name=video,
                              fraction=round(frac, 3))
            self._refresh_status(force=frac in (0.0, 1.0))
        self.notifier.ping()

    def _has_disk_space(self) -> bool:
        paths, need = self.settings.paths, self.settings.daemon.min_free_gb * GIB
        low = [p for p in (paths.work, paths.outbox) if shutil.disk_usage(p).free < need]
        if low and "disk" not in self._problems:
            places = " and ".join("the outbox" if p == paths.outbox else "the work area"
                                  for p in low)
            self._problems["disk"] = (
                f"less than {self.settings.daemon.min_free_gb:g} GB free on the disk that "
                f"holds {places}; new jobs wait")
            log.error("disk.low", paths=[str(p) for p in low])
        elif not low and "disk" in self._problems:
            del self._problems["disk"]
            log.info("disk.ok")
        return not low

    # -- what users see --------------------------------------------------------------------

    def _view(self, stopped: bool = False) -> StatusView:
        waiting = self.intake.waiting()
        return store_view(
            self.store, settling=waiting.settling,
            problems=tuple(Problem(kind, words) for kind, words in self._problems.items()),
            stopped=stopped, copying=self.intake.copying,
            stopping=self.stop_requested and not stopped, incomplete=waiting.incomplete,
            loose=waiting.loose, blocked=waiting.blocked, ran_once=self._ran_once,
            farm=self._farm.videos_out() if self._farm is not None else (),
        )

    def _refresh_status(self, *, force: bool = False, stopped: bool = False) -> None:
        now = time.monotonic()
        if self._farm is not None:  # kinds "farm...": replaced by the latest
            for kind in [k for k in self._problems if k.startswith("farm")]:
                del self._problems[kind]
            self._problems.update(self._farm.notes())
        problems = tuple(self._problems.values())
        if not force and now - self._last_status < STATUS_INTERVAL and problems == self._shown:
            return
        self._last_status, self._shown = now, problems
        view = self._view(stopped)
        status_file = self.settings.status_file()
        failed = self._write_status_files(view, status_file)
        if self._status_file_problem(failed, status_file):
            view = self._view(stopped)
            if failed is None:  # written again: without the problem that said it was not
                self._write_status_files(view, status_file)
        try:  # the daemon's own copy, read by `heygemd status` and the web page
            write_atomic(self.settings.paths.state / STATUS_JSON, snapshot_json(view))
        except OSError as err:
            log.warning("status.write_failed", file=STATUS_JSON, folder="state", error=str(err))
        self.notifier.status(status_line(view), force=force)

    @staticmethod
    def _write_status_files(view: StatusView, status_file: Path) -> OSError | None:
        """STATUS.txt and status.json beside it; the error when either cannot be written."""
        failed: OSError | None = None
        for path, text in ((status_file, status_text(view)),
                           (status_file.with_name(STATUS_JSON), snapshot_json(view))):
            try:
                write_atomic(path, text)
            except OSError as err:
                failed = err
        return failed

    def _status_file_problem(self, failed: OSError | None, status_file: Path) -> bool:
        """Keep a "status" problem while the status files cannot be written (the outbox
        read-only or gone: users see an old STATUS.txt, `heygemd status` and the web page say
        why); True when it came or went just now. Logged once a spell, not every refresh."""
        if failed is None:
            gone = self._problems.pop("status", None) is not None
            if gone:
                log.info("status.written_again", file=status_file.name)
            return gone
        if "status" in self._problems:
            return False
        place = faults.place_of(failed, {"the outbox": self.settings.paths.outbox})
        why = "its folder is missing or not mounted" if failed.errno == errno.ENOENT else \
            faults.machine_words(failed, place)
        self._problems["status"] = (
            f"{status_file.name} cannot be updated ({why}): what it shows may be out of date")
        log.warning("status.write_failed", file=status_file.name, error=str(failed))
        return True
