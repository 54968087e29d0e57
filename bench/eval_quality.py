"""Lip-sync quality of the configured engine on the shared real clips (issue 4 targets).

    .venv/bin/python bench/eval_quality.py [--clips th08 th05] [--dub-seconds 6] [--no-dub]

Writes bench/out/eval-<time>.json and a contact sheet PNG per clip (template | output | truth).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from heygemd import evaluate
from heygemd.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", nargs="*", default=[], help="name prefixes (default: all)")
    parser.add_argument("--speech", nargs="*", default=[], help="name prefixes (default: all)")
    parser.add_argument("--dub-seconds", type=float, default=6.0)
    parser.add_argument("--no-dub", action="store_true")
    parser.add_argument("--config", type=Path, default=ROOT / "config.toml")
    args = parser.parse_args()
    out = ROOT / "bench" / "out"
    settings = load_settings(args.config)
    settings = settings.model_copy(
        update={"paths": settings.paths.model_copy(update={"cache": out / "cache"})}
    )
    clips = [p for p in sorted((MEDIA / "talking").iterdir())
             if not args.clips or any(p.name.startswith(c) for c in args.clips)]
    speech = [] if args.no_dub else [
        p for p in sorted((MEDIA / "speech").iterdir())
        if not args.speech or any(p.name.startswith(s) for s in args.speech)
    ]
    result = evaluate.run(settings, clips, speech, out, args.dub_seconds)
    path = out / f"eval-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(evaluate.format_table(result))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
