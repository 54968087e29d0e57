"""Time the validation of every real clip (examine_video) and print a table.

Run: .venv/bin/python bench/bench_validate.py [--media ../shared/media] [--repeat 1]

The face analyzer is built once (as the daemon does) and not counted. Columns: the clip, its
size and length, frames examined, the verdict with finding codes, and wall seconds (best of
--repeat runs). The 20 s 1080x1920 HEVC clip (th10) is the one to watch: "a few seconds".
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import structlog

from heygemd.faces.analyze import FaceAnalyzer
from heygemd.settings import Settings
from heygemd.validation import examine, rules

ROOT = Path(__file__).resolve().parents[1]


def verdict(exam: examine.VideoExamination) -> str:
    if exam.info is None or rules.refusals(exam.findings):
        return "REFUSED " + ",".join(f.code for f in rules.refusals(exam.findings))
    codes = ",".join(f.code for f in exam.findings)
    return f"ACCEPTED {codes}".strip()


def bench(media: Path, repeat: int) -> list[tuple[str, ...]]:
    settings = Settings()
    clips = sorted((media / "talking").iterdir()) + sorted((media / "reject").iterdir())
    rows = []
    with FaceAnalyzer(settings.faces) as analyzer, tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            best = float("inf")
            for _ in range(repeat):
                t0 = time.perf_counter()
                exam = examine.examine_video(
                    clip, analyzer, settings.validation, settings.limits, Path(tmp)
                )
                best = min(best, time.perf_counter() - t0)
            v = exam.info.video if exam.info else None
            size = f"{v.width}x{v.height} {v.codec}" if v else "-"
            seconds = f"{exam.info.duration:.1f}" if exam.info else "-"
            rows.append(
                (clip.name[:40], size, seconds, exam.frames_examined, verdict(exam), f"{best:.2f}")
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    rows = bench(args.media, args.repeat)
    header = ("clip", "size", "s", "samples", "verdict", "wall s")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
