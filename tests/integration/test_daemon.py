"""The real `heygemd run` as a subprocess on a temp inbox/outbox, with the EchoEngine test double
(tests/fakes.py) behind the real pipeline (real validation, real face analysis, real encoding)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pytest

from tests.conftest import ROOT
from tests.integration.conftest import Harness, wait_for

pytestmark = pytest.mark.slow


def frames_and_audio(path: Path) -> tuple[int, bool]:
    with av.open(str(path)) as container:
        has_audio = bool(container.streams.audio)
        count = sum(1 for _ in container.decode(video=0))
    return count, has_audio


def test_normal_job_is_published_complete(harness: Harness) -> None:
    proc = harness.start()
    harness.good_job("job1")
    reports = harness.wait_published(1)
    report = reports["job1"]
    assert report["status"] == "done", report
    assert report["engine"]["name"] == "echo" and report["engine"]["device"] == "cpu"
    assert report["settings"]["watch"]["settle_seconds"] == 0.6
    assert "paths" not in report["settings"]  # no server paths on the users' share
    out = harness.outbox / "job1"
    frames, has_audio = frames_and_audio(out / "face.mp4")
    assert has_audio and abs(frames - round(1.5 * 25)) <= 2  # length follows the 1.5 s audio
    assert sorted(p.name for p in (out / "inputs").iterdir()) == ["face.mp4", "speech.wav"]
    assert "All videos were made" in (out / "RESULT.txt").read_text()
    log_lines = [json.loads(x) for x in (out / "job.log.jsonl").read_text().splitlines()]
    assert log_lines and all(x["job_id"] == report["job_id"] for x in log_lines)
    assert {"job.start", "job.finish", "stage.start", "stage.finish"} <= {
        x["event"] for x in log_lines}
    assert list(harness.inbox.iterdir()) == []
    # the folder is renamed into the outbox first; then the store, the work area and the
    # status files follow it, a moment later
    wait_for(lambda: not any(harness.work.iterdir()), 10, "an empty work area")
    wait_for(lambda: "job1 -> outbox/job1" in (harness.outbox / "STATUS.txt").read_text(), 10,
             "the finished job in STATUS.txt")
    assert harness.stop(proc) == 0
    cli = subprocess.run(
        [sys.executable, "-m", "heygemd", "--config", str(harness.root / "config.toml"),
         "status"], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60, check=True)
    assert "done     job1 -> outbox/job1" in cli.stdout
    assert "STOPPED" in (harness.outbox / "STATUS.txt").read_text()


def test_slow_writer_is_not_taken_before_it_settles(harness: Harness) -> None:
    harness.configure(watch={"settle_seconds": 1.0})
    harness.start()
    folder = harness.inbox / "slow"
    folder.mkdir()
    (folder / "speech.wav").write_bytes(harness.media["speech.wav"].read_bytes())
    data = harness.media["face.mp4"].read_bytes()
    step = len(data) // 12
    with open(folder / "face.mp4", "wb") as fh:
        for i in range(0, len(data), step):
            fh.write(data[i:i + step])
            fh.flush()
            time.sleep(0.3)  # below settle_seconds: the folder must stay put
            assert folder.is_dir(), "claimed while still being written"
    assert not harness.log_has("job.claimed")
    report = harness.wait_published(1)["slow"]
    assert report["status"] == "done", report
    assert (harness.outbox / "slow" / "inputs" / "face.mp4").read_bytes() == data


def test_ready_marker_mode_waits_for_the_marker(harness: Harness) -> None:
    harness.configure(watch={"require_ready_marker": True, "settle_seconds": 0.2})
    harness.start()
    folder = harness.good_job("marked")
    time.sleep(2.5)
    assert folder.is_dir() and not harness.log_has("job.claimed")
    (folder / "READY").write_text("")
    assert harness.wait_published(1)["marked"]["status"] == "done"


def test_forced_polling_mode_sees_new_jobs(harness: Harness) -> None:
    harness.configure(watch={"mode": "polling", "rescan_seconds": 3600.0})
    harness.start()
    wait_for(lambda: harness.log_has("watcher.started", mode="polling"), 10, "polling watcher")
    time.sleep(0.5)  # after the start-up rescan: only the polling observer can find it
    harness.good_job("polled")
    assert harness.wait_published(1)["polled"]["status"] == "done"


def test_bad_jobs_among_good_ones(harness: Harness) -> None:
    harness.env["HEYGEMD_FAKE_FAIL"] = "enginefail"
    harness.good_job("good1")
    harness.make_job("noaudio", {"face.mp4": "face.mp4"})
    harness.make_job("twoaudio", {"a.wav": "speech.wav", "b.wav": "speech.wav",
                                  "face.mp4": "face.mp4"})
    harness.make_job("silent", {"silence.wav": "silence.wav", "face.mp4": "face.mp4"})
    harness.make_job("mixed", {"speech.wav": "speech.wav", "face.mp4": "face.mp4",
                               "face.mov": "face.mp4", "noface.mp4": "noface.mp4",
                               "broken.mp4": "broken.mp4", "enginefail.mp4": "face.mp4",
                               "notes.txt": "speech.wav", ".DS_Store": "speech.wav"})
    harness.good_job("good2")
    harness.start()
    reports = harness.wait_published(6, timeout=120)
    assert reports["good1"]["status"] == reports["good2"]["status"] == "done"
    assert reports["noaudio"]["status"] == "rejected"
    assert reports["noaudio"]["reason_code"] == "no_audio"
    assert reports["twoaudio"]["reason_code"] == "multiple_audio"
    for name in ("noaudio", "twoaudio"):  # refused before the videos: still listed
        assert [(v["name"], v["reason_code"]) for v in reports[name]["videos"]] == [
            ("face.mp4", "not_checked")]
    assert reports["silent"]["status"] == "rejected"
    assert all(v["reason_code"] == "audio_rejected" for v in reports["silent"]["videos"])
    mixed = {v["name"]: v for v in reports["mixed"]["videos"]}
    assert reports["mixed"]["status"] == "partial"
    # same stem: the video already named .mp4 keeps its name, the other gets a suffix
    assert mixed["face.mp4"]["status"] == "done" and mixed["face.mp4"]["output"] == "face.mp4"
    assert mixed["face.mov"]["status"] == "done" and mixed["face.mov"]["output"] == "face-2.mp4"
    assert mixed["noface.mp4"]["status"] == "rejected"
    assert mixed["broken.mp4"]["status"] == "rejected"
    assert mixed["enginefail.mp4"]["status"] == "failed"
    result = (harness.outbox / "mixed" / "RESULT.txt").read_text()
    assert "REFUSED  noface.mp4" in result and "FAILED   enginefail.mp4" in result
    assert (harness.outbox / "mixed" / "face-2.mp4").is_file()
    assert "no audio file" in (harness.outbox / "noaudio" / "RESULT.txt").read_text()


def test_sigterm_while_busy_finishes_the_video(harness: Harness) -> None:
    harness.env["HEYGEMD_FAKE_SLOW_MS"] = "150"  # ~6 s of rendering
    proc = harness.start()
    harness.good_job("warm")
    wait_for(lambda: harness.log_has("stage.start", stage="render"), 60, "render start")
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "Stopping: finishing the current video" in (
        harness.outbox / "STATUS.txt").read_text(), 5, "the stop shown in STATUS.txt")
    assert proc.wait(60) == 0
    # said by the next progress call after the signal, which may come after the status write
    assert harness.log_has("daemon.signal", signal="SIGTERM")
    assert harness.log_has("daemon.stopping")
    assert harness.published()["warm"]["status"] == "done"
    assert list(harness.work.iterdir()) == []


def test_second_sigterm_aborts_and_the_job_reruns(harness: Harness) -> None:
    harness.env["HEYGEMD_FAKE_SLOW_MS"] = "400"  # ~15 s of rendering
    proc = harness.start()
    harness.good_job("cold")
    wait_for(lambda: harness.log_has("stage.start", stage="render"), 60, "render start")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert time.monotonic() - t0 < 5
    assert harness.published() == {}
    assert sorted(p.name for p in harness.outbox.iterdir()) == ["STATUS.txt", "status.json"]
    assert "Waiting in queue: 1" in (harness.outbox / "STATUS.txt").read_text()
    harness.env.pop("HEYGEMD_FAKE_SLOW_MS")
    harness.start()
    assert harness.wait_published(1)["cold"]["status"] == "done"


def test_unsafe_and_unicode_names(harness: Harness, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the inbox")
    linked = harness.good_job("linked")
    (linked / "escape.mp4").symlink_to(secret)
    harness.make_job("中文任务", {"音频.wav": "speech.wav", "视频.mp4": "face.mp4"})
    harness.good_job("a..b")
    harness.good_job("..hidden")
    (harness.inbox / "loose.wav").write_bytes(b"x")
    (harness.inbox / "rootlink").symlink_to(tmp_path)
    harness.start()
    reports = harness.wait_published(3)
    assert reports["linked"]["status"] == "rejected"
    assert reports["linked"]["reason_code"] == "symlink"
    assert not (harness.outbox / "linked" / "inputs" / "escape.mp4").exists()
    assert secret.read_text() == "outside the inbox"
    assert reports["中文任务"]["status"] == "done"
    assert "中文任务".encode() in (harness.root / "stdout0.log").read_bytes()  # real UTF-8
    assert "中文任务".encode() in (harness.root / "log" / "heygemd.log").read_bytes()
    assert (harness.outbox / "中文任务" / "视频.mp4").is_file()
    assert reports["a..b"]["status"] == "done"
    time.sleep(1.5)
    left = sorted(p.name for p in harness.inbox.iterdir())
    assert left == ["..hidden", "loose.wav", "rootlink"]  # never taken
    assert harness.log_has("inbox.not_a_job_folder", name="loose.wav")
    assert all(p.resolve().is_relative_to(harness.outbox) for p in harness.outbox.rglob("*")
               if not p.is_symlink())


def test_outbox_name_collisions_never_overwrite(harness: Harness) -> None:
    (harness.outbox).mkdir()
    (harness.outbox / "job").mkdir()
    (harness.outbox / "job" / "mine.txt").write_text("the user's own file")
    harness.start()
    harness.good_job("job")
    harness.wait_published(1)
    harness.good_job("job")
    reports = harness.wait_published(2)
    assert set(reports) == {"job-2", "job-3"}
    assert (harness.outbox / "job" / "mine.txt").read_text() == "the user's own file"
    assert "Your results are in 'job-3' because 'job' already existed." in (
        harness.outbox / "job-3" / "RESULT.txt").read_text()
    assert reports["job-2"]["job_id"] != reports["job-3"]["job_id"]


def test_vanished_inbox_is_an_error_state_that_recovers(harness: Harness) -> None:
    harness.start()
    harness.inbox.rmdir()
    wait_for(lambda: harness.log_has("inbox.unavailable"), 15, "inbox.unavailable")
    wait_for(lambda: "PROBLEM" in (harness.outbox / "STATUS.txt").read_text(), 15,
             "problem in STATUS.txt")
    harness.inbox.mkdir()
    harness.good_job("back")
    assert harness.wait_published(1)["back"]["status"] == "done"
    assert harness.log_has("inbox.available")


def test_jobs_dropped_by_another_thread_while_running(harness: Harness) -> None:
    """Several jobs in quick succession: oldest first, each exactly once."""
    harness.start()
    names = [f"burst{i}" for i in range(4)]

    def drop() -> None:
        for name in names:
            harness.good_job(name)
            time.sleep(0.2)

    dropper = threading.Thread(target=drop)
    dropper.start()
    dropper.join()
    reports = harness.wait_published(4)
    assert set(reports) == set(names)
    claimed = [x["name"] for x in harness.log_lines() if x.get("event") == "job.claimed"]
    assert claimed == names


def test_once_with_job_toml_and_doctor(harness: Harness) -> None:
    folder = harness.good_job("tuned")
    (folder / "job.toml").write_text("[output]\ncrf = 30\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "heygemd", "--config", str(harness.root / "config.toml")]
    once = subprocess.run([*base, "once"], capture_output=True, text=True, env=env, timeout=120)
    assert once.returncode == 0, once.stderr[-2000:]
    report = harness.published()["tuned"]
    assert report["status"] == "done" and report["settings"]["output"]["crf"] == 30
    doctor = subprocess.run([*base, "doctor"], capture_output=True, text=True, env=env,
                            timeout=120)
    lines = doctor.stdout.splitlines()
    names = [line.split(":")[0][5:] for line in lines]
    assert names == ["dirs", "daemon", "same filesystem", "free disk", "cache", "filesystem",
                     "device", "cores", "engine", "face models", "farm"], doctor.stdout
    assert all(line.startswith("OK ") for line in lines), doctor.stdout
    assert "TensorFlow Lite" not in doctor.stderr and "W0000" not in doctor.stderr
    assert doctor.returncode == 0


def test_a_second_daemon_or_once_never_touches_a_running_job(harness: Harness) -> None:
    """`run` or `once` next to a live daemon exits 1 with one line, before any recovery: the
    live job is not re-queued, its work folder is not wiped, and it is published once."""
    harness.env["HEYGEMD_FAKE_SLOW_MS"] = "80"  # ~3 s of rendering
    first = harness.start()
    harness.good_job("busy")
    wait_for(lambda: harness.log_has("stage.start", stage="render"), 60, "render start")
    env = {**os.environ, "PYTHONPATH": str(ROOT), **harness.env}
    base = [sys.executable, "-m", "heygemd", "--config", str(harness.root / "config.toml")]
    for command in ("once", "run"):
        second = subprocess.run([*base, command], capture_output=True, text=True, env=env,
                                timeout=60)
        assert second.returncode == 1, second.stderr[-2000:]
        assert second.stderr.strip() == (
            f"heygemd is already running (pid {first.pid}) on this state directory")
    assert harness.wait_published(1)["busy"]["status"] == "done"
    assert not harness.log_has("recovery.requeued") and not harness.log_has("job.requeued")
    assert harness.stop(first) == 0


def test_both_ways_in_go_through_the_process_entry(tmp_path: Path) -> None:
    """`python -m heygemd` and the installed `heygemd` script run cli.entry (main, then the
    freeze before exit) and pass its exit status on."""
    script = Path(sys.executable).with_name("heygemd")
    assert "from heygemd.cli import entry" in script.read_text()  # not a script made before
    cfg = tmp_path / "config.toml"
    cfg.write_text("[watch]\nsettle_seconds = -1\n")
    for way in ([sys.executable, "-m", "heygemd"], [str(script)]):
        done = subprocess.run([*way, "--config", str(cfg), "status"], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2 and "watch.settle_seconds" in done.stderr
