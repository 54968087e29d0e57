"""Masks, colour matching and blending used to paste generated faces back."""

from __future__ import annotations

import pytest
import torch

from heygemd.engines.compose import (
    apply_colour,
    blend,
    colour_transfer,
    feather_inside,
    gaussian_blur,
    lab_to_rgb,
    lower_face_mask,
    masked_mean_std,
    match_colour,
    polygon_mask,
    resize,
    rgb_to_lab,
    sharpen,
)

SQUARE = torch.tensor([[[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.2, 0.8]]])


def test_polygon_mask_of_a_square() -> None:
    mask = polygon_mask(SQUARE, 10)
    assert mask.shape == (1, 1, 10, 10)
    assert mask[0, 0, 2:8, 2:8].eq(1).all()
    assert mask.sum() == 36


def test_polygon_mask_of_a_concave_shape() -> None:
    # a "U": the notch at the top middle is outside
    u_shape = torch.tensor(
        [[[0.1, 0.1], [0.4, 0.1], [0.4, 0.6], [0.6, 0.6], [0.6, 0.1], [0.9, 0.1], [0.9, 0.9],
          [0.1, 0.9]]]
    )  # fmt: skip
    mask = polygon_mask(u_shape, 20)[0, 0]
    assert mask[4, 10] == 0 and mask[4, 4] == 1 and mask[15, 10] == 1


def test_polygon_mask_is_batched_independently() -> None:
    shifted = SQUARE + 0.1
    masks = polygon_mask(torch.cat((SQUARE, shifted)), 20)
    assert torch.equal(masks[0], polygon_mask(SQUARE, 20)[0])
    assert not torch.equal(masks[0], masks[1])


def test_feathered_mask_stays_inside_and_is_smooth() -> None:
    size, feather = 96, 0.05
    mask = lower_face_mask(SQUARE, torch.tensor([0.5]), size, feather)
    hard = polygon_mask(SQUARE, size)
    assert mask.shape == (1, 1, size, size)
    assert float(mask.max()) > 0.99
    assert torch.all(mask[hard == 0] == 0)
    assert torch.all(mask[0, 0, :48] == 0)  # nothing above the cut row
    steepest = max(
        float(mask.diff(dim=-1).abs().max()), float(mask.diff(dim=-2).abs().max())
    )
    assert steepest < 3.0 / (feather * size)  # a ramp over several pixels, not a step


def test_feather_zero_keeps_the_hard_mask() -> None:
    hard = polygon_mask(SQUARE, 16)
    assert torch.equal(feather_inside(hard, 0.0), hard)


def test_gaussian_blur_preserves_constants_and_mass() -> None:
    flat = torch.full((2, 3, 12, 12), 0.3)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat)
    spike = torch.zeros(1, 1, 31, 31)
    spike[0, 0, 15, 15] = 1
    blurred = gaussian_blur(spike, 2.0)
    assert float(blurred.sum()) == pytest.approx(1.0, abs=1e-5)
    assert float(blurred.max()) < 0.05


def test_lab_round_trip_and_known_values() -> None:
    torch.manual_seed(0)
    rgb = torch.rand(2, 3, 8, 8)
    assert torch.allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-4)
    white = rgb_to_lab(torch.ones(1, 3, 1, 1)).flatten()
    assert torch.allclose(white, torch.tensor([100.0, 0.0, 0.0]), atol=0.05)
    red = rgb_to_lab(torch.tensor([1.0, 0.0, 0.0]).reshape(1, 3, 1, 1)).flatten()
    assert torch.allclose(red, torch.tensor([53.24, 80.09, 67.20]), atol=0.1)


def test_masked_mean_std_ignores_unweighted_pixels() -> None:
    images = torch.zeros(1, 1, 4, 4)
    images[0, 0, :2] = 1.0
    weight = torch.zeros(1, 1, 4, 4)
    weight[0, 0, :2] = 1.0
    mean, std = masked_mean_std(images, weight)
    assert float(mean) == pytest.approx(1.0) and float(std) == pytest.approx(0.0)
    mean, std = masked_mean_std(images, torch.zeros_like(weight))
    assert float(mean) == 0.0 and float(std) == 1.0


@pytest.mark.parametrize("space", ["lab", "rgb"])
def test_match_colour_moves_statistics_to_the_reference(space: str) -> None:
    torch.manual_seed(0)
    reference = (torch.rand(2, 3, 16, 16) * 0.2 + torch.tensor([0.6, 0.4, 0.3]).reshape(1, 3, 1, 1))
    source = (reference * 0.9 + 0.08).clamp(0, 1)  # a colour cast
    weight = torch.ones(2, 1, 16, 16)
    matched = match_colour(source, reference, weight, space)  # type: ignore[arg-type]
    before = (source.mean(dim=(2, 3)) - reference.mean(dim=(2, 3))).abs().max()
    after = (matched.mean(dim=(2, 3)) - reference.mean(dim=(2, 3))).abs().max()
    assert float(after) < 0.2 * float(before)


def test_colour_gain_is_limited() -> None:
    flat = torch.full((1, 3, 8, 8), 0.5) + torch.randn(1, 3, 8, 8) * 0.001
    noisy = torch.rand(1, 3, 8, 8)
    gain, _ = colour_transfer(flat, noisy, torch.ones(1, 1, 8, 8), "rgb")
    assert float(gain.max()) <= 1.5


def test_apply_colour_identity() -> None:
    images = torch.rand(1, 3, 5, 5)
    same = apply_colour(images, torch.ones(1, 3, 1, 1), torch.zeros(1, 3, 1, 1), "lab")
    assert torch.allclose(same, images, atol=1e-4)


def test_blend_keeps_base_exactly_where_alpha_is_zero() -> None:
    base = torch.rand(1, 3, 6, 6)
    overlay = torch.rand(1, 3, 6, 6)
    alpha = torch.zeros(1, 1, 6, 6)
    alpha[..., 3:, :] = 0.5
    out = blend(base, overlay, alpha)
    assert torch.equal(out[..., :3, :], base[..., :3, :])
    assert torch.allclose(out[..., 3:, :], (base[..., 3:, :] + overlay[..., 3:, :]) / 2)


def test_sharpen_increases_local_contrast_only_when_asked() -> None:
    torch.manual_seed(0)
    images = gaussian_blur(torch.rand(1, 3, 32, 32), 1.5)
    assert torch.equal(sharpen(images, 0.0), images)
    sharper = sharpen(images, 1.0)
    assert float(sharper.diff(dim=-1).abs().mean()) > float(images.diff(dim=-1).abs().mean())


def test_resize_shapes() -> None:
    images = torch.rand(2, 3, 96, 96)
    assert resize(images, 200, 150).shape == (2, 3, 200, 150)
    assert resize(images, 48, 48).shape == (2, 3, 48, 48)
    assert resize(images, 96, 96) is images


def test_mask_cut_by_the_crop_border_fades_out_before_it() -> None:
    overhanging = torch.tensor([[[0.2, 0.3], [0.8, 0.3], [0.8, 1.2], [0.2, 1.2]]])
    mask = lower_face_mask(overhanging, torch.tensor([0.0]), 64, 0.05)
    assert float(mask[0, 0, -1].max()) < 0.2  # the last row is half a pixel from the border
    assert float(mask[0, 0, 40].max()) > 0.99
