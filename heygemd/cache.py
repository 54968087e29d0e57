"""Content-addressed cache of template analyses and the frame pass's faces (``paths.cache``;
safe to delete).

Key = sha256 of (the sha256 of the file's bytes, a version string), so a re-uploaded template with
another name still hits, and changing the analysis code (bumping its version) invalidates old
entries. A file's digest is remembered while the file stays the same (:func:`file_digest`).
Entries are written to a temporary file in the same folder and renamed into place (atomic: a
crash never leaves a half-written entry that a later job would read).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import structlog

log = structlog.get_logger(__name__)

CHUNK = 1 << 20
DIGESTS_KEPT = 64

_digests: OrderedDict[tuple[str, int, int, int, int, int], Future[bytes]] = OrderedDict()
_digests_lock = threading.Lock()


def file_digest(path: Path) -> bytes:
    """sha256 of the file's bytes, remembered while its identity (device, inode, size, mtime,
    ctime) stays the same: a job's video is keyed by the frame pass and by the engine at the
    same moment, and a 1 GB file takes seconds to read. A second caller asking while the first
    reads waits for that reading instead of starting its own."""
    st = os.stat(path)
    ident = (str(Path(path).resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
             st.st_ctime_ns)
    with _digests_lock:
        known = _digests.get(ident)
        if known is not None:
            _digests.move_to_end(ident)
        else:
            mine: Future[bytes] = Future()
            _digests[ident] = mine
            while len(_digests) > DIGESTS_KEPT:
                _digests.popitem(last=False)
    if known is not None:
        return known.result()
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(CHUNK):
                digest.update(block)
    except BaseException as err:
        with _digests_lock:
            if _digests.get(ident) is mine:
                del _digests[ident]
        mine.set_exception(err)
        raise
    mine.set_result(digest.digest())
    return mine.result()


def content_key(path: Path, version: str) -> str:
    """sha256 hex of the file's bytes followed by ``version``."""
    digest = hashlib.sha256(file_digest(path))
    digest.update(b"\0" + version.encode())
    return digest.hexdigest()


class AnalysisCache:
    """npz (small arrays) and npy (large arrays, opened memory-mapped) entries under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str, name: str) -> Path:
        return self.root / key[:2] / f"{key}.{name}"

    def load_arrays(self, key: str) -> dict[str, np.ndarray] | None:
        """The npz entry as a dict, or None on a miss (or an unreadable entry, which is dropped)."""
        path = self._path(key, "npz")
        if not path.is_file():
            return None
        try:
            # opened here, not by np.load, which leaves its file open when the zip is damaged
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            log.warning("cache.unreadable", path=str(path), error=str(err))
            path.unlink(missing_ok=True)
            return None

    def drop(self, key: str) -> None:
        """Remove the npz entry (one that cannot be used)."""
        self._path(key, "npz").unlink(missing_ok=True)

    def save_arrays(self, key: str, arrays: dict[str, np.ndarray]) -> Path:
        """Write the npz entry atomically; returns its path."""
        path = self._path(key, "npz")
        with _atomic_file(path) as tmp:
            np.savez(tmp, **arrays)
        return path

    def load_big(self, key: str, name: str) -> np.ndarray | None:
        """A large npy entry, memory-mapped read-only, or None on a miss."""
        path = self._path(key, f"{name}.npy")
        if not path.is_file():
            return None
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            log.warning("cache.unreadable", path=str(path), error=str(err))
            path.unlink(missing_ok=True)
            return None

    def big_writer(self, key: str, name: str, shape: tuple[int, ...]) -> BigEntry:
        """A writable memory-mapped uint8 array of ``shape``; ``commit()`` publishes it."""
        return BigEntry(self._path(key, f"{name}.npy"), shape)


@contextmanager
def _atomic_file(path: Path) -> Iterator[BinaryIO]:
    """An open temp file beside ``path``, renamed onto it when the block succeeds (removed when
    it fails)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class BigEntry:
    """A uint8 npy file being filled through a memory map, published by rename on commit()."""

    def __init__(self, path: Path, shape: tuple[int, ...]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npy")
        os.close(fd)
        self._tmp = Path(name)
        self.array = np.lib.format.open_memmap(self._tmp, mode="w+", dtype=np.uint8, shape=shape)

    def commit(self) -> np.ndarray:
        """Flush, rename into place, and return the entry reopened read-only."""
        self.array.flush()
        del self.array
        os.replace(self._tmp, self.path)
        return np.load(self.path, mmap_mode="r", allow_pickle=False)

    def discard(self) -> None:
        self._tmp.unlink(missing_ok=True)
