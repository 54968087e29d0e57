"""The farm with real processes: a real redis-server, the real `heygemd run` as intake and real
`heygemd worker`s (the EchoEngine test double behind the real pipeline)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from typing import Any

import pytest

from tests.integration.conftest import Harness, wait_for
from tests.integration.farm import (
    RedisServer,
    farm_config,
    farm_results,
    job_of,
    progress_workers,
    redis_server,  # noqa: F401 - the fixture
    start_workers,
    work_is_empty,
)
from tests.integration.test_web_page import (
    browser,  # noqa: F401 - the fixture
    on_page,
    start_web,
    text_of,
)
from tests.integration.test_web_page import free_port as web_port

pytestmark = pytest.mark.slow


def assert_published_once(harness: Harness, name: str, videos: int) -> dict:
    published = harness.published()
    assert list(published) == [name], published
    report = assert_done(harness, name, videos)
    # the holder goes just after the publishing rename
    wait_for(lambda: work_is_empty(harness), 10, "an empty work area")
    assert list(harness.inbox.iterdir()) == []
    return report


def assert_done(harness: Harness, name: str, videos: int) -> dict:
    """``name``'s report, every video made, nothing of the publishing left in the outbox."""
    report = harness.published()[name]
    assert report["status"] == "done", report
    assert [v["status"] for v in report["videos"]] == ["done"] * videos
    out = harness.outbox / name
    for i in range(1, videos + 1):
        assert (out / f"v{i}.mp4").stat().st_size > 1000
    assert not [p for p in harness.outbox.iterdir() if p.name.startswith(".heygemd")]
    return report


def test_four_videos_spread_over_workers_published_once(
    harness: Harness, redis_server: RedisServer,  # noqa: F811
) -> None:
    farm_config(harness, redis_server.url)
    harness.env["HEYGEMD_FAKE_SLOW_MS"] = "80"
    workers = start_workers(harness, 3)
    intake = harness.start()
    job_of(harness, "four", 4)
    pids = {p.pid for p in workers}
    shown = wait_for(lambda: workers_shown(harness), 120, "the status to show a worker")
    item, line, page = shown
    host = socket.gethostname()
    assert item["worker"].startswith(f"{host}/cpu/") and int(item["worker"].split("/")[2]) in pids
    assert 0 < item["fraction"] < 1 and item["report_age_s"] < 5, item
    assert line.startswith(f"  - {item['video']} of four: on {host} (cpu, pid "), line
    assert page["host"] == host and page["device"] == "cpu" and page["pid"] in pids, page
    harness.wait_published(1, timeout=180)
    report = assert_published_once(harness, "four", 4)
    # the loop settles the job's end (and rewrites the status) within a tick of the publish
    wait_for(lambda: json.loads((harness.outbox / "status.json").read_text())["farm"] == [], 5,
             "the status to show no video out")
    made_by = {w.strip() for w in report["engine"]["workers"].split(",")}
    assert len(made_by) >= 2, report["engine"]  # the videos ran on more than one worker
    assert report["engine"]["name"] == "echo"
    assert harness.stop(intake) == 0
    for proc in workers:
        assert harness.stop(proc, timeout=60) == 0


def test_one_video_jobs_run_side_by_side_on_free_workers(
    harness: Harness, redis_server: RedisServer, browser: Any,  # noqa: F811
) -> None:
    from selenium.webdriver.common.by import By

    port = web_port()
    farm_config(harness, redis_server.url)
    harness.configure(web={"listen": f"127.0.0.1:{port}"},
                      farm={"broker": redis_server.url, "poll_seconds": 0.2})
    harness.env["HEYGEMD_FAKE_SLOW_MS"] = "200"  # ~8 s a video
    workers = start_workers(harness, 2)
    intake = harness.start()
    start_web(harness, port)
    browser.get(f"http://127.0.0.1:{port}/")
    job_of(harness, "first", 1)
    job_of(harness, "second", 1)
    status = harness.outbox / "STATUS.txt"
    wait_for(lambda: status.is_file() and "Also working on: " in status.read_text(), 120,
             "the two jobs out at once")
    shown = on_page(browser, lambda d: text_of(d, "#running-name") and text_of(
        d, "#also-running") and (text_of(d, "#running-name"), [
            li.get_attribute("data-job")
            for li in d.find_elements(By.CSS_SELECTOR, "#also-running li")]), 30)
    assert sorted([shown[0], *shown[1]]) == ["first", "second"], shown
    harness.wait_published(2, timeout=180)
    reports = {name: assert_done(harness, name, 1) for name in ("first", "second")}
    first, second = reports["first"], reports["second"]
    assert first["engine"]["workers"] != second["engine"]["workers"], reports
    assert second["started_at"] < first["finished_at"], reports  # made at the same time
    assert harness.stop(intake) == 0
    for proc in workers:
        assert harness.stop(proc, timeout=60) == 0


def test_the_builtin_engine_makes_a_real_clip_on_a_worker(
    harness: Harness, redis_server: RedisServer,  # noqa: F811
) -> None:
    harness.configure(engine={"name": "builtin", "device": "cpu"},
                      farm={"broker": redis_server.url, "poll_seconds": 0.2})
    (worker,) = start_workers(harness, 1)
    intake = harness.start()
    job_of(harness, "real", 1)
    harness.wait_published(1, timeout=300)
    report = assert_published_once(harness, "real", 1)
    assert report["engine"]["name"] == "builtin", report["engine"]
    assert report["engine"]["workers"].endswith(f"/{worker.pid}")
    (video,) = report["videos"]
    assert video["metrics"]["frames"] >= 30 and video["metrics"]["output_seconds"] > 1.0, video
    assert harness.stop(intake) == 0
    assert harness.stop(worker, timeout=60) == 0


def test_a_hung_video_ends_its_worker_and_is_made_elsewhere(
    harness: Harness, redis_server: RedisServer,  # noqa: F811
) -> None:
    farm_config(harness, redis_server.url, task_time_limit_seconds=4.0)
    harness.env["HEYGEMD_FAKE_HANG"] = "v1"
    (stuck,) = start_workers(harness, 1)
    del harness.env["HEYGEMD_FAKE_HANG"]
    harness.start()
    job_of(harness, "hangs", 1)
    assert stuck.wait(60) == 70  # EX_HUNG: no progress for the task's time limit
    assert harness.log_has("worker.hung", 0, video="v1.mp4")
    # as systemd's Restart= would; with farm_config's own limit, so that its first video (its
    # models loaded as it starts) is not held to the 4 s that finds the hang quickly
    harness.env["HEYGEMD_FARM__TASK_TIME_LIMIT_SECONDS"] = "20"
    (fresh,) = start_workers(harness, 1)
    del harness.env["HEYGEMD_FARM__TASK_TIME_LIMIT_SECONDS"]
    harness.wait_published(1, timeout=120)  # after the visibility timeout
    report = assert_published_once(harness, "hangs", 1)
    assert report["engine"]["workers"].endswith(f"/{fresh.pid}")


def workers_shown(harness: Harness) -> tuple[dict, str, dict] | None:
    """A video some worker makes, as status.json, STATUS.txt and the web page's data show it,
    once a report of progress above 0 is in all three."""
    from heygemd.settings import load_settings
    from heygemd.web.data import page_data

    try:
        snapshot = json.loads((harness.outbox / "status.json").read_text())
        text = (harness.outbox / "STATUS.txt").read_text()
    except (OSError, ValueError):
        return None
    taken = [f for f in snapshot.get("farm", ()) if f["worker"] and f["fraction"] > 0]
    if not taken or "On the farm's workers:" not in text:
        return None
    item = taken[0]
    lines = [ln for ln in text.splitlines() if ln.startswith(f"  - {item['video']} of ")]
    page = [f for f in page_data(load_settings(harness.root / "config.toml"), 0.0)["farm"]
            if f["video"] == item["video"] and f["worker"]]
    return (item, lines[0], page[0]) if lines and page else None


def test_worker_killed_mid_video_is_redone_elsewhere(
    harness: Harness, redis_server: RedisServer,  # noqa: F811
) -> None:
    farm_config(harness, redis_server.url)
    harness.env["HEYGEMD_FAKE_SLOW_MS"] = "300"  # ~11 s a video: time to kill it midway
    workers = start_workers(harness, 2)
    by_pid = {str(p.pid): p for p in workers}
    harness.start()
    job_of(harness, "one", 1)
    seen = wait_for(lambda: progress_workers(harness), 120, "a worker on the video")
    victim = by_pid[next(iter(seen)).rsplit("/", 1)[1]]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)
    survivor = next(p for p in workers if p is not victim)
    deadline = time.monotonic() + 120
    while not harness.published():  # never a partial result on the share meanwhile
        partial = [r for r in farm_results(harness) if not (r / "result.json").is_file()]
        # once published, the job's work folder (and the share's results) is being removed
        assert not partial or harness.published(), partial
        assert survivor.poll() is None, harness.stderr()
        assert time.monotonic() < deadline, "the killed worker's video was not redone"
        time.sleep(0.3)
    report = assert_published_once(harness, "one", 1)
    assert report["engine"]["workers"].endswith(f"/{survivor.pid}")


def test_intake_killed_mid_job_finishes_it_once_after_restart(
    harness: Harness, redis_server: RedisServer,  # noqa: F811
) -> None:
    farm_config(harness, redis_server.url)
    harness.env["HEYGEMD_FAKE_SLOW_MS"] = "150"
    start_workers(harness, 2)
    intake = harness.start()
    job_of(harness, "three", 3)
    wait_for(lambda: farm_results(harness), 180, "a first video back on the share")
    os.kill(intake.pid, signal.SIGKILL)
    intake.wait(10)
    assert harness.published() == {}
    harness.start()  # the same state directory: recovery re-queues the job
    harness.wait_published(1, timeout=180)
    report = assert_published_once(harness, "three", 3)
    assert report["interruptions"] == 1
    time.sleep(3)  # a second publish would come now, from a video sent twice
    assert list(harness.published()) == ["three"]


def test_sigterm_warm_finishes_the_video_twice_cold_hands_it_on(
    harness: Harness, redis_server: RedisServer,  # noqa: F811
) -> None:
    farm_config(harness, redis_server.url)
    harness.env["HEYGEMD_FAKE_SLOW_MS"] = "300"  # ~11 s a video
    workers = start_workers(harness, 2)
    by_pid = {str(p.pid): p for p in workers}
    harness.start()

    def on_video() -> subprocess.Popen[bytes]:
        seen = wait_for(lambda: progress_workers(harness), 120, "a worker on the video")
        return by_pid[next(iter(seen)).rsplit("/", 1)[1]]

    # warm: the video is finished by the worker that had it, which then exits 0
    job_of(harness, "warm", 1)
    busy = on_video()
    busy.send_signal(signal.SIGTERM)
    time.sleep(2)
    assert busy.poll() is None, "a warm stop ended the worker before its video"
    assert busy.wait(60) == 0
    report = harness.wait_published(1, timeout=60)["warm"]
    assert report["status"] == "done" and report["engine"]["workers"].endswith(f"/{busy.pid}")

    # cold: a second SIGTERM abandons the video; its message goes back and another worker,
    # started since, makes it from the start
    (fresh,) = start_workers(harness, 1)
    by_pid[str(fresh.pid)] = fresh
    for f in harness.work.glob("*/.farm/progress/*.json"):
        f.unlink()
    job_of(harness, "cold", 1)
    busy = on_video()
    busy.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    busy.send_signal(signal.SIGTERM)
    busy.wait(15)  # well before its video would be done
    other = next(p for p in by_pid.values() if p.poll() is None)
    report = harness.wait_published(2, timeout=120)["cold"]
    assert report["status"] == "done", report
    assert report["engine"]["workers"].endswith(f"/{other.pid}"), report["engine"]
    assert report["videos"][0]["status"] == "done"
    assert harness.log_has("farm.video_returned", harness.procs.index(busy))


def test_doctor_checks_the_broker(harness: Harness, redis_server: RedisServer) -> None:  # noqa: F811
    from heygemd.doctor import check_farm
    from heygemd.settings import load_settings

    farm_config(harness, redis_server.url.replace("redis://", "redis://:secret@"))
    harness.work.mkdir()
    settings = load_settings(harness.root / "config.toml")
    found = check_farm(settings)
    # this server asks for no password, so the one given is refused... or ignored: either way
    # the line never shows it
    assert "secret" not in found.detail
    farm_config(harness, redis_server.url)
    settings = load_settings(harness.root / "config.toml")
    assert check_farm(settings).ok, check_farm(settings).detail
    assert "no intake has announced its share yet" in check_farm(settings).detail
    intake = harness.start()  # marks the share and tells the broker
    found = check_farm(settings)
    assert found.ok and "is the intake's share (mark " in found.detail, found.detail
    elsewhere = harness.root / "local-work"  # a worker that mounted nothing at paths.work
    elsewhere.mkdir()
    local = settings.model_copy(update={"paths": settings.paths.model_copy(
        update={"work": elsewhere})})
    wrong = check_farm(local)
    assert not wrong.ok and f"paths.work {elsewhere} here has no share mark" in wrong.detail
    assert harness.stop(intake) == 0
    redis_server.stop()
    down = check_farm(settings)
    assert not down.ok and "does not answer" in down.detail, down.detail


def test_a_worker_that_does_not_see_the_share_hands_videos_back(
    harness: Harness, redis_server: RedisServer,  # noqa: F811
) -> None:
    farm_config(harness, redis_server.url)
    harness.env["HEYGEMD_FAKE_SLOW_MS"] = "100"
    elsewhere = harness.root / "local-work"
    elsewhere.mkdir()
    harness.env["HEYGEMD_PATHS__WORK"] = str(elsewhere)  # its own empty folder, not the share
    (blind,) = start_workers(harness, 1)
    del harness.env["HEYGEMD_PATHS__WORK"]
    harness.start()
    job_of(harness, "first", 1)
    wait_for(lambda: harness.log_has("farm.share_not_seen", 0), 120,
             "the blind worker to take the video and see no share")
    assert not list(elsewhere.iterdir())  # it made nothing there
    assert harness.published() == {}  # and the video was not judged gone
    (seeing,) = start_workers(harness, 1)
    harness.wait_published(1, timeout=120)
    report = assert_published_once(harness, "first", 1)
    assert report["engine"]["workers"].endswith(f"/{seeing.pid}")
    assert blind.poll() is None  # it stays up: the share may be mounted later
