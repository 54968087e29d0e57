"""Streaming render: base frames in ping-pong order, each with a transplanted template mouth.

Frames flow decode -> transplant (batched, torch) -> the caller's encoder; nothing holds the
whole video. Walking the template backwards decodes it in chunks that fit a memory budget, each
from the keyframe before it (a seek), not from the start, and holds a chunk's frames in the
decoder's 8-bit 4:2:0 form (half the bytes of RGB) where the template has it. Where the caller
takes them (RenderRequest.yuv_frames), frames stay in that form to the encoder
(media/yuv.YuvFrame): only each mouth's crop is turned to RGB, and only the pixels the new
mouth changes go back.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heygemd import allocator
from heygemd.engines.builtin import colour, crops, mesh, overlay, warp
from heygemd.engines.builtin.analysis import KEEP_DECODED_BYTES, TemplateAnalysis
from heygemd.faces.hands import hand_mask
from heygemd.media.types import MediaInfo
from heygemd.media.video import held_bytes_per_pixel
from heygemd.media.yuv import Picture, region_of, with_pixels

# Decoded frames held at once while walking backwards. Each chunk is decoded from the keyframe
# before it, so a smaller budget decodes more: th10 (1080x1920 HEVC, keyframes 250 apart)
# walked back whole took 8.8-9.1 CPU-s at 256 MB, 10.6 at 192, 13.5-13.7 at 128, and a job's
# peak memory moves with the budget (a minute of th10 output: 1.89 GB at 256 MB, 1.73 at 128).
REVERSE_BUDGET_BYTES = 192 * 1024 * 1024
FEATHER = 0.035  # mask edge softness, share of the crop side
FEATHER_STEP = 4  # the feathering blur runs on a grid this many times coarser
OCCLUDER_GROW = 3  # pixels an occluder's keep mask reaches past its warped edge


@dataclass(frozen=True)
class Constants:
    """What every batch's transplant reads besides the plan, found once per template:
    triangles int64 (K, 3) of the mouth mesh; lip_colours float32 (N, 6) each template frame's
    lip colour (colour.lip_colours): the transplanted lips take their base frame's; steady:
    bool (overlay.CELLS,) the colours the template holds steadily (overlay.steady_colours);
    occluder: bool (H, W) in the picture, what stays put in front of the lower face
    (overlay.occluder), or None.
    """

    triangles: np.ndarray
    lip_colours: np.ndarray
    steady: np.ndarray
    occluder: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """For the cache: the occluder as packed bits (1/8 of a picture's pixels), its shape
        (0, 0) where there is none."""
        occluder = self.occluder if self.occluder is not None else np.zeros((0, 0), bool)
        return {"triangles": self.triangles, "lip_colours": self.lip_colours,
                "steady": self.steady, "occluder_bits": np.packbits(occluder, axis=None),
                "occluder_shape": np.array(occluder.shape, np.int64)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Constants:
        height, width = (int(v) for v in arrays["occluder_shape"])
        occluder = None if height * width == 0 else np.unpackbits(
            arrays["occluder_bits"], count=height * width).astype(bool).reshape(height, width)
        return cls(triangles=arrays["triangles"], lip_colours=arrays["lip_colours"],
                   steady=arrays["steady"].astype(bool), occluder=occluder)


@dataclass(frozen=True)
class Plan:
    """Per output frame (T,): base template frame, source template frame, whether it is drawn
    (a usable face) at all."""

    base: np.ndarray
    source: np.ndarray
    active: np.ndarray

    @functools.cached_property
    def transplanted(self) -> np.ndarray:
        """bool (T,): the frames that take another frame's mouth. A frame chosen as its own
        mouth's source is shown as recorded: transplanted onto itself it would only be
        resampled, its lips pulled to their smoothed colour."""
        return self.active & (self.source != self.base)


def runs(indices: np.ndarray) -> list[tuple[int, int, int]]:
    """Split a ping-pong index sequence into runs (start, stop inclusive, step +1/-1)."""
    out: list[tuple[int, int, int]] = []
    i = 0
    while i < len(indices):
        step = 1 if i + 1 >= len(indices) or indices[i + 1] >= indices[i] else -1
        j = i
        while j + 1 < len(indices) and indices[j + 1] - indices[j] == step:
            j += 1
        out.append((int(indices[i]), int(indices[j]), step))
        i = j + 1
    return out


def _decode_range(
    path: Path, first: int, last: int, info: MediaInfo | None = None, as_yuv: bool = False
) -> Iterator[tuple[int, Picture]]:
    """(index, frame) for first..last inclusive, seeking to ``first``; the last frame of the
    video repeats past its end. ``info``: the template's probe, so it is not probed again.
    ``as_yuv``: frames that can travel decoded come as YuvFrames (VideoReader.picture)."""
    from heygemd.media.video import read_range

    index = first - 1
    for index, frame in read_range(path, first, last + 1, info=info, as_yuv=as_yuv):
        yield index, frame
    if index < last:
        final = _last_frame(path, info, as_yuv)
        for missing in range(index + 1, last + 1):
            yield missing, final


def _decode_backwards(
    path: Path, first: int, last: int, info: MediaInfo | None = None, as_yuv: bool = False
) -> Iterator[Picture]:
    """Frames last..first, in that order (see video.read_range_backwards); the video's last
    frame stands for those past its end."""
    from heygemd.media.video import read_range_backwards

    frames = read_range_backwards(path, first, last + 1, info=info, as_yuv=as_yuv)
    top = next(frames, None)
    present = top[0] if top is not None else first - 1
    if present < last:
        final = _last_frame(path, info, as_yuv)
        for _ in range(present + 1, last + 1):
            yield final
    if top is not None:
        yield top[1]
        for _, frame in frames:
            yield frame


def _last_frame(path: Path, info: MediaInfo | None = None, as_yuv: bool = False) -> Picture:
    """The video's last frame: seeking near the end (the frame count is an estimate), else
    decoding it all."""
    from heygemd.media.video import VideoReader

    frame: Picture | None = None
    with VideoReader(path, info=info) as reader:
        near_end = max(0, reader.frame_count - 2 * int(round(reader.fps)))
        for _, frame in reader.pictures(near_end, as_yuv=as_yuv):  # noqa: B007
            pass
    if frame is None and near_end > 0:
        with VideoReader(path, info=info) as reader:
            for _, frame in reader.pictures(as_yuv=as_yuv):  # noqa: B007
                pass
    if frame is None:
        raise ValueError(f"{path.name} has no frames")
    return frame


def base_frames(
    path: Path, order: np.ndarray, frame_bytes: int, info: MediaInfo | None = None,
    decoded: Sequence[Picture] | None = None, as_yuv: bool = False,
) -> Iterator[Picture]:
    """Full-resolution template frames in ``order`` (a ping-pong index sequence); ``info`` is
    the template's probe, passed on so the many short ranges do not probe it again.
    ``decoded``: the template's frames already decoded (index = frame index), when held. A
    template whose frames fit KEEP_DECODED_BYTES, walked back and forth, is decoded once and
    its frames kept (:func:`_kept_forward`: th08's 11 s of output from its 5 s, 0.9 CPU-s of
    decoding in runs); a larger one is decoded run by run, the backward ones in chunks.
    ``as_yuv``: frames that can travel decoded come as YuvFrames (VideoReader.picture); the
    ``decoded`` ones come as they are held."""
    if decoded is not None and len(order) and int(np.max(order)) < len(decoded):
        for index in order:
            yield decoded[int(index)]
        return
    if len(order) and (int(np.max(order)) + 1) * frame_bytes <= KEEP_DECODED_BYTES \
            and bool(np.any(np.diff(order) < 0)):
        yield from _kept_forward(path, order, info, as_yuv)
        return
    video = info.video if info is not None else None
    held_bytes = frame_bytes / 3 * held_bytes_per_pixel(video)
    chunk = max(1, int(REVERSE_BUDGET_BYTES // max(held_bytes, 1)))
    for start, stop, step in runs(order):
        if step > 0:
            for _, frame in _decode_range(path, start, stop, info, as_yuv):
                yield frame
            allocator.give_back()
            continue
        top = start
        while top >= stop:
            low = max(stop, top - chunk + 1)
            yield from _decode_backwards(path, low, top, info, as_yuv)
            # the chunk's frames and the decoder's pool are freed: their pages go back now
            allocator.give_back()
            top = low - 1


def _kept_forward(path: Path, order: np.ndarray, info: MediaInfo | None = None,
                  as_yuv: bool = False) -> Iterator[Picture]:
    """Frames in ``order`` from one forward decode, each frame kept once decoded (up to the
    largest index asked); the video's last frame stands for those past its end."""
    from contextlib import closing

    from heygemd.media.video import VideoReader

    kept: list[Picture] = []
    ended = False
    with VideoReader(path, info=info) as reader, \
            closing(reader.pictures(as_yuv=as_yuv)) as frames:
        for index in order:
            while not ended and len(kept) <= index:
                item = next(frames, None)
                if item is None:
                    ended = True
                else:
                    kept.append(item[1])
            if not kept:
                raise ValueError(f"{path.name} has no frames")
            yield kept[min(int(index), len(kept) - 1)]


def transplant(
    frames: list[Picture],
    plan_rows: list[tuple[int, int]],
    analysis: TemplateAnalysis,
    constants: Constants,
    device: str,
    hands: list[list[np.ndarray]] | None = None,
) -> list[Picture]:
    """Replace the lower face of each base frame with its source frame's mouth.

    frames: B base frames uint8 (H, W, 3) or YuvFrames (modified copies are returned, of the
    same kind: a YuvFrame's pixels outside the new mouth stay as decoded); plan_rows: B pairs
    (base index, source index) into the analysis. What either frame alone shows there (a
    burned-in caption: :mod:`.overlay`) stays as the base frame has it, and so do the ``hands``
    in front of each base frame's face (per frame, float (21, 2) landmarks in its pixels:
    handkeep.py).
    """
    import torch

    from heygemd.engines import compose

    side = analysis.crops.shape[1]
    targets, sources_v, polygons, bases = [], [], [], []
    for frame, (b, s) in zip(frames, plan_rows, strict=True):
        ob, os_ = analysis.crop_origin[b], analysis.crop_origin[s]
        sources_v.append(mesh.vertices(analysis.landmarks[s]) - os_)
        targets.append(mesh.target_vertices(analysis.landmarks[s], analysis.landmarks[b]) - ob)
        polygons.append(mesh.mask_polygon(targets[-1]))
        bases.append(_base_crop(frame, ob, side))
    sources = crops.take(analysis.crops, [s for _, s in plan_rows])
    # Only the blend mask's box changes (about a fifth of the crop): warp and blend just that.
    x0, y0, x1, y1 = mask_window(polygons, side)
    shift = np.array([x0, y0], dtype=np.float64)
    h, w = y1 - y0, x1 - x0
    triangles = constants.triangles
    affines = [warp.triangle_affines(sv, tv - shift, triangles)
               for sv, tv in zip(sources_v, targets, strict=True)]
    tri_maps = np.stack([warp.triangle_map(tv - shift, triangles, h, w) for tv in targets])
    occluder = constants.occluder
    occluded = None
    if occluder is not None:  # the occluder warped with each source, as a fourth channel
        carried = np.stack([_picture_part(occluder, analysis.crop_origin[s], (side, side))
                            for _, s in plan_rows])
        warped, covered = warp.warp_batch(np.concatenate([sources, carried[..., None]], axis=3),
                                          affines, tri_maps, device)
        here = np.stack([_picture_part(occluder, analysis.crop_origin[b] + [x0, y0], (h, w))
                         for b, _ in plan_rows])
        occluded = torch.maximum(warped[:, 3:4].div(255.0).clamp(0.0, 1.0),
                                 torch.from_numpy(here).to(device).unsqueeze(1).float() / 255.0)
        warped = warped[:, :3]
    else:
        warped, covered = warp.warp_batch(sources, affines, tri_maps, device)
    if hands is not None and any(hands):  # the base's hands, in front like an occluder
        held = torch.from_numpy(np.stack([
            hand_mask(found, (h, w), (int(analysis.crop_origin[b][0]) + x0,
                                      int(analysis.crop_origin[b][1]) + y0))
            for found, (b, _) in zip(hands, plan_rows, strict=True)])).to(device)
        held = held.unsqueeze(1).float()
        occluded = held if occluded is None else torch.maximum(occluded, held)
    stacked = np.stack(bases)
    base_np = stacked[:, y0:y1, x0:x1]
    base_t = torch.from_numpy(base_np).to(device).permute(0, 3, 1, 2).float() / 255.0
    hard = torch.from_numpy(hard_masks([poly - shift for poly in polygons], h, w)).to(device)
    alpha, rim = blend_weights(hard, covered, FEATHER * side)
    source_t = warped.div_(255.0)  # the warp keeps the detail (warp.warp_batch): no sharpening
    corner_y = torch.tensor([float(tv[list(mesh.CORNER_VERTICES), 1].mean()) - y0
                             for tv in targets], device=device)
    source_lips = torch.from_numpy(colour.lip_bands(
        [(tv[list(mesh.LIP_OUTER_VERTICES)] - shift, tv[list(mesh.LIP_INNER_VERTICES)] - shift)
         for tv in targets], h, w)).to(device)
    lip_target = torch.from_numpy(constants.lip_colours[[b for b, _ in plan_rows]]).to(device)
    matched = colour.match_mouth(base_t, source_t, rim, corner_y,
                                 lip_target.reshape(len(plan_rows), -1, 1, 1), source_lips)
    own = [mesh.vertices(analysis.landmarks[b]) - analysis.crop_origin[b] for b, _ in plan_rows]
    zone = torch.from_numpy(mouth_zones(targets, own, shift, h, w))
    judged = (alpha > 0).float() * (1.0 - zone.to(device))
    keep = overlay.guard(
        base_t, matched, judged, torch.from_numpy(overlay.palettes(stacked)).to(device),
        torch.from_numpy(overlay.palettes(sources)).to(device),
        torch.from_numpy(constants.steady).to(device), side,
        None if occluded is None
        else compose.widened(occluded, OCCLUDER_GROW) * (alpha > 0).float())
    out = compose.blend(base_t, matched, alpha * (1.0 - keep))
    windows = out.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu()
    result: list[Picture] = []
    for frame, window, before, (b, _) in zip(frames, windows.numpy(), base_np, plan_rows,
                                             strict=True):
        fx, fy = int(analysis.crop_origin[b][0]) + x0, int(analysis.crop_origin[b][1]) + y0
        hh, ww = max(0, min(h, frame.shape[0] - fy)), max(0, min(w, frame.shape[1] - fx))
        result.append(with_pixels(frame, fx, fy, before[:hh, :ww], window[:hh, :ww]))
    return result


def mouth_zone(target: np.ndarray) -> np.ndarray:
    """The moved outer lips (P, 2) of target vertices (V, 2), pushed out from their centre by
    overlay.ZONE_SCALE: where a new mouth may show what its base frame lacks."""
    lips = target[list(mesh.LIP_OUTER_VERTICES)]
    centre = lips.mean(axis=0)
    return centre + (lips - centre) * overlay.ZONE_SCALE


def mouth_zones(targets: list[np.ndarray], own: list[np.ndarray], shift: np.ndarray, height: int,
                width: int) -> np.ndarray:
    """float32 (B, 1, height, width): where the new mouth or the base frame's own may show what
    the other lacks (teeth, tongue), not judged by the overlay guard: the moved outer lips
    (targets: B target vertices (V, 2)) and the base frame's (own: B mesh vertices (V, 2) of
    its landmarks), in crop pixels, each pushed out (:func:`mouth_zone`); shift: the window's
    corner (x0, y0)."""
    return np.maximum(hard_masks([mouth_zone(t) - shift for t in targets], height, width),
                      hard_masks([mouth_zone(o) - shift for o in own], height, width))


def mask_window(polygons: list[np.ndarray], side: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) in crop pixels holding every polygon (P, 2) of a batch, with a margin;
    corners on the feathering grid (multiples of FEATHER_STEP) so the feathering is unchanged."""
    points = np.concatenate(polygons)
    lo = np.floor(points.min(axis=0)) - 2
    hi = np.ceil(points.max(axis=0)) + 2
    lo = np.clip(lo // FEATHER_STEP * FEATHER_STEP, 0, side - 1).astype(int)
    hi = np.clip(-(-hi // FEATHER_STEP) * FEATHER_STEP, lo + 1, side).astype(int)
    return int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])


def hard_masks(polygons: list[np.ndarray], side: int, width: int | None = None) -> np.ndarray:
    """float32 (B, 1, side, width or side): 1 inside each convex polygon (P, 2) in pixels."""
    import cv2

    out = np.zeros((len(polygons), 1, side, width or side), dtype=np.float32)
    for i, poly in enumerate(polygons):
        pts = np.round(cv2.convexHull(poly.astype(np.float32)).reshape(-1, 2) * 16)
        cv2.fillConvexPoly(out[i, 0], pts.astype(np.int32), (1.0,), lineType=cv2.LINE_8,
                           shift=4)
    return out


def blend_weights(hard: Any, covered: Any, feather_px: float | None = None) -> tuple[Any, Any]:
    """Feathered blend weight and colour-matching rim, two (B, 1, H, W) tensors.

    hard: (B, 1, H, W) hard mask; covered: (B, 1, H, W) 1 where the warped mesh has pixels;
    feather_px: edge softness (default FEATHER of the width). The weight is 0 outside the mask
    and rises smoothly inside it (no hard edge); the rim is the outer band where base and source
    both show skin. The wide blur runs at 1/FEATHER_STEP size.
    """
    import torch
    import torch.nn.functional as F

    from heygemd.engines import compose

    size = tuple(covered.shape[-2:])
    feather = FEATHER * size[1] if feather_px is None else feather_px
    hard = hard * covered
    small = F.avg_pool2d(hard, FEATHER_STEP, ceil_mode=True)
    soft = compose.feather_inside((small > 0.999).float(), feather / FEATHER_STEP)
    up = F.interpolate(soft, size=size, mode="bilinear", align_corners=False)
    alpha = up * hard
    rim = hard * (alpha < 0.5).float()
    rim = torch.where(rim.sum(dim=(2, 3), keepdim=True) > 0, rim, hard)
    return alpha, rim


def _picture_part(mask: np.ndarray, origin: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (h, w): 255 where the picture's bool ``mask`` is set, read at ``origin`` (x0, y0),
    0 beyond the picture."""
    h, w = size
    x0, y0 = int(origin[0]), int(origin[1])
    out = np.zeros((h, w), np.uint8)
    part = mask[max(y0, 0) : y0 + h, max(x0, 0) : x0 + w]
    out[max(-y0, 0) : max(-y0, 0) + part.shape[0], max(-x0, 0) : max(-x0, 0) + part.shape[1]] = \
        part * np.uint8(255)
    return out


def _base_crop(frame: Picture, origin: np.ndarray, side: int) -> np.ndarray:
    """RGB uint8 (side, side, 3) of ``frame`` from ``origin`` (x0, y0), its edge repeated past
    the picture's."""
    x0, y0 = int(origin[0]), int(origin[1])
    crop = region_of(frame, x0, y0, side, side)
    if crop.shape[:2] != (side, side):
        crop = np.pad(crop, ((0, side - crop.shape[0]), (0, side - crop.shape[1]), (0, 0)), "edge")
    return crop
