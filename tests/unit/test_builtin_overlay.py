"""Foreign content in a transplant: a caption or a hand in one frame of a pair keeps the base."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heygemd.engines.builtin import overlay

H, W, SIDE = 64, 96, 128
SKIN = (200, 150, 120)
BEARD = (225, 225, 220)
COLLAR = (30, 30, 40)
YELLOW = (250, 240, 20)


def _crop(*patches: tuple[tuple[int, int, int], slice, slice]) -> np.ndarray:
    """A uint8 (SIDE, SIDE, 3) crop of skin with a collar along its bottom and ``patches``."""
    crop = np.empty((SIDE, SIDE, 3), np.uint8)
    crop[:] = SKIN
    crop[100:] = COLLAR
    for colour, rows, cols in patches:
        crop[rows, cols] = colour
    return crop


def _window(crop: np.ndarray) -> torch.Tensor:
    """The (1, 3, H, W) float window of a crop that the blend judges (its top-left corner)."""
    return torch.from_numpy(crop[:H, :W].astype(np.float32) / 255.0).permute(2, 0, 1)[None]


def _guard(base_crop: np.ndarray, source_crop: np.ndarray, zone: torch.Tensor | None = None,
           steady: np.ndarray | None = None) -> torch.Tensor:
    crops = np.stack([base_crop, source_crop])
    found = overlay.palettes(crops)
    judged = torch.ones(1, 1, H, W) if zone is None else 1.0 - zone
    held = steady if steady is not None else np.ones(overlay.CELLS, dtype=bool)
    return overlay.guard(_window(base_crop), _window(source_crop), judged,
                         torch.from_numpy(found[:1]), torch.from_numpy(found[1:]),
                         torch.from_numpy(held), SIDE)


def test_a_palette_holds_the_crops_colours_and_their_neighbours_only() -> None:
    found = overlay.palettes(np.stack([_crop()]))[0]
    cell = ((np.array(SKIN) >> overlay.SHIFT) * [overlay.BINS**2, overlay.BINS, 1]).sum()
    yellow = ((np.array(YELLOW) >> overlay.SHIFT) * [overlay.BINS**2, overlay.BINS, 1]).sum()
    assert found[cell] and found[cell + 1] and not found[yellow]
    # skin widened by one cell every way (27 cells), the dark collar (cell 0, 0, 1) too, within
    # the grid (2 x 2 x 3)
    assert found.sum() == 27 + 12


def test_a_caption_only_the_source_carries_keeps_the_base_there() -> None:
    caption = (YELLOW, slice(40, 52), slice(20, 60))
    keep = _guard(_crop(), _crop(caption))[0, 0]
    assert keep[40:52, 20:60].min() == 1.0
    assert keep[:25].max() == 0.0 and keep[:, 75:].max() == 0.0  # the rest is transplanted


def test_a_caption_only_the_base_carries_is_not_cut() -> None:
    caption = (YELLOW, slice(40, 52), slice(20, 60))
    keep = _guard(_crop(caption), _crop())[0, 0]
    assert keep[40:52, 20:60].min() == 1.0


def test_the_mouth_zone_is_not_judged() -> None:
    """Teeth the base's closed mouth lacks are the new mouth, not a caption."""
    teeth = (BEARD, slice(20, 30), slice(30, 60))
    zone = torch.zeros(1, 1, H, W)
    zone[..., 15:35, 25:65] = 1.0
    assert _guard(_crop(), _crop(teeth), zone).max() == 0.0
    assert _guard(_crop(), _crop(teeth)).max() == 1.0  # judged, they would be foreign


def test_colours_both_crops_hold_are_not_foreign_where_they_moved() -> None:
    """A jaw that covers the collar in one frame: collar and skin are in both crops."""
    base = _crop((COLLAR, slice(55, 64), slice(0, 96)))
    assert _guard(base, _crop()).max() == 0.0


def test_a_caption_both_frames_carry_out_of_place_keeps_the_base() -> None:
    """Both crops hold the caption's yellow, but the warp moved it: where they differ and one
    shows a colour the template does not hold steadily, the base stays."""
    base = _crop((YELLOW, slice(40, 52), slice(20, 60)))
    source = _crop((YELLOW, slice(46, 58), slice(26, 66)))
    steady = overlay.palettes(np.stack([_crop()]))[0]  # skin and collar in every frame
    keep = _guard(base, source, steady=steady)[0, 0]
    assert keep[40:46, 20:60].min() == 1.0 and keep[52:58, 26:66].min() == 1.0
    assert keep[:25].max() == 0.0
    assert _guard(base, source).max() == 0.0  # were yellow steady, nothing would be judged


def test_an_unsteady_colour_where_both_frames_show_it_alike_is_not_foreign() -> None:
    """A caption both frames carry at the same place: nothing to keep, the blend goes on."""
    caption = (YELLOW, slice(40, 52), slice(20, 60))
    steady = overlay.palettes(np.stack([_crop()]))[0]
    assert _guard(_crop(caption), _crop(caption), steady=steady).max() == 0.0


def test_lone_foreign_pixels_are_ignored() -> None:
    """Noise, not a caption: single pixels of an odd colour do not cut into the blend."""
    source = _crop(*[(YELLOW, slice(r, r + 1), slice(c, c + 1))
                     for r, c in [(10, 10), (30, 50), (50, 80)]])
    assert _guard(_crop(), source).max() == 0.0


def test_steady_colours_are_those_of_most_frames_and_skip_spare_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    captioned = _crop((YELLOW, slice(60, 80), slice(0, 128)))
    crops = np.stack([_crop()] * 5 + [captioned] * 5 + [captioned] * 3)  # 3 spare rows
    usable = np.ones(10, dtype=bool)
    plain = overlay.palettes(np.stack([_crop()]))[0]
    # yellow in half the frames: not steady
    np.testing.assert_array_equal(overlay.steady_colours(crops, usable), plain)
    usable[:5] = False  # the captioned frames alone count: yellow is steady
    assert overlay.steady_colours(crops, usable).sum() > plain.sum()
    assert overlay.steady_colours(crops, np.zeros(10, dtype=bool)).all()
    # a long template: STEADY_FRAMES frames spread over it are read, not all
    monkeypatch.setattr(overlay, "STEADY_FRAMES", 4)
    read: list[int] = []
    real = overlay.palettes
    monkeypatch.setattr(overlay, "palettes", lambda c, step=None: read.append(len(c)) or real(c))
    overlay.steady_colours(crops, np.ones(10, dtype=bool))
    assert sum(read) == 4


def _moving_face(n: int, still_disc: bool, face_moves: bool = True
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crops (n, 64, 64, 3), origins (n, 2), landmarks (n, 478, 3)) of a 160x120 picture: a
    textured face that sways (the crops follow it), with a black disc fixed in the picture in
    front of its chin where ``still_disc``."""
    from heygemd.engines.builtin import mesh

    rng = np.random.default_rng(0)
    texture = rng.integers(60, 200, (80, 80), dtype=np.uint8)
    crops, origins, points = [], [], np.zeros((n, 478, 3))
    for i in range(n):
        dx = int(round(6 * np.sin(i / 3))) if face_moves else 0
        picture = np.full((120, 160), 230, np.uint8)
        picture[20:100, 40 + dx : 120 + dx] = texture
        if still_disc:
            yy, xx = np.mgrid[0:120, 0:160]
            picture[(yy - 80) ** 2 + (xx - 80) ** 2 < 12**2] = 10
        ox, oy = 48 + dx, 40
        crops.append(np.repeat(picture[oy : oy + 64, ox : ox + 64, None], 3, axis=2))
        origins.append((ox, oy))
        angles = np.linspace(0, 2 * np.pi, len(mesh.CONTOUR), endpoint=False)
        points[i, mesh.CONTOUR, 0] = 80 + dx + 30 * np.cos(angles)
        points[i, mesh.CONTOUR, 1] = 70 + 28 * np.sin(angles)
    return np.stack(crops), np.array(origins), points


def test_an_occluder_stays_put_in_the_picture_while_the_face_moves() -> None:
    crops, origins, points = _moving_face(24, still_disc=True)
    found = overlay.occluder(crops, origins, points, np.ones(24, dtype=bool), 160, 120)
    assert found is not None and found.shape == (120, 160)
    assert found[80, 80] and found[72, 80] and found[80, 90]  # the disc, whole
    assert not found[40, 80] and not found[80, 40]  # the face above it, the background
    # no disc: the face moves and the background is still but outside the face
    crops, origins, points = _moving_face(24, still_disc=False)
    assert overlay.occluder(crops, origins, points, np.ones(24, dtype=bool), 160, 120) is None


def test_a_still_face_is_not_an_occluder() -> None:
    """A face that does not move is still in the picture too, but also at its own place."""
    crops, origins, points = _moving_face(24, still_disc=False, face_moves=False)
    assert overlay.occluder(crops, origins, points, np.ones(24, dtype=bool), 160, 120) is None


def test_faces_of_no_area_find_no_occluder() -> None:
    """Degenerate landmarks (every contour point in one place): nothing is inside the face."""
    crops, origins, points = _moving_face(24, still_disc=True)
    points[:] = 0.0
    assert overlay.occluder(crops, origins, points, np.ones(24, dtype=bool), 160, 120) is None
