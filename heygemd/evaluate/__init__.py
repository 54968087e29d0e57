"""Measured lip-sync quality of an engine (``heygemd eval``, bench/eval_quality.py).

Self-reenactment: a talking clip's first 60% is the template, its own last 40% of audio drives
it, and the real last 40% is the ground truth. Mouth opening (inner-lip gap / inter-ocular) is
measured by face analysis on the OUTPUT pixels and compared with the truth: Pearson r, the lag
that maximises it, the share of silent frames with closed lips, mouth sharpness against the
template and the truth, and the same r for a no-op baseline (template frames, audio ignored).
The sharpness ceiling is the template's own frames of the truth's openings against the truth:
where it is under the target, the held-out footage is sharper than any template mouth.
Dubbing: a template driven by another speech file; the coupling of the output's mouth opening
with the audio's loudness envelope. Coupling is a check against the no-op baseline, not a
target to maximise: the real speakers' own coupling (``truth_envelope_r`` of the
self-reenactment) is only -0.16 to 0.20 on the five shared clips.

What is measured on frames and series lives in :mod:`.metrics`, the contact-sheet PNGs in
:mod:`.sheet`, the scoring of one clip in :mod:`.score`, and the whole run (means, table, CLI
glue) in :mod:`.suite`.
"""

from __future__ import annotations

from heygemd.evaluate.metrics import (
    CLOSED_OPENING,
    MAX_LAG,
    Track,
    best_lag,
    finite_pearson,
    frames_from,
    measure,
    mouth_sharpness,
    planned_opening,
    silent_mask,
    template_sharpness,
)
from heygemd.evaluate.score import (
    TEMPLATE_SHARE,
    ClipScore,
    DubScore,
    dubbing,
    self_reenactment,
    write_template,
)
from heygemd.evaluate.sheet import SHEET_HEIGHT, SHEET_ROWS, contact_sheet
from heygemd.evaluate.suite import (
    add_cli_arguments,
    as_dicts,
    format_table,
    run,
    run_cli,
    summary,
)

__all__ = [
    "CLOSED_OPENING",
    "MAX_LAG",
    "SHEET_HEIGHT",
    "SHEET_ROWS",
    "TEMPLATE_SHARE",
    "ClipScore",
    "DubScore",
    "Track",
    "add_cli_arguments",
    "as_dicts",
    "best_lag",
    "contact_sheet",
    "dubbing",
    "finite_pearson",
    "format_table",
    "frames_from",
    "measure",
    "mouth_sharpness",
    "planned_opening",
    "run",
    "run_cli",
    "self_reenactment",
    "silent_mask",
    "summary",
    "template_sharpness",
    "write_template",
]
