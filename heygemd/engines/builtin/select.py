"""Choose one template frame (a real mouth) per output frame: a Viterbi pass.

Cost of picking template frame j for output frame t:
    shape:  ((opening[j] - target[t]) / spread)^2
    pose:   pose_weight * (angle between base frame t's pose and j's pose / 10 deg)^2
    lips:   a cost for frames whose lips are rolled in (pressed out of sight), whatever t
    blur:   a cost for frames whose mouth is blurrier than the template's others of its shape
            (motion blur, a focus breathing), whatever t
    moves:  0 for j = previous + 1 (the template's own co-articulation), ``hold_cost`` for
            j = previous, ``jump_cost`` for anything else.
Because every non-consecutive move costs the same, the pass is O(T * N) rather than O(T * N^2)
in time; in memory it keeps one byte per (t, j), the cost rows being made as it goes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heygemd.faces import landmarks as lm

POSE_UNIT_DEG = 10.0
# Lips pressed and rolled in show a thin band of lip: a rest or a b/p/m shown that way reads as
# a grimace, and the lipstick vanishes for that frame (th05 frame 62: 0.53 of its median band).
# Frames whose band is under LIP_BAND_FLOOR of the template's median cost more, growing with the
# square of the shortfall; the usual closed mouths measure 0.85-1.4 of the median.
LIP_BAND_FLOOR = 0.8
LIP_BAND_WEIGHT = 4.0
# A mouth's detail (Laplacian variance of its lip box) against the template's frames of the
# nearest openings (BLUR_PEERS of them, the frame among them): open mouths show teeth and are
# sharper than closed ones, so a frame is judged against its own shape only. Frames under
# BLUR_FLOOR of their peers' median cost more, growing with the square of the shortfall: at
# 0.6 as much as a quarter of the opening range off the target.
BLUR_PEERS = 9
BLUR_FLOOR = 0.8
BLUR_WEIGHT = 1.0


JUMP, HOLD, STEP = 0, 1, 2  # how viterbi reaches a template frame: its candidates' rows


@dataclass(frozen=True)
class SelectionCosts:
    jump_cost: float = 0.5
    hold_cost: float = 0.25
    pose_weight: float = 0.3


def unary_costs(
    target: np.ndarray,
    opening: np.ndarray,
    usable: np.ndarray,
    base_pose: np.ndarray,
    pose: np.ndarray,
    spread: float,
    pose_weight: float,
    shape_weight: np.ndarray | None = None,
    frame_cost: np.ndarray | None = None,
) -> UnaryCosts:
    """The (T, N) cost table, made a row at a time (:class:`UnaryCosts`).

    target (T,), opening (N,), usable bool (N,), base_pose (T, 3) and pose (N, 3) in degrees
    (yaw, pitch, roll), spread: opening units per unit of cost; shape_weight (T,): how much the
    shape matters per output frame (default 1); frame_cost (N,): added for each template frame
    whatever the output frame (:func:`hidden_lip_costs`). Unusable frames cost inf.
    """
    return UnaryCosts(
        target=np.asarray(target), opening=np.asarray(opening),
        unusable=np.flatnonzero(~np.asarray(usable, dtype=bool)),
        base_pose=np.asarray(base_pose)[:, :2], pose=np.asarray(pose)[:, :2],
        spread=max(spread, 1e-6), pose_weight=pose_weight,
        shape_weight=None if shape_weight is None else np.asarray(shape_weight),
        frame_cost=None if frame_cost is None else np.asarray(frame_cost),
    )


@dataclass(frozen=True)
class UnaryCosts:
    """The cost of showing template frame j's mouth on output frame t (:func:`unary_costs`),
    made one output frame's row at a time: whole, a 5-minute output over a 5-minute template at
    30 fps is 9000 x 9000 (648 MB of float64, and a planning peak of 4.4 GB while it was built
    in one piece). Poses are (yaw, pitch): roll is warped away."""

    target: np.ndarray  # (T,)
    opening: np.ndarray  # (N,)
    unusable: np.ndarray  # int64 indices into N
    base_pose: np.ndarray  # (T, 2)
    pose: np.ndarray  # (N, 2)
    spread: float
    pose_weight: float
    shape_weight: np.ndarray | None  # (T,)
    frame_cost: np.ndarray | None  # (N,)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.target), len(self.opening)

    def row(self, t: int) -> np.ndarray:
        """(N,): output frame t's cost of each template frame. Its type is the whole table's:
        every term is taken as a (1,)-long slice, never a scalar, so that float32 openings
        meet float64 weights in float64, as in one (T, N) expression."""
        cost = ((self.opening - self.target[t:t + 1]) / self.spread) ** 2
        if self.shape_weight is not None:
            cost = cost * self.shape_weight[t:t + 1]
        angle = np.linalg.norm(self.base_pose[t:t + 1] - self.pose, axis=1)
        cost = cost + np.nan_to_num(self.pose_weight * (angle / POSE_UNIT_DEG) ** 2, nan=0.0)
        if self.frame_cost is not None:
            cost += self.frame_cost
        cost[self.unusable] = np.inf
        return cost

    def table(self) -> np.ndarray:
        """(T, N): every row at once, of the rows' type (small tables: tests, inspection)."""
        return np.stack([self.row(t) for t in range(len(self.target))]) if len(self.target) \
            else np.zeros((0, len(self.opening)))


def lip_band(landmarks: np.ndarray) -> np.ndarray:
    """(N, 478, >=2) landmarks -> float64 (N,): the lips' visible height at the middle (outer
    to inner edge, upper plus lower) over the inter-ocular distance; NaN without a face."""
    used = [lm.UPPER_LIP_OUTER, lm.UPPER_LIP_INNER, lm.LOWER_LIP_INNER, lm.LOWER_LIP_OUTER,
            lm.RIGHT_EYE_OUTER, lm.LEFT_EYE_OUTER]
    p = np.asarray(landmarks)[:, used, :2].astype(np.float64)  # six points, not a copy of all
    upper = np.linalg.norm(p[:, 1] - p[:, 0], axis=1)
    lower = np.linalg.norm(p[:, 3] - p[:, 2], axis=1)
    eyes = np.linalg.norm(p[:, 5] - p[:, 4], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (upper + lower) / eyes


def hidden_lip_costs(band: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """float64 (N,): the cost of showing each template frame's lips, from :func:`lip_band` (N,)
    and the usable frames (bool (N,)): 0 down to LIP_BAND_FLOOR of the usable frames' median."""
    known = usable & np.isfinite(band)
    median = float(np.median(band[known])) if known.any() else 0.0
    if median <= 0:
        return np.zeros(len(band))
    ratio = band / median
    shortfall = np.clip((LIP_BAND_FLOOR - ratio) / (1 - LIP_BAND_FLOOR), 0.0, None)
    return LIP_BAND_WEIGHT * np.nan_to_num(shortfall, nan=0.0) ** 2


def lip_boxes(landmarks: np.ndarray, origins: np.ndarray, usable: np.ndarray,
              side: tuple[int, ...]) -> np.ndarray:
    """int (N, 4) (x0, y0, x1, y1) of each usable frame's mouth region (geometry.lip_box) in
    its crop's pixels (``side``: the crops' (height, width), as ``crops.shape[1:3]``), clipped
    to the crop; zeros where unusable."""
    from heygemd.faces.geometry import lip_box

    boxes = np.zeros((len(usable), 4), dtype=np.int64)
    limit = [side[1], side[0], side[1], side[0]]
    for i in np.flatnonzero(usable):
        points = np.asarray(landmarks[i], dtype=np.float64)[:, :2] - origins[i]
        boxes[i] = np.clip(lip_box(points), 0, limit)
    return boxes


def box_width(boxes: np.ndarray) -> float | None:
    """The median width of the :func:`lip_boxes` ``boxes`` (int (N, 4)) of 3 px and more (None
    without any): the width :func:`mouth_detail` brings each box to."""
    widths = boxes[:, 2] - boxes[:, 0]
    sized = (widths >= 3) & (boxes[:, 3] - boxes[:, 1] >= 3)
    return float(np.median(widths[sized])) if sized.any() else None


def mouth_detail(crops: np.ndarray, landmarks: np.ndarray, origins: np.ndarray,
                 usable: np.ndarray, width: float | None = None) -> np.ndarray:
    """float64 (N,): each usable template frame's mouth detail, the variance of the Laplacian of
    its grey outer-lip box (30% margin), the box brought to ``width`` first (default: the median
    of these frames' boxes, :func:`box_width`), so that a head nearer the camera is not read as
    a blurrier mouth; read from the frame's crop (uint8 RGB (N, S, S, 3), memory-mapped: only
    the box is read). NaN where unusable or without a crop. landmarks (N, 478, >=2) and origins
    (N, 2) in frame pixels."""
    import cv2

    out = np.full(len(usable), np.nan)
    present = np.zeros(len(usable), dtype=bool)
    present[: len(crops)] = usable[: len(crops)]
    boxes = lip_boxes(landmarks, origins, present, crops.shape[1:3])
    sized = present & (boxes[:, 2] - boxes[:, 0] >= 3) & (boxes[:, 3] - boxes[:, 1] >= 3)
    width = width or box_width(boxes[present])
    if width is None:
        return out
    for i in np.flatnonzero(sized):
        x0, y0, x1, y1 = boxes[i]
        grey = cv2.cvtColor(np.ascontiguousarray(crops[i, y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
        scale = width / (x1 - x0)
        if abs(scale - 1.0) > 0.02:
            size = (max(3, round((x1 - x0) * scale)), max(3, round((y1 - y0) * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA if scale < 1
                              else cv2.INTER_LINEAR)
        out[i] = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    return out


def blur_costs(detail: np.ndarray, opening: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """float64 (N,): the cost of showing each template frame's mouth, from its detail
    (:func:`mouth_detail`) against the median of the BLUR_PEERS usable frames nearest in
    opening (itself among them; at the ends of the opening range the nearest BLUR_PEERS all
    lie on one side): 0 down to BLUR_FLOOR of it. Too few frames to compare: all 0."""
    out = np.zeros(len(usable))
    known = np.flatnonzero(usable & np.isfinite(detail) & np.isfinite(opening) & (detail > 0))
    if len(known) < BLUR_PEERS:
        return out
    order = known[np.argsort(opening[known], kind="stable")]
    logs = np.log(detail[order])
    start = np.clip(np.arange(len(order)) - BLUR_PEERS // 2, 0, len(order) - BLUR_PEERS)
    peers = np.median(np.lib.stride_tricks.sliding_window_view(logs, BLUR_PEERS)[start], axis=1)
    ratio = np.exp(logs - peers)
    shortfall = np.clip((BLUR_FLOOR - ratio) / (1 - BLUR_FLOOR), 0.0, None)
    out[order] = BLUR_WEIGHT * shortfall**2
    return out


def viterbi(unary: np.ndarray | UnaryCosts, costs: SelectionCosts) -> np.ndarray:
    """Minimum-cost path through unary (T, N) -> int64 (T,) template frame per output frame.

    The rows of a :class:`UnaryCosts` are made as the pass reaches them; what it keeps is one
    byte per cell (how each template frame was reached: a jump, a hold or a step) and the best
    frame per output frame. Raises ValueError when some row has no finite column.
    """
    table = unary if isinstance(unary, UnaryCosts) else _Rows(np.asarray(unary))
    t_count, n = table.shape
    moves = np.empty((t_count, n), dtype=np.uint8)  # JUMP, HOLD or STEP into (t, j)
    best_before = np.zeros(t_count, dtype=np.int64)  # where a jump into t comes from
    score = _finite(table.row(0), 0)
    idx = np.arange(n)
    for t in range(1, t_count):
        best = int(np.argmin(score))
        best_before[t] = best
        jump = score[best] + costs.jump_cost
        hold = score + costs.hold_cost
        step = np.full(n, np.inf)
        step[1:] = score[:-1]
        cand = np.stack([np.full(n, jump), hold, step])
        choice = np.argmin(cand, axis=0)
        moves[t] = choice
        score = cand[choice, idx] + _finite(table.row(t), t)
    path = np.empty(t_count, dtype=np.int64)
    path[-1] = int(np.argmin(score))
    for t in range(t_count - 1, 0, -1):
        move = moves[t, path[t]]
        path[t - 1] = best_before[t] if move == JUMP else path[t] if move == HOLD else path[t] - 1
    return path


@dataclass(frozen=True)
class _Rows:
    """A whole (T, N) table read a row at a time, as :class:`UnaryCosts` is."""

    values: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        t_count, n = self.values.shape
        return t_count, n

    def row(self, t: int) -> np.ndarray:
        return self.values[t]


def _finite(row: np.ndarray, t: int) -> np.ndarray:
    """``row`` itself; ValueError when none of it is finite (no usable template frame)."""
    if not np.isfinite(row).any():
        raise ValueError(f"output frame {t} has no usable template frame")
    return row


def pingpong_index(t: int, n: int) -> int:
    """Output frame t -> template frame walking 0..n-1, n-2..1, 0..: no jump at the turns."""
    if n <= 1:
        return 0
    period = 2 * (n - 1)
    k = t % period
    return k if k < n else period - k


def pingpong_indices(count: int, n: int) -> np.ndarray:
    """int64 (count,) of :func:`pingpong_index`."""
    return np.array([pingpong_index(t, n) for t in range(count)], dtype=np.int64)
