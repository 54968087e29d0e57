"""One claimed job, start to finish: folder checks -> audio -> each video -> report -> publish.

Runs inside the daemon's loop. A refused or failed job is still published (the user must see
why). A run that cannot finish puts the job back in the queue with nothing published, and what
ended it decides whether it is held against the job (:func:`ended_by`): only the job's own
doing counts (an error of ours it sets off; a crash of the process while it runs, told apart
from a kill from outside by the fatal-signal dump in its work folder, see
:mod:`heygemd.fatal`). A stop, a kill -9, a full or read-only outbox never count.
Each finished video is checkpointed in the job's work folder (:mod:`heygemd.daemon.checkpoint`),
so a job put back, or re-queued after a crash, resumes with the videos it had left.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import structlog

from heygemd import __version__, fatal, faults, jobfiles
from heygemd.daemon import checkpoint, inbox, outbox
from heygemd.daemon.store import JobRow, State, Store, utc_now
from heygemd.daemon.verdicts import (
    AUDIO_REFUSED_WORDS,
    NOTHING_MADE,
    SWAPPED_FOR_LINK,
    audio_refusal,
    crashed_video,
    folder_videos,
    not_checked,
    overall_reason,
    rejected_videos,
)
from heygemd.engines.base import Engine, ProgressFn
from heygemd.errors import JobInterrupted
from heygemd.jobtoml import job_settings
from heygemd.logs import job_log
from heygemd.report import (
    AudioResult,
    JobReport,
    JobStatus,
    VideoResult,
    VideoStatus,
    job_status,
)
from heygemd.settings import Settings
from heygemd.timing import ms_since

log = structlog.get_logger(__name__)


class AudioCheckLike(Protocol):
    result: AudioResult


class PipelineLike(Protocol):
    """What the daemon needs of heygemd.pipeline.Pipeline."""

    settings: Settings
    engine: Engine

    def startup(self) -> None: ...

    def shutdown(self) -> None: ...

    def check_audio(self, audio: Path, progress: ProgressFn | None = None) -> Any: ...

    def process_video(
        self, video: Path, audio: Any, output: Path, pictures_dir: Path, progress: ProgressFn
    ) -> VideoResult: ...


# (job row, 1-based video index, video count, video name, fraction 0..1); may raise
# JobInterrupted. Called with fraction 0 before each video and 1 after it.
ProgressHook = Callable[[JobRow, int, int, str, float], None]

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


class WarmStop(JobInterrupted):  # noqa: N818 - a control-flow signal like its parent
    """A stop was requested and the current video is done (and checkpointed), but others
    remain: the job goes back to the queue and resumes with them."""


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
    """Runs one job at a time with a pipeline built once by the daemon."""

    def __init__(
        self, settings: Settings, store: Store, pipeline: PipelineLike, engine_info: dict[str, str],
        on_progress: ProgressHook, should_stop: Callable[[], bool],
    ) -> None:
        self.settings, self.store, self.pipeline = settings, store, pipeline
        self.engine_info = engine_info
        self._on_progress, self._should_stop = on_progress, should_stop

    def run(self, row: JobRow, watch_copy: bool = True) -> JobRow:
        """Run and publish ``row`` (queued). Anything that ends the run before the publish
        puts the job back in the queue and is raised again: JobInterrupted (a stop),
        FilesChanged (with ``watch_copy``: the job's files were written to while it ran), a
        machine fault (e.g. OSError or DiskFull: the outbox is full or read-only), or an error
        of ours; only the last counts against the job (:func:`ended_by`)."""
        paths = JobPaths.of(self.settings, row)
        row = self.store.transition(row.job_id, State.VALIDATING)
        t0 = time.monotonic()
        try:
            shutil.rmtree(paths.staging, ignore_errors=True)
            paths.staging.mkdir(parents=True)
            paths.log.parent.mkdir(parents=True, exist_ok=True)
            dump = open(paths.fatal_dump, "w", encoding="utf-8")  # noqa: SIM115 - held below
        except BaseException as err:
            self._put_back(row, paths, ended_by(err))
            raise
        try:
            with dump, fatal.dumps_to(dump):
                return self._run(row, paths, t0, watch_copy)
        except BaseException as err:
            self._put_back(row, paths, ended_by(err))
            raise

    def _run(self, row: JobRow, paths: JobPaths, t0: float, watch_copy: bool) -> JobRow:
        """Check and make the job's videos into staging, then publish (raises as run says)."""
        before = _snapshot(paths.original)
        with job_log(row.job_id, paths.log):
            log.info("job.start", name=row.name, attempt=row.attempts,
                     interruptions=row.interruptions, faults=row.faults)
            report = self._report(row, paths)
            log.info("job.finish", status=report.status.value, duration_ms=ms_since(t0))
            after = _snapshot(paths.original)
            changed = jobfiles.written_since(before, after) \
                if watch_copy and before is not None and after is not None else ()
            if changed:  # e.g. a video refused as truncated while its copy went on
                log.warning("job.still_being_copied", name=row.name, changed=list(changed),
                            hint="files changed while the job ran; nothing is published, "
                                 "the job waits for the copy to finish "
                                 "(watch.require_ready_marker avoids this)")
                raise FilesChanged(changed)
        return self._publish(row, paths, report)

    def _report(self, row: JobRow, paths: JobPaths) -> JobReport:
        if row.faults >= self.settings.daemon.max_attempts:
            return self._job_report(row, [], JobStatus.FAILED, "crash_loop", gave_up(row.faults))
        if inbox.is_link(paths.original):  # swapped for a link while waiting: never follow it
            log.warning("job.refused", code="symlink", file=None, removed=[])
            return self._job_report(row, [], JobStatus.REJECTED, "symlink", SWAPPED_FOR_LINK)
        entries = inbox.scan_entries(paths.original)
        files, folders = inbox.unused(entries)
        found = inbox.classify(entries, self.settings.limits)
        if isinstance(found, inbox.FolderProblem):
            removed = inbox.strip_unsafe(paths.original, entries)
            log.warning("job.refused", code=found.code, file=found.file, removed=removed)
            report = self._job_report(row, not_checked(folder_videos(entries), found),
                                      JobStatus.REJECTED, found.code, found.message)
        else:
            report = self._process(row, paths, found)
        return report.model_copy(update={
            "ignored_files": list(files), "ignored_folders": list(folders),
            "hidden_files": list(jobfiles.hidden_inputs(entries))})

    def _process(self, row: JobRow, paths: JobPaths, files: inbox.JobFiles) -> JobReport:
        settings = self.settings
        if files.job_toml is not None:
            try:
                settings = job_settings(settings, (paths.original / files.job_toml).read_bytes())
            except ValueError as err:
                return self._job_report(row, not_checked(files.videos), JobStatus.REJECTED,
                                        "job_toml", str(err))
        base, self.pipeline.settings = self.pipeline.settings, settings
        try:
            return self._process_videos(row, paths, files, settings)
        finally:
            self.pipeline.settings = base

    def _process_videos(
        self, row: JobRow, paths: JobPaths, files: inbox.JobFiles, settings: Settings
    ) -> JobReport:
        count = len(files.videos)
        row = self.store.transition(row.job_id, State.RUNNING, video_count=count)

        def audio_progress(fraction: float) -> None:
            self._on_progress(row, 0, count, files.audio, fraction)

        # stamped before anything is read: a file that changes later never matches its key
        keys = self._checkpoint_keys(paths.original, files, settings)
        audio = self.pipeline.check_audio(paths.original / files.audio, audio_progress)
        if not audio.result.accepted:
            message = audio_refusal(audio.result)
            refused = rejected_videos(files.videos, "audio_rejected", AUDIO_REFUSED_WORDS)
            return self._job_report(row, refused, JobStatus.REJECTED, "audio_rejected", message,
                                    audio=audio.result, settings=settings)
        names = outbox.output_names(files.videos)
        crashes = row.crash_counts()
        videos: list[VideoResult] = []
        for index, video in enumerate(files.videos, start=1):

            def progress(fraction: float, index: int = index, video: str = video) -> None:
                self._on_progress(row, index, count, video, fraction)

            result = self._resume(paths, video, keys[video], names[video])
            if result is None and crashes.get(video, 0) >= settings.daemon.max_attempts:
                log.error("video.set_aside", video=video, crashes=crashes[video])
                result = crashed_video(video, crashes[video])
            elif result is None:
                if videos and self._should_stop():
                    raise WarmStop(f"stop requested before video {index} of {count}; "
                                   f"{len(videos)} kept for the restart")
                progress(0.0)
                result = self.pipeline.process_video(
                    paths.original / video, audio, paths.staging / names[video], paths.staging,
                    progress,
                )
                log.info("video.result", video=video, status=result.status.value,
                         reason=result.reason_code)
                self._checkpoint(paths, video, keys[video], result)
            videos.append(result)
            progress(1.0)
        status = job_status(videos)
        code, reason = overall_reason(videos) if status in NOTHING_MADE else (None, None)
        return self._job_report(row, videos, status, code, reason, audio=audio.result,
                                settings=settings)

    def _checkpoint_keys(
        self, original: Path, files: inbox.JobFiles, settings: Settings
    ) -> dict[str, str]:
        """Video name -> the key of the inputs its checkpoint must have been made from."""
        audio = checkpoint.FileStamp.of(original / files.audio)
        dumped = settings.model_dump(mode="json")
        return {
            v: checkpoint.inputs_key(checkpoint.FileStamp.of(original / v), audio, dumped,
                                     self.engine_info)
            for v in files.videos
        }

    def _resume(
        self, paths: JobPaths, video: str, key: str, output: str
    ) -> VideoResult | None:
        """The checkpointed result of ``video``, its files put back into staging; None when
        it must be processed (no trusted checkpoint, one made under another output name, or
        putting it back failed)."""
        found = checkpoint.load(paths.holder, video, key)
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

    def _checkpoint(self, paths: JobPaths, video: str, key: str, result: VideoResult) -> None:
        """Keep a finished video for a restart; failing to is logged, never fatal.

        Only outcomes a rerun would repeat are kept: a made video, or input the user must fix.
        A failure on our side (engine error, GPU memory, disk) may not recur, so it runs again.
        """
        if result.status is VideoStatus.FAILED:
            return
        try:
            checkpoint.save(paths.holder, video, key, result, paths.staging)
        except OSError as err:
            log.warning("checkpoint.write_failed", video=video, error=str(err))
        else:
            log.info("checkpoint.saved", video=video, status=result.status.value)

    def _job_report(
        self, row: JobRow, videos: list[VideoResult], status: JobStatus, code: str | None,
        message: str | None, audio: AudioResult | None = None, settings: Settings | None = None,
    ) -> JobReport:
        total = sum(v.timings_ms.get("examine", 0) + v.timings_ms.get("render", 0) for v in videos)
        return JobReport(
            job_id=row.job_id, job_name=row.name, status=status, reason_code=code,
            message=message, audio=audio, videos=videos, submitted_at=row.submitted_at,
            started_at=row.started_at, finished_at=utc_now(),
            timings_ms={"videos": round(total, 1)},
            engine=self.engine_info,
            interruptions=row.interruptions,
            # what shaped the videos; never the server's paths (the report is on the share)
            settings=(settings or self.settings).model_dump(mode="json", exclude={"paths"}),
            heygemd_version=__version__,
        )

    def _publish(self, row: JobRow, paths: JobPaths, report: JobReport) -> JobRow:
        out = self.settings.paths.outbox
        name = outbox.choose_name(outbox.safe_name(row.name), outbox.taken_names(out))
        outbox.write_results(paths.staging, report, published_as=name)
        shutil.copyfile(paths.log, paths.staging / JOB_LOG)
        moved = outbox.move_inputs(paths.original, paths.staging)
        self.store.update(row.job_id, outbox_name=name)
        outbox.publish(paths.staging, out, name)
        done = self.store.transition(
            row.job_id, STATE_OF[report.status], status=report.status.value,
            message=report.message,
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


def gave_up(times: int) -> str:
    """RESULT.txt's reason for a job given up after ``times`` failures of ours (pure)."""
    return (f"Making this job failed on our side {times} time{'s' if times != 1 else ''}, so it "
            "was given up. This is not a problem with your files as far as we can tell; the "
            "operator can find the details in the service log. Putting the folder in the "
            "inbox again starts it afresh.")


def _snapshot(folder: Path) -> inbox.Snapshot | None:
    """The job folder's entries, or None when it cannot be read (the run reports that)."""
    try:
        return inbox.scan_entries(folder)
    except OSError:
        return None


def _remove_holder(holder: Path) -> None:
    """work/<job_id> is empty once the originals moved; anything left is ours to delete."""
    shutil.rmtree(holder, ignore_errors=True)
