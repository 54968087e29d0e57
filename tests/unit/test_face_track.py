"""Speaker choice, association and smoothing of tracks, on synthetic observations."""

from __future__ import annotations

import numpy as np

from heygemd.faces.geometry import box_iou
from heygemd.faces.track import associate, build_track
from heygemd.faces.types import N_LANDMARKS, FaceObservation

FRAME = (640, 480)


def face(index: int, cx: float, cy: float, size: float, seed: int = 0) -> FaceObservation:
    """A face of box side `size` centred at (cx, cy); landmarks spread over the box."""
    rng = np.random.default_rng(seed * 1000 + index)
    marks = np.zeros((N_LANDMARKS, 3), dtype=np.float32)
    marks[:, 0] = cx + rng.uniform(-size / 2, size / 2, N_LANDMARKS)
    marks[:, 1] = cy + rng.uniform(-size / 2, size / 2, N_LANDMARKS)
    box = (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2)
    return FaceObservation(index, box, 0.9, marks, 0.0, 0.0, 0.0)


def test_box_iou() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert abs(box_iou((0, 0, 10, 10), (5, 0, 15, 10)) - 1 / 3) < 1e-9


def test_persistent_central_face_wins_over_a_larger_passing_distractor() -> None:
    per_frame = []
    for t in range(30):
        faces = [face(t, 320 + t, 240, 150, seed=1)]  # the speaker, drifting slowly
        if 10 <= t < 16:  # a bigger face at the edge for a few frames
            faces.append(face(t, 560, 100, 200, seed=2))
        per_frame.append(sorted(faces, key=lambda f: -f.width))
    track = build_track(per_frame, FRAME, n_frames=30)
    assert track.n_faces_max == 2
    assert track.n_tracks == 2
    assert len(track.observations) == 30
    assert all(obs is not None and abs(obs.center[1] - 240) < 1 for obs in track.observations)


def test_speaker_is_absent_where_not_seen_and_sampled_frames_are_placed() -> None:
    per_frame = [[face(i, 300, 250, 120)] for i in (0, 8, 16)] + [[]] + [[face(32, 305, 250, 120)]]
    track = build_track(per_frame, FRAME, n_frames=40)
    assert track.found_indices == [0, 8, 16, 32]
    assert track.observations[24] is None
    assert track.n_tracks == 1


def test_association_keeps_two_side_by_side_faces_apart() -> None:
    per_frame = [[face(t, 200 + t, 240, 100, 1), face(t, 450 - t, 240, 100, 2)] for t in range(10)]
    tracklets = associate(per_frame)
    assert len(tracklets) == 2
    for tracklet in tracklets:
        xs = [obs.center[0] for obs in tracklet]
        assert len(xs) == 10
        assert max(abs(np.diff(xs))) <= 1.0 + 1e-9


def test_no_faces_gives_an_empty_track() -> None:
    track = build_track([[], []], FRAME, n_frames=2)
    assert track.observations == [None, None]
    assert track.n_faces_max == 0
    assert np.isnan(track.smoothed_landmarks(25.0)).all()


def test_smoothed_landmarks_quiet_jitter_and_keep_gaps() -> None:
    rng = np.random.default_rng(7)
    base = face(0, 320, 240, 160)
    per_frame: list[list[FaceObservation]] = []
    for t in range(60):
        if 30 <= t < 33:
            per_frame.append([])
            continue
        marks = base.landmarks + rng.normal(0, 0.8, base.landmarks.shape).astype(np.float32)
        per_frame.append([FaceObservation(t, base.box, 0.9, marks, 0.0, 0.0, 0.0)])
    track = build_track(per_frame, FRAME, n_frames=60)
    smooth = track.smoothed_landmarks(25.0)
    raw = track.landmarks()
    assert smooth.shape == (60, N_LANDMARKS, 3) and smooth.dtype == np.float32
    assert np.isnan(smooth[30:33]).all() and not np.isnan(smooth[33]).any()
    assert np.nanstd(smooth[5:30, :, :2], axis=0).mean() < 0.6 * raw[5:30, :, :2].std(axis=0).mean()
