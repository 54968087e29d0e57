"""The lower-face mesh: which landmarks move with the new mouth, and where they go.

Vertices are mediapipe landmarks of the lower face plus an outer ring (the lower-face contour
pushed outwards), so the chin can drop inside the mesh. "Moving" vertices (lips, chin, lower
jaw) take the source frame's shape carried into the base frame's 3-D pose; "anchor" vertices
(cheeks, under the nose, the ring) stay where the base frame has them. The warp between them is
piecewise affine, so a source in another pose still lands without tearing (ENGINE-NOTES 3).
"""

from __future__ import annotations

import numpy as np

from heygemd.faces import geometry
from heygemd.faces import landmarks as lm

RING_SCALE = 1.3  # outer ring: lower-face contour pushed out from its centre by this factor
MASK_SCALE = 1.12  # blend mask polygon: the moving points pushed out (covers a dropped chin)
LOWER_JAW = (58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288)
CHIN_INNER = (18, 200, 199, 175, 83, 313, 32, 262, 201, 421, 208, 428, 211, 431, 194, 418)
MOVING: tuple[int, ...] = tuple(
    dict.fromkeys(lm.LIPS_OUTER + lm.LIPS_INNER + LOWER_JAW + CHIN_INNER)
)
ANCHORS: tuple[int, ...] = tuple(i for i in dict.fromkeys(lm.LOWER_FACE) if i not in MOVING)
CONTOUR = np.asarray(lm.LOWER_FACE, dtype=np.int64)
NOSE_BASE = (2, 97, 326, 98, 327)  # under the nose (anchors): the top of the blend mask
N_RING = len(lm.LOWER_FACE)
# positions of the lip contours and the mouth corners among the vertices (all are MOVING)
LIP_OUTER_VERTICES = tuple(MOVING.index(i) for i in lm.LIPS_OUTER)
LIP_INNER_VERTICES = tuple(MOVING.index(i) for i in lm.LIPS_INNER)
CORNER_VERTICES = (MOVING.index(lm.MOUTH_RIGHT_CORNER), MOVING.index(lm.MOUTH_LEFT_CORNER))


def ring_center(points: np.ndarray) -> np.ndarray:
    """Centre (x, y) of the lower-face contour of landmarks (478, 3)."""
    return points[CONTOUR, :2].mean(axis=0)


def pushed(points: np.ndarray, factor: float) -> np.ndarray:
    """The lower-face contour (P, 2) pushed away from its centre by ``factor``."""
    contour = points[CONTOUR, :2]
    c = contour.mean(axis=0)
    return c + (contour - c) * factor


def ring_points(points: np.ndarray) -> np.ndarray:
    """The outer ring (P, 2) of landmarks (478, 3)."""
    return pushed(points, RING_SCALE)


def vertices(points: np.ndarray) -> np.ndarray:
    """All mesh vertices (V, 2): MOVING, ANCHORS, then the ring."""
    parts = [points[list(MOVING), :2], points[list(ANCHORS), :2], ring_points(points)]
    return np.concatenate(parts)


def triangulate(points: np.ndarray) -> np.ndarray:
    """int64 (K, 3) Delaunay triangles over :func:`vertices` of reference landmarks (478, 3)."""
    from scipy.spatial import Delaunay

    return np.asarray(Delaunay(vertices(points)).simplices, dtype=np.int64)


def target_vertices(source: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Where each mesh vertex goes in the base frame (V, 2).

    source, base: landmarks (478, 3) in their own frames' pixels. Moving vertices: the source's
    points carried into the base pose by a 3-D similarity fitted on stable points; anchors and
    the ring: the base's own.
    """
    stable = list(lm.STABLE)
    src, dst = source[stable].astype(np.float64), base[stable].astype(np.float64)
    scale, rot, t = geometry.umeyama(src, dst)
    moved = (scale * source[list(MOVING)].astype(np.float64) @ rot.T + t)[:, :2]
    fixed = base.astype(np.float64)
    return np.concatenate([moved, fixed[list(ANCHORS), :2], ring_points(fixed)])


def mask_polygon(target: np.ndarray) -> np.ndarray:
    """Blend mask polygon (P, 2) from target vertices (V, 2): the moved lips, chin and jaw,
    pushed out slightly so a dropped chin is inside, up to the base of the nose, so the feathered
    edge runs over skin above the upper lip rather than across it."""
    inner = target[: len(MOVING)]
    c = inner.mean(axis=0)
    nose = target[[len(MOVING) + ANCHORS.index(i) for i in NOSE_BASE]]
    return np.concatenate([c + (inner - c) * MASK_SCALE, nose])
