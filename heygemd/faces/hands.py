"""Hands in front of the lower face: found on a frame, and how much of the lower face they hide.

A hand over the chin or the mouth is skin-coloured and moves, so the mouth-cover score
(:mod:`heygemd.faces.occlusion`, colour against the face's own skin) does not see it, and a
new mouth drawn over it cuts the fingers off (c18, a presenter who gestures: the finger
touching her chin was erased in the output). The frame pass finds the hands on its sampled
frames (mediapipe Hands, from the same wheel as the face models) so the user is told where and
why.

The hand model also answers on things that are not hands: searching the whole of the 56 real
clips' sampled frames (3 per second) it found a hand in an open mouth (th05, handedness score
0.91) and in a beard (c13, 0.65), against 0.94-1.00 for c18's real fingers (around the face
alone, as :class:`HandFinder` searches, it finds neither). A hand is kept with a handedness score
of at least MIN_HANDEDNESS and at most MAX_INSIDE_FACE of its outline inside the face: a real
hand at the chin reaches below the face (a hand flat over the mouth is the mouth-cover
score's).

The frame pass's per-sample answers reach the builtin engine as :class:`HandSightings`: where
one saw a hand at the lower face, the engine looks for it again on each template frame near
that sample (:meth:`HandSightings.near`), keeps the frame's own pixels under the hand and never
takes that frame's mouth for another.

:func:`hand_cover`, :func:`kept_hands` and :func:`hand_mask` are pure; :class:`HandFinder`
holds the mediapipe graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from heygemd.closing import Closing

NOSE_TIP = 1  # face-mesh landmark: the lower face is the mesh below it
MESH_POINTS = 468  # the face mesh without the iris points
# Hand landmarks (mediapipe Hands, 21 per hand): wrist 0, then four per finger from the thumb.
BONES = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11),
    (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (17, 18), (18, 19), (19, 20),
    (0, 17),
)
PALM = (0, 1, 5, 9, 13, 17)
# A finger's width as a share of the knuckle span (index to little finger, three gaps).
FINGER_WIDTH = 0.3
DETECTION_CONFIDENCE = 0.5
MAX_HANDS = 2
MIN_HANDEDNESS = 0.8  # the model's left/right confidence: a thing that is no hand scores lower
MAX_INSIDE_FACE = 0.6  # a hand with more of its outline inside the face is taken for no hand
# Hands are looked for around a face: a face box wide either side of it, from its top to one and
# a half box heights below it (a hand at the chin has its palm there). On th10's 1080x1920
# frames, 20 ms a frame against 39 ms for the whole frame; on c18's 1280x720 ones 20-42 ms.
AROUND_SIDES = 1.0
AROUND_BELOW = 1.5


def hand_outline(points: np.ndarray, shape: tuple[int, int], offset: tuple[int, int] = (0, 0)
                 ) -> np.ndarray:
    """uint8 (H, W) of ``shape``: 1 where the hand of ``points`` float (21, 2) (pixels of the
    frame, the window's top-left at ``offset`` (x, y)) lies: its bones drawn a finger wide and
    its palm filled."""
    import cv2

    mask = np.zeros(shape, np.uint8)
    local: np.ndarray = np.asarray(points, np.float64)[:, :2] - np.asarray(offset, np.float64)
    width = max(2, int(round(FINGER_WIDTH * float(np.linalg.norm(local[5] - local[17])))))
    ends: np.ndarray = np.round(local).astype(np.int32)
    for a, b in BONES:
        cv2.line(mask, (int(ends[a, 0]), int(ends[a, 1])), (int(ends[b, 0]), int(ends[b, 1])),
                 (1,), width)
    cv2.fillPoly(mask, [ends[list(PALM)]], (1,))
    return mask


def _hull_mask(points: np.ndarray, shape: tuple[int, int], offset: np.ndarray) -> np.ndarray:
    """uint8 (H, W): 1 inside the convex hull of ``points`` float (K, 2) less ``offset``."""
    import cv2

    mask = np.zeros(shape, np.uint8)
    hull = cv2.convexHull((points - offset).astype(np.float32))
    cv2.fillPoly(mask, [np.round(hull).astype(np.int32)], (1,))
    return mask


def _outline_size(points: np.ndarray) -> int:
    """Pixels of the hand outline of ``points`` float (21, 2), drawn in its own box."""
    pad = int(FINGER_WIDTH * float(np.linalg.norm(points[5] - points[17]))) + 3
    origin = np.floor(points.min(axis=0)).astype(int) - pad
    far = np.ceil(points.max(axis=0)).astype(int) + pad
    shape = (int(far[1] - origin[1]), int(far[0] - origin[0]))
    return int(hand_outline(points, shape, (int(origin[0]), int(origin[1]))).sum())


@dataclass(frozen=True)
class _FaceWindow:
    """A face's box in the frame (origin (x, y), shape (H, W)) with its mesh's hull and the
    hull of the mesh below the nose tip drawn in it (uint8 masks)."""

    origin: np.ndarray
    shape: tuple[int, int]
    face: np.ndarray
    lower: np.ndarray


def _face_window(landmarks: np.ndarray) -> _FaceWindow | None:
    """The window of a face's mesh (landmarks float (478, >=2), frame pixels); None where a
    point is not finite or too little of the mesh lies below the nose tip."""
    mesh = landmarks[:MESH_POINTS, :2].astype(np.float64)
    if not np.isfinite(mesh).all():
        return None
    lower = mesh[mesh[:, 1] > landmarks[NOSE_TIP, 1]]
    if len(lower) < 3:
        return None
    origin = np.floor(mesh.min(axis=0)).astype(int) - 2
    far = np.ceil(mesh.max(axis=0)).astype(int) + 3
    shape = (int(far[1] - origin[1]), int(far[0] - origin[0]))
    return _FaceWindow(origin, shape, _hull_mask(mesh, shape, origin),
                       _hull_mask(lower, shape, origin))


def _real_hands(hands: list[np.ndarray], window: _FaceWindow
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``hands`` that are hands, each (points float (21, 2), its outline in the face's
    window): finite points, at most MAX_INSIDE_FACE of the outline inside the face."""
    out = []
    offset = (int(window.origin[0]), int(window.origin[1]))
    for hand in hands:
        points = np.asarray(hand, np.float64)[:, :2]
        if points.shape != (21, 2) or not np.isfinite(points).all():
            continue
        outline = hand_outline(points, window.shape, offset)
        size = _outline_size(points)
        if size and (outline & window.face).sum() <= MAX_INSIDE_FACE * size:
            out.append((points, outline))
    return out


def hand_cover(hands: list[np.ndarray], landmarks: np.ndarray) -> float:
    """Share 0..1 of the lower face (the convex hull of the face mesh below the nose tip) that
    the ``hands`` (each float (21, 2) in frame pixels; one with a non-finite point is passed
    over) cover; 0.0 without hands. A hand with over MAX_INSIDE_FACE of its outline inside the
    face (the whole mesh's hull) is not one."""
    window = _face_window(landmarks) if hands else None
    if window is None:
        return 0.0
    area = int(window.lower.sum())
    if area == 0:
        return 0.0
    covered = np.zeros(window.shape, np.uint8)
    for _, outline in _real_hands(hands, window):  # drawn in the face's window, clipped to it
        covered |= outline
    return float((covered & window.lower).sum()) / area


def kept_hands(hands: list[np.ndarray], landmarks: np.ndarray) -> list[np.ndarray]:
    """The ``hands`` (float (21, 2), frame pixels) that reach the lower face of the face at
    ``landmarks``, as :func:`hand_cover` counts them: what a render must leave in front."""
    window = _face_window(landmarks) if hands else None
    if window is None:
        return []
    return [points for points, outline in _real_hands(hands, window)
            if (outline & window.lower).any()]


def hand_mask(hands: list[np.ndarray], shape: tuple[int, int], offset: tuple[int, int]
              ) -> np.ndarray:
    """uint8 (H, W) of ``shape``: 1 where any of ``hands`` lies (:func:`hand_outline`), the
    window's top-left at ``offset`` (x, y) in the frame."""
    mask = np.zeros(shape, np.uint8)
    for points in hands:
        mask |= hand_outline(points, shape, offset)
    return mask


@dataclass(frozen=True)
class HandSightings:
    """What a frame pass saw of hands at the speaker's lower face.

    frames: int (K,) the sampled frames' indices, ascending; cover: float (K,) the share of the
    lower face a hand covered there (:func:`hand_cover`), NaN where it is not known (no face,
    or the hand finder failed).
    """

    frames: np.ndarray
    cover: np.ndarray

    def near(self, count: int, reach: int) -> np.ndarray:
        """bool (count,): the frames a hand may be at the lower face in: every frame after the
        sample before a sample with a hand there, up to the sample after it (a hand seen at one
        sample may have come and gone anywhere between its neighbours), at most ``reach``
        frames from it (samples seconds apart in a long video)."""
        out = np.zeros(count, bool)
        frames = np.asarray(self.frames, np.int64)
        for k in np.flatnonzero(np.asarray(self.cover) > 0):
            at = int(frames[k])
            start = max(int(frames[k - 1]) + 1 if k > 0 else 0, at - reach)
            stop = min(int(frames[k + 1]) if k + 1 < len(frames) else count, at + reach + 1)
            out[max(0, start) : max(0, min(count, stop))] = True
        return out


class HandFinder(Closing):
    """Finds up to MAX_HANDS hands around a face in RGB frames, each frame on its own (sampled
    frames are seconds apart: nothing to follow). Build once, reuse for every frame."""

    def __init__(self) -> None:
        import mediapipe as mp  # heavy: loaded only when a finder is built

        self._hands: Any = mp.solutions.hands.Hands(
            static_image_mode=True, max_num_hands=MAX_HANDS,
            min_detection_confidence=DETECTION_CONFIDENCE,
        )

    def close(self) -> None:
        """Release the mediapipe graph. Idempotent."""
        if self._hands is not None:
            self._hands.close()
        self._hands = None

    def find(self, frame: np.ndarray, box: tuple[float, float, float, float]
             ) -> list[np.ndarray]:
        """The hands around the face ``box`` (x0, y0, x1, y1) in uint8 RGB ``frame`` (H, W, 3)
        with a handedness score of at least MIN_HANDEDNESS: float (21, 2) landmarks in the
        frame's pixels."""
        if self._hands is None:
            raise RuntimeError("HandFinder is closed")
        x0, y0, x1, y1 = box
        left = int(max(0.0, x0 - AROUND_SIDES * (x1 - x0)))
        right = int(min(frame.shape[1], x1 + AROUND_SIDES * (x1 - x0)))
        top = int(max(0.0, y0))
        bottom = int(min(frame.shape[0], y1 + AROUND_BELOW * (y1 - y0)))
        if right - left < 2 or bottom - top < 2:
            return []
        found = self._hands.process(np.ascontiguousarray(frame[top:bottom, left:right]))
        width, height = right - left, bottom - top
        sides = found.multi_handedness or []
        return [np.array([[left + p.x * width, top + p.y * height] for p in hand.landmark],
                         np.float64)
                for hand, side in zip(found.multi_hand_landmarks or [], sides, strict=False)
                if side.classification[0].score >= MIN_HANDEDNESS]
