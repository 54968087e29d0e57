"""Wav2Lip engine throughput: the generator alone at batch 1/16/64, and a whole job.

Not a test. Run: .venv/bin/python bench/bench_wav2lip.py [--device cpu|cuda] [--seconds 2]
Uses a randomly initialised generator (same cost as real weights) saved and loaded like an
operator's checkpoint, th08 from ../shared/media as the template and JFK speech as the audio.
Prints one JSON object with the device and the numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from heygemd.contract import AUDIO_RATE
from heygemd.engines.base import EngineContext, RenderRequest
from heygemd.engines.wav2lip.engine import Wav2LipEngine
from heygemd.engines.wav2lip.model import Wav2LipGenerator
from heygemd.media.audio import load_audio
from heygemd.media.probe import probe
from heygemd.settings import Settings

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
TEMPLATE = MEDIA / "talking" / "th08_woman_older_en_real3dportrait_May5s.mp4"
SPEECH = MEDIA / "speech" / "en01_male_jfk_inaugural_11s.flac"


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]  # fmt: skip
        model = names[0] if names else model
    return f"{model} ({torch.get_num_threads()} torch threads)"


def generator_fps(device: str, batch: int, repeats: int) -> float:
    model = Wav2LipGenerator().eval().to(device)
    dtype = torch.float16 if device == "cuda" else torch.float32
    model = model.to(dtype)
    mel = torch.randn(batch, 1, 80, 16, device=device, dtype=dtype)
    face = torch.rand(batch, 6, 96, 96, device=device, dtype=dtype)
    with torch.inference_mode():
        model(mel, face)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            model(mel, face)
        if device == "cuda":
            torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - start)


def job_fps(device: str, seconds: float, models: Path) -> dict[str, float]:
    torch.save(
        {"state_dict": Wav2LipGenerator().state_dict(), "optimizer": {}, "global_step": 0,
         "global_epoch": 0},
        models / "wav2lip_gan.pth", _use_new_zipfile_serialization=False,
    )  # fmt: skip
    settings = Settings()
    ctx = EngineContext.within(
        settings.paths.model_copy(update={"models": models}),
        options=settings.engine.wav2lip,
        faces=settings.faces,
        device=device,
    )
    engine = Wav2LipEngine(ctx)
    engine.prepare()
    audio = load_audio(SPEECH)[: int(seconds * AUDIO_RATE)]
    info = probe(TEMPLATE)
    request = RenderRequest(template=TEMPLATE, info=info, audio=audio, fps=info.video.avg_fps)
    start = time.perf_counter()
    rendering = engine.render(request, lambda fraction: None)
    count = sum(1 for _ in rendering.frames)
    elapsed = time.perf_counter() - start
    engine.close()
    return {"frames": count, "seconds": round(elapsed, 2), "fps": round(count / elapsed, 2),
            **rendering.metrics}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seconds", type=float, default=2.0, help="audio length of the job")
    parser.add_argument("--batches", default="1,16,64")
    args = parser.parse_args()
    result: dict[str, object] = {"device": device_name(args.device), "torch": torch.__version__}
    for batch in (int(b) for b in args.batches.split(",")):
        repeats = max(2, 256 // batch) if args.device == "cuda" else max(1, 32 // batch)
        result[f"generator_fps_batch{batch}"] = round(generator_fps(args.device, batch, repeats), 1)
    with tempfile.TemporaryDirectory() as tmp:
        result["job"] = job_fps(args.device, args.seconds, Path(tmp))
    print(json.dumps(result, indent=2))  # a benchmark script's output, not heygemd's


if __name__ == "__main__":
    main()
