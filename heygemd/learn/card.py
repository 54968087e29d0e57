"""The model card written beside the shipped mouth model: what it learned from (clips, sources,
licences, speakers, languages), how to train it again, and what it scored on speakers it never
heard."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from heygemd.engines.builtin.mouthmodel import MODEL_FILE
from heygemd.learn.corpus import ClipData
from heygemd.learn.fit import FitOptions


def card_text(pool: list[ClipData], options: FitOptions, scores: dict[str, float],
              digest: str) -> str:
    """The card's Markdown. pool: the training clips; scores: clip name -> held-out frame r
    (the clip's speaker left out of training)."""
    seconds = sum(len(c.opening) / c.fps for c in pool)
    lines = [
        "# Speaker-independent mouth model (`" + MODEL_FILE + "`)",
        "",
        "What a mouth does for a sound, learned from many speakers: per video frame, the mouth",
        "opening (inner-lip gap / inter-ocular distance, as a z-score over the speaker's own",
        "speech frames) from the per-utterance normalised log-mel of +-4 frames around it",
        *(["and the English phone decoder's viseme classes beside it (the log-mel carries it",
           "where the decoder hears nothing, as in Mandarin)."] if options.phones
          else ["(no phones)."]),
        "",
        "The builtin engine averages it with each template's own regression",
        "(heygemd/engines/builtin/planning.py).",
        "",
        f"- file: `{MODEL_FILE}`, blake2b-8 `{digest}`; numpy inference",
        f"- model: ridge regression, lambda {options.ridge:g}, "
        f"{'log-mel and phones' if options.phones else 'log-mel alone'}",
        f"- trained on {len(pool)} clips, {len(pool)} speakers, {seconds:.0f} s, "
        f"{sum(int(c.spoken.sum()) for c in pool)} spoken frames",
        "- trained again by: `python -m heygemd.learn` (from the checkout, `../shared/media` "
        "beside it); deterministic",
        "- only clips whose licence allows a shipped model: the licence cell of the media's "
        "MANIFEST.md opens with MIT, Apache-2.0 or CC-BY and does not restrict the footage "
        "(research-only terms, third-party parts excepted); heygemd/learn/corpus.py",
        "",
        "## Training clips",
        "",
        "| clip | speaker | language | licence | seconds | spoken frames |",
        "|---|---|---|---|---|---|",
    ]
    for c in pool:
        lines.append(f"| {c.facts.name} | {c.facts.speaker} | {c.facts.language} | "
                     f"{c.facts.licence} | {len(c.opening) / c.fps:.1f} | {int(c.spoken.sum())} |")
    lines += [
        "",
        "## Held-out frame r (each clip's speaker left out of training)",
        "",
        "Pearson r of the prediction against the clip's real opening over its spoken frames.",
        f"Mean over {len(scores)} clips: {np.nanmean(list(scores.values())):.3f}.",
        "",
        "| clip | r |",
        "|---|---|",
    ]
    lines += [f"| {name} | {r:.3f} |" for name, r in scores.items()]
    return "\n".join(lines) + "\n"


def write_card(path: Path, pool: list[ClipData], options: FitOptions,
               scores: dict[str, float]) -> None:
    digest = hashlib.blake2b((path.parent / MODEL_FILE).read_bytes(), digest_size=8).hexdigest()
    path.write_text(card_text(pool, options, scores, digest), encoding="utf-8")
