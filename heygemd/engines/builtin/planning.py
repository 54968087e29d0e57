"""Planning: for each output frame, which template frame is the base and which one's mouth is
shown. The new audio is heard (listen), mapped to a target opening (motion), and a Viterbi pass
picks real template mouths that follow it (select).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from heygemd.engines.builtin import audio_features as af
from heygemd.engines.builtin import motion, select, sync
from heygemd.engines.builtin.analysis import TemplateAnalysis
from heygemd.engines.builtin.listen import HEARD_FIELDS, Heard, Hears, any_of_steps
from heygemd.engines.builtin.mouthmodel import MouthModel, in_template_units
from heygemd.engines.builtin.render import Plan
from heygemd.settings import BuiltinEngineSettings

JUMP_COST = 0.5  # times continuity_weight: cost of a non-consecutive template frame
HOLD_COST = 0.25  # times continuity_weight: cost of showing the same template frame again
# Closed lips in silence and on b/p/m matter more than the exact opening while speaking: a
# slightly parted mouth in a pause reads as "still talking".
CLOSED_SHAPE_WEIGHT = 6.0
MIN_SPEECH_FRAMES = 20  # usable speech frames a template's own regression is fitted on, at least
# The cost of showing a frame planning is told to avoid: far above any shape, pose or run cost
# (a shape cost is 16 at the opening range's far end), finite so that a template whose every
# frame is avoided still gets a plan.
AVOID_COST = 1000.0


# Template frames whose mouth detail is read before the crops' pages are let go: a long
# template's map is never resident whole.
DETAIL_CHUNK = 256


def mouth_detail(analysis: TemplateAnalysis) -> np.ndarray:
    """select.mouth_detail of the template's usable frames, read through the crops' memory map
    DETAIL_CHUNK frames at a time, its pages let go after each. th10 (502 frames, 424 px
    crops): 70 ms, th08 (125 frames) 17 ms."""
    from heygemd.engines.builtin import crops

    detail = np.full(analysis.n_frames, np.nan)
    n = min(analysis.n_frames, len(analysis.crops))  # frames past the crops: no detail
    usable = analysis.usable[:n]
    width = select.box_width(select.lip_boxes(analysis.landmarks[:n], analysis.crop_origin[:n],
                                              usable, analysis.crops.shape[1:3])[usable])
    for start in range(0, n, DETAIL_CHUNK):
        stop = min(n, start + DETAIL_CHUNK)
        detail[start:stop] = select.mouth_detail(
            analysis.crops[start:stop], analysis.landmarks[start:stop],
            analysis.crop_origin[start:stop], usable[start:stop], width)
        crops.let_go(analysis.crops)
    return detail


def drive(
    analysis: TemplateAnalysis,
    audio: np.ndarray,
    count: int,
    cfg: BuiltinEngineSettings,
    listener: Hears,
    model: MouthModel | None = None,
    detail: np.ndarray | None = None,
    avoid: np.ndarray | None = None,
) -> tuple[Plan, dict[str, float]]:
    """Decide, for each of ``count`` output frames, the base and the source template frame.

    audio: float32 (N,) 16 kHz; model: the speaker-independent mouth model (None: the template's
    own regression alone); detail: :func:`mouth_detail` of the analysis when found already
    (else found here); avoid: bool (N,) template frames whose mouth is shown on no other frame
    unless every frame is one (a hand at the lower face: handkeep.py). Returns the plan and
    metrics (sync_r, regression reliability, ...).

    A video faster than the planning rate (af.plan_step: 50 and 60 fps) is planned on every
    STEP-th frame, at the rate its models count in (:func:`at_plan_rate`), and the plan is
    spread over every frame (:func:`spread_plan`).
    """
    heard = listener.hear(audio, analysis.fps, count)
    base = select.pingpong_indices(count, analysis.n_frames)
    detail = mouth_detail(analysis) if detail is None else detail
    step = af.plan_step(analysis.fps)
    if step == 1:
        return _plan(analysis, heard, base, cfg, model, detail, avoid)
    planned, metrics = _plan(
        at_plan_rate(analysis, step), heard_at_plan_rate(heard, step), base[::step] // step, cfg,
        model, detail[::step], None if avoid is None else any_of_steps(avoid, step))
    plan = spread_plan(planned, step, base, analysis, avoid)
    metrics.update(_shown_metrics(shown_openings(analysis, plan), plan, heard))  # every frame
    return plan, metrics


def shown_openings(analysis: TemplateAnalysis, plan: Plan) -> np.ndarray:
    """(T,): the opening of the mouth each output frame shows (its base's where it passes
    through)."""
    opening = np.nan_to_num(analysis.opening, nan=0.0)
    return np.where(plan.active, opening[plan.source], opening[plan.base])


def _shown_metrics(shown: np.ndarray, plan: Plan, heard: Heard) -> dict[str, float]:
    """How the mouths ``shown`` (:func:`shown_openings`) follow the voice ``heard``, and how
    many frames pass through or are shown as recorded."""
    return {
        "sync_r": round(motion.pearson(shown, af.envelope(heard.level)), 4),
        "frames_passed_through": float((~plan.active).sum()),
        "frames_as_recorded": float((plan.active & ~plan.transplanted).sum()),
    }


def at_plan_rate(analysis: TemplateAnalysis, step: int) -> TemplateAnalysis:
    """The analysis of every ``step``-th frame, at its rate (fps / step)."""
    return replace(
        analysis, fps=analysis.fps / step, landmarks=analysis.landmarks[::step],
        pose=analysis.pose[::step], usable=analysis.usable[::step],
        opening=analysis.opening[::step], features=analysis.features[::step],
        speech=analysis.speech[::step], crop_origin=analysis.crop_origin[::step],
        crops=analysis.crops[::step],
        bridged=None if analysis.bridged is None else analysis.bridged[::step])


def heard_at_plan_rate(heard: Heard, step: int) -> Heard:
    """Every ``step``-th frame of a track heard at a video's rate: what its planned frames hear
    (the listener gives each of those frames the row of its planned frame)."""
    return Heard(**{name: getattr(heard, name)[::step] for name in HEARD_FIELDS})


def spread_plan(planned: Plan, step: int, base: np.ndarray, analysis: TemplateAnalysis,
                avoid: np.ndarray | None = None) -> Plan:
    """The plan of every ``step``-th frame (its frames and indices at the planning rate) over
    all of them: output frame t takes planned frame c = t // step.

    A planned frame shown as recorded stays so (its source is the output frame's own base:
    ``base``, the ping-pong of every frame). A transplant's source runs on through the frames
    between, step * source + t % step; where the planned frame holds the source before it, it
    stays where that run ended (or, after frames shown as recorded, at the last one shown).
    A frame without a mouth to take (not measured, not usable, or to be avoided) gives way to
    the latest one before it in the run, the planned source frame's own at the earliest: the
    mouth never steps back within a run."""
    count = len(base)
    n = analysis.n_frames
    t = np.arange(count)
    c = t // step
    first = planned.source[c] * step
    recorded = planned.source == planned.base
    held = np.concatenate([[False], planned.source[1:] == planned.source[:-1]])
    nearest = np.minimum(first + np.where(held[c], step - 1, t % step), n - 1)
    valid = analysis.usable & np.isfinite(analysis.opening)
    takes = valid if avoid is None else valid & ~avoid
    takes = takes if takes.any() else valid  # every mouth to be avoided: as if none were
    latest = np.maximum.accumulate(np.where(takes, np.arange(n), -1))
    source = np.maximum(latest[nearest], first)
    # a hold after frames shown as recorded: the last of them, where it has a mouth to take
    shown = base[np.maximum(c * step - 1, 0)]
    after = held & np.concatenate([[False], recorded[:-1]])
    source = np.where(after[c] & takes[shown], shown, source)
    source = np.where(recorded[c], base, source)
    active = analysis.usable[base] & bool(valid.any())
    return Plan(base=base, source=source.astype(np.int64), active=active)


def _plan(
    analysis: TemplateAnalysis,
    heard: Heard,
    base: np.ndarray,
    cfg: BuiltinEngineSettings,
    model: MouthModel | None,
    detail: np.ndarray,
    avoid: np.ndarray | None,
) -> tuple[Plan, dict[str, float]]:
    """:func:`drive` at the analysis's own rate: ``heard`` and ``base`` (len(base) output
    frames) at it too."""
    aimed = aim(analysis, heard, cfg, model)
    plan = choose(analysis, aimed.target, aimed.scale, base, cfg, detail, avoid)
    shown = shown_openings(analysis, plan)
    return plan, {
        **_shown_metrics(shown, plan, heard),
        "target_r": round(motion.pearson(shown, aimed.target.opening), 4),
        **aimed.metrics,
        "speech_share": round(float(heard.speech.mean()), 4),
    }


@dataclass(frozen=True)
class Aim:
    """What the selection aims at (:func:`aim`): ``target``, per output frame, the opening the
    new audio asks of this person's mouth in the template's opening units and where it is
    meant to be closed; ``scale``, the template's opening range; ``metrics``, how it was found
    (regression reliability, template weight, the template's own sound against its picture)."""

    target: motion.Target
    scale: motion.OpeningScale
    metrics: dict[str, float]


def aim(
    analysis: TemplateAnalysis,
    heard: Heard,
    cfg: BuiltinEngineSettings,
    model: MouthModel | None,
) -> Aim:
    """What the selection aims at, per frame of ``heard`` (at the analysis's rate)."""
    fps = analysis.fps
    count = len(heard.speech)
    speech = heard.speech
    valid = analysis.usable & np.isfinite(analysis.opening)
    opening = np.nan_to_num(analysis.opening, nan=0.0)
    # the template's own sound, moved into step with its picture where it is out of it
    found: sync.TemplateSync | None = None
    features, template_speech = analysis.features, analysis.speech
    if model is not None and cfg.template_sync and \
            int((valid & template_speech).sum()) >= MIN_SPEECH_FRAMES:
        found, features, template_speech = sync.allowed_for(
            model.predict(features), features, template_speech, analysis.opening, valid, fps)
    spoken = valid & template_speech
    has_speech = bool(spoken.sum() >= MIN_SPEECH_FRAMES)
    reliability = 0.0
    weight = 0.0
    if has_speech:
        # Fitted on the template's speech only: the new audio's pauses are closed whatever the
        # regression says, and the template's own pauses (lips parted, no voice) would only teach
        # it that silence looks half open. Plan r against the truth (five shared clips, linear
        # ridge) is 0.508 against 0.499 fitted on all frames with the template = first 60% of each
        # clip, 0.343 against 0.340 with the first 50%.
        reliability = motion.holdout_reliability(features, opening, spoken)
        kernel = motion.fit_kernel(features[spoken], opening[spoken])
        fitted = motion.match_spread(kernel.predict(heard.features), speech, opening[spoken])
        if model is not None:
            weight = motion.template_weight(int(spoken.sum()))
            learned = in_template_units(model.predict(heard.features), opening[spoken])
            learned = motion.match_spread(learned, speech, opening[spoken])
            fitted = weight * fitted + (1 - weight) * learned
    else:
        fitted = np.zeros(count)
    scale = motion.opening_scale(opening, valid, template_speech)
    target = motion.combine_targets(
        fitted, heard.phone_opening, motion.REGRESSION_WEIGHT if has_speech else 0.0, speech,
        heard.closed_lips, scale,
        motion.lead_frames_for(cfg.lead_ms, fps),
    )
    metrics = {
        "regression_reliability": round(reliability, 4),
        "template_weight": round(weight, 4) if model is not None else 1.0,
    }
    if found is not None:  # looked for: the template's own sound against its picture
        metrics["template_offset_ms"] = found.ms(fps)  # > 0: late
        metrics["template_offset_corrected"] = float(found.corrected)
        metrics["template_offset_at_limit"] = float(found.at_limit)  # may be further out
    return Aim(target=target, scale=scale, metrics=metrics)


def choose(
    analysis: TemplateAnalysis,
    target: motion.Target,
    scale: motion.OpeningScale,
    base: np.ndarray,
    cfg: BuiltinEngineSettings,
    detail: np.ndarray,
    avoid: np.ndarray | None = None,
) -> Plan:
    """The template mouths that follow ``target`` (one row per output frame; ``base``: each
    output frame's base template frame), at the analysis's rate: a Viterbi pass over the
    shape, pose, hidden-lip, blur and avoid costs of each template frame and the cost of
    jumping or holding between them."""
    valid = analysis.usable & np.isfinite(analysis.opening)
    opening = np.nan_to_num(analysis.opening, nan=0.0)
    costs = select.SelectionCosts(
        jump_cost=JUMP_COST * cfg.continuity_weight, hold_cost=HOLD_COST * cfg.continuity_weight,
        pose_weight=cfg.pose_weight,
    )
    spread = max((scale.open - scale.closed) / 4, 1e-3)
    unary = select.unary_costs(
        target.opening, opening, valid, np.nan_to_num(analysis.pose[base]),
        np.nan_to_num(analysis.pose), spread, costs.pose_weight,
        np.where(target.closed, CLOSED_SHAPE_WEIGHT, 1.0),
        select.hidden_lip_costs(select.lip_band(analysis.landmarks), valid)
        + select.blur_costs(detail, opening, valid)
        + (0.0 if avoid is None else AVOID_COST * avoid.astype(np.float64)),
    )
    # no usable template frame at all: every frame passes through unchanged
    source = select.viterbi(unary, costs) if valid.any() else base
    active = analysis.usable[base] & valid.any()
    return Plan(base=base, source=source, active=active)
