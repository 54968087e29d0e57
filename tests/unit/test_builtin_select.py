"""Viterbi selection of template frames and ping-pong indexing."""

from __future__ import annotations

import numpy as np
import pytest

from heygemd.engines.builtin import select
from heygemd.faces import landmarks as lm


def test_viterbi_follows_the_unary_minimum_without_transition_costs() -> None:
    rng = np.random.default_rng(0)
    unary = rng.uniform(size=(30, 12))
    path = select.viterbi(unary, select.SelectionCosts(jump_cost=0.0, hold_cost=0.0))
    assert path.tolist() == np.argmin(unary, axis=1).tolist()


def test_viterbi_prefers_consecutive_runs() -> None:
    rng = np.random.default_rng(1)
    unary = rng.uniform(0, 0.1, size=(20, 40))
    free = select.viterbi(unary, select.SelectionCosts(jump_cost=0.0, hold_cost=0.0))
    tied = select.viterbi(unary, select.SelectionCosts(jump_cost=5.0, hold_cost=5.0))
    jumps = lambda p: int((np.diff(p) != 1).sum())  # noqa: E731
    assert jumps(tied) == 0
    assert jumps(free) > jumps(tied)


def test_viterbi_jumps_when_the_shape_is_worth_it() -> None:
    unary = np.ones((6, 10))
    unary[:3, 2:5] = 0.0  # frames 2, 3, 4 fit the first half
    unary[3:, 7:10] = 0.0  # frames 7, 8, 9 fit the second half
    path = select.viterbi(unary, select.SelectionCosts(jump_cost=0.5, hold_cost=0.5))
    assert path.tolist() == [2, 3, 4, 7, 8, 9]


def test_unary_costs_forbid_unusable_frames_and_penalise_pose() -> None:
    target = np.array([0.1, 0.1])
    opening = np.array([0.1, 0.1, 0.1])
    usable = np.array([True, True, False])
    base_pose = np.zeros((2, 3))
    pose = np.array([[0.0, 0, 0], [20.0, 0, 0], [0.0, 0, 0]])
    unary = select.unary_costs(target, opening, usable, base_pose, pose, 0.05, pose_weight=1.0)
    cost = unary.table()
    assert np.isinf(cost[:, 2]).all()
    assert cost[0, 0] == 0.0 and cost[0, 1] == pytest.approx(4.0)
    path = select.viterbi(unary, select.SelectionCosts())
    assert 2 not in path.tolist()


def test_viterbi_rejects_rows_without_any_usable_frame() -> None:
    with pytest.raises(ValueError):
        select.viterbi(np.full((3, 4), np.inf), select.SelectionCosts())
    nothing = select.unary_costs(np.zeros(3), np.zeros(4), np.zeros(4, bool), np.zeros((3, 3)),
                                 np.zeros((4, 3)), 0.05, 0.3)
    with pytest.raises(ValueError, match="output frame 0"):
        select.viterbi(nothing, select.SelectionCosts())


def _random_costs(t_count: int, n: int, seed: int = 3) -> select.UnaryCosts:
    rng = np.random.default_rng(seed)
    pose = rng.normal(0, 8, size=(n, 3))
    pose[rng.integers(0, n, 3)] = np.nan  # a frame without a pose costs nothing for it
    return select.unary_costs(
        rng.uniform(size=t_count), rng.uniform(size=n), rng.uniform(size=n) > 0.2,
        rng.normal(0, 8, size=(t_count, 3)), pose, 0.1, 0.3,
        shape_weight=rng.uniform(0.5, 2.0, size=t_count),
        frame_cost=rng.uniform(0, 0.5, size=n))


def _whole_table(target, opening, usable, base_pose, pose, spread, pose_weight,  # type: ignore[no-untyped-def]
                 shape_weight, frame_cost):
    """The cost table in one (T, N) expression, as the selection once built it whole."""
    shape = ((opening[None, :] - target[:, None]) / max(spread, 1e-6)) ** 2
    shape = shape * shape_weight[:, None]
    diff = base_pose[:, None, :2] - pose[None, :, :2]
    pose_cost = pose_weight * (np.linalg.norm(diff, axis=2) / select.POSE_UNIT_DEG) ** 2
    cost = shape + np.nan_to_num(pose_cost, nan=0.0)
    cost += frame_cost[None, :]
    cost[:, ~usable] = np.inf
    return cost


def _whole_viterbi(unary, jump_cost, hold_cost):  # type: ignore[no-untyped-def]
    """The selection over a whole table with int64 back-pointers, as it once was."""
    t_count, n = unary.shape
    back = np.empty((t_count, n), dtype=np.int64)
    score = unary[0].copy()
    idx = np.arange(n)
    for t in range(1, t_count):
        best = int(np.argmin(score))
        step = np.full(n, np.inf)
        step[1:] = score[:-1]
        cand = np.stack([np.full(n, score[best] + jump_cost), score + hold_cost, step])
        choice = np.argmin(cand, axis=0)
        back[t] = np.where(choice == 0, best, np.where(choice == 1, idx, idx - 1))
        score = cand[choice, idx] + unary[t]
    path = np.empty(t_count, dtype=np.int64)
    path[-1] = int(np.argmin(score))
    for t in range(t_count - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


@pytest.mark.parametrize("seed", range(12))
def test_rows_made_as_the_pass_goes_choose_as_the_whole_table_did(seed: int) -> None:
    """planning's types (float32 openings and poses, float64 weights and frame costs),
    coarse values so that costs tie, some frames avoided (a large frame cost) and poses
    missing: the same table, to the bit, and the same path."""
    rng = np.random.default_rng(seed)
    t_count, n = int(rng.integers(1, 90)), int(rng.integers(1, 60))
    target = rng.integers(0, 4, t_count).astype(np.float32) / 4
    opening = rng.integers(0, 4, n).astype(np.float32) / 4
    usable = rng.uniform(size=n) > 0.15
    usable[rng.integers(0, n)] = True
    base_pose = rng.integers(-2, 3, size=(t_count, 3)).astype(np.float32) * 5
    pose = rng.integers(-2, 3, size=(n, 3)).astype(np.float32) * 5
    pose[rng.uniform(size=n) < 0.1] = np.nan
    shape_weight = np.where(rng.uniform(size=t_count) < 0.3, 6.0, 1.0)
    frame_cost = np.where(rng.uniform(size=n) < 0.2, 1000.0, 0.0) + rng.integers(0, 3, n) / 8
    args = (target, opening, usable, base_pose, pose, 0.07, 0.3, shape_weight, frame_cost)
    unary = select.unary_costs(*args)
    whole = _whole_table(*args)
    table = unary.table()
    assert table.dtype == whole.dtype == np.float64 and unary.row(0).dtype == np.float64
    np.testing.assert_array_equal(table, whole)
    for jump, hold in ((0.5, 0.25), (0.0, 0.0), (3.0, 0.1)):
        path = select.viterbi(unary, select.SelectionCosts(jump_cost=jump, hold_cost=hold))
        assert path.tolist() == _whole_viterbi(whole, jump, hold).tolist()
        assert select.viterbi(whole, select.SelectionCosts(jump, hold)).tolist() == path.tolist()


def test_a_long_output_over_a_long_template_is_chosen_in_a_byte_per_cell() -> None:
    import tracemalloc

    t_count = n = 2000  # 80 s at 25 fps each; the whole float64 table alone would be 32 MB
    unary = _random_costs(t_count, n)
    tracemalloc.start()
    try:
        path = select.viterbi(unary, select.SelectionCosts())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(path) == t_count
    assert peak < t_count * n * 1.5  # the moves (one byte per cell) and a few rows


def test_pingpong_walks_forward_and_back_without_a_jump() -> None:
    idx = select.pingpong_indices(12, 4)
    assert idx.tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1]
    assert np.abs(np.diff(idx)).max() == 1
    assert select.pingpong_indices(3, 1).tolist() == [0, 0, 0]


def _face(lip_band_px: float) -> np.ndarray:
    """478 landmarks: eyes 100 px apart, the lips' middle band ``lip_band_px`` high (split evenly
    between the upper and the lower lip around a closed mouth)."""
    points = np.zeros((478, 3))
    points[lm.RIGHT_EYE_OUTER, :2] = (0, 0)
    points[lm.LEFT_EYE_OUTER, :2] = (100, 0)
    points[lm.UPPER_LIP_OUTER, :2] = (50, 80 - lip_band_px / 2)
    points[lm.UPPER_LIP_INNER, :2] = (50, 80)
    points[lm.LOWER_LIP_INNER, :2] = (50, 80)
    points[lm.LOWER_LIP_OUTER, :2] = (50, 80 + lip_band_px / 2)
    return points


def test_lip_band_is_the_visible_lip_height_over_the_eye_distance() -> None:
    faces = np.stack([_face(18.0), _face(9.0), np.full((478, 3), np.nan)])
    band = select.lip_band(faces)
    assert band[:2] == pytest.approx([0.18, 0.09])
    assert np.isnan(band[2])


def test_rolled_in_lips_cost_more_and_usual_mouths_nothing() -> None:
    band = np.array([0.18, 0.17, 0.19, 0.16, 0.09, np.nan, 0.05])
    usable = np.array([True, True, True, True, True, False, False])
    costs = select.hidden_lip_costs(band, usable)  # median of the usable: 0.17
    assert costs[:4] == pytest.approx(0.0)  # 0.94-1.12 of the median
    assert costs[4] == pytest.approx(select.LIP_BAND_WEIGHT * ((0.8 - 0.09 / 0.17) / 0.2) ** 2)
    assert costs[5] == 0.0  # unusable frames are forbidden by unary_costs, not here
    assert costs[6] > costs[4]
    assert select.hidden_lip_costs(band, np.zeros(7, bool)) == pytest.approx(np.zeros(7))


def test_frame_cost_steers_the_choice_between_equally_shaped_frames() -> None:
    opening = np.array([0.0, 0.0])
    usable = np.array([True, True])
    poses = np.zeros((2, 3))
    plain = select.unary_costs(np.zeros(1), opening, usable, np.zeros((1, 3)), poses, 0.05, 0.3)
    steered = select.unary_costs(np.zeros(1), opening, usable, np.zeros((1, 3)), poses, 0.05,
                                 0.3, frame_cost=np.array([2.0, 0.0]))  # fmt: skip
    assert plain.row(0)[0] == plain.row(0)[1]
    assert int(np.argmin(steered.row(0))) == 1 and steered.row(0)[0] == pytest.approx(2.0)


def _mouth_crops(count: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crops uint8 (count, 96, 96, 3), landmarks (count, 478, 3), origins (count, 2)): the same
    textured crop in every frame, sitting at (100, 50) of the frame; the outer lips ring a box
    of 30x16 px at (17, 24) of the crop (8..56 x 19..45 with the margin). Frame 1's lip box is
    blurred, frame 2's crop is blurred everywhere but there, frame 4 is frame 0 zoomed 1.5x
    about the crop's corner, lips and all."""
    import cv2

    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (96, 96, 3)).astype(np.uint8)
    texture = cv2.GaussianBlur(noise, (0, 0), 1.5)  # detail a few pixels across, as skin has
    smooth = cv2.GaussianBlur(texture, (0, 0), 3.0)
    crops = np.stack([texture] * count)
    crops[1, 19:45, 8:56] = smooth[19:45, 8:56]
    crops[2] = smooth
    crops[2, 19:45, 8:56] = texture[19:45, 8:56]
    crops[4] = cv2.resize(texture, (144, 144), interpolation=cv2.INTER_CUBIC)[:96, :96]
    angle = np.linspace(0, 2 * np.pi, len(lm.LIPS_OUTER), endpoint=False)
    ring = np.stack([32 + 15 * np.cos(angle), 32 + 8 * np.sin(angle)], axis=1)
    faces = np.zeros((count, 478, 3))
    faces[:, list(lm.LIPS_OUTER), :2] = ring + (100, 50)  # frame pixels
    faces[4, list(lm.LIPS_OUTER), :2] = ring * 1.5 + (100, 50)
    return crops, faces, np.tile([100, 50], (count, 1))


def test_mouth_detail_reads_each_frames_lip_box_from_its_crop() -> None:
    crops, faces, origins = _mouth_crops()
    usable = np.array([True, True, True, False, True])
    detail = select.mouth_detail(crops, faces, origins, usable, width=48.0)
    assert detail[1] < 0.2 * detail[0]  # its lip box blurred
    assert detail[2] == pytest.approx(detail[0])  # blurred, but not where the lips are
    assert np.isnan(detail[3])  # unusable: not read
    # a head nearer the camera: the box is brought to the others' width before it is judged
    assert 0.5 * detail[0] < detail[4] < 2 * detail[0]
    unscaled = select.mouth_detail(crops[4:], faces[4:], origins[4:], usable[4:], width=72.0)
    assert unscaled[0] < 0.5 * detail[0]  # read at its own size, it looks blurred
    # a template whose crops were not kept (fewer rows than frames): no detail, no error
    assert np.isnan(select.mouth_detail(crops[:0], faces, origins, usable)).all()


def test_a_mouth_blurrier_than_others_of_its_shape_costs_more() -> None:
    # two shapes: closed mouths less detailed than open ones (teeth), which costs nothing;
    # one open frame at half its peers' detail, one closed at 0.9 of its peers'
    opening = np.array([0.0] * 10 + [0.3] * 10)
    detail = np.array([50.0] * 10 + [200.0] * 10)
    detail[15], detail[3] = 100.0, 45.0
    usable = np.ones(20, bool)
    costs = select.blur_costs(detail, opening, usable)
    shortfall = (select.BLUR_FLOOR - 0.5) / (1 - select.BLUR_FLOOR)
    assert costs[15] == pytest.approx(select.BLUR_WEIGHT * shortfall**2)
    assert np.delete(costs, 15) == pytest.approx(0.0)
    # the ends of the opening range are judged too: the most open and the two most closed
    ends = np.linspace(0.0, 0.3, 20)
    blurred = np.full(20, 100.0)
    blurred[[0, 1, 19]] = 40.0
    charged = select.blur_costs(blurred, ends, usable)
    assert (charged[[0, 1, 19]] > 0).all() and charged[2:19] == pytest.approx(0.0)
    # unusable or unmeasured frames are neither judged nor peers; too few frames: no cost
    usable[15] = False
    assert select.blur_costs(detail, opening, usable) == pytest.approx(np.zeros(20))
    assert select.blur_costs(detail[:5], opening[:5], usable[:5]) == pytest.approx(np.zeros(5))
