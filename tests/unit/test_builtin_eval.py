"""Pure parts of the lip-sync evaluation (heygemd.evaluate) on synthetic series."""

from __future__ import annotations

import numpy as np

from heygemd import evaluate


def test_best_lag_finds_a_late_output() -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(size=200)
    out = np.concatenate([np.zeros(2), truth[:-2]])  # the output shows each frame 2 frames late
    lag, r = evaluate.best_lag(out, truth)
    assert lag == 2 and r > 0.99
    assert evaluate.finite_pearson(out, truth) < 0.3


def test_finite_pearson_ignores_frames_without_a_face() -> None:
    a = np.array([0.1, np.nan, 0.3, 0.2, 0.5])
    b = np.array([1.0, 9.0, 3.0, 2.0, 5.0])
    assert abs(evaluate.finite_pearson(a, b) - 1.0) < 1e-9


def test_planned_opening_uses_the_base_frame_where_nothing_is_transplanted() -> None:
    opening = np.array([0.0, 0.1, 0.2, 0.3])
    source = np.array([3, 3, 2])
    base = np.array([0, 1, 2])
    active = np.array([True, False, True])
    shown = evaluate.planned_opening(opening, source, base, active, 3)
    assert np.allclose(shown, [0.3, 0.1, 0.2])
    assert np.allclose(evaluate.planned_opening(opening, source, base, None, 2), [0.3, 0.3])
