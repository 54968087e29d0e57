"""Make one claimed job folder into staged results and a JobReport: folder checks -> audio ->
each video. No job store, no outbox, no checkpoint files: what the caller keeps between runs
(which videos are done, progress, stop requests) comes in through :class:`JobHooks`, so the
same function serves the single-machine daemon and a worker on another machine.

A refused or failed job still gets its report (the user must see why). Raises only what must
end the run without a report: JobInterrupted (a stop), DiskFull and other machine faults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import structlog

from heygemd import __version__
from heygemd.contract import ProgressFn
from heygemd.daemon import inbox, outbox
from heygemd.daemon.store import utc_now
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
from heygemd.engines.base import Engine
from heygemd.errors import JobInterrupted
from heygemd.report import AudioResult, JobReport, JobStatus, VideoResult, job_status
from heygemd.settings import OutputSettings, Settings
from heygemd.validation import jobfiles
from heygemd.validation.jobtoml import job_settings

log = structlog.get_logger(__name__)


class WarmStop(JobInterrupted):  # noqa: N818 - a control-flow signal like its parent
    """A stop was requested and the current video is done (and kept), but others remain: the
    job goes back to the queue and resumes with them."""


class AudioCheckLike(Protocol):
    result: AudioResult


class EngineFacts(Protocol):
    """What a report and the status name of whatever makes the videos."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def device(self) -> str: ...


class Prepared(Protocol):
    """What the daemon builds once to make jobs (the pipeline, or the farm's intake): started,
    shut down, and its engine named in reports."""

    @property
    def engine(self) -> EngineFacts: ...

    def startup(self) -> None: ...

    def shutdown(self) -> None: ...


@runtime_checkable
class PipelineLike(Prepared, Protocol):
    """What making a job here needs of heygemd.pipeline.Pipeline."""

    @property
    def engine(self) -> Engine: ...

    def check_audio(
        self, audio: Path, progress: ProgressFn | None = None, *,
        output: OutputSettings | None = None,
    ) -> Any: ...

    def process_video(
        self, video: Path, audio: Any, output: Path, pictures_dir: Path, progress: ProgressFn
    ) -> VideoResult: ...


class JobHooks(Protocol):
    """What the caller keeps and decides while a job is made."""

    def running(self, files: jobfiles.JobFiles, settings: Settings) -> None:
        """The folder passed its checks; its audio is checked next (``settings``: the job's
        own, job.toml applied). Called before any input is read."""

    def progress(self, index: int, count: int, name: str, fraction: float) -> None:
        """``index`` 1-based video (0: the audio), ``fraction`` 0..1 of it; 0 before each
        video, 1 after it. May raise JobInterrupted."""

    def recall(self, video: str, output: str) -> VideoResult | None:
        """A result kept by an earlier run of this job, its files put back into staging under
        ``output``; None when the video must be made."""

    def keep(self, video: str, result: VideoResult) -> None:
        """A video is finished: keep its result (and staged files) for a later run."""

    def should_stop(self) -> bool:
        """A stop was requested: no new video is started (WarmStop) once one is done."""


@dataclass(frozen=True)
class ClaimedJob:
    """A job folder claimed for making, and what earlier runs left to know."""

    job_id: str
    name: str  # the folder name the user gave
    folder: Path  # the claimed folder (the user's files)
    staging: Path  # where outputs and pictures are written
    submitted_at: str | None = None
    started_at: str | None = None
    faults: int = 0  # runs ended by the job's own doing
    interruptions: int = 0  # runs ended from outside
    crashes: dict[str, int] = field(default_factory=dict)  # video -> process crashes


def make_job(
    job: ClaimedJob, pipeline: PipelineLike, settings: Settings, engine_info: dict[str, str],
    hooks: JobHooks,
) -> JobReport:
    """Check ``job.folder`` and make each of its videos into ``job.staging``; the report.
    ``settings``: the service's (a job.toml in the folder overrides its [output])."""
    return _Making(job, pipeline, settings, engine_info, hooks).report()


@dataclass
class _Making:
    job: ClaimedJob
    pipeline: PipelineLike
    settings: Settings
    engine_info: dict[str, str]
    hooks: JobHooks

    def report(self) -> JobReport:
        job, folder = self.job, self.job.folder
        if job.faults >= self.settings.daemon.max_attempts:
            return self._report([], JobStatus.FAILED, "crash_loop", gave_up(job.faults))
        if inbox.is_link(folder):  # swapped for a link while waiting: never follow it
            log.warning("job.refused", code="symlink", file=None, removed=[])
            return self._report([], JobStatus.REJECTED, "symlink", SWAPPED_FOR_LINK)
        entries = inbox.scan_entries(folder)
        files, folders = inbox.unused(entries)
        found = inbox.classify(entries, self.settings.limits)
        if isinstance(found, inbox.FolderProblem):
            removed = inbox.strip_unsafe(folder, entries)
            log.warning("job.refused", code=found.code, file=found.file, removed=removed)
            report = self._report(not_checked(folder_videos(entries), found),
                                  JobStatus.REJECTED, found.code, found.message)
        else:
            report = self._with_settings(found)
        return report.model_copy(update={
            "ignored_files": list(files), "ignored_folders": list(folders),
            "hidden_files": list(jobfiles.hidden_inputs(entries))})

    def _with_settings(self, files: jobfiles.JobFiles) -> JobReport:
        settings = self.settings
        if files.job_toml is not None:
            try:
                settings = job_settings(settings, (self.job.folder / files.job_toml).read_bytes())
            except ValueError as err:
                return self._report(not_checked(files.videos), JobStatus.REJECTED, "job_toml",
                                    str(err))
        return self._videos(files, settings)

    def _videos(self, files: jobfiles.JobFiles, settings: Settings) -> JobReport:
        job, hooks, count = self.job, self.hooks, len(files.videos)
        hooks.running(files, settings)
        audio = self.pipeline.check_audio(
            job.folder / files.audio,
            lambda fraction: hooks.progress(0, count, files.audio, fraction),
            output=settings.output)
        if not audio.result.accepted:
            refused = rejected_videos(files.videos, "audio_rejected", AUDIO_REFUSED_WORDS)
            return self._report(refused, JobStatus.REJECTED, "audio_rejected",
                                audio_refusal(audio.result), audio.result, settings)
        names = outbox.output_names(files.videos)
        videos: list[VideoResult] = []
        for index, video in enumerate(files.videos, start=1):

            def progress(fraction: float, index: int = index, video: str = video) -> None:
                hooks.progress(index, count, video, fraction)

            result = hooks.recall(video, names[video])
            if result is None and job.crashes.get(video, 0) >= settings.daemon.max_attempts:
                log.error("video.set_aside", video=video, crashes=job.crashes[video])
                result = crashed_video(video, job.crashes[video])
            elif result is None:
                if videos and hooks.should_stop():
                    raise WarmStop(f"stop requested before video {index} of {count}; "
                                   f"{len(videos)} kept for the restart")
                progress(0.0)
                result = self.pipeline.process_video(
                    job.folder / video, audio, job.staging / names[video], job.staging, progress)
                log.info("video.result", video=video, status=result.status.value,
                         reason=result.reason_code)
                hooks.keep(video, result)
            videos.append(result)
            progress(1.0)
        status = job_status(videos)
        code, reason = overall_reason(videos) if status in NOTHING_MADE else (None, None)
        return self._report(videos, status, code, reason, audio.result, settings)

    def _report(
        self, videos: list[VideoResult], status: JobStatus, code: str | None,
        message: str | None, audio: AudioResult | None = None, settings: Settings | None = None,
    ) -> JobReport:
        job = self.job
        total = sum(v.timings_ms.get("examine", 0) + v.timings_ms.get("render", 0) for v in videos)
        return JobReport(
            job_id=job.job_id, job_name=job.name, status=status, reason_code=code,
            message=message, audio=audio, videos=videos, submitted_at=job.submitted_at,
            started_at=job.started_at, finished_at=utc_now(),
            timings_ms={"videos": round(total, 1)},
            engine=self.engine_info,
            interruptions=job.interruptions,
            # what shaped the videos; never the server's paths (the report is on the share)
            settings=report_settings(settings or self.settings),
            heygemd_version=__version__,
        )


# Settings never written into report.json (on the users' share): server paths, where the
# page listens and its token, the farm's broker address (it may hold a password), and the
# operator's Wav2Lip checkpoint path.
PRIVATE_SETTINGS: dict[str, Any] = {
    "paths": True, "web": True, "farm": True, "engine": {"wav2lip": {"checkpoint"}},
}


def report_settings(settings: Settings) -> dict[str, Any]:
    """The settings that shaped a job, as report.json records them (pure): no secrets, no
    server paths."""
    present = {k: v for k, v in PRIVATE_SETTINGS.items() if k in type(settings).model_fields}
    return settings.model_dump(mode="json", exclude=present)


def gave_up(times: int) -> str:
    """RESULT.txt's reason for a job given up after ``times`` failures of ours (pure)."""
    return (f"Making this job failed on our side {times} time{'s' if times != 1 else ''}, so it "
            "was given up. This is not a problem with your files as far as we can tell; the "
            "operator can find the details in the service log. Putting the folder in the "
            "inbox again starts it afresh.")
