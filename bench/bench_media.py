"""Time the media layer on the real talking clips: decode to RGB and encode H.264 + AAC.

Run: .venv/bin/python bench/bench_media.py [--media ../shared/media] [--preset medium]

Prints one row per clip: frames, decode fps (PyAV decode + RGB conversion, audio load
included), encode fps (libx264 + AAC at the configured CRF/preset, flush included) and total
seconds of ``bench.baseline.plain_decode_encode`` (the reference engine benchmarks divide by).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: make `bench` importable

from bench.baseline import measure_decode_encode  # noqa: E402
from heygemd.media.probe import probe  # noqa: E402
from heygemd.settings import OutputSettings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    parser.add_argument("--preset", default=OutputSettings().preset)
    parser.add_argument("--crf", type=int, default=OutputSettings().crf)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    settings = OutputSettings(preset=args.preset, crf=args.crf)
    clips = sorted((args.media / "talking").iterdir())
    header = f"{'clip':<58} {'size':>10} {'frames':>6} {'dec fps':>8} {'enc fps':>8} {'seconds':>8}"
    print(f"preset={settings.preset} crf={settings.crf} aac={settings.audio_bitrate_kbps}k")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            info = probe(clip)
            size = f"{info.video.width}x{info.video.height}" if info.video else "-"
            timing = measure_decode_encode(clip, Path(tmp) / "out.mp4", settings)
            print(
                f"{clip.name:<58} {size:>10} {timing.frames:>6} {timing.decode_fps:>8.1f} "
                f"{timing.encode_fps:>8.1f} {timing.total_s:>8.2f}"
            )


if __name__ == "__main__":
    main()
