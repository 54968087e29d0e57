"""Start-up reconciliation after a crash (kill -9 at any moment): work/ and the outbox are made
to agree with the store, so that no job is lost and none is published twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import structlog

from heygemd.daemon import checkpoint, outbox
from heygemd.daemon.jobs import STATE_OF, JobPaths
from heygemd.daemon.store import ACTIVE, FINAL, JobRow, State, Store
from heygemd.report import JobStatus
from heygemd.settings import Settings

log = structlog.get_logger(__name__)


def reconcile(settings: Settings, store: Store) -> None:
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
    for name in outbox.sweep_temp_twins(settings.status_file()):  # killed mid-write
        log.warning("recovery.temp_removed", file=name)


def _adopt_unrecorded(work: Path, store: Store) -> None:
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


def _recover_active(settings: Settings, store: Store, row: JobRow) -> None:
    """A job that was validating or running when the daemon died."""
    paths = JobPaths.of(settings, row)
    out = settings.paths.outbox
    if outbox.published_job(out, row.outbox_name) == row.job_id:
        status = _published_status(out / str(row.outbox_name))
        store.transition(row.job_id, STATE_OF[status], status=status.value)
        shutil.rmtree(paths.holder, ignore_errors=True)
        shutil.rmtree(paths.staging, ignore_errors=True)
        log.warning("recovery.already_published", job_id=row.job_id, outbox=row.outbox_name)
        return
    outbox.restore_inputs(paths.staging, paths.original)
    shutil.rmtree(paths.staging, ignore_errors=True)
    store.transition(row.job_id, State.QUEUED, outbox_name=None)
    log.warning("recovery.requeued", job_id=row.job_id, name=row.name, attempts=row.attempts)


def _published_status(folder: Path) -> JobStatus:
    try:
        data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        return JobStatus(data["status"])
    except (OSError, ValueError, KeyError):
        return JobStatus.DONE


def _drop_stale_staging(out: Path) -> None:
    """Every job is queued or final by now, so no staging folder is still needed."""
    for staging in out.glob(f"{outbox.STAGING_PREFIX}*"):
        shutil.rmtree(staging, ignore_errors=True)
        log.info("recovery.staging_removed", folder=staging.name)

