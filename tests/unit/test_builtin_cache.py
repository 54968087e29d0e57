"""Content-addressed template-analysis cache."""

from __future__ import annotations

import gc
import os
import threading
from contextlib import suppress
from pathlib import Path

import numpy as np
import pytest

from heygemd.cache import AnalysisCache, content_key


def test_key_follows_content_and_version(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "c.mp4"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    c.write_bytes(b"other bytes")
    assert content_key(a, "v1") == content_key(b, "v1")
    assert content_key(a, "v1") != content_key(c, "v1")
    assert content_key(a, "v1") != content_key(a, "v2")


def test_arrays_miss_then_hit(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path / "cache")
    assert cache.load_arrays("ab" * 32) is None
    cache.save_arrays("ab" * 32, {"x": np.arange(5), "y": np.ones((2, 3), np.float32)})
    got = cache.load_arrays("ab" * 32)
    assert got is not None and got["x"].tolist() == [0, 1, 2, 3, 4]
    assert got["y"].shape == (2, 3)
    assert not list((tmp_path / "cache").rglob(".tmp-*"))


def test_version_bump_misses(tmp_path: Path) -> None:
    video = tmp_path / "t.mp4"
    video.write_bytes(b"video")
    cache = AnalysisCache(tmp_path / "cache")
    cache.save_arrays(content_key(video, "v1"), {"x": np.zeros(1)})
    assert cache.load_arrays(content_key(video, "v1")) is not None
    assert cache.load_arrays(content_key(video, "v2")) is None


def test_big_entry_is_invisible_until_commit(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path)
    key = "cd" * 32
    entry = cache.big_writer(key, "crops", (3, 4, 4, 3))
    entry.put(1, np.full((4, 4, 3), 7, np.uint8))
    assert cache.load_big(key, "crops") is None
    arr = entry.commit()
    assert arr[1].max() == 7 and arr[0].max() == 0
    loaded = cache.load_big(key, "crops")
    assert loaded is not None and loaded.shape == (3, 4, 4, 3)


def test_discarded_big_entry_leaves_nothing(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path)
    entry = cache.big_writer("ef" * 32, "crops", (2, 2, 2, 3))
    entry.discard()
    assert cache.load_big("ef" * 32, "crops") is None
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_corrupt_entry_is_a_miss(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path)
    key = "12" * 32
    path = cache.save_arrays(key, {"x": np.zeros(3)})
    path.write_bytes(b"not an npz")
    assert cache.load_arrays(key) is None
    assert not path.exists()


@pytest.mark.parametrize("damage", ["header", "npy header"])
def test_damage_the_parsers_raise_odd_errors_for_is_a_miss(tmp_path: Path, damage: str) -> None:
    """One byte that numpy's header parser chokes on (its tokenizer raises TokenError, not a
    ValueError): a miss, the file dropped, for a part of an npz entry and for a big npy."""
    cache = AnalysisCache(tmp_path)
    key = "34" * 32
    if damage == "header":
        path = cache.save_arrays(key, {"frame": np.zeros((4, 5, 3), np.uint8)}, "frame-7")
    else:
        entry = cache.big_writer(key, "crops", (2, 2, 2, 3))
        entry.commit()
        path = tmp_path / key[:2] / f"{key}.crops.npy"
    data = bytearray(path.read_bytes())
    data[data.index(b"False") + 4] = ord("(")  # 'fortran_order': Fals( ...: unbalanced
    path.write_bytes(bytes(data))
    if damage == "header":
        assert cache.load_arrays(key, "frame-7") is None
    else:
        assert cache.load_big(key, "crops") is None
    assert not path.exists()


def test_the_builtin_engine_caches_within_paths_cache_max_gb(tmp_path: Path) -> None:
    from heygemd.engines.base import create_engine
    from heygemd.settings import Settings

    settings = Settings()
    paths = settings.paths.model_copy(update={"cache": tmp_path, "cache_max_gb": 0.5})
    engine = create_engine(settings.engine, settings.faces, paths, "cpu")
    assert engine.cache.max_bytes == 512 * 1024**2  # type: ignore[attr-defined]


def test_big_entry_rows_are_written_in_place_and_read_back(tmp_path: Path) -> None:
    entry = AnalysisCache(tmp_path).big_writer("ab" * 32, "crops", (4, 3, 2, 3))
    row = np.arange(18, dtype=np.uint8).reshape(3, 2, 3)
    entry.put(2, row)
    entry.put(0, 9)
    assert np.array_equal(entry.row(2), row) and entry.row(0).min() == 9
    assert not entry.row(1).any() and not entry.row(3).any()
    with pytest.raises(IndexError):
        entry.put(4, row)
    with pytest.raises(ValueError):
        entry.put(1, np.zeros((2, 2, 3), np.uint8))  # not a row's shape
    array = entry.commit()
    assert array.shape == (4, 3, 2, 3) and np.array_equal(array[2], row)
    assert array[0].min() == 9 and not array[1].any()
    with pytest.raises(ValueError, match="committed or discarded"):
        entry.put(1, row)


def test_big_entry_rows_from_several_threads_land_in_their_places(tmp_path: Path) -> None:
    entry = AnalysisCache(tmp_path).big_writer("ab" * 32, "crops", (64, 16, 16, 3))

    def fill(first: int) -> None:
        for index in range(first, 64, 4):
            entry.put(index, index)

    threads = [threading.Thread(target=fill, args=(first,)) for first in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    array = entry.commit()
    assert [int(array[i].min()) for i in range(64)] == list(range(64))
    assert [int(array[i].max()) for i in range(64)] == list(range(64))


def _resident_mb() -> float:
    """This process's resident set (anonymous and file-backed pages), MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return sum(int(fields[k].split()[0]) for k in ("RssAnon", "RssFile", "RssShmem")) / 1024


def test_filling_a_big_entry_does_not_hold_its_rows_in_this_process(tmp_path: Path) -> None:
    """The crops of a long template (GBs) are written out as they come, not kept resident."""
    rows, row_bytes = 96, 1024 * 1024
    entry = AnalysisCache(tmp_path).big_writer("ab" * 32, "crops", (rows, 512, 683, 3))
    row = np.full((512, 683, 3), 200, np.uint8)
    before = _resident_mb()
    for index in range(rows):
        entry.put(index, row)
    grown = _resident_mb() - before
    entry.discard()
    assert grown < rows * row_bytes / 2**20 / 4  # 96 MB written, under 24 MB more resident


def _files_open_under(folder: Path) -> list[str]:
    """The files under ``folder`` this process holds open (its /proc/self/fd links)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        with suppress(OSError):  # an fd closed meanwhile (another thread's)
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(folder)):
                held.append(target)
    return held


def test_a_big_entry_closes_its_file_on_every_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = AnalysisCache(tmp_path)
    entry = cache.big_writer("a1" * 32, "crops", (2, 2, 2, 3))
    assert len(_files_open_under(tmp_path)) == 1
    entry.discard()
    cache.big_writer("a2" * 32, "crops", (2, 2, 2, 3)).commit()
    dropped = cache.big_writer("a3" * 32, "crops", (2, 2, 2, 3))  # a failed analysis's
    del dropped
    gc.collect()
    assert _files_open_under(tmp_path) == []

    def no_sync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    failing = cache.big_writer("a4" * 32, "crops", (2, 2, 2, 3))
    monkeypatch.setattr(os, "fsync", no_sync)
    with pytest.raises(OSError):
        failing.commit()
    assert _files_open_under(tmp_path) == []
    assert cache.load_big("a4" * 32, "crops") is None
    assert not [p for p in (tmp_path / "a4").rglob("*") if p.is_file()]  # its temporary file
