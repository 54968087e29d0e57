"""A real redis-server for the farm's tests: 127.0.0.1, a free port, its own temp dir, AOF on
(a restart keeps the queued messages, as docs/farm.md asks of a production broker)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.conftest import Harness, wait_for

INSTALL_HINT = ("redis-server not found on PATH: the farm's tests need a real one "
                "(Debian: apt-get install redis-server; `make test-deps` does it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    folder: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(INSTALL_HINT, pytrace=False)
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                str(self.folder), "--appendonly", "yes", "--appendfsync", "always",
                "--save", "", "--daemonize", "no", "--loglevel", "warning"]
        with open(self.folder / "redis.log", "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: answers(self.port), 20, "redis-server to answer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)
        self.proc = None


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


def farm_config(harness: Harness, broker: str, **farm: float) -> None:
    """The harness's config with the farm on: short limits so a killed worker's video is
    handed on within the test (the visibility timeout, plus kombu's 10 s restore cycle)."""
    harness.configure(farm={"broker": broker, "task_time_limit_seconds": 20.0,
                            "visibility_timeout_seconds": 25.0, "poll_seconds": 0.2, **farm})


def start_workers(harness: Harness, count: int) -> list[subprocess.Popen[bytes]]:
    procs = []
    for _ in range(count):
        n = len(harness.procs)
        proc = harness.start(command="worker", ready=False)
        wait_for(lambda n=n, proc=proc: proc.poll() is not None or
                 harness.log_has("worker.started", n), 90, "worker start")
        assert proc.poll() is None, harness.stderr(n)
        procs.append(proc)
    return procs


def job_of(harness: Harness, name: str, videos: int) -> Path:
    """A job folder with ``videos`` copies of the face clip and the speech."""
    files = {f"v{i}.mp4": "face.mp4" for i in range(1, videos + 1)}
    return harness.make_job(name, {"speech.wav": "speech.wav", **files})


def work_is_empty(harness: Harness) -> bool:
    """Nothing in the work area but the share's mark (every job published, its holder gone)."""
    from heygemd.farm.share import SHARE_MARK

    return not [p for p in harness.work.iterdir() if p.name != SHARE_MARK]


def farm_results(harness: Harness) -> list[Path]:
    return sorted(harness.work.glob("*/.farm/results/*"))


def progress_workers(harness: Harness) -> set[str]:
    import json

    return {json.loads(p.read_text())["worker"]
            for p in harness.work.glob("*/.farm/progress/*.json")}
