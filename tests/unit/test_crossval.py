"""The leave-one-speaker-out evaluation's parts: folds, intervals, one split's score."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from heygemd.engines.builtin import planning
from heygemd.engines.builtin.listen import FEATURE_DIM, Heard
from heygemd.evaluate import crossval
from heygemd.learn.corpus import ClipData, ClipFacts
from heygemd.settings import BuiltinEngineSettings
from tests.unit.test_builtin_planning import _features, _template

PER_FRAME = 640  # 16 kHz samples per frame at 25 fps


class AudioLoudness:
    """Hears, in each frame's samples, a constant: the frame's loudness (speech above zero)."""

    def hear(self, audio: np.ndarray, fps: float, count: int) -> Heard:
        loud = audio[: count * PER_FRAME].reshape(count, PER_FRAME).mean(axis=1)
        return Heard(
            features=_features(loud), speech=loud > 0, level=np.where(loud > 0, -20.0, -80.0),
            phone_opening=loud.astype(np.float32), closed_lips=np.zeros(count, bool),
        )


def _data(speaker: str, trainable: bool) -> ClipData:
    facts = ClipFacts(path=Path(f"{speaker}.mp4"), speaker=speaker, language="en",
                      licence="MIT" if trainable else "none found")
    return ClipData(facts=facts, fps=25.0, features=np.zeros((4, FEATURE_DIM), np.float32),
                    opening=np.zeros(4, np.float32), usable=np.ones(4, bool),
                    speech=np.ones(4, bool))


def test_each_speaker_is_scored_by_a_model_that_never_heard_them() -> None:
    clips = [_data("a", True), _data("b", True), _data("c", False)]
    models = crossval.loso_models(clips, lambda cs: tuple(c.facts.speaker for c in cs))
    assert models == {"a": ("b",), "b": ("a",), "c": ("a", "b")}


def test_interval_is_the_mean_inside_its_bootstrap_bounds() -> None:
    mean, low, high = crossval.interval([0.1, 0.2, 0.3, 0.4, float("nan")])
    assert mean == 0.25 and low < mean < high and low >= 0.1 and high <= 0.4
    assert crossval.interval([5.0, 5.0]) == (5.0, 5.0, 5.0)


def test_a_split_is_scored_against_the_real_tail() -> None:
    full = _template()
    n = full.n_frames
    audio = np.repeat(np.where(full.speech, full.features[:, 0], 0.0), PER_FRAME)
    heard = AudioLoudness().hear(audio.astype(np.float32), 25.0, n)
    facts = ClipFacts(path=Path("x.mp4"), speaker="x", language="en", licence="MIT")
    score = crossval.score_split(facts, full, heard, 0.5, BuiltinEngineSettings(lead_ms=0),
                                 None)
    assert score.frames == n - 60 and score.face_found == 1.0
    # the opening follows the loudness heard (frame by frame: no lead), and so does the plan
    assert score.r > 0.6 > score.noop_r and score.voiced_r > 0.7 and score.best_shift == 0
    assert score.silent_closed == 1.0
    summary = crossval.summarise([score])
    assert summary["all"]["clips"] == 1 and summary["en"]["r"][0] == score.r
    # not asked: where the r is lost is not looked for
    assert np.isnan(score.target_r) and np.isnan(score.ceiling_r) and "target_r" not in \
        summary["all"]


def test_a_split_says_whether_its_r_is_lost_in_the_target_or_the_selection() -> None:
    full = _template()
    audio = np.repeat(np.where(full.speech, full.features[:, 0], 0.0), PER_FRAME)
    heard = AudioLoudness().hear(audio.astype(np.float32), 25.0, full.n_frames)
    facts = ClipFacts(path=Path("x.mp4"), speaker="x", language="en", licence="MIT")
    cfg = BuiltinEngineSettings(lead_ms=0)
    plain = crossval.score_split(facts, full, heard, 0.5, cfg, None)
    score = crossval.score_split(facts, full, heard, 0.5, cfg, None, diagnose=True)
    assert score.r == plain.r  # looking does not change the plan
    # the selection follows its target (the plan's r is the target's, near enough), and aimed
    # at the truth it finds it: the template's own mouths cover the tail's
    assert abs(score.target_r - score.r) < 0.1 and score.ceiling_r > 0.95
    summary = crossval.summarise([score])
    assert summary["en"]["target_r"][0] == score.target_r
    assert summary["en"]["ceiling_r"][0] == score.ceiling_r
    clip = crossval.per_clip([score])["x.mp4"]
    assert clip["ceiling_r"] == score.ceiling_r
    # scored on every other frame, as a slower camera's split is
    head = crossval.head_analysis(full, 60, crossval.heard_slice(heard, 0, 60))
    tail = crossval.heard_slice(heard, 60, full.n_frames)
    truth = np.where(full.usable[60:], full.opening[60:], np.nan).astype(np.float64)
    every = crossval.aimed(head, tail, truth, cfg, None, planning.mouth_detail(head), every=2)
    target = planning.aim(head, tail, cfg, None).target.opening.astype(np.float64)
    assert every.target_r == round(float(np.corrcoef(target[::2], truth[::2])[0, 1]), 3)
    assert every.target_r != score.target_r and every.ceiling_r > 0.95
    # a head planned at another rate (50 fps: every other frame) is not looked at
    fast = crossval.aimed(replace(head, fps=50.0), tail, truth, cfg, None,
                          planning.mouth_detail(head))
    assert np.isnan(fast.target_r) and np.isnan(fast.ceiling_r)


def test_a_change_is_judged_per_clip_against_an_earlier_run() -> None:
    def run_of(rs: dict[str, tuple[str, float]]) -> dict:
        return {"learned": {"per_clip": {name: {"language": lang, "r": r}
                                         for name, (lang, r) in rs.items()}}}

    before = run_of({"a": ("en", 0.30), "b": ("en", 0.50), "c": ("zh", 0.40), "gone": ("en", 0.9)})
    now = run_of({"a": ("en", 0.35), "b": ("en", 0.45), "c": ("zh", 0.50), "new": ("en", 0.1)})
    change = crossval.against(before, now)
    assert change["clips"] == 3 and change["left_out"] == 2
    mean, low, high = change["all"]["r_change"]
    assert mean == pytest.approx(0.1 / 3, abs=1e-3) and low <= mean <= high
    assert (change["all"]["up"], change["all"]["down"]) == (2, 1)
    assert change["zh"]["r_change"] == (0.1, 0.1, 0.1)
    assert change["en"]["up"] == 1 and change["en"]["down"] == 1


def test_footage_at_twice_its_rate_is_planned_as_at_its_own() -> None:
    """A clip shown at twice its frame rate (every frame twice, heard at that rate) scores as
    at its own: the plan is made at the rate the models count in."""
    full = _template()
    n = full.n_frames
    audio = np.repeat(np.where(full.speech, full.features[:, 0], 0.0), PER_FRAME)
    audio = audio.astype(np.float32)

    class Repeating(AudioLoudness):
        def hear(self, audio: np.ndarray, fps: float, count: int) -> Heard:
            times = int(round(fps / 25.0))
            heard = super().hear(audio, 25.0, count // times)
            return Heard(**{name: np.repeat(getattr(heard, name), times, axis=0)
                            for name in ("features", "speech", "level", "phone_opening",
                                         "closed_lips")})

    facts = ClipFacts(path=Path("x.mp4"), speaker="x", language="en", licence="MIT")
    cfg = BuiltinEngineSettings(lead_ms=0)
    detail = np.zeros(n)
    # an odd head (63 frames): at twice the rate, 126, a whole number of planned frames
    assert crossval.head_frames(n, 0.525, 25.0) == 63
    assert crossval.head_frames(2 * n, 0.525, 50.0) == 126
    own = crossval.score_split(facts, full, Repeating().hear(audio, 25.0, n), 0.525, cfg, None,
                               detail=detail)
    faster = crossval.repeated(full, 2)
    assert faster.fps == 50.0 and faster.n_frames == 2 * n
    twice = crossval.score_split(facts, faster, Repeating().hear(audio, 50.0, 2 * n), 0.525,
                                 cfg, None, detail=np.repeat(detail, 2))
    assert twice.frames == 2 * own.frames == 2 * (n - 63)
    assert twice.r == pytest.approx(own.r, abs=1e-3) and twice.silent_closed == own.silent_closed


def test_footage_at_half_its_rate_is_scored_on_the_frames_it_keeps() -> None:
    """Every other frame of a clip, as a 12.5 fps camera keeps it, is scored against its truth
    on those frames, and so is the own-rate plan when asked to (every=2): the same frames."""
    full = _template()
    n = full.n_frames
    audio = np.repeat(np.where(full.speech, full.features[:, 0], 0.0), PER_FRAME)
    heard = AudioLoudness().hear(audio.astype(np.float32), 25.0, n)
    facts = ClipFacts(path=Path("x.mp4"), speaker="x", language="en", licence="MIT")
    cfg = BuiltinEngineSettings(lead_ms=0)
    slow = planning.at_plan_rate(full, 2)  # every other frame, as the eval's --slower 2
    assert slow.fps == 12.5 and slow.n_frames == n // 2
    np.testing.assert_array_equal(slow.opening, full.opening[::2])
    own = crossval.score_split(facts, full, heard, 0.5, cfg, None, detail=np.zeros(n), cut=60,
                               every=2)
    assert own.frames == 30 and own.r > 0.6
    # its silent frames are those kept: the share and its counts agree
    kept = ~heard.speech[60::2] & np.isfinite(full.opening[60::2])
    assert own.silent_frames == int(kept.sum()) > 0
    assert own.silent_closed == round(own.silent_shown_closed / own.silent_frames, 3)


def test_each_target_is_judged_with_its_own_figure() -> None:
    full = _template()
    audio = np.repeat(np.where(full.speech, full.features[:, 0], 0.0), PER_FRAME)
    heard = AudioLoudness().hear(audio.astype(np.float32), 25.0, full.n_frames)
    cfg = BuiltinEngineSettings(lead_ms=0)
    scores = [crossval.score_split(
        ClipFacts(path=Path(f"{lang}.mp4"), speaker=lang, language=lang, licence="MIT"),
        full, heard, share, cfg, None) for lang in ("en", "zh") for share in (0.5, 0.6)]
    plan = {"learned": {"summary": crossval.summarise(scores),
                        "per_clip": crossval.per_clip(scores)}}
    goals = {goal.asks.split(" ")[0]: goal for goal in crossval.goals(plan)}
    r = plan["learned"]["summary"]["all"]["r"][0]
    assert goals["mean"].met == (r >= 0.55) and f"{r:.3f}" in goals["mean"].measured
    # the same clip in both languages: Mandarin within 0.05 of English, by +0.000
    assert goals["Mandarin"].met and "(+0.000)" in goals["Mandarin"].measured
    assert goals["silent"].met and goals["face"].met
    assert goals["|best"].met == (plan["learned"]["summary"]["max_abs_shift"] <= 1)
    # rendered: a clip under the sharpness target is named, and the target is not met
    rendered = crossval.goals(plan, {"sharpness_shortfall": {"under_target": ["zh.mp4"]}})
    assert not rendered[-1].met and "zh.mp4" in rendered[-1].measured
    assert rendered[-1].line().startswith("  NOT met  mouth sharpness")


def test_silent_frames_closed_are_pooled_over_the_splits_silent_frames() -> None:
    def split(closed: int, silent: int) -> crossval.PlanScore:
        return crossval.PlanScore(
            clip="x.mp4", speaker="x", language="en", share=0.5, frames=100, r=0.5,
            voiced_r=0.5, noop_r=0.0, best_shift=0,
            silent_closed=closed / silent if silent else float("nan"), face_found=1.0,
            template_weight=1.0, silent_frames=silent, silent_shown_closed=closed)

    summary = crossval.summarise([split(30, 30), split(0, 10), split(0, 0)])
    assert summary["silent_closed_pooled"] == 0.75 and summary["silent_closed_mean"] == 0.5
