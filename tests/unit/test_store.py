"""Job states in SQLite: allowed transitions, attempts, ordering, read-only access."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from heygemd.daemon.store import State, Store, TransitionError, check_transition


@pytest.mark.parametrize(("old", "new"), [
    (State.QUEUED, State.VALIDATING), (State.VALIDATING, State.RUNNING),
    (State.VALIDATING, State.REJECTED), (State.RUNNING, State.DONE),
    (State.RUNNING, State.FAILED), (State.RUNNING, State.QUEUED),
])
def test_allowed_transitions(old: State, new: State) -> None:
    check_transition(old, new)


@pytest.mark.parametrize(("old", "new"), [
    (State.QUEUED, State.RUNNING), (State.DONE, State.QUEUED), (State.QUEUED, State.DONE),
    (State.FAILED, State.RUNNING), (State.REJECTED, State.VALIDATING),
])
def test_forbidden_transitions(old: State, new: State) -> None:
    with pytest.raises(TransitionError):
        check_transition(old, new)


def test_lifecycle_counts_attempts_and_orders_oldest_first(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.add("J2", "second")
    store.add("J1", "first")  # ids do not matter: the order of arrival does
    assert store.next_queued().name == "second"  # type: ignore[union-attr]
    row = store.transition("J2", State.VALIDATING)
    assert row.attempts == 1 and row.started_at
    store.transition("J2", State.RUNNING, video_count=2)
    store.update("J2", video_index=1, video_name="a.mp4", fraction=0.5)
    row = store.get("J2")
    assert row is not None and (row.video_index, row.video_count, row.fraction) == (1, 2, 0.5)
    back = store.transition("J2", State.QUEUED)
    assert back.video_count == 0 and back.attempts == 1  # progress reset, attempt kept
    store.transition("J2", State.VALIDATING)
    done = store.transition("J2", State.DONE, status="done", outbox_name="second")
    assert done.attempts == 2 and done.finished_at
    with pytest.raises(TransitionError):
        store.transition("J2", State.RUNNING)
    assert store.get("J2").state is State.DONE  # type: ignore[union-attr]  # rolled back
    assert [r.job_id for r in store.in_states(State.QUEUED)] == ["J1"]
    assert [r.name for r in store.recent()] == ["second"]
    with pytest.raises(ValueError, match="unknown job columns"):
        store.update("J1", nonsense=1)
    store.close()


def test_readonly_store_sees_writes_of_the_daemon(tmp_path: Path) -> None:
    writer = Store(tmp_path)
    reader = Store(tmp_path, readonly=True)
    writer.add("J1", "x")
    assert reader.get("J1") is not None
    with pytest.raises(Exception, match="readonly"):
        reader.add("J2", "y")
    reader.close()
    writer.close()


def test_a_killed_daemons_last_writes_are_read_by_an_unchanging_reader(tmp_path: Path) -> None:
    """A daemon killed (kill -9, a crash, the power lost) leaves its last writes in the
    write-ahead log: `heygemd status` and the web page, opening the store as unchanging since
    no daemon holds it, must still see them (they once read an empty database: no such table)."""
    import subprocess
    import sys

    code = ("import os, sys; from pathlib import Path; "
            "from heygemd.daemon.store import State, Store; "
            "s = Store(Path(sys.argv[1])); s.add('J1', 'lesson one'); "
            "s.transition('J1', State.VALIDATING); os._exit(0)  # no close, as a kill")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True,
                   cwd=Path(__file__).resolve().parents[2])
    assert (tmp_path / "jobs.sqlite3-wal").stat().st_size > 0  # not merged: no clean close
    reader = Store(tmp_path, readonly=True, unchanging=True)
    try:
        [row] = reader.in_states(State.VALIDATING)
        assert row.name == "lesson one"
    finally:
        reader.close()


def test_videos_are_recorded_once_per_job_and_name(tmp_path: Path) -> None:
    from heygemd.daemon.store import VideoFact

    store = Store(tmp_path)
    fact = VideoFact(job_id="J1", name="a.mp4", status="done", reason_code=None,
                     output_seconds=5.0, frames=125, examine_ms=300.0, render_ms=2000.0,
                     finished_at="2026-12-03T08:00:00+00:00")
    store.add_videos([fact, dataclasses.replace(fact, name="b.mp4", status="rejected",
                                                reason_code="no_face")])
    store.add_videos([fact])  # published again after a crash: replaced, not doubled
    assert sorted((f.name, f.status) for f in store.video_facts()) == [
        ("a.mp4", "done"), ("b.mp4", "rejected")]
    store.close()
