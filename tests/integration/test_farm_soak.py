"""The farm's soak (`make soak`): 40 small jobs through a real redis-server, an intake and three
workers, while workers and the intake are killed with SIGKILL at random moments and started
again (as systemd's Restart= does). Every job is in the outbox exactly once, complete."""

from __future__ import annotations

import random
import subprocess
import threading
import time

import pytest

from tests.integration.conftest import Harness, wait_for
from tests.integration.farm import (
    RedisServer,
    job_of,
    redis_server,  # noqa: F401 - the fixture
    start_workers,
    work_is_empty,
)

JOBS = 40
WORKERS = 3


def chaos(harness: Harness, procs: dict[str, subprocess.Popen[bytes]], rng: random.Random,
          until: threading.Event, kills: list[str]) -> None:
    """Every few seconds, kill -9 a worker or the intake and start it again."""
    while not until.wait(rng.uniform(3.0, 9.0)):
        role = rng.choice([*[k for k in procs if k.startswith("worker")], "intake"])
        victim = procs[role]
        victim.kill()
        victim.wait(10)
        kills.append(role)
        if role == "intake":
            procs[role] = harness.start(ready=False)
        else:
            (procs[role],) = start_workers(harness, 1)


@pytest.mark.soak
@pytest.mark.timeout(2400)
def test_farm_soak_every_job_once_through_kills(
    harness: Harness, redis_server: RedisServer,  # noqa: F811
) -> None:
    seed = int(time.time())
    rng = random.Random(seed)
    # short limits: a killed worker's video is handed on within ~40 s. A worker cannot tell a
    # kill -9 from a crash of its video, and counts both toward daemon.max_attempts: with this
    # many kills, set high enough that no video is set aside for them
    harness.configure(
        farm={"broker": redis_server.url, "task_time_limit_seconds": 24.0,
              "visibility_timeout_seconds": 28.0, "poll_seconds": 0.2},
        watch={"settle_seconds": 0.3, "rescan_seconds": 1.0},
        daemon={"min_free_gb": 0.0, "idle_tick_seconds": 0.2, "max_attempts": 20})
    # ~4 s a video: the intake runs jobs side by side, so with quicker videos the 40 jobs are
    # through before many kills land mid-video; the time limit leaves room for a loaded machine
    harness.env["HEYGEMD_FAKE_SLOW_MS"] = "100"
    procs = {f"worker{i}": p for i, p in enumerate(start_workers(harness, WORKERS))}
    procs["intake"] = harness.start()
    names = [f"soak{i:02d}" for i in range(JOBS)]
    sizes = {name: rng.choice([1, 1, 2]) for name in names}  # some jobs of two videos
    done = threading.Event()
    kills: list[str] = []
    killer = threading.Thread(target=chaos, args=(harness, procs, rng, done, kills))
    killer.start()
    try:
        for name in names:
            job_of(harness, name, sizes[name])
            time.sleep(rng.uniform(0.1, 1.0))
        reports = harness.wait_published(JOBS, timeout=2100)
    finally:
        done.set()
        killer.join()
    time.sleep(5)  # a job published twice would show now
    reports = harness.published()
    assert sorted(reports) == names, (seed, sorted(reports))  # no "-2" copies, none missing
    for name, report in reports.items():
        assert report["status"] == "done", (seed, name, report)
        assert [v["status"] for v in report["videos"]] == ["done"] * sizes[name]
        for i in range(1, sizes[name] + 1):
            assert (harness.outbox / name / f"v{i}.mp4").stat().st_size > 1000
    assert len({r["job_id"] for r in reports.values()}) == JOBS
    wait_for(lambda: work_is_empty(harness), 30, "an empty work area")
    assert list(harness.inbox.iterdir()) == []
    harness.wait_outbox_clean()
    print(f"farm soak (seed {seed}): {JOBS} jobs published once each through "
          f"{sum(k != 'intake' for k in kills)} worker and {kills.count('intake')} intake kills")
    assert kills.count("intake") >= 2 and len(kills) >= 10, (seed, kills)
