"""kill -9 at random moments while a stream of jobs arrives: after the last restart every job
is in the outbox exactly once, complete, and nothing is left in the inbox or the work area."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time

import pytest

from tests.integration.conftest import Harness, wait_for
from tests.integration.test_daemon import frames_and_audio

# seconds a kill waits for its daemon to take a job in hand (none left: it kills anyway)
CLAIM_WAIT = 30.0


def in_hand(harness: Harness, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until the daemon last started (``proc``) has a job in hand (it has claimed one, or
    begun one it recovered), has ended, or ``timeout`` seconds have passed."""
    n = len(harness.procs) - 1
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not harness.log_has("job.claimed", n) \
            and not harness.log_has("stage.start", n) and time.monotonic() < deadline:
        time.sleep(0.05)


def soak(harness: Harness, jobs: int, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    # the default max_attempts: kills from outside are never held against a job
    harness.configure(daemon={"min_free_gb": 0.0, "idle_tick_seconds": 0.1},
                      watch={"settle_seconds": 0.3, "rescan_seconds": 1.0})
    names = [f"soak{i:03d}" for i in range(jobs)]
    drop_gap = rng.uniform(0.1, 0.4)

    def drop() -> None:
        for name in names:
            harness.good_job(name)
            time.sleep(drop_gap)

    dropper = threading.Thread(target=drop)
    dropper.start()
    try:
        for kill in range(kills):
            proc = harness.start(ready=False)
            if kill % 2:  # with a job in hand, however long this machine takes to start up
                in_hand(harness, proc, CLAIM_WAIT)
                time.sleep(rng.uniform(0.0, 0.5))
            else:
                time.sleep(rng.uniform(0.5, 5.0))  # during start-up, claims, runs or publishing
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    finally:
        dropper.join()
    proc = harness.start()
    reports = harness.wait_published(jobs, timeout=60 + 4 * jobs)
    assert sorted(reports) == names  # exactly once each: no "-2" duplicates, none missing
    for name, report in reports.items():
        folder = harness.outbox / name
        assert report["status"] == "done", (name, report)
        assert sorted(p.name for p in (folder / "inputs").iterdir()) == ["face.mp4", "speech.wav"]
        assert (folder / "RESULT.txt").is_file() and (folder / "job.log.jsonl").is_file()
        frames, has_audio = frames_and_audio(folder / "face.mp4")
        assert has_audio and frames > 30
    assert len({r["job_id"] for r in reports.values()}) == jobs
    wait_for(lambda: not any(harness.work.iterdir()), 10, "empty work area")
    assert list(harness.inbox.iterdir()) == []
    harness.wait_outbox_clean()
    assert harness.stop(proc) == 0
    recovered = [x["event"] for n in range(len(harness.procs)) for x in harness.log_lines(n)
                 if str(x.get("event", "")).startswith("recovery.")]
    assert recovered, "no kill landed on a claimed or running job"


@pytest.mark.slow
def test_kill9_soak(harness: Harness) -> None:
    soak(harness, jobs=30, kills=6, seed=20240601)


@pytest.mark.soak
def test_kill9_soak_long(harness: Harness) -> None:
    soak(harness, jobs=120, kills=30, seed=int(time.time()))


def test_kills_from_outside_never_give_a_job_up(harness: Harness) -> None:
    """Three kill -9s while one job renders (an operator, the OOM killer, a power cut) with
    max_attempts 1: the job is made, and its RESULT.txt says it was interrupted."""
    harness.configure(daemon={"max_attempts": 1})
    harness.env["HEYGEMD_FAKE_SLOW_MS"] = "300"
    harness.good_job("sturdy")
    for n in range(3):
        proc = harness.start()
        wait_for(lambda: harness.log_has("stage.start", stage="render"), 60, "render start")
        proc.kill()
        proc.wait(10)
        if n:
            assert harness.log_has("recovery.interrupted")
    harness.env.pop("HEYGEMD_FAKE_SLOW_MS")
    harness.start()
    report = harness.wait_published(1)["sturdy"]
    assert report["status"] == "done" and report["interruptions"] == 3, report
    text = (harness.outbox / "sturdy" / "RESULT.txt").read_text()
    assert "stopped or restarted 3 times" in text and "given up" not in text
    assert not harness.log_has("recovery.crashed")


def test_a_video_that_crashes_the_service_is_set_aside_and_the_others_made(
    harness: Harness,
) -> None:
    """A video whose processing kills the process (SIGABRT, as a native crash) is held
    against that video only: after max_attempts crashes it is set aside, the job's other
    video is made (from its checkpoint), and RESULT.txt says what happened."""
    harness.configure(daemon={"max_attempts": 2})
    harness.env["HEYGEMD_FAKE_CRASH"] = "crashy"
    harness.make_job("mixed", {"speech.wav": "speech.wav", "a-good.mp4": "face.mp4",
                               "b-crashy.mp4": "face.mp4"})
    for _ in range(2):
        proc = harness.start()
        assert proc.wait(120) == -signal.SIGABRT, harness.stderr()
    harness.start()
    report = harness.wait_published(1)["mixed"]
    assert report["status"] == "partial", report
    videos = {v["name"]: v for v in report["videos"]}
    assert videos["a-good.mp4"]["status"] == "done"
    assert videos["b-crashy.mp4"]["status"] == "failed"
    assert videos["b-crashy.mp4"]["reason_code"] == "crash_loop"
    assert report["interruptions"] == 0
    crashed = [line for n in range(3) for line in harness.log_lines(n)
               if line.get("event") == "recovery.crashed"]
    assert [c["video"] for c in crashed] == ["b-crashy.mp4", "b-crashy.mp4"]
    assert "Fatal Python error: Aborted" in crashed[0]["dump"]
    text = (harness.outbox / "mixed" / "RESULT.txt").read_text()
    assert "crashed the service 2 times, so it was set aside" in text
    assert (harness.outbox / "mixed" / "a-good.mp4").is_file()
