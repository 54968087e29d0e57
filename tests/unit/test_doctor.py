"""`heygemd doctor`'s daemon line: whether a daemon holds the state lock, OK either way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from heygemd import doctor
from heygemd.daemon.lock import InstanceLock
from heygemd.settings import Settings


def _settings(state: Path) -> Settings:
    return Settings.model_validate({"paths": {"state": str(state)}})


def test_doctor_says_whether_a_daemon_holds_the_state_lock(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "state")
    assert doctor.check_daemon in doctor.CHECKS
    idle = doctor.check_daemon(settings)  # no state folder yet
    assert idle.ok and idle.name == "daemon"
    assert idle.detail.startswith("no daemon is running on this state directory")
    lock = InstanceLock(tmp_path / "state")
    lock.acquire()
    try:
        busy = doctor.check_daemon(settings)
        assert lock.held  # looking did not take the lock away
    finally:
        lock.release()
    assert busy.ok
    assert busy.detail.startswith(
        f"a daemon is running (pid {os.getpid()}) on this state directory")
    assert doctor.check_daemon(settings).detail.startswith("no daemon is running")


def test_an_unreadable_state_is_still_ok_and_says_it_cannot_tell(tmp_path: Path) -> None:
    state = tmp_path / "not-a-folder"
    state.write_text("")  # opening state/heygemd.lock fails with ENOTDIR
    check = doctor.check_daemon(_settings(state))
    assert check.ok and check.detail.startswith("cannot tell whether a daemon is running")


def test_doctor_shows_the_cache_size_against_its_limit(tmp_path: Path) -> None:
    import numpy as np

    from heygemd.cache import AnalysisCache

    root = tmp_path / "cache"
    settings = Settings.model_validate(
        {"paths": {"cache": str(root), "cache_max_gb": 0.5}})
    assert doctor.check_cache in doctor.CHECKS
    empty = doctor.check_cache(settings)
    assert empty.ok and empty.name == "cache"
    assert empty.detail.startswith(f"empty, at most 0.5 GB (paths.cache_max_gb) in {root}:")
    AnalysisCache(root).save_arrays("ab" * 32, {"x": np.zeros(300_000, np.uint8)})
    (root / "validate").mkdir()  # the dry run's pictures are not cache entries
    (root / "validate" / "a.jpg").write_bytes(b"x" * 10**6)
    used = doctor.check_cache(settings)
    assert used.ok and used.detail.startswith("0.3 MB of 0.5 GB (paths.cache_max_gb) used in ")
    assert "least recently used removed first" in used.detail and "over" not in used.detail
    small = Settings.model_validate({"paths": {"cache": str(root), "cache_max_gb": 0.0001}})
    over = doctor.check_cache(small)
    assert over.ok and "over the limit" in over.detail and "delete the folder" in over.detail


def test_doctor_says_what_the_builtin_engine_spreads_over_the_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """16 usable cores: faces in up to 8 segments, batches by 4 transplant threads, phones by
    4 decoding processes; another engine: the cores alone."""
    from heygemd.doctor import check_cores

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    line = check_cores(Settings())
    assert line.ok and line.detail.startswith("16 usable")
    assert "up to 8 segment(s)" in line.detail and "4 thread(s)" in line.detail
    assert "decoded by 4 processes at once" in line.detail
    other = check_cores(Settings(engine={"name": "wav2lip"}))
    assert other.detail == "16 usable"
