"""One daemon per state directory: an flock on ``<paths.state>/heygemd.lock``.

`heygemd run` and `heygemd once` hold the lock for their whole life (the kernel releases it
when the process ends, kill -9 included), so a second instance cannot "recover" the first
one's running job. `status` and `doctor` only look: :func:`holder` says who holds it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from heygemd.errors import HeygemError

LOCK_NAME = "heygemd.lock"
# A reader (`status`, `doctor`) holds a shared lock for microseconds; a starting daemon retries
# for this long before deciding that another daemon is running.
ACQUIRE_SECONDS = 1.0


class AlreadyRunning(HeygemError):
    """Another daemon holds the state directory's lock."""

    code = "already_running"

    def __init__(self, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "pid unknown"
        super().__init__(f"heygemd is already running ({who}) on this state directory")
        self.pid = pid


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class InstanceLock:
    """Held from :meth:`acquire` until :meth:`release` (or the process ends)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait_seconds: float = ACQUIRE_SECONDS) -> None:
        """Take the lock and write our pid into the file. Raises AlreadyRunning."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    pid = _read_pid(fd)
                    os.close(fd)
                    raise AlreadyRunning(pid) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def holder(state_dir: Path) -> int | None:
    """The pid of the daemon holding ``state_dir``'s lock (0 when unknown), or None when no
    daemon holds it. Never blocks; leaves the lock as it found it."""
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
