"""Job states in an embedded SQLite database (WAL, so `heygemd status` can read while the
daemon writes).

queued -> validating -> running -> done | rejected | failed. A job that was validating or running
when the daemon died is put back to queued at the next start (see ``recovery.reconcile``).
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog

log = structlog.get_logger(__name__)

DB_NAME = "jobs.sqlite3"


class State(StrEnum):
    QUEUED = "queued"
    VALIDATING = "validating"
    RUNNING = "running"
    DONE = "done"
    REJECTED = "rejected"
    FAILED = "failed"


ACTIVE = (State.VALIDATING, State.RUNNING)
FINAL = (State.DONE, State.REJECTED, State.FAILED)

TRANSITIONS: dict[State, frozenset[State]] = {
    State.QUEUED: frozenset({State.VALIDATING, State.FAILED}),
    State.VALIDATING: frozenset({State.RUNNING, State.QUEUED, *FINAL}),
    State.RUNNING: frozenset({State.QUEUED, *FINAL}),
    State.DONE: frozenset(),
    State.REJECTED: frozenset(),
    State.FAILED: frozenset(),
}


class TransitionError(RuntimeError):
    """A state change the lifecycle does not allow (a bug, not bad input)."""


def check_transition(old: State, new: State) -> None:
    """Raise TransitionError unless ``old -> new`` is allowed (pure)."""
    if new not in TRANSITIONS[old]:
        raise TransitionError(f"job state {old} -> {new} is not allowed")


@dataclass(frozen=True)
class JobRow:
    job_id: str
    name: str  # the folder name the user gave
    state: State
    attempts: int  # runs started, whatever ended them
    submitted_at: str  # ISO 8601 UTC
    started_at: str | None
    finished_at: str | None
    outbox_name: str | None  # folder name in the outbox (set just before publishing)
    status: str | None  # JobStatus of the report (done/partial/rejected/failed)
    message: str | None
    video_index: int  # 1-based index of the running video, 0 before the first
    video_count: int
    video_name: str | None
    fraction: float  # 0..1 of the running video
    faults: int = 0  # runs ended by the job's own doing (an error of ours it set off, a crash)
    interruptions: int = 0  # runs ended from outside (a stop, kill -9, the OOM killer, power cut)
    crashes: str = "{}"  # JSON {video name: process crashes while it was being made}
    reason_code: str | None = None  # the report's, when the job made no video

    def crash_counts(self) -> dict[str, int]:
        """Video name -> how many times the process died of a fatal signal while making it."""
        try:
            found = json.loads(self.crashes)
        except ValueError:
            return {}
        return {str(k): int(v) for k, v in found.items()} if isinstance(found, dict) else {}


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT UNIQUE NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    submitted_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    outbox_name TEXT,
    status TEXT,
    message TEXT,
    video_index INTEGER NOT NULL DEFAULT 0,
    video_count INTEGER NOT NULL DEFAULT 0,
    video_name TEXT,
    fraction REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq);
CREATE TABLE IF NOT EXISTS videos (
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    reason_code TEXT,
    output_seconds REAL NOT NULL DEFAULT 0,
    frames INTEGER NOT NULL DEFAULT 0,
    examine_ms REAL NOT NULL DEFAULT 0,
    render_ms REAL NOT NULL DEFAULT 0,
    finished_at TEXT,
    PRIMARY KEY (job_id, name)
);
"""
# Columns added after the first release: (name, declaration), added to an older database at
# open; a read-only reader of an older database sees their defaults.
_ADDED = (
    ("faults", "INTEGER NOT NULL DEFAULT 0"),
    ("interruptions", "INTEGER NOT NULL DEFAULT 0"),
    ("crashes", "TEXT NOT NULL DEFAULT '{}'"),
    ("reason_code", "TEXT"),
)
_COLUMNS = (
    "job_id, name, state, attempts, submitted_at, started_at, finished_at, outbox_name, status, "
    "message, video_index, video_count, video_name, fraction, faults, interruptions, crashes, "
    "reason_code"
)
_DEFAULTS = {"faults": "0", "interruptions": "0", "crashes": "'{}'", "reason_code": "NULL"}


@dataclass(frozen=True)
class VideoFact:
    """One finished video as the metrics count it (a row of the videos table)."""

    job_id: str
    name: str
    status: str  # done | rejected | failed
    reason_code: str | None
    output_seconds: float
    frames: int
    examine_ms: float
    render_ms: float
    finished_at: str | None


_VIDEO_COLUMNS = tuple(VideoFact.__dataclass_fields__)


def _row(values: tuple[Any, ...]) -> JobRow:
    fields = dict(zip(_COLUMNS.replace(" ", "").split(","), values, strict=True))
    fields["state"] = State(fields["state"])
    return JobRow(**fields)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class JobStore(Protocol):
    """What the daemon needs of a job store; :class:`Store` (SQLite) is the one built in."""

    def close(self) -> None: ...

    def add(self, job_id: str, name: str, submitted_at: str | None = None) -> None: ...

    def get(self, job_id: str) -> JobRow | None: ...

    def in_states(self, *states: State) -> list[JobRow]: ...

    def next_queued(self) -> JobRow | None: ...

    def recent(self, limit: int = 5) -> list[JobRow]: ...

    def transition(self, job_id: str, new: State, **fields: object) -> JobRow: ...

    def update(self, job_id: str, **fields: object) -> None: ...

    def add_videos(self, facts: list[VideoFact]) -> None: ...

    def video_facts(self) -> list[VideoFact]: ...


_T = TypeVar("_T")


def _locked(method: Callable[..., _T]) -> Callable[..., _T]:
    """Run ``method`` holding the store's lock (the connection is shared by threads)."""

    @functools.wraps(method)
    def call(self: Store, *args: Any, **kwargs: Any) -> _T:
        with self._lock:
            return method(self, *args, **kwargs)

    return call


def _unmerged(path: Path) -> bool:
    """Whether the database at ``path`` has writes in its write-ahead log not yet merged (a
    daemon that did not close it, or a reader open at its close)."""
    try:
        return path.with_name(path.name + "-wal").stat().st_size > 0
    except OSError:  # none, or removed just now by a clean close
        return False


def _reader(path: Path, unchanging: bool) -> sqlite3.Connection:
    """A read-only connection to the database at ``path``. ``unchanging`` opens it immutable
    (no shared-memory file needed) unless its write-ahead log holds writes not yet merged (its
    daemon was killed): those are read through the log, which needs the shared-memory file the
    killed daemon left; where even that cannot be opened, the merged part is read alone."""
    def connect(flags: str) -> sqlite3.Connection:
        db = sqlite3.connect(f"file:{path}?{flags}", uri=True, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA schema_version").fetchone()  # opening errors surface here
        return db

    if unchanging and not _unmerged(path):
        return connect("mode=ro&immutable=1")
    try:
        return connect("mode=ro")
    except sqlite3.OperationalError:
        if not unchanging:
            raise
        log.warning("store.log_unread", db=str(path),
                    hint="the state folder's shared-memory file cannot be opened by this user")
        return connect("mode=ro&immutable=1")


class Store:
    """The job table. Every write is its own transaction (autocommit + explicit BEGIN). One
    connection, shared by the daemon's threads (the farm's intake runs jobs side by side): each
    call holds the store's lock."""

    def __init__(
        self, state_dir: Path, *, readonly: bool = False, unchanging: bool = False
    ) -> None:
        """``readonly``: a reader beside the daemon. ``unchanging`` (with readonly): no daemon
        writes meanwhile, so SQLite need not create its shared-memory file (a reader that may
        not write in the state folder, the web page's unit, opens a cleanly closed database).
        A database its daemon did not close (killed, crashed, the power lost) still holds its
        last writes in the write-ahead log: it is read with them (:func:`_reader`)."""
        path = state_dir / DB_NAME
        if readonly:
            self._db = _reader(path, unchanging)
        else:
            state_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._add_columns()
        self._db.execute("PRAGMA busy_timeout=5000")
        self._select = self._select_list()
        self._lock = threading.RLock()

    def _present(self) -> set[str]:
        return {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}

    def _add_columns(self) -> None:
        present = self._present()
        for name, declaration in _ADDED:
            if name not in present:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {declaration}")

    def _select_list(self) -> str:
        """_COLUMNS, with a default standing in for a column an older database lacks."""
        present = self._present()
        names = _COLUMNS.replace(" ", "").split(",")
        if not present:  # no table yet (a reader before the daemon's first start)
            return _COLUMNS
        return ", ".join(n if n in present else f"{_DEFAULTS[n]} AS {n}" for n in names)

    @_locked
    def close(self) -> None:
        self._db.close()

    @_locked
    def _rows(self, where: str, args: tuple[object, ...] = ()) -> list[JobRow]:
        cur = self._db.execute(f"SELECT {self._select} FROM jobs {where}", args)
        return [_row(r) for r in cur.fetchall()]

    @_locked
    def add(self, job_id: str, name: str, submitted_at: str | None = None) -> None:
        self._db.execute(
            "INSERT INTO jobs (job_id, name, state, submitted_at) VALUES (?, ?, ?, ?)",
            (job_id, name, State.QUEUED.value, submitted_at or utc_now()),
        )

    def get(self, job_id: str) -> JobRow | None:
        rows = self._rows("WHERE job_id = ?", (job_id,))
        return rows[0] if rows else None

    def in_states(self, *states: State) -> list[JobRow]:
        marks = ",".join("?" * len(states))
        return self._rows(f"WHERE state IN ({marks}) ORDER BY seq", tuple(s.value for s in states))

    def next_queued(self) -> JobRow | None:
        rows = self._rows("WHERE state = 'queued' ORDER BY seq LIMIT 1")
        return rows[0] if rows else None

    def recent(self, limit: int = 5) -> list[JobRow]:
        return self._rows(
            "WHERE state IN ('done', 'rejected', 'failed') ORDER BY finished_at DESC, seq DESC "
            "LIMIT ?", (limit,))

    @_locked
    def transition(self, job_id: str, new: State, **fields: object) -> JobRow:
        """Move a job to ``new`` (checked against TRANSITIONS), updating extra columns."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self.get(job_id)
            if row is None:
                raise TransitionError(f"unknown job {job_id}")
            check_transition(row.state, new)
            if new is State.VALIDATING:
                fields.setdefault("attempts", row.attempts + 1)
                fields.setdefault("started_at", utc_now())
            if new in FINAL:
                fields.setdefault("finished_at", utc_now())
            if new is State.QUEUED:
                fields.update(video_index=0, video_count=0, video_name=None, fraction=0.0)
            self._update(job_id, state=new.value, **fields)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        updated = self.get(job_id)
        assert updated is not None
        return updated

    @_locked
    def update(self, job_id: str, **fields: object) -> None:
        """Set columns that are not the state (progress, the chosen outbox name)."""
        self._update(job_id, **fields)

    def _update(self, job_id: str, **fields: object) -> None:
        allowed = set(_COLUMNS.replace(" ", "").split(",")) - {"job_id"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown job columns: {sorted(unknown)}")
        assignments = ", ".join(f"{k} = ?" for k in fields)
        self._db.execute(
            f"UPDATE jobs SET {assignments} WHERE job_id = ?", (*fields.values(), job_id)
        )

    @_locked
    def add_videos(self, facts: list[VideoFact]) -> None:
        """Record a published job's videos (again: the same rows replace the old)."""
        marks = ",".join("?" * len(_VIDEO_COLUMNS))
        rows = [tuple(getattr(f, c) for c in _VIDEO_COLUMNS) for f in facts]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                f"INSERT OR REPLACE INTO videos ({', '.join(_VIDEO_COLUMNS)}) VALUES ({marks})",
                rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    @_locked
    def video_facts(self) -> list[VideoFact]:
        """Every recorded video (none from a database older than the videos table)."""
        try:
            cur = self._db.execute(f"SELECT {', '.join(_VIDEO_COLUMNS)} FROM videos")
        except sqlite3.OperationalError:  # a read-only look at a database not yet migrated
            return []
        return [VideoFact(*r) for r in cur.fetchall()]
