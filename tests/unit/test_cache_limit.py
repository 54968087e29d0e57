"""The cache's size limit: least recently used entries go first, a hit refreshes an entry, the
entry just written and one being read stay, and an entry removed under a reader is a miss."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from heygemd import cache
from heygemd.cache import (
    AnalysisCache,
    Entry,
    cache_size,
    choose_evictions,
    scan_entries,
)

KEYS = [f"{i:02x}" * 32 for i in range(1, 8)]  # seven keys, each in its own shard


def entry_files(root: Path, key: str) -> list[Path]:
    return sorted((root / key[:2]).glob(f"{key}.*"))


def age(root: Path, key: str, seconds_ago: float) -> None:
    """Make ``key``'s entry last used ``seconds_ago``."""
    when = time.time() - seconds_ago
    for path in entry_files(root, key):
        os.utime(path, (when, when))


def fill(root: Path, keys: list[str]) -> int:
    """Write one ~4 kB entry per key (no limit), the first oldest; returns one entry's size."""
    unlimited = AnalysisCache(root)
    for rank, key in enumerate(keys):
        unlimited.save_arrays(key, {"x": np.full(4000, rank, np.uint8)})
        age(root, key, 3600.0 - rank * 60.0)
    sizes = {e.size for e in scan_entries(root)}
    assert len(sizes) == 1
    return sizes.pop()


def test_least_recently_used_go_first_and_the_limit_holds(tmp_path: Path) -> None:
    size = fill(tmp_path, KEYS[:4])
    limited = AnalysisCache(tmp_path, max_bytes=3 * size)
    limited.save_arrays(KEYS[4], {"x": np.full(4000, 9, np.uint8)})
    left = {e.key for e in scan_entries(tmp_path)}
    assert left == {KEYS[2], KEYS[3], KEYS[4]}  # the two oldest went
    assert cache_size(tmp_path) <= 3 * size


def test_a_hit_refreshes_recency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "IN_USE_SECONDS", 0.0)  # recency alone decides
    size = fill(tmp_path, KEYS[:3])
    limited = AnalysisCache(tmp_path, max_bytes=3 * size)
    before = entry_files(tmp_path, KEYS[0])[0].stat().st_mtime
    got = limited.load_arrays(KEYS[0])  # the oldest, used again
    assert got is not None and got["x"][0] == 0
    assert entry_files(tmp_path, KEYS[0])[0].stat().st_mtime > before
    limited.save_arrays(KEYS[3], {"x": np.zeros(4000, np.uint8)})
    assert {e.key for e in scan_entries(tmp_path)} == {KEYS[0], KEYS[2], KEYS[3]}


def test_a_big_entry_hit_refreshes_its_entry(tmp_path: Path) -> None:
    key = KEYS[0]
    writer = AnalysisCache(tmp_path).big_writer(key, "crops", (4, 8, 8, 3))
    writer.commit()
    age(tmp_path, key, 3600.0)
    assert AnalysisCache(tmp_path).load_big(key, "crops") is not None
    (entry,) = scan_entries(tmp_path)
    assert time.time() - entry.used < 60.0


def test_the_entry_just_written_is_kept_even_alone_over_the_limit(tmp_path: Path) -> None:
    fill(tmp_path, KEYS[:2])
    limited = AnalysisCache(tmp_path, max_bytes=10)
    path = limited.save_arrays(KEYS[2], {"x": np.zeros(4000, np.uint8)})
    assert path.is_file() and [e.key for e in scan_entries(tmp_path)] == [KEYS[2]]
    assert limited.load_arrays(KEYS[2]) is not None


def test_a_committed_big_entry_trims_and_is_kept(tmp_path: Path) -> None:
    fill(tmp_path, KEYS[:2])
    writer = AnalysisCache(tmp_path, max_bytes=10).big_writer(KEYS[2], "crops", (4, 32, 32, 3))
    for index in range(4):
        writer.put(index, 5)
    assert writer.commit().max() == 5
    assert [e.key for e in scan_entries(tmp_path)] == [KEYS[2]]


def test_an_entry_made_of_several_files_goes_whole(tmp_path: Path) -> None:
    unlimited = AnalysisCache(tmp_path)
    unlimited.big_writer(KEYS[0], "crops", (2, 8, 8, 3)).commit()
    unlimited.save_arrays(KEYS[0], {"x": np.zeros(10)})
    age(tmp_path, KEYS[0], 3600.0)
    AnalysisCache(tmp_path, max_bytes=10).save_arrays(KEYS[1], {"x": np.zeros(10)})
    assert entry_files(tmp_path, KEYS[0]) == []


def test_recently_used_entries_stay_even_over_the_limit(tmp_path: Path) -> None:
    unlimited = AnalysisCache(tmp_path)
    for key in KEYS[:3]:  # just written: another thread or process may be reading them
        unlimited.save_arrays(key, {"x": np.zeros(4000, np.uint8)})
    AnalysisCache(tmp_path, max_bytes=10).save_arrays(KEYS[3], {"x": np.zeros(10)})
    assert len(scan_entries(tmp_path)) == 4


def test_an_entry_being_read_is_not_removed(tmp_path: Path) -> None:
    fill(tmp_path, KEYS[:2])
    limited = AnalysisCache(tmp_path, max_bytes=10)
    with cache._being_read(tmp_path, KEYS[0]):
        limited.trim()
    assert {e.key for e in scan_entries(tmp_path)} == {KEYS[0]}
    limited.trim()
    assert scan_entries(tmp_path) == []


def test_an_entry_removed_under_a_reader_is_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AnalysisCache(tmp_path)
    npz = store.save_arrays(KEYS[0], {"x": np.zeros(3)})
    big = store.big_writer(KEYS[0], "crops", (2, 2, 2, 3))
    big.commit()
    real_open, real_load = open, np.load

    def open_after_removal(path: Path, mode: str = "r"):  # type: ignore[no-untyped-def]
        Path(path).unlink()  # a trim elsewhere won the race
        return real_open(path, mode)

    def load_after_removal(path: Path, *args, **kwargs):  # type: ignore[no-untyped-def]
        Path(path).unlink()
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(cache, "open", open_after_removal, raising=False)
    monkeypatch.setattr(np, "load", load_after_removal)
    with capture_logs() as logs:
        assert store.load_arrays(KEYS[0]) is None
        assert store.load_big(KEYS[0], "crops") is None
    assert logs == [] and not npz.exists()


def test_readers_and_trimmers_at_once_see_hits_or_misses_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "IN_USE_SECONDS", 0.0)  # every entry may go at once
    errors: list[BaseException] = []
    wrong: list[str] = []

    def work(me: int) -> None:
        store = AnalysisCache(tmp_path, max_bytes=6000)
        try:
            for round_ in range(40):
                key = KEYS[(me + round_) % len(KEYS)]
                store.save_arrays(key, {"x": np.full(2000, ord(key[0]), np.uint8)})
                for other in KEYS:
                    got = store.load_arrays(other)
                    if got is not None and got["x"][0] != ord(other[0]):
                        wrong.append(other)
        except BaseException as err:  # noqa: BLE001 - collected for the assertion
            errors.append(err)

    with capture_logs() as logs:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == [], errors
    assert wrong == [], wrong
    # the cache's own (a thread another test left behind may log meanwhile: not this test's)
    warnings = [e for e in logs if e["log_level"] == "warning" and e["event"].startswith("cache.")]
    assert not warnings, warnings
    left = scan_entries(tmp_path)
    # at most each writer's own entry over
    assert cache_size(tmp_path) <= 6000 + 4 * 2300, [(e.key[:4], e.size, e.used) for e in left]


def test_stale_temp_files_go_and_fresh_ones_stay(tmp_path: Path) -> None:
    shard = tmp_path / "ab"
    shard.mkdir()
    stale, fresh = shard / ".tmp-old.npy", shard / ".tmp-new.npy"
    stale.write_bytes(b"x" * 100)
    fresh.write_bytes(b"x" * 100)
    os.utime(stale, (1, 1))
    AnalysisCache(tmp_path, max_bytes=10**6).trim()
    assert not stale.exists() and fresh.exists()


def test_other_files_under_the_cache_folder_are_left_alone(tmp_path: Path) -> None:
    pictures = tmp_path / "validate" / "job"
    pictures.mkdir(parents=True)
    (pictures / "a.jpg").write_bytes(b"x" * 5000)
    (tmp_path / "ab").mkdir()
    (tmp_path / "ab" / "notes.txt").write_bytes(b"x" * 5000)
    assert scan_entries(tmp_path) == [] and cache_size(tmp_path) == 0
    AnalysisCache(tmp_path, max_bytes=10).trim()
    assert (pictures / "a.jpg").exists() and (tmp_path / "ab" / "notes.txt").exists()


def test_no_cache_folder_is_an_empty_cache(tmp_path: Path) -> None:
    assert cache_size(tmp_path / "missing") == 0
    AnalysisCache(tmp_path / "missing", max_bytes=10).trim()  # nothing to do, no error


def test_choose_evictions_order_and_exemptions() -> None:
    def entry(key: str, size: int, used: float, is_temp: bool = False) -> Entry:
        return Entry(key, (), size, used, is_temp)

    now = 10_000.0
    entries = [
        entry("new", 40, now - 100), entry("old", 40, now - 900), entry("mid", 40, now - 500),
        entry("kept", 40, now - 2000), entry("busy", 40, now - 5),
        entry(".tmp-a", 40, now - 10, is_temp=True), entry(".tmp-b", 5, now - 10**6, True),
    ]
    chosen = choose_evictions(entries, 130, {"kept"}, now, in_use_seconds=60,
                              stale_temp_seconds=3600)
    # 245 bytes, the write in progress (.tmp-a) counted: the stale temp always, then the
    # oldest first, skipping the kept and the busy, until 130 are left
    assert [e.key for e in chosen] == [".tmp-b", "old", "mid", "new"]
    assert choose_evictions(entries, 10**6, set(), now) == [entries[6]]


def test_an_entry_in_use_is_passed_over_for_the_next_least_recently_used(
    tmp_path: Path,
) -> None:
    size = fill(tmp_path, KEYS[:3])
    limited = AnalysisCache(tmp_path, max_bytes=2 * size)
    with cache._being_read(tmp_path, KEYS[0]):  # the oldest is being read: the next one goes
        limited.trim()
    assert {e.key for e in scan_entries(tmp_path)} == {KEYS[0], KEYS[2]}
    assert cache_size(tmp_path) <= 2 * size


def test_an_entry_hit_since_the_listing_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = fill(tmp_path, KEYS[:3])
    listed = scan_entries

    def listing_then_hit(root: Path) -> list[Entry]:
        entries = listed(root)
        os.utime(entry_files(root, KEYS[0])[0])  # another thread's hit on the oldest
        return entries

    monkeypatch.setattr(cache, "scan_entries", listing_then_hit)
    AnalysisCache(tmp_path, max_bytes=2 * size).trim()
    monkeypatch.undo()
    assert {e.key for e in scan_entries(tmp_path)} == {KEYS[0], KEYS[2]}


def test_files_that_cannot_be_removed_give_way_and_are_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = fill(tmp_path, KEYS[:4])
    shard = tmp_path / "ab"
    shard.mkdir()
    stale = shard / ".tmp-old.npy"  # a crashed writer's leftover
    stale.write_bytes(b"x" * 100)
    os.utime(stale, (1, 1))
    stuck = {KEYS[0], KEYS[1], stale.name}  # e.g. another user's files
    remove = cache._remove

    def refusing(root: Path, entry: Entry) -> bool:
        if entry.key in stuck:
            raise PermissionError(13, "Permission denied", str(entry.paths[0]))
        return remove(root, entry)

    monkeypatch.setattr(cache, "_remove", refusing)
    with capture_logs() as logs:
        AnalysisCache(tmp_path, max_bytes=3 * size + 100).trim()  # returns: none is retried
    assert {e.key for e in scan_entries(tmp_path)} == {KEYS[0], KEYS[1], KEYS[3], stale.name}
    warned = [e for e in logs if e["event"] == "cache.unremovable"]
    assert len(warned) == 1 and warned[0]["entries"] == 3
