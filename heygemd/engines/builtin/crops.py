"""The template's mouth crops taken out of the cache's memory map, whose pages are then let go.

The crops entry (uint8 (N, S, S, 3), one npy per template: 275 MB for th10's 502 frames at
1080x1920) is memory-mapped read-only. A page read through a map stays in the process's
resident set until it is unmapped, so a render that samples mouths from all over the template
held the whole file resident (252 MB of a 40 s th10 job's 1.8 GB peak). Crops are copied out
and the map's pages let go (``MADV_DONTNEED``): the file's pages stay in the page cache
(shared, clean, reclaimable), as they would after a ``read``; the next access maps them again.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence

import numpy as np

# crops read through the map between two let_go calls, where a pass reads part of every crop
# (a lip box each: the kernel maps the pages around each read as well)
LET_GO_FRAMES = 256


def take(crops: np.ndarray, indices: Sequence[int]) -> np.ndarray:
    """uint8 (len(indices), S, S, 3): copies of the crops at ``indices``; a memory-mapped
    ``crops`` is let go of afterwards (:func:`let_go`)."""
    out = np.asarray(crops[np.asarray(indices, dtype=np.intp)])
    let_go(crops)
    return out


def let_go(array: np.ndarray) -> None:
    """Drop the pages of the memory map under ``array`` (a view of one, or the map itself)
    from this process's resident set; the data is unchanged (a read-only file mapping: the next
    access reads the page cache again). Arrays not backed by a map are left alone."""
    base: object = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    if isinstance(base, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        base.madvise(mmap.MADV_DONTNEED)
