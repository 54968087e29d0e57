"""What users and operators see without a terminal. One typed snapshot (:class:`StatusView`,
built by :func:`store_view`) and its views: status.json (the snapshot itself, for programs and
the web page), the STATUS file beside the outbox and `heygemd status` (:func:`status_text`),
and systemd's STATUS= line (:func:`status_line`). Pure: rows in, text out, but for
:func:`read_view`, the one reader other processes (`heygemd status`, the web page) use."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heygemd.daemon import lock
from heygemd.daemon.inbox import EntryKind, Snapshot, has_input, has_marker
from heygemd.daemon.store import DB_NAME, JobRow, JobStore, State, Store, utc_now
from heygemd.settings import WatchSettings
from heygemd.validation import jobfiles

SNAPSHOT_FORMAT = 1  # status.json's "format": raised when a field changes meaning
STATUS_JSON = "status.json"  # beside the STATUS file, and in the state folder (readers' copy)


@dataclass(frozen=True)
class Problem:
    """A service problem, shown until it goes away. ``kind``: "inbox" (missing or not
    mounted), "disk" (below daemon.min_free_gb), "job" (a job waits on a machine fault or an
    error of ours), "status" (the status files cannot be written); ``words``: plain words for
    users, no server path."""

    kind: str
    words: str


@dataclass(frozen=True)
class FarmVideo:
    """A video out on the farm's workers (the farm's intake only): ``worker`` (host/device/
    pid) is None until a worker has taken it; ``fraction`` 0..1 of the video as that worker
    last reported, ``report_age_s`` seconds before the snapshot."""

    job: str
    video: str
    worker: str | None = None
    fraction: float = 0.0
    report_age_s: float | None = None

    @property
    def host(self) -> str | None:
        return None if self.worker is None else self.worker.split("/")[0]


STALE_REPORT_S = 15.0  # a worker reports at least once a second while it makes a video


def farm_words(item: FarmVideo) -> str:
    """'v1.mp4 of first: on gpu-box-2 (gpu0, pid 4242), 42%' (pure)."""
    head = f"{item.video} of {item.job}"
    if item.worker is None:
        return f"{head}: waiting for a free worker"
    host, _, rest = item.worker.partition("/")
    device, _, pid = rest.partition("/")
    where = f"on {host} ({device}, pid {pid})" if pid else f"on {item.worker}"
    words = f"{head}: {where}, {round(item.fraction * 100)}%"
    if item.report_age_s is not None and item.report_age_s > STALE_REPORT_S:
        words += (f", no report for {item.report_age_s:.0f} s (if that worker is gone, "
                  "another one takes the video over)")
    return words


@dataclass(frozen=True)
class StatusView:
    """The status snapshot: everything the status views show. ``problems``: service problems
    (inbox unavailable, disk low); ``settling``: inbox folders seen but not yet complete."""

    updated_at: str
    running: JobRow | None
    queued: Sequence[JobRow]
    recent: Sequence[JobRow]
    settling: Sequence[str] = field(default_factory=tuple)
    problems: Sequence[Problem] = field(default_factory=tuple)
    stopped: bool = False
    copying: Sequence[str] = field(default_factory=tuple)  # queued job ids still being written
    # inbox folders that cannot become a job as they are: "name: what to do"
    incomplete: Sequence[str] = field(default_factory=tuple)
    # Only for `heygemd status` (another process): who holds the lock (None: nobody) and the
    # inbox folders not yet taken, each with how ready it looks.
    stopping: bool = False  # a stop was requested; the current video is being finished
    daemon_pid: int | None = None
    inbox: Sequence[str] | None = None
    # names of files / links in the inbox itself, not in a job folder (left alone)
    loose: Sequence[str] = field(default_factory=tuple)
    # ready inbox folders the service could not move out of the inbox: "name: what to do"
    blocked: Sequence[str] = field(default_factory=tuple)
    ran_once: bool = False  # written by `heygemd once` (a batch run), not the service
    farm: Sequence[FarmVideo] = field(default_factory=tuple)  # videos out on the workers
    # the farm's intake runs jobs side by side: the ones beside ``running`` (oldest first)
    also_running: Sequence[JobRow] = field(default_factory=tuple)


def progress_words(row: JobRow) -> str:
    """'video 1 of 3 (intro.mp4), 42%', 'checking the audio (voice.wav), 40%' or 'checking
    the files' (pure)."""
    if row.state is State.VALIDATING or row.video_count == 0:
        return "checking the files"
    if row.video_index == 0 and row.video_name:
        return f"checking the audio ({row.video_name}), {round(row.fraction * 100)}%"
    index = max(row.video_index, 1)
    name = f" ({row.video_name})" if row.video_name else ""
    return f"video {index} of {row.video_count}{name}, {round(row.fraction * 100)}%"


STOPPING_WORDS = ("stopping: finishing the current video; then the job is published if that "
                  "was its last video, otherwise it goes back to the queue")


def status_line(view: StatusView) -> str:
    """One line for systemd STATUS= (pure)."""
    parts = []
    if view.stopped:
        parts.append("stopped")
    elif view.stopping:
        parts.append(STOPPING_WORDS if view.running is not None else "stopping")
    if view.running is not None:
        parts.append(f"running {view.running.name}: {progress_words(view.running)}")
        if view.also_running:
            parts.append(f"also running {', '.join(r.name for r in view.also_running)}")
    elif not view.stopped:
        parts.append("idle")
    if view.farm:
        taken = sum(1 for item in view.farm if item.worker is not None)
        parts.append(f"{taken} of {len(view.farm)} videos out on workers")
    parts.append(f"{len(view.queued)} queued")
    if view.blocked:
        parts.append(f"{len(view.blocked)} ready in the inbox but cannot be taken")
    parts += [p.words for p in view.problems]
    return "; ".join(parts)


RESULT_NOTE_CHARS = 100


def _first_sentence(message: str) -> str:
    """The first sentence of ``message``, at most RESULT_NOTE_CHARS long: the whole reason is
    in the job's RESULT.txt (pure)."""
    found = re.search(r"[.!?](?=\s)", message)
    short = message[: found.end()] if found else message
    if len(short) > RESULT_NOTE_CHARS:
        short = short[: RESULT_NOTE_CHARS - 3].rstrip() + "..."
    return short


def _result_line(row: JobRow) -> str:
    where = f" -> outbox/{row.outbox_name}" if row.outbox_name else ""
    what = row.status or row.state.value
    # "see below" points into RESULT.txt; below this line are other jobs
    note = (f" ({_first_sentence(row.message).replace('see below', 'see its RESULT.txt')})"
            if row.message and row.state is not State.DONE else "")
    return f"  {what:<8} {row.name}{where}{note}  [{row.finished_at or ''}]"


EMPTY_WORDS = "empty: add the audio and video files"
SUBFOLDERS_WORDS = "only subfolders: put the files directly in the job folder"


def not_ready_words(snap: Snapshot | None) -> str | None:
    """Why an inbox folder will never be taken as it is (pure): nothing in it but subfolders
    or hidden/temporary files. None when it holds a file (then it is being copied or ready)."""
    if snap is None or has_input(snap):
        return None
    hidden = jobfiles.hidden_inputs(snap)
    if hidden:
        shown = ", ".join(f"'{n}'" for n in hidden[:LOOSE_SHOWN])
        more = f" and {len(hidden) - LOOSE_SHOWN} more" if len(hidden) > LOOSE_SHOWN else ""
        return f"only hidden files ({shown}{more}): {jobfiles.HIDDEN_RULE}"
    return SUBFOLDERS_WORDS if any(e.kind is EntryKind.DIR for e in snap) else EMPTY_WORDS


def inbox_words(snap: Snapshot, age_seconds: float | None, watch: WatchSettings) -> str:
    """How ready an inbox folder looks to `heygemd status` (pure). ``age_seconds``: since the
    newest change inside it (None when empty)."""
    words = not_ready_words(snap)
    if words is not None:
        return words
    if watch.require_ready_marker:
        if has_marker(snap, watch.ready_marker):
            return "ready (READY file present)"
        return f"waiting for a {watch.ready_marker} file"
    if age_seconds is not None and age_seconds < watch.settle_seconds:
        return f"still being copied (changed {age_seconds:.0f} s ago)"
    return "looks ready (nothing changed lately)"


LOOSE_SHOWN = 5  # loose names listed by name; the rest are counted


def loose_words(names: Sequence[str]) -> str:
    """The one status line for loose entries in the inbox (pure): "Not a job folder (left
    alone): 'voice.wav' - put the audio and videos together in a folder"."""
    shown = ", ".join(f"'{n}'" for n in names[:LOOSE_SHOWN])
    if len(names) > LOOSE_SHOWN:
        shown += f" and {len(names) - LOOSE_SHOWN} more"
    return (f"Not a job folder (left alone): {shown} - put the audio and videos together in "
            "a folder")


def _head(view: StatusView) -> str:
    if view.inbox is not None:  # `heygemd status`, from outside the daemon
        if view.daemon_pid is None:
            return f"heygemd is NOT RUNNING (jobs wait until it starts) - {view.updated_at}"
        pid = f" (pid {view.daemon_pid})" if view.daemon_pid else ""
        return f"heygemd is running{pid} - {view.updated_at}"
    if view.stopped and view.ran_once:
        return ("heygemd ran once and stopped (new jobs wait for its next run) - updated "
                f"{view.updated_at}")
    if view.stopped:
        return f"heygemd is STOPPED (jobs wait until it starts again) - updated {view.updated_at}"
    return f"heygemd - updated {view.updated_at}"


def status_text(view: StatusView) -> str:
    """The STATUS file / `heygemd status` output (pure)."""
    lines = [_head(view), ""]
    lines += [f"PROBLEM: {p.words}" for p in view.problems]
    if view.problems:
        lines.append("")
    if view.stopping:
        lines += [STOPPING_WORDS[0].upper() + STOPPING_WORDS[1:] if view.running is not None
                  else "Stopping: no new job is taken.", ""]
    if view.running is not None:
        lines.append(f"Working on: {view.running.name} - {progress_words(view.running)}")
        lines += [f"Also working on: {row.name} - {progress_words(row)}"
                  for row in view.also_running]
    else:
        lines.append("Working on: nothing")
    if view.farm:
        lines.append("On the farm's workers:")
        lines += [f"  - {farm_words(item)}" for item in view.farm]
    lines.append(f"Waiting in queue: {len(view.queued)}")
    lines += [
        f"  {i}. {row.name}" + (" (waiting for the copy to finish)"
                                if row.job_id in view.copying else "")
        for i, row in enumerate(view.queued, start=1)
    ]
    if view.settling:
        lines.append("Being copied (taken once nothing changes):")
        lines += [f"  - {name}" for name in view.settling]
    if view.blocked:
        lines.append("Ready but cannot be taken:")
        lines += [f"  - {line}" for line in view.blocked]
    if view.incomplete:
        lines.append("Not taken (nothing to process yet):")
        lines += [f"  - {line}" for line in view.incomplete]
    if view.inbox:
        lines.append("In the inbox, not taken yet:")
        lines += [f"  - {line}" for line in view.inbox]
    if view.loose:
        lines.append(loose_words(view.loose))
    lines += ["", "Last results:"]
    lines += [_result_line(r) for r in view.recent] or ["  (none yet)"]
    return "\n".join(lines) + "\n"


def store_view(
    store: JobStore, settling: Sequence[str] = (), problems: Sequence[Problem] = (),
    stopped: bool = False, copying: Sequence[str] = (), stopping: bool = False,
    incomplete: Sequence[str] = (), loose: Sequence[str] = (), blocked: Sequence[str] = (),
    ran_once: bool = False, farm: Sequence[FarmVideo] = (),
) -> StatusView:
    """The snapshot: the store's jobs, and what only the daemon knows (settling folders,
    problems, ...) as it gives them. The one way a StatusView is built, by the daemon and by
    `heygemd status` alike."""
    active = store.in_states(State.VALIDATING, State.RUNNING)
    return StatusView(
        updated_at=utc_now(), running=active[0] if active else None,
        also_running=tuple(active[1:]),
        queued=store.in_states(State.QUEUED), recent=store.recent(5),
        settling=tuple(settling), problems=tuple(problems), stopped=stopped,
        copying=tuple(copying), stopping=stopping, incomplete=tuple(incomplete),
        loose=tuple(loose), blocked=tuple(blocked), ran_once=ran_once, farm=tuple(farm),
    )


def read_view(state: Path, *snapshots: Path) -> StatusView:
    """The view from outside the daemon: the running daemon's own snapshot (the newest of
    ``snapshots``, status.json files: its problems included) when one holds ``state``, else the
    store's, marked stopped (opened unchanging then, so a reader that may not write in
    ``state`` can open it). Raises sqlite3.Error when the store cannot be read."""
    pid = lock.holder(state)
    written = _newest(snapshots) if pid is not None else None
    if written is not None:
        return written
    if not (state / DB_NAME).is_file():
        return StatusView(updated_at=utc_now(), running=None, queued=(), recent=(),
                          stopped=pid is None)
    store = Store(state, readonly=True, unchanging=pid is None)
    try:
        return store_view(store, stopped=pid is None)
    finally:
        store.close()


def _newest(paths: Sequence[Path]) -> StatusView | None:
    """The most recently updated of the snapshots at ``paths`` that can be read (a daemon of an
    older version writes the outbox's alone), or None."""
    found = [view for view in map(_written_snapshot, paths) if view is not None]
    return max(found, key=lambda view: view.updated_at, default=None)


def _written_snapshot(path: Path) -> StatusView | None:
    """status.json, or None when it is not there yet or from another version."""
    try:
        return snapshot_from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def snapshot_json(view: StatusView) -> str:
    """status.json: the snapshot as JSON (pure). Job rows carry their store columns; states
    are their names ("queued", "running", ...)."""
    data = {"format": SNAPSHOT_FORMAT, **dataclasses.asdict(view)}
    return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"


def snapshot_from_json(text: str) -> StatusView:
    """The snapshot status.json holds; ValueError when it is not one of this format."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.pop("format", None) != SNAPSHOT_FORMAT:
        raise ValueError("not a heygemd status snapshot of this format")

    def row(fields: dict[str, Any]) -> JobRow:
        return JobRow(**{**fields, "state": State(fields["state"])})

    try:
        return StatusView(**{
            **data,
            "running": row(data["running"]) if data.get("running") else None,
            "queued": tuple(row(r) for r in data["queued"]),
            "recent": tuple(row(r) for r in data["recent"]),
            "problems": tuple(Problem(**p) for p in data.get("problems", ())),
            "farm": tuple(FarmVideo(**f) for f in data.get("farm", ())),
            "also_running": tuple(row(r) for r in data.get("also_running", ())),
            **{k: tuple(data[k]) for k in ("settling", "copying", "incomplete", "loose",
                                           "blocked") if data.get(k) is not None},
        })
    except (KeyError, TypeError) as err:
        raise ValueError(f"damaged status snapshot: {err}") from err
