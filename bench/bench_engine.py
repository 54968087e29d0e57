"""Throughput of the builtin engine: job time / a plain PyAV decode+encode of the same video.

    .venv/bin/python bench/bench_engine.py [--clips th08 th10] [--preset medium] [--whole-job]
                                           [--repeat 3] [--device auto|cpu|cuda]

For each talking clip, the clip is lip-synced to its own audio (same length) and encoded with the
same output settings as the plain decode+encode (bench/baseline.py): with a cold template cache
(emptied before each cold run) and warm. Aim: <= 2.5 cold, <= 1.5 warm (issue 4).
--whole-job times what the daemon does per video instead (audio check, validation, render,
encode; the outbox's renames aside). Writes bench/out/bench-engine|job-<time>.json.

How it is measured, so that one noisy run on a shared machine does not decide:

- the plain path is warmed up once (untimed) per clip, and the first clip's whole job is run
  once untimed: a daemon pays its first-call costs (TorchScript's profiling runs, mediapipe's
  first graph run) once per process, not per job;
- then ``--repeat`` rounds of plain, cold, warm, each timed once per round; reported are the
  medians (``plain_s``, ``cold_s``, ``warm_s``; the ratios are median / median), every run, and
  the spread (max - min);
- every timed run hears audio never heard before, as a real job does. The engine remembers
  what it heard by content (a job's videos share their audio): without care the warm run
  skipped hearing altogether (it reused the cold run's memory of the same audio), and every
  cold run after the first skipped hearing the template's own track. So the job's audio is the
  clip's own sound with its level changed by a hair for each run (a new WAV for whole jobs),
  and the engine's memory of heard audio is emptied before each timed run (``forget_heard``);
- beside each run's seconds, the CPU seconds other processes used meanwhile (``*_others_cpu_s``,
  from /proc/stat; this process's descendants, the engine's hearing worker, count as ours): a
  run that shared the machine with another job says so; medians of such runs are not results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from baseline import Spread, plain_decode_encode  # noqa: E402

from heygemd.contract import AUDIO_RATE  # noqa: E402
from heygemd.engines.base import EngineContext, RenderRequest, resolve_device  # noqa: E402
from heygemd.engines.builtin.engine import BuiltinEngine  # noqa: E402
from heygemd.media.audio import load_audio  # noqa: E402
from heygemd.media.probe import probe  # noqa: E402
from heygemd.media.writer import VideoWriter  # noqa: E402
from heygemd.pipeline import Pipeline  # noqa: E402
from heygemd.settings import OutputSettings, load_settings  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
GAIN_STEP = 1e-3  # each timed run's audio is this much quieter than the one before


def machine_busy_s() -> float | None:
    """CPU seconds all processes have used since boot (/proc/stat), None where unknown."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def process_stats() -> dict[int, list[str]]:
    """pid -> the fields of /proc/<pid>/stat after the command name (state first: index 1 is
    the parent pid, 11/12 user/system ticks, 21 resident pages); empty without /proc."""
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                stats[int(entry)] = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
    return stats


def descendants(root: int, stats: dict[int, list[str]]) -> list[int]:
    """The living descendants of ``root`` in ``stats`` (process_stats)."""
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    found, todo = [], [root]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def own_cpu_s() -> float:
    """CPU seconds used by this process, its descendants that have ended and been waited for
    (a `heygemd once` run), and its living descendants (an engine's workers)."""
    times = os.times()
    stats = process_stats()
    return times.user + times.system + times.children_user + times.children_system + sum(
        (int(stats[pid][11]) + int(stats[pid][12])) / os.sysconf("SC_CLK_TCK")
        for pid in descendants(os.getpid(), stats))


def with_others(run: Callable[[], float]) -> tuple[float, float | None]:
    """(``run()``'s result, CPU seconds other processes used meanwhile, None where unknown)."""
    before, own_before = machine_busy_s(), own_cpu_s()
    result = run()
    after, own_after = machine_busy_s(), own_cpu_s()
    if before is None or after is None:
        return result, None
    return result, max(0.0, after - before - (own_after - own_before))


def gain_for(run: int) -> float:
    """The level of the ``run``-th timed run's audio (run 0: the warm-up, 1.0)."""
    return 1.0 - GAIN_STEP * run


def job_seconds(
    engine: BuiltinEngine, clip: Path, out: Path, settings: OutputSettings, gain: float = 1.0
) -> float:
    """Render ``clip`` driven by its own audio (times ``gain``) and encode it: wall seconds."""
    t0 = time.perf_counter()
    info = probe(clip)
    assert info.video is not None
    audio = load_audio(clip, rate=AUDIO_RATE) * gain
    request = RenderRequest(template=clip, info=info, audio=audio, fps=info.video.avg_fps)
    rendering = engine.render(request, lambda f: None)
    track = load_audio(clip, rate=settings.audio_rate, mono=False)
    with VideoWriter(out, rendering.width, rendering.height, rendering.fps, audio=track,
                     audio_rate=settings.audio_rate, settings=settings) as writer:
        for frame in rendering.frames:
            writer.write(frame)
    return time.perf_counter() - t0


def write_wav(samples: Any, out: Path, rate: int = 48000) -> Path:
    """float32 (C, N) samples in [-1, 1] as a 16-bit WAV at ``rate``."""
    import wave

    import numpy as np

    pcm = (np.clip(samples.T, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(out), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return out


def own_track_as_wav(clip: Path, out: Path, gain: float = 1.0) -> Path:
    """The clip's own sound (times ``gain``) as a 16-bit 48 kHz WAV: a job's audio is a file of
    its own."""
    return write_wav(load_audio(clip, rate=48000, mono=False) * gain, out)


def whole_job_seconds(pipeline: Any, clip: Path, wav: Path, out: Path) -> float:
    """What the daemon does for a one-video job, less the outbox's file moves: check the audio
    (``wav``, the clip's own sound), examine the video, render and encode. Wall seconds."""
    t0 = time.perf_counter()
    audio = pipeline.check_audio(wav)
    result = pipeline.process_video(clip, audio, out, out.parent / "pictures", lambda f: None)
    if result.status != "done":
        raise SystemExit(f"{clip.name}: {result.status} {result.reason_code} {result.message}")
    return time.perf_counter() - t0


def summary(
    clip: Path, plain: Spread, cold: Spread, warm: Spread,
    others: dict[str, list[float | None]] | None = None,
) -> dict[str, Any]:
    """One clip's row: medians and ratios (the fields earlier runs wrote), then every run and
    (``others``) the CPU seconds other processes used during each."""
    row: dict[str, Any] = {
        "clip": clip.name, "plain_s": round(plain.median, 2), "cold_s": round(cold.median, 2),
        "warm_s": round(warm.median, 2), "cold_ratio": round(cold.median / plain.median, 2),
        "warm_ratio": round(warm.median / plain.median, 2),
    }
    for name, spread in (("plain", plain), ("cold", cold), ("warm", warm)):
        row[f"{name}_runs"] = [round(r, 3) for r in spread.runs]
        row[f"{name}_spread_s"] = round(spread.range, 3)
    row["cold_ratio_range"] = [round(cold.low / plain.high, 2), round(cold.high / plain.low, 2)]
    row["warm_ratio_range"] = [round(warm.low / plain.high, 2), round(warm.high / plain.low, 2)]
    for name, seconds in (others or {}).items():
        row[f"{name}_others_cpu_s"] = [None if s is None else round(s, 2) for s in seconds]
    return row


def measure_clip(
    clip: Path, timed: Callable[[Path, Path, float], float], plain: Callable[[Path], float],
    cache: Path, tmp: Path, repeat: int, warm_up_job: bool,
) -> dict[str, Any]:
    """Warm-ups, then ``repeat`` rounds of plain / cold / warm; the clip's summary row."""
    plain(tmp / "plain.mp4")  # warm-up, untimed
    if warm_up_job:
        shutil.rmtree(cache, ignore_errors=True)
        timed(clip, tmp / "warm-up.mp4", gain_for(0))
    runs: dict[str, list[float]] = {"plain": [], "cold": [], "warm": []}
    others: dict[str, list[float | None]] = {"plain": [], "cold": [], "warm": []}
    for round_ in range(repeat):
        for name in ("plain", "cold", "warm"):
            if name == "cold":
                shutil.rmtree(cache, ignore_errors=True)
            number = 2 * round_ + (1 if name == "cold" else 2)
            seconds, other = with_others(
                lambda name=name, number=number: plain(tmp / "plain.mp4") if name == "plain"
                else timed(clip, tmp / f"{name}.mp4", gain_for(number)))
            runs[name].append(seconds)
            others[name].append(other)
    return summary(clip, Spread.of(runs["plain"]), Spread.of(runs["cold"]),
                   Spread.of(runs["warm"]), others)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", nargs="*", default=[], help="name prefixes (default: all)")
    parser.add_argument("--preset", default=None, help="x264 preset (default: config.toml's)")
    parser.add_argument("--whole-job", action="store_true",
                        help="time the daemon's whole per-video work (audio check, validation, "
                             "render, encode), not the engine and encoder alone")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of plain / cold / warm per clip (medians are reported)")
    parser.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"],
                        help="where the engine renders (default: config.toml's engine.device)")
    args = parser.parse_args()
    settings = load_settings(ROOT / "config.toml")
    output = settings.output
    if args.preset:
        output = output.model_copy(update={"preset": args.preset})
    clips = [p for p in sorted((MEDIA / "talking").iterdir())
             if not args.clips or any(p.name.startswith(c) for c in args.clips)]
    results = []
    with tempfile.TemporaryDirectory(prefix="heygemd-bench-") as tmp_name:
        tmp = Path(tmp_name)
        cache = tmp / "cache"
        settings = settings.model_copy(update={
            "output": output, "paths": settings.paths.model_copy(update={"cache": cache})})
        device = resolve_device(args.device or settings.engine.device)
        ctx = EngineContext.within(settings.paths, options=settings.engine.builtin,
                                   faces=settings.faces, device=device)
        engine = BuiltinEngine(ctx)
        pipeline = Pipeline.from_settings(settings, engine)
        pipeline.startup()  # prepares the engine too

        def timed(clip: Path, out: Path, gain: float) -> float:
            engine.forget_heard()  # hear the job's (and, cold, the template's) audio
            if args.whole_job:
                wav = own_track_as_wav(clip, tmp / f"{clip.stem}.wav", gain)
                return whole_job_seconds(pipeline, clip, wav, out)
            return job_seconds(engine, clip, out, output, gain)

        for number, clip in enumerate(clips):
            row = measure_clip(
                clip, timed, lambda out, clip=clip: plain_decode_encode(clip, out, output),
                cache, tmp, max(1, args.repeat), warm_up_job=number == 0,
            )
            row["device"] = device
            print(json.dumps(row), flush=True)
            results.append(row)
        pipeline.shutdown()
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    kind = "job" if args.whole_job else "engine"
    path = out / f"bench-{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({
        "preset": output.preset, "measured": kind, "repeat": max(1, args.repeat),
        "device": device,
        "method": "medians of --repeat rounds (plain, cold, warm) after untimed warm-ups; "
                  "each timed run hears new audio", "results": results,
    }, indent=2))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
