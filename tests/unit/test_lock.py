"""The single-instance lock on the state directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from heygemd.daemon.lock import AlreadyRunning, InstanceLock, holder


def test_second_lock_on_the_same_state_is_refused_with_the_pid(tmp_path: Path) -> None:
    assert holder(tmp_path) is None
    first = InstanceLock(tmp_path)
    first.acquire()
    try:
        assert holder(tmp_path) == os.getpid()
        with pytest.raises(AlreadyRunning) as exc:
            InstanceLock(tmp_path).acquire(wait_seconds=0.1)
        assert exc.value.message == (
            f"heygemd is already running (pid {os.getpid()}) on this state directory")
        assert first.held  # the probe by holder() did not take it away
    finally:
        first.release()
    assert holder(tmp_path) is None
    again = InstanceLock(tmp_path)
    again.acquire(wait_seconds=0)  # released: a new daemon may start
    again.release()
