"""Where the generator looks in each template frame: steady boxes on the speaker's face.

Pure functions over the speaker's per-frame observations (from heygemd.faces.track). Boxes
come from the 478 landmarks (steadier than detector boxes), are shaped like the face boxes
Wav2Lip was trained on (brow band to chin, ``chin_pad_px`` further below the chin), and are
smoothed over time without lag (a centred, NaN-aware Gaussian over each run of face frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from heygemd.faces import landmarks as lm
from heygemd.faces.types import FaceObservation

# The trained crops start around the brows: drop this share of the forehead-to-chin height.
TOP_TRIM = 0.15
BOX_SIGMA_FRAMES = 2.0  # temporal smoothing of boxes
POLYGON_SIGMA_FRAMES = 1.0  # lighter smoothing of the mask outline (it follows the jaw)


@dataclass(frozen=True)
class Framing:
    """Per template frame (N frames). NaN rows mean "no face: pass the frame through".

    boxes: float64 (N, 4) crop boxes x0, y0, x1, y1 in pixels, inside the frame.
    lower_face: float64 (N, K, 2) lower-face outline in pixels (lm.LOWER_FACE order).
    lips: float64 (N, L, 2) outer lip contour in pixels (lm.LIPS_OUTER order).
    """

    boxes: np.ndarray
    lower_face: np.ndarray
    lips: np.ndarray

    def has_face(self, index: int) -> bool:
        return bool(np.isfinite(self.boxes[index]).all())

    @property
    def frame_count(self) -> int:
        return len(self.boxes)


def face_box(landmarks: np.ndarray, chin_pad_px: float) -> np.ndarray:
    """Crop box (x0, y0, x1, y1) of one face from its (478, 3) landmarks in pixels: the face
    oval's width, from the brow band down to ``chin_pad_px`` below the chin."""
    oval = landmarks[lm.as_array(lm.FACE_OVAL), :2]
    x0, x1 = oval[:, 0].min(), oval[:, 0].max()
    top, chin = oval[:, 1].min(), oval[:, 1].max()
    return np.array([x0, top + TOP_TRIM * (chin - top), x1, chin + chin_pad_px])


def smooth_runs(values: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Centred Gaussian smoothing along axis 0 of float (N, ...) data; NaN rows (no face)
    neither contribute nor get filled, so runs of faces are smoothed separately at their ends."""
    if sigma_frames <= 0 or len(values) < 2:
        return values.astype(np.float64)
    flat = values.reshape(len(values), -1).astype(np.float64)
    valid = np.isfinite(flat).all(axis=1)
    radius = int(np.ceil(3 * sigma_frames))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
    filled = np.where(valid[:, None], flat, 0.0)
    total = np.zeros_like(flat)
    weight = np.zeros(len(flat))
    for offset, tap in zip(range(-radius, radius + 1), taps, strict=True):
        lo, hi = max(0, -offset), min(len(flat), len(flat) - offset)
        if hi <= lo:  # the kernel is longer than the sequence
            continue
        total[lo:hi] += tap * filled[lo + offset : hi + offset]
        weight[lo:hi] += tap * valid[lo + offset : hi + offset]
    out = total / np.maximum(weight, 1e-12)[:, None]
    out[~valid] = np.nan
    return out.reshape(values.shape)


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Boxes (N, 4) clipped to the frame; boxes left narrower than 2 px become NaN."""
    out = boxes.copy()
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    tiny = (out[:, 2] - out[:, 0] < 2) | (out[:, 3] - out[:, 1] < 2)
    out[tiny] = np.nan
    return out


def build_framing(
    faces: Sequence[FaceObservation | None], width: int, height: int, chin_pad_px: float
) -> Framing:
    """Smoothed crop boxes and mask outlines for frames of size width x height (pixels)."""
    count = len(faces)
    lower_idx, lips_idx = lm.as_array(lm.LOWER_FACE), lm.as_array(lm.LIPS_OUTER)
    boxes = np.full((count, 4), np.nan)
    lower = np.full((count, len(lower_idx), 2), np.nan)
    lips = np.full((count, len(lips_idx), 2), np.nan)
    for i, face in enumerate(faces):
        if face is None:
            continue
        boxes[i] = face_box(face.landmarks, chin_pad_px)
        lower[i] = face.landmarks[lower_idx, :2]
        lips[i] = face.landmarks[lips_idx, :2]
    boxes = clip_boxes(smooth_runs(boxes, BOX_SIGMA_FRAMES), width, height)
    return Framing(
        boxes=boxes,
        lower_face=smooth_runs(lower, POLYGON_SIGMA_FRAMES),
        lips=smooth_runs(lips, POLYGON_SIGMA_FRAMES),
    )


def pixel_box(box: np.ndarray) -> tuple[int, int, int, int]:
    """A float box rounded outwards to whole pixels (x0, y0, x1, y1)."""
    return (
        int(np.floor(box[0])), int(np.floor(box[1])), int(np.ceil(box[2])), int(np.ceil(box[3]))
    )


def to_crop(points: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Pixel points (..., 2) -> crop-normalised coordinates of ``box`` ((0,0) top-left, (1,1)
    bottom-right)."""
    x0, y0, x1, y1 = box
    return (points - np.array([x0, y0])) / np.array([x1 - x0, y1 - y0])


def ping_pong_index(output_index: int, template_frames: int) -> int:
    """Template frame shown at ``output_index`` when the template plays forward, backward,
    forward, ... (0, 1, ..., n-1, n-2, ..., 1, 0, 1, ...)."""
    if template_frames <= 1:
        return 0
    period = 2 * (template_frames - 1)
    phase = output_index % period
    return phase if phase < template_frames else period - phase
