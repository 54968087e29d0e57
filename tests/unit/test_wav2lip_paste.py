"""One batch through a (stand-in) generator and back into the frame: input layout, feathered
paste inside the lower face only, the silence weight."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from heygemd.engines.wav2lip.paste import (
    FaceJob,
    PasteOptions,
    boxes,
    face_crops,
    generator_input,
    paste_batch,
)

BOX = (50, 40, 150, 160)  # x0, y0, x1, y1: a 100 x 120 crop
BASE = 100  # grey level of the synthetic frame


class WhiteGenerator(nn.Module):
    """Stands in for Wav2LipGenerator: always white, so the paste's alpha can be read back."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, mel: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        return torch.ones(face.shape[0], 3, 96, 96, dtype=face.dtype) * self.scale


def ellipse(cx: float, cy: float, rx: float, ry: float, count: int = 40) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)


def job(weight: float = 1.0) -> FaceJob:
    frame = np.full((200, 200, 3), BASE, dtype=np.uint8)
    return FaceJob(
        frame=frame,
        box=BOX,
        lower_face=ellipse(100, 130, 40, 35),
        lips=ellipse(100, 125, 12, 5),
        weight=weight,
    )


def alpha_of(out: np.ndarray) -> np.ndarray:
    return (out.astype(np.float64).mean(axis=2) - BASE) / (255 - BASE)


def run(jobs: list[FaceJob]) -> list[np.ndarray]:
    mel = np.zeros((len(jobs), 1, 80, 16), dtype=np.float32)
    return paste_batch(WhiteGenerator(), jobs, mel, PasteOptions("none", 0.0), "cpu")


def test_generator_input_layout() -> None:
    crops = torch.rand(2, 3, 96, 96)
    x = generator_input(crops)
    assert x.shape == (2, 6, 96, 96)
    assert torch.equal(x[:, 3], crops[:, 2]) and torch.equal(x[:, 5], crops[:, 0])  # BGR
    assert torch.all(x[:, :3, 48:] == 0)
    assert torch.equal(x[:, :3, :48], x[:, 3:, :48])


def test_face_crops_are_96_square() -> None:
    crops = face_crops(boxes([job(), job()]))
    assert crops.shape == (2, 96, 96, 3) and crops.dtype == np.uint8


def test_paste_touches_only_the_lower_face() -> None:
    [out] = run([job()])
    alpha = alpha_of(out)
    x0, y0, x1, y1 = BOX
    outside = np.ones_like(alpha, dtype=bool)
    outside[y0:y1, x0:x1] = False
    assert np.all(alpha[outside] == 0)
    assert np.all(alpha[: y0 + (y1 - y0) // 2 - 1] == 0)  # nothing above the crop's middle
    assert np.all(alpha[170:] == 0)  # below the chin outline (ellipse ends at 165)
    assert alpha.max() > 0.97


def test_paste_edge_is_feathered() -> None:
    [out] = run([job()])
    alpha = alpha_of(out)
    steepest = max(np.abs(np.diff(alpha, axis=0)).max(), np.abs(np.diff(alpha, axis=1)).max())
    assert steepest < 0.25  # a hard box edge would step by 1.0


def test_silence_weight_scales_the_paste() -> None:
    full, half = run([job(1.0), job(0.5)])
    assert alpha_of(half).max() == pytest.approx(alpha_of(full).max() / 2, abs=0.02)


def test_input_frame_is_not_modified() -> None:
    original = job()
    run([original])
    assert np.all(original.frame == BASE)


def test_a_kept_hand_stays_in_front_of_the_paste() -> None:
    """Where a hand is kept (FaceJob.held) the frame keeps its own pixels; the rest of the lower
    face is pasted as before."""
    held = np.zeros((120, 100), np.uint8)
    held[70:120, 45:55] = 1  # a finger up to the lips, in the box's pixels
    plain = job()
    with_hand = FaceJob(plain.frame, plain.box, plain.lower_face, plain.lips, 1.0, held)
    [before, after] = run([plain, with_hand])
    y0, x0 = BOX[1], BOX[0]
    assert alpha_of(before)[y0 + 95, x0 + 50] > 0.9
    assert alpha_of(after)[y0 + 72 : y0 + 120, x0 + 47 : x0 + 53].max() < 0.01
    np.testing.assert_array_equal(after[y0 + 95, x0 + 20], before[y0 + 95, x0 + 20])


def test_a_decoded_frame_keeps_every_pixel_outside_the_paste() -> None:
    """A YuvFrame job comes back a YuvFrame: luma changed only where the RGB paste changed a
    pixel, and the pasted pixels as white as the RGB paste made them (4:2:0 rounding)."""
    import av

    from heygemd.media.yuv import YuvFrame, as_rgb, planes

    rgb = job()
    frame = av.VideoFrame.from_ndarray(rgb.frame, format="rgb24").reformat(format="yuv420p")
    decoded = FaceJob(YuvFrame(frame), rgb.box, rgb.lower_face, rgb.lips, rgb.weight)
    [want, got] = run([rgb, decoded])
    assert isinstance(got, YuvFrame)
    pasted = np.any(want != rgb.frame, axis=2)
    luma, source = planes(got.frame)[0], planes(frame)[0]
    assert np.array_equal(luma[~pasted], source[~pasted])
    assert pasted.sum() > 1000
    assert np.abs(as_rgb(got)[pasted].astype(int) - want[pasted]).mean() < 2.0
