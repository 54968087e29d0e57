"""Mouth crops taken out of the cache's memory map, whose pages the process then lets go."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from heygemd.engines.builtin import crops


def _mapped(tmp_path: Path, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(the array, the same array saved as npy and memory-mapped read-only, as the cache does)."""
    array = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    np.save(tmp_path / "crops.npy", array)
    return array, np.load(tmp_path / "crops.npy", mmap_mode="r")


def _file_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssFile:")) / 1024


def test_take_copies_the_crops_asked_for_in_order(tmp_path: Path) -> None:
    array, mapped = _mapped(tmp_path, (5, 8, 8, 3))
    for source in (array, mapped):
        out = crops.take(source, [3, 0, 3])
        assert type(out) is np.ndarray and out.flags.writeable
        assert np.array_equal(out, array[[3, 0, 3]])
        out[:] = 0  # a copy: the bank is unchanged
        assert np.array_equal(np.asarray(source), array)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_pages_read_through_the_map_leave_the_resident_set(tmp_path: Path) -> None:
    array, mapped = _mapped(tmp_path, (16, 512, 512, 3))  # 12 MB
    before = _file_rss_mb()
    assert int(mapped.sum(dtype=np.int64)) == int(array.sum(dtype=np.int64))  # every page read
    read = _file_rss_mb()
    crops.let_go(mapped[4:8])  # a view of the map: the whole map is let go
    gone = _file_rss_mb()
    assert read - before > 10 and read - gone > 10
    assert np.array_equal(mapped[5], array[5])  # read again, from the page cache


def test_an_array_in_memory_is_left_alone() -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3)
    crops.let_go(array)
    crops.let_go(array[1:])
    assert np.array_equal(array, np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3))
