"""The job farm's throughput on this machine: jobs/hour with 1 and 3 workers, and what the farm
path costs per video against the single-machine path.

    .venv/bin/python bench/bench_farm.py [--shapes 6x1,4x3] [--overhead-jobs 6]
                                         [--slow-ms 250] [--parts scaling,overhead]

Real processes as in production: a redis-server on 127.0.0.1 (a free port, a temp dir), the
real `heygemd run` as intake, real `heygemd worker`s; the pipeline is the real one (audio check,
validation's frame pass, encode), the engine the test double tests/fakes.py:EchoEngine, which
copies the template's frames and sleeps --slow-ms per frame: the stand-in for GPU time, which
does not compete for these CPU cores. Clips are 1.6 s, 256x256 (tests/integration/conftest.py).

- scaling: for each of --shapes (JOBSxVIDEOS: 6 jobs of one video, 4 jobs of three), the jobs
  dropped at once into a running farm of 1, then 3 workers; seconds from the drop to the last
  publish -> jobs/hour, videos/hour, the ratio 3 to 1 per shape (one-video jobs scale only
  because the intake runs jobs side by side);
- overhead: --overhead-jobs jobs of one video each, in the inbox before the start, made by
  `heygemd once` (the single-machine path) and by an intake with one warm worker; seconds from
  "daemon.started" to the last "job.published" in each's log (start-up not counted); the
  difference over the number of videos is the farm's cost per video (sending, the share's
  result folder, the intake's polling, copying the result into the job).

The ratio, not the absolute time, is the figure: the machine's cores are shared (the output
says how many there are and the load average before and after). Writes
bench/out/bench-farm-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.conftest import make_face_video, make_speech, write_config  # noqa: E402
from tests.integration.farm import RedisServer  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
FACE_CLIP = "talking/th08_woman_older_en_real3dportrait_May5s.mp4"
SPEECH = "speech/en02_male_news_commentary_60s_musetalk_eng.wav"


class Install:
    """A temp installation (inbox, outbox, work, state, config) and its heygemd processes."""

    def __init__(self, root: Path, farm: dict[str, Any] | None, slow_ms: int) -> None:
        self.root, self.procs = root, []
        (root / "inbox").mkdir(parents=True)
        overrides: dict[str, dict[str, Any]] = {"logging": {"level": "info"}}
        if farm is not None:
            overrides["farm"] = farm
        write_config(root / "config.toml", overrides)
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "HEYGEMD_FAKE_SLOW_MS": str(slow_ms)}

    def start(self, command: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.root / f"{command}{len(self.procs)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "heygemd", "--config", str(self.root / "config.toml"),
                 command], cwd=self.root, env=self.env, stdout=out, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc, log

    def drop(self, name: str, videos: int, media: dict[str, Path]) -> None:
        part = self.root / "inbox" / f".{name}.part"  # hidden while copied, then renamed
        part.mkdir()
        shutil.copyfile(media["speech"], part / "speech.wav")
        for i in range(1, videos + 1):
            shutil.copyfile(media["face"], part / f"v{i}.mp4")
        part.rename(self.root / "inbox" / name)

    def published(self) -> int:
        outbox = self.root / "outbox"  # made by the daemon at its start
        return sum(1 for p in outbox.iterdir() if p.is_dir() and (p / "report.json").is_file()
                   ) if outbox.is_dir() else 0

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def events(log: Path, name: str) -> list[float]:
    """Unix times of the log lines whose event is ``name``."""
    found = []
    for raw in log.read_bytes().splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if line.get("event") == name:
            found.append(datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
                         .timestamp())
    return found


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_farm: timed out waiting for {what}")
        time.sleep(0.1)


def start_farm(inst: Install, workers: int) -> Path:
    """``workers`` warm workers, then the intake; the intake's log."""
    for _ in range(workers):
        proc, log = inst.start("worker")
        wait(lambda log=log: events(log, "worker.started"), 180, "a worker to start")
    proc, log = inst.start("run")
    wait(lambda: events(log, "daemon.started"), 180, "the intake to start")
    return log


def scaling_run(tmp: Path, media: dict[str, Path], workers: int, jobs: int, videos: int,
                slow_ms: int) -> dict[str, Any]:
    where = tmp / f"{jobs}x{videos}-{workers}"
    where.mkdir()
    redis = RedisServer(where / "redis")
    redis.folder.mkdir()
    redis.start()
    inst = Install(where / "farm", farm_settings(redis.url), slow_ms)
    try:
        start_farm(inst, workers)
        t0 = time.monotonic()
        for n in range(jobs):
            inst.drop(f"job{n:02d}", videos, media)
        wait(lambda: inst.published() >= jobs, 3600, "the jobs to be published")
        seconds = time.monotonic() - t0
    finally:
        inst.close()
        redis.stop()
    return {"workers": workers, "jobs": jobs, "videos_per_job": videos,
            "seconds": round(seconds, 1), "jobs_per_hour": round(jobs / seconds * 3600),
            "videos_per_hour": round(jobs * videos / seconds * 3600)}


def shapes(text: str) -> list[tuple[int, int]]:
    """"6x1,4x3" -> [(6, 1), (4, 3)]: jobs x videos a job."""
    return [(int(j), int(v)) for j, v in (part.split("x") for part in text.split(","))]


def farm_settings(url: str) -> dict[str, Any]:
    return {"broker": url, "task_time_limit_seconds": 600.0,
            "visibility_timeout_seconds": 900.0, "poll_seconds": 0.2}


def made_seconds(log: Path, jobs: int) -> float:
    """From "daemon.started" to the ``jobs``-th "job.published" in ``log``."""
    started, published = events(log, "daemon.started"), events(log, "job.published")
    assert len(published) == jobs, (log, len(published))
    return max(published) - started[0]


def overhead_run(tmp: Path, media: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    jobs = args.overhead_jobs
    single = Install(tmp / "single", None, args.slow_ms)
    for n in range(jobs):
        single.drop(f"one{n:02d}", 1, media)
    proc, log = single.start("once")
    if proc.wait(3600) != 0:
        raise SystemExit(f"bench_farm: heygemd once failed (see {log})")
    single_s = made_seconds(log, jobs)

    redis = RedisServer(tmp / "redis-overhead")
    redis.folder.mkdir()
    redis.start()
    farm = Install(tmp / "farm", farm_settings(redis.url), args.slow_ms)
    try:
        proc, wlog = farm.start("worker")
        wait(lambda: events(wlog, "worker.started"), 180, "the worker to start")
        for n in range(jobs):
            farm.drop(f"one{n:02d}", 1, media)
        proc, log = farm.start("run")
        wait(lambda: farm.published() >= jobs, 3600, "the farm's jobs")
        time.sleep(0.5)  # the log's last line
        farm_s = made_seconds(log, jobs)
    finally:
        farm.close()
        redis.stop()
    return {"jobs": jobs, "videos": jobs, "single_s": round(single_s, 2),
            "farm_s": round(farm_s, 2),
            "single_s_per_video": round(single_s / jobs, 2),
            "farm_s_per_video": round(farm_s / jobs, 2),
            "overhead_s_per_video": round((farm_s - single_s) / jobs, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=shapes, default=shapes("6x1,4x3"),
                        help="JOBSxVIDEOS,...: the jobs dropped at once in each scaling run")
    parser.add_argument("--overhead-jobs", type=int, default=6)
    parser.add_argument("--slow-ms", type=int, default=250,
                        help="the engine's stand-in for GPU time, ms a frame (40 frames a video)")
    parser.add_argument("--parts", default="scaling,overhead")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("bench_farm: needs redis-server (Debian: apt-get install redis-server)")
    cores = os.cpu_count() or 0
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-farm-") as name:
        tmp = Path(name)
        media = {"face": tmp / "face.mp4", "speech": tmp / "speech.wav"}
        make_face_video(MEDIA / FACE_CLIP, media["face"])
        make_speech(MEDIA / SPEECH, media["speech"], 2.0, 1.5)
        runs, ratios = [], {}
        for jobs, videos in args.shapes if "scaling" in args.parts else ():
            pair = []
            for workers in (1, 3):
                pair.append(scaling_run(tmp, media, workers, jobs, videos, args.slow_ms))
                print(json.dumps(pair[-1]), flush=True)
            ratios[f"{jobs}x{videos}"] = round(pair[1]["jobs_per_hour"] /
                                               pair[0]["jobs_per_hour"], 2)
            runs += pair
        overhead = overhead_run(tmp, media, args) if "overhead" in args.parts else None
    result = {
        "machine": {"cpu_cores": cores, "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in os.getloadavg()],
                    "note": f"{cores} CPU cores shared by every process here (other agents "
                            "included); the workers' audio check, frame pass and encode "
                            "compete for them, the engine's --slow-ms sleep (the stand-in "
                            "for GPU time) does not"},
        "engine": f"tests.fakes:EchoEngine, {args.slow_ms} ms a frame, 40 frames a video",
        "parts": args.parts,
        "scaling": runs, "ratio_3_to_1_workers": ratios, "overhead": overhead,
    }
    print(f"this machine: {cores} CPU cores (shared); load {load_before[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after")
    for run in runs:
        print(f"{run['workers']} worker(s): {run['jobs']} jobs x {run['videos_per_job']} videos "
              f"in {run['seconds']} s -> {run['jobs_per_hour']} jobs/hour, "
              f"{run['videos_per_hour']} videos/hour")
    for shape, ratio in ratios.items():
        print(f"3 workers / 1 worker, {shape} (jobs x videos): {ratio}x")
    if overhead is not None:
        print(f"per video: single machine (heygemd once) {overhead['single_s_per_video']} s, "
              f"farm (1 worker) {overhead['farm_s_per_video']} s: overhead "
              f"{overhead['overhead_s_per_video']} s a video")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-farm-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
