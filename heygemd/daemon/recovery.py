"""Start-up reconciliation after a crash (kill -9 at any moment): work/ and the outbox are made
to agree with the store, so that no job is lost and none is published twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import structlog

from heygemd.daemon import checkpoint, outbox
from heygemd.daemon.jobs import STATE_OF, JobPaths, video_facts
from heygemd.daemon.status import STATUS_JSON
from heygemd.daemon.store import ACTIVE, FINAL, JobRow, JobStore, State
from heygemd.report import JobStatus
from heygemd.settings import Settings

log = structlog.get_logger(__name__)

DUMP_LOGGED = 4000  # first characters of a crash dump kept in the log line (the signal, the stacks)


def reconcile(settings: Settings, store: JobStore) -> None:
    """Adopt claimed-but-unrecorded folders, finish recorded-but-unpublished state changes,
    re-queue interrupted jobs (their originals restored), and drop stale staging folders."""
    _adopt_unrecorded(settings.paths.work, store)
    for row in store.in_states(*ACTIVE):
        _recover_active(settings, store, row)
    for row in store.in_states(State.QUEUED):
        paths = JobPaths.of(settings, row)
        outbox.restore_inputs(paths.staging, paths.original)
        if not paths.original.is_dir():
            log.error("recovery.originals_missing", job_id=row.job_id, name=row.name)
            store.transition(row.job_id, State.FAILED, status=JobStatus.FAILED.value,
                             message="The job's files were lost from the work area.")
            shutil.rmtree(paths.holder, ignore_errors=True)  # only checkpoints can be left
    _drop_stale_staging(settings.paths.outbox)
    status_file = settings.status_file()
    for path in (status_file, status_file.with_name(STATUS_JSON),
                 settings.paths.state / STATUS_JSON):
        for name in outbox.sweep_temp_twins(path):  # killed mid-write
            log.warning("recovery.temp_removed", file=name)


def _adopt_unrecorded(work: Path, store: JobStore) -> None:
    """work/<job_id>/<name> without a store row: claimed, then killed before recording."""
    for holder in sorted(p for p in work.iterdir() if p.is_dir() and not p.is_symlink()):
        row = store.get(holder.name)
        if row is not None:
            if row.state in FINAL:  # published, then killed before cleaning up
                shutil.rmtree(holder, ignore_errors=True)
            continue
        inside = [p for p in holder.iterdir() if p.name != checkpoint.CHECKPOINTS]
        if not inside:
            shutil.rmtree(holder)  # killed between mkdir and rename: nothing was claimed
        elif len(inside) == 1 and inside[0].is_dir() and not inside[0].is_symlink():
            store.add(holder.name, inside[0].name)
            log.warning("recovery.adopted", job_id=holder.name, name=inside[0].name)
        else:
            log.error("recovery.unknown_work_folder", folder=str(holder))


def _recover_active(settings: Settings, store: JobStore, row: JobRow) -> None:
    """A job that was validating or running when the daemon died."""
    paths = JobPaths.of(settings, row)
    out = settings.paths.outbox
    if outbox.published_job(out, row.outbox_name) == row.job_id:
        status, report = outbox.published_report(out / str(row.outbox_name))
        if report is not None:
            store.add_videos(video_facts(report))
        store.transition(row.job_id, STATE_OF[status], status=status.value,
                         message=report.message if report is not None else None,
                         reason_code=report.reason_code if report is not None else None)
        shutil.rmtree(paths.holder, ignore_errors=True)
        shutil.rmtree(paths.staging, ignore_errors=True)
        log.warning("recovery.already_published", job_id=row.job_id, outbox=row.outbox_name)
        return
    outbox.restore_inputs(paths.staging, paths.original)
    shutil.rmtree(paths.staging, ignore_errors=True)
    counts = _what_ended(row, _read_dump(paths.fatal_dump))
    store.transition(row.job_id, State.QUEUED, outbox_name=None, **counts)
    paths.fatal_dump.unlink(missing_ok=True)  # counted: a kill before this counts it again
    log.warning("recovery.requeued", job_id=row.job_id, name=row.name, attempts=row.attempts,
                **counts)


def _what_ended(row: JobRow, dump: str) -> dict[str, object]:
    """The store counts to raise for a run the process did not survive. A fatal-signal dump
    means it crashed: held against the video it was making (or the job, before the first
    video). No dump: killed from outside (kill -9, the OOM killer, a power cut), never held
    against the job."""
    if not dump:
        log.warning("recovery.interrupted", job_id=row.job_id, name=row.name,
                    video=row.video_name, hint="the service was killed from outside while this "
                    "job ran; it resumes and this does not count against it")
        return {"interruptions": row.interruptions + 1}
    log.error("recovery.crashed", job_id=row.job_id, name=row.name, video=row.video_name,
              dump=dump[:DUMP_LOGGED])
    if row.video_index > 0 and row.video_name:
        crashes = row.crash_counts()
        crashes[row.video_name] = crashes.get(row.video_name, 0) + 1
        return {"crashes": json.dumps(crashes, ensure_ascii=False)}
    return {"faults": row.faults + 1}


def _read_dump(path: Path) -> str:
    """The fatal-signal dump a crashed run left; "" when there is none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        return ""
    except OSError as err:
        log.warning("recovery.dump_unreadable", error=str(err))
        return ""
    return text


def _drop_stale_staging(out: Path) -> None:
    """Every job is queued or final by now, so no staging folder is still needed."""
    for staging in out.glob(f"{outbox.STAGING_PREFIX}*"):
        shutil.rmtree(staging, ignore_errors=True)
        log.info("recovery.staging_removed", folder=staging.name)

