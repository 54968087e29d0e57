"""The farm when its broker goes away: a real redis-server stopped and started again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import Harness, wait_for
from tests.integration.farm import (
    RedisServer,
    farm_config,
    job_of,
    progress_workers,
    redis_server,  # noqa: F401 - the fixture
    start_workers,
    work_is_empty,
)

pytestmark = pytest.mark.slow


def heygemd_status(harness: Harness) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "heygemd", "--config", str(harness.root / "config.toml"),
         "status"], capture_output=True, text=True, timeout=60, cwd=harness.root,
        env={**os.environ, "PYTHONPATH": str(ROOT), **harness.env})
    return done.stdout + done.stderr


def test_broker_down_then_back_loses_no_job_and_status_says_why(
    harness: Harness, redis_server: RedisServer,  # noqa: F811
) -> None:
    farm_config(harness, redis_server.url)
    harness.env["HEYGEMD_FAKE_SLOW_MS"] = "150"
    (worker,) = start_workers(harness, 1)
    intake = harness.start()
    job_of(harness, "first", 2)
    wait_for(lambda: progress_workers(harness), 180, "the worker on a video")
    redis_server.stop()  # mid-video: the worker's connection dies under it
    job_of(harness, "second", 1)
    status = harness.outbox / "STATUS.txt"
    wait_for(lambda: "task broker" in status.read_text(), 60, "the status to name the broker")
    words = (f"videos wait for the task broker at redis://127.0.0.1:{redis_server.port}/0: "
             "connection refused since ")
    assert words in status.read_text(), status.read_text()
    # status.json is written just after STATUS.txt: wait for it too, not only for the text

    def broker_said() -> list[str]:
        snapshot = json.loads((harness.outbox / "status.json").read_text())
        return [p["words"] for p in snapshot["problems"] if p["kind"] == "farm.broker"]

    said = wait_for(broker_said, 30, "status.json to name the broker")
    assert len(said) == 1 and said[0].startswith(words), said
    told = heygemd_status(harness)
    assert f"PROBLEM: {words}" in told, told
    time.sleep(4)  # down for a while: the worker's watch and the intake's sends fail meanwhile
    redis_server.start()
    harness.wait_published(2, timeout=240)
    published = harness.published()
    assert sorted(published) == ["first", "second"]
    assert [[v["status"] for v in published[n]["videos"]] for n in ("first", "second")] == \
        [["done", "done"], ["done"]]
    wait_for(lambda: "task broker" not in status.read_text(), 30, "the broker problem to clear")
    # the same worker process took the videos sent after the broker came back
    assert worker.poll() is None, harness.stderr(0)
    assert published["second"]["engine"]["workers"].endswith(f"/{worker.pid}")
    assert harness.log_has("worker.broker_lost", 0) and harness.log_has("worker.restarting", 0)

    # down while the intake is idle: the next job's videos cannot be sent; they are once it is back
    redis_server.stop()
    job_of(harness, "third", 2)
    wait_for(lambda: "task broker" in status.read_text(), 60, "the status to name the broker")
    third = next(x["job_id"] for x in harness.log_lines(1)
                 if x.get("event") == "job.claimed" and x.get("name") == "third")
    assert any(x.get("event") == "farm.broker_unreachable" and x.get("job_id") == third
               for x in harness.log_lines(1))  # its videos could not be sent
    time.sleep(3)
    redis_server.start()
    harness.wait_published(3, timeout=240)
    assert [v["status"] for v in harness.published()["third"]["videos"]] == ["done", "done"]
    restarts = [x for x in harness.log_lines(0) if x.get("event") == "worker.restarting"]
    assert len(restarts) == 2, restarts
    time.sleep(3)  # a video sent twice would publish a job again now
    assert sorted(harness.published()) == ["first", "second", "third"]
    wait_for(lambda: work_is_empty(harness), 10, "an empty work area")
    assert harness.stop(intake) == 0
    assert harness.stop(worker, timeout=60) == 0
