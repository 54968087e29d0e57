"""A job of several videos stopped after its first (SIGTERM, or kill -9) resumes on restart
with the videos it had left: the real `heygemd run`, the EchoEngine slowed down so that one
video takes a second or two."""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter

import pytest

from tests.integration.conftest import Harness, wait_for
from tests.integration.test_daemon import frames_and_audio

pytestmark = pytest.mark.slow

VIDEOS = ("a.mp4", "b.mp4", "c.mp4")


def three_video_job(harness: Harness) -> None:
    harness.env["HEYGEMD_FAKE_SLOW_MS"] = "30"  # ~1.2 s of rendering per video
    harness.make_job("three", {"speech.wav": "speech.wav", **dict.fromkeys(VIDEOS, "face.mp4")})


def first_video_checkpointed(harness: Harness) -> bool:
    return harness.log_has("checkpoint.saved", video="a.mp4")


def events(harness: Harness, event: str, **fields: str) -> list[str]:
    """The ``video`` of each ``event`` line (with ``fields``) over every daemon run so far."""
    return [
        line["video"] for n in range(len(harness.procs)) for line in harness.log_lines(n)
        if line.get("event") == event and all(line.get(k) == v for k, v in fields.items())
    ]


def assert_published_whole(harness: Harness) -> None:
    report = harness.wait_published(1, timeout=60)["three"]
    assert report["status"] == "done", report
    assert [(v["name"], v["status"], v["output"]) for v in report["videos"]] == [
        (v, "done", v) for v in VIDEOS]
    folder = harness.outbox / "three"
    for video in VIDEOS:
        frames, has_audio = frames_and_audio(folder / video)
        assert has_audio and frames > 30
    assert sorted(p.name for p in (folder / "inputs").iterdir()) == ["a.mp4", "b.mp4", "c.mp4",
                                                                    "speech.wav"]
    assert not any(p.name.startswith(".checkpoint") for p in folder.rglob("*"))
    # the job's log keeps both attempts: the stopped one's first video, then the resumed one
    lines = [json.loads(x) for x in (folder / "job.log.jsonl").read_text().splitlines()]
    events = [(x["event"], x.get("video")) for x in lines]
    starts = [i for i, e in enumerate(events) if e[0] == "job.start"]
    assert len(starts) == 2, events
    assert ("checkpoint.saved", "a.mp4") in events[starts[0] : starts[1]]
    assert ("video.resumed", "a.mp4") in events[starts[1] :], events[starts[1] :]
    wait_for(lambda: not any(harness.work.iterdir()), 10, "empty work area")
    harness.wait_outbox_clean()  # a killed daemon's leftovers are swept at start-up


def test_warm_stop_after_the_first_video_resumes_without_redoing_it(harness: Harness) -> None:
    proc = harness.start()
    three_video_job(harness)
    wait_for(lambda: first_video_checkpointed(harness), 60, "first video checkpointed")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert harness.published() == {}
    assert harness.log_has("job.requeued", ended="interrupted", interruptions=1)
    kept = events(harness, "checkpoint.saved")
    assert kept[0] == "a.mp4" and len(kept) < 3  # the job went back with videos left

    harness.start()
    assert_published_whole(harness)
    assert sorted(events(harness, "video.resumed")) == kept  # taken from checkpoints...
    renders = Counter(events(harness, "stage.start", stage="render"))
    assert renders == dict.fromkeys(VIDEOS, 1)  # ...so every video was rendered exactly once


def test_kill9_after_the_first_video_resumes_without_redoing_it(harness: Harness) -> None:
    proc: subprocess.Popen[bytes] = harness.start()
    three_video_job(harness)
    wait_for(lambda: first_video_checkpointed(harness), 60, "first video checkpointed")
    proc.kill()
    proc.wait(10)
    assert harness.published() == {}

    harness.start()
    assert_published_whole(harness)
    assert harness.log_has("recovery.requeued")
    assert "a.mp4" in events(harness, "video.resumed")
    renders = Counter(events(harness, "stage.start", stage="render"))
    assert renders["a.mp4"] == 1 and set(renders) == set(VIDEOS)
