"""The builtin engine's work spread over a machine's cores (issue 15: the CPU parts of a GPU
server's job), and whether it gives exactly what one thread gives.

    .venv/bin/python bench/bench_cores.py [--workers 1 2 4 8] [CLIP ...]

For each clip (default: th10, 1080x1920 HEVC with keyframes 250 frames apart, and the
corpus's c01, 1280x720 H.264 with a keyframe every 10 s) and each count of workers:

- analysis: the template analysed anew (empty cache; its own sound heard anew) in that many
  segments at once, as a cold job does, without the frame pass beside it: wall seconds, the
  process's CPU seconds (the hearing worker's not counted), the segments' starts and which
  were handed over, and whether every array and crop equals the one-pass analysis's;
- render: the clip driven by en01 (11 s), its analysis cached and the audio heard, the frames
  made with that many transplant threads and taken without encoding: wall and CPU seconds,
  and whether every frame equals the one-thread render's;

and once, hearing: a minute of speech (en02) cut into its pieces (phones.piece_cuts), their
phones decoded one after another and by that many decoding processes at once (decoders.py):
wall seconds, and whether the phones are the same.

The engine picks one face worker per two cores (engine.face_workers), one transplant thread
per four (engine.transplant_workers) and, from 8 cores, one decoding process per four (at most
4, phones.phone_workers); this measures the others too. The machine (cores) is in
the output, bench/out/bench-cores-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from structlog.testing import capture_logs

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
SPEECH = "speech/en02_male_news_commentary_60s_musetalk_eng.wav"  # a minute of speech
DEFAULT_CLIPS = ["talking/th10_man_standing_portrait1080x1920_latentsync_demo2.mp4",
                 "corpus/c01_en_hdtf_WDA_TedLieu_edtalk.mp4"]


def heard_phones(track: Path, counts: list[int]) -> list[dict[str, Any]]:
    """A minute of speech's phones, its pieces decoded one after another (1) and by that many
    decoding processes at once: wall seconds (the processes started beforehand, as the hearing
    worker starts them) and whether the phones equal the one-after-another ones."""
    from heygemd.engines.builtin import audio_features as af
    from heygemd.engines.builtin import phones
    from heygemd.media.audio import load_audio

    audio = load_audio(track)
    voice = af.VoiceDetector()
    voice.load()
    count = int(len(audio) / 16000 * 25)
    speech = voice.speech_mask(audio, 25.0, count, af.loudness_db(audio, 25.0, count))
    cuts = phones.piece_cuts(speech, 25.0, len(audio))
    rows, first = [], None
    for workers in counts:
        recognizer = phones.PhoneRecognizer()
        recognizer.start_workers(workers)
        try:
            wall = time.monotonic()
            found = recognizer.segments(audio, cuts)
            row = {"processes": workers if workers >= 2 else 0, "pieces": len(cuts) + 1,
                   "wall_s": round(time.monotonic() - wall, 2)}
        finally:
            recognizer.close()
        first = found if first is None else first
        row["same_as_first"] = found == first
        rows.append(row)
        print(f"{track.name[:40]:40s} phones {json.dumps(row)}", file=sys.stderr)
    return rows


def analysed(engine: Any, clip: Path, cache_root: Path, workers: int) -> dict[str, Any]:
    """One cold analysis of ``clip`` with ``workers``: its figures and the analysis."""
    from heygemd.cache import AnalysisCache
    from heygemd.engines.builtin.analysis import analyse_template

    engine.forget_heard()
    wall, cpu = time.monotonic(), time.process_time()
    with capture_logs() as logs:
        analysis, _, _ = analyse_template(
            clip, engine._analyzer, engine._hearing, AnalysisCache(cache_root / str(workers)),
            engine.cfg.analysis_scale, lambda f: None, spawn=engine._new_analyzer,
            workers=workers)
    segments = next((e for e in logs if e["event"] == "template.segments"), {})
    return {"workers": workers, "wall_s": round(time.monotonic() - wall, 2),
            "cpu_s": round(time.process_time() - cpu, 2),
            "starts": segments.get("starts", [0]), "taken": segments.get("taken", []),
            "analysis": analysis}


def rendered(engine: Any, clip: Path, workers: int) -> tuple[dict[str, Any], list[Any]]:
    """The render of ``clip`` driven by en01 with ``workers`` transplant threads, untimed once
    (analysis and hearing), then timed: its figures and frames."""
    from heygemd.contract import AUDIO_RATE
    from heygemd.engines.base import RenderRequest
    from heygemd.media.audio import load_audio
    from heygemd.media.probe import probe

    audio = load_audio(MEDIA / "speech" / "en01_male_jfk_inaugural_11s.flac", rate=AUDIO_RATE)
    info = probe(clip)
    assert info.video is not None
    request = RenderRequest(template=clip, info=info, audio=audio, fps=info.video.avg_fps)
    engine.transplant_workers = workers
    for _ in engine.render(request, lambda f: None).frames:  # analysed and heard: cached
        pass
    wall, cpu = time.monotonic(), time.process_time()
    frames = list(engine.render(request, lambda f: None).frames)
    return {"workers": workers, "wall_s": round(time.monotonic() - wall, 2),
            "cpu_s": round(time.process_time() - cpu, 2), "frames": len(frames)}, frames


def same(a: Any, b: Any) -> bool:
    arrays = all(np.array_equal(x, b.arrays()[name], equal_nan=True)
                 for name, x in a.arrays().items())
    return arrays and np.array_equal(np.asarray(a.crops), np.asarray(b.crops))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clips", nargs="*", default=DEFAULT_CLIPS,
                        help="paths under ../shared/media")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2, 4, 8])
    args = parser.parse_args()
    from heygemd.engines.base import EngineContext
    from heygemd.engines.builtin.engine import (
        BuiltinEngine,
        face_workers,
        transplant_workers,
    )
    from heygemd.settings import Settings

    settings = Settings()
    result: dict[str, Any] = {"cores": len(os.sched_getaffinity(0)),
                              "engine_picks": {"face_workers": face_workers(),
                                               "transplant_workers": transplant_workers()},
                              "clips": []}
    with tempfile.TemporaryDirectory(prefix="heygemd-analysis-") as tmp_name:
        tmp = Path(tmp_name)
        ctx = EngineContext.within(settings.paths.model_copy(update={"cache": tmp / "c"}),
                                   options=settings.engine.builtin, faces=settings.faces,
                                   device="cpu")
        engine = BuiltinEngine(ctx)
        engine.prepare()
        try:
            for name in args.clips:
                clip = MEDIA / name
                runs = [analysed(engine, clip, tmp / clip.stem, w) for w in args.workers]
                one = next(r["analysis"] for r in runs if r["workers"] == 1) \
                    if 1 in args.workers else None
                rows = []
                for run in runs:
                    analysis = run.pop("analysis")
                    run["same_as_one_pass"] = same(one, analysis) if one is not None else None
                    rows.append(run)
                    print(f"{clip.name[:40]:40s} analysis {json.dumps(run)}", file=sys.stderr)
                renders, first = [], None
                for workers in args.workers:
                    row, frames = rendered(engine, clip, workers)
                    first = frames if first is None else first
                    row["same_as_first"] = len(frames) == len(first) and all(
                        np.array_equal(a, b) for a, b in zip(frames, first, strict=True))
                    del frames
                    renders.append(row)
                    print(f"{clip.name[:40]:40s} render {json.dumps(row)}", file=sys.stderr)
                result["clips"].append({"clip": name, "frames": int(analysis.n_frames),
                                        "analysis": rows, "render": renders})
        finally:
            engine.close()
    result["hearing"] = heard_phones(MEDIA / SPEECH, args.workers)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-cores-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
