"""Framing: speaker following, crop boxes from landmarks, lag-free smoothing, ping-pong order."""

from __future__ import annotations

import numpy as np
import pytest

from heygemd.engines.wav2lip.framing import (
    build_framing,
    clip_boxes,
    face_box,
    ping_pong_index,
    pixel_box,
    smooth_runs,
    to_crop,
)
from heygemd.faces import landmarks as lm
from heygemd.faces.types import N_LANDMARKS, FaceObservation


def synthetic_face(index: int, cx: float, cy: float, size: float) -> FaceObservation:
    """A face whose landmarks lie on an ellipse; the forehead on top, the chin at the bottom."""
    points = np.zeros((N_LANDMARKS, 3), dtype=np.float32)
    angles = np.linspace(0, 2 * np.pi, N_LANDMARKS, endpoint=False)
    points[:, 0] = cx + 0.4 * size * np.cos(angles)
    points[:, 1] = cy + 0.5 * size * np.sin(angles)
    points[lm.FOREHEAD_TOP, :2] = (cx, cy - 0.5 * size)
    points[lm.CHIN, :2] = (cx, cy + 0.5 * size)
    box = (cx - 0.4 * size, cy - 0.5 * size, cx + 0.4 * size, cy + 0.5 * size)
    return FaceObservation(index, box, 0.9, points, 0.0, 0.0, 0.0)


def test_ping_pong_order() -> None:
    assert [ping_pong_index(i, 4) for i in range(10)] == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert [ping_pong_index(i, 1) for i in range(3)] == [0, 0, 0]
    assert [ping_pong_index(i, 2) for i in range(4)] == [0, 1, 0, 1]


def test_face_box_is_chin_padded_and_trims_the_forehead() -> None:
    face = synthetic_face(0, 200, 200, 100)
    x0, y0, x1, y1 = face_box(face.landmarks, chin_pad_px=10)
    assert y1 == pytest.approx(260.0)  # chin at 250 + 10
    assert y0 == pytest.approx(150 + 0.15 * 100)
    assert x0 < 200 < x1


def test_smoothing_has_no_lag_and_keeps_gaps() -> None:
    t = np.arange(40, dtype=np.float64)
    ramp = np.stack([t, t], axis=1)
    ramp[20] = np.nan
    smooth = smooth_runs(ramp, 2.0)
    assert np.isnan(smooth[20]).all()
    assert np.allclose(smooth[8:13, 0], t[8:13], atol=1e-9)  # a straight line is kept exactly
    noisy = ramp[:19] + np.random.default_rng(0).normal(0, 1, (19, 2))
    assert np.std(smooth_runs(noisy, 2.0)[3:-3] - ramp[3:16]) < np.std(noisy - ramp[:19])


def test_clip_boxes() -> None:
    boxes = np.array([[-5.0, 10, 50, 120], [90, 90, 91, 95]])
    clipped = clip_boxes(boxes, 100, 100)
    assert clipped[0].tolist() == [0, 10, 50, 100]
    assert np.isnan(clipped[1]).all()


def test_build_framing_marks_frames_without_a_face() -> None:
    faces = [synthetic_face(i, 200 + i, 200, 100) for i in range(5)]
    framing = build_framing([faces[0], faces[1], None, faces[3], faces[4]], 400, 400, 10)
    assert framing.frame_count == 5
    assert [framing.has_face(i) for i in range(5)] == [True, True, False, True, True]
    assert framing.lower_face.shape == (5, len(lm.LOWER_FACE), 2)
    assert framing.lips.shape == (5, len(lm.LIPS_OUTER), 2)


def test_pixel_box_and_crop_coordinates() -> None:
    box = pixel_box(np.array([10.2, 20.7, 50.1, 80.0]))
    assert box == (10, 20, 51, 80)
    corners = to_crop(np.array([[10.0, 20.0], [51.0, 80.0]]), box)
    assert np.allclose(corners, [[0, 0], [1, 1]])
