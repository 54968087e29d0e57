"""Viterbi selection of template frames and ping-pong indexing."""

from __future__ import annotations

import numpy as np
import pytest

from heygemd.engines.builtin import select


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
    cost = select.unary_costs(target, opening, usable, base_pose, pose, 0.05, pose_weight=1.0)
    assert np.isinf(cost[:, 2]).all()
    assert cost[0, 0] == 0.0 and cost[0, 1] == pytest.approx(4.0)
    path = select.viterbi(cost, select.SelectionCosts())
    assert 2 not in path.tolist()


def test_viterbi_rejects_rows_without_any_usable_frame() -> None:
    with pytest.raises(ValueError):
        select.viterbi(np.full((3, 4), np.inf), select.SelectionCosts())


def test_pingpong_walks_forward_and_back_without_a_jump() -> None:
    idx = select.pingpong_indices(12, 4)
    assert idx.tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1]
    assert np.abs(np.diff(idx)).max() == 1
    assert select.pingpong_indices(3, 1).tolist() == [0, 0, 0]
