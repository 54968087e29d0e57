"""planning.drive on a synthetic template and a fake listener: the plan follows what is heard."""

from __future__ import annotations

import numpy as np
import pytest

from heygemd.contract import AUDIO_RATE
from heygemd.engines.builtin import motion, planning, select
from heygemd.engines.builtin.analysis import TemplateAnalysis
from heygemd.engines.builtin.listen import FEATURE_DIM, Heard
from heygemd.engines.builtin.mouthmodel import MouthModel, mel_columns
from heygemd.faces import landmarks as lm
from heygemd.settings import BuiltinEngineSettings

N = 120  # template frames
FPS = 25.0


def _face(band: float) -> np.ndarray:
    """478 landmarks with eyes 100 px apart and a lip band ``band`` (x the eye distance)."""
    points = np.zeros((478, 3), np.float32)
    points[lm.LEFT_EYE_OUTER, 0] = 100
    points[lm.UPPER_LIP_OUTER, 1] = 80 - 50 * band
    points[lm.UPPER_LIP_INNER, 1] = points[lm.LOWER_LIP_INNER, 1] = 80
    points[lm.LOWER_LIP_OUTER, 1] = 80 + 50 * band
    return points


def _features(loudness: np.ndarray) -> np.ndarray:
    """One informative feature column (the rest noise-free zeros)."""
    rows = np.zeros((len(loudness), FEATURE_DIM), np.float32)
    rows[:, 0] = loudness
    return rows


def _textured(blurred: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(landmarks (count, 478, 3), crops uint8 (count, 128, 128, 3)): every frame's outer lips
    a ring round (50, 80) in a textured crop; frame ``blurred``'s lip box blurred."""
    import cv2

    points = np.stack([_face(0.18)] * count)
    angle = np.linspace(0, 2 * np.pi, len(lm.LIPS_OUTER), endpoint=False)
    points[:, list(lm.LIPS_OUTER), 0] = 50 + 25 * np.cos(angle)
    points[:, list(lm.LIPS_OUTER), 1] = 80 + 12 * np.sin(angle)
    texture = np.random.default_rng(5).integers(0, 256, (128, 128, 3)).astype(np.uint8)
    crops = np.stack([texture] * count)
    crops[blurred, 55:105, 10:90] = cv2.GaussianBlur(texture, (0, 0), 2.0)[55:105, 10:90]
    return points, crops


def _template(rolled_in: int | None = None, blurred: int | None = None) -> TemplateAnalysis:
    """Speech where the opening follows feature 0; its pauses (every 4th second) rest half open
    with silent features, as real speakers do. ``rolled_in``: one closed frame with its lips
    pressed out of sight; ``blurred``: one closed frame whose mouth is blurred (the others
    sharp, textured crops)."""
    rng = np.random.default_rng(0)
    t = np.arange(N)
    speech = (t // 25) % 4 != 3
    loud = np.where(speech, rng.uniform(0, 1, N), 0.0)
    opening = np.where(speech, 0.02 + 0.3 * loud, 0.12).astype(np.float32)
    opening[[5, 6, 40, 41, 70, 71]] = 0.0  # closed mouths to choose from in pauses
    bands = np.full(N, 0.18)
    if rolled_in is not None:
        opening[rolled_in] = 0.0
        bands[rolled_in] = 0.08
    landmarks = np.stack([_face(b) for b in bands])
    crops = np.zeros((N, 8, 8, 3), np.uint8)
    if blurred is not None:
        opening[blurred] = 0.0
        landmarks, crops = _textured(blurred, N)
    return TemplateAnalysis(
        fps=FPS, width=256, height=256,
        landmarks=landmarks, pose=np.zeros((N, 3), np.float32),
        usable=np.ones(N, bool), opening=opening, features=_features(loud), speech=speech,
        crop_origin=np.zeros((N, 2), np.int32), crops=crops,
    )


class FakeListener:
    """Hears a fixed loudness track: speech where it is above zero."""

    def __init__(self, loudness: np.ndarray) -> None:
        self.loudness = loudness

    def hear(self, audio: np.ndarray, fps: float, count: int) -> Heard:
        loud = self.loudness[:count]
        return Heard(
            features=_features(loud), speech=loud > 0, level=np.where(loud > 0, -20.0, -80.0),
            phone_opening=loud.astype(np.float32), closed_lips=np.zeros(count, bool),
        )


def _drive(analysis: TemplateAnalysis, loudness: np.ndarray) -> tuple[np.ndarray, dict]:
    cfg = BuiltinEngineSettings(lead_ms=40)  # a lead of one frame at 25 fps
    plan, metrics = planning.drive(analysis, np.zeros(AUDIO_RATE, np.float32), len(loudness), cfg,
                                   FakeListener(loudness))  # fmt: skip
    assert plan.active.all()
    return analysis.opening[plan.source], metrics


def test_the_mouth_follows_the_heard_speech_and_closes_in_pauses() -> None:
    rng = np.random.default_rng(1)
    loudness = np.repeat(rng.uniform(0.05, 1, 10), 5)  # syllables of 5 frames
    loudness[20:30] = 0.0  # a pause
    shown, metrics = _drive(_template(), loudness)
    ahead = loudness[1:]  # the mouth leads the sound by one frame (lead_ms 40 at 25 fps)
    spoken = ahead > 0
    assert np.corrcoef(shown[:-1][spoken], ahead[spoken])[0, 1] > 0.8
    # the pause is closed (the mouth leads the sound by a frame at each edge), although the
    # template's own pauses rest half open
    assert (shown[21:29] < 0.01).all()
    assert metrics["regression_reliability"] > 0.7 and metrics["target_r"] > 0.9


def test_the_selection_follows_whatever_it_is_aimed_at() -> None:
    analysis = _template()
    loudness = np.repeat(np.random.default_rng(2).uniform(0.05, 1, 12), 5)
    loudness[30:40] = 0.0  # a pause
    heard = FakeListener(loudness).hear(np.zeros(0, np.float32), FPS, len(loudness))
    cfg = BuiltinEngineSettings(lead_ms=0)
    aimed = planning.aim(analysis, heard, cfg, None)
    target = aimed.target
    # the target follows the loudness heard and closes in the pause
    spoken = loudness > 0
    assert np.corrcoef(target.opening[spoken], loudness[spoken])[0, 1] > 0.9
    assert target.closed[30:40].all() and not target.closed[spoken].any()
    assert (target.opening[30:40] == aimed.scale.closed).all()
    assert aimed.metrics["regression_reliability"] > 0.7
    base = select.pingpong_indices(60, N)
    detail = planning.mouth_detail(analysis)
    opening = np.nan_to_num(analysis.opening)
    plan, _ = planning.drive(analysis, np.zeros(0, np.float32), 60, cfg, FakeListener(loudness))
    chosen = planning.choose(analysis, target, aimed.scale, base, cfg, detail)
    assert (chosen.source == plan.source).all() and (chosen.base == plan.base).all()
    # aimed at another track of openings (inside the template's range), it follows that one
    other = motion.Target(opening=np.linspace(0.05, 0.3, 60).astype(np.float32)[::-1],
                          closed=np.zeros(60, bool))
    shown = opening[planning.choose(analysis, other, aimed.scale, base, cfg, detail).source]
    assert np.corrcoef(shown, other.opening)[0, 1] > 0.95


PAUSED = np.concatenate([np.full(10, 0.5), np.zeros(20), np.full(10, 0.5)])  # a pause inside


def _pause_plans(monkeypatch: pytest.MonkeyPatch, analysis: TemplateAnalysis,
                 weight: str) -> tuple[np.ndarray, np.ndarray]:
    """The template frames chosen for PAUSED with select's cost ``weight`` (a module constant)
    set to 0, then as it is."""
    chosen = []
    for value in (0.0, getattr(select, weight)):
        monkeypatch.setattr(select, weight, value)
        plan, _ = planning.drive(analysis, np.zeros(AUDIO_RATE, np.float32), len(PAUSED),
                                 BuiltinEngineSettings(), FakeListener(PAUSED))  # fmt: skip
        chosen.append(plan.source)
    return chosen[0], chosen[1]


def test_pauses_avoid_rolled_in_lips(monkeypatch: pytest.MonkeyPatch) -> None:
    analysis = _template(rolled_in=90)
    without, shown = _pause_plans(monkeypatch, analysis, "LIP_BAND_WEIGHT")
    band = select.lip_band(analysis.landmarks)
    assert band[90] < 0.5 * np.median(band)  # a closed mouth, but its lips out of sight
    assert 90 in without.tolist()  # without the cost it is the pause's best match
    assert 90 not in shown.tolist()
    assert (analysis.opening[shown[12:28]] < 0.01).all()  # still closed


def test_pauses_avoid_a_blurred_mouth(monkeypatch: pytest.MonkeyPatch) -> None:
    analysis = _template(blurred=90)
    detail = planning.mouth_detail(analysis)
    assert detail[90] < select.BLUR_FLOOR * np.median(detail)  # the lip box blurred
    without, shown = _pause_plans(monkeypatch, analysis, "BLUR_WEIGHT")
    assert 90 in without.tolist()  # without the cost it is the pause's best match
    assert 90 not in shown.tolist()
    assert (analysis.opening[shown[12:28]] < 0.01).all()  # still closed
    # the same plan when the detail is given (the engine finds it while the audio is heard)
    given, _ = planning.drive(analysis, np.zeros(AUDIO_RATE, np.float32), len(PAUSED),
                              BuiltinEngineSettings(), FakeListener(PAUSED), None, detail)
    assert given.source.tolist() == shown.tolist()


def test_mouth_detail_of_a_template_whose_crops_end_early() -> None:
    analysis = _template(blurred=90)
    short = planning.mouth_detail(TemplateAnalysis(**{**analysis.__dict__,
                                                      "crops": analysis.crops[:100]}))
    assert np.isfinite(short[:100]).all() and np.isnan(short[100:]).all()
    assert short[:100] == pytest.approx(planning.mouth_detail(analysis)[:100])


def _column_model(column: int) -> MouthModel:
    """A speaker-independent model that answers mel column ``column`` of the features."""
    columns = mel_columns(FEATURE_DIM)
    width = len(columns)
    weights = np.zeros(width, np.float32)
    weights[column] = 1.0
    return MouthModel(columns=columns, mean=np.zeros(width, np.float32),
                      scale=np.ones(width, np.float32),
                      weights=weights, bias=0.0)


def test_the_speaker_independent_model_shares_the_target_with_the_templates_fit() -> None:
    rng = np.random.default_rng(1)
    loudness = np.repeat(rng.uniform(0.05, 1, 10), 5)
    analysis = _template()
    spoken = int((analysis.usable & analysis.speech).sum())
    plan, metrics = planning.drive(analysis, np.zeros(AUDIO_RATE, np.float32), len(loudness),
                                   BuiltinEngineSettings(), FakeListener(loudness),
                                   _column_model(0))
    assert metrics["template_weight"] == round(motion.template_weight(spoken), 4)
    assert 0.0 < metrics["template_weight"] < 1.0
    shown = analysis.opening[plan.source]
    # a model hearing the same thing as the template's fit: the mouth still follows the sound
    assert np.corrcoef(shown, loudness)[0, 1] > 0.8
    # a model that hears nothing of it (a silent column) pulls the mouth away from the sound
    _, deaf = planning.drive(analysis, np.zeros(AUDIO_RATE, np.float32), len(loudness),
                             BuiltinEngineSettings(), FakeListener(loudness), _column_model(1))
    assert deaf["target_r"] < metrics["target_r"]


def _late(analysis: TemplateAnalysis, frames: int) -> TemplateAnalysis:
    """The template with its own sound ``frames`` late against its picture."""
    from dataclasses import replace

    source = np.clip(np.arange(analysis.n_frames) - frames, 0, analysis.n_frames - 1)
    return replace(analysis, features=analysis.features[source],
                   speech=analysis.speech[source])


def test_a_template_recorded_out_of_step_is_moved_into_step() -> None:
    rng = np.random.default_rng(1)
    loudness = np.repeat(rng.uniform(0.05, 1, 10), 5)
    late = _late(_template(), 6)  # 240 ms
    results, shown = {}, {}
    for allowed in (True, False):
        plan, results[allowed] = planning.drive(
            late, np.zeros(AUDIO_RATE, np.float32), len(loudness),
            BuiltinEngineSettings(template_sync=allowed), FakeListener(loudness),
            _column_model(0))
        shown[allowed] = late.opening[plan.source]
    # the mouths chosen follow the new sound, as from a template in step
    assert motion.pearson(shown[True], loudness) > 0.9 > motion.pearson(shown[False], loudness)
    assert results[True]["template_offset_ms"] == 240.0
    assert results[True]["template_offset_corrected"] == 1.0
    assert results[True]["template_offset_at_limit"] == 0.0  # 6 frames of the 8 looked for
    # and the person reads it the right way round: the sound comes after the picture
    from heygemd.pipeline import engine_findings

    said = engine_findings(results[True], "late.mp4")
    assert "about 240 ms behind its picture" in said[0].message
    # fitted on sounds in step with their mouths, the template's regression hears it again
    assert results[True]["regression_reliability"] > 0.7 > results[False]["regression_reliability"]
    assert results[True]["target_r"] > results[False]["target_r"]
    # a template in step is left as it is
    _, in_step = planning.drive(_template(), np.zeros(AUDIO_RATE, np.float32), len(loudness),
                                BuiltinEngineSettings(), FakeListener(loudness), _column_model(0))
    assert in_step["template_offset_ms"] == 0.0 and in_step["template_offset_corrected"] == 0.0
    # nothing is looked for without the speaker-independent model, or with template_sync off
    _, alone = planning.drive(late, np.zeros(AUDIO_RATE, np.float32), len(loudness),
                              BuiltinEngineSettings(), FakeListener(loudness))
    assert "template_offset_ms" not in alone and "template_offset_ms" not in results[False]


def test_frames_with_a_hand_at_the_mouth_give_no_mouth() -> None:
    """Frames planning is told to avoid (a hand at the lower face) are never a mouth's source,
    even where their opening fits best; avoiding every frame still plans."""
    analysis = _template()
    rng = np.random.default_rng(3)
    loudness = np.repeat(rng.uniform(0.05, 1, 8), 5)
    cfg = BuiltinEngineSettings()
    plain, _ = planning.drive(analysis, np.zeros(AUDIO_RATE, np.float32), len(loudness), cfg,
                              FakeListener(loudness))
    avoid = np.zeros(N, bool)
    avoid[np.unique(plain.source)] = True  # every frame the plain plan took
    plan, _ = planning.drive(analysis, np.zeros(AUDIO_RATE, np.float32), len(loudness), cfg,
                             FakeListener(loudness), avoid=avoid)
    assert not avoid[plan.source].any()
    everything, _ = planning.drive(analysis, np.zeros(AUDIO_RATE, np.float32), len(loudness),
                                   cfg, FakeListener(loudness), avoid=np.ones(N, bool))
    np.testing.assert_array_equal(everything.source, plain.source)



def _twice_as_fast(analysis: TemplateAnalysis) -> TemplateAnalysis:
    """The same template at twice its frame rate, every frame shown twice."""
    from dataclasses import replace

    def two(a: np.ndarray) -> np.ndarray:
        return np.repeat(a, 2, axis=0)

    return replace(analysis, fps=analysis.fps * 2, landmarks=two(analysis.landmarks),
                   pose=two(analysis.pose), usable=two(analysis.usable),
                   opening=two(analysis.opening), features=two(analysis.features),
                   speech=two(analysis.speech), crop_origin=two(analysis.crop_origin),
                   crops=two(analysis.crops))


def test_a_50_fps_video_is_planned_at_25_and_its_sources_run_on_between() -> None:
    """A 50 fps video is planned on every other frame, at the 25 fps its models count in: the
    same footage at twice the rate gets the same mouths, each planned source followed by the
    frame after it (a held source holds the later one), and a frame shown as recorded stays
    so; a next frame without a measured mouth gives way to the planned one."""
    slow = _template()
    rng = np.random.default_rng(4)
    loudness = np.repeat(rng.uniform(0.05, 1, 12), 5)
    loudness[25:35] = 0.0
    cfg = BuiltinEngineSettings(lead_ms=40)
    silent = np.zeros(AUDIO_RATE, np.float32)
    planned, _ = planning.drive(slow, silent, len(loudness), cfg, FakeListener(loudness))
    fast = _twice_as_fast(slow)
    moved = planned.source[planned.transplanted]
    gone = 2 * int(moved[0]) + 1  # the frame after a planned source: its mouth not measured
    fast.opening[gone] = np.nan
    plan, metrics = planning.drive(fast, silent, 2 * len(loudness), cfg,
                                   FakeListener(np.repeat(loudness, 2)))
    assert plan.active.all() and len(plan.source) == 2 * len(loudness)
    np.testing.assert_array_equal(plan.base, select.pingpong_indices(2 * len(loudness), 2 * N))
    holds = 0
    for t in range(len(plan.source)):
        c = t // 2
        held = c > 0 and planned.source[c] == planned.source[c - 1]
        if planned.source[c] == planned.base[c]:
            assert plan.source[t] == plan.base[t]
        else:  # a held source stays where its run ended: no step back between frames
            holds += held
            after = 2 * planned.source[c] + (1 if held else t % 2)
            assert plan.source[t] == (2 * planned.source[c] if after == gone else after)
    assert holds > 4
    np.testing.assert_array_equal(
        np.nan_to_num(fast.opening[plan.source]),
        np.nan_to_num(np.repeat(slow.opening[planned.source], 2)))
    assert metrics["frames_as_recorded"] == float((plan.source == plan.base).sum())


def test_a_spread_plan_never_steps_a_mouth_back_within_a_run() -> None:
    """At 120 fps (step 5) a frame in a run without a measured mouth shows the frame before it,
    not the run's first again; a hold after frames shown as recorded in a backward run stays
    at the last one shown; over many ping-pong turns no run steps back."""
    from heygemd.engines.builtin.render import Plan

    analysis = _template()
    analysis.opening[7] = np.nan
    planned = Plan(base=np.array([10, 11]), source=np.array([1, 3]), active=np.ones(2, bool))
    spread = planning.spread_plan(planned, 5, np.arange(10), analysis)
    assert spread.source.tolist() == [5, 6, 6, 8, 9, 15, 16, 17, 18, 19]
    # a template whose every mouth is to be avoided still runs on, as it still plans
    spread = planning.spread_plan(planned, 5, np.arange(10), analysis, avoid=np.ones(N, bool))
    assert spread.source.tolist() == [5, 6, 6, 8, 9, 15, 16, 17, 18, 19]
    backward = Plan(base=np.array([4, 3]), source=np.array([4, 4]), active=np.ones(2, bool))
    spread = planning.spread_plan(backward, 2, np.array([9, 8, 7, 6]), _template())
    assert spread.source.tolist() == [9, 8, 8, 8]

    fast = _twice_as_fast(_twice_as_fast(_template()))  # 100 fps: step 4
    fast.opening[1::7] = np.nan
    rng = np.random.default_rng(6)
    loudness = np.repeat(rng.uniform(0.05, 1, 80), 5)  # 4 s: two turns of the 480 frames
    loudness[100:130] = 0.0
    plan, _ = planning.drive(fast, np.zeros(AUDIO_RATE, np.float32), 4 * len(loudness),
                             BuiltinEngineSettings(), FakeListener(np.repeat(loudness, 4)))
    valid = np.isfinite(fast.opening)
    moved = plan.transplanted
    assert valid[plan.source[moved]].all()
    same_block = np.arange(1, len(plan.source)) // 4 == np.arange(len(plan.source) - 1) // 4
    both = moved[1:] & moved[:-1] & same_block
    assert both.sum() > 100 and (np.diff(plan.source)[both] >= 0).all()
