"""Share of frames where the builtin engine's template analysis sees a face, per real clip.

Run: nice -n 10 .venv/bin/python bench/face_coverage.py [--media ../shared/media] [CLIP ...]

Every frame of every clip in talking/ and corpus/ (or the clips named: file name prefixes such
as c06 th08) goes through the engine's own face pass (analysis.face_pass: the frames shrunk by
analysis_scale, one tracking FaceAnalyzer, the gaps bridged), as a new template would. Columns:
frames, face (share of frames with landmarks), bridged (share filled in from both sides), usable
(face found and not turned: the frames a mouth is rendered on), mouth (usable with a measurable
mouth opening: the frames a mouth can be taken from), wall frames/s of the face pass alone
(decoding not counted; on a shared machine it says little: compare CPU time or model runs), and
the frames lost (ranges of frame indices with no face). Not part of `make bench`: all 51 clips
take 3-4 minutes on two free cores.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import structlog

from heygemd.engines.builtin import analysis
from heygemd.faces.analyze import FaceAnalyzer
from heygemd.media.video import VideoReader
from heygemd.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def ranges(indices: np.ndarray) -> str:
    """'3-7,12' for [3, 4, 5, 6, 7, 12]; at most 8 ranges, then the count of the rest."""
    if len(indices) == 0:
        return ""
    runs: list[list[int]] = [[int(indices[0]), int(indices[0])]]
    for i in indices[1:]:
        if i == runs[-1][1] + 1:
            runs[-1][1] = int(i)
        else:
            runs.append([int(i), int(i)])
    text = [f"{a}-{b}" if b > a else f"{a}" for a, b in runs[:8]]
    if len(runs) > 8:
        text.append(f"+{len(runs) - 8} more runs")
    return ",".join(text)


def small_frames(path: Path, scale: float) -> tuple[list[np.ndarray], float]:
    with VideoReader(path) as reader:
        size = (max(2, round(reader.width * scale)), max(2, round(reader.height * scale)))
        frames = [frame if scale == 1.0 else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
                  for frame in reader]
        return frames, reader.fps


def measure(path: Path, analyzer: FaceAnalyzer, scale: float) -> dict[str, object]:
    frames, fps = small_frames(path, scale)
    analyzer.reset()
    t0 = time.perf_counter()
    faces = analysis.face_pass(frames, analyzer, scale, fps)
    elapsed = time.perf_counter() - t0
    found = ~np.isnan(faces.landmarks).any(axis=(1, 2))
    usable = analysis.usable_mask(faces.landmarks, faces.pose)
    opening = analysis.openings(faces.landmarks, usable & ~faces.bridged)
    n = len(frames)
    return {
        "clip": path.name[:34], "frames": n, "face": found.mean(),
        "bridged": faces.bridged.mean(), "usable": usable.mean(),
        "mouth": (usable & np.isfinite(opening)).mean(), "fps": n / elapsed,
        "lost": ranges(np.flatnonzero(~found)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    parser.add_argument("clips", nargs="*",
                        help="file name prefixes or video files (default: all)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    settings = Settings()
    scale = settings.engine.builtin.analysis_scale
    paths = sorted((args.media / "talking").glob("*.mp4")) + sorted(
        (args.media / "corpus").glob("*.mp4"))
    if args.clips:
        paths = [Path(c) for c in args.clips if Path(c).is_file()] + [
            p for p in paths if any(p.name.startswith(c) for c in args.clips)]
    print(f"{'clip':34} {'frames':>6} {'face':>7} {'bridged':>7} {'usable':>7} {'mouth':>7} "
          f"{'fps':>6}  lost frames")
    with FaceAnalyzer(settings.faces, tracking=True) as analyzer:
        for path in paths:
            row = measure(path, analyzer, scale)
            print(f"{row['clip']:34} {row['frames']:6d} {row['face']:7.1%} {row['bridged']:7.1%} "
                  f"{row['usable']:7.1%} {row['mouth']:7.1%} {row['fps']:6.1f}  {row['lost']}",
                  flush=True)


if __name__ == "__main__":
    main()
