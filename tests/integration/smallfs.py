"""A real small filesystem for the tests that fill a disk: a tmpfs mounted over a folder.

Needs root and a kernel that lets this process mount (a container may not). Without them the
test is skipped with a reason naming what is missing; `make soak` runs the same checks.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

BLOCK = 4096


@contextmanager
def tmpfs(path: Path, size_bytes: int) -> Iterator[Path]:
    """Mount a ``size_bytes`` tmpfs on ``path`` (created) for the block; skip when impossible."""
    if os.geteuid() != 0:
        pytest.skip("filling a disk needs a small real filesystem: run the tests as root so they "
                    "can mount a tmpfs (mount -t tmpfs)")
    if shutil.which("mount") is None:
        pytest.skip("filling a disk needs mount(8) (Debian package 'mount') to make a tmpfs")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0755",
                           "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a tmpfs: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(folder: Path, leave_bytes: int) -> Path:
    """Write a filler file in ``folder`` so that about ``leave_bytes`` stay free."""
    filler = folder / ".filler"
    free = shutil.disk_usage(folder).free
    try:
        with open(filler, "ab") as fh:
            fh.write(b"\0" * max(free - leave_bytes, 0))
    except OSError as err:  # the daemon wrote meanwhile: the disk is full, which is the aim
        if err.errno != errno.ENOSPC:
            raise
    return filler
