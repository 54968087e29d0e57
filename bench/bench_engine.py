"""Throughput of the builtin engine: job time / a plain PyAV decode+encode of the same video.

    .venv/bin/python bench/bench_engine.py [--clips th08 th10] [--preset medium] [--whole-job]

For each talking clip, the clip is lip-synced to its own audio (same length) and encoded with the
same output settings as the plain decode+encode (bench/baseline.py): once with a cold template
cache, once warm. Ratios in one run on one machine; aim <= 2.5 cold, <= 1.5 warm (issue 4).
--whole-job times what the daemon does per video instead (audio check, validation, render,
encode; the outbox's renames aside). Writes bench/out/bench-engine|job-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from baseline import plain_decode_encode  # noqa: E402

from heygemd.engines.base import AUDIO_RATE, EngineContext, RenderRequest  # noqa: E402
from heygemd.engines.builtin.engine import BuiltinEngine  # noqa: E402
from heygemd.media.audio import load_audio  # noqa: E402
from heygemd.media.probe import probe  # noqa: E402
from heygemd.media.writer import VideoWriter  # noqa: E402
from heygemd.pipeline import Pipeline  # noqa: E402
from heygemd.settings import OutputSettings, load_settings  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"


def job_seconds(engine: BuiltinEngine, clip: Path, out: Path, settings: OutputSettings) -> float:
    """Render ``clip`` driven by its own audio and encode it: wall seconds, like a job."""
    t0 = time.perf_counter()
    info = probe(clip)
    assert info.video is not None
    audio = load_audio(clip, rate=AUDIO_RATE)
    request = RenderRequest(template=clip, info=info, audio=audio, fps=info.video.avg_fps)
    rendering = engine.render(request, lambda f: None)
    track = load_audio(clip, rate=settings.audio_rate, mono=False)
    with VideoWriter(out, rendering.width, rendering.height, rendering.fps, audio=track,
                     audio_rate=settings.audio_rate, settings=settings) as writer:
        for frame in rendering.frames:
            writer.write(frame)
    return time.perf_counter() - t0


def own_track_as_wav(clip: Path, out: Path) -> Path:
    """The clip's own sound as a 16-bit 48 kHz WAV: a job's audio is a file of its own."""
    import wave

    import numpy as np

    track = load_audio(clip, rate=48000, mono=False)  # (C, N) float32
    pcm = (np.clip(track.T, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(out), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(pcm.tobytes())
    return out


def whole_job_seconds(pipeline: Any, clip: Path, wav: Path, out: Path) -> float:
    """What the daemon does for a one-video job, less the outbox's file moves: check the audio
    (``wav``, the clip's own sound), examine the video, render and encode. Wall seconds."""
    t0 = time.perf_counter()
    audio = pipeline.check_audio(wav)
    result = pipeline.process_video(clip, audio, out, out.parent / "pictures", lambda f: None)
    if result.status != "done":
        raise SystemExit(f"{clip.name}: {result.status} {result.reason_code} {result.message}")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", nargs="*", default=[], help="name prefixes (default: all)")
    parser.add_argument("--preset", default=None, help="x264 preset (default: config.toml's)")
    parser.add_argument("--whole-job", action="store_true",
                        help="time the daemon's whole per-video work (audio check, validation, "
                             "render, encode), not the engine and encoder alone")
    args = parser.parse_args()
    settings = load_settings(ROOT / "config.toml")
    output = settings.output
    if args.preset:
        output = output.model_copy(update={"preset": args.preset})
    clips = [p for p in sorted((MEDIA / "talking").iterdir())
             if not args.clips or any(p.name.startswith(c) for c in args.clips)]
    results = []
    with tempfile.TemporaryDirectory(prefix="heygemd-bench-") as tmp:
        cache = Path(tmp) / "cache"
        settings = settings.model_copy(update={
            "output": output, "paths": settings.paths.model_copy(update={"cache": cache})})
        ctx = EngineContext(settings=settings.engine, faces=settings.faces,
                            paths=settings.paths, device="cpu")
        engine = BuiltinEngine(ctx)
        pipeline = Pipeline(settings, engine)
        pipeline.startup()  # prepares the engine too

        def timed(clip: Path, out: Path) -> float:
            if args.whole_job:
                wav = own_track_as_wav(clip, Path(tmp) / f"{clip.stem}.wav")
                return whole_job_seconds(pipeline, clip, wav, out)
            return job_seconds(engine, clip, out, output)

        for clip in clips:
            plain = plain_decode_encode(clip, Path(tmp) / "plain.mp4", output)
            shutil.rmtree(cache, ignore_errors=True)
            cold = timed(clip, Path(tmp) / "cold.mp4")
            warm = timed(clip, Path(tmp) / "warm.mp4")
            row = {"clip": clip.name, "plain_s": round(plain, 2), "cold_s": round(cold, 2),
                   "warm_s": round(warm, 2), "cold_ratio": round(cold / plain, 2),
                   "warm_ratio": round(warm / plain, 2)}
            print(json.dumps(row), flush=True)
            results.append(row)
        pipeline.shutdown()
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    kind = "job" if args.whole_job else "engine"
    path = out / f"bench-{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"preset": output.preset, "measured": kind, "results": results},
                               indent=2))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
