"""Which inbox folders to look at: watchdog events (inotify, or polling on network filesystems)
plus periodic full rescans. The observer thread only records names; the daemon loop consumes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

log = structlog.get_logger(__name__)

NETWORK_FS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "sshfs", "9p", "afs", "ceph",
    "glusterfs", "fuse.glusterfs", "lustre", "gpfs", "fuse.rclone", "davfs", "fuse.davfs2",
    "virtiofs", "fuse.s3fs", "ncpfs", "coda",
})


@dataclass(frozen=True)
class Mount:
    mount_point: str
    fs_type: str
    source: str


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040 ...)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """/proc/self/mountinfo -> mounts (pure). Fields: id parent major:minor root mount-point
    options [optional fields...] - fstype source super-options."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        parts, tail = left.split(), right.split()
        if not sep or len(parts) < 5 or len(tail) < 2:
            continue
        mounts.append(Mount(_unescape(parts[4]), tail[0], _unescape(tail[1])))
    return mounts


def mount_of(path: Path, mounts: list[Mount]) -> Mount | None:
    """The mount holding ``path`` (absolute, resolved): the longest matching mount point."""
    best: Mount | None = None
    text = str(path)
    for m in mounts:
        mp = m.mount_point.rstrip("/") or "/"
        inside = text == mp or text.startswith(mp + "/") or mp == "/"
        if inside and (best is None or len(mp) >= len(best.mount_point.rstrip("/") or "/")):
            best = m
    return best


def is_network_fs(fs_type: str) -> bool:
    return fs_type in NETWORK_FS or fs_type.startswith(("nfs", "fuse.sshfs"))


def read_mount(path: Path) -> Mount | None:
    """The mount of ``path`` from /proc/self/mountinfo; None if that cannot be read."""
    try:
        text = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return mount_of(path.resolve(), parse_mountinfo(text))


def choose_mode(setting: Literal["auto", "events", "polling"], mount: Mount | None) -> str:
    """'events' (inotify) or 'polling' (pure): auto polls on network filesystems, where inotify
    never hears about files written by other machines."""
    if setting != "auto":
        return setting
    return "polling" if mount is not None and is_network_fs(mount.fs_type) else "events"


class _Collector(FileSystemEventHandler):
    """Runs on the observer thread: remembers the top-level inbox names that saw activity."""

    def __init__(self, inbox: Path, names: set[str], lock: threading.Lock) -> None:
        self._inbox, self._names, self._lock = inbox, names, lock

    def on_any_event(self, event: FileSystemEvent) -> None:
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            path = raw.decode() if isinstance(raw, bytes) else raw
            if not path:
                continue
            try:
                rel = Path(path).relative_to(self._inbox)
            except ValueError:
                continue
            if rel.parts:
                with self._lock:
                    self._names.add(rel.parts[0])


class Watcher:
    """Owns the observer; ``drain()`` hands the daemon loop the names seen since last time."""

    def __init__(self, inbox: Path, mode: str, poll_interval: float) -> None:
        self.inbox, self.mode, self._poll = inbox, mode, poll_interval
        self._names: set[str] = set()
        self._lock = threading.Lock()
        self._observer: BaseObserver | None = None

    def start(self) -> None:
        """Start observing (a no-op when already running). Raises OSError if the inbox is gone."""
        if self._observer is not None and self._observer.is_alive():
            return
        self.stop()
        observer: BaseObserver = (
            PollingObserver(timeout=self._poll) if self.mode == "polling" else Observer()
        )
        observer.schedule(_Collector(self.inbox, self._names, self._lock), str(self.inbox),
                          recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer
        log.info("watcher.started", mode=self.mode, inbox=str(self.inbox))

    @property
    def is_alive(self) -> bool:
        return self._observer is not None and self._observer.is_alive()

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            if self._observer.is_alive():
                self._observer.join(timeout=5)
            self._observer = None

    def drain(self) -> set[str]:
        with self._lock:
            names = set(self._names)
            self._names.clear()  # the handler holds this very set
        return names
