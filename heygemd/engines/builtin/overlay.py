"""Foreign content in a transplant: what one frame of a pair shows that the other cannot.

A burned-in caption over the lower face belongs to the frame it was drawn on, at its place in
that frame. A transplant moves the source frame's pixels onto the base frame's face, so it
pastes a fragment of the source's caption under the new mouth (c26, a captioned clip: a yellow
letter on the beard), cuts a hole in the base's caption, or shifts a caption both frames carry.
A pixel the blend would change is foreign, and the blend keeps the base frame's pixel there,
when either

* its colour is nowhere in the other frame's crop (the lower face and what is around it: skin,
  beard, lips, collar, background): not within one cell of a coarse RGB grid of BINS levels per
  channel among the colours holding at least MIN_SHARE of that crop. Caption yellow is in one
  crop of the pair only; a collar that the jaw covers in one frame is in both crops; or
* base and source differ there by more than DIFFERENT (any channel) and one of them has a
  colour the template does not hold steadily (in under STEADY_SHARE of its frames' crops): a
  caption both frames carry, out of place after the warp.

Pixels in the mouth zone (the moved outer lips and the base frame's own, each pushed out by
ZONE_SCALE) are not judged: an opening mouth shows teeth and tongue that a closed one lacks,
in the source or in the base. Foreign pixels that cluster are grown by GROW of the crop side (a
caption letter's dark outline is reached by growing) and softened.

A third kind needs no colour: an occluder (:func:`occluder`), something that stays put in the
picture in front of the lower face while the face moves behind it (c34: a microphone on its
stand, whose copy the warp carried onto the cheek as a grey crescent). It is found once per
render from the template's crops, warped with each source as a fourth channel, and the blend
keeps the base wherever it lies in the base or lands from the source (grown a little and
softened at full size, render.transplant).

Not caught: a hand or anything else of skin colours that moves (in both crops and steady, not
still); a caption or a logo in STEADY_SHARE of the frames or more that both frames of a pair
carry (its colour is steady and in both crops).

A pair's palettes are read from its two crops, already in memory for the transplant (about
PALETTE_SIDE pixels each way); the template's steady colours once per render from at most
STEADY_FRAMES of its crops spread over it (:func:`steady_colours`), so a long template's crops
are not all read again. The judging is pure torch on batches, the same on CPU and CUDA: images
float (B, 3, H, W) in [0, 1], masks float (B, 1, H, W).
"""

from __future__ import annotations

from typing import Any

import numpy as np

BINS = 8  # levels per channel of the colour grid (cells of 32 levels)
SHIFT = 5  # 256 // BINS == 1 << SHIFT
CELLS = BINS**3
MIN_SHARE = 0.002  # a colour is in a crop when at least this share of its pixels hold it
PALETTE_SIDE = 96  # a palette reads at most this many pixels of a crop each way
PALETTE_CHUNK = 64  # crops read at once for the steady colours
STEADY_FRAMES = 256  # the steady colours are counted over at most this many frames
STEADY_SHARE = 0.9  # a colour the template holds steadily: in this share of its frames' crops
DIFFERENT = 0.25  # base and source this far apart (any channel, 0..1) show different things
ZONE_SCALE = 1.3  # the mouth zone: the moved outer lips pushed out from their centre
GROW = 0.02  # foreign clusters grown by this share of the crop side, then softened as much
CLUSTER = 0.5  # a foreign pixel counts when at least this share of its 3x3 is foreign too
STILL_LEVELS = 3.0  # a picture pixel whose grey level varies less over the template stays put
MOVING_LEVELS = 12.0  # ... while at the face's own place (the crops' pixels) it varies more
STILL_SEEN = 0.9  # ... judged where this share of the sampled crops reach it
OCCLUDING = 0.5  # such a part occludes where it is inside the lower face in this share of frames
MIN_OCCLUDER = 0.005  # an occluder covers at least this share of the lower face
OCCLUDER_EDGE = 2  # an occluder's map is grown by this many pixels (its edge varies more)


def palettes(crops: np.ndarray, step: int | None = None) -> np.ndarray:
    """bool (B, CELLS): the colour cells each uint8 crop (B, S, S, 3) holds, read every
    ``step`` pixels each way (default: about PALETTE_SIDE pixels each way), each widened by one
    cell every way (a colour that a cell edge split is in its neighbour)."""
    step = step or -(-crops.shape[1] // PALETTE_SIDE)
    sample = np.asarray(crops[:, ::step, ::step]) >> SHIFT
    cells = (sample[..., 0].astype(np.int64) * BINS + sample[..., 1]) * BINS + sample[..., 2]
    per_crop = cells.reshape(len(sample), -1)
    offsets = np.arange(len(sample), dtype=np.int64)[:, None] * CELLS
    counts = np.bincount((per_crop + offsets).ravel(), minlength=len(sample) * CELLS)
    held = counts.reshape(len(sample), BINS, BINS, BINS) >= max(1.0, MIN_SHARE * per_crop.shape[1])
    padded = np.pad(held, ((0, 0), (1, 1), (1, 1), (1, 1)))
    wide = np.zeros_like(held)
    for dr in range(3):
        for dg in range(3):
            for db in range(3):
                wide |= padded[:, dr:dr + BINS, dg:dg + BINS, db:db + BINS]
    return wide.reshape(len(sample), CELLS)


def steady_colours(crops: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """bool (CELLS,): the colour cells in STEADY_SHARE of the palettes of the usable frames'
    crops (at most STEADY_FRAMES of them, spread evenly). crops: at least N rows of (S, S, 3)
    (a memory map is read PALETTE_CHUNK crops at a time); usable: bool (N,)."""
    frames = np.flatnonzero(usable)
    if not len(frames):
        return np.ones(CELLS, dtype=bool)
    if len(frames) > STEADY_FRAMES:
        frames = frames[np.linspace(0, len(frames) - 1, STEADY_FRAMES).round().astype(int)]
    found = np.concatenate([palettes(crops[frames[i:i + PALETTE_CHUNK]])
                            for i in range(0, len(frames), PALETTE_CHUNK)])
    return found.mean(axis=0) >= STEADY_SHARE


def _sampled(usable: np.ndarray) -> np.ndarray:
    """At most STEADY_FRAMES of the usable frames' indices, spread evenly."""
    frames = np.flatnonzero(usable)
    if len(frames) > STEADY_FRAMES:
        frames = frames[np.linspace(0, len(frames) - 1, STEADY_FRAMES).round().astype(int)]
    return frames


def occluder(crops: np.ndarray, origins: np.ndarray, landmarks: np.ndarray,
             usable: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """bool (height, width), or None where there is none: what stays put in the picture in front
    of the lower face while the face moves behind it, a microphone on its stand.

    Over the sampled usable frames' crops (placed at their origins (N, 2); pixels STILL_SEEN of
    them reach), its grey level varies under STILL_LEVELS in the picture, and over
    MOVING_LEVELS at the face's own place (the same crop pixel over the frames: the crops follow
    the face), so a still face is not one. The connected parts of such pixels that lie inside
    the lower-face contour of landmarks (N, 478, 3) in OCCLUDING of the frames are kept whole,
    grown by OCCLUDER_EDGE; None under MIN_OCCLUDER of the face's area."""
    import cv2
    from scipy import ndimage

    from heygemd.engines.builtin import mesh

    frames = _sampled(usable)
    if len(frames) < 2:
        return None
    side_y, side_x = crops.shape[1:3]
    x0, y0 = (int(v) for v in origins[frames].min(axis=0))
    x1 = min(int(origins[frames][:, 0].max()) + side_x, width)
    y1 = min(int(origins[frames][:, 1].max()) + side_y, height)
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    on_face = np.zeros((side_y, side_x), np.float64)
    on_face_squares = np.zeros_like(on_face)
    total = np.zeros((y1 - y0, x1 - x0), np.float64)
    squares = np.zeros_like(total)
    seen = np.zeros(total.shape, np.int32)
    inside = np.zeros(total.shape, np.int32)
    area = 0.0
    placed: list[tuple[int, int, int, int]] = []  # each crop's (oy, ox, h, w) in the picture
    for i in frames:
        grey = np.asarray(crops[i], np.float32) @ weights
        on_face += grey
        on_face_squares += grey.astype(np.float64) ** 2
        ox, oy = int(origins[i][0]) - x0, int(origins[i][1]) - y0
        h, w = min(side_y, total.shape[0] - oy), min(side_x, total.shape[1] - ox)
        total[oy:oy + h, ox:ox + w] += grey[:h, :w]
        squares[oy:oy + h, ox:ox + w] += grey[:h, :w] ** 2
        seen[oy:oy + h, ox:ox + w] += 1
        placed.append((oy, ox, h, w))
        # the lower face's hull, drawn in its own box within the picture's
        hull = np.round(cv2.convexHull(
            (landmarks[i, mesh.CONTOUR, :2] - [x0, y0]).astype(np.float32))).astype(np.int32)
        bx0, by0 = np.maximum(hull.reshape(-1, 2).min(axis=0), 0)
        bx1 = min(int(hull[..., 0].max()) + 1, total.shape[1])
        by1 = min(int(hull[..., 1].max()) + 1, total.shape[0])
        if bx1 > bx0 and by1 > by0:
            face = np.zeros((by1 - by0, bx1 - bx0), np.uint8)
            cv2.fillPoly(face, [(hull - [bx0, by0]).astype(np.int32)], (1,))
            inside[by0:by1, bx0:bx1] += face
            area += float(face.sum())
    # the face's own place varies this much over the frames (the crops follow the face):
    # counted wherever each crop lay
    face_spread = on_face_squares / len(frames) - (on_face / len(frames)) ** 2
    moving = np.zeros_like(total)
    for oy, ox, h, w in placed:
        moving[oy:oy + h, ox:ox + w] += face_spread[:h, :w]
    count = np.maximum(seen, 1)
    variance = squares / count - (total / count) ** 2
    candidate = (seen >= STILL_SEEN * len(frames)) & (variance < STILL_LEVELS**2) \
        & (moving / count > MOVING_LEVELS**2)
    parts, n = ndimage.label(candidate)
    if n == 0:
        return None
    over_face = np.bincount(parts[inside >= OCCLUDING * len(frames)], minlength=n + 1)
    over_face[0] = 0
    least = max(1.0, MIN_OCCLUDER * area / len(frames))
    found = np.isin(parts, np.flatnonzero(over_face >= least))
    if not found.any():
        return None
    found = ndimage.binary_dilation(found, iterations=OCCLUDER_EDGE)
    out = np.zeros((height, width), dtype=bool)
    out[y0:y1, x0:x1] = found
    return out


def _cells(images: Any) -> Any:
    """Colour cell index (B, H*W), int64, of float images (B, 3, H, W) in [0, 1]."""
    import torch

    # 0..BINS-1 per channel; a NaN (never made today) would index out of the palette
    q = images.clamp(0.0, 1.0).nan_to_num_(0.0).mul_(BINS - 1e-3).to(torch.int16)
    return (q[:, 0] * (BINS * BINS) + q[:, 1] * BINS + q[:, 2]).flatten(1).long()


def foreign(base: Any, source: Any, judged: Any, base_palette: Any, source_palette: Any,
            steady: Any) -> Any:
    """float (B, 1, H, W): 1 on the ``judged`` pixels that are foreign to the pair (see the
    module): base_palette, source_palette: bool (B, CELLS) of each frame's crop; steady: bool
    (CELLS,) the template's steady colours."""
    import torch

    # one look-up per pixel: bit 0 in the base's palette, bit 1 in the source's, bit 2 steady
    table = (base_palette.to(torch.uint8) | source_palette.to(torch.uint8) << 1
             | steady.to(torch.uint8).reshape(1, -1) << 2)
    at_base = torch.gather(table, 1, _cells(base)).reshape(judged.shape)
    at_source = torch.gather(table, 1, _cells(source)).reshape(judged.shape)
    unheld = ((at_source & 1) == 0) | ((at_base & 2) == 0)
    unsteady = ((at_source & 4) == 0) | ((at_base & 4) == 0)
    apart = (base - source).abs().amax(dim=1, keepdim=True) > DIFFERENT
    return ((unheld | (unsteady & apart)) & (judged > 0.5)).float()


def guard(base: Any, source: Any, judged: Any, base_palette: Any, source_palette: Any,
          steady: Any, side: int, occluded: Any = None) -> Any:
    """float (B, 1, H, W) in [0, 1]: 1 where the blend keeps the base frame's pixels.

    base, source: the pair's windows (the source warped and colour-matched); judged: the pixels
    the blend would change, less the mouth zone; palettes and steady as for :func:`foreign`
    (tensors); side: the crop side in pixels; occluded: float (B, 1, H, W) in [0, 1], where an
    occluder (:func:`occluder`) lies in the base or lands from the warped source (kept as it
    is, at full size), or None.
    """
    import torch

    keep = _foreign_kept(base, source, judged, base_palette, source_palette, steady, side)
    return keep if occluded is None else torch.maximum(keep, occluded)


def _foreign_kept(base: Any, source: Any, judged: Any, base_palette: Any, source_palette: Any,
                  steady: Any, side: int) -> Any:
    """:func:`guard` without an occluder: the clusters of :func:`foreign` pixels, grown by GROW
    of the side and softened, at full size."""
    import torch
    import torch.nn.functional as F

    from heygemd.engines import compose

    if not bool((judged > 0.5).any()):
        return torch.zeros_like(judged)
    # judged on every other pixel each way: a caption is tens of pixels across
    seeds = foreign(base[..., ::2, ::2], source[..., ::2, ::2], judged[..., ::2, ::2],
                    base_palette, source_palette, steady)
    if not bool(seeds.any()):
        return torch.zeros_like(judged)
    clustered = (F.avg_pool2d(seeds, 3, stride=1, padding=1, count_include_pad=False)
                 >= CLUSTER).float() * seeds
    if not bool(clustered.any()):
        return torch.zeros_like(judged)
    radius = max(1, round(GROW * side / 2))
    grown = F.max_pool2d(clustered, 2 * radius + 1, stride=1, padding=radius)
    soft = F.interpolate(compose.gaussian_blur(grown, radius / 2.0), scale_factor=2,
                         mode="bilinear", align_corners=False)
    full = torch.maximum(F.interpolate(grown, scale_factor=2, mode="nearest"), soft)
    return full[..., : judged.shape[2], : judged.shape[3]].clamp(0.0, 1.0)
