"""Job folders in the inbox: discovery, readiness, input safety, and the atomic claim.

The pure middle (``Readiness``; the folder rules are :mod:`heygemd.validation.jobfiles`, shared with
``heygemd validate``) decides; the edges (``claim``, ``strip_unsafe``, and jobfiles'
``scan_entries``) touch the filesystem. Nothing here follows a symlink.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from heygemd.validation import jobfiles
from heygemd.validation.jobfiles import (  # re-exported: the daemon's view of a job folder
    Entry,
    EntryKind,
    FolderProblem,
    JobFiles,
    Snapshot,
    is_link,
    require_real_dir,
    scan_entries,
    unused,
)

__all__ = ["Entry", "EntryKind", "FolderProblem", "JobFiles", "Snapshot", "Readiness", "classify",
           "claim", "has_input", "has_marker", "is_link", "is_loose", "loose_entries",
           "scan_entries", "strip_unsafe", "unused", "waiting_folders"]

classify = jobfiles.check_folder  # the folder rules, as the daemon names them


def has_input(snap: Snapshot) -> bool:
    """Whether the folder holds a file that could be a job's input (not a subfolder, not a
    hidden or temporary file)."""
    return any(e.kind is not EntryKind.DIR and not jobfiles.is_ignored(e.name) for e in snap)


def has_marker(snap: Snapshot, marker: str) -> bool:
    """Whether the ready marker file ``marker`` is in the folder (at its top level)."""
    return any(e.rel == marker and e.kind is EntryKind.FILE for e in snap)


@dataclass
class Readiness:
    """Tracks one inbox folder until nothing in it changed for ``settle_seconds``.

    Pure: the caller passes snapshots and a monotonic clock (seconds).
    """

    snapshot: jobfiles.Snapshot | None = None
    changed_at: float = 0.0
    first_seen: float = field(default_factory=time.monotonic)
    order: int = 0  # tie-break between folders first seen in the same tick (e.g. ctime ns)

    @property
    def sort_key(self) -> tuple[float, int]:
        """Oldest first: when it was first seen, then the folder's own change time."""
        return (self.first_seen, self.order)

    def observe(self, snap: jobfiles.Snapshot, now: float) -> None:
        if snap != self.snapshot:
            self.snapshot = snap
            self.changed_at = now

    def is_ready(self, now: float, settle_seconds: float, marker: str | None) -> bool:
        """Settled (or, with a marker name, the marker is present) and holding some input."""
        snap = self.snapshot
        if not snap or not has_input(snap):
            return False
        if marker is not None:
            return has_marker(snap, marker)
        return now - self.changed_at >= settle_seconds


def waiting_folders(inbox: Path) -> list[tuple[str, Snapshot, float | None]]:
    """Job folders in the inbox, oldest first: (name, snapshot, seconds since the newest
    change inside it, None when empty). For `heygemd status`; unreadable ones are skipped."""
    found = []
    try:
        items = sorted(os.scandir(inbox), key=lambda d: d.stat(follow_symlinks=False).st_mtime)
    except OSError:
        return []
    for item in items:
        if jobfiles.is_ignored(item.name) or not item.is_dir(follow_symlinks=False):
            continue
        try:
            snap = scan_entries(Path(item.path))
        except OSError:
            continue
        newest = max((e.mtime_ns for e in snap), default=None)
        age = None if newest is None else max(time.time() - newest / 1e9, 0.0)
        found.append((item.name, snap, age))
    return found


def is_loose(path: Path) -> bool:
    """Whether the inbox entry ``path`` is there but can never be a job: anything other than a
    real folder (a file, a link, a pipe) whose name is not hidden or temporary. Such entries are
    left alone where they are. Never follows a link."""
    if jobfiles.is_ignored(path.name):
        return False
    try:
        return not stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False  # gone


def loose_entries(inbox: Path) -> list[str]:
    """Names of the inbox's loose entries (see :func:`is_loose`), sorted; [] when the inbox
    cannot be read. What `heygemd status` shows; the daemon keeps the same list as it goes."""
    try:
        names = os.listdir(inbox)
    except OSError:
        return []
    return sorted(name for name in names if is_loose(inbox / name))


def new_job_id(now: float | None = None) -> str:
    """Sortable, unique: 20240102T030405-1a2b3c."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}-{secrets.token_hex(3)}"


def claim(source: Path, work: Path, job_id: str) -> Path:
    """Move the ready folder ``source`` out of the inbox into ``work/<job_id>/<name>``.

    The rename is atomic (same filesystem): the folder is either still in the inbox or wholly
    claimed. ``work/<job_id>/`` is made first so a crash in between leaves only an empty folder
    (removed at restart); the original name survives in the path even before the store records
    the job. Raises OSError (e.g. the folder vanished); then nothing is claimed.
    """
    require_real_dir(source)  # a link would be renamed as a link: never claim one
    holder = work / job_id
    holder.mkdir(parents=True)
    target = holder / source.name
    try:
        os.rename(source, target)
    except OSError:
        holder.rmdir()
        raise
    return target


def strip_unsafe(folder: Path, entries: Snapshot) -> list[str]:
    """Delete links, pipes and devices (never their targets) so the originals can be handed
    back in the outbox without exposing anything outside it. Returns what was removed.
    Nothing is done when ``folder`` itself is a link: its target is not ours."""
    if is_link(folder):
        return []
    removed = []
    for e in entries:
        if e.kind in (EntryKind.SYMLINK, EntryKind.SPECIAL):
            (folder / e.rel).unlink(missing_ok=True)
            removed.append(e.rel)
    return removed
