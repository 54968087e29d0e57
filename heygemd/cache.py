"""Content-addressed cache of template analyses and the frame pass's faces (``paths.cache``;
safe to delete), held to a size limit (``paths.cache_max_gb``) by removing the least recently
used entries.

Key = sha256 of (the sha256 of the file's bytes, a version string), so a re-uploaded template with
another name still hits, and changing the analysis code (bumping its version) invalidates old
entries. A file's digest is remembered while the file stays the same (:func:`file_digest`).
Entries are written to a temporary file in the same folder and renamed into place (atomic: a
crash never leaves a half-written entry that a later job would read).

An entry is every file ``<root>/<key[:2]>/<key>.*`` (the npz and its big npy arrays); its
recency is the newest mtime of its files, refreshed on every hit (atime is not used: shares are
often mounted noatime). After an entry is written, the oldest-used entries are removed until the
cache fits the limit (:func:`choose_evictions`), never the one just written, one being read in
this process, or one used in the last IN_USE_SECONDS (another thread or process may be reading
it); an entry passed over (in use, or a file that cannot be removed) gives way to the next
oldest, so the cache stays over the limit only while the entries that cannot go (recent, being
read, unremovable, or young temp files) alone exceed it. Several
threads and processes may share one folder: an entry removed under a reader is a miss.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import structlog

log = structlog.get_logger(__name__)

CHUNK = 1 << 20
DIGESTS_KEPT = 64
IN_USE_SECONDS = 60.0  # an entry used this recently may be being read elsewhere: never removed
STALE_TEMP_SECONDS = 6 * 3600.0  # a temp file untouched this long is a crashed writer's leftover
TEMP_PREFIX = ".tmp-"
_KEY = re.compile(r"[0-9a-f]{64}")

_digests: OrderedDict[tuple[str, int, int, int, int, int], Future[bytes]] = OrderedDict()
_digests_lock = threading.Lock()

# (cache root, key) -> readers in this process; a trim here never removes those entries.
_reading: Counter[tuple[str, str]] = Counter()
_reading_lock = threading.Lock()
_trim_lock = threading.Lock()  # one trim at a time in this process (two would remove too much)


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
    """npz (small arrays) and npy (large arrays, opened memory-mapped) entries under ``root``,
    trimmed after each write to ``max_bytes`` (None: no limit), least recently used first."""

    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def _path(self, key: str, name: str) -> Path:
        return self.root / key[:2] / f"{key}.{name}"

    def load_arrays(self, key: str, part: str = "") -> dict[str, np.ndarray] | None:
        """The npz entry as a dict, or None on a miss (or an unreadable entry, which is dropped).
        A hit makes the entry the most recently used. ``part``: one more npz of the same entry
        (what is derived from the same content: kept and trimmed with it)."""
        path = self._path(key, f"{part}.npz" if part else "npz")
        with _being_read(self.root, key):
            try:
                # opened here, not by np.load, which leaves its file open when the zip is damaged;
                # once open, the entry may be removed under us and is still read whole
                with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
                    arrays = {name: data[name] for name in data.files}
                    _touch(fh.fileno())
                    return arrays
            except FileNotFoundError:  # never written, or removed by a trim
                return None
            except Exception as err:  # noqa: BLE001 - damaged in any way (a header numpy's
                # tokenizer cannot read, a zip member's bad compression field): a miss
                log.warning("cache.unreadable", path=str(path), error=str(err),
                            kind=type(err).__name__)
                _discard(path)
                return None

    def drop(self, key: str) -> None:
        """Remove the npz entry (one that cannot be used)."""
        self._path(key, "npz").unlink(missing_ok=True)

    def save_arrays(self, key: str, arrays: dict[str, np.ndarray], part: str = "") -> Path:
        """Write the npz entry (or its ``part``) atomically, then trim the cache (keeping this
        entry); returns its path."""
        path = self._path(key, f"{part}.npz" if part else "npz")
        with _atomic_file(path) as tmp:
            np.savez(tmp, **arrays)
        self.trim(keep=key)
        return path

    def load_big(self, key: str, name: str) -> np.ndarray | None:
        """A large npy entry, memory-mapped read-only, or None on a miss. A hit makes the entry
        the most recently used (the mapping stays valid if the entry is removed later)."""
        path = self._path(key, f"{name}.npy")
        with _being_read(self.root, key):
            try:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            except FileNotFoundError:
                return None
            except Exception as err:  # noqa: BLE001 - damaged in any way: a miss
                log.warning("cache.unreadable", path=str(path), error=str(err),
                            kind=type(err).__name__)
                _discard(path)
                return None
            _touch(path)
            return array

    def big_writer(self, key: str, name: str, shape: tuple[int, ...]) -> BigEntry:
        """A uint8 npy entry of ``shape`` to fill a row at a time (BigEntry.put);
        ``commit()`` publishes it (and trims the cache, keeping this entry)."""
        return BigEntry(self._path(key, f"{name}.npy"), shape, lambda: self.trim(keep=key))

    def trim(self, keep: str | None = None) -> None:
        """Remove the least recently used entries until the cache fits ``max_bytes``, never
        ``keep`` (the entry just written). Never raises for the cache's own trouble (a folder
        that cannot be listed, a file that cannot be removed): it logs it."""
        if self.max_bytes is None:
            return
        try:
            with _trim_lock:
                entries = scan_entries(self.root)
                removed = _evict(self.root, entries, self.max_bytes,
                                 {keep} if keep else set())
        except OSError as err:
            log.warning("cache.trim_failed", root=str(self.root), error=str(err))
            return
        if removed:
            freed = sum(entry.size for entry in removed)
            log.info("cache.trimmed", root=str(self.root), removed=len(removed),
                     freed_bytes=freed, size_bytes=sum(e.size for e in entries) - freed,
                     max_bytes=self.max_bytes)


@dataclass(frozen=True)
class Entry:
    """One cache entry as found on disk: its files, their total size and its recency."""

    key: str  # the content key, or a temp file's own name
    paths: tuple[Path, ...]
    size: int  # bytes (apparent size)
    used: float  # newest mtime of its files, seconds since the epoch
    is_temp: bool = False  # a file being written (or a crashed writer's leftover)


def scan_entries(root: Path) -> list[Entry]:
    """Every entry (and temp file) under ``root``; [] when there is no cache folder. A file
    removed while listing is left out."""
    try:
        shards = [d for d in os.scandir(root) if len(d.name) == 2 and d.is_dir(
            follow_symlinks=False)]
    except FileNotFoundError:
        return []
    found: dict[str, list[tuple[Path, os.stat_result]]] = {}
    for shard in shards:
        try:
            files = list(os.scandir(shard.path))
        except FileNotFoundError:
            continue
        for item in files:
            try:
                st = item.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            key = item.name.split(".", 1)[0]
            if item.name.startswith(TEMP_PREFIX):
                key = item.name
            elif not _KEY.fullmatch(key):
                continue
            if item.is_file(follow_symlinks=False):
                found.setdefault(key, []).append((Path(item.path), st))
    return [
        Entry(key, tuple(p for p, _ in files), sum(st.st_size for _, st in files),
              max(st.st_mtime for _, st in files), key.startswith(TEMP_PREFIX))
        for key, files in found.items()
    ]


def cache_size(root: Path) -> int:
    """Bytes held by the cache under ``root`` (entries and temp files)."""
    return sum(entry.size for entry in scan_entries(root))


def choose_evictions(
    entries: Iterable[Entry], max_bytes: int, keep: set[str], now: float,
    in_use_seconds: float = IN_USE_SECONDS, stale_temp_seconds: float = STALE_TEMP_SECONDS,
) -> list[Entry]:
    """The entries to remove, in order, so that the rest fit ``max_bytes``: stale temp files
    (whatever the size), then the least recently used entries. Never an entry in ``keep``, one
    used in the last ``in_use_seconds``, or a temp file younger than ``stale_temp_seconds`` (a
    write in progress: counted, since it will soon be an entry). ``now``: seconds since the
    epoch, as the files' mtimes."""
    entries = list(entries)
    victims = [e for e in entries
               if e.is_temp and now - e.used > stale_temp_seconds and e.key not in keep]
    total = sum(e.size for e in entries) - sum(e.size for e in victims)
    for entry in sorted((e for e in entries if not e.is_temp), key=lambda e: e.used):
        if total <= max_bytes:
            break
        if entry.key in keep or now - entry.used < in_use_seconds:
            continue
        victims.append(entry)
        total -= entry.size
    return victims


def _evict(root: Path, entries: list[Entry], max_bytes: int, keep: set[str]) -> list[Entry]:
    """Remove entries as :func:`choose_evictions` picks them until the rest fit ``max_bytes``;
    the removed ones. A victim that stays (in use: being read here, or hit since the listing;
    or its files cannot be removed) gives way to the next least recently used one. Files that
    could not be removed are logged once for the trim, with how many."""
    removed: list[Entry] = []
    left, spared = list(entries), set(keep)
    failed: list[tuple[Entry, OSError]] = []
    now = time.time()
    while True:
        victims = choose_evictions(left, max_bytes, spared, now, IN_USE_SECONDS,
                                   STALE_TEMP_SECONDS)
        for entry in victims:
            try:
                gone = _remove(root, entry)
            except OSError as err:  # e.g. a file of another user's: the next trim tries again
                failed.append((entry, err))
                gone = False
            if gone:
                removed.append(entry)
                left.remove(entry)
            else:
                spared.add(entry.key)
        if not victims or all(entry.key not in spared for entry in victims):
            break
    if failed:
        log.warning("cache.unremovable", entries=len(failed), key=failed[0][0].key,
                    error=str(failed[0][1]))
    return removed


def _remove(root: Path, entry: Entry) -> bool:
    """Remove ``entry``'s files unless it is being read in this process or was used since it
    was listed; whether it was removed. OSError: a file that cannot be removed."""
    with _reading_lock:
        if (_root_id(root), entry.key) in _reading:
            return False
        try:
            if max(os.stat(p).st_mtime for p in entry.paths) > entry.used:
                return False  # a hit (or a new write) since the listing
        except FileNotFoundError:
            pass  # partly removed already (another process trims too): finish it
        for path in entry.paths:
            path.unlink(missing_ok=True)
    return True


def _root_id(root: Path) -> str:
    return os.path.abspath(root)


@contextmanager
def _being_read(root: Path, key: str) -> Iterator[None]:
    """Mark ``key`` as being read: a trim in this process leaves it alone meanwhile."""
    ident = (_root_id(root), key)
    with _reading_lock:
        _reading[ident] += 1
    try:
        yield
    finally:
        with _reading_lock:
            _reading[ident] -= 1
            if _reading[ident] <= 0:
                del _reading[ident]


def _discard(path: Path) -> None:
    """Remove a damaged entry's file; one that cannot be removed is left (it stays a miss)."""
    with suppress(OSError):
        path.unlink(missing_ok=True)


def _touch(target: int | Path) -> None:
    """Make an entry's file the most recently used (mtime = now). A read-only cache or another
    user's file keeps its old recency."""
    with suppress(OSError):
        os.utime(target)


@contextmanager
def _atomic_file(path: Path) -> Iterator[BinaryIO]:
    """An open temp file beside ``path``, renamed onto it when the block succeeds (removed when
    it fails)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=path.suffix)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class BigEntry:
    """A uint8 npy file being filled a row at a time, published by rename on commit();
    ``published`` (e.g. the cache's trim) is called after the rename.

    Rows are written in place with positional writes, not through a writable memory map: they
    go to the page cache and never into this process's resident set (through a map, the crops
    of a 5-minute 720p template held up to 5.4 GB of it until the commit). Writers in several
    threads may put rows at once; commit() and discard() come after every writer has stopped.
    An entry dropped without either closes its file when it is collected (the temporary file
    stays for the cache's trim to remove)."""

    def __init__(self, path: Path, shape: tuple[int, ...],
                 published: Callable[[], None] | None = None) -> None:
        self.path = path
        self.shape = tuple(int(n) for n in shape)
        self._published = published
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=".npy")
        os.close(fd)
        self._tmp = Path(name)
        # the header and the file's full (sparse) size, as np.save would write them; no page
        # of the map is touched
        layout = np.lib.format.open_memmap(self._tmp, mode="w+", dtype=np.uint8,
                                           shape=self.shape)
        self._offset = int(layout.offset)
        del layout
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64))
        self._fd: int | None = os.open(self._tmp, os.O_RDWR)
        self._closer = weakref.finalize(self, os.close, self._fd)

    def put(self, index: int, value: np.ndarray | int) -> None:
        """Row ``index`` set to ``value``: uint8 of the row's shape (shape[1:]), or one number
        for all of it."""
        if not 0 <= index < self.shape[0]:
            raise IndexError(f"row {index} of {self.shape[0]}")
        row = np.ascontiguousarray(np.broadcast_to(np.asarray(value, dtype=np.uint8),
                                                   self.shape[1:]))
        view = memoryview(row.data).cast("B")
        offset = self._offset + index * self._row_bytes
        while len(view):
            written = os.pwrite(self._open_fd(), view, offset)
            view, offset = view[written:], offset + written

    def row(self, index: int) -> np.ndarray:
        """Row ``index`` as written so far (zeros where nothing was)."""
        if not 0 <= index < self.shape[0]:
            raise IndexError(f"row {index} of {self.shape[0]}")
        data = os.pread(self._open_fd(), self._row_bytes, self._offset + index * self._row_bytes)
        return np.frombuffer(data, dtype=np.uint8).reshape(self.shape[1:])

    def commit(self) -> np.ndarray:
        """Sync, rename into place, and return the entry reopened read-only (memory-mapped)."""
        try:
            os.fsync(self._open_fd())
            self._close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.discard()
            raise
        array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        if self._published is not None:
            self._published()
        return array

    def discard(self) -> None:
        self._close()
        self._tmp.unlink(missing_ok=True)

    def _open_fd(self) -> int:
        if self._fd is None:
            raise ValueError(f"{self.path.name}: the entry was committed or discarded")
        return self._fd

    def _close(self) -> None:
        if self._fd is not None:
            self._fd = None
            self._closer()  # closes the file once, whoever calls it first
