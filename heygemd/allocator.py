"""glibc's allocator set for a process that streams full video frames through several threads.

By default glibc raises its mmap threshold to the size of any large block freed (up to 32 MB),
so after the first frame (6 MB at 1080x1920) every frame-sized buffer comes from a heap arena,
one arena per thread that allocates (decode, render, encode: up to 8 per core). Freed frames
then stay in those heaps: on a 40 s 1080x1920 job the peak was 2.9 GB and 2.3 GB stayed
resident after the job. With frame-sized blocks always mapped (and unmapped when freed) and two
arenas, the same job peaks at 2.0 GB and gives the frames back when it ends. At 1080p x264 is
the bottleneck, and the page faults of mapping large blocks afresh do not show.

Blocks of 4 MB and more are mapped while a video whose RGB frames are that large is made
(:func:`frames_of`): 1080p RGB frames (6 MB) where a stage holds them whole, and the torch
batches. While only smaller videos are made, their frames stay in the heaps anyway, and
mapping their render's batches (7-8 MB blocks at 512x512, about 2.3 GB mapped afresh over an
11 s video) costs page faults for nothing: the threshold is 32 MB then, and the heaps' free
pages go back to the system when the last such video ends. A warm th08 job (512x512, 11 s of
sound, `heygemd once` on 2 cores, 6 pairs alternated): minor page faults 683,000 -> 314,000,
system CPU 2.9 -> 2.0 s (medians). The heaps hold more at the peak: th08 with 3 minutes of
sound peaked at 947 MB of tree RSS against 887 MB (one run each), level from the first minute.

glibc's settings are the process's: :func:`frames_of` changes one for the length of a video,
the only setting here that is not fixed at start-up.

Applied once per process by :func:`for_frames` (the pipeline's builder), never at import; an
operator's own ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_ARENA_MAX`` (or the same in
``GLIBC_TUNABLES``) are left as they are, and :func:`frames_of` then changes nothing.
:func:`give_back` returns the heaps' free pages after a burst of smaller blocks (a backward
walk's 4:2:0 frames) is freed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import threading
from collections import Counter
from collections.abc import Iterable, Iterator

import structlog

log = structlog.get_logger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024  # a 1080p RGB frame is 6 MB; smaller blocks stay in heaps
HEAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's DEFAULT_MMAP_THRESHOLD_MAX (64-bit)
ARENA_MAX = 2
_ENVIRONMENT = {M_MMAP_THRESHOLD: "MALLOC_MMAP_THRESHOLD_", M_ARENA_MAX: "MALLOC_ARENA_MAX"}
_TUNABLES = {M_MMAP_THRESHOLD: "glibc.malloc.mmap_threshold", M_ARENA_MAX: "glibc.malloc.arena_max"}


class _Fitting:
    """The process's videos being made (their RGB frame sizes) and whether the threshold is
    this module's to change (:func:`for_frames` set it). glibc's settings are the process's,
    so this is too: one per process, changed under its lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ours = False
        self.frames: Counter[int] = Counter()
        self.threshold = MMAP_THRESHOLD_BYTES  # the one set last

    def fit(self) -> None:
        """Set the threshold for the videos being made (call under the lock)."""
        mallopt = getattr(_libc(), "mallopt", None)
        if not self.ours or mallopt is None:
            return
        wanted = threshold_for(self.frames) if self.frames else MMAP_THRESHOLD_BYTES
        if wanted != self.threshold and mallopt(ctypes.c_int(M_MMAP_THRESHOLD),
                                                ctypes.c_int(wanted)) == 1:
            self.threshold = wanted
            log.debug("allocator.fitted", threshold=wanted)


_fitting = _Fitting()


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def give_back() -> bool:
    """Hand the heaps' free pages back to the system (glibc's ``malloc_trim(0)``), after a
    burst of blocks under the mmap threshold was freed (a backward walk's 4:2:0 frames, a
    decoder's pool): the holes they leave between blocks still in use otherwise stay resident.
    Returns whether memory was given back (False where the C library is not glibc).

    After each decoded run of a th10 (1080x1920) render, 150 s of output: the process's
    resident floor stays at 1.1 GB instead of creeping from 1.24 to 1.51 GB, the peak 1.64
    instead of 1.72 GB; the pages mapped again cost about 1% more CPU (two 40 s pairs)."""
    trim = getattr(_libc(), "malloc_trim", None)
    return bool(trim(ctypes.c_size_t(0))) if trim is not None else False


def for_frames() -> dict[str, int]:
    """Set the mmap threshold and arena count (those the environment does not set); returns
    what was set, by environment name (empty where the C library is not glibc)."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return {}
    chosen = {M_MMAP_THRESHOLD: MMAP_THRESHOLD_BYTES, M_ARENA_MAX: ARENA_MAX}
    done: dict[str, int] = {}
    for param, value in chosen.items():
        variable = _ENVIRONMENT[param]
        if variable in os.environ or _TUNABLES[param] in os.environ.get("GLIBC_TUNABLES", ""):
            continue
        if mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1:
            done[variable] = value
    if done:
        log.debug("allocator.set", **done)
    with _fitting.lock:  # the videos being made, if any, have theirs again
        _fitting.ours = _ENVIRONMENT[M_MMAP_THRESHOLD] in done
        _fitting.threshold = MMAP_THRESHOLD_BYTES
        _fitting.fit()
    return done


def threshold_for(frame_bytes: Iterable[int]) -> int:
    """The mmap threshold while videos of these RGB frame sizes (bytes) are made at once:
    MMAP_THRESHOLD_BYTES where one's frames are that large (they are mapped, and given back
    as they are freed), else HEAP_THRESHOLD_BYTES."""
    large = any(size >= MMAP_THRESHOLD_BYTES for size in frame_bytes)
    return MMAP_THRESHOLD_BYTES if large else HEAP_THRESHOLD_BYTES


@contextlib.contextmanager
def frames_of(width: int, height: int) -> Iterator[None]:
    """While a video of ``width`` x ``height`` is made: the mmap threshold fitted to the
    videos being made (:func:`threshold_for`), MMAP_THRESHOLD_BYTES again when none is, and
    then the heaps' free pages given back. Changes nothing where :func:`for_frames` did not
    set the threshold (the operator's environment did, or the C library is not glibc)."""
    size = width * height * 3
    with _fitting.lock:
        _fitting.frames[size] += 1
        _fitting.fit()
    try:
        yield
    finally:
        with _fitting.lock:
            _fitting.frames[size] -= 1
            if not _fitting.frames[size]:
                del _fitting.frames[size]
            _fitting.fit()
            # the last small video's blocks were in the heaps (a larger one may go on)
            last_small = _fitting.ours and size < MMAP_THRESHOLD_BYTES and not any(
                other < MMAP_THRESHOLD_BYTES for other in _fitting.frames)
        if last_small:
            give_back()
