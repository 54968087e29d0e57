"""The builtin engine on CUDA against the CPU: the same job, frame by frame, and the render time.

    python bench/compare_devices.py [--clips th08 th05] [--audio en01]

Not a test: it needs a GPU (run it where one is lent; CI has none). For each talking clip the
template is driven by one speech file (default en01) twice, once per device, with one template
cache, so both renders follow the same analysis and the same plan; only the warp and blend run
on another device. Reported per clip: frames, how many are identical to the bit, the largest
difference of one channel of one pixel (0-255), the share of channel values that differ, the
worst frame's PSNR, and the render's wall seconds on each device (a warm template: the analysis
was done once before, untimed). Writes bench/out/devices-<time>.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from heygemd.contract import AUDIO_RATE  # noqa: E402
from heygemd.engines.base import EngineContext, RenderRequest  # noqa: E402
from heygemd.engines.builtin.engine import BuiltinEngine  # noqa: E402
from heygemd.media.audio import load_audio  # noqa: E402
from heygemd.media.probe import probe  # noqa: E402
from heygemd.settings import Settings, load_settings  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"


def render_frames(engine: BuiltinEngine, request: RenderRequest) -> tuple[list[np.ndarray], float]:
    """Every output frame of ``request`` and the wall seconds the render took."""
    start = time.perf_counter()
    frames = list(engine.render(request, lambda fraction: None).frames)
    if engine.device == "cuda":
        torch.cuda.synchronize()
    return frames, time.perf_counter() - start


def compare(cpu: list[np.ndarray], gpu: list[np.ndarray]) -> dict[str, Any]:
    """How far the CUDA frames are from the CPU's: counts, worst difference and worst PSNR."""
    if len(cpu) != len(gpu):
        raise SystemExit(f"frame counts differ: cpu {len(cpu)}, cuda {len(gpu)}")
    identical, worst, differing, values, psnr = 0, 0, 0, 0, math.inf
    for a, b in zip(cpu, gpu, strict=True):
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        identical += int(not diff.any())
        worst = max(worst, int(diff.max()))
        differing += int(np.count_nonzero(diff))
        values += diff.size
        mse = float(np.mean(diff.astype(np.float64) ** 2))
        if mse > 0:
            psnr = min(psnr, 10 * math.log10(255**2 / mse))
    return {
        "frames": len(cpu), "frames_identical": identical, "max_abs_diff": worst,
        "share_of_values_differing": round(differing / max(values, 1), 6),
        "worst_frame_psnr_db": None if psnr == math.inf else round(psnr, 2),
    }


def engines(settings: Settings, cache: Path) -> dict[str, BuiltinEngine]:
    paths = settings.paths.model_copy(update={"cache": cache})
    made = {}
    for device in ("cpu", "cuda"):
        ctx = EngineContext.within(paths, options=settings.engine.builtin, faces=settings.faces,
                                   device=device)
        made[device] = BuiltinEngine(ctx)
        made[device].prepare()
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="*", default=["th08"], help="talking clip prefixes")
    parser.add_argument("--audio", default="en01", help="speech file prefix")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU visible: this comparison needs one")
    settings = load_settings(ROOT / "config.toml")
    speech = next(p for p in sorted((MEDIA / "speech").iterdir()) if p.name.startswith(args.audio))
    audio = load_audio(speech, rate=AUDIO_RATE)
    clips = [p for p in sorted((MEDIA / "talking").iterdir())
             if any(p.name.startswith(c) for c in args.clips)]
    results = []
    with tempfile.TemporaryDirectory(prefix="heygemd-devices-") as tmp:
        made = engines(settings, Path(tmp) / "cache")
        for clip in clips:
            info = probe(clip)
            assert info.video is not None
            request = RenderRequest(template=clip, info=info, audio=audio, fps=info.video.avg_fps)
            for engine in made.values():  # warm-up: the analysis (cached), CUDA's first kernels
                render_frames(engine, request)
            cpu, cpu_s = render_frames(made["cpu"], request)
            gpu, gpu_s = render_frames(made["cuda"], request)
            row = {"clip": clip.name, "audio": speech.name, **compare(cpu, gpu),
                   "render_cpu_s": round(cpu_s, 2), "render_cuda_s": round(gpu_s, 2)}
            print(json.dumps(row), flush=True)
            results.append(row)
        for engine in made.values():
            engine.close()
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"devices-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({
        "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(), "results": results,
    }, indent=2))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
