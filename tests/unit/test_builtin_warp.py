"""Piecewise-affine mesh warp, the feathered blend, the mesh targets and ping-pong runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from heygemd.engines.builtin import mesh, render, warp


def _points() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = np.array([[10.0, 10], [50, 10], [10, 50], [50, 50]])
    dst = np.array([[14.0, 12], [52, 16], [12, 54], [56, 50]])
    triangles = np.array([[0, 1, 2], [1, 3, 2]])
    return src, dst, triangles


def test_affines_map_target_corners_onto_source_corners() -> None:
    src, dst, triangles = _points()
    affines = warp.triangle_affines(src, dst, triangles)
    for k, tri in enumerate(triangles):
        homog = np.concatenate([dst[tri], np.ones((3, 1))], axis=1)
        assert np.allclose(homog @ affines[k].T, src[tri])


def test_triangle_map_covers_the_mesh_and_nothing_else() -> None:
    _, dst, triangles = _points()
    ids = warp.triangle_map(dst, triangles, 64, 64)
    assert ids[30, 30] in (0, 1)
    assert ids[2, 2] == -1 and ids[62, 62] == -1
    assert set(np.unique(ids)) == {-1, 0, 1}


def test_warp_moves_a_marked_point_where_the_mesh_says() -> None:
    src, dst, triangles = _points()
    image = np.zeros((1, 64, 64, 3), dtype=np.uint8)
    image[0, 30, 30] = 255  # a bright dot in the source
    affines = [warp.triangle_affines(src, dst, triangles)]
    ids = warp.triangle_map(dst, triangles, 64, 64)[None]
    warped, covered = warp.warp_batch(image, affines, ids, "cpu")
    out = warped[0, 0].numpy()
    y, x = np.unravel_index(np.argmax(out), out.shape)
    # where does the source dot land? invert by searching the target pixel mapping onto it
    k = ids[0, y, x]
    mapped = affines[0][k] @ np.array([x, y, 1.0])
    assert np.allclose(mapped, [30, 30], atol=1.0)
    assert (x, y) != (30, 30)
    assert covered.shape == (1, 1, 64, 64) and covered[0, 0, 2, 2] == 0


def test_identity_mesh_reproduces_the_source() -> None:
    src, _, triangles = _points()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(1, 64, 64, 3), dtype=np.uint8)
    affines = [warp.triangle_affines(src, src, triangles)]
    ids = warp.triangle_map(src, triangles, 64, 64)[None]
    warped, covered = warp.warp_batch(image, affines, ids, "cpu")
    inside = covered[0, 0].numpy() > 0
    got = warped[0].permute(1, 2, 0).numpy()[inside]
    assert np.abs(got - image[0][inside]).max() < 1e-3


def test_blend_weight_has_no_hard_edge() -> None:
    square = np.array([[25.0, 25], [100, 25], [100, 100], [25, 100]])
    hard = render.hard_masks([square], 128)
    assert hard[0, 0, 60, 60] == 1.0 and hard[0, 0, 10, 10] == 0.0
    covered = torch.ones(1, 1, 128, 128)
    alpha, rim = render.blend_weights(torch.from_numpy(hard), covered)
    a = alpha[0, 0].numpy()
    assert a.max() > 0.999 and a[0, 0] == 0.0
    steps = max(np.abs(np.diff(a, axis=0)).max(), np.abs(np.diff(a, axis=1)).max())
    assert steps < 0.2  # a ramp over several pixels, not a step
    assert a[hard[0, 0] == 0].max() == 0.0  # nothing outside the mask changes
    assert rim.sum() > 0 and float((rim[0, 0] * alpha[0, 0]).max()) < 0.5


def test_mesh_target_is_the_base_when_source_equals_base() -> None:
    rng = np.random.default_rng(1)
    face = rng.uniform(100, 300, size=(478, 3))
    target = mesh.target_vertices(face, face)
    assert np.allclose(target, mesh.vertices(face), atol=1e-6)


def test_mesh_target_carries_the_source_mouth_into_the_base_pose() -> None:
    rng = np.random.default_rng(2)
    source = rng.uniform(100, 300, size=(478, 3))
    angle = np.deg2rad(10)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    base = 1.5 * source @ rot.T + np.array([40.0, -20.0, 5.0])
    target = mesh.target_vertices(source, base)
    n_moving = len(mesh.MOVING)
    assert np.allclose(target[:n_moving], base[list(mesh.MOVING), :2], atol=1e-6)


def test_runs_split_a_pingpong_sequence() -> None:
    assert render.runs(np.array([0, 1, 2, 3, 2, 1, 0, 1])) == [(0, 3, 1), (2, 0, -1), (1, 1, 1)]
    assert render.runs(np.array([5])) == [(5, 5, 1)]


def _laplacian_variance(image: np.ndarray) -> float:
    import cv2

    return float(cv2.Laplacian(image.astype(np.float64), cv2.CV_64F).var())


def _shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """image (1, H, W, 3) warped by warp_batch so that output pixel (x, y) shows source pixel
    (x + dx, y + dy): (H, W, 3) float, the border trimmed."""
    side = image.shape[1]
    corners = np.array([[0.0, 0], [side - 1, 0], [0, side - 1], [side - 1, side - 1]])
    triangles = np.array([[0, 1, 2], [1, 3, 2]])
    dst = corners - [dx, dy]
    affines = [warp.triangle_affines(corners, dst, triangles)]
    ids = warp.triangle_map(corners, triangles, side, side)[None]
    warped, _ = warp.warp_batch(image, affines, ids, "cpu")
    return warped[0].permute(1, 2, 0).numpy()[4:-4, 4:-4]


def test_warp_at_half_a_pixel_keeps_fine_grain() -> None:
    # pixel-to-pixel noise, the finest detail there is: bicubic sampling at half a pixel averages
    # neighbours and keeps well under half its Laplacian variance; the detail split keeps it
    rng = np.random.default_rng(1)
    grain = np.clip(128 + rng.normal(0, 12, size=(1, 64, 64, 1)), 0, 255).repeat(3, axis=3)
    image = grain.astype(np.uint8)
    before = _laplacian_variance(image[0, 4:-4, 4:-4, 0])
    after = _laplacian_variance(_shifted(image, 0.5, 0.5)[..., 0])
    assert after > 0.8 * before


def test_warp_at_sub_pixel_offsets_puts_an_edge_where_it_belongs() -> None:
    # a soft vertical edge (coarse detail) moves by the sub-pixel offset, without ringing beyond
    # a level or two and without a step from the nearest-pixel detail
    x = np.arange(64, dtype=np.float64)
    row = 60 + 140 / (1 + np.exp(-(x - 32.0) / 1.5))
    image = np.repeat(row[None, :, None], 64, axis=0)[None].repeat(3, axis=3)
    image = np.round(image).astype(np.uint8)
    out = _shifted(image, 0.3, 0.0)[30, :, 0]
    expected = 60 + 140 / (1 + np.exp(-(x[4:-4] + 0.3 - 32.0) / 1.5))
    assert np.abs(out - expected).max() < 2.5


def test_detail_split_adds_up_and_keeps_flat_areas_coarse() -> None:
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(2, 9, 11, 3), dtype=np.uint8)
    coarse, detail = warp.detail_split(images)
    assert np.allclose(coarse + detail, images, atol=1e-4)
    flat = np.full((1, 9, 11, 3), 77, np.uint8)
    coarse, detail = warp.detail_split(flat)
    assert np.allclose(coarse, 77.0) and np.allclose(detail, 0.0)
    dot = np.zeros((1, 9, 9, 3), np.uint8)
    dot[0, 4, 4] = 256 - 1
    coarse, _ = warp.detail_split(dot)
    taps = np.array([1.0, 4, 6, 4, 1])
    assert np.allclose(coarse[0, 2:7, 2:7, 0], 255 * np.outer(taps, taps) / 256, atol=1e-4)


def test_nearest_samples_pick_the_rounded_pixel_clamped_to_the_border() -> None:
    images = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4, 1).repeat(2, axis=3)
    sx = np.array([[[0.4, 2.6, 9.0]], [[-3.0, 1.49, 2.5]]], dtype=np.float32)
    sy = np.array([[[0.0, 1.2, 1.0]], [[0.6, 2.0, -1.0]]], dtype=np.float32)
    got = warp.nearest_samples(images, sx, sy)
    assert got.shape == (2, 1, 3, 2)
    assert got[0, 0, :, 0].tolist() == [0.0, 7.0, 7.0]  # (0, 0), (3, 1), (3, 1)
    assert got[1, 0, :, 0].tolist() == [16.0, 21.0, 15.0]  # (0, 1), (1, 2), (3, 0): 2.5 up
    assert np.array_equal(got[..., 0], got[..., 1])


def test_mask_window_holds_every_polygon_on_the_feathering_grid() -> None:
    polygons = [np.array([[30.5, 41.0], [70.2, 45.0], [50.0, 90.7]]),
                np.array([[35.0, 38.0], [75.0, 60.0], [40.0, 80.0]])]
    x0, y0, x1, y1 = render.mask_window(polygons, 128)
    assert (x0, y0) == (28, 36) and (x1, y1) == (80, 96)
    assert all(v % render.FEATHER_STEP == 0 for v in (x0, y0, x1, y1))
    assert render.mask_window([np.array([[-5.0, -5.0], [140.0, 140.0]])], 128) == (0, 0, 128, 128)


def _lips_at(centre: tuple[float, float], radius: float) -> np.ndarray:
    """Mesh vertices (V, 2) whose outer lips are a circle of ``radius`` about ``centre``."""
    vertices = np.zeros((len(mesh.MOVING) + len(mesh.ANCHORS) + mesh.N_RING, 2))
    lips = list(mesh.LIP_OUTER_VERTICES)
    angles = np.linspace(0, 2 * np.pi, len(lips), endpoint=False)
    vertices[lips] = np.c_[centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)]
    return vertices


def test_mouth_zones_cover_the_new_mouth_and_the_base_frames_own() -> None:
    """A closed new mouth over a wide-open base mouth: the base's teeth below the new lips are
    in the zone too, so the overlay guard does not keep them."""
    new = _lips_at((40.0, 30.0), 8.0)
    own = _lips_at((40.0, 44.0), 12.0)  # the base's open mouth reaches lower
    zones = render.mouth_zones([new], [own], np.array([0.0, 0.0]), 64, 80)
    assert zones.shape == (1, 1, 64, 80)
    assert zones[0, 0, 30, 40] == 1.0 and zones[0, 0, 56, 40] == 1.0
    assert zones[0, 0, 30, 40 + 10] == 1.0  # the new lips (radius 8) pushed out by ZONE_SCALE
    assert zones[0, 0, 5, 5] == 0.0 and zones[0, 0, 30, 75] == 0.0
    shifted = render.mouth_zones([new], [own], np.array([8.0, 4.0]), 64, 80)
    assert shifted[0, 0, 26, 32] == 1.0 and shifted[0, 0, 26, 40 + 10 - 8] == 1.0


def test_base_frames_come_from_held_frames_in_pingpong_order(tmp_path: Path) -> None:
    held = [np.full((4, 4, 3), i, np.uint8) for i in range(5)]
    order = np.array([0, 1, 2, 3, 4, 3, 2, 1, 0])
    missing = tmp_path / "not-decoded.mp4"  # would be opened if the frames were decoded
    frames = list(render.base_frames(missing, order, 48, decoded=held))
    assert [int(f[0, 0, 0]) for f in frames] == order.tolist()
    assert frames[5] is held[3]  # no copies: the render copies what it changes


def test_base_frames_walk_a_video_back_in_chunks_as_it_was_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoded (not held) frames of a template too large to keep, in ping-pong order, the
    backward runs in chunks of 4 frames (a budget of 4 held 4:2:0 frames), each frame as
    sequential decoding gives it; indices past the end show the last frame."""
    from heygemd.media.probe import probe
    from heygemd.media.video import HELD_BYTES_PER_PIXEL, VideoReader
    from tests.mediagen import make_video

    path = make_video(tmp_path / "walk.mp4", seconds=1.0, fps=25, audio=False)
    with VideoReader(path) as reader:
        decoded = list(reader)
    monkeypatch.setattr(render, "REVERSE_BUDGET_BYTES", int(4 * 64 * 48 * HELD_BYTES_PER_PIXEL))
    monkeypatch.setattr(render, "KEEP_DECODED_BYTES", 0)  # too large to keep
    order = np.array([*range(0, 25), 26, 25, *range(24, -1, -1), *range(1, 11)])
    frames = list(render.base_frames(path, order, 64 * 48 * 3, probe(path)))
    assert len(frames) == len(order)
    for index, frame in zip(order, frames, strict=True):
        assert np.array_equal(frame, decoded[min(int(index), len(decoded) - 1)]), int(index)


def test_a_small_template_walked_back_and_forth_is_decoded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A template that fits KEEP_DECODED_BYTES: the same frames as sequential decoding gives
    (past the end: the last one), from one forward decode, no range decoded again."""
    from heygemd.media import video
    from heygemd.media.probe import probe
    from heygemd.media.video import VideoReader
    from tests.mediagen import make_video

    path = make_video(tmp_path / "small.mp4", seconds=1.0, fps=25, audio=False)
    with VideoReader(path) as reader:
        decoded = list(reader)

    def again(*args: object, **kwargs: object) -> None:
        raise AssertionError("a range was decoded again")

    monkeypatch.setattr(video, "read_range", again)
    monkeypatch.setattr(video, "read_range_backwards", again)
    order = np.array([*range(0, 25), 26, 25, *range(24, -1, -1), *range(1, 11)])
    frames = list(render.base_frames(path, order, 64 * 48 * 3, probe(path)))
    assert len(frames) == len(order)
    for index, frame in zip(order, frames, strict=True):
        assert np.array_equal(frame, decoded[min(int(index), len(decoded) - 1)]), int(index)
