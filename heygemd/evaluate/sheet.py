"""Contact sheets of a self-reenactment: a few sampled frames side by side (template | output |
truth, then the same three zoomed on the lower face), saved as one PNG per clip."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from heygemd.evaluate.metrics import Track, frames_from

if TYPE_CHECKING:
    from heygemd.engines.base import TemplateFacts

SHEET_ROWS = 6
SHEET_HEIGHT = 220  # pixels per contact-sheet tile


def sheet_indices(count: int) -> list[int]:
    """``SHEET_ROWS`` frame indices spread evenly over ``count`` frames (first and last kept)."""
    return [int(i) for i in np.linspace(0, count - 1, SHEET_ROWS).round()]


def face_box(points: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) around the lower face of landmarks (478, 3), 30% margin, in the frame."""
    from heygemd.engines.builtin import mesh

    contour = points[mesh.CONTOUR, :2]
    lo, hi = contour.min(axis=0), contour.max(axis=0)
    pad = (hi - lo) * 0.3
    x0, y0 = np.maximum(lo - pad, 0).astype(int)
    x1, y1 = np.minimum(hi + pad, [shape[1], shape[0]]).astype(int)
    return int(x0), int(y0), int(x1), int(y1)


def contact_sheet(rows: list[list[np.ndarray]], path: Path) -> None:
    """Save a PNG: one row per sampled frame, columns as given (template | output | truth, then
    the same three zoomed on the lower face)."""
    import cv2

    tiles = []
    for row in rows:
        scaled = [cv2.resize(im, (round(im.shape[1] * SHEET_HEIGHT / im.shape[0]), SHEET_HEIGHT),
                             interpolation=cv2.INTER_AREA) for im in row]
        tiles.append(np.concatenate(scaled, axis=1))
    width = max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0))) for t in tiles]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(tiles, axis=0), cv2.COLOR_RGB2BGR))


def write_sheet(
    path: Path, template: Path, analysis: TemplateFacts, base: np.ndarray, n: int,
    keep: set[int], out: Track, truth: Track,
) -> None:
    """Contact sheet for the kept output frames k < n: the template frame base[k] the output
    started from, the output, the truth, then the three cut to base[k]'s lower face."""
    bases: dict[int, np.ndarray] = {}
    for i, frame in enumerate(frames_from(template, 0, analysis.n_frames)):
        for k in keep:
            if k < n and base[k] == i:
                bases[k] = frame
    rows = []
    for k in sorted(keep):
        if k not in bases or k not in out.kept or k not in truth.kept:
            continue
        images = [bases[k], out.kept[k], truth.kept[k]]
        box = face_box(analysis.landmarks[base[k]], images[0].shape)
        rows.append(images + [im[box[1] : box[3], box[0] : box[2]] for im in images])
    contact_sheet(rows, path)
