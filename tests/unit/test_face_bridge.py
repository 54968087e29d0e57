"""Gaps in a face track filled from both sides (faces.bridge), on synthetic landmark sequences."""

from __future__ import annotations

import numpy as np

from heygemd.faces import landmarks as lm
from heygemd.faces.bridge import (
    GapBridge,
    bridge_gaps,
    faces_agree,
    max_gap_frames,
)
from heygemd.faces.types import N_LANDMARKS


def face_at(x: float, y: float, size: float = 100.0, seed: int = 0) -> np.ndarray:
    """(478, 3) landmarks: a fixed random layout in a box of ``size`` at (x, y), the eye
    corners placed so that the inter-ocular distance is 0.4 of the size."""
    rng = np.random.default_rng(seed)
    marks = np.zeros((N_LANDMARKS, 3), np.float32)
    marks[:, :2] = rng.uniform(-0.5, 0.5, (N_LANDMARKS, 2)) * size + (x, y)
    marks[lm.RIGHT_EYE_OUTER, :2] = (x - 0.2 * size, y - 0.1 * size)
    marks[lm.LEFT_EYE_OUTER, :2] = (x + 0.2 * size, y - 0.1 * size)
    return marks


def sequence(xs: list[float | None]) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (N, 478, 3) (NaN where xs is None) of one face moving along x; pose = (x, 0, 0)."""
    points = np.full((len(xs), N_LANDMARKS, 3), np.nan, np.float32)
    pose = np.full((len(xs), 3), np.nan, np.float32)
    for i, x in enumerate(xs):
        if x is not None:
            points[i] = face_at(x, 200.0)
            pose[i] = (x / 10, 0.0, 0.0)
    return points, pose


def test_a_short_gap_is_filled_linearly_and_marked() -> None:
    xs: list[float | None] = [100, 102, None, None, None, 110, 112]
    points, pose = sequence(xs)
    filled, poses, bridged = bridge_gaps(points, pose, max_gap=5)
    assert bridged.tolist() == [False, False, True, True, True, False, False]
    assert not np.isnan(filled).any()
    truth, truth_pose = sequence([100, 102, 104, 106, 108, 110, 112])
    np.testing.assert_allclose(filled, truth, atol=1e-3)
    np.testing.assert_allclose(poses[:, 0], truth_pose[:, 0], atol=1e-4)
    # measured frames pass through untouched
    np.testing.assert_array_equal(filled[[0, 1, 5, 6]], points[[0, 1, 5, 6]])


def test_a_gap_longer_than_allowed_stays_empty() -> None:
    points, pose = sequence([100, None, None, None, 106, None, None, 109])
    filled, _, bridged = bridge_gaps(points, pose, max_gap=2)
    found = ~np.isnan(filled).any(axis=(1, 2))
    assert found.tolist() == [True, False, False, False, True, True, True, True]
    assert bridged.tolist() == [False] * 5 + [True, True, False]


def test_gaps_open_at_either_end_are_not_filled() -> None:
    points, pose = sequence([None, None, 100, 101, None])
    filled, _, bridged = bridge_gaps(points, pose, max_gap=5)
    assert (~np.isnan(filled).any(axis=(1, 2))).tolist() == [False, False, True, True, False]
    assert not bridged.any()


def test_a_jump_across_the_gap_is_not_bridged() -> None:
    # a cut: the face reappears half a frame away
    points, pose = sequence([100, None, None, 400])
    filled, _, bridged = bridge_gaps(points, pose, max_gap=5)
    assert not bridged.any()
    assert np.isnan(filled[1:3]).all()


def test_faces_agree_on_motion_but_not_on_size_or_place() -> None:
    a = face_at(100, 100)
    assert faces_agree(a, face_at(110, 104))  # 10 px of a 40 px inter-ocular distance
    assert not faces_agree(a, face_at(130, 100))  # 0.75 inter-ocular away
    assert not faces_agree(a, face_at(100, 100, size=140))  # 1.4x the size
    assert not faces_agree(a, np.full_like(a, np.nan))


def test_stream_holds_the_open_gap_and_gives_every_frame_back_in_order() -> None:
    points, pose = sequence([100, None, None, 103, None])
    bridge = GapBridge(max_gap=3)
    out = []
    held = []
    for p, q in zip(points, pose, strict=True):
        out += bridge.push(p, q)
        held.append(bridge.pending)
    assert held == [0, 1, 2, 0, 1]
    assert len(out) == 4
    out += bridge.finish()
    assert len(out) == 5 and bridge.pending == 0
    assert [o.bridged for o in out] == [False, True, True, False, False]
    assert out[-1].landmarks is None and np.isnan(out[-1].pose).all()


def test_max_gap_frames_scales_with_the_frame_rate() -> None:
    assert max_gap_frames(25.0) == 3
    assert max_gap_frames(30.0) == 4
    assert max_gap_frames(1.0) == 1
