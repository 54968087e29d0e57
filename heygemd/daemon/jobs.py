"""The daemon's side of a job: the store's states, checkpoints, the job's log, publishing.

:func:`heygemd.daemon.making.make_job` makes the claimed folder into staged results and a
report; :class:`JobRunner` runs it with hooks that keep each finished video as a checkpoint
(:mod:`heygemd.daemon.checkpoint`), so a job put back, or re-queued after a crash, resumes with
the videos it had left, then publishes by rename. A run that cannot finish puts the job back in
the queue with nothing published, and what ended it decides whether it is held against the
job (:func:`ended_by`): only the job's own doing counts (an error of ours it sets off; a crash
of the process while it runs, told apart from a kill from outside by the fatal-signal dump in
its work folder, see :mod:`heygemd.fatal`). A stop, a kill -9, a full or read-only outbox never
count.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog

from heygemd import fatal, faults
from heygemd.daemon import checkpoint, inbox, outbox
from heygemd.daemon.making import (
    ClaimedJob,
    JobHooks,
    PipelineLike,
    Prepared,
    WarmStop,
    make_job,
)
from heygemd.daemon.store import JobRow, JobStore, State, VideoFact
from heygemd.errors import JobInterrupted
from heygemd.logs import job_log
from heygemd.report import JobReport, JobStatus, VideoResult, VideoStatus
from heygemd.settings import Settings
from heygemd.timing import ms_since
from heygemd.validation import jobfiles

__all__ = ["STATE_OF", "Ended", "FilesChanged", "JobPaths", "JobRunner", "PipelineLike",
           "WarmStop", "ended_by"]

log = structlog.get_logger(__name__)


# (job row, 1-based video index, video count, video name, fraction 0..1); may raise
# JobInterrupted. Called with fraction 0 before each video and 1 after it.
ProgressHook = Callable[[JobRow, int, int, str, float], None]
QUIET_STEP_SECONDS = 0.5  # the claim window's wait asks the progress hook this often
# make_job's shape: how a claimed job becomes a report (the farm's intake sends its videos out)
MakeJob = Callable[[ClaimedJob, Any, Settings, dict[str, str], JobHooks], JobReport]

STATE_OF = {
    JobStatus.DONE: State.DONE,
    JobStatus.PARTIAL: State.DONE,
    JobStatus.REJECTED: State.REJECTED,
    JobStatus.FAILED: State.FAILED,
}


JOB_LOG = "job.log.jsonl"
FATAL_DUMP = "fatal.txt"  # beside the checkpoints: the running attempt's fatal-signal dump


class Ended(StrEnum):
    """What ended a run that published nothing; only FAULT is held against the job."""

    INTERRUPTED = "interrupted"  # a stop (SIGTERM), or a kill from outside (see recovery)
    COPYING = "copying"  # the job's files changed while it ran
    MACHINE = "machine"  # a full, read-only or unreachable place: the machine's problem
    FAULT = "fault"  # an error of ours that this job set off


def ended_by(err: BaseException) -> Ended:
    """Whose doing ``err`` was, for a run that published nothing (pure)."""
    if isinstance(err, JobInterrupted):
        return Ended.INTERRUPTED
    if isinstance(err, FilesChanged):
        return Ended.COPYING
    if faults.is_machine_fault(err):
        return Ended.MACHINE
    return Ended.FAULT


class FilesChanged(Exception):  # noqa: N818 - a control-flow signal
    """The job's files changed while it ran (a copy that paused longer than the settle time and
    went on): nothing is published, the job goes back to wait for the copy to finish."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__(", ".join(names))
        self.names = names


@dataclass(frozen=True)
class JobPaths:
    original: Path  # work/<job_id>/<name>: the user's folder as claimed
    holder: Path  # work/<job_id>
    staging: Path  # outbox/.heygemd-staging-<job_id>

    @classmethod
    def of(cls, settings: Settings, row: JobRow) -> JobPaths:
        holder = settings.paths.work / row.job_id
        return cls(holder / row.name, holder, outbox.staging_dir(settings.paths.outbox, row.job_id))

    @property
    def log(self) -> Path:
        """The job's log lines over all its attempts (an interrupted one included), kept beside
        the checkpoints; copied into the outbox as job.log.jsonl when the job is published."""
        return self.holder / checkpoint.CHECKPOINTS / JOB_LOG

    @property
    def fatal_dump(self) -> Path:
        """Where a fatal signal during the running attempt dumps its traceback: read (and
        emptied) by recovery after a restart; empty means the process was killed from outside."""
        return self.holder / checkpoint.CHECKPOINTS / FATAL_DUMP


class JobRunner:
    """Runs jobs with a pipeline built once by the daemon: one at a time, or (``side_by_side``,
    the farm's intake, which makes nothing in-process) several at once, one per thread."""

    def __init__(
        self, settings: Settings, store: JobStore, pipeline: Prepared,
        engine_info: dict[str, str], on_progress: ProgressHook, should_stop: Callable[[], bool],
        make: MakeJob | None = None, side_by_side: bool = False,
    ) -> None:
        self.settings, self.store, self.pipeline = settings, store, pipeline
        self._make = make  # None: make_job (looked up at each run)
        self.engine_info = engine_info
        self._on_progress, self._should_stop = on_progress, should_stop
        # a fatal signal's dump goes to one file per process: it names the job only when one
        # job runs at a time (side by side, a crash is counted against none of them)
        self._dumps = not side_by_side
        self._publishing = threading.Lock()  # choosing a free outbox name, then taking it

    def run(self, row: JobRow, watch_copy: bool = True,
            quiet_until: float = float("-inf")) -> JobRow:
        """Run and publish ``row`` (queued). With ``watch_copy``, the job is published only once
        its files were not written to while it ran, nor until ``quiet_until`` (monotonic
        seconds: the end of its claim settle window, which goes on while it runs; the run
        waits out what is left of it). Anything that ends the run before the publish
        puts the job back in the queue and is raised again: JobInterrupted (a stop),
        FilesChanged (with ``watch_copy``: the job's files were written to), a
        machine fault (e.g. OSError or DiskFull: the outbox is full or read-only), or an error
        of ours; only the last counts against the job (:func:`ended_by`)."""
        paths = JobPaths.of(self.settings, row)
        row = self.store.transition(row.job_id, State.VALIDATING)
        t0 = time.monotonic()
        try:
            _clear(paths.staging)
            paths.staging.mkdir(parents=True)
            paths.log.parent.mkdir(parents=True, exist_ok=True)
            dump = open(paths.fatal_dump, "w", encoding="utf-8")  # noqa: SIM115 - held below
        except BaseException as err:
            self._put_back(row, paths, ended_by(err))
            raise
        try:
            with dump, fatal.dumps_to(dump) if self._dumps else contextlib.nullcontext():
                return self._run(row, paths, t0, quiet_until if watch_copy else None)
        except BaseException as err:
            done = self._already_published(row, paths)
            if done is not None:  # failed after the publishing rename: the job is out
                log.warning("job.published_then_failed", job_id=row.job_id, error=str(err))
                return done
            self._put_back(row, paths, ended_by(err))
            raise

    def _already_published(self, row: JobRow, paths: JobPaths) -> JobRow | None:
        """When the job's folder is in the outbox (the rename was done, a later step failed),
        record it as recovery would and return the final row; else None."""
        current = self.store.get(row.job_id)
        out = self.settings.paths.outbox
        if current is None or current.state not in (State.VALIDATING, State.RUNNING) or \
                outbox.published_job(out, current.outbox_name) != row.job_id:
            return None
        status, report = outbox.published_report(out / str(current.outbox_name))
        if report is not None:
            self.store.add_videos(video_facts(report))
        done = self.store.transition(
            row.job_id, STATE_OF[status], status=status.value,
            message=report.message if report is not None else None,
            reason_code=report.reason_code if report is not None else None)
        _remove_holder(paths.holder)
        return done

    def _run(self, row: JobRow, paths: JobPaths, t0: float,
             quiet_until: float | None) -> JobRow:
        """Make the job's videos into staging, then publish (raises as :meth:`run` says;
        ``quiet_until`` None: the files are not watched)."""
        before = _snapshot(paths.original)
        with job_log(row.job_id, paths.log):
            log.info("job.start", name=row.name, attempt=row.attempts,
                     interruptions=row.interruptions, faults=row.faults)
            job = ClaimedJob(
                job_id=row.job_id, name=row.name, folder=paths.original, staging=paths.staging,
                submitted_at=row.submitted_at, started_at=row.started_at, faults=row.faults,
                interruptions=row.interruptions, crashes=row.crash_counts())
            hooks = _Kept(self, row, paths)
            if self._make is not None:
                report = self._make(job, self.pipeline, self.settings, self.engine_info, hooks)
            elif isinstance(self.pipeline, PipelineLike):
                report = make_job(job, self.pipeline, self.settings, self.engine_info, hooks)
            else:
                raise TypeError("without a make function the daemon needs a pipeline")
            log.info("job.finish", status=report.status.value, duration_ms=ms_since(t0))
            changed: tuple[str, ...] = ()
            if quiet_until is not None and before is not None:
                self._wait_quiet(hooks, report, quiet_until)
                after = _snapshot(paths.original)
                changed = jobfiles.written_since(before, after) if after is not None else ()
            if changed:  # e.g. a video refused as truncated while its copy went on
                log.warning("job.still_being_copied", name=row.name, changed=list(changed),
                            hint="files changed while the job ran; nothing is published, "
                                 "the job waits for the copy to finish "
                                 "(watch.require_ready_marker avoids this)")
                raise FilesChanged(changed)
        return self._publish(row, paths, report)

    def _wait_quiet(self, hooks: _Kept, report: JobReport, quiet_until: float) -> None:
        """Wait out the claim settle window's rest (until ``quiet_until``, monotonic), saying
        through the progress hook that the last video is done (which raises JobInterrupted on
        a second stop, or past the graceful stop's time, and keeps the watchdog fed)."""
        left = quiet_until - time.monotonic()
        if left <= 0:
            return
        log.info("job.settling", seconds=round(left, 2),
                 hint="the job's files must stay unchanged since it was taken before it is "
                      "published (watch.settle_seconds)")
        count = len(report.videos)
        last = report.videos[-1].name if report.videos else ""
        while (left := quiet_until - time.monotonic()) > 0:
            hooks.progress(count, count, last, 1.0)
            time.sleep(min(left, QUIET_STEP_SECONDS))

    def _publish(self, row: JobRow, paths: JobPaths, report: JobReport) -> JobRow:
        out = self.settings.paths.outbox
        with self._publishing:
            name = outbox.choose_name(outbox.safe_name(row.name), outbox.taken_names(out))
            outbox.write_results(paths.staging, report, published_as=name)
            shutil.copyfile(paths.log, paths.staging / JOB_LOG)
            moved = outbox.move_inputs(paths.original, paths.staging)
            self.store.update(row.job_id, outbox_name=name)
            outbox.publish(paths.staging, out, name)
        self.store.add_videos(video_facts(report))
        done = self.store.transition(
            row.job_id, STATE_OF[report.status], status=report.status.value,
            message=report.message, reason_code=report.reason_code,
        )
        if not moved:
            shutil.rmtree(paths.original)
        _remove_holder(paths.holder)
        log.info("job.published", job_id=row.job_id, outbox=name, status=report.status.value)
        return done

    def _put_back(self, row: JobRow, paths: JobPaths, ended: Ended) -> None:
        """Undo a run that did not publish: originals back in work/, staging gone, queued;
        the job's fault count goes up only when ``ended`` was its own doing."""
        outbox.restore_inputs(paths.staging, paths.original)
        shutil.rmtree(paths.staging, ignore_errors=True)
        current = self.store.get(row.job_id)
        if current is None or current.state not in (State.VALIDATING, State.RUNNING):
            return
        counts: dict[str, object] = {}
        if ended is Ended.FAULT:
            counts["faults"] = current.faults + 1
        elif ended is Ended.INTERRUPTED:
            counts["interruptions"] = current.interruptions + 1
        self.store.transition(row.job_id, State.QUEUED, outbox_name=None, **counts)
        log.warning("job.requeued", job_id=row.job_id, ended=ended.value, **counts)


class _Kept:
    """The daemon's JobHooks: progress into the store, finished videos as checkpoints."""

    def __init__(self, runner: JobRunner, row: JobRow, paths: JobPaths) -> None:
        self._runner, self._row, self._paths = runner, row, paths
        self._keys: dict[str, str] = {}

    def running(self, files: jobfiles.JobFiles, settings: Settings) -> None:
        self._row = self._runner.store.transition(
            self._row.job_id, State.RUNNING, video_count=len(files.videos))
        # stamped before anything is read: a file that changes later never matches its key
        original = self._paths.original
        audio = checkpoint.FileStamp.of(original / files.audio)
        dumped = settings.model_dump(mode="json")
        self._keys = {
            v: checkpoint.inputs_key(checkpoint.FileStamp.of(original / v), audio, dumped,
                                     self._runner.engine_info)
            for v in files.videos
        }

    def progress(self, index: int, count: int, name: str, fraction: float) -> None:
        self._runner._on_progress(self._row, index, count, name, fraction)

    def should_stop(self) -> bool:
        return self._runner._should_stop()

    def recall(self, video: str, output: str) -> VideoResult | None:
        """The checkpointed result of ``video``, its files put back into staging; None when
        it must be made (no trusted checkpoint, one made under another output name, or
        putting it back failed)."""
        paths = self._paths
        found = checkpoint.load(paths.holder, video, self._keys[video])
        if found is None:
            return None
        if found.result.output not in (None, output):  # the job's files, hence names, changed
            log.info("checkpoint.stale", video=video, reason="its output name changed")
            return None
        try:
            checkpoint.restore(found, paths.staging)
        except OSError as err:
            log.warning("checkpoint.restore_failed", video=video, error=str(err))
            for name in found.files:
                (paths.staging / name).unlink(missing_ok=True)
            return None
        log.info("video.resumed", video=video, status=found.result.status.value,
                 reason=found.result.reason_code)
        return found.result

    def keep(self, video: str, result: VideoResult) -> None:
        """Keep a finished video for a restart; failing to is logged, never fatal.

        Only outcomes a rerun would repeat are kept: a made video, or input the user must fix.
        A failure on our side (engine error, GPU memory, disk) may not recur, so it runs again.
        """
        if result.status is VideoStatus.FAILED:
            return
        try:
            checkpoint.save(self._paths.holder, video, self._keys[video], result,
                            self._paths.staging)
        except OSError as err:
            log.warning("checkpoint.write_failed", video=video, error=str(err))
        else:
            log.info("checkpoint.saved", video=video, status=result.status.value)


def video_facts(report: JobReport) -> list[VideoFact]:
    """The report's videos as the store records them for the metrics (pure)."""
    finished = report.finished_at.isoformat(timespec="seconds") if report.finished_at else None
    return [
        VideoFact(job_id=report.job_id, name=v.name, status=v.status.value,
                  reason_code=v.reason_code,
                  output_seconds=float(v.metrics.get("output_seconds", 0.0)),
                  frames=int(v.metrics.get("frames", 0)),
                  examine_ms=float(v.timings_ms.get("examine", 0.0)),
                  render_ms=float(v.timings_ms.get("render", 0.0)), finished_at=finished)
        for v in report.videos
    ]


def _snapshot(folder: Path) -> inbox.Snapshot | None:
    """The job folder's entries, or None when it cannot be read (the run reports that)."""
    try:
        return inbox.scan_entries(folder)
    except OSError:
        return None


def _clear(staging: Path) -> None:
    """Remove a staging folder left by an earlier run, or raise why it cannot be removed: an
    outbox that is read-only or forbidden for now is the machine's, and the job waits for it
    (a staging folder left in place would fail the next run's mkdir as if it were the job's).
    An entry gone meanwhile is no error; a folder copied in without write rights (a user's
    read-only folder copied across filesystems) is given them and emptied."""
    def retry(func: Callable[..., Any], path: str, info: Any) -> None:
        err = info[1]
        if isinstance(err, FileNotFoundError):
            return
        parent = os.path.dirname(path)
        if isinstance(err, PermissionError) and parent.startswith(str(staging)) and \
                not os.access(parent, os.W_OK | os.X_OK):
            os.chmod(parent, os.stat(parent).st_mode | stat.S_IRWXU)
            func(path)
            return
        raise err

    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(staging, onerror=retry)


def _remove_holder(holder: Path) -> None:
    """work/<job_id> is empty once the originals moved; anything left is ours to delete."""
    shutil.rmtree(holder, ignore_errors=True)
