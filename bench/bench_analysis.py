"""A cold template analysis in one pass and in segments at once (issue 15: face analysis
spread over a server's cores), and whether the segments found exactly what one pass finds.

    .venv/bin/python bench/bench_analysis.py [--workers 1 2 4 8] [CLIP ...]

For each clip (default: th10, 1080x1920 HEVC with keyframes 250 frames apart, and the
corpus's c01, 1280x720 H.264 with a keyframe every 10 s) and each count of face workers, the
builtin engine analyses the template anew (empty cache; its own sound heard anew), as a cold job
does, without the frame pass beside it: wall seconds, the process's CPU seconds (the hearing
worker's not counted), the segments' starts and which were handed over, and whether every
array and crop equals the one-pass analysis's. The machine (cores) is in the output,
bench/out/bench-analysis-<time>.json. The engine picks one worker per two cores
(engine.face_workers); this measures the others too.
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
DEFAULT_CLIPS = ["talking/th10_man_standing_portrait1080x1920_latentsync_demo2.mp4",
                 "corpus/c01_en_hdtf_WDA_TedLieu_edtalk.mp4"]


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
    from heygemd.engines.builtin.engine import BuiltinEngine, face_workers
    from heygemd.settings import Settings

    settings = Settings()
    result: dict[str, Any] = {"cores": len(os.sched_getaffinity(0)),
                              "engine_picks": face_workers(), "clips": []}
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
                    print(f"{clip.name[:40]:40s} {json.dumps(run)}", file=sys.stderr)
                result["clips"].append({"clip": name, "frames": int(analysis.n_frames),
                                        "runs": rows})
        finally:
            engine.close()
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-analysis-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
