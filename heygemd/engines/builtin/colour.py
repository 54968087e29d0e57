"""Colour of a transplanted mouth: the base frame's skin light and the base frame's own lips.

Two corrections, both measured on pixels that show the same thing in the base and the warped source:

* skin: the per-channel median of (base - source) over the mask rim *above the mouth corners*
  (under the nose, the cheeks: anchored vertices, so both show the same skin). The rim below the
  mouth follows the jaw, and when base and source open the mouth differently it holds chin in
  one and neck, shadow or background in the other: a mean over the whole rim swings by 20-30
  levels between neighbouring frames with the same source (th05: pale pink, then mauve lips).
* lips: the source's (skin-shifted) lip band is given the mean and, per channel, the spread of
  the base frame's own lip band (a gain about the mean), under a soft band around the
  transplanted lips. Templates do not hold one lip colour (th05's lipstick spans b* 9-14, a*
  33-40 over the clip); taking the base's keeps the output's lip colour on the base walk, which
  is continuous, whatever source frames are chosen. A mean shift alone keeps the contrast of an
  open source mouth's band (the shadow at the lips' inner edge): on th05 such lips came out up
  to 4.5 a* off the base's.

Pure torch on batches: images float (B, 3, H, W) in [0, 1], masks float (B, 1, H, W).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heygemd.engines.builtin.crops import LET_GO_FRAMES, let_go
from heygemd.faces import landmarks as lm

MIN_RIM_PIXELS = 32  # fewer usable rim pixels above the mouth: the whole rim is used
MIN_LIP_PIXELS = 24  # fewer lip pixels in base or source: no lip correction
MAX_LIP_SHIFT = 0.1  # per channel (0..1): bad landmarks cannot paint the lips a wild colour
# The lip band's spread is scaled by no less / no more than these. At 0.8-1.25, th05 under
# Mandarin news (the lipstick test) keeps its lips within a*/b* 3.5 of the base's, against 4.5
# with the mean matched alone; the base/source spread ratio there spans 0.7-1.5.
MIN_LIP_GAIN = 0.8
MAX_LIP_GAIN = 1.25
LIP_SOFTNESS = 0.006  # lip weight blur sigma, share of the crop side
# The per-frame lip mean of a template jitters by 2-3 levels of a* between neighbouring frames
# (thin lips of an open mouth, landmark jitter): the lip target (mean and spread) is smoothed
# over this long.
LIP_SMOOTH_SECONDS = 0.08


def skin_shift(base: Any, source: Any, rim: Any, corner_y: Any) -> Any:
    """Per-channel shift (B, 3, 1, 1) taking ``source`` skin to ``base`` skin.

    rim: (B, 1, H, W) colour-matching band; corner_y: (B,) row of the mouth corners in the
    window. The median of base - source over the rim rows above corner_y (or over the whole
    rim where that holds under MIN_RIM_PIXELS pixels).
    """
    import torch

    rows = torch.arange(rim.shape[2], device=rim.device, dtype=torch.float32)
    upper = rim * (rows.reshape(1, 1, -1, 1) < corner_y.reshape(-1, 1, 1, 1)).float()
    diff = base - source
    out = torch.zeros(base.shape[0], base.shape[1], 1, 1, device=base.device, dtype=base.dtype)
    for i in range(base.shape[0]):
        chosen = upper[i, 0] > 0.5
        if int(chosen.sum()) < MIN_RIM_PIXELS:
            chosen = rim[i, 0] > 0.5
        if int(chosen.sum()) == 0:
            continue
        out[i, :, 0, 0] = diff[i][:, chosen].median(dim=1).values
    return out


def lip_shift(target: Any, source: Any, source_lips: Any) -> Any:
    """Per-channel shift (B, 3, 1, 1) giving the source's lip band the ``target`` mean colour.

    target: (B, 3, 1, 1) (or (B, 6, 1, 1), mean then spread: the spread is not read), NaN where
    unknown; source_lips: (B, 1, H, W) lip band of ``source``. Zero where the target is unknown
    or the band too small to trust; within +-MAX_LIP_SHIFT.
    """
    return lip_transfer(target, source, source_lips)[2]


def lip_transfer(target: Any, source: Any, source_lips: Any) -> tuple[Any, Any, Any]:
    """(gain, source mean, shift), three (B, 3, 1, 1): ``mean + shift + gain * (x - mean)`` gives
    the source's lip band (source_lips (B, 1, H, W)) the ``target`` colour.

    target: (B, 3, 1, 1) mean RGB, or (B, 6, 1, 1) mean then per-channel spread (std) RGB; NaN
    where unknown. The gain (target spread / source spread) is within [MIN_LIP_GAIN,
    MAX_LIP_GAIN], the shift within +-MAX_LIP_SHIFT; gain 1 and shift 0 where the target is
    unknown or the band holds under MIN_LIP_PIXELS pixels (gain 1 too for a mean-only target).
    """
    import torch

    from heygemd.engines import compose

    source_mean, source_std = compose.masked_mean_std(source, source_lips)
    enough = source_lips.sum(dim=(2, 3), keepdim=True) >= MIN_LIP_PIXELS
    mean = target[:, :3]
    known = (torch.isfinite(mean).all(dim=1, keepdim=True) & enough).float()
    shift = (torch.nan_to_num(mean) - source_mean).clamp(-MAX_LIP_SHIFT, MAX_LIP_SHIFT) * known
    gain = torch.ones_like(source_std)
    if target.shape[1] == 6:
        spread = target[:, 3:]
        ratio = torch.nan_to_num(spread, nan=1.0) / source_std.clamp(min=1e-3)
        usable = known * torch.isfinite(spread).all(dim=1, keepdim=True).float()
        gain = 1.0 + (ratio.clamp(MIN_LIP_GAIN, MAX_LIP_GAIN) - 1.0) * usable
    return gain, source_mean, shift


def match_mouth(base: Any, source: Any, rim: Any, corner_y: Any, lip_target: Any,
                source_lips: Any) -> Any:
    """The warped ``source`` (B, 3, H, W) recoloured for ``base``: the skin shift everywhere,
    and the lips taken to ``lip_target`` ((B, 3, 1, 1) mean, or (B, 6, 1, 1) mean and spread:
    lip_transfer): the mean under a soft band round the source's lips (source_lips
    (B, 1, H, W)), the spread on the band itself."""
    shifted = source + skin_shift(base, source, rim, corner_y)
    gain, mean, shift = lip_transfer(lip_target, shifted, source_lips)
    side = float(max(source.shape[-2:]))
    weight = (2.0 * soft_band(source_lips, LIP_SOFTNESS * side)).clamp_(0.0, 1.0)
    # the spread's gain on the lip band itself: teeth and skin beside it, far from the lip mean,
    # keep their contrast (at the band's edge the pixels are lip-coloured: no step shows)
    change = (shifted - mean).mul_(gain - 1.0).mul_(source_lips).add_(shift)
    return shifted.add_(change.mul_(weight)).clamp_(0.0, 1.0)  # in place: the same sums


def soft_band(masks: Any, sigma_px: float) -> Any:
    """compose.gaussian_blur(masks, sigma_px) (edge-replicating) of (B, 1, H, W) masks.

    On a CPU the same separable kernel runs through OpenCV, frame by frame: torch's grouped
    conv2d takes ~3 ms a frame for a 160x250 window (a third of the transplant), OpenCV ~0.1 ms.
    Equal up to float rounding.
    """
    import torch

    from heygemd.engines import compose

    if masks.device.type != "cpu" or sigma_px <= 0:
        return compose.gaussian_blur(masks, sigma_px)
    import cv2

    radius = max(1, int(np.ceil(3 * sigma_px)))
    taps = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (taps / np.float32(sigma_px)) ** 2)
    kernel = (kernel / kernel.sum()).astype(np.float32)
    data = masks.detach().numpy().astype(np.float32, copy=False)
    out = np.empty_like(data)
    for i in range(data.shape[0]):
        out[i, 0] = cv2.sepFilter2D(data[i, 0], cv2.CV_32F, kernel, kernel,
                                    borderType=cv2.BORDER_REPLICATE)
    return torch.from_numpy(out).to(masks.dtype)


def lip_colours(crops: np.ndarray, landmarks: np.ndarray, origins: np.ndarray,
                usable: np.ndarray, fps: float) -> np.ndarray:
    """float32 (N, 6) in 0..1: each template frame's lip colour, the mean RGB (columns 0-2) and
    per-channel spread (std, columns 3-5) of its lip band, both smoothed over time (Gaussian,
    LIP_SMOOTH_SECONDS); NaN where no usable frame is near.

    crops: uint8 (N, S, S, 3) (memory-mapped; only each lip box is read, and the map's pages
    are let go every LET_GO_FRAMES frames: reading ahead around each box mapped 2.3 GB of a
    5-minute template's crops); landmarks (N, 478, 3) and origins (N, 2) in frame pixels;
    usable: bool (N,).
    """
    n = len(usable)
    raw = np.zeros((n, 6))
    weight = np.zeros(n)
    side = crops.shape[1]
    frames = np.flatnonzero(usable)
    for start in range(0, len(frames), LET_GO_FRAMES):
        for i in frames[start:start + LET_GO_FRAMES]:
            outer = landmarks[i, list(lm.LIPS_OUTER), :2] - origins[i]
            inner = landmarks[i, list(lm.LIPS_INNER), :2] - origins[i]
            x0, y0 = np.clip(np.floor(outer.min(axis=0)).astype(int) - 1, 0, side)
            x1, y1 = np.clip(np.ceil(outer.max(axis=0)).astype(int) + 2, 0, side)
            if x1 - x0 < 3 or y1 - y0 < 3:
                continue
            corner = np.array([x0, y0])
            band = lip_bands([(outer - corner, inner - corner)], y1 - y0, x1 - x0)[0, 0] > 0
            if band.sum() >= MIN_LIP_PIXELS:
                pixels = np.asarray(crops[i, y0:y1, x0:x1], np.float64)[band] / 255.0
                raw[i, :3], raw[i, 3:] = pixels.mean(axis=0), pixels.std(axis=0)
                weight[i] = 1.0
        let_go(crops)
    from scipy.ndimage import gaussian_filter1d

    sigma = max(LIP_SMOOTH_SECONDS * fps, 1e-3)
    # a weighted Gaussian average over the frames with a measurement (zeros beyond the ends)
    total = gaussian_filter1d(weight, sigma, mode="constant")
    out = gaussian_filter1d(raw * weight[:, None], sigma, axis=0, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = out / total[:, None]
    out[total < 0.25] = np.nan
    return out.astype(np.float32)


def lip_bands(contours: list[tuple[np.ndarray, np.ndarray]], height: int, width: int) -> np.ndarray:
    """float32 (B, 1, height, width): 1 between each (outer, inner) lip contour pair ((P, 2)
    each, window pixels), shrunk by a pixel so that the band holds no skin or teeth."""
    import cv2

    out = np.zeros((len(contours), 1, height, width), dtype=np.float32)
    kernel = np.ones((3, 3), np.uint8)
    for i, (outer, inner) in enumerate(contours):
        band = np.zeros((height, width), np.uint8)
        cv2.fillPoly(band, [np.round(outer * 16).astype(np.int32)], (1,), cv2.LINE_8, shift=4)
        cv2.fillPoly(band, [np.round(inner * 16).astype(np.int32)], (0,), cv2.LINE_8, shift=4)
        out[i, 0] = cv2.erode(band, kernel)
    return out
