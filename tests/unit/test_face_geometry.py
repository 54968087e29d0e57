"""Pose, mouth measures, alignment and smoothing on synthetic landmark arrays."""

from __future__ import annotations

import numpy as np
import pytest

from heygemd.faces import landmarks as lm
from heygemd.faces.geometry import (
    OneEuroFilter,
    apply_transform,
    head_pose,
    interocular,
    mouth_opening,
    mouth_width,
    pose_matrix,
    similarity_transform,
    smooth_sequence,
)
from heygemd.faces.types import N_LANDMARKS

PX_PER_CM = 12.0  # a face with ~107 px between the outer eye corners
EYE_CM = 2 * 4.445859  # outer eye corners of the canonical face, centimetres apart


def canonical_face(rng: np.random.Generator) -> np.ndarray:
    """float64 (478, 3) head-frame points (image axes, pixels): canonical pose points + lips.

    Points head_pose does not fit are random, so the fit cannot lean on them.
    """
    points = rng.normal(0.0, 3.0, (N_LANDMARKS, 3))
    for index, xyz in lm.CANONICAL_POSE_POINTS.items():
        points[index] = xyz
    for up, lo in lm.INNER_LIP_PAIRS:
        points[up] = (0.0, 4.0, -5.5)
        points[lo] = (0.0, 4.0, -5.5)
    return points * PX_PER_CM


def place(points: np.ndarray, yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotate head-frame points by the pose and move them to (320, 240) in an image.

    The image x, y are an orthographic projection; z is replaced by noise, since head_pose must
    not read the mesh's predicted depth.
    """
    placed = points @ pose_matrix(yaw, pitch, roll).T + np.array([320.0, 240.0, 0.0])
    placed[:, 2] = np.random.default_rng(0).normal(0.0, 50.0, len(points))
    return placed


def project(points_cm: np.ndarray, yaw: float, pitch: float, at_cm: np.ndarray) -> np.ndarray:
    """Pinhole image (focal 640 px, principal point (320, 240)) of the posed head at at_cm.

    points_cm: float (N, 3) head-frame points in centimetres; at_cm: the head origin in camera
    coordinates (x right, y down, z forward). Returns (N, 3) pixels with z = 0.
    """
    cam = points_cm @ pose_matrix(yaw, pitch, 0.0).T + at_cm
    out = np.zeros_like(points_cm)
    out[:, :2] = 640.0 * cam[:, :2] / cam[:, 2:] + np.array([320.0, 240.0])
    return out


@pytest.mark.parametrize(
    "yaw, pitch, roll",
    [(0, 0, 0), (25, 0, 0), (-40, 0, 0), (0, 20, 0), (0, -15, 0), (0, 0, 12), (30, -10, 8),
     (-15, 18, -20), (60, 5, -5)],
)  # fmt: skip
def test_head_pose_recovers_known_rotation(yaw: float, pitch: float, roll: float) -> None:
    face = place(canonical_face(np.random.default_rng(1)), yaw, pitch, roll)
    got = head_pose(face.astype(np.float32))
    assert got == pytest.approx((yaw, pitch, roll), abs=2.0)


@pytest.mark.parametrize("yaw, pitch", [(31, 0), (-31, 8), (45, -10)])
def test_head_pose_fits_a_perspective_image(yaw: float, pitch: float) -> None:
    # 1.5 m from the camera and 45 cm right of its axis, the turn relative to the line of sight
    # (the pose plus the ray's own angle) reads within 2 degrees.
    face = canonical_face(np.random.default_rng(7)) / PX_PER_CM
    ray = float(np.degrees(np.arctan2(45.0, 150.0)))
    got = head_pose(project(face, yaw, pitch, np.array([45.0, 0.0, 150.0])))
    assert got == pytest.approx((yaw + ray, pitch, 0.0), abs=2.0)
    # Nearer the camera, perspective enlarges the nose: the turn reads larger, never smaller.
    near = head_pose(project(face, yaw, pitch, np.array([0.0, 0.0, 50.0])))
    assert abs(yaw) + 1.0 < abs(near[0]) < abs(yaw) + 6.0


def test_head_pose_ignores_predicted_depth() -> None:
    face = place(canonical_face(np.random.default_rng(8)), 35, -5, 3)
    flattened = face.copy()
    flattened[:, 2] *= 0.0
    assert head_pose(face) == pytest.approx(head_pose(flattened), abs=1e-9)
    assert head_pose(face)[0] == pytest.approx(35, abs=0.5)


def test_head_pose_of_degenerate_points_is_nan() -> None:
    assert all(np.isnan(head_pose(np.zeros((N_LANDMARKS, 3)))))
    assert all(np.isnan(head_pose(np.full((N_LANDMARKS, 3), np.nan))))


def test_head_pose_signs_follow_the_image() -> None:
    base = canonical_face(np.random.default_rng(2))
    turned = place(base, 30, 0, 0)
    # Nose tip ahead of the face moves to the image's right when yaw > 0.
    assert turned[lm.NOSE_TIP, 0] > 320 + 20
    assert head_pose(turned)[0] > 25
    tilted = place(base, 0, 0, 15)
    # Clockwise in the image (y down): the subject's left eye (image right) sinks.
    assert tilted[lm.LEFT_EYE_OUTER, 1] > tilted[lm.RIGHT_EYE_OUTER, 1]
    assert head_pose(tilted)[2] > 10
    down = place(base, 0, 20, 0)
    # Looking down: the nose tip, ahead of the face, drops towards the mouth.
    assert down[lm.NOSE_TIP, 1] > place(base, 0, 0, 0)[lm.NOSE_TIP, 1]
    assert head_pose(down)[1] > 15


def test_head_pose_noise_is_tolerated() -> None:
    rng = np.random.default_rng(3)
    face = place(canonical_face(rng), 20, -8, 5) + rng.normal(0, 0.5, (N_LANDMARKS, 3))
    assert head_pose(face) == pytest.approx((20, -8, 5), abs=2.0)


def test_mouth_measures_scale_free() -> None:
    face = canonical_face(np.random.default_rng(4))
    closed = place(face, 0, 0, 0)
    assert mouth_opening(closed) == pytest.approx(0.0, abs=1e-9)
    opened = face.copy()
    for _, lo in lm.INNER_LIP_PAIRS:
        opened[lo, 1] += 0.3 * interocular(closed)  # gap = 0.3 inter-ocular distances
    assert mouth_opening(place(opened, 0, 0, 0)) == pytest.approx(0.3, rel=1e-6)
    assert mouth_opening(place(opened * 2.5, 0, 0, 0)) == pytest.approx(0.3, rel=1e-6)
    assert interocular(closed) == pytest.approx(EYE_CM * PX_PER_CM, rel=1e-6)
    assert mouth_width(closed) == pytest.approx(2 * 2.456206 / EYE_CM, rel=1e-6)


def test_similarity_transform_recovers_and_fits() -> None:
    rng = np.random.default_rng(5)
    src = rng.uniform(0, 200, (30, 2))
    angle, scale, shift = np.radians(17.0), 1.7, np.array([40.0, -12.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift
    matrix = similarity_transform(src, dst)
    assert matrix.shape == (2, 3)
    np.testing.assert_allclose(matrix[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-7)
    noisy = dst + rng.normal(0, 1.0, dst.shape)
    fitted = apply_transform(similarity_transform(src, noisy), src)
    assert np.sqrt(((fitted - noisy) ** 2).sum(axis=1).mean()) < 1.6


def test_similarity_transform_rejects_degenerate_input() -> None:
    with pytest.raises(ValueError):
        similarity_transform(np.ones((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError):
        similarity_transform(np.zeros((5, 2)), np.zeros((4, 2)))


def test_one_euro_quiets_a_static_noisy_point() -> None:
    rng = np.random.default_rng(6)
    scale = 90.0  # inter-ocular distance in pixels
    noisy = 100.0 + rng.normal(0, 0.6, (300, 2))
    out = smooth_sequence(noisy, fps=25.0, scale=scale)
    assert out[20:].std(axis=0).max() < 0.6 * noisy[20:].std(axis=0).min()


@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_one_euro_follows_a_step_within_two_frames(fps: float) -> None:
    scale = 90.0
    step = 10.0  # a mouth snapping open by 11% of the inter-ocular distance
    signal = np.r_[np.zeros(40), np.full(10, step)]
    out = smooth_sequence(signal, fps=fps, scale=scale)
    assert out[40] > 0.6 * step
    assert out[41] > 0.85 * step


def test_one_euro_passes_nan_and_restarts() -> None:
    filt = OneEuroFilter(25.0, scale=50.0)
    assert filt(np.array([1.0]))[0] == 1.0
    assert np.isnan(filt(np.array([np.nan]))[0])
    assert filt(np.array([7.0]))[0] == pytest.approx(7.0)  # back after a gap: no lag


def test_umeyama_recovers_a_known_3d_similarity() -> None:
    from heygemd.faces.geometry import pose_matrix, umeyama

    rng = np.random.default_rng(3)
    src = rng.normal(size=(30, 3)) * 50
    rot = pose_matrix(20.0, -10.0, 5.0)
    dst = 1.7 * src @ rot.T + np.array([3.0, -4.0, 9.0])
    scale, fitted, shift = umeyama(src, dst)
    assert scale == pytest.approx(1.7, rel=1e-9)
    assert np.allclose(fitted, rot, atol=1e-9)
    assert np.allclose(shift, [3.0, -4.0, 9.0], atol=1e-6)
