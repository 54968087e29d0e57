"""Pure parts of the lip-sync evaluation (heygemd.evaluate) on synthetic series."""

from __future__ import annotations

import numpy as np
import pytest

from heygemd import evaluate


def test_best_lag_finds_a_late_output() -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(size=200)
    out = np.concatenate([np.zeros(2), truth[:-2]])  # the output shows each frame 2 frames late
    lag, r = evaluate.best_lag(out, truth)
    assert lag == 2 and r > 0.99
    assert evaluate.finite_pearson(out, truth) < 0.3


def _mouth_like(rng: np.random.Generator, n: int) -> np.ndarray:
    """A series that moves like a mouth's opening: noise smoothed over 5 frames."""
    return np.convolve(rng.normal(size=n), np.ones(5) / 5, mode="same")


def test_a_shift_the_whole_series_holds_has_a_narrow_interval() -> None:
    from heygemd.evaluate.metrics import lag_interval, lag_sums

    rng = np.random.default_rng(5)
    truth = _mouth_like(rng, 600)
    out = np.concatenate([np.zeros(3), truth[:-3]]) + 0.3 * rng.normal(size=600)
    truth[::7] = np.nan  # frames without a face leave the pairs they are in
    sums = lag_sums(out, truth, block=25)
    assert sums.shape == (11, 24, 6)
    shift = lag_interval(sums)
    assert (shift.lag, shift.low, shift.high, shift.seconds) == (3, 3, 3, 24)
    lag, r = evaluate.best_lag(out, truth)
    assert shift.lag == lag and abs(shift.r - r) < 1e-3


def test_a_weak_follower_has_a_wide_shift_interval() -> None:
    """The best lag of a weak correlation is noise: its interval spans frames either way,
    where the lone best lag would call it a shift."""
    from heygemd.evaluate.metrics import lag_interval, lag_sums

    rng = np.random.default_rng(2)
    truth = _mouth_like(rng, 300)
    out = 0.1 * truth + rng.normal(size=300)
    shift = lag_interval(lag_sums(out, truth, block=25))
    assert shift.low <= shift.lag <= shift.high
    assert shift.high - shift.low >= 4


def test_nothing_to_correlate_gives_the_whole_range() -> None:
    """A tail without a face (all NaN), a constant output, or nothing at all: no lag is
    preferred, so the interval is every lag searched, never one end of it."""
    from heygemd.evaluate.metrics import lag_interval, lag_sums

    rng = np.random.default_rng(1)
    truth = _mouth_like(rng, 100)
    for out, tru in ((rng.normal(size=100), np.full(100, np.nan)),
                     (np.full(100, 0.123), truth), (np.zeros(0), np.zeros(0))):
        shift = lag_interval(lag_sums(out, tru, block=25))
        assert (shift.lag, shift.low, shift.high) == (0, -5, 5)
        assert not np.isfinite(shift.r)


def test_tails_of_one_clip_add_up_second_by_second() -> None:
    """Tails cut at different frames of one clip share their last seconds: their sums add in
    the clip's own seconds (resampled together), not as more seconds."""
    from heygemd.evaluate.metrics import lag_interval, lag_sums

    rng = np.random.default_rng(4)
    n = 250
    truth = _mouth_like(rng, n)
    out = np.concatenate([truth[2:], np.zeros(2)]) + 0.5 * rng.normal(size=n)  # 2 frames early
    parts = [lag_sums(out[cut:], truth[cut:], block=25, start=cut) for cut in (125, 150, 175)]
    assert {p.shape for p in parts} == {(11, 10, 6)}
    assert not parts[0][:, :5].any() and parts[2][:, 7:].any()  # the head's seconds are empty
    shift = lag_interval(np.sum(parts, axis=0))
    assert shift.seconds == 5  # the seconds of the longest tail, each once
    assert shift.lag == -2 and shift.low <= -2 <= shift.high


def test_a_clip_is_off_only_on_enough_seconds_of_a_real_correlation() -> None:
    from heygemd.evaluate.crossval import shift_off

    clip = {"shift": 3.0, "shift_interval": [2.0, 4.0], "shift_r": 0.5, "shift_seconds": 12.0}
    assert shift_off(clip)
    assert not shift_off({**clip, "shift_interval": [1.0, 4.0]})
    assert not shift_off({**clip, "shift_seconds": 5.0})
    assert not shift_off({**clip, "shift_r": 0.05})
    assert not shift_off({**clip, "shift_r": float("nan")})
    assert shift_off({**clip, "shift": -3.0, "shift_interval": [-4.0, -2.0]})
    assert not shift_off({"max_abs_shift": 4.0})


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


def test_a_mouth_that_opens_before_the_voice_has_a_negative_voice_lag() -> None:
    voiced = np.zeros(120)
    for start in (10, 45, 80):
        voiced[start : start + 20] = 1.0
    opening = np.concatenate([voiced[1:], [0.0]]) * 0.2  # opens and closes one frame early
    lag, r = evaluate.best_lag(opening, voiced)
    assert lag == -1 and r > 0.99


def test_the_table_shows_each_dub_with_its_voice_lag() -> None:
    from heygemd.evaluate.suite import format_table

    dub = {"template": "anna.mp4", "speech": "zh01.wav", "frames": 150, "coupling_r": 0.25,
           "baseline_coupling_r": 0.02, "voice_lag": -1, "voice_r": 0.56, "seconds": 3.0}
    table = format_table({"self_reenactment": [], "summary": {}, "dubbing": [dub],
                          "mean_coupling_r": 0.25, "max_abs_voice_lag": 1})
    assert "anna.mp4" in table and "voice lag=-1 r=0.56" in table
    assert "largest voice lag: 1" in table


def test_summary_means_the_voiced_r_beside_the_r() -> None:
    from dataclasses import fields

    from heygemd.evaluate.score import ClipScore
    from heygemd.evaluate.suite import format_table, summary

    def clip(name: str, r: float, voiced_r: float) -> ClipScore:
        values = {f.name: 1 if f.type in ("int", int) else 0.5 for f in fields(ClipScore)}
        return ClipScore(**{**values, "clip": name, "r": r, "voiced_r": voiced_r})

    scores = [clip("a.mp4", 0.4, 0.6), clip("b.mp4", 0.2, 0.4)]
    means = summary(scores)
    assert means["mean_r"] == 0.3 and means["mean_voiced_r"] == 0.5
    table = format_table({"self_reenactment": [s.__dict__ for s in scores], "summary": means,
                          "dubbing": [], "mean_coupling_r": None, "max_abs_voice_lag": None})
    assert "voiced" in table.splitlines()[0] and " 0.60 " in table.splitlines()[1]


def test_opening_matched_averages_the_frames_of_the_nearest_openings() -> None:
    from heygemd.evaluate.metrics import opening_matched

    opening = np.array([0.0, 0.01, 0.02, 0.10, 0.11, 0.12, np.nan])
    sharp = np.array([10.0, 20.0, 30.0, 100.0, 110.0, np.nan, 500.0])
    got = opening_matched(sharp, opening, np.array([0.105, 0.0, np.nan]), k=2)
    assert np.allclose(got[:2], [105.0, 15.0]) and np.isnan(got[2])


def test_a_clip_under_the_sharpness_target_is_put_down_to_its_template_only_under_ceiling(
) -> None:
    from dataclasses import fields, replace

    from heygemd.evaluate.metrics import Track
    from heygemd.evaluate.score import (
        ClipScore,
        chosen_vs_same_opening,
        openings_vs_truth,
        sharpness_ceilings,
    )
    from heygemd.evaluate.suite import format_table, sharpness_shortfall, summary

    # the held-out frames open wider than the template mostly does, and open mouths are
    # sharper: the whole template is under 0.9 of them, its frames of their openings are not
    template_opening = np.array([0.0] * 15 + [0.1] * 5)
    template_sharp = np.array([50.0] * 15 + [100.0] * 5)
    truth = Track(opening=[0.1, 0.1, np.nan], sharpness=[100.0, 100.0, np.nan], kept={})
    open_truth = sharpness_ceilings(template_sharp, template_opening, truth)
    assert open_truth == {"sharpness_ceiling": 1.0, "sharpness_template_vs_truth": 0.625}
    blurred = sharpness_ceilings(template_sharp * 0.5, template_opening, truth)
    assert blurred["sharpness_ceiling"] == 0.5
    # the output shows closed mouths where the truth's were open: those shapes cost half
    closed_frames = np.arange(15)
    shapes = openings_vs_truth(template_sharp, template_opening, closed_frames, truth)
    assert shapes == 0.5
    # a chosen frame is as sharp as the template's others of its shape; a blurred one is not
    assert chosen_vs_same_opening(template_sharp, template_opening, closed_frames) == 1.0
    smeared = template_sharp.copy()
    smeared[0] = 10.0
    assert chosen_vs_same_opening(smeared, template_opening, np.array([0])) < 0.5

    values = {f.name: 1 if f.type in ("int", int) else 1.0 for f in fields(ClipScore)}
    sharp = ClipScore(**{**values, "clip": "sharp.mp4"})
    chosen = replace(sharp, clip="closed.mp4", sharpness_vs_truth=0.7, sharpness_openings=shapes,
                     **open_truth)
    footage = replace(sharp, clip="footage.mp4", sharpness_vs_truth=0.6, **blurred)
    clips = [sharp, chosen, footage]
    assert sharpness_shortfall(clips) == {
        "under_target": ["closed.mp4", "footage.mp4"], "under_ceiling": ["footage.mp4"],
        "largest_loss": {"closed.mp4": "openings", "footage.mp4": "footage"}}
    means = summary(clips)
    assert means["clips_under_sharpness_target"] == 2 and means["of_which_under_ceiling"] == 1
    table = format_table({"self_reenactment": [s.__dict__ for s in clips], "summary": means,
                          "sharpness_shortfall": sharpness_shortfall(clips), "dubbing": [],
                          "mean_coupling_r": None, "max_abs_voice_lag": None})
    assert "ceil" in table.splitlines()[0]
    assert "(ceiling under 0.9): footage.mp4" in table
    assert "largest loss: closed.mp4 openings, footage.mp4 footage" in table


def test_both_sharpness_measures_read_the_mouth_box_only() -> None:
    import cv2

    from heygemd.evaluate.metrics import mouth_gradient, mouth_sharpness
    from heygemd.faces import landmarks as lm

    rng = np.random.default_rng(7)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (200, 200, 3)).astype(np.uint8), (0, 0), 1.0)
    points = np.zeros((478, 3))
    angle = np.linspace(0, 2 * np.pi, len(lm.LIPS_OUTER), endpoint=False)
    points[list(lm.LIPS_OUTER), 0] = 100 + 30 * np.cos(angle)
    points[list(lm.LIPS_OUTER), 1] = 120 + 15 * np.sin(angle)
    soft_mouth, soft_rest = frame.copy(), cv2.GaussianBlur(frame, (0, 0), 3.0)
    soft_mouth[90:160, 40:170] = soft_rest[90:160, 40:170]  # the box: 61..139 x 96..144
    soft_rest[90:160, 40:170] = frame[90:160, 40:170]
    for measure in (mouth_sharpness, mouth_gradient):
        sharp = measure(frame, points)
        assert measure(soft_mouth, points) < 0.3 * sharp
        assert measure(soft_rest, points) == pytest.approx(sharp)
    assert np.isnan(mouth_gradient(frame, points + 1000))  # the box outside the frame
