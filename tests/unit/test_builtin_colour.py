"""Colour of the transplanted mouth: skin light from the anchored rim, lips from the base."""

from __future__ import annotations

import numpy as np
import torch

from heygemd.engines import compose
from heygemd.engines.builtin import colour

SIZE = 96
SKIN = (0.80, 0.60, 0.50)
RED_LIPS = (0.70, 0.15, 0.20)  # the base frame's lipstick
MAUVE_LIPS = (0.66, 0.18, 0.28)  # the same lipstick in another template frame
OUTER = np.array([[28.0, 50], [48, 40], [68, 50], [48, 62]])
INNER = np.array([[34.0, 50], [48, 47], [62, 50], [48, 54]])
CORNER_Y = 50.0


def _scene(light: float = 0.0) -> tuple[torch.Tensor, ...]:
    """Base and warped source windows that show the same skin above the mouth corners, but below
    them the base has its (open) chin where the source has the shadow under a closed jaw."""
    base = torch.tensor(SKIN).reshape(1, 3, 1, 1).repeat(1, 1, SIZE, SIZE)
    source = base.clone() + light
    lips = torch.from_numpy(colour.lip_bands([(OUTER, INNER)], SIZE, SIZE)) > 0
    base[:, :, lips[0, 0]] = torch.tensor(RED_LIPS).reshape(3, 1)
    source[:, :, lips[0, 0]] = torch.tensor(MAUVE_LIPS).reshape(3, 1) + light
    source[:, :, 70:] = 0.25  # shadow / neck where the base still shows its chin
    rim = torch.zeros(1, 1, SIZE, SIZE)
    rim[..., 8:16, 8:88] = 1  # under the nose
    rim[..., 8:88, 8:16] = 1  # cheeks, down to the jaw
    rim[..., 8:88, 80:88] = 1
    rim[..., 80:88, 8:88] = 1  # along the chin
    return base, source.clamp(0, 1), rim, lips.float()


def _mean(image: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    mean, _ = compose.masked_mean_std(compose.rgb_to_lab(image), mask)
    return mean.reshape(3).numpy()


def test_lips_take_the_base_lip_colour_and_skin_keeps_the_base_light() -> None:
    base, source, rim, lips = _scene(light=0.06)  # the source frame is also a little brighter
    target = torch.tensor(RED_LIPS).reshape(1, 3, 1, 1)
    out = colour.match_mouth(base, source, rim, torch.tensor([CORNER_Y]), target, lips)
    # lips: the base's lipstick (Lab within 1.5), not the source's mauve
    assert np.abs(_mean(out, lips) - _mean(base, lips)).max() < 1.5
    assert np.abs(_mean(source, lips) - _mean(base, lips)).max() > 4  # (the scene is a trap)
    # skin above the mouth corners: the base's skin exactly (the source's extra light removed)
    cheek = torch.zeros_like(lips)
    cheek[..., 20:40, 20:30] = 1
    assert np.abs(_mean(out, cheek) - _mean(base, cheek)).max() < 0.5


def test_a_mean_over_the_whole_rim_is_the_trap_this_avoids() -> None:
    base, source, rim, lips = _scene()
    naive_shift = (compose.masked_mean_std(base, rim)[0] - compose.masked_mean_std(source, rim)[0])
    robust = colour.skin_shift(base, source, rim, torch.tensor([CORNER_Y]))
    assert float(naive_shift.abs().max()) > 0.05  # the chin/shadow band pulls the mean
    assert float(robust.abs().max()) < 1e-6  # the same skin above the corners: no shift


def test_lip_colour_follows_the_target_not_the_source_from_frame_to_frame() -> None:
    base, _, rim, lips = _scene()
    target = torch.tensor(RED_LIPS).reshape(1, 3, 1, 1)
    means = []
    for shade in (0.0, 0.01, -0.03, -0.015):  # four source frames, four lip shades
        _, source, _, _ = _scene()
        source = (source + shade * lips).clamp(0, 1)
        out = colour.match_mouth(base, source, rim, torch.tensor([CORNER_Y]), target, lips)
        means.append(_mean(out, lips))
    assert np.abs(np.diff(np.array(means), axis=0)).max() < 1.0


def _two_shades(image: torch.Tensor, lips: torch.Tensor, mean: tuple, spread: tuple) -> None:
    """Paint the lip band in alternate rows mean + spread and mean - spread (in place): a
    per-channel mean ``mean`` and std ``spread`` over the band."""
    band = lips[0, 0] > 0
    rows = torch.arange(band.shape[0]).reshape(-1, 1).expand_as(band)
    centre, step = torch.tensor(mean).reshape(3, 1), torch.tensor(spread).reshape(3, 1)
    image[0][:, band & (rows % 2 == 0)] = centre + step
    image[0][:, band & (rows % 2 == 1)] = centre - step


def test_a_more_saturated_and_contrasted_source_lipstick_takes_the_base_colour_and_spread() -> None:
    """The base's lipstick in two soft shades; the source's more saturated (a* +8) and more
    contrasted: the output lips have the base's Lab mean and spread. Given the mean alone, the
    source's contrast stays."""
    base, source, rim, lips = _scene()
    _two_shades(base, lips, RED_LIPS, (0.10, 0.05, 0.05))
    _two_shades(source, lips, (0.78, 0.10, 0.16), (0.12, 0.06, 0.06))  # 1.2x the spread
    mean, spread = compose.masked_mean_std(base, lips)
    band = lips[0, 0] > 0

    def lab_stats(image: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        pixels = compose.rgb_to_lab(image)[0][:, band]
        return pixels.mean(dim=1).numpy(), pixels.std(dim=1).numpy()

    (base_mean, base_std), (source_mean, _) = lab_stats(base), lab_stats(source)
    assert source_mean[1] - base_mean[1] > 6  # (the scene is a trap: far redder lips)
    out = colour.match_mouth(base, source, rim, torch.tensor([CORNER_Y]),
                             torch.cat([mean, spread], dim=1), lips)
    out_mean, out_std = lab_stats(out)
    assert np.abs(out_mean - base_mean).max() < 1.0
    assert np.abs(out_std - base_std).max() < 0.3
    mean_only = colour.match_mouth(base, source, rim, torch.tensor([CORNER_Y]), mean, lips)
    assert (lab_stats(mean_only)[1] - base_std).max() > 1.0


def test_the_lip_spread_leaves_the_teeth_beside_the_lips_alone() -> None:
    """White teeth inside the inner lip edge: the spread's gain changes the lip band, not them
    (they take the mean's shift, as with a mean-only target)."""
    base, source, rim, lips = _scene()
    _two_shades(source, lips, (0.78, 0.10, 0.16), (0.12, 0.06, 0.06))
    teeth = torch.zeros_like(lips)
    teeth[..., 48:53, 38:59] = 1
    teeth *= 1 - lips
    source = torch.where(teeth > 0, torch.tensor([0.95, 0.93, 0.90]).reshape(1, 3, 1, 1), source)
    mean, spread = compose.masked_mean_std(base, lips)
    for wide in (0.5, 0.01):  # gains clamped at 1.25 and 0.8
        target = torch.cat([mean, torch.full_like(spread, wide)], dim=1)
        out = colour.match_mouth(base, source, rim, torch.tensor([CORNER_Y]), target, lips)
        mean_only = colour.match_mouth(base, source, rim, torch.tensor([CORNER_Y]), mean, lips)
        band = teeth[0, 0] > 0
        assert float((out - mean_only)[0][:, band].abs().max()) < 1e-6
        assert float((out - mean_only)[0][:, lips[0, 0] > 0].abs().max()) > 0.005


def test_the_lip_gain_is_clamped_and_one_without_a_spread() -> None:
    base, source, rim, lips = _scene()
    mean = torch.tensor(RED_LIPS).reshape(1, 3, 1, 1)
    _two_shades(source, lips, (0.66, 0.18, 0.28), (0.05, 0.05, 0.05))
    wild = torch.cat([mean, torch.full((1, 3, 1, 1), 0.5)], dim=1)  # 10x the source's spread
    gain, _, _ = colour.lip_transfer(wild, source, lips)
    assert torch.allclose(gain, torch.full_like(gain, colour.MAX_LIP_GAIN))
    flat = torch.cat([mean, torch.zeros(1, 3, 1, 1)], dim=1)
    gain, _, _ = colour.lip_transfer(flat, source, lips)
    assert torch.allclose(gain, torch.full_like(gain, colour.MIN_LIP_GAIN))
    unknown = torch.cat([mean, torch.full((1, 3, 1, 1), float("nan"))], dim=1)
    for target in (mean, unknown):
        gain, _, shift = colour.lip_transfer(target, source, lips)
        assert torch.equal(gain, torch.ones_like(gain)) and float(shift.abs().max()) > 0.01


def test_unknown_target_or_tiny_band_leaves_the_lips_alone() -> None:
    base, source, rim, lips = _scene()
    unknown = torch.full((1, 3, 1, 1), float("nan"))
    out = colour.match_mouth(base, source, rim, torch.tensor([CORNER_Y]), unknown, lips)
    assert torch.isfinite(out).all()
    assert np.abs(_mean(out, lips) - _mean(source, lips)).max() < 1e-3
    tiny = torch.zeros_like(lips)
    tiny[..., 50, 48] = 1
    shift = colour.lip_shift(torch.tensor(RED_LIPS).reshape(1, 3, 1, 1), source, tiny)
    assert float(shift.abs().max()) == 0.0


def test_lip_colours_are_smoothed_over_time_and_nan_without_a_face() -> None:
    n, side = 12, 64
    rng = np.random.default_rng(0)
    crops = np.zeros((n, side, side, 3), np.uint8)
    landmarks = np.zeros((n, 478, 3), np.float32)
    from heygemd.faces import landmarks as lm

    angles = np.linspace(0, 2 * np.pi, len(lm.LIPS_OUTER), endpoint=False)
    ring = np.stack([32 + 20 * np.cos(angles), 32 + 10 * np.sin(angles)], axis=1)
    landmarks[:, list(lm.LIPS_OUTER), :2] = ring
    landmarks[:, list(lm.LIPS_INNER), :2] = 32 + (ring - 32) * 0.4
    level = 150 + rng.integers(-6, 7, size=n)  # per-frame jitter of the lip colour
    crops[:] = level[:, None, None, None]
    usable = np.ones(n, bool)
    usable[-1] = False
    out = colour.lip_colours(crops, landmarks, np.zeros((n, 2), np.int32), usable, fps=25.0)
    assert out.shape == (n, 6)
    assert np.abs(out[:-1, 3:]).max() < 1e-6  # one level over each frame's lips: no spread
    raw_steps = np.abs(np.diff(level[:-1] / 255.0)).mean()
    assert np.abs(np.diff(out[:-1, 0])).mean() < 0.6 * raw_steps
    assert np.abs(out[:-1, 0] - level[:-1] / 255.0).max() < 6 / 255
    usable[:] = False
    assert np.isnan(colour.lip_colours(crops, landmarks, np.zeros((n, 2), np.int32), usable,
                                       fps=25.0)).all()


def _resident_mb_of(path) -> float:  # type: ignore[no-untyped-def]
    """MB of the file ``path``'s mappings resident in this process (/proc/self/smaps)."""
    from pathlib import Path

    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:  # a mapping's first line
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(head[1])
    return total / 1024


def test_lip_colours_of_a_long_template_keep_few_crop_pages_resident(
    tmp_path, monkeypatch
) -> None:
    """The crops of a long template are read a lip box each through the cache's map: what the
    kernel maps around each box is let go as the pass goes, not held until it ends."""
    from heygemd.engines.builtin import crops as crops_module
    from heygemd.faces import landmarks as lm

    n, side = 1024, 192  # 113 MB of crops on disk
    path = tmp_path / "crops.npy"
    written = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                        shape=(n, side, side, 3))
    written[:] = 150
    written.flush()
    del written
    mapped = np.load(path, mmap_mode="r")
    landmarks = np.zeros((n, 478, 3), np.float32)
    angles = np.linspace(0, 2 * np.pi, len(lm.LIPS_OUTER), endpoint=False)
    ring = np.stack([96 + 40 * np.cos(angles), 96 + 20 * np.sin(angles)], axis=1)
    landmarks[:, list(lm.LIPS_OUTER), :2] = ring
    landmarks[:, list(lm.LIPS_INNER), :2] = 96 + (ring - 96) * 0.4
    held: list[float] = []  # the map's resident MB each time it is let go
    let_go = crops_module.let_go

    def measured(array: np.ndarray) -> None:
        held.append(_resident_mb_of(path))
        let_go(array)

    monkeypatch.setattr(colour, "let_go", measured)
    out = colour.lip_colours(mapped, landmarks, np.zeros((n, 2), np.int32), np.ones(n, bool),
                             fps=25.0)
    assert np.allclose(out[:, :3], 150 / 255)
    # the lip boxes alone are 40 x 82 px of 1024 crops (9.7 MB), more is mapped around each:
    # a quarter of the crops' worth at most between two let-gos, nothing at the end
    assert len(held) == n // crops_module.LET_GO_FRAMES
    assert 0 < max(held) < 113 / 3
    assert _resident_mb_of(path) < 0.5
