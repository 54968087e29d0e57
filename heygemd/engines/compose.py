"""Putting a generated face region back into a frame: masks, colour matching, blending.

Shared by the engines. Pure torch functions on batches, the same on CPU and CUDA (float32
math; callers convert their dtype). Conventions: images are float (B, 3, H, W) RGB in [0, 1];
masks and weights are float (B, 1, H, W) in [0, 1]; polygons are float (B, K, 2) of (x, y) in
crop-normalised coordinates, (0, 0) the top-left corner and (1, 1) the bottom-right corner of
the crop.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

ColourSpace = Literal["lab", "rgb"]

MIN_STD_RATIO = 0.67  # colour matching never shrinks or stretches contrast beyond these factors
MAX_STD_RATIO = 1.5
_EPS = 1e-6
_POLYGON_CHUNK_ELEMENTS = 1 << 23  # (items x edges x pixels) per step of polygon_mask

# sRGB (D65) <-> CIE XYZ, and the D65 white point.
_RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
_WHITE = (0.95047, 1.0, 1.08883)
_LAB_DELTA = 6.0 / 29.0


def pixel_grid(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates of a size x size crop, normalised: two float (size, size)."""
    centres = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    return xs, ys


def polygon_mask(polygons: torch.Tensor, size: int) -> torch.Tensor:
    """Hard inside-test of closed polygons (B, K, 2) on a size x size grid: (B, 1, size, size).

    Even-odd rule over all edges at once, a few batch items at a time (bounded memory).
    """
    polygons = polygons.float()
    xs, ys = pixel_grid(size, polygons.device)
    px, py = xs.reshape(1, 1, -1), ys.reshape(1, 1, -1)  # (1, 1, P)
    per_item = polygons.shape[1] * px.shape[-1]
    step = max(1, _POLYGON_CHUNK_ELEMENTS // max(per_item, 1))
    parts = []
    for chunk in polygons.split(step):
        x0, y0 = chunk[..., 0:1], chunk[..., 1:2]  # (b, K, 1)
        nxt = chunk.roll(-1, dims=1)
        x1, y1 = nxt[..., 0:1], nxt[..., 1:2]
        straddles = (y0 > py) != (y1 > py)
        dy = torch.where(y1 == y0, torch.full_like(y1, _EPS), y1 - y0)
        crossing_x = x0 + (py - y0) * ((x1 - x0) / dy)
        crossings = (straddles & (px < crossing_x)).sum(dim=1)  # (b, P)
        parts.append((crossings % 2).float())
    return torch.cat(parts).reshape(-1, 1, size, size)


def gaussian_blur(
    images: torch.Tensor, sigma_px: float, padding: Literal["replicate", "constant"] = "replicate"
) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W); sigma in pixels. Beyond the border the image
    continues its edge ("replicate") or is 0 ("constant")."""
    if sigma_px <= 0:
        return images
    radius = max(1, int(math.ceil(3 * sigma_px)))
    taps = torch.arange(-radius, radius + 1, device=images.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma_px) ** 2)
    kernel = (kernel / kernel.sum()).to(images.dtype)
    channels = images.shape[1]
    horizontal = kernel.reshape(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.reshape(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    out = F.pad(images, (radius, radius, 0, 0), mode=padding)
    out = F.conv2d(out, horizontal, groups=channels)
    out = F.pad(out, (0, 0, radius, radius), mode=padding)
    return F.conv2d(out, vertical, groups=channels)


def widened(mask: torch.Tensor, grow_px: int) -> torch.Tensor:
    """A soft keep mask (B, 1, H, W) in [0, 1] grown by ``grow_px`` pixels and softened as much
    past that: what is kept in front (an occluder, a hand) has an edge known only roughly, and
    what is outside it would show as a thin outline."""
    grown = F.max_pool2d(mask, 2 * grow_px + 1, stride=1, padding=grow_px)
    return gaussian_blur((grown * 2.0).clamp(0.0, 1.0), grow_px / 2.0)


def feather_inside(mask: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Soften a hard mask (B, 1, H, W) inwards: 0 on and outside its edge, rising to 1 about
    2*sigma_px inside it. Pixels outside the hard mask therefore stay exactly untouched. The
    image border counts as an edge too (a mask cut by the crop fades out before the border)."""
    if sigma_px <= 0:
        return mask
    blurred = gaussian_blur(mask, sigma_px, padding="constant")
    return ((blurred - 0.5) * 2.0).clamp(0.0, 1.0) * mask


def lower_face_mask(
    polygons: torch.Tensor, cut_y: torch.Tensor, size: int, feather: float
) -> torch.Tensor:
    """Feathered mask of the lower face: (B, 1, size, size) in [0, 1].

    polygons: (B, K, 2) lower-face outline in crop coordinates; cut_y: (B,) the mask ends above
    this crop row fraction (e.g. 0.5, where the generator's regenerated half starts);
    feather: edge softness as a fraction of ``size``.
    """
    hard = polygon_mask(polygons, size) * rows_below(cut_y, size)
    return feather_inside(hard, feather * size)


def rows_below(cut_y: torch.Tensor, size: int) -> torch.Tensor:
    """1 for grid rows whose centre lies at or below ``cut_y`` (B,) (a crop fraction), else 0:
    (B, 1, size, size)."""
    _, ys = pixel_grid(size, cut_y.device)
    return (ys[None, None] >= cut_y.float().reshape(-1, 1, 1, 1)).float()


def _srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0) + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(min=0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


def _matrix(rows: tuple[tuple[float, ...], ...], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32, device=like.device)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (B, 3, H, W) in [0, 1] -> CIE Lab (D65): L in [0, 100], a and b roughly +-128."""
    linear = _srgb_to_linear(rgb.float())
    xyz = torch.einsum("ij,bjhw->bihw", _matrix(_RGB_TO_XYZ, rgb), linear)
    xyz = xyz / torch.tensor(_WHITE, device=rgb.device).reshape(1, 3, 1, 1)
    f = torch.where(
        xyz > _LAB_DELTA**3, xyz.clamp(min=_EPS) ** (1 / 3), xyz / (3 * _LAB_DELTA**2) + 4 / 29
    )
    lightness = 116 * f[:, 1] - 16
    a = 500 * (f[:, 0] - f[:, 1])
    b = 200 * (f[:, 1] - f[:, 2])
    return torch.stack((lightness, a, b), dim=1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_lab`; the result is clipped to [0, 1]."""
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack((fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200), dim=1)
    xyz = torch.where(f > _LAB_DELTA, f**3, 3 * _LAB_DELTA**2 * (f - 4 / 29))
    xyz = xyz * torch.tensor(_WHITE, device=lab.device).reshape(1, 3, 1, 1)
    inverse = torch.linalg.inv(_matrix(_RGB_TO_XYZ, lab))
    linear = torch.einsum("ij,bjhw->bihw", inverse, xyz)
    return _linear_to_srgb(linear).clamp(0.0, 1.0)


def masked_mean_std(
    images: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted per-channel mean and std of (B, C, H, W) under weight (B, 1, H, W): two
    (B, C, 1, 1). A batch item with zero total weight gets mean 0 and std 1."""
    total = weight.sum(dim=(2, 3), keepdim=True)
    safe = total.clamp(min=_EPS)
    mean = (images * weight).sum(dim=(2, 3), keepdim=True) / safe
    var = ((images - mean) ** 2 * weight).sum(dim=(2, 3), keepdim=True) / safe
    empty = total <= _EPS
    mean = torch.where(empty, torch.zeros_like(mean), mean)
    std = torch.where(empty, torch.ones_like(var), var.clamp(min=0).sqrt())
    return mean, std


def colour_transfer(
    source: torch.Tensor, reference: torch.Tensor, weight: torch.Tensor, space: ColourSpace
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel gain and offset (two (B, 3, 1, 1)) in ``space`` that give ``source`` the mean
    and std of ``reference`` where ``weight`` (B, 1, H, W) is high. Apply with
    :func:`apply_colour`, at any resolution. The std ratio is limited to [0.67, 1.5]."""
    to_space = rgb_to_lab if space == "lab" else (lambda x: x.float())
    src_mean, src_std = masked_mean_std(to_space(source), weight)
    ref_mean, ref_std = masked_mean_std(to_space(reference), weight)
    gain = (ref_std / src_std.clamp(min=_EPS)).clamp(MIN_STD_RATIO, MAX_STD_RATIO)
    return gain, ref_mean - gain * src_mean


def apply_colour(
    images: torch.Tensor, gain: torch.Tensor, offset: torch.Tensor, space: ColourSpace
) -> torch.Tensor:
    """images (B, 3, H, W) RGB -> gain * x + offset in ``space`` -> RGB in [0, 1]."""
    if space == "lab":
        return lab_to_rgb(rgb_to_lab(images) * gain + offset)
    return (images.float() * gain + offset).clamp(0.0, 1.0)


def match_colour(
    source: torch.Tensor, reference: torch.Tensor, weight: torch.Tensor, space: ColourSpace = "lab"
) -> torch.Tensor:
    """``source`` (B, 3, H, W) recoloured to the statistics of ``reference`` under ``weight``."""
    gain, offset = colour_transfer(source, reference, weight, space)
    return apply_colour(source, gain, offset, space)


def sharpen(images: torch.Tensor, amount: float, sigma_px: float = 1.0) -> torch.Tensor:
    """Unsharp mask: x + amount * (x - blur(x)), clipped to [0, 1]; amount 0 returns x."""
    if amount <= 0:
        return images
    return (images + amount * (images - gaussian_blur(images, sigma_px))).clamp(0.0, 1.0)


def blend(base: torch.Tensor, overlay: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """base * (1 - alpha) + overlay * alpha; alpha (B, 1, H, W) broadcasts over channels.
    Where alpha is exactly 0 the result equals ``base`` exactly."""
    return torch.where(alpha > 0, (overlay - base).mul_(alpha).add_(base), base)


def resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) to (B, C, height, width); antialiased when shrinking."""
    if images.shape[-2:] == (height, width):
        return images
    shrinking = height < images.shape[-2] or width < images.shape[-1]
    return F.interpolate(
        images, size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking
    )
