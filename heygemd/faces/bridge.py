"""Short gaps in a face track, filled in from both sides. Pure.

A tracked face can still be missed for a few frames (a hand passing, motion blur, a blink the
mesh's detector dislikes). Where the face measured just before such a gap and the one just
after it agree (the same face in about the same place and size: no cut, no jump), the frames
between take landmarks and pose interpolated linearly between the two, and are marked bridged.
A bridged frame is good enough to place a mouth on (its head is where its neighbours put it,
within a few pixels), but its own mouth was not seen: callers must not use its mouth shape.

Frames come in order, one at a time (:class:`GapBridge`, for a stream that cannot be held
whole), or as whole arrays (:func:`bridge_gaps`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heygemd.faces import landmarks as lm
from heygemd.faces.geometry import interocular

# Gaps up to this long are bridged: 3 frames at 25 fps, 4 at 30. Linear interpolation across a
# hidden 3-frame gap put the worst eye, nose, cheek or jaw point within 0.026 inter-ocular
# distances of where the mesh measured it (median; 99th percentile 0.126, worst 0.24) on 2,900
# frames of 8 real clips (head turns, gestures, a 1080x1920 presenter); across 5 frames the
# 99th percentile was 0.19.
MAX_GAP_SECONDS = 0.12
# The two faces around a gap agree when their stable points (eyes, nose, cheeks) lie within
# this many inter-ocular distances of each other (median): the ends of 99.5% of those hidden
# 3-frame gaps did; a cut to another framing, or another face, does not ...
MAX_SHIFT_IOD = 0.35
# ... and their sizes (inter-ocular distance) differ by at most this factor (real heads over
# 0.2 s: at most 1.13).
MAX_SCALE_RATIO = 1.25

_STABLE = lm.as_array(lm.STABLE)


def max_gap_frames(fps: float) -> int:
    """The longest gap (frames) bridged at ``fps`` frames/s: MAX_GAP_SECONDS, at least 1."""
    return max(1, int(round(MAX_GAP_SECONDS * fps)))


def faces_agree(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two faces' landmarks ((478, 2+) pixels) can be one face a few frames apart."""
    ia, ib = interocular(a), interocular(b)
    if not (ia > 0 and ib > 0) or max(ia, ib) / min(ia, ib) > MAX_SCALE_RATIO:
        return False
    shift = np.linalg.norm(a[_STABLE, :2] - b[_STABLE, :2], axis=1)
    return bool(np.median(shift) <= MAX_SHIFT_IOD * (ia + ib) / 2)


@dataclass(frozen=True)
class Filled:
    """One frame out of the bridge: landmarks float32 (478, 3) or None (no face), pose float32
    (3,) yaw/pitch/roll degrees (NaN without a face), bridged: filled in, not measured."""

    landmarks: np.ndarray | None
    pose: np.ndarray
    bridged: bool = False


_NO_POSE = np.full(3, np.nan, np.float32)


class GapBridge:
    """Frames in order in (:meth:`push`), the same frames in order out, gaps of at most
    ``max_gap`` frames between two agreeing faces filled. A frame without a face after a face
    is held until the gap closes or grows too long; :meth:`pending` says how many are held."""

    def __init__(self, max_gap: int) -> None:
        self.max_gap = max(int(max_gap), 0)
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        self._held = 0

    @property
    def pending(self) -> int:
        """Frames pushed but not yet given back (the open gap)."""
        return self._held

    def push(self, landmarks: np.ndarray | None, pose: np.ndarray | None) -> list[Filled]:
        """The next frame's face (landmarks (478, 3) pixels and pose (3,), or None); returns
        the frames settled by it, oldest first (none while a gap is open)."""
        if landmarks is None or np.isnan(landmarks).any():
            if self._last is None:
                return [Filled(None, _NO_POSE)]
            self._held += 1
            if self._held <= self.max_gap:
                return []
            out = [Filled(None, _NO_POSE)] * self._held
            self._last, self._held = None, 0
            return out
        points = np.asarray(landmarks, np.float32)
        angles = np.asarray(pose if pose is not None else _NO_POSE, np.float32)
        out = self._close(points, angles)
        out.append(Filled(points, angles))
        self._last, self._held = (points, angles), 0
        return out

    def finish(self) -> list[Filled]:
        """The frames still held at the end: no face after them, so none is filled."""
        out = [Filled(None, _NO_POSE)] * self._held
        self._last, self._held = None, 0
        return out

    def _close(self, points: np.ndarray, pose: np.ndarray) -> list[Filled]:
        if not self._held:
            return []
        assert self._last is not None
        before, before_pose = self._last
        if not faces_agree(before, points):
            return [Filled(None, _NO_POSE)] * self._held
        steps = self._held + 1
        return [
            Filled(
                (before + (points - before) * (k / steps)).astype(np.float32),
                (before_pose + (pose - before_pose) * (k / steps)).astype(np.float32),
                bridged=True,
            )
            for k in range(1, steps)
        ]


def bridge_gaps(
    landmarks: np.ndarray, pose: np.ndarray, max_gap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:class:`GapBridge` over whole arrays: landmarks float32 (N, 478, 3) NaN without a face,
    pose (N, 3) -> (landmarks, pose, bridged bool (N,)), gaps filled."""
    bridge = GapBridge(max_gap)
    out: list[Filled] = []
    for points, angles in zip(landmarks, pose, strict=True):
        out += bridge.push(points, angles)
    out += bridge.finish()
    n = len(out)
    filled = np.full((n, *landmarks.shape[1:]), np.nan, np.float32)
    poses = np.full((n, 3), np.nan, np.float32)
    for i, item in enumerate(out):
        if item.landmarks is not None:
            filled[i] = item.landmarks
            poses[i] = item.pose
    return filled, poses, np.array([item.bridged for item in out], bool)
