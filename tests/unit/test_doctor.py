"""`heygemd doctor`'s daemon line: whether a daemon holds the state lock, OK either way."""

from __future__ import annotations

import os
from pathlib import Path

from heygemd.daemon import doctor
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
