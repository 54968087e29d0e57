"""Where the face detector looks besides the whole frame, and how what it finds is merged.

mediapipe's full-range detector sees the whole frame letterboxed into DETECTOR_INPUT_PX square
pixels: a face 5% of a 720p frame's height is 7 of those pixels tall. Below about 10 the
detector misses it or reports a box up to 2.3 times too big (a 4% face read as 9%); so a
small box is measured again on a zoomed square around it (:func:`zoom_square`), and a frame
where the whole-frame pass found nothing is searched again in overlapping tiles
(:func:`tile_squares`). Pure: squares and boxes in frame pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

from heygemd.faces.geometry import box_iou

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1), pixels
Square = tuple[int, int, int]  # (x0, y0, side), pixels

DETECTOR_INPUT_PX = 192  # mediapipe's full-range face detector input (square, letterboxed)
# Boxes with a side under this many detector-input pixels are measured again zoomed in: on real
# faces shrunk onto larger frames, whole-frame boxes of faces under 10 such pixels came out
# 1.2-2.3x too big, boxes of 10-16 pixels 0.8-1.2x.
SMALL_BOX_INPUT_PX = 16.0
# A zoomed square is this many box sides wide: an inflated box's face still fills 20+ input
# pixels of it, and the face's surroundings are there for the detector.
ZOOM_SIDES = 4.0
# Tiles: squares of TILE_SIDE x the frame height (at most its width), overlapping by
# TILE_OVERLAP of a side. Real faces 3-10% of the frame height were found in 80 of 80 shrunk
# frames each (1280x720, 1920x1080, 1080x1920, 720x720; plain and blurred backgrounds), 2.5%
# in 72 of 80; a 16:9 frame takes 8 tiles, a 9:16 one 3.
TILE_SIDE = 0.6
TILE_OVERLAP = 0.3
SAME_FACE_IOU = 0.3  # boxes overlapping this much are one face found twice
SAME_FACE_INSIDE = 0.5  # or: this share of the smaller box lies inside the larger one


def input_px(box: Box, width: int, height: int) -> float:
    """The longer side of ``box`` in the whole-frame detector's input pixels (frame of
    width x height pixels, letterboxed into DETECTOR_INPUT_PX)."""
    side = max(box[2] - box[0], box[3] - box[1])
    return side * DETECTOR_INPUT_PX / max(width, height, 1)


def is_small(box: Box, width: int, height: int) -> bool:
    """Whether the whole-frame detector's box is too small for its size to be trusted."""
    return input_px(box, width, height) < SMALL_BOX_INPUT_PX


def zoom_square(box: Box, sides: float = ZOOM_SIDES) -> Square:
    """The square (x0, y0, side) centred on ``box``, ``sides`` times its longer side wide. May
    reach past the frame (the crop pads that part)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(int(round(max(box[2] - box[0], box[3] - box[1]) * sides)), 2)
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def _starts(length: int, side: int, stride: int) -> list[int]:
    starts = list(range(0, max(length - side, 0) + 1, stride))
    if starts[-1] + side < length:
        starts.append(length - side)
    return starts


def tile_squares(
    width: int, height: int, share: float = TILE_SIDE, overlap: float = TILE_OVERLAP
) -> list[Square]:
    """Overlapping squares (x0, y0, side) covering a width x height frame, row by row: sides of
    ``share`` x the height (at most the width and height), each ``overlap`` of a side into the
    next; the last of a row or column ends at the frame's edge. Every square lies in the frame."""
    side = max(1, int(round(min(share * height, width, height))))
    stride = max(1, int(side * (1.0 - overlap)))
    columns = _starts(width, side, stride)
    return [(x, y, side) for y in _starts(height, side, stride) for x in columns]


def _inside_share(a: Box, b: Box) -> float:
    """Share of the smaller of a, b that lies inside the other."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / smaller if smaller > 0 else 0.0


def is_same_face(a: Box, b: Box) -> bool:
    """Whether two boxes are one face found twice (two tiles, or a part of it at a tile's edge)."""
    return box_iou(a, b) >= SAME_FACE_IOU or _inside_share(a, b) >= SAME_FACE_INSIDE


def merge_boxes(found: Sequence[tuple[Box, float]]) -> list[tuple[Box, float]]:
    """One (box, score) per face: the best-scoring of each group of :func:`is_same_face` boxes,
    best first."""
    kept: list[tuple[Box, float]] = []
    for box, score in sorted(found, key=lambda item: -item[1]):
        if not any(is_same_face(box, other) for other, _ in kept):
            kept.append((box, score))
    return kept


def pick_in(box: Box, found: Sequence[tuple[Box, float]]) -> tuple[Box, float] | None:
    """The best-scoring detection of ``found`` whose centre lies in ``box`` (the zoomed look at
    that box's face), or None."""
    inside = [
        (b, s) for b, s in found
        if box[0] <= (b[0] + b[2]) / 2 <= box[2] and box[1] <= (b[1] + b[3]) / 2 <= box[3]
    ]
    return max(inside, key=lambda item: item[1], default=None)
