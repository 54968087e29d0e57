"""`heygemd worker [--gpu N]`: a Celery worker that makes one video at a time.

The pipeline (engine, face models) is built once, before the worker takes its first message,
and reused for every video. The worker runs Celery's solo pool: the video is made in this
process, so a kill -9 leaves its message unacknowledged in the broker, which hands it to
another worker after the visibility timeout. SIGTERM: warm shutdown (the current video is
finished); a second one or SIGQUIT: cold (the message goes back). The broker lost and back:
the Celery loop is started afresh (:mod:`heygemd.farm.control`).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from heygemd.daemon.making import PipelineLike
from heygemd.daemon.status import STALE_REPORT_S
from heygemd.daemon.verdicts import AUDIO_REFUSED_WORDS, crashed_video, rejected_videos
from heygemd.errors import JobInterrupted, MachineFault, MediaError, ProcessingError
from heygemd.farm import share
from heygemd.farm.app import TASK_NAME, announced_share, make_app
from heygemd.farm.control import WorkerControl, reset_celery_state
from heygemd.report import AUDIO_REREAD_FAILED, VideoResult, VideoStatus
from heygemd.settings import Settings
from heygemd.validation.jobtoml import job_settings

if TYPE_CHECKING:
    from celery import Celery

log = structlog.get_logger(__name__)

PROGRESS_INTERVAL = 1.0  # seconds between progress files on the share
RETRY_SECONDS = 30.0  # a machine fault (share full or gone): the video is tried again after
# this machine does not see the intake's share: the video is held this long (the other workers
# take the queue meanwhile), then handed back
SHARE_HOLD_SECONDS = 10.0


class TimeLimitExceeded(ProcessingError):
    """A video took longer than ``farm.task_time_limit_seconds``."""


def worker_name(gpu: int | None) -> str:
    """host/device/pid: which machine, which GPU, which process (pure but for the lookups)."""
    return f"{socket.gethostname()}/{'cpu' if gpu is None else f'gpu{gpu}'}/{os.getpid()}"


def make_video(
    pipeline: PipelineLike, settings: Settings, engine: dict[str, str], worker: str,
    order: share.VideoOrder, check: Callable[[], None] = lambda: None,
) -> str:
    """Make ``order``'s video into the share's result slot. Returns what happened: "made",
    "duplicate" (another run got there first, or is making it now), "gone" (the job left the
    work area).
    ``check`` is called at each progress report; it may raise JobInterrupted (a cold stop):
    nothing is left on the share then and the start is not counted against the video."""
    work = settings.paths.work
    share.check_share(work, order.share)  # raises ShareNotSeen: nothing is judged "gone"
    folder = work / order.job_id / order.name
    if share.read_result(work, order) is not None:
        return "duplicate"
    if not folder.is_dir():
        return "gone"
    if _made_beside(work, order, worker):
        # a second copy of the order (sent again by a restarted intake) while another worker
        # makes the video: left to it. Its own copy is acknowledged only when it is done, so
        # where that worker dies the broker hands its copy out again (visibility_timeout)
        log.info("farm.made_beside", job_id=order.job_id, video=order.video)
        return "duplicate"
    try:
        marker = share.start_attempt(work, order)
        scratch = share.new_scratch(work, order.job_id)
    except FileNotFoundError:  # published meanwhile (its holder deleted)
        return "gone"
    try:
        try:
            video, audio = _made(pipeline, settings, worker, order, scratch,
                                 share.attempts(marker), check)
        except JobInterrupted:
            marker.unlink(missing_ok=True)  # stopped from outside: not the video's doing
            share.clear_progress(work, order)
            raise
        except MediaError as err:
            if err.code != "missing_file" or _has_inputs(folder, order):
                raise
            # the intake moves a job's inputs only to publish it or put it back (it sends
            # its videos again then), never while it waits for this video: nothing to make
            log.info("farm.inputs_gone", job_id=order.job_id, video=order.video)
            return "gone"
        if video.reason_code == AUDIO_REREAD_FAILED and not _has_inputs(folder, order):
            # the sound track is read as the video is encoded: inputs moved meanwhile (the
            # job published, or put back and sent again) leave nothing to report
            log.info("farm.inputs_gone", job_id=order.job_id, video=order.video)
            return "gone"
        result = share.FarmResult(video=video, audio=audio, engine={**engine, "worker": worker},
                                  worker=worker, files=share.listed_files(scratch))
        won = share.finish(scratch, work, order, result)
    except FileNotFoundError:
        if (work / order.job_id).is_dir():
            raise
        return "gone"  # the job was published while this (second) run made its video
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("farm.video_done", job_id=order.job_id, video=order.video,
             status=video.status.value, duplicate=not won)
    return "made" if won else "duplicate"


def _made_beside(work: Path, order: share.VideoOrder, worker: str) -> bool:
    """Another worker reported progress on this video within STALE_REPORT_S."""
    seen = share.read_progress(work, order)
    return seen is not None and seen.worker != worker and time.time() - seen.at < STALE_REPORT_S


def _has_inputs(folder: Path, order: share.VideoOrder) -> bool:
    return (folder / order.audio).is_file() and (folder / order.video).is_file()


def _made(
    pipeline: PipelineLike, settings: Settings, worker: str, order: share.VideoOrder,
    scratch: Any, starts: int, check: Callable[[], None],
) -> tuple[VideoResult, Any]:
    folder = settings.paths.work / order.job_id / order.name
    progress = _progress(settings, worker, order, check)
    progress(0.0)  # taken: the intake may start its next job (Farm.room_beside)
    if order.job_toml is not None:
        settings = job_settings(settings, (folder / order.job_toml).read_bytes())
    checked = pipeline.check_audio(folder / order.audio, output=settings.output)
    if not checked.result.accepted:
        refused = rejected_videos((order.video,), "audio_rejected", AUDIO_REFUSED_WORDS)[0]
        return refused, checked.result
    if starts > settings.daemon.max_attempts:  # it killed the workers that tried it before
        log.error("video.set_aside", video=order.video, starts=starts)
        return crashed_video(order.video, starts - 1), checked.result
    try:
        video = pipeline.process_video(folder / order.video, checked, scratch / order.output,
                                       scratch, progress)
    except MachineFault:
        raise
    except Exception as err:  # an error of ours: the video's result says so, the job goes on
        log.exception("farm.video_error", video=order.video)
        video = VideoResult(name=order.video, status=VideoStatus.FAILED,
                            reason_code="internal_error", message=f"Making this video failed on "
                            f"our side ({type(err).__name__}); the operator can find the "
                            "details in the worker's log.")
    return video, checked.result


def _progress(
    settings: Settings, worker: str, order: share.VideoOrder, check: Callable[[], None],
) -> Callable[[float], None]:
    """The progress callback: a progress file now and then, the task's time limit, and
    ``check`` (a cold stop)."""
    limit = settings.farm.task_time_limit_seconds
    started = time.monotonic()
    wall_start = time.time()
    last = [float("-inf")]

    def progress(fraction: float) -> None:
        check()
        now = time.monotonic()
        if now - started > limit:
            raise TimeLimitExceeded(f"the video took longer than {limit:.0f} s")
        if now - last[0] >= PROGRESS_INTERVAL or fraction >= 1.0:
            last[0] = now
            try:
                share.write_progress(settings.paths.work, order, share.Progress(
                    worker=worker, job_id=order.job_id, video=order.video,
                    fraction=round(fraction, 3), at=time.time(), started=wall_start))
            except OSError as err:
                log.warning("farm.progress_failed", error=str(err))

    return progress


def build_app(
    settings: Settings, pipeline: PipelineLike, engine: dict[str, str], worker: str,
    control: WorkerControl,
) -> Celery:
    """The Celery app with the make-video task bound to this worker's pipeline."""
    from celery.exceptions import Reject

    app = make_app(settings.farm)

    # shared=False: a later app of this process (the loop started afresh) registers its own
    @app.task(name=TASK_NAME, bind=True, shared=False, acks_late=True,
              reject_on_worker_lost=True, max_retries=None)
    def make_video_task(task: Any, **fields: Any) -> str:
        order = share.VideoOrder.model_validate(fields)
        bound = structlog.contextvars.bound_contextvars(job_id=order.job_id, video=order.video)
        with bound:
            control.begin(order.video)
            try:
                return make_video(pipeline, settings, engine, worker, order, control.check)
            except JobInterrupted as err:  # a cold stop: the message goes back to the queue
                log.warning("farm.video_returned", reason=str(err))
                raise Reject(str(err), requeue=True) from None
            except share.ShareNotSeen as err:
                if _stale(app, settings, order):
                    log.warning("farm.order_stale", share=order.share[:8],
                                hint="an order of an earlier share (the work area was made "
                                     "anew); its intake sends its videos again")
                    return "stale"
                log.error("farm.share_not_seen", error=str(err), held_s=SHARE_HOLD_SECONDS,
                          hint="the video goes back to the queue for a worker that sees the "
                               "share; `heygemd doctor` on this machine says more")
                control.end()  # held, not hung
                control.hold(SHARE_HOLD_SECONDS)
                raise Reject(str(err), requeue=True) from None
            except MachineFault as err:
                log.error("farm.machine_fault", error=str(err), retry_in_s=RETRY_SECONDS)
                raise task.retry(countdown=RETRY_SECONDS) from err
            finally:
                control.end()

    return app


def _stale(app: Celery, settings: Settings, order: share.VideoOrder) -> bool:
    """The order names a share mark, but this machine sees the intake's current share (its
    mark is the one the intake gave the broker): the order is of an earlier share."""
    seen = share.share_id(settings.paths.work)
    if seen is None:
        return False
    try:
        return announced_share(app, settings.farm.queue) == seen
    except Exception:  # the broker gone meanwhile: not known, so not stale
        return False


def run_worker(settings: Settings, pipeline: PipelineLike, gpu: int | None) -> int:
    """Prepare the engine once, then take videos until stopped. The exit status. The Celery
    loop is started again (engine kept) when it was stopped for the broker's return."""
    from celery import signals

    pipeline.startup()
    control = WorkerControl()
    control.watch_hangs(settings.farm.task_time_limit_seconds)
    signals.worker_shutting_down.connect(control.on_shutting_down, weak=False)
    try:
        engine = pipeline.engine
        info = {"name": str(engine.name), "version": str(engine.version),
                "device": str(engine.device)}
        name = worker_name(gpu)
        log.info("worker.started", worker=name, engine=info, queue=settings.farm.queue)
        while True:
            status = _run_celery(settings, build_app(settings, pipeline, info, name, control),
                                 name, control)
            if not control.should_restart:
                log.info("worker.stopped", exit_status=status, cold=control.is_cold)
                return status
            log.warning("worker.restarting", reason="the broker is back")
    finally:
        signals.worker_shutting_down.disconnect(control.on_shutting_down)
        pipeline.shutdown()


def _run_celery(settings: Settings, app: Celery, name: str, control: WorkerControl) -> int:
    """One run of Celery's worker loop (solo pool) with the broker watched; its exit status."""
    reset_celery_state()
    if control.is_stopping:  # the operator's stop came between two runs: none more
        return 0
    worker = app.Worker(
        hostname=f"heygemd-{name.replace('/', '-')}",
        pool="solo", concurrency=1, queues=[settings.farm.queue], without_gossip=True,
        without_mingle=True, without_heartbeat=True, loglevel=settings.logging.level.upper(),
        redirect_stdouts=False)
    control.watch(app)
    try:
        worker.start()
    finally:
        control.end_watch()
        app.close()
    return int(worker.exitcode or 0)
