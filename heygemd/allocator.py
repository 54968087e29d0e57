"""glibc's allocator set for a process that streams full video frames through several threads.

By default glibc raises its mmap threshold to the size of any large block freed (up to 32 MB),
so after the first frame (6 MB at 1080x1920) every frame-sized buffer comes from a heap arena,
one arena per thread that allocates (decode, render, encode: up to 8 per core). Freed frames
then stay in those heaps: on a 40 s 1080x1920 job the peak was 2.9 GB and 2.3 GB stayed
resident after the job. With frame-sized blocks always mapped (and unmapped when freed) and two
arenas, the same job peaks at 2.0 GB and gives the frames back when it ends. The price is the
page faults of mapping large blocks afresh: a warm 512x512 job (th08, 11 s of sound) takes
about 0.5 s longer (6.0 -> 6.6 s in one process, +-0.4 s from run to run); at 1080p x264 is the
bottleneck and no difference shows.

Blocks of 4 MB and more are mapped: 1080p RGB frames (6 MB) and the torch batches; 720p frames
(2.6 MB) and the 4:2:0 planes held on backward walks stay in the (two) heaps.

Applied once per process by :func:`for_frames` (the pipeline's builder), never at import; an
operator's own ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_ARENA_MAX`` (or the same in
``GLIBC_TUNABLES``) are left as they are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import structlog

log = structlog.get_logger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024  # a 1080p RGB frame is 6 MB; smaller blocks stay in heaps
ARENA_MAX = 2
_ENVIRONMENT = {M_MMAP_THRESHOLD: "MALLOC_MMAP_THRESHOLD_", M_ARENA_MAX: "MALLOC_ARENA_MAX"}
_TUNABLES = {M_MMAP_THRESHOLD: "glibc.malloc.mmap_threshold", M_ARENA_MAX: "glibc.malloc.arena_max"}


def for_frames() -> dict[str, int]:
    """Set the mmap threshold and arena count (those the environment does not set); returns
    what was set, by environment name (empty where the C library is not glibc)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        libc = None
    mallopt = getattr(libc, "mallopt", None)
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
    return done
