"""The farm's intake: `heygemd run` with ``[farm] broker``. The daemon does everything it does
alone (watch, settle, claim, its own SQLite store, publish by rename); only making a job
differs: :func:`make_farm_job` checks the folder as :func:`heygemd.daemon.making.make_job` does,
then sends one Celery task per video and collects the results the workers put on the share.
The videos of a job run on as many workers as are free; the job is published once all are
back. A result already on the share (from before an intake restart) is taken, not made again.

Jobs run side by side (the daemon gives each a thread): the next job starts once every video
sent so far has been taken by a worker (:meth:`Farm.room_beside`), so a free worker finds the
next job's videos waiting whatever the jobs' sizes, and the queue holds no more than it must.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from heygemd.daemon import outbox
from heygemd.daemon.making import ClaimedJob, JobHooks, WarmStop, _Making
from heygemd.daemon.status import FarmVideo
from heygemd.daemon.verdicts import (
    AUDIO_REFUSED_WORDS,
    NOTHING_MADE,
    audio_refusal,
    overall_reason,
    rejected_videos,
)
from heygemd.farm import share
from heygemd.farm.app import (
    TASK_NAME,
    announce_share,
    broker_reachable,
    broker_words,
    make_app,
)
from heygemd.report import AudioResult, JobReport, JobStatus, job_status
from heygemd.settings import Settings
from heygemd.validation import jobfiles

if TYPE_CHECKING:
    from celery import Celery

log = structlog.get_logger(__name__)

BROKER_CHECK_SECONDS = 5.0  # while videos are out: how often the broker is asked if it is up


@dataclass(frozen=True)
class FarmEngine:
    """What the intake's report names until a worker's engine is known."""

    name: str
    version: str = "farm"
    device: str = "farm"


@dataclass
class Farm:
    """The intake's side of the farm: the Celery app (built at startup, never at import), the
    broker's state and what runs where. The daemon's "pipeline": it makes nothing itself."""

    settings: Settings
    engine: FarmEngine = field(init=False)
    app: Celery | None = None
    problem: str | None = None  # why videos wait (the broker is down), for the status
    down_since: float | None = None  # time.time() the broker was first found down
    # job id -> its videos out (for the status) and whether every one is with a worker; set
    # by each job's thread, read by the daemon's loop
    running: dict[str, list[FarmVideo]] = field(default_factory=dict)
    all_taken: dict[str, bool] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)  # the broker's client
    share_mark: str = ""  # the share's mark (share.SHARE_MARK), sent in every order
    _announced: bool = False  # the broker holds the mark (for the workers' doctor)
    _next_look: float = 0.0  # monotonic: no look at the broker before this (all jobs together)
    _next_send: float = 0.0  # monotonic: while it is down, no send tried before this

    def __post_init__(self) -> None:
        self.engine = FarmEngine(self.settings.engine.name)

    def startup(self) -> None:
        self.share_mark = share.mark_share(self.settings.paths.work)
        self.app = make_app(self.settings.farm)
        with self._lock:
            self._announce()
        log.info("farm.intake_ready", share=self.share_mark[:8], announced=self._announced)

    def _announce(self) -> None:
        """Give the broker the share's mark once it answers (called holding the lock)."""
        if self._announced or self.app is None:
            return
        try:
            announce_share(self.app, self.settings.farm.queue, self.share_mark)
        except Exception as err:  # the broker down: the next successful look announces
            log.info("farm.share_not_announced", error=f"{type(err).__name__}: {err}")
        else:
            self._announced = True

    def shutdown(self) -> None:
        if self.app is not None:
            self.app.close()

    def send(self, order: share.VideoOrder) -> bool:
        """Send one task; False (and :attr:`problem` says why) when the broker is unreachable.
        While it is down, one send is tried per BROKER_CHECK_SECONDS, whichever job's."""
        assert self.app is not None, "Farm.startup() was not called"
        with self._lock:
            if self.problem is not None and time.monotonic() < self._next_send:
                return False
            try:
                self.app.send_task(TASK_NAME, kwargs=order.model_dump(mode="json"),
                                   queue=self.settings.farm.queue)
            except Exception as err:  # kombu's OperationalError, or the client's own
                self._unreachable(f"{type(err).__name__}: {err}")
                return False
            self._reachable()
            self._announce()
            return True

    def check_broker(self) -> None:
        """Look whether the broker answers (and give it the share's mark again: a Redis that
        lost its data has forgotten it), at most once per BROKER_CHECK_SECONDS whichever job's
        thread asks; a thread that finds another one looking goes on at once."""
        assert self.app is not None, "Farm.startup() was not called"
        if not self._lock.acquire(blocking=False):
            return
        try:
            if time.monotonic() < self._next_look:
                return
            self._next_look = time.monotonic() + BROKER_CHECK_SECONDS
            why = broker_reachable(self.app)
            if why is None:
                self._reachable()
                self._announced = False
                self._announce()
            else:
                self._unreachable(why)
        finally:
            self._lock.release()

    def _unreachable(self, why: str) -> None:
        self._announced = False
        self._next_send = time.monotonic() + BROKER_CHECK_SECONDS
        if self.down_since is None:
            self.down_since = time.time()
            log.error("farm.broker_unreachable", error=why)
        self.problem = broker_problem(safe_url(self.settings.farm.broker), why, self.down_since)

    def videos_out(self) -> tuple[FarmVideo, ...]:
        """The videos out on the workers, for the status (which machine, how far)."""
        return tuple(item for videos in list(self.running.values()) for item in videos)

    def room_beside(self, running: Sequence[str]) -> bool:
        """May one more job start beside ``running`` (job ids)? Only while fewer than
        ``farm.jobs_at_once`` run and each has every video it sent taken by a worker: a job
        still being checked, or with a video unsent (the broker down) or queued, holds the
        next one back."""
        if len(running) >= self.settings.farm.jobs_at_once:
            return False
        return all(self.all_taken.get(job_id, False) for job_id in running)

    def notes(self) -> dict[str, str]:
        """The farm's problems for the status: a broker that is down."""
        return {} if self.problem is None else {"farm.broker": self.problem}

    def _reachable(self) -> None:
        if self.down_since is not None:
            log.info("farm.broker_back", down_s=round(time.time() - self.down_since, 1))
        self.problem = self.down_since = None


def broker_problem(where: str, why: str, since: float) -> str:
    """The status's words while the broker is down (pure): "videos wait for the task broker at
    redis://10.0.0.5:6379/0: connection refused since 12:01 UTC"."""
    at = time.strftime("%H:%M", time.gmtime(since))
    return f"videos wait for the task broker at {where}: {broker_words(why)} since {at} UTC"


def safe_url(url: str) -> str:
    """The broker's address without its password (pure)."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def farm_maker(farm: Farm) -> Any:
    """A ``make_job``-shaped function that makes jobs on ``farm`` (for JobRunner)."""

    def make(job: ClaimedJob, _pipeline: Any, settings: Settings, engine_info: dict[str, str],
             hooks: JobHooks) -> JobReport:
        return _FarmMaking(job, _pipeline, settings, engine_info, hooks, farm).report()

    return make


@dataclass
class _FarmMaking(_Making):
    farm: Farm = field(default=None)  # type: ignore[assignment]

    def _videos(self, files: jobfiles.JobFiles, settings: Settings) -> JobReport:
        job, hooks = self.job, self.hooks
        hooks.running(files, settings)
        work = self.settings.paths.work
        dumped = settings.model_dump(mode="json")
        names = outbox.output_names(files.videos)
        orders = [share.VideoOrder(
            job_id=job.job_id, name=job.name, index=i, video=v, audio=files.audio,
            output=names[v], job_toml=files.job_toml,
            key=share.order_key(job.folder, v, files.audio, dumped), share=self.farm.share_mark)
            for i, v in enumerate(files.videos, start=1)]
        results = self._collect(orders)
        for order in orders:
            share.copy_result(work, order, results[order.video], job.staging)
        videos = [results[o.video].video for o in orders]
        audio = results[orders[0].video].audio
        self.engine_info = {**results[orders[0].video].engine,
                            "workers": ", ".join(sorted({r.worker for r in results.values()}))}
        if not audio.accepted:
            return self._refused_audio(files, audio, settings)
        status = job_status(videos)
        code, reason = overall_reason(videos) if status in NOTHING_MADE else (None, None)
        return self._report(videos, status, code, reason, audio, settings)

    def _refused_audio(
        self, files: jobfiles.JobFiles, audio: AudioResult, settings: Settings,
    ) -> JobReport:
        refused = rejected_videos(files.videos, "audio_rejected", AUDIO_REFUSED_WORDS)
        return self._report(refused, JobStatus.REJECTED, "audio_rejected", audio_refusal(audio),
                            audio, settings)

    def _collect(self, orders: list[share.VideoOrder]) -> dict[str, share.FarmResult]:
        """Send every video without a result on the share, then wait for all of them."""
        work, farm, count = self.settings.paths.work, self.farm, len(orders)
        results: dict[str, share.FarmResult] = {}
        unsent = [o for o in orders if share.read_result(work, o) is None]
        next_check = time.monotonic() + BROKER_CHECK_SECONDS
        try:
            while True:
                unsent = [o for o in unsent if not farm.send(o)] if unsent else unsent
                for order in orders:
                    if order.video not in results:
                        found = share.read_result(work, order)
                        if found is not None:
                            results[order.video] = found
                            log.info("farm.video_back", video=order.video, worker=found.worker,
                                     status=found.video.status.value)
                self._show(orders, results, unsent)
                if len(results) == count:
                    return results
                if self.hooks.should_stop():
                    raise WarmStop(f"stop requested; {count - len(results)} of {count} videos "
                                   "are left with the workers, collected after the restart")
                if time.monotonic() >= next_check and not unsent:
                    farm.check_broker()
                    next_check = time.monotonic() + BROKER_CHECK_SECONDS
                time.sleep(self.settings.farm.poll_seconds)
        finally:
            farm.running.pop(self.job.job_id, None)
            farm.all_taken.pop(self.job.job_id, None)

    def _show(self, orders: list[share.VideoOrder], results: dict[str, Any],
              unsent: list[share.VideoOrder]) -> None:
        """Progress into the store (the most advanced video out), what runs where, and whether
        every video is with a worker (room for the next job)."""
        work, count, now = self.settings.paths.work, len(orders), time.time()
        running: list[FarmVideo] = []
        for order in orders:
            if order.video in results:
                continue
            seen = share.read_progress(work, order)
            running.append(FarmVideo(self.job.name, order.video) if seen is None else FarmVideo(
                self.job.name, order.video, seen.worker, seen.fraction,
                round(max(now - seen.at, 0.0), 1)))
        self.farm.running[self.job.job_id] = running
        self.farm.all_taken[self.job.job_id] = not unsent and \
            all(item.worker is not None for item in running)
        done = len(results)
        ahead = max(running, key=lambda r: r.fraction, default=None)
        if ahead is None:
            self.hooks.progress(count, count, orders[-1].video, 1.0)
        else:
            self.hooks.progress(min(done + 1, count), count, ahead.video, ahead.fraction)
