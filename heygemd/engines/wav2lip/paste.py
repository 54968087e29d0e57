"""One batch of faces through the generator and back into their frames.

The middle of the engine: frames and boxes in, frames out, with the work in torch on the
engine's device. Frames are uint8 (H, W, 3) RGB, or YuvFrames standing for such (only each
box turned to RGB, only the pixels pasted turned back); the generator sees BGR, as trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from heygemd.engines import compose
from heygemd.engines.wav2lip.model import FACE_SIZE, Wav2LipGenerator
from heygemd.media.yuv import Picture, region_of, with_pixels

MASK_CUT = 0.5  # the generator regenerates the crop below its middle row
MASK_FEATHER = 0.06  # feather width, fraction of the crop
MASK_GROW = 1.04  # outline scaled about its centre so the template's jaw edge is covered
HAND_GROW = 3  # pixels a kept hand's mask reaches past its outline, then softened as much


@dataclass(frozen=True)
class FaceJob:
    """One face to regenerate: the frame, its crop box (whole pixels, inside the frame), the
    lower-face and lip outlines (float (K, 2), (L, 2) in pixels), the generated mouth's
    weight (0..1, from the silence gate), and where a hand in front of the face is kept
    (uint8 (h, w) of the box, 1 on the hand: engines.handkeep), if anywhere."""

    frame: Picture
    box: tuple[int, int, int, int]
    lower_face: np.ndarray
    lips: np.ndarray
    weight: float
    held: np.ndarray | None = None


@dataclass(frozen=True)
class PasteOptions:
    colour_match: str  # "lab" | "rgb" | "none"
    sharpen: float


def boxes(jobs: Sequence[FaceJob]) -> list[np.ndarray]:
    """RGB uint8 (h, w, 3) of each job's box in its frame."""
    out = []
    for job in jobs:
        x0, y0, x1, y1 = job.box
        out.append(region_of(job.frame, x0, y0, x1 - x0, y1 - y0))
    return out


def face_crops(regions: Sequence[np.ndarray]) -> np.ndarray:
    """uint8 (A, 96, 96, 3) RGB crops of each job's box (:func:`boxes`), area-averaged when
    shrinking."""
    crops = []
    for region in regions:
        shrink = region.shape[0] > FACE_SIZE
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        crops.append(cv2.resize(region, (FACE_SIZE, FACE_SIZE), interpolation=interpolation))
    return np.stack(crops)


def generator_input(crops: torch.Tensor) -> torch.Tensor:
    """RGB float (A, 3, 96, 96) in [0, 1] -> (A, 6, 96, 96): [BGR with lower half zeroed, BGR]."""
    bgr = crops.flip(1)
    masked = bgr.clone()
    masked[:, :, FACE_SIZE // 2 :] = 0
    return torch.cat((masked, bgr), dim=1)


def generate(
    model: Wav2LipGenerator, mel: torch.Tensor, crops: torch.Tensor
) -> torch.Tensor:
    """mel (A, 1, 80, 16), RGB crops (A, 3, 96, 96) float32 -> generated RGB float32 (A, 3, 96,
    96). Runs in the model's dtype (fp16 on CUDA)."""
    dtype = next(model.parameters()).dtype
    with torch.inference_mode():
        out = model(mel.to(dtype), generator_input(crops).to(dtype))
    return out.float().flip(1)


def _grown(points: np.ndarray) -> np.ndarray:
    centre = points.mean(axis=0, keepdims=True)
    return centre + (points - centre) * MASK_GROW


def outlines(jobs: Sequence[FaceJob]) -> tuple[np.ndarray, np.ndarray]:
    """Lower-face and lip outlines in crop coordinates: float32 (A, K, 2), (A, L, 2)."""
    lower, lips = [], []
    for job in jobs:
        x0, y0, x1, y1 = job.box
        scale = np.array([x1 - x0, y1 - y0], dtype=np.float64)
        lower.append((_grown(job.lower_face) - (x0, y0)) / scale)
        lips.append((job.lips - (x0, y0)) / scale)
    return np.stack(lower).astype(np.float32), np.stack(lips).astype(np.float32)


def masks(lower: torch.Tensor, lips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Feathered paste mask and colour-statistics weight (skin of the lower face without the
    lips), both (A, 1, 96, 96), from outlines (A, K, 2) and (A, L, 2) in crop coordinates."""
    cut = torch.full((lower.shape[0],), MASK_CUT, device=lower.device)
    hard = compose.polygon_mask(lower, FACE_SIZE) * compose.rows_below(cut, FACE_SIZE)
    paste = compose.feather_inside(hard, MASK_FEATHER * FACE_SIZE)
    skin = hard * (1 - compose.polygon_mask(lips, FACE_SIZE))
    return paste, skin


def paste_batch(
    model: Wav2LipGenerator,
    jobs: Sequence[FaceJob],
    mel: np.ndarray,
    options: PasteOptions,
    device: str,
) -> list[Picture]:
    """Regenerate the lower face of every job; returns new frames (copies, of each job's
    frame's kind).

    mel: float32 (A, 1, 80, 16), one window per job.
    """
    regions = boxes(jobs)
    crops = torch.from_numpy(face_crops(regions)).to(device).permute(0, 3, 1, 2).float() / 255
    generated = generate(model, torch.from_numpy(mel).to(device), crops)
    lower, lips = (torch.from_numpy(a).to(device) for a in outlines(jobs))
    paste_mask, skin = masks(lower, lips)
    space = "rgb" if options.colour_match == "none" else options.colour_match
    gain, offset = compose.colour_transfer(generated, crops, skin, space)  # type: ignore[arg-type]
    if options.colour_match == "none":
        gain, offset = torch.ones_like(gain), torch.zeros_like(offset)
    return [
        _paste_one(job, regions[i], generated[i : i + 1], paste_mask[i : i + 1],
                   gain[i : i + 1], offset[i : i + 1], space, options.sharpen)
        for i, job in enumerate(jobs)
    ]  # fmt: skip


def _paste_one(
    job: FaceJob,
    region: np.ndarray,
    generated: torch.Tensor,
    mask: torch.Tensor,
    gain: torch.Tensor,
    offset: torch.Tensor,
    space: str,
    sharpen: float,
) -> Picture:
    x0, y0, x1, y1 = job.box
    h, w = y1 - y0, x1 - x0
    base = torch.from_numpy(region).to(generated.device).permute(2, 0, 1)[None].float() / 255
    face = compose.resize(generated, h, w)
    face = compose.apply_colour(face, gain, offset, space)  # type: ignore[arg-type]
    face = compose.sharpen(face, sharpen)
    alpha = compose.resize(mask, h, w).clamp(0, 1) * job.weight
    if job.held is not None:  # the hand stays in front
        held = torch.from_numpy(job.held).to(alpha.device).float()[None, None]
        alpha = alpha * (1 - compose.widened(held, HAND_GROW))
    merged = compose.blend(base, face, alpha)
    pixels = (merged[0].permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8)
    return with_pixels(job.frame, x0, y0, region, pixels.cpu().numpy())

