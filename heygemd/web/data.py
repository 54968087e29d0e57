"""What the page shows, read from what the daemon writes: its status snapshot (status.json),
the job store (read-only) and each published job's report.json. Nothing here writes.

Files are offered only by index into the list a job's own report names (its pictures and
previews), resolved inside that job's outbox folder: a path never comes from a URL.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from heygemd.daemon import lock
from heygemd.daemon.status import (
    STATUS_JSON,
    FarmVideo,
    Problem,
    StatusView,
    farm_words,
    progress_words,
    read_view,
)
from heygemd.daemon.store import DB_NAME, JobRow, State, Store, utc_now
from heygemd.report import JobReport
from heygemd.settings import Settings

RESULTS_SHOWN = 10  # recent jobs on the page


def open_store(settings: Settings) -> Store:
    """The job store, read-only; with no daemon running, opened as unchanging (see Store)."""
    stopped = lock.holder(settings.paths.state) is None
    return Store(settings.paths.state, readonly=True, unchanging=stopped)
PICTURE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class VideoCard:
    """One video of a finished job: its verdict in RESULT.txt's words, and its pictures
    (indexes into the job's servable files)."""

    name: str
    status: str
    output: str | None
    message: str | None
    warnings: list[str] = field(default_factory=list)
    pictures: list[int] = field(default_factory=list)
    preview: int | None = None


@dataclass(frozen=True)
class ResultCard:
    job_id: str
    name: str
    status: str  # done | partial | rejected | failed
    outbox_name: str | None
    message: str | None
    finished_at: str | None
    videos: list[VideoCard] = field(default_factory=list)
    interruptions: int = 0


def read_snapshot(settings: Settings) -> StatusView:
    """The status as `heygemd status` sees it (:func:`heygemd.daemon.status.read_view`)."""
    return read_view(settings.paths.state, settings.paths.state / STATUS_JSON,
                     settings.status_file().with_name(STATUS_JSON))


def recent_rows(settings: Settings, limit: int = RESULTS_SHOWN) -> list[JobRow]:
    if not (settings.paths.state / DB_NAME).is_file():
        return []
    store = open_store(settings)
    try:
        return store.recent(limit)
    finally:
        store.close()


def job_row(settings: Settings, job_id: str) -> JobRow | None:
    if not (settings.paths.state / DB_NAME).is_file():
        return None
    store = open_store(settings)
    try:
        return store.get(job_id)
    finally:
        store.close()


def read_report(outbox: Path, row: JobRow) -> dict[str, Any] | None:
    """The published report.json of ``row``, or None (not published, moved away, damaged)."""
    if row.outbox_name is None or row.state not in (State.DONE, State.REJECTED, State.FAILED):
        return None
    try:
        text = (outbox / row.outbox_name / "report.json").read_text(encoding="utf-8")
        report = JobReport.model_validate_json(text)  # on the share: anyone may have edited it
    except (OSError, ValueError):
        return None
    return report.model_dump(mode="json") if report.job_id == row.job_id else None


def is_plain_name(name: object) -> bool:
    """A single visible file name: no folder part, not hidden, not '..' (pure)."""
    return (isinstance(name, str) and bool(name) and "/" not in name and "\\" not in name
            and "\0" not in name and not name.startswith("."))


def servable(report: dict[str, Any]) -> list[str]:
    """The picture files ``report`` names (refusal and warning pictures, previews), each once,
    in the order they appear (pure): the only files the page may serve for the job."""
    names: list[str] = []
    for video in report.get("videos") or []:
        wanted = [*(video.get("pictures") or []), video.get("preview")]
        for name in wanted:
            if is_plain_name(name) and str(name).lower().endswith(PICTURE_SUFFIXES) \
                    and name not in names:
                names.append(str(name))
    return names


def result_card(row: JobRow, report: dict[str, Any] | None) -> ResultCard:
    """The page's card for a finished job (pure): the store's verdict, and per video the
    report's words and picture indexes."""
    files = servable(report) if report else []
    audio = (report or {}).get("audio") or {}
    # the audio's own warnings (it was accepted), shown with each video made, as RESULT.txt has
    heard = [f["message"] for f in audio.get("findings") or [] if f.get("severity") == "warn"]
    videos = []
    for video in (report or {}).get("videos") or []:
        pictures = list(dict.fromkeys(files.index(p) for p in video.get("pictures") or []
                                      if p in files))
        preview = video.get("preview")
        warnings = [*heard, *(f["message"] for f in video.get("findings") or []
                              if f.get("severity") == "warn")] \
            if video.get("status") == "done" else []
        videos.append(VideoCard(
            name=str(video.get("name")), status=str(video.get("status")),
            output=video.get("output"), message=video.get("message"), warnings=warnings,
            pictures=pictures, preview=files.index(preview) if preview in files else None))
    return ResultCard(
        job_id=row.job_id, name=row.name, status=row.status or row.state.value,
        outbox_name=row.outbox_name, message=row.message, finished_at=row.finished_at,
        videos=videos, interruptions=(report or {}).get("interruptions", row.interruptions))


def job_file(settings: Settings, job_id: str, index: int) -> Path | None:
    """The ``index``-th servable file of job ``job_id``: a regular file (not a link) inside
    its outbox folder, or None."""
    row = job_row(settings, job_id)
    report = read_report(settings.paths.outbox, row) if row is not None else None
    if row is None or report is None or row.outbox_name is None:
        return None
    files = servable(report)
    if not 0 <= index < len(files):
        return None
    folder = settings.paths.outbox / row.outbox_name
    path = folder / files[index]
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or path.resolve().parent != folder.resolve():
        return None
    return path


def _started(row: JobRow) -> float | None:
    if not row.started_at:
        return None
    try:
        return datetime.fromisoformat(row.started_at).timestamp()
    except ValueError:
        return None


def running_card(row: JobRow | None, now: float) -> dict[str, Any] | None:
    """The running job: video i of n, percent of the whole job, elapsed seconds and an
    estimate of the seconds left (None until 5% is done) (pure)."""
    if row is None:
        return None
    count = max(row.video_count, 1)
    done = (max(row.video_index, 1) - 1 + row.fraction) / count if row.video_index else 0.0
    started = _started(row)
    elapsed = max(now - started, 0.0) if started is not None else None
    left = elapsed * (1 - done) / done if elapsed is not None and done >= 0.05 else None
    return {"job_id": row.job_id, "name": row.name, "words": progress_words(row),
            "video_index": row.video_index, "video_count": row.video_count,
            "video_name": row.video_name, "percent": round(100 * done, 1),
            "elapsed_s": None if elapsed is None else round(elapsed),
            "left_s": None if left is None else round(left)}


def farm_card(item: FarmVideo) -> dict[str, Any]:
    """A video out on the farm's workers: which machine (host, device, process) makes it and
    how far it is, in STATUS.txt's words too (pure)."""
    host, device, pid = (None, None, None)
    if item.worker is not None:
        host, _, rest = item.worker.partition("/")
        device, _, pid = rest.partition("/")
    return {"job": item.job, "video": item.video, "worker": item.worker, "host": host,
            "device": device or None, "pid": int(pid) if pid and pid.isdigit() else None,
            "percent": round(100 * item.fraction, 1), "report_age_s": item.report_age_s,
            "words": farm_words(item)}


def queue_cards(view: StatusView) -> list[dict[str, str]]:
    """Every folder the daemon knows and has not finished, in order, with its state in the
    same words as STATUS.txt (pure)."""
    cards = [{"name": row.name, "state": "waiting for the copy to finish"
              if row.job_id in view.copying else "waiting"} for row in view.queued]
    cards += [{"name": name, "state": "being copied"} for name in view.settling]
    for kind, lines in (("cannot be taken", view.blocked), ("not taken yet", view.incomplete)):
        for line in lines:
            name, _, why = line.partition(": ")
            cards.append({"name": name, "state": f"{kind}: {why}" if why else kind})
    return cards


def machine_facts(settings: Settings, web_started: float, now: float) -> dict[str, Any]:
    """Engine, device, free disk of the outbox and work area, the daemon's uptime."""
    pid = lock.holder(settings.paths.state)
    disks: dict[str, float | None] = {}
    for place, path in (("outbox", settings.paths.outbox), ("work area", settings.paths.work)):
        try:
            disks[place] = round(shutil.disk_usage(path).free / 1024**3, 1)
        except OSError:
            disks[place] = None
    return {"engine": settings.engine.name, "device": settings.engine.device,
            "daemon_running": pid is not None, "daemon_uptime_s": _uptime(pid, now),
            "web_uptime_s": round(now - web_started), "free_gb": disks}


def _uptime(pid: int | None, now: float) -> int | None:
    """Seconds since process ``pid`` started (Linux /proc), or None."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22: start time, clock ticks after boot
        boot = next(float(line.split()[1]) for line in
                    Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return max(round(now - (boot + ticks / os.sysconf("SC_CLK_TCK"))), 0)


def page_data(settings: Settings, web_started: float) -> dict[str, Any]:
    """Everything /api/status returns: the snapshot and the cards built from it."""
    now = time.time()
    try:
        view = read_snapshot(settings)
        results = [result_card(row, read_report(settings.paths.outbox, row))
                   for row in recent_rows(settings)]
    except sqlite3.Error as err:  # shown on the page, not a 500
        view = StatusView(updated_at=utc_now(), running=None, queued=(), recent=(),
                          problems=(Problem("store", f"the job database cannot be read ({err})"),))
        results = []
    return {
        "updated_at": view.updated_at,
        "stopped": view.stopped, "stopping": view.stopping,
        "problems": [asdict(p) for p in view.problems],
        "running": running_card(view.running, now),
        "also_running": [running_card(row, now) for row in view.also_running],
        "farm": [farm_card(item) for item in view.farm],
        "queue": queue_cards(view),
        "loose": list(view.loose),
        "results": [asdict(card) for card in results],
        "machine": machine_facts(settings, web_started, now),
        "snapshot": json.loads(json.dumps(asdict(view), default=str)),
    }
