"""Audio -> mouth target: per-template kernel regression and target combination."""

from __future__ import annotations

import numpy as np

from heygemd.engines.builtin import motion


def _paired(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12))
    w = rng.normal(size=12)
    return x, x @ w + 0.05 * rng.normal(size=n)


def test_kernel_regression_learns_a_nonlinear_map() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 6))
    y = np.sin(2 * x[:, 0]) + x[:, 1] ** 2 + 0.05 * rng.normal(size=400)
    model = motion.fit_kernel(x[:300], y[:300], lam=0.1, width=0.5)
    assert motion.pearson(model.predict(x[300:]), y[300:]) > 0.8
    # a straight line through the same data cannot follow it
    design = np.c_[x[:300], np.ones(300)]
    line = np.linalg.lstsq(design, y[:300], rcond=None)[0]
    assert motion.pearson(np.c_[x[300:], np.ones(100)] @ line, y[300:]) < 0.5


def test_kernel_regression_thins_long_inputs_and_predicts_in_chunks() -> None:
    x, y = _paired(500)
    model = motion.fit_kernel(x, y, max_rows=120)
    assert model.rows.shape == (120, 12)
    assert np.array_equal(model.rows[0], x[0]) and np.array_equal(model.rows[-1], x[-1])
    many = np.repeat(x, 5, axis=0)  # 2500 rows: more than one prediction block
    assert np.allclose(model.predict(many), np.repeat(model.predict(x), 5))
    assert motion.pearson(model.predict(x), y) > 0.9


def test_kernel_regression_leaves_out_rows_it_cannot_use() -> None:
    x, y = _paired(200)
    x[5, 3], y[9] = np.nan, np.inf
    model = motion.fit_kernel(x, y)
    assert model.rows.shape == (198, 12) and np.isfinite(model.coef).all()
    assert np.allclose(motion.fit_kernel(x[:0], y[:0]).predict(x[:3]), 0.0)


def test_kernel_regression_of_identical_rows_is_their_mean() -> None:
    model = motion.fit_kernel(np.ones((5, 3)), np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert np.allclose(model.predict(np.ones((2, 3))), 3.0)


def test_holdout_reliability_high_for_learnable_and_low_for_noise() -> None:
    x, y = _paired(300)
    valid = np.ones(300, dtype=bool)
    assert motion.holdout_reliability(x, y, valid) > 0.9
    noise = np.random.default_rng(5).normal(size=300)
    assert motion.holdout_reliability(x, noise, valid) < 0.3
    assert motion.holdout_reliability(x[:20], y[:20], valid[:20]) == 0.0


def test_combine_closes_silence_and_bilabials_and_leads() -> None:
    scale = motion.OpeningScale(closed=0.01, open=0.3)
    n = 10
    phone = np.full(n, 1.0, dtype=np.float32)
    speech = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 0], dtype=bool)
    closed = np.zeros(n, dtype=bool)
    closed[5] = True
    target = motion.combine_targets(np.zeros(n), phone, 0.0, speech, closed, scale, lead_frames=0)
    assert target.opening[0] == target.opening[9] == target.opening[5] == np.float32(0.01)
    assert np.allclose(target.opening[[1, 2, 3, 4, 6, 7, 8]], 0.3)
    assert target.closed.tolist() == [True] + [False] * 4 + [True] + [False] * 3 + [True]
    led = motion.combine_targets(np.zeros(n), phone, 0.0, speech, closed, scale, lead_frames=1)
    # the b/p/m closure shows one frame before its sound and holds through it
    assert led.opening[4] == led.opening[5] == np.float32(0.01)
    assert led.closed[4] and led.closed[5] and not led.closed[3] and not led.closed[6]
    # a pause closes one frame early and opens one frame before the sound
    assert led.closed[8] and led.closed[9] and not led.closed[0]
    assert len(led.opening) == len(led.closed) == n
    # a lead longer than the audio (two frames, a 120 ms lead at 25 fps)
    short = motion.combine_targets(np.zeros(2), phone[:2], 0.0, speech[1:3], closed[4:6],
                                   scale, lead_frames=3)
    assert len(short.opening) == len(short.closed) == 2 and short.closed[1]


def test_combine_weights_reliable_regression() -> None:
    scale = motion.OpeningScale(closed=0.0, open=1.0)
    ones = np.ones(4, dtype=bool)
    none = np.zeros(4, dtype=bool)
    fitted = np.full(4, 0.9)
    phone = np.zeros(4, dtype=np.float32)
    trusted = motion.combine_targets(fitted, phone, 0.8, ones, none, scale, 0)
    ignored = motion.combine_targets(fitted, phone, -0.5, ones, none, scale, 0)
    assert np.allclose(trusted.opening, 0.72) and np.allclose(ignored.opening, 0.0)


def test_opening_scale_and_lead_frames() -> None:
    opening = np.linspace(0.0, 0.4, 101)
    valid = np.ones(101, dtype=bool)
    scale = motion.opening_scale(opening, valid, valid)
    assert scale.closed < 0.02 and scale.open > 0.37
    assert motion.lead_frames_for(40.0, 25.0) == 1
    assert motion.lead_frames_for(0.0, 25.0) == 0


def test_match_spread_gives_speech_the_template_range() -> None:
    rng = np.random.default_rng(5)
    shrunk = 0.1 + 0.01 * rng.normal(size=100)  # a regression's timid output
    speech = np.ones(100, dtype=bool)
    speech[:10] = False
    reference = rng.uniform(0.05, 0.4, size=300)
    out = motion.match_spread(shrunk, speech, reference, gain=1.0)
    assert abs(out[speech].mean() - reference.mean()) < 1e-9
    assert abs(out[speech].std() - reference.std()) < 1e-9
    assert motion.pearson(out, shrunk) > 0.999  # same shape, larger swing
    lively = motion.match_spread(shrunk, speech, reference)  # the engine's default gain
    assert abs(lively[speech].mean() - reference.mean()) < 1e-9
    assert abs(lively[speech].std() - motion.SPREAD_GAIN * reference.std()) < 1e-9
    flat = np.full(100, 0.2)
    assert np.array_equal(motion.match_spread(flat, speech, reference), flat)
