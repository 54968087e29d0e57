"""Job folders in the inbox: discovery, readiness, input safety, and the atomic claim.

The pure middle (``classify``, ``Readiness``; which names are inputs is :mod:`heygemd.jobfiles`)
decides; the edges (``scan_entries``, ``claim``, ``strip_unsafe``) touch the filesystem. Nothing
here follows a symlink.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from heygemd import jobfiles
from heygemd.settings import LimitSettings

JOB_TOML = "job.toml"
MAX_WALK_ENTRIES = 2000  # a folder with more entries than this is refused without a full walk


class EntryKind(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    SPECIAL = "special"  # fifo, socket, device


@dataclass(frozen=True)
class Entry:
    """One thing inside a job folder. ``rel`` uses '/' and is relative to the job folder."""

    rel: str
    kind: EntryKind
    size: int  # bytes
    mtime_ns: int

    @property
    def name(self) -> str:
        """The last part of ``rel``."""
        return self.rel.rsplit("/", 1)[-1]


Snapshot = tuple[Entry, ...]


def require_real_dir(folder: Path) -> None:
    """Raise NotADirectoryError unless ``folder`` itself (not what a link points at) is a
    directory: os.scandir and os.rename would otherwise act on a link's target."""
    if not stat.S_ISDIR(os.lstat(folder).st_mode):
        raise NotADirectoryError(f"{folder} is not a real folder (a link or a file)")


def is_link(path: Path) -> bool:
    """``path`` itself is a symlink (never follows it; False when it does not exist)."""
    return path.is_symlink()


def _kind(mode: int) -> EntryKind:
    if stat.S_ISLNK(mode):
        return EntryKind.SYMLINK
    if stat.S_ISDIR(mode):
        return EntryKind.DIR
    if stat.S_ISREG(mode):
        return EntryKind.FILE
    return EntryKind.SPECIAL


def scan_entries(folder: Path) -> Snapshot:
    """Everything under ``folder`` (lstat only, never following links), sorted by path.

    Raises OSError when the folder cannot be read (e.g. it vanished) and NotADirectoryError
    when ``folder`` itself is not a real directory (e.g. swapped for a link to elsewhere).
    """
    require_real_dir(folder)
    found: list[Entry] = []
    pending = [("", folder)]
    while pending and len(found) <= MAX_WALK_ENTRIES:
        prefix, current = pending.pop()
        with os.scandir(current) as it:
            for item in it:
                st = item.stat(follow_symlinks=False)
                entry = Entry(prefix + item.name, _kind(st.st_mode), st.st_size, st.st_mtime_ns)
                found.append(entry)
                if entry.kind is EntryKind.DIR:
                    pending.append((entry.rel + "/", Path(item.path)))
    return tuple(sorted(found, key=lambda e: e.rel))


@dataclass
class Readiness:
    """Tracks one inbox folder until nothing in it changed for ``settle_seconds``.

    Pure: the caller passes snapshots and a monotonic clock (seconds).
    """

    snapshot: Snapshot | None = None
    changed_at: float = 0.0
    first_seen: float = field(default_factory=time.monotonic)
    order: int = 0  # tie-break between folders first seen in the same tick (e.g. ctime ns)

    @property
    def sort_key(self) -> tuple[float, int]:
        """Oldest first: when it was first seen, then the folder's own change time."""
        return (self.first_seen, self.order)

    def observe(self, snap: Snapshot, now: float) -> None:
        if snap != self.snapshot:
            self.snapshot = snap
            self.changed_at = now

    def is_ready(self, now: float, settle_seconds: float, marker: str | None) -> bool:
        """Settled (or, with a marker name, the marker is present) and holding some input."""
        snap = self.snapshot
        if not snap or not any(
            e.kind is not EntryKind.DIR and not jobfiles.is_ignored(e.name) for e in snap
        ):
            return False
        if marker is not None:
            return any(e.rel == marker and e.kind is EntryKind.FILE for e in snap)
        return now - self.changed_at >= settle_seconds


@dataclass(frozen=True)
class JobFiles:
    """A job folder that passed the folder-level checks. Names are relative to the folder."""

    audio: str
    videos: tuple[str, ...]
    job_toml: str | None


@dataclass(frozen=True)
class FolderProblem:
    """Why a whole job folder is refused before any media is opened."""

    code: str
    message: str  # plain words: what is wrong and what to change
    file: str | None = None


def classify(entries: Snapshot, limits: LimitSettings) -> JobFiles | FolderProblem:
    """Folder-level rules (pure). Only top-level files count as inputs; files in sub-folders are
    carried along untouched. Unsafe entries anywhere (links, devices, pipes) refuse the job."""
    for e in entries:
        if e.kind is EntryKind.SYMLINK:
            return FolderProblem(
                "symlink", f"'{e.rel}' is a link (shortcut). Copy the real file into the folder "
                "instead.", e.rel)
        if e.kind is EntryKind.SPECIAL:
            return FolderProblem(
                "special_file", f"'{e.rel}' is not a regular file (a pipe or device). Remove it.",
                e.rel)
    files = [
        e for e in entries if e.kind is EntryKind.FILE and not jobfiles.is_ignored(e.name)
    ]
    if len(files) > limits.max_job_files:
        return FolderProblem(
            "too_many_files", f"The folder holds {len(files)} files; at most "
            f"{limits.max_job_files} are allowed. Split it into several jobs.")
    max_bytes = limits.max_file_mb * 1024 * 1024
    for e in files:
        if e.size > max_bytes:
            return FolderProblem(
                "file_too_large", f"'{e.rel}' is {e.size / 1048576:.0f} MB; the limit is "
                f"{limits.max_file_mb:.0f} MB per file. Use a shorter or smaller file.", e.rel)
    top = [e.rel for e in files if "/" not in e.rel]
    audios = sorted(n for n in top if jobfiles.classify(n) == "audio")
    videos = tuple(sorted(n for n in top if jobfiles.classify(n) == "video"))
    exts = "/".join(sorted(e.lstrip(".") for e in jobfiles.AUDIO_EXTS))
    nested = [e.rel for e in files if "/" in e.rel]
    if not audios:
        hint = jobfiles.nested_hint([n for n in nested if jobfiles.classify(n) == "audio"])
        return FolderProblem(
            "no_audio", f"The folder has no audio file. Add exactly one ({exts}).{hint}")
    if len(audios) > 1:
        return FolderProblem(
            "multiple_audio", f"The folder has {len(audios)} audio files ({', '.join(audios)}). "
            "Keep exactly one.")
    if not videos:
        vexts = "/".join(sorted(e.lstrip(".") for e in jobfiles.VIDEO_EXTS))
        hint = jobfiles.nested_hint([n for n in nested if jobfiles.classify(n) == "video"])
        return FolderProblem(
            "no_video",
            f"The folder has no video file. Add one or more template videos ({vexts}).{hint}")
    toml = next((n for n in top if n.lower() == JOB_TOML), None)
    return JobFiles(audios[0], videos, toml)


def unused(entries: Snapshot) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(top-level files that are not inputs, e.g. 'notes.txt'; top-level subfolders, e.g.
    'inner/') — what the job ignores, to tell the user (pure). Hidden/temporary files are not
    listed."""
    files = tuple(
        e.rel for e in entries
        if e.kind is EntryKind.FILE and "/" not in e.rel and not jobfiles.is_ignored(e.name)
        and jobfiles.classify(e.rel) is None and e.rel.lower() != JOB_TOML
    )
    folders = tuple(
        f"{e.rel}/" for e in entries
        if e.kind is EntryKind.DIR and "/" not in e.rel and not jobfiles.is_ignored(e.name)
    )
    return files, folders


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
