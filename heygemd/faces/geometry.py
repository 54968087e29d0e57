"""Pure geometry on face-mesh landmarks and face boxes: head pose, mouth measures, box
overlap, alignment, smoothing.

Landmarks are float (478, 3) arrays in image pixels (x right, y down, z away from the camera in
the same pixel scale), as in :class:`heygemd.faces.types.FaceObservation`. Only x and y are used:
mediapipe's predicted z is not trusted for pose. Nothing here touches a detector or a file, so
every function runs on synthetic arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from heygemd.faces import landmarks as lm

_POSE_INDEX = np.asarray(lm.POSE_POINTS, dtype=np.int64)
_POSE_MODEL = np.array([lm.CANONICAL_POSE_POINTS[i] for i in lm.POSE_POINTS], dtype=np.float64)
_POSE_MODEL -= _POSE_MODEL.mean(axis=0)
FIT_ITERATIONS = 10  # Gauss-Newton steps; converges in 3-5 from the affine start


def _skew(v: np.ndarray) -> np.ndarray:
    """(3, 3) matrix [v]x with [v]x @ u = v x u."""
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def _skew_rows(points: np.ndarray) -> np.ndarray:
    """(N, 2, 3): the first two rows of :func:`_skew` of each of the (N, 3) points, at once."""
    rows = np.zeros((len(points), 2, 3))
    rows[:, 0, 1] = -points[:, 2]
    rows[:, 0, 2] = points[:, 1]
    rows[:, 1, 0] = points[:, 2]
    rows[:, 1, 2] = -points[:, 0]
    return rows


def _rotation(w: np.ndarray) -> np.ndarray:
    """Rotation (3, 3) for the rotation vector w (axis * angle in radians), Rodrigues' formula."""
    angle = float(np.linalg.norm(w))
    if angle < 1e-12:
        return np.eye(3)
    k = _skew(w / angle)
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * k @ k


def _affine_start(model: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, float]:
    """Rotation (3, 3) and scale from the least-squares affine camera, made orthonormal (SVD)."""
    affine = np.linalg.lstsq(model, image, rcond=None)[0].T  # (2, 3): image ~ model @ affine.T
    u, s, vt = np.linalg.svd(affine, full_matrices=False)
    rows = u @ vt
    return np.vstack([rows, np.cross(rows[0], rows[1])]), float(s.mean())


def fit_weak_perspective(model: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, float]:
    """Rotation R (3, 3) and scale s that best map model onto image under weak perspective.

    model: float (N, 3) centred 3D points; image: float (N, 2) centred pixels, N >= 4 and not
    coplanar. Minimises sum |s * (R @ X)[:2] - x|^2 by Gauss-Newton from :func:`_affine_start`.
    Weak perspective (scaled orthographic) measures the rotation relative to the line of sight
    to the face and needs no camera intrinsics.
    """
    rot, scale = _affine_start(model, image)
    for _ in range(FIT_ITERATIONS):
        turned = model @ rot.T
        residual = (scale * turned[:, :2] - image).ravel()
        jacobian = np.empty((len(model), 2, 4))
        jacobian[:, :, :3] = -scale * _skew_rows(turned)
        jacobian[:, :, 3] = turned[:, :2]
        step = np.linalg.lstsq(jacobian.reshape(-1, 4), -residual, rcond=None)[0]
        rot, scale = _rotation(step[:3]) @ rot, scale + float(step[3])
        if np.abs(step).max() < 1e-9:
            break
    return rot, scale


def pose_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation (3, 3) in image axes for a head at yaw/pitch/roll degrees.

    R = Ry(yaw) @ Rx(pitch) @ Rz(roll): roll tilts the head in the image plane (clockwise on
    screen for roll > 0), pitch nods it (looking down for pitch > 0), yaw turns it (nose towards
    the image's right for yaw > 0). The inverse of :func:`head_pose`.
    """
    cy, sy = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
    cp, sp = math.cos(math.radians(pitch)), math.sin(math.radians(pitch))
    cr, sr = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    ry = np.array([[cy, 0.0, -sy], [0.0, 1.0, 0.0], [sy, 0.0, cy]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    rz = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return ry @ rx @ rz


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from the image positions of float (478, 2+) landmarks, pixels.

    The x, y of :data:`heygemd.faces.landmarks.POSE_POINTS` are fitted to mediapipe's metric
    canonical face (:func:`fit_weak_perspective`); the mesh's own z is ignored. Signs as in
    FaceObservation: yaw > 0 = face turned to the image's right, pitch > 0 = looking down,
    roll > 0 = tilted clockwise in the image; the canonical face unrotated is 0/0/0.
    NaN where the points are degenerate (all equal, or not finite).
    """
    image = np.asarray(landmarks, dtype=np.float64)[_POSE_INDEX, :2]
    image = image - image.mean(axis=0)
    if not np.isfinite(image).all() or not np.abs(image).max() > 0.0:
        return math.nan, math.nan, math.nan
    r, _ = fit_weak_perspective(_POSE_MODEL, image)
    pitch = math.degrees(math.asin(float(np.clip(-r[1, 2], -1.0, 1.0))))
    yaw = math.degrees(math.atan2(-r[0, 2], r[2, 2]))
    roll = math.degrees(math.atan2(r[1, 0], r[1, 1]))
    return yaw, pitch, roll


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes; 0 when either is empty."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def interocular(landmarks: np.ndarray) -> float:
    """Distance between the outer eye corners in the image plane, pixels."""
    points = np.asarray(landmarks, dtype=np.float64)
    return float(np.linalg.norm(points[lm.LEFT_EYE_OUTER, :2] - points[lm.RIGHT_EYE_OUTER, :2]))


def mouth_opening(landmarks: np.ndarray) -> float:
    """Inner-lip gap / inter-ocular distance (0 = lips closed; ~0.3-0.5 = wide open).

    The gap is the mean over three upper/lower inner-lip pairs across the mouth, in the image
    plane, so a slight head turn does not zero it.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    gaps = [np.linalg.norm(points[lo, :2] - points[up, :2]) for up, lo in lm.INNER_LIP_PAIRS]
    return float(np.mean(gaps)) / max(interocular(points), 1e-6)


def lip_box(landmarks: np.ndarray, margin: float = 0.3) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) whole pixels holding the outer lips, widened by ``margin`` of the box's
    own size on each side (floor / ceil; not clipped to any image): the mouth region whose
    sharpness the engine and the evaluation read."""
    lips = np.asarray(landmarks, dtype=np.float64)[list(lm.LIPS_OUTER), :2]
    lo, hi = lips.min(axis=0), lips.max(axis=0)
    pad = (hi - lo) * margin
    x0, y0 = np.floor(lo - pad).astype(int)
    x1, y1 = np.ceil(hi + pad).astype(int)
    return int(x0), int(y0), int(x1), int(y1)


def mouth_width(landmarks: np.ndarray) -> float:
    """Mouth-corner distance / inter-ocular distance (about 0.55-0.75 for a relaxed mouth)."""
    points = np.asarray(landmarks, dtype=np.float64)
    width = np.linalg.norm(points[lm.MOUTH_LEFT_CORNER, :2] - points[lm.MOUTH_RIGHT_CORNER, :2])
    return float(width) / max(interocular(points), 1e-6)


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity between corresponding point sets, any dimension D.

    src, dst: float (N, D). Returns (scale, R (D, D), t (D,)) with dst ~= scale * R @ src + t,
    R a proper rotation (no reflection). Umeyama (1991).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"need matching (N>=2, D) point sets, got {src.shape} and {dst.shape}")
    mu_src, mu_dst = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - mu_src, dst - mu_dst
    var_src = float((src_c**2).sum()) / len(src)
    if var_src <= 0.0:
        raise ValueError("source points are all identical")
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    d = np.ones(src.shape[1])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float((s * d).sum()) / var_src
    return scale, rot, mu_dst - scale * rot @ mu_src


def similarity_transform(src_pts: np.ndarray, dst_pts: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst.

    src_pts, dst_pts: float (N, 2), N >= 2, corresponding points (extra columns are ignored).
    Returns float64 (2, 3) M with dst ~= src @ M[:, :2].T + M[:, 2] (cv2.warpAffine's layout).
    """
    scale, rot, shift = umeyama(np.asarray(src_pts)[:, :2], np.asarray(dst_pts)[:, :2])
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = shift
    return matrix


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to float (N, 2+) points; returns float64 (N, 2)."""
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    return pts @ matrix[:, :2].T + matrix[:, 2]


class OneEuroFilter:
    """One-euro filter (Casiez, Roussel, Vogel 2012) for a sequence of arrays of a fixed shape.

    An adaptive low-pass filter: its cutoff rises with the signal's speed, so a still point is
    smoothed hard (jitter gone) while a fast mouth movement passes with almost no lag.

    fps: sampling rate of the sequence, frames per second.
    scale: the unit speeds are measured in, in the values' own units; pass the face's
        inter-ocular distance in pixels so the same parameters fit small and large faces.
    min_cutoff: Hz, the cutoff at rest (lower = smoother when still).
    beta: how fast the cutoff rises with speed, Hz per (scale units per second).
    d_cutoff: Hz, cutoff of the speed estimate itself.

    Defaults (0.3 Hz, 20, 1 Hz; scale = inter-ocular distance) were chosen on synthetic tracks
    at 25-30 fps: jitter of 0.7% of the inter-ocular distance shrinks to ~45%, while a step of
    11% (a mouth snapping open) is 70-85% followed after one frame and >90% after two.
    Each element is filtered independently; where a sample is NaN (face absent) the output is
    NaN, and the filter restarts from the raw value when the signal comes back.
    """

    def __init__(
        self,
        fps: float,
        scale: float = 1.0,
        min_cutoff: float = 0.3,
        beta: float = 20.0,
        d_cutoff: float = 1.0,
    ) -> None:
        if fps <= 0 or scale <= 0:
            raise ValueError(f"fps and scale must be positive, got {fps} and {scale}")
        self.fps = fps
        self.scale = scale
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray:
        tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
        return 1.0 / (1.0 + tau * self.fps)

    def reset(self) -> None:
        self._x = None
        self._dx = None

    def __call__(self, value: np.ndarray) -> np.ndarray:
        """Filter one sample (any shape, fixed across calls); returns float64 of that shape."""
        x = np.asarray(value, dtype=np.float64) / self.scale
        if self._x is None or self._dx is None:
            self._x = x.copy()
            self._dx = np.zeros_like(x)
            return x * self.scale
        fresh = np.isnan(self._x) & ~np.isnan(x)  # restart where the signal comes back
        dx_raw = (x - self._x) * self.fps
        dx = self._dx + self._alpha(self.d_cutoff) * (dx_raw - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(dx)
        out = self._x + self._alpha(cutoff) * (x - self._x)
        out = np.where(fresh, x, out)
        dx = np.where(fresh | np.isnan(dx), 0.0, dx)
        self._x, self._dx = out, dx
        return out * self.scale


def smooth_sequence(sequence: np.ndarray, fps: float, scale: float = 1.0) -> np.ndarray:
    """One-euro smoothing (default parameters) along axis 0 of float (T, ...) data.

    NaN marks missing samples and stays NaN. scale: see OneEuroFilter. Returns float64, same shape.
    """
    data = np.asarray(sequence, dtype=np.float64)
    out = np.empty_like(data)
    filt = OneEuroFilter(fps, scale=scale)
    for t in range(len(data)):
        out[t] = filt(data[t])
    return out


# Yaw against which the validation limit (30 degrees) is stated: the 2-D landmarks fitted to a
# generic six-point head (OpenCV solvePnP), the scale the test media's MANIFEST was measured in.
# head_pose() above fits mediapipe's canonical face, whose nose sits further ahead of the eyes,
# so it reads turns about 1.5x smaller (rj02 three-quarter view: 20 vs 31). Engines use
# head_pose() for relative pose costs; the user-facing limit (limit_yaw) reads this one beside
# two others.
# Model: nose tip, chin, outer eye corners, mouth corners (x right, y up, z towards the viewer).
GENERIC_HEAD = np.array(
    [(0, 0, 0), (0, -330, -65), (-225, 170, -135), (225, 170, -135),
     (-150, -150, -125), (150, -150, -125)],
    dtype=np.float64,
)  # fmt: skip
GENERIC_HEAD_LANDMARKS = [1, 152, 33, 263, 61, 291]  # mediapipe mesh indices, same order


# head_pose()'s yaw times this is on the generic head's scale: rj02 (three-quarter view) 22 ->
# 33 against 31, c13 (slightly turned) 12 -> 18 against 18, median over sampled frames.
MESH_YAW_SCALE = 1.5


def limit_yaw(landmarks: np.ndarray, frame_size: tuple[int, int]) -> float:
    """Yaw in degrees for the user-facing limit, on :func:`generic_head_yaw`'s scale: the median
    of three estimates from landmarks float (478, 2+) in pixels, so that no single one decides.

    The generic six-point head alone depends on where the chin and mouth corners sit against
    the nose: a frontal presenter close to the camera (c25; the others read 6-9) reads 26-38
    there. The other two: :func:`head_pose` over its fifteen points (times MESH_YAW_SCALE) and
    :func:`outline_yaw`. Both of those weigh the nose against the face's outline, so they
    mostly agree and outvote the six-point head: on three-quarter views the limit reads 2-3
    degrees less than the six-point head alone (rj02 stays refused). Each estimate is clipped
    to +-90; NaN where all three are (landmarks that are not finite)."""
    estimates = np.clip(np.array([generic_head_yaw(landmarks, frame_size),
                                  MESH_YAW_SCALE * head_pose(landmarks)[0],
                                  outline_yaw(landmarks)]), -90.0, 90.0)
    finite = estimates[np.isfinite(estimates)]
    return float(np.median(finite)) if len(finite) else math.nan


def outline_yaw(landmarks: np.ndarray) -> float:
    """Yaw in degrees from where the nose tip sits between the face's outline at the cheeks
    (landmarks 234 and 454), along the line joining them: arcsin(2t - 1), t the nose's share of
    the way; > 0 turned to the image's right. Past a profile it saturates at 90."""
    points = np.asarray(landmarks, np.float64)
    right_edge, left_edge, nose = points[234, :2], points[454, :2], points[lm.NOSE_TIP, :2]
    span = left_edge - right_edge
    length = float(span @ span)
    if not np.isfinite(length) or length <= 0.0:
        return math.nan
    share = float((nose - right_edge) @ span) / length
    return math.degrees(math.asin(float(np.clip(2.0 * share - 1.0, -1.0, 1.0))))


def generic_head_yaw(landmarks: np.ndarray, frame_size: tuple[int, int]) -> float:
    """Yaw in degrees (> 0: face turned to the image's right) from landmarks float (478, 2+) in
    pixels, fitted to :data:`GENERIC_HEAD` with a pinhole camera of focal length max(W, H). NaN
    where its six points are not finite or share one x or one y (no face)."""
    import cv2

    width, height = frame_size
    focal = float(max(width, height))
    camera = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], np.float64)
    points = np.asarray(landmarks, np.float64)[GENERIC_HEAD_LANDMARKS, :2]
    if not np.isfinite(points).all() or np.ptp(points, axis=0).min() <= 0.0:
        return float("nan")  # solvePnP raises on NaN and answers nonsense for a point
    no_distortion = np.zeros(4, np.float64)
    ok, rvec, _ = cv2.solvePnP(
        GENERIC_HEAD, points, camera, no_distortion, flags=cv2.SOLVEPNP_ITERATIVE
    )
    if not ok:
        return float("nan")
    forward = cv2.Rodrigues(rvec)[0][:, 2]  # where the nose points, camera axes (z away)
    return float(np.degrees(np.arctan2(forward[0], -forward[2])))
