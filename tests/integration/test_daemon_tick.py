"""Daemon.tick() driven directly (no service loop): disk guard, crash reconciliation paths."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from heygemd.cli import build_pipeline
from heygemd.daemon import outbox
from heygemd.daemon.service import Daemon
from heygemd.daemon.store import State, Store
from heygemd.settings import Settings, load_settings
from tests.fakes import EchoEngine
from tests.integration.conftest import Harness, run_until_idle, tick_until_work


def record_running(settings: Settings, job_id: str, name: str) -> None:
    """The store as a crash leaves it: ``job_id`` running, publishing to ``name``."""
    store = Store(settings.paths.state)
    store.add(job_id, name)
    store.transition(job_id, State.VALIDATING)
    store.transition(job_id, State.RUNNING, outbox_name=name)
    store.close()


def test_disk_guard_holds_jobs_until_space_returns(harness: Harness) -> None:
    harness.configure(daemon={"min_free_gb": 1e9})
    d = Daemon(load_settings(harness.root / "config.toml"), build_pipeline, env={})
    d.startup()
    try:
        harness.good_job("waits")
        run_until_idle(d, ticks=15)
        assert [r.name for r in d.store.in_states(State.QUEUED)] == ["waits"]
        assert "PROBLEM: less than" in (harness.outbox / "STATUS.txt").read_text()
        d.settings = d.settings.model_copy(
            update={"daemon": d.settings.daemon.model_copy(update={"min_free_gb": 0.0})})
        assert d.tick() is True
        assert d.store.get(d.store.recent()[0].job_id).state is State.DONE  # type: ignore[union-attr]
    finally:
        d.shutdown()


def test_claimed_but_unrecorded_job_is_adopted(harness: Harness, daemon: Daemon) -> None:
    harness.good_job("orphan", where=harness.work / "20240101T000000-abcdef")
    (harness.work / "20240101T000000-aaaaaa").mkdir()  # killed between mkdir and rename
    daemon.startup()
    assert not (harness.work / "20240101T000000-aaaaaa").exists()
    run_until_idle(daemon)
    report = harness.published()["orphan"]
    assert report["job_id"] == "20240101T000000-abcdef" and report["status"] == "done"


def test_published_but_unrecorded_job_is_not_repeated(harness: Harness, settings: Settings) -> None:
    record_running(settings, "J1", "already")
    folder = harness.outbox / "already"
    (folder / "inputs").mkdir(parents=True)
    (folder / outbox.MARKER).write_text("J1\n")
    (folder / "report.json").write_text(json.dumps({"status": "partial"}))
    (harness.work / "J1").mkdir(parents=True)
    d = Daemon(settings, build_pipeline, env={})
    d.startup()
    try:
        row = d.store.get("J1")
        assert row is not None and row.state is State.DONE and row.status == "partial"
        assert not (harness.work / "J1").exists()
        assert sorted(p.name for p in harness.outbox.iterdir()) == [
            "STATUS.txt", "already", "status.json"]
    finally:
        d.shutdown()


def test_interrupted_publish_is_rolled_back_and_rerun(harness: Harness, settings: Settings) -> None:
    """Killed after moving the originals into staging, before the publishing rename."""
    record_running(settings, "J2", "halfway")
    staging = outbox.staging_dir(harness.outbox, "J2")
    harness.outbox.mkdir(exist_ok=True)
    harness.good_job("inputs", where=staging)
    (staging / "report.json").write_text("{}")
    stale_status = harness.outbox / ".STATUS.txt.999999999.tmp"  # killed mid-write, too
    stale_status.write_text("half")
    (harness.work / "J2").mkdir(parents=True)
    d = Daemon(settings, build_pipeline, env={})
    d.startup()
    try:
        assert (harness.work / "J2" / "halfway" / "face.mp4").is_file()
        assert not staging.exists() and not stale_status.exists()
        row = d.store.get("J2")
        assert row is not None and row.state is State.QUEUED and row.attempts == 1
        run_until_idle(d)
        assert harness.published()["halfway"]["status"] == "done"
        assert d.store.get("J2").attempts == 2  # type: ignore[union-attr]
    finally:
        d.shutdown()


def test_work_on_another_filesystem_is_refused(harness: Harness, tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem to test with")
    harness.configure(paths={"work": str(shm / f"heygemd-test-{tmp_path.name}")})
    d = Daemon(load_settings(harness.root / "config.toml"), build_pipeline, env={})
    from heygemd.errors import ConfigError

    with pytest.raises(ConfigError, match="same filesystem"):
        d.startup()
    (shm / f"heygemd-test-{tmp_path.name}").rmdir()


def test_second_stop_during_examine_aborts_and_the_job_reruns(
    harness: Harness, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cold stop while the video is examined: the frames are examined beside the engine's
    planning, and the daemon's progress hook (called from the job's thread as it waits for the
    frames' verdict) raises JobInterrupted: the frame pass stops, nothing is encoded."""
    from structlog.testing import capture_logs

    from heygemd.faces.analyze import FaceAnalyzer

    analyze = FaceAnalyzer.analyze
    seen: list[int] = []

    def analyze_then_stop(self: FaceAnalyzer, *args: Any, **kwargs: Any) -> Any:
        seen.append(1)
        if len(seen) == 1:  # two signals while examining the first sampled frame
            daemon.request_stop()
            daemon.request_stop()
        return analyze(self, *args, **kwargs)

    monkeypatch.setattr(FaceAnalyzer, "analyze", analyze_then_stop)
    daemon.startup()
    harness.good_job("cold")
    with capture_logs() as logs:
        tick_until_work(daemon)
    assert seen and daemon.stop_requested
    events = [(e["event"], e.get("stage")) for e in logs]
    assert ("stage.start", "examine") in events
    assert ("stage.finish", "examine") not in events and ("stage.finish", "render") not in events
    assert [r.name for r in daemon.store.in_states(State.QUEUED)] == ["cold"]
    [row] = daemon.store.in_states(State.QUEUED)
    assert row.faults == 0 and row.interruptions == 1  # a stop is never held against a job
    assert sorted(p.name for p in harness.outbox.iterdir()) == ["STATUS.txt", "status.json"]
    monkeypatch.setattr(FaceAnalyzer, "analyze", analyze)
    daemon.stop_requested = daemon.abort_requested = False
    run_until_idle(daemon)
    assert harness.published()["cold"]["status"] == "done"


def test_second_stop_during_the_audio_check_aborts_and_the_job_reruns(
    harness: Harness, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cold stop while the audio is decoded: the VAD pass must reach the daemon's progress hook
    (which raises JobInterrupted) before any video is examined."""
    from structlog.testing import capture_logs

    from heygemd.validation import examine

    load = examine.read_sound
    seen: list[int] = []

    def load_then_stop(*args: Any, **kwargs: Any) -> Any:
        seen.append(1)
        daemon.request_stop()
        daemon.request_stop()
        return load(*args, **kwargs)

    monkeypatch.setattr(examine, "read_sound", load_then_stop)
    daemon.startup()
    harness.good_job("cold")
    with capture_logs() as logs:
        tick_until_work(daemon)
    assert seen == [1] and daemon.stop_requested
    events = [e["event"] for e in logs]
    assert "job.interrupted" in events and "examine.audio" not in events
    assert "stage.start" not in events
    [row] = daemon.store.in_states(State.QUEUED)
    assert row.name == "cold" and row.faults == 0 and row.interruptions == 1
    assert sorted(p.name for p in harness.outbox.iterdir()) == ["STATUS.txt", "status.json"]
    monkeypatch.setattr(examine, "read_sound", load)
    daemon.stop_requested = daemon.abort_requested = False
    run_until_idle(daemon)
    assert harness.published()["cold"]["status"] == "done"


def test_warm_stop_keeps_finished_videos_and_stale_checkpoints_are_redone(
    harness: Harness, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first stop after video 1 of 2 puts the job back with video 1 checkpointed; the rerun
    takes it from the checkpoint. A checkpoint made from other inputs is not used."""
    from structlog.testing import capture_logs

    from heygemd.daemon import checkpoint
    from heygemd.pipeline import Pipeline

    process = Pipeline.process_video
    rendered: list[str] = []

    def process_then_stop(self: Pipeline, video: Path, *args: Any, **kwargs: Any) -> Any:
        rendered.append(video.name)
        result = process(self, video, *args, **kwargs)
        daemon.request_stop()
        return result

    monkeypatch.setattr(Pipeline, "process_video", process_then_stop)
    daemon.startup()
    harness.make_job("two", {"speech.wav": "speech.wav", "a.mp4": "face.mp4",
                             "b.mp4": "face.mp4"})
    run_until_idle(daemon)
    assert rendered == ["a.mp4"] and daemon.stop_requested
    [row] = daemon.store.in_states(State.QUEUED)
    assert row.faults == 0 and row.interruptions == 1
    assert sorted(p.name for p in harness.outbox.iterdir()) == ["STATUS.txt", "status.json"]
    slot = checkpoint.slot_dir(harness.work / row.job_id, "a.mp4")
    assert sorted(p.name for p in slot.iterdir()) == [
        "a.mp4", "a.preview.jpg", "a.warning.jpg", "result.json"]
    daemon.stop_requested = False
    monkeypatch.setattr(Pipeline, "process_video", process)
    with capture_logs() as logs:
        run_until_idle(daemon)
    assert [(e["event"], e.get("video")) for e in logs if e["event"] == "video.resumed"] == [
        ("video.resumed", "a.mp4")]
    report = harness.published()["two"]
    assert [(v["name"], v["status"]) for v in report["videos"]] == [
        ("a.mp4", "done"), ("b.mp4", "done")]
    assert (harness.outbox / "two" / "a.mp4").stat().st_size > 1000
    assert (harness.outbox / "two" / "a.warning.jpg").is_file()
    assert list(harness.work.iterdir()) == []
    assert not any(p.name == checkpoint.CHECKPOINTS for p in harness.outbox.rglob("*"))

    # The same job again, but its checkpoint was made from another audio file: redone.
    daemon.stop_requested = False
    monkeypatch.setattr(Pipeline, "process_video", process_then_stop)
    rendered.clear()
    harness.make_job("again", {"speech.wav": "speech.wav", "a.mp4": "face.mp4",
                               "b.mp4": "face.mp4"})
    daemon.intake.request_rescan()  # find it now, not when the watcher's event arrives
    run_until_idle(daemon)
    [row] = daemon.store.in_states(State.QUEUED)
    original = harness.work / row.job_id / "again"
    os.utime(original / "speech.wav", ns=(1, 1_000_000_000))  # the audio "changed"
    daemon.stop_requested = False
    monkeypatch.setattr(Pipeline, "process_video", process)
    with capture_logs() as logs:
        run_until_idle(daemon)
    events = [(e["event"], e.get("video")) for e in logs]
    assert ("checkpoint.stale", "a.mp4") in events and ("video.resumed", "a.mp4") not in events
    assert harness.published()["again"]["status"] == "done"


def test_a_video_failed_on_our_side_is_not_kept_for_the_restart(
    harness: Harness, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure of ours (engine error, GPU memory, disk) may not recur: after a warm stop the
    failed video runs again, while a made video is taken from its checkpoint."""
    from heygemd.daemon import checkpoint
    from heygemd.pipeline import Pipeline

    process = Pipeline.process_video
    rendered: list[str] = []

    def process_then_stop(self: Pipeline, video: Path, *args: Any, **kwargs: Any) -> Any:
        rendered.append(video.name)
        result = process(self, video, *args, **kwargs)
        if len(rendered) == 2:
            daemon.request_stop()
        return result

    monkeypatch.setenv("HEYGEMD_FAKE_FAIL", "b.mp4")
    monkeypatch.setattr(Pipeline, "process_video", process_then_stop)
    daemon.startup()
    harness.make_job("three", {"speech.wav": "speech.wav", "a.mp4": "face.mp4",
                               "b.mp4": "face.mp4", "c.mp4": "face.mp4"})
    run_until_idle(daemon)
    assert rendered == ["a.mp4", "b.mp4"] and daemon.stop_requested
    [row] = daemon.store.in_states(State.QUEUED)
    assert checkpoint.slot_dir(harness.work / row.job_id, "a.mp4").is_dir()
    assert not checkpoint.slot_dir(harness.work / row.job_id, "b.mp4").exists()

    daemon.stop_requested = False
    assert daemon._runner is not None
    engine = daemon._runner.pipeline.engine
    assert isinstance(engine, EchoEngine)
    engine.fail_on = ""  # the cause of the failure has gone away
    rendered.clear()
    run_until_idle(daemon)
    assert rendered == ["b.mp4", "c.mp4"]
    report = harness.published()["three"]
    assert [(v["name"], v["status"]) for v in report["videos"]] == [
        ("a.mp4", "done"), ("b.mp4", "done"), ("c.mp4", "done")]


def test_a_claimed_job_runs_at_once_and_is_published_after_its_claim_window(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim settle window goes on while the job runs: the job starts in the tick that
    claims it, and is published only once the window has passed."""
    from heygemd.daemon import inbox, jobs

    real_make, real_claim = jobs.make_job, inbox.claim
    started: list[float] = []
    claimed: list[float] = []

    def make(*args: Any) -> Any:
        started.append(time.monotonic())
        return real_make(*args)

    def claim(*args: Any) -> Any:
        claimed.append(time.monotonic())
        return real_claim(*args)

    monkeypatch.setattr(jobs, "make_job", make)
    monkeypatch.setattr(inbox, "claim", claim)
    harness.configure(watch={"settle_seconds": 4.0})  # the job itself takes about 1 s
    d = Daemon(load_settings(harness.root / "config.toml"), build_pipeline, env={})
    d.startup()
    try:
        harness.good_job("quick")
        for _ in range(80):
            if d.tick():
                break
            time.sleep(0.1)
        published = time.monotonic()
        assert harness.published()["quick"]["status"] == "done"
        assert started[0] - claimed[0] < 1.0  # ran at once, not 4 s later
        assert published - claimed[0] >= 4.0  # published once the window had passed
    finally:
        d.shutdown()


def test_a_job_held_back_after_its_claim_still_keeps_its_window(harness: Harness) -> None:
    """The disk guard holds a claimed job; a file written meanwhile, inside the claim window,
    makes it wait for the copy (still for the whole window after the write) once it may run."""
    harness.configure(watch={"settle_seconds": 2.0}, daemon={"min_free_gb": 1e9})
    d = Daemon(load_settings(harness.root / "config.toml"), build_pipeline, env={})
    d.startup()
    try:
        harness.good_job("held")
        for _ in range(60):
            d.tick()
            if d.store.in_states(State.QUEUED):
                break
            time.sleep(0.1)
        [row] = d.store.in_states(State.QUEUED)
        d.tick()  # handed out, held back: no room on the disk
        video = harness.work / row.job_id / "held" / "face.mp4"
        time.sleep(0.3)
        video.write_bytes(video.read_bytes())  # the copy goes on: written again
        written = time.monotonic()
        d.settings = d.settings.model_copy(
            update={"daemon": d.settings.daemon.model_copy(update={"min_free_gb": 0.0})})
        while not harness.published() and time.monotonic() - written < 20:
            d.tick()
            time.sleep(0.05)
        published = time.monotonic()
        assert harness.published()["held"]["status"] == "done"
        assert published - written >= 2.0  # still for the whole window after the write
    finally:
        d.shutdown()


def test_a_job_queued_behind_another_is_looked_at_before_it_runs(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two jobs claimed together; while the first runs, the second's copy goes on (its video
    cut short, then whole again later): the second waits for its copy rather than being run,
    and refused, on the half file."""
    from heygemd.daemon import jobs

    harness.configure(watch={"settle_seconds": 1.0})
    d = Daemon(load_settings(harness.root / "config.toml"), build_pipeline, env={})
    real_make = jobs.make_job
    data: list[bytes] = []

    def make(job: Any, *args: Any) -> Any:
        if job.name == "first":
            [row] = [r for r in d.store.in_states(State.QUEUED) if r.name == "second"]
            video = harness.work / row.job_id / "second" / "face.mp4"
            data.append(video.read_bytes())
            video.write_bytes(data[0][: len(data[0]) // 2])  # its copy goes on
        return real_make(job, *args)

    monkeypatch.setattr(jobs, "make_job", make)
    d.startup()
    try:
        harness.good_job("first")
        harness.good_job("second")
        tick_until_work(d)  # both claimed; the first made and published
        assert harness.published()["first"]["status"] == "done"
        [row] = d.store.in_states(State.QUEUED)
        assert d.tick() is False  # the second's change is seen: it waits for its copy
        assert row.job_id in d.intake.copying
        (harness.work / row.job_id / "second" / "face.mp4").write_bytes(data[0])
        run_until_idle(d, ticks=60)
        assert harness.published()["second"]["status"] == "done"
        done = d.store.get(row.job_id)
        assert done is not None and done.attempts == 1
    finally:
        d.shutdown()


def test_a_second_stop_while_the_window_is_waited_out_puts_the_job_back(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job is made, its claim window has a few seconds left: a second stop signal puts it
    back in the queue (nothing published), as it would in the middle of a video."""
    from heygemd.daemon import jobs

    harness.configure(watch={"settle_seconds": 4.0})
    d = Daemon(load_settings(harness.root / "config.toml"), build_pipeline, env={})
    real_make = jobs.make_job

    def make_then_stop(*args: Any) -> Any:
        report = real_make(*args)
        d.request_stop()
        d.request_stop()
        return report

    monkeypatch.setattr(jobs, "make_job", make_then_stop)
    d.startup()
    try:
        harness.good_job("stopped")
        tick_until_work(d)
        assert not harness.published()
        [row] = d.store.in_states(State.QUEUED)
        assert row.interruptions == 1 and row.faults == 0
    finally:
        d.shutdown()


def test_a_copy_that_goes_on_after_the_claim_is_waited_for(
    harness: Harness, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer paused longer than settle_seconds, the job was claimed (and ran at once),
    and the writer goes on writing into the claimed folder: nothing of that run is published;
    the job waits (queued, "waiting for the copy to finish") until nothing changes, then runs
    again on the whole file."""
    from heygemd.daemon import inbox

    data = harness.media["face.mp4"].read_bytes()
    real_claim = inbox.claim
    writers: list[threading.Thread] = []

    def writer_resumes(claimed: Path) -> None:
        with open(claimed / "face.mp4", "ab") as fh:
            for i in range(len(data) // 2, len(data), len(data) // 8):
                fh.write(data[i:i + len(data) // 8])
                fh.flush()
                time.sleep(0.3)

    def claim(*args: Any) -> Path:
        target: Path = real_claim(*args)
        writers.append(threading.Thread(target=writer_resumes, args=(target,)))
        writers[0].start()
        return target

    monkeypatch.setattr(inbox, "claim", claim)
    daemon.startup()
    folder = harness.good_job("paused")
    (folder / "face.mp4").write_bytes(data[: len(data) // 2])
    try:
        tick_until_work(daemon)  # claimed, run on the half file, not published
        [row] = daemon.store.in_states(State.QUEUED)
        assert not (harness.outbox / "paused").exists()
        assert row.job_id in daemon.intake.copying
        status = (harness.outbox / "STATUS.txt").read_text()
        assert "1. paused (waiting for the copy to finish)" in status
    finally:
        for writer in writers:
            writer.join()
    run_until_idle(daemon)
    assert harness.published()["paused"]["status"] == "done"
    assert (harness.outbox / "paused" / "inputs" / "face.mp4").read_bytes() == data
    done = daemon.store.get(row.job_id)
    assert done is not None and done.attempts == 2 and done.faults == done.interruptions == 0


def test_a_copy_that_goes_on_while_the_job_runs_is_not_published(
    harness: Harness, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer paused past both settle windows, the job ran on the half-written video (and
    refused it as truncated), then the writer went on: nothing of that run is published; the
    job waits for the copy and runs again on the whole file, the first run not counted."""
    from heygemd.daemon import jobs

    daemon.startup()
    folder = harness.good_job("late")
    data = (folder / "face.mp4").read_bytes()
    (folder / "face.mp4").write_bytes(data[: len(data) // 2])
    real_make = jobs.make_job
    resumed: list[str] = []
    runs: list[str] = []

    def make_then_copy_goes_on(job: Any, *args: Any) -> Any:
        report = real_make(job, *args)
        runs.append(report.videos[0].status)
        if not resumed:
            resumed.append(job.job_id)
            assert report.videos[0].status == "rejected"  # the half file: truncated
            with open(job.folder / "face.mp4", "ab") as fh:
                fh.write(data[len(data) // 2 :])
        return report

    monkeypatch.setattr(jobs, "make_job", make_then_copy_goes_on)
    run_until_idle(daemon, ticks=80)
    assert runs == ["rejected", "done"]  # the first run was not published
    report = harness.published()["late"]
    assert report["status"] == "done", report
    assert (harness.outbox / "late" / "inputs" / "face.mp4").read_bytes() == data
    row = daemon.store.get(resumed[0])
    assert row is not None and row.attempts == 2 and row.faults == row.interruptions == 0


def test_a_link_in_a_subfolder_is_still_refused(harness: Harness, daemon: Daemon) -> None:
    """Stripping the link changes its folder's time: that is the daemon's doing, not a copy
    going on, so the refusal stands (it is not re-run and published as done)."""
    daemon.startup()
    folder = harness.good_job("linked")
    (folder / "sub").mkdir()
    (folder / "sub" / "l.txt").symlink_to("/etc/hostname")
    run_until_idle(daemon, ticks=60)
    report = harness.published()["linked"]
    assert (report["status"], report["reason_code"]) == ("rejected", "symlink")


def test_audio_replaced_while_it_is_checked_is_not_published_from_the_old_one(
    harness: Harness, daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy of the audio finishes while the audio is being examined: the video made from
    the half audio is neither published nor resumed from its checkpoint; the rerun uses the
    whole audio."""
    import wave

    from heygemd.media.probe import probe
    from heygemd.pipeline import Pipeline

    daemon.startup()
    folder = harness.good_job("audio late")
    with wave.open(str(folder / "speech.wav")) as w:
        params, frames = w.getparams(), w.readframes(w.getnframes())
    longer = harness.root / "longer.wav"
    with wave.open(str(longer), "wb") as w:
        w.setparams(params)
        w.writeframes(frames + frames)
    real_check = Pipeline.check_audio
    replaced: list[bool] = []

    def check_then_copy_finishes(self: Pipeline, path: Path, progress: Any, **kw: Any) -> Any:
        result = real_check(self, path, progress, **kw)
        if not replaced:
            replaced.append(True)
            shutil.copyfile(longer, path)
        return result

    monkeypatch.setattr(Pipeline, "check_audio", check_then_copy_finishes)
    run_until_idle(daemon, ticks=80)
    assert replaced
    out = harness.outbox / "audio late"
    assert harness.published()["audio late"]["status"] == "done"
    made = probe(out / "face.mp4").duration
    whole = probe(out / "inputs" / "speech.wav").duration
    assert made is not None and whole is not None and abs(made - whole) < 0.2, (made, whole)


def test_a_job_with_every_video_refused_has_a_reason(harness: Harness, daemon: Daemon) -> None:
    daemon.startup()
    harness.make_job("faceless", {"speech.wav": "speech.wav", "noface.mp4": "noface.mp4"})
    run_until_idle(daemon)
    report = harness.published()["faceless"]
    assert report["status"] == "rejected"
    assert report["reason_code"] == report["videos"][0]["reason_code"] is not None
    # one video: the job's reason points to it; its own reason is said once, under Videos
    assert report["message"] == "No video could be made: noface.mp4 was refused (see below)."
    reason = report["videos"][0]["message"]
    assert (harness.outbox / "faceless" / "RESULT.txt").read_text().count(reason) == 1
    status = (harness.outbox / "STATUS.txt").read_text()
    assert ("faceless -> outbox/faceless (No video could be made: noface.mp4 was refused "
            "(see its RESULT.txt).)") in status


def test_a_refused_folder_still_lists_its_videos(harness: Harness, daemon: Daemon) -> None:
    daemon.startup()
    harness.make_job("noaudio", {"face.mp4": "face.mp4", "b.mov": "face.mp4"})
    folder = harness.make_job("badtoml", {"speech.wav": "speech.wav", "face.mp4": "face.mp4"})
    (folder / "job.toml").write_text("[output]\ncrf = 'high'\n")
    run_until_idle(daemon)
    reports = harness.published()
    assert reports["noaudio"]["reason_code"] == "no_audio"
    assert reports["badtoml"]["reason_code"] == "job_toml"
    assert reports["badtoml"]["message"] == (
        "job.toml: output.crf = 'high' is not a whole number (expected 0-51). Fix or remove it.")
    for name, videos in (("noaudio", ["b.mov", "face.mp4"]), ("badtoml", ["face.mp4"])):
        listed = reports[name]["videos"]
        assert [v["name"] for v in listed] == videos
        assert {(v["status"], v["reason_code"]) for v in listed} == {("rejected", "not_checked")}
        result = (harness.outbox / name / "RESULT.txt").read_text()
        assert "SKIPPED  face.mp4: not checked: the job was refused before the videos" in result


def test_a_waiting_folder_settles_while_the_models_load(harness: Harness) -> None:
    """A folder already in the inbox at start is first looked at before the pipeline starts:
    its settle time runs beside the models' loading, and it is claimed and run at the first
    tick."""
    harness.configure(watch={"settle_seconds": 1.0, "rescan_seconds": 1.0,
                             "poll_interval_seconds": 0.3})
    harness.good_job("early")

    def slow_pipeline(settings: Settings):  # type: ignore[no-untyped-def]
        pipeline = build_pipeline(settings)
        assert list(harness.inbox.iterdir()), "a folder left the inbox before the daemon was ready"
        time.sleep(1.2)  # models loading
        return pipeline

    d = Daemon(load_settings(harness.root / "config.toml"), slow_pipeline, env={})
    d.startup()
    try:
        assert d.tick() is True  # settled during startup: claimed and run at once
        assert not any(harness.inbox.iterdir())
        assert harness.published()["early"]["status"] == "done"
    finally:
        d.shutdown()


def test_a_failed_start_leaves_the_waiting_folders_in_the_inbox(harness: Harness) -> None:
    harness.configure(watch={"settle_seconds": 0.0, "rescan_seconds": 1.0,
                             "poll_interval_seconds": 0.3})
    folder = harness.good_job("stays")

    def broken(settings: Settings):  # type: ignore[no-untyped-def]
        raise RuntimeError("no models")

    d = Daemon(load_settings(harness.root / "config.toml"), broken, env={})
    with pytest.raises(RuntimeError, match="no models"):
        d.startup()
    assert folder.is_dir() and not any(harness.work.iterdir())
    assert d._watcher is not None and not d._watcher.is_alive  # its threads ended
    d2 = Daemon(load_settings(harness.root / "config.toml"), build_pipeline, env={})
    d2.startup()  # the lock was let go
    d2.shutdown()
