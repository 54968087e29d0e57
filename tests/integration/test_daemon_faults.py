"""Faults that are not the user's never fail the user's job: a full outbox, a disk that fills
while a video is encoded, too little free space for `heygemd once`, names at the 255-byte
limit. Real daemon processes, a real small filesystem (tmpfs) where a disk must fill.
(Kills from outside and crashes: tests/integration/test_daemon_soak.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from heygemd import names
from heygemd.daemon.service import Daemon
from heygemd.daemon.store import State, Store
from heygemd.errors import DiskFull
from tests.conftest import ROOT
from tests.integration.conftest import Harness, run_until_idle, wait_for
from tests.integration.smallfs import fill, tmpfs

LEFT_FREE = 48 * 1024  # room for STATUS.txt and a picture, not for the 256x256 MP4


def requeues(harness: Harness, ended: str) -> int:
    return sum(1 for line in harness.log_lines()
               if line.get("event") == "job.requeued" and line.get("ended") == ended)


@pytest.mark.parametrize("fills", ["picture", "encode"])
def test_a_full_outbox_makes_the_job_wait_not_fail(harness: Harness, fills: str) -> None:
    """The outbox's disk is full for longer than max_attempts back-offs: the job waits (its
    warning picture, or with no picture its encode, fails on the full disk each time, never
    counted), STATUS.txt says why in plain words, and once space is freed the job is made and
    published as done."""
    with tmpfs(harness.outbox, 20 * 1024 * 1024):
        harness.configure(daemon={"max_attempts": 2, "min_free_gb": 0.0},
                          watch={"settle_seconds": 0.3, "rescan_seconds": 1.0},
                          validation={"min_short_side_warn": 720 if fills == "picture" else 240})
        filler = fill(harness.outbox, LEFT_FREE)
        proc = harness.start()
        harness.good_job("full")
        wait_for(lambda: requeues(harness, "machine") >= 4, 120, "four tries on a full disk")
        [full, *_] = [x for x in harness.log_lines() if x.get("event") == "video.disk_full"]
        assert ("picture" if fills == "picture" else "could not be encoded") in full["error"]
        status = (harness.outbox / "STATUS.txt").read_text()
        assert "no space is left on the disk that holds the outbox" in status, status
        assert str(harness.root) not in status and "Errno" not in status
        snapshot = json.loads((harness.outbox / "status.json").read_text())
        assert [p["kind"] for p in snapshot["problems"]] == ["job"]
        # between tries the job waits in the queue or is being tried again; never counted
        [row] = [r for r in [snapshot["running"], *snapshot["queued"]] if r]
        assert row["name"] == "full" and row["faults"] == 0, row
        told = subprocess.run(  # `heygemd status` shows the running daemon's own problems
            [sys.executable, "-m", "heygemd", "status", "--config",
             str(harness.root / "config.toml")], capture_output=True, text=True, timeout=60,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        assert "PROBLEM: job 'full' is waiting: no space is left" in told.stdout, told.stdout
        assert harness.published() == {}
        filler.unlink()
        report = harness.wait_published(1, timeout=60)["full"]
        assert report["status"] == "done", report
        assert [v["status"] for v in report["videos"]] == ["done"]
        text = (harness.outbox / "full" / "RESULT.txt").read_text()
        assert "partial" not in text and "given up" not in text
        harness.wait_outbox_clean()
        assert requeues(harness, "fault") == 0
        assert harness.stop(proc) == 0


def test_a_disk_that_fills_while_encoding_is_the_machines_problem(
    harness: Harness, tmp_path: Path
) -> None:
    """The encoder hits a full disk: DiskFull (plain words, the temp file's name nowhere),
    not a video result, and no partial file is left behind."""
    from heygemd.cli import build_pipeline
    from heygemd.settings import load_settings

    small = tmp_path / "small"
    harness.configure(validation={"min_short_side_warn": 240})  # no picture: the encode fills it
    with tmpfs(small, 1024 * 1024):
        fill(small, LEFT_FREE)
        settings = load_settings(harness.root / "config.toml")
        pipeline = build_pipeline(settings)
        pipeline.startup()
        try:
            audio = pipeline.check_audio(harness.media["speech.wav"])
            long_name = "é" * 120 + ".mp4"  # 245 bytes: the temp name must still fit
            with pytest.raises(DiskFull) as caught:
                pipeline.process_video(harness.media["face.mp4"], audio, small / long_name,
                                       small, lambda fraction: None)
        finally:
            pipeline.shutdown()
        assert "partial" not in caught.value.message and str(small) not in caught.value.message
        assert sorted(p.name for p in small.iterdir()) == [".filler"]


def test_a_read_only_outbox_is_the_machines_problem(harness: Harness, tmp_path: Path) -> None:
    """Writing the video into a read-only place: MachineFault (the job will wait), never a
    failed video; its words say so without a path."""
    from heygemd import faults
    from heygemd.cli import build_pipeline
    from heygemd.errors import MachineFault
    from heygemd.settings import load_settings

    frozen = tmp_path / "frozen"
    with tmpfs(frozen, 1024 * 1024):
        subprocess.run(["mount", "-o", "remount,ro", str(frozen)], check=True)
        settings = load_settings(harness.root / "config.toml")
        pipeline = build_pipeline(settings)
        pipeline.startup()
        try:
            audio = pipeline.check_audio(harness.media["speech.wav"])
            with pytest.raises(MachineFault) as caught:
                pipeline.process_video(harness.media["face.mp4"], audio, frozen / "face.mp4",
                                       frozen, lambda fraction: None)
        finally:
            pipeline.shutdown()
    place = faults.place_of(caught.value, {"the outbox": frozen})
    assert faults.machine_words(caught.value, place) == "the outbox is read-only"


def test_an_outbox_read_only_past_max_attempts_tries_keeps_the_job(harness: Harness) -> None:
    """The outbox turns read-only while a job is made (an NFS share remounted, a disk gone
    read-only) and stays so for more tries than max_attempts: its staging folder cannot be
    removed, and every try is the machine's, not the job's. Once it is writable the job is
    made and published as done, never given up."""
    with tmpfs(harness.outbox, 20 * 1024 * 1024):
        harness.configure(daemon={"max_attempts": 2, "min_free_gb": 0.0},
                          watch={"settle_seconds": 0.3, "rescan_seconds": 1.0})
        harness.env["HEYGEMD_FAKE_SLOW_MS"] = "100"  # a few seconds of rendering
        harness.start()
        harness.good_job("frozen")
        wait_for(lambda: any(x.get("event") == "stage.start" and x.get("stage") == "render"
                             for x in harness.log_lines()), 60, "the render to start")
        subprocess.run(["mount", "-o", "remount,ro", str(harness.outbox)], check=True)
        try:
            wait_for(lambda: requeues(harness, "machine") >= 4, 120, "four tries, read-only")
            assert requeues(harness, "fault") == 0, [
                x for x in harness.log_lines() if x.get("event") == "job.requeued"]
            # STATUS.txt in the outbox is stuck; the operator's views say so and why
            told = subprocess.run(
                [sys.executable, "-m", "heygemd", "status", "--config",
                 str(harness.root / "config.toml")], capture_output=True, text=True, timeout=60,
                env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}).stdout
            assert "STATUS.txt cannot be updated (the outbox is read-only)" in told, told
            assert "PROBLEM: job 'frozen' is waiting" in told and "read-only" in told, told
            warned = [x for x in harness.log_lines() if x.get("event") == "status.write_failed"]
            assert len(warned) == 1, len(warned)  # once a spell, not every refresh
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(harness.outbox)], check=True)
        report = harness.wait_published(1, timeout=90)["frozen"]
        assert report["status"] == "done", report
        assert "given up" not in (harness.outbox / "frozen" / "RESULT.txt").read_text()
        wait_for(lambda: "cannot be updated" not in (harness.outbox / "STATUS.txt").read_text(),
                 30, "STATUS.txt written again")
        assert requeues(harness, "fault") == 0
        harness.wait_outbox_clean()


def test_once_exits_with_the_reason_when_free_space_is_low(harness: Harness) -> None:
    harness.configure(daemon={"min_free_gb": 1e6}, watch={"settle_seconds": 0.3})
    harness.good_job("waits")
    time.sleep(0.5)
    argv = [sys.executable, "-m", "heygemd", "once", "--config", str(harness.root / "config.toml")]
    done = subprocess.run(argv, cwd=harness.root, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1, done.stderr[-2000:]
    lines = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    [unfinished] = [x for x in lines if x["event"] == "once.unfinished"]
    assert "less than 1e+06 GB free" in unfinished["problem"]
    assert "waits" in done.stderr  # the plain line for whoever ran it
    store = Store(harness.root / "state", readonly=True)
    try:
        [row] = store.in_states(State.QUEUED)
    finally:
        store.close()
    assert row.name == "waits" and row.faults == 0


def test_names_at_the_255_byte_limit_make_whole_results(harness: Harness, daemon: Daemon) -> None:
    """Videos named with 255 bytes (Latin) and ~250 (Chinese), and two names that differ only
    in case: every video is made, every derived name fits and none clash ignoring case."""
    latin = "L" * 251 + ".mp4"
    chinese = "中文名字" * 20 + "abc.mov"  # 247 bytes
    daemon.startup()
    harness.make_job("long", {"speech.wav": "speech.wav", latin: "face.mp4",
                              chinese: "face.mp4", "Anna.mp4": "face.mp4",
                              "anna.mov": "face.mp4"})
    run_until_idle(daemon, ticks=120)
    report = harness.published()["long"]
    assert report["status"] == "done", report
    folder = harness.outbox / "long"
    made = sorted(p.name for p in folder.iterdir())
    assert all(names.utf8_len(n) <= names.NAME_MAX for n in made)
    assert len({n.casefold() for n in made}) == len(made), made
    for video in report["videos"]:
        assert video["status"] == "done", video
        assert (folder / video["output"]).is_file()
        assert all((folder / p).is_file() for p in video["pictures"])
    text = (folder / "RESULT.txt").read_text()
    assert "Internal error" not in text and str(harness.root) not in text
    assert np.sum([len(v["pictures"]) for v in report["videos"]]) == 4


def test_hidden_inputs_and_backslash_names_are_named_to_the_user(
    harness: Harness, daemon: Daemon
) -> None:
    """'..\\..\\escape.mp4' (a hidden name on Linux) beside a good video is named in RESULT.txt;
    a folder holding only hidden media says so in STATUS.txt; macOS '._' twins stay quiet."""
    daemon.startup()
    harness.make_job("sneaky", {"speech.wav": "speech.wav", "face.mp4": "face.mp4",
                                "..\\..\\escape.mp4": "face.mp4", "._face.mp4": "face.mp4"})
    harness.make_job("hidden", {".voice.wav": "speech.wav", ".clip.mp4": "face.mp4"})
    run_until_idle(daemon, ticks=60)
    report = harness.published()["sneaky"]
    assert report["status"] == "done" and report["hidden_files"] == ["..\\..\\escape.mp4"]
    text = (harness.outbox / "sneaky" / "RESULT.txt").read_text()
    assert "Not used: '..\\..\\escape.mp4' (a name that starts with a dot is hidden" in text
    assert "._face.mp4" not in text
    assert not (harness.root / "escape.mp4").exists()
    assert not (harness.outbox / "escape.mp4").exists()
    daemon._refresh_status(force=True)
    status = (harness.outbox / "STATUS.txt").read_text()
    assert "hidden: only hidden files ('.clip.mp4', '.voice.wav'): a name that starts with a dot" \
        in status, status


@pytest.mark.soak
def test_fault_soak_full_outbox_and_kills(harness: Harness) -> None:
    """30 small real jobs arrive while the outbox's disk fills and empties and the daemon is
    killed at random: in the end every job is published once, done, nothing held against any
    job, and nothing partial is left anywhere."""
    import random
    import signal
    import threading

    from tests.integration.test_daemon import frames_and_audio

    rng = random.Random(int(time.time()))
    jobs, kills = 30, 10
    names_ = [f"fault{i:02d}" for i in range(jobs)]
    with tmpfs(harness.outbox, 32 * 1024 * 1024):
        harness.configure(daemon={"min_free_gb": 0.0, "idle_tick_seconds": 0.1},
                          watch={"settle_seconds": 0.3, "rescan_seconds": 1.0})
        stop = threading.Event()

        def drop() -> None:
            for name in names_:
                harness.good_job(name)
                time.sleep(rng.uniform(0.1, 0.6))

        def fill_and_empty() -> None:
            while not stop.is_set():
                filler = fill(harness.outbox, rng.choice([0, 16 * 1024, LEFT_FREE]))
                stop.wait(rng.uniform(0.5, 3.0))
                filler.unlink(missing_ok=True)
                stop.wait(rng.uniform(0.5, 3.0))

        dropper = threading.Thread(target=drop)
        filler_thread = threading.Thread(target=fill_and_empty)
        dropper.start()
        filler_thread.start()
        try:
            for _ in range(kills):
                proc = harness.start(ready=False)
                time.sleep(rng.uniform(1.0, 6.0))
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
        finally:
            dropper.join()
            stop.set()
            filler_thread.join()
        (harness.outbox / ".filler").unlink(missing_ok=True)
        proc = harness.start()
        reports = harness.wait_published(jobs, timeout=120 + 5 * jobs)
        assert sorted(reports) == names_  # exactly once each
        for name, report in reports.items():
            assert report["status"] == "done", (name, report)
            frames, has_audio = frames_and_audio(harness.outbox / name / "face.mp4")
            assert has_audio and frames > 30
        wait_for(lambda: not any(harness.work.iterdir()), 10, "empty work area")
        assert list(harness.inbox.iterdir()) == []
        harness.wait_outbox_clean()
        assert harness.stop(proc) == 0
        logs = [x for n in range(len(harness.procs)) for x in harness.log_lines(n)]
        assert not [x for x in logs if x.get("event") == "job.requeued"
                    and x.get("ended") == "fault"]
        assert any(x.get("ended") == "machine" for x in logs), "the disk never filled mid-job"


def test_a_name_that_is_not_text_refuses_the_job_in_words_not_our_failure(
    harness: Harness, daemon: Daemon
) -> None:
    """A file named under another character set (Latin-1 'café' on a UTF-8 share): the job is
    refused at once, saying which name and what to do, and the original comes back."""
    import os

    daemon.startup()
    folder = harness.good_job("odd")
    latin1 = os.fsdecode(b"caf\xe9.mp4")
    (folder / "face.mp4").rename(folder / latin1)
    run_until_idle(daemon, ticks=60)
    report = harness.published()["odd"]
    assert report["status"] == "rejected" and report["reason_code"] == "unreadable_name"
    assert "caf\ufffd.mp4" in report["message"] and "Rename it" in report["message"]
    assert (harness.outbox / "odd" / "inputs" / latin1).is_file()
    [row] = daemon.store.in_states(State.REJECTED)
    assert row.faults == 0
