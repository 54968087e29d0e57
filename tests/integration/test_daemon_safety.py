"""Daemon.tick() against hostile or broken surroundings: job folders swapped for links,
an outbox that cannot be written."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

import pytest

from heygemd.cli import build_pipeline
from heygemd.daemon.service import Daemon
from heygemd.daemon.store import State
from heygemd.settings import load_settings
from tests.integration.conftest import Harness, run_until_idle


def server_folder(harness: Harness) -> tuple[Path, dict[str, bytes]]:
    """A folder outside the inbox that looks like a job (and holds a link of its own)."""
    secret = harness.make_job("secret", {"a.wav": "speech.wav", "b.mp4": "face.mp4"},
                              where=harness.root / "server")
    (secret / "passwd").symlink_to("/etc/passwd")
    return secret, {p.name: p.read_bytes() for p in secret.iterdir() if not p.is_symlink()}


def assert_untouched(secret: Path, before: dict[str, bytes]) -> None:
    assert {p.name: p.read_bytes() for p in secret.iterdir() if not p.is_symlink()} == before
    assert (secret / "passwd").is_symlink()


def outbox_files(harness: Harness) -> list[str]:
    return sorted(str(p.relative_to(harness.outbox)) for p in harness.outbox.rglob("*"))


def test_a_job_folder_swapped_for_a_link_while_settling_is_left_alone(
    harness: Harness, daemon: Daemon
) -> None:
    secret, before = server_folder(harness)
    daemon.startup()
    (harness.inbox / "x").mkdir()
    (harness.inbox / "x" / "notes.txt").write_text("first")
    daemon.tick()
    assert "x" in daemon.intake.candidates  # seen as a real folder first
    (harness.inbox / "x" / "notes.txt").unlink()
    (harness.inbox / "x").rmdir()
    (harness.inbox / "x").symlink_to(secret)
    daemon.intake.request_rescan()
    run_until_idle(daemon)
    for _ in range(10):  # past the settle time: still never claimed
        daemon.tick()
        time.sleep(0.1)
    assert daemon.store.recent() == []
    assert (harness.inbox / "x").is_symlink()
    assert_untouched(secret, before)
    assert outbox_files(harness) == ["STATUS.txt", "status.json"]


def test_a_claimed_job_that_is_a_link_is_refused_without_following_it(
    harness: Harness, daemon: Daemon
) -> None:
    """The swap won the race with the claim: the runner refuses the link itself."""
    secret, before = server_folder(harness)
    daemon.startup()
    holder = harness.work / "20240101T000000-abcdef"
    holder.mkdir()
    (holder / "x").symlink_to(secret)
    daemon.store.add(holder.name, "x")
    run_until_idle(daemon)
    row = daemon.store.get(holder.name)
    assert row is not None and row.state is State.REJECTED
    report = harness.published()["x"]
    assert report["reason_code"] == "symlink" and "link" in report["message"]
    assert not (harness.outbox / "x" / "inputs").exists()
    assert not any(p.is_symlink() for p in harness.outbox.rglob("*"))
    assert_untouched(secret, before)
    assert not holder.exists()


def test_recovery_does_not_adopt_a_link(harness: Harness, daemon: Daemon) -> None:
    secret, before = server_folder(harness)
    holder = harness.work / "20240101T000000-abcdef"
    holder.mkdir(parents=True)
    (holder / "x").symlink_to(secret)
    daemon.startup()
    assert daemon.store.get(holder.name) is None
    run_until_idle(daemon)
    assert_untouched(secret, before)
    assert outbox_files(harness) == ["STATUS.txt", "status.json"]
    assert os.path.islink(holder / "x")


def test_an_unwritable_outbox_backs_off_shows_why_and_recovers(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.configure(watch={"settle_seconds": 0.3, "rescan_seconds": 0.5})
    d = Daemon(load_settings(harness.root / "config.toml"), build_pipeline, env={})
    tries: list[float] = []
    real_mkdir = Path.mkdir
    broken = True

    def mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if broken and self.name.startswith(".heygemd-staging-"):
            tries.append(time.monotonic())
            # what chmod a-w (or a read-only mount) gives; chmod does not stop root
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", mkdir)
    d.startup()
    try:
        harness.good_job("stuck")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            d.tick()  # as fast as the loop can go: no sleep between ticks
        assert 1 <= len(tries) <= 5, len(tries)  # about one try per rescan_seconds
        status = (harness.outbox / "STATUS.txt").read_text()
        assert ("PROBLEM: job 'stuck' is waiting: the service is not allowed to write to the "
                "outbox; it runs again once that is fixed; next try in") in status
        assert str(harness.root) not in status and "Errno" not in status
        [row] = d.store.in_states(State.QUEUED)
        assert row.faults == 0  # the outbox's fault, not the job's: no crash_loop later
        broken = False
        run_until_idle(d, ticks=30)
        assert harness.published()["stuck"]["status"] == "done"
        assert "PROBLEM" not in (harness.outbox / "STATUS.txt").read_text()
    finally:
        d.shutdown()


def test_folders_that_cannot_become_a_job_say_what_to_do(
    harness: Harness, daemon: Daemon
) -> None:
    daemon.startup()
    (harness.inbox / "blank").mkdir()
    (harness.inbox / "blank" / ".DS_Store").write_text("")
    (harness.inbox / "nested" / "inner").mkdir(parents=True)
    (harness.inbox / "copying").mkdir()
    (harness.inbox / "copying" / "a.wav").write_bytes(b"x")
    daemon.tick()
    daemon._refresh_status(force=True)
    status = (harness.outbox / "STATUS.txt").read_text()
    being_copied = status.split("Being copied", 1)[1].split("Not taken", 1)[0]
    assert "copying" in being_copied and "blank" not in being_copied
    assert "nested" not in being_copied
    assert "  - blank: empty: add the audio and video files" in status
    assert "  - nested: only subfolders: put the files directly in the job folder" in status


def test_loose_files_in_the_inbox_are_shown_until_they_go(harness: Harness, daemon: Daemon) -> None:
    daemon.startup()
    (harness.inbox / "loose voice.wav").write_bytes(b"x")
    (harness.inbox / "clip.mp4").symlink_to(harness.root / "elsewhere.mp4")
    (harness.inbox / "upload.mp4.part").write_bytes(b"x")  # temporary: not mentioned
    daemon.intake.request_rescan()
    run_until_idle(daemon)
    daemon._refresh_status(force=True)
    status = (harness.outbox / "STATUS.txt").read_text()
    assert ("Not a job folder (left alone): 'clip.mp4', 'loose voice.wav' - put the audio and "
            "videos together in a folder") in status
    assert "upload.mp4.part" not in status
    assert (harness.inbox / "loose voice.wav").is_file()  # left alone
    (harness.inbox / "loose voice.wav").unlink()
    (harness.inbox / "clip.mp4").unlink()
    daemon.intake.request_rescan()
    run_until_idle(daemon)
    daemon._refresh_status(force=True)
    assert "Not a job folder" not in (harness.outbox / "STATUS.txt").read_text()


def test_a_job_given_up_counts_its_own_faults_not_service_stops(
    harness: Harness, daemon: Daemon
) -> None:
    daemon.startup()
    holder = harness.work / "20240101T000000-abcdef"
    harness.good_job("poison", where=holder)
    daemon.store.add(holder.name, "poison")
    daemon.store.update(holder.name, attempts=20, interruptions=17,
                        faults=daemon.settings.daemon.max_attempts)
    run_until_idle(daemon)
    assert harness.published()["poison"]["reason_code"] == "crash_loop"
    text = (harness.outbox / "poison" / "RESULT.txt").read_text()
    assert "failed on our side 3 times, so it was given up" in text
    assert "not a problem with your files" in text and "Check the input" not in text
    assert "stopped or restarted 17 times" in text


def test_once_goes_on_past_a_job_it_cannot_finish_and_exits_1(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon-side failure (the outbox refuses the first job's folder) does not make `once`
    sit out a 600 s back-off: the other job is made, the failed one stays queued, status 1."""
    harness.configure(watch={"settle_seconds": 0.3, "rescan_seconds": 600})
    real_mkdir = Path.mkdir
    refused: list[str] = []

    def mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if self.name.startswith(".heygemd-staging-") and not refused:
            refused.append(self.name)
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    harness.good_job("first")
    time.sleep(0.05)
    harness.good_job("second")
    time.sleep(0.5)  # both settled before `once` starts
    monkeypatch.setattr(Path, "mkdir", mkdir)
    d = Daemon(load_settings(harness.root / "config.toml"), build_pipeline, env={})
    t0 = time.monotonic()
    assert d.run_once() == 1
    assert time.monotonic() - t0 < 60  # not the 600 s back-off
    assert len(refused) == 1
    assert harness.published()["second"]["status"] == "done"
    assert "first" not in harness.published()
    monkeypatch.undo()
    d = Daemon(load_settings(harness.root / "config.toml"), build_pipeline, env={})
    d.startup()
    try:
        [row] = d.store.in_states(State.QUEUED)  # kept for the next run, not held against it
        assert row.name == "first" and row.faults == 0
    finally:
        d.shutdown()
    d = Daemon(load_settings(harness.root / "config.toml"), build_pipeline, env={})
    assert d.run_once() == 0  # the outbox works again: the next run makes it
    assert harness.published()["first"]["status"] == "done"
    assert (harness.outbox / "STATUS.txt").read_text().startswith(
        "heygemd ran once and stopped (new jobs wait for its next run)")


def test_a_folder_the_service_may_not_move_is_shown_and_taken_once_fixed(
    harness: Harness, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder copied in by another user (say with sudo) that the service may not move: the
    status says so and what to do, the log says it once, and it is taken once fixed. (The
    tests run as root, who may move anything, so the refusal is the kernel's answer faked.)"""
    from structlog.testing import capture_logs

    from heygemd.daemon import inbox
    from heygemd.daemon.status import status_line

    real_claim = inbox.claim
    allowed = {"yes": False}

    def claim(source: Path, work: Path, job_id: str) -> Path:
        if not allowed["yes"]:
            raise PermissionError(errno.EACCES, "Permission denied", str(source))
        return real_claim(source, work, job_id)

    monkeypatch.setattr(inbox, "claim", claim)
    daemon.startup()
    harness.good_job("from sudo")
    deadline = time.monotonic() + 10
    with capture_logs() as logs:
        while not daemon.intake.waiting().blocked and time.monotonic() < deadline:
            daemon.tick()
            time.sleep(0.1)
        for _ in range(5):  # tried again every tick, said once
            daemon.tick()
    assert [e["event"] for e in logs].count("job.claim_failed") == 1
    line = status_line(daemon._view())
    assert line.endswith("0 queued; 1 ready in the inbox but cannot be taken")
    daemon._refresh_status(force=True)
    status = (harness.outbox / "STATUS.txt").read_text()
    assert ("Ready but cannot be taken:\n  - from sudo: the service may not move it out of the "
            "inbox (permission denied): make the folder and everything in it writable by the "
            "service's user or group") in status
    assert "Being copied" not in status
    allowed["yes"] = True
    run_until_idle(daemon)
    daemon._refresh_status(force=True)
    status = (harness.outbox / "STATUS.txt").read_text()
    assert "cannot be taken" not in status
    assert (harness.outbox / "from sudo").is_dir()


def test_a_failure_after_the_publishing_rename_never_requeues_the_job(
    harness: Harness, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store refuses the videos' rows right after the job's folder was renamed into the
    outbox: the job is recorded as published (not put back to run again on files it no longer
    has), and the queue goes on."""
    import sqlite3

    from heygemd.daemon.store import Store

    real = Store.add_videos
    refused: list[int] = []

    def locked_once(self: Store, facts: Any) -> None:
        if not refused:
            refused.append(1)
            raise sqlite3.OperationalError("database is locked")
        real(self, facts)

    monkeypatch.setattr(Store, "add_videos", locked_once)
    daemon.startup()
    harness.good_job("once")
    time.sleep(0.05)
    harness.good_job("twice")
    run_until_idle(daemon, ticks=80)
    assert refused == [1]
    assert sorted(harness.published()) == ["once", "twice"]
    rows = {r.name: r for r in daemon.store.in_states(State.DONE)}
    assert set(rows) == {"once", "twice"} and rows["once"].faults == 0
    assert daemon.store.in_states(State.QUEUED) == []
    assert not list(harness.work.iterdir())


def test_a_file_the_service_may_not_read_is_refused_and_the_queue_goes_on(
    harness: Harness, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A video copied in by another account without read rights (root ignores chmod, so the
    denial is made here): that video is refused in words saying what to do, the job's other
    video is made, and the next job is not held up."""
    from heygemd.validation import examine

    real = examine.probe

    def denied(path: Path, *args: Any, **kwargs: Any) -> Any:
        if path.name == "locked.mp4":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(examine, "probe", denied)
    daemon.startup()
    harness.make_job("mixed", {"speech.wav": "speech.wav", "locked.mp4": "face.mp4",
                               "open.mp4": "face.mp4"})
    time.sleep(0.05)
    harness.good_job("next")
    run_until_idle(daemon, ticks=80)
    published = harness.published()
    assert published["next"]["status"] == "done"
    videos = {v["name"]: v for v in published["mixed"]["videos"]}
    assert published["mixed"]["status"] == "partial" and videos["open.mp4"]["status"] == "done"
    locked = videos["locked.mp4"]
    assert locked["status"] == "rejected" and locked["reason_code"] == "unreadable_file"
    assert "not allowed to read locked.mp4" in locked["message"]
    assert str(harness.root) not in locked["message"]
