"""Train the speaker-independent mouth model that ships in the package, and write its card.

    python -m heygemd.learn [--media ../shared/media] [--config config.toml] [--out DIR]

Every clip of the media's talking/ and corpus/ folders is analysed by the builtin engine
(cached by content); the clips whose licence allows a shipped model (heygemd.learn.corpus)
train it; each trainable clip is also scored by a model trained without its speaker, and the
card records those figures. Deterministic: the same clips and code give the same file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from heygemd.engines.builtin.mouthmodel import MODEL_FILE
from heygemd.learn.card import write_card
from heygemd.learn.corpus import analysing_engine, corpus_clips, extract
from heygemd.learn.fit import FitOptions, fit, held_out_r

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "engines" / "builtin" / "models"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m heygemd.learn", description=__doc__)
    parser.add_argument("--media", type=Path,
                        default=Path(__file__).resolve().parents[3] / "shared" / "media")
    parser.add_argument("--config", type=Path, default=Path("config.toml"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    from heygemd.logs import configure_logging
    from heygemd.settings import LogSettings, load_settings

    settings = load_settings(args.config if args.config.is_file() else None)
    configure_logging(LogSettings(level="warning"), None)
    engine = analysing_engine(settings)
    try:
        clips = extract(corpus_clips(args.media), engine)
    finally:
        engine.close()
    options = FitOptions()
    pool = [c for c in clips if c.facts.trainable]
    if not pool:
        print(f"no clip under {args.media} may train a shipped model", file=sys.stderr)
        return 1
    model = fit(pool, options)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / MODEL_FILE)
    scores = {c.facts.name: held_out_r(c, fit([p for p in pool if p.facts.speaker
                                                    != c.facts.speaker], options))
              for c in clips}
    write_card(args.out / "MODEL_CARD.md", pool, options, scores)
    mean = float(np.nanmean(list(scores.values())))
    print(f"wrote {args.out / MODEL_FILE} ({len(pool)} clips); held-out frame r {mean:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
