"""Leave-one-speaker-out evaluation of the builtin engine's plan over a corpus of talking clips.

For every clip and template share (50/60/70%), the template is the clip's head and its own
tail's audio drives it; the speaker-independent mouth model used is one that never heard the
clip's speaker (trained on the shippable clips of every other speaker). What is scored is the
plan: the real template mouths chosen per output frame, their measured opening against the
speaker's real opening in the tail (the render keeps that opening: ``render_r`` of the full
evaluation). Means come with a 95% bootstrap interval over clips, overall and per language.

The clip's whole analysis is made once (cached by content); the template's head reuses its face
geometry, and its audio features are heard again on the head's own audio, as a job would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any, NamedTuple

import numpy as np

from heygemd.contract import AUDIO_RATE
from heygemd.engines.builtin import planning
from heygemd.engines.builtin.audio_features import plan_step
from heygemd.engines.builtin.listen import Heard
from heygemd.engines.builtin.motion import Target
from heygemd.engines.builtin.mouthmodel import MouthModel
from heygemd.engines.builtin.select import pingpong_indices
from heygemd.evaluate.metrics import (
    CLOSED_OPENING,
    best_lag,
    finite_pearson,
    lag_interval,
    lag_sums,
)
from heygemd.learn.corpus import ClipData, ClipFacts

SHARES = (0.5, 0.6, 0.7)
BOOTSTRAP = 2000
# A clip's shift counts as off (summary's clips_shift_off) only where its 95% interval lies
# outside +-1 frame, resting on this many seconds of tail at least, with the plan following the
# truth this well at that lag: the best of 11 lags of a weak or short correlation is noise.
SHIFT_MIN_SECONDS = 8
SHIFT_MIN_R = 0.2


@dataclass(frozen=True)
class PlanScore:
    clip: str
    speaker: str
    language: str
    share: float
    frames: int
    r: float  # chosen mouths' opening vs the real tail's
    voiced_r: float  # the same over frames with speech
    noop_r: float  # the template looped with the audio ignored
    best_shift: int  # frames (> 0: the plan is late) maximising r within +-MAX_LAG
    silent_closed: float  # share of the tail's silent frames shown closed
    face_found: float  # share of the clip's frames with a usable face
    template_weight: float
    template_offset_ms: float = 0.0  # the template's own sound against its picture, as found
    offset_corrected: bool = False  # whether planning allowed for it (sync.py)
    silent_frames: int = 0  # the tail's silent frames with a truth: silent_closed's share of them
    silent_shown_closed: int = 0  # ... of which shown closed
    # where the plan's r is lost (score_split's ``diagnose``): the r of the opening the selection
    # aimed at (planning.aim), and of the mouths it chooses when it aims at the truth itself
    target_r: float = float("nan")
    ceiling_r: float = float("nan")
    # per lag and second of the clip, the sums best_shift comes from (metrics.lag_sums): a
    # clip's splits added second by second give its shift with an interval (per_clip)
    shift_sums: np.ndarray | None = field(default=None, repr=False, compare=False)

    def record(self) -> dict[str, Any]:
        """The scores, JSON-ready (without the shift sums)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "shift_sums"}


def head_analysis(full: Any, cut: int, heard: Any) -> Any:
    """The whole clip's TemplateAnalysis cut to its first ``cut`` frames, with the audio
    features and speech of ``heard`` (the head's)."""
    return replace(
        full, landmarks=full.landmarks[:cut], pose=full.pose[:cut], usable=full.usable[:cut],
        opening=full.opening[:cut], features=np.asarray(heard.features),
        speech=np.asarray(heard.speech), crop_origin=full.crop_origin[:cut],
        crops=full.crops[:cut],
    )


def heard_slice(heard: Heard, start: int, stop: int) -> Heard:
    """Frames [start, stop) of what was heard in a whole track."""
    return Heard(features=heard.features[start:stop], speech=heard.speech[start:stop],
                 level=heard.level[start:stop], phone_opening=heard.phone_opening[start:stop],
                 closed_lips=heard.closed_lips[start:stop])


def heard_late(heard: Heard, frames: int) -> Heard:
    """What a track's picture would hear with its sound ``frames`` late (frame t hears what
    was said at t - frames; < 0: early); frames whose sound would lie outside the track repeat
    its first row (late) or its last (early)."""
    n = len(heard.speech)
    source = np.clip(np.arange(n) - frames, 0, max(n - 1, 0))
    return Heard(features=heard.features[source], speech=heard.speech[source],
                 level=heard.level[source], phone_opening=heard.phone_opening[source],
                 closed_lips=heard.closed_lips[source])


class _Heard:
    """A listener that has already heard the track planning asks about."""

    def __init__(self, heard: Heard) -> None:
        self.heard = heard

    def hear(self, audio: np.ndarray, fps: float, count: int) -> Heard:
        return heard_slice(self.heard, 0, count)


def head_frames(n: int, share: float, fps: float) -> int:
    """The template's frames of a clip of ``n`` frames split at ``share``: a multiple of the
    planning step (the new audio's planned frames start with it, as a job hears it, not
    halfway through one of the whole track's)."""
    step = plan_step(fps)
    return int(round(n * share / step)) * step


def score_split(
    facts: ClipFacts, full: Any, heard: Heard, share: float, cfg: Any, model: MouthModel | None,
    late: int = 0, detail: np.ndarray | None = None, cut: int | None = None, every: int = 1,
    diagnose: bool = False,
) -> PlanScore:
    """Plan the clip's tail from its head (``share`` of the frames) and score it.

    full: the whole clip's TemplateAnalysis; heard: the whole clip's track as heard (one
    hearing, sliced into the head's and the tail's: a job hears each on its own, so the
    per-utterance normalisation's statistics differ a little from here); late: frames the
    template's own sound is made late against its picture (a template recorded out of step;
    the tail, the new audio and its truth, stay as they are); detail: the head's
    planning.mouth_detail (at least its frames) where it is not to be read from the head's
    crops; cut: the head's frames where not :func:`head_frames`; every: only every such
    tail frame scored, from its first (the frames a slower camera would have kept, where
    ``cut`` is a multiple of it); diagnose: also score the target the selection aimed at and
    the selection's ceiling (:func:`aimed`), for footage planned at its own rate.
    """
    n = full.n_frames
    cut = head_frames(n, share, full.fps) if cut is None else cut
    count = n - cut
    head = head_analysis(full, cut, heard_late(heard_slice(heard, 0, cut), late))
    tail = heard_slice(heard, cut, n)
    detail = planning.mouth_detail(head) if detail is None else detail[:cut]
    plan, metrics = planning.drive(head, np.zeros(0, np.float32), count, cfg, _Heard(tail),
                                   model, detail)
    shown = planning.shown_openings(head, plan)
    opening = np.nan_to_num(head.opening, nan=0.0)
    truth = np.where(full.usable[cut:], full.opening[cut:], np.nan).astype(np.float64)
    target_r = ceiling_r = float("nan")
    if diagnose:
        target_r, ceiling_r = aimed(head, tail, truth, cfg, model, detail, every)
    speech = np.asarray(tail.speech)
    base = pingpong_indices(count, cut)
    shown, truth, speech, base = shown[::every], truth[::every], speech[::every], base[::every]
    lag, _ = best_lag(shown, truth)
    silent = ~speech & np.isfinite(truth)
    return PlanScore(
        clip=facts.name, speaker=facts.speaker, language=facts.language, share=share,
        frames=len(shown), r=round(finite_pearson(shown, truth), 3),
        voiced_r=round(finite_pearson(shown[speech], truth[speech]), 3),
        noop_r=round(finite_pearson(opening[base], truth), 3), best_shift=lag,
        silent_closed=round(float((shown[silent] < CLOSED_OPENING).mean()), 3)
        if silent.any() else float("nan"), silent_frames=int(silent.sum()),
        silent_shown_closed=int((shown[silent] < CLOSED_OPENING).sum()),
        face_found=round(float(full.usable.mean()), 4),
        template_weight=float(metrics.get("template_weight", 1.0)),
        template_offset_ms=float(metrics.get("template_offset_ms", 0.0)),
        offset_corrected=bool(metrics.get("template_offset_corrected", 0.0)),
        target_r=target_r, ceiling_r=ceiling_r,
        shift_sums=lag_sums(shown, truth, max(1, int(round(full.fps / every))),
                            start=cut // every),
    )


class Aimed(NamedTuple):
    """Where a plan's r is lost (:func:`aimed`)."""

    target_r: float  # the target planning.aim finds, against the truth
    ceiling_r: float  # the mouths planning.choose picks when aimed at the truth itself


def aimed(head: Any, tail: Heard, truth: np.ndarray, cfg: Any, model: MouthModel | None,
          detail: np.ndarray, every: int = 1) -> Aimed:
    """Where a plan's r is lost, on footage planned at its own rate (planning.plan_step 1):
    the r against the ``truth`` of the target planning.aim finds, and of the mouths
    planning.choose picks when aimed at the truth itself (its closed frames those closed in the
    truth; a frame without a truth aimed at the template's closed end, with no more weight
    than an open one). The first near the plan's r and the second near 1 say the loss is in
    the target (what the audio is heard to ask), not in the selection. NaN, NaN at another
    rate; every: only every such frame scored, as :func:`score_split` scores them."""
    if plan_step(head.fps) != 1:
        return Aimed(float("nan"), float("nan"))
    found = planning.aim(head, tail, cfg, model)
    known = np.isfinite(truth)
    truth_aim = Target(opening=np.where(known, truth, found.scale.closed).astype(np.float32),
                       closed=known & (np.nan_to_num(truth) < CLOSED_OPENING))
    base = pingpong_indices(len(truth), head.n_frames)
    ceiling = planning.choose(head, truth_aim, found.scale, base, cfg, detail)
    target = found.target.opening.astype(np.float64)
    shown = planning.shown_openings(head, ceiling)
    return Aimed(round(finite_pearson(target[::every], truth[::every]), 3),
                 round(finite_pearson(shown[::every], truth[::every]), 3))


def loso_models(
    clips: list[ClipData], train: Callable[[list[ClipData]], MouthModel]
) -> dict[str, MouthModel]:
    """Speaker -> a model trained on the shippable clips of every other speaker (speakers
    outside the training pool share the model of the whole pool)."""
    pool = [c for c in clips if c.facts.trainable]
    everyone = train(pool)
    models = {c.facts.speaker: everyone for c in clips}
    for speaker in {c.facts.speaker for c in pool}:
        models[speaker] = train([c for c in pool if c.facts.speaker != speaker])
    return models


def interval(values: Iterable[float], seed: int = 0) -> tuple[float, float, float]:
    """Mean and its 95% bootstrap interval (resampling the values) -> (mean, low, high)."""
    v = np.array([x for x in values if np.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(BOOTSTRAP, len(v)))].mean(axis=1)
    return (round(float(v.mean()), 3), round(float(np.percentile(means, 2.5)), 3),
            round(float(np.percentile(means, 97.5)), 3))


def per_clip(scores: list[PlanScore]) -> dict[str, dict[str, Any]]:
    """Clip -> its scores averaged over the template shares."""
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(s.clip for s in scores):
        rows = [s for s in scores if s.clip == name]
        out[name] = {k: _finite_mean([getattr(s, k) for s in rows])
                     for k in ("r", "voiced_r", "noop_r", "silent_closed", "face_found",
                               "target_r", "ceiling_r")}
        out[name]["language"] = rows[0].language
        out[name]["max_abs_shift"] = float(max(abs(s.best_shift) for s in rows))
        sums = [s.shift_sums for s in rows if s.shift_sums is not None]
        if sums:  # the tails overlap (the last 30% is in all three): added per clip second
            shift = lag_interval(np.sum(sums, axis=0))
            out[name]["shift"] = float(shift.lag)
            out[name]["shift_interval"] = [float(shift.low), float(shift.high)]
            out[name]["shift_r"] = shift.r
            out[name]["shift_seconds"] = float(shift.seconds)
        out[name]["offsets_corrected"] = float(sum(s.offset_corrected for s in rows))
    return out


def _finite_mean(values: list[float]) -> float:
    """The mean of the finite values to 3 places; NaN where there is none."""
    finite = [v for v in values if np.isfinite(v)]
    return round(float(np.mean(finite)), 3) if finite else float("nan")


def shift_off(clip: dict[str, Any]) -> bool:
    """Whether a clip's shift (per_clip) is off by more than a frame: its whole 95% interval
    outside +-1, on SHIFT_MIN_SECONDS of tail at least, at an r of SHIFT_MIN_R or more."""
    if "shift_interval" not in clip:
        return False
    low, high = clip["shift_interval"]
    return bool((low > 1 or high < -1) and clip["shift_seconds"] >= SHIFT_MIN_SECONDS
                and np.isfinite(clip["shift_r"]) and clip["shift_r"] >= SHIFT_MIN_R)


def summarise(scores: list[PlanScore]) -> dict[str, Any]:
    """Means with intervals over clips (each clip's mean over shares), overall and per
    language; the pooled silent-closed share."""
    clips = per_clip(scores)
    groups: dict[str, list[dict[str, Any]]] = {"all": list(clips.values())}
    for c in clips.values():
        groups.setdefault(str(c["language"]), []).append(c)
    out: dict[str, Any] = {}
    for name, rows in groups.items():
        out[name] = {
            "clips": len(rows),
            "r": interval(c["r"] for c in rows),
            "voiced_r": interval(c["voiced_r"] for c in rows),
            "noop_r": interval(c["noop_r"] for c in rows),
            "silent_closed": interval(c["silent_closed"] for c in rows),
        }
        if any(np.isfinite(c["target_r"]) for c in rows):
            out[name]["target_r"] = interval(c["target_r"] for c in rows)
            out[name]["ceiling_r"] = interval(c["ceiling_r"] for c in rows)
    frames = [(s.silent_closed, s.silent_frames) for s in scores if np.isfinite(s.silent_closed)]
    out["max_abs_shift"] = max((abs(s.best_shift) for s in scores), default=0)
    out["clips_over_one_frame_shift"] = sorted({s.clip for s in scores if abs(s.best_shift) > 1})
    out["clips_shift_off"] = sorted(name for name, c in clips.items() if shift_off(c))
    out["lowest_face_found"] = min((s.face_found for s in scores), default=float("nan"))
    out["silent_closed_mean"] = round(float(np.mean([f for f, _ in frames])), 3) \
        if frames else float("nan")
    silent = sum(s.silent_frames for s in scores)
    # every split's silent frames pooled (the tails overlap: a clip's last 30% counts thrice)
    out["silent_closed_pooled"] = round(sum(s.silent_shown_closed for s in scores) / silent, 3) \
        if silent else float("nan")
    return out


@dataclass(frozen=True)
class Folds:
    """The corpus ready to score: each clip's facts and whole analysis, and per speaker the
    model that never heard them."""

    facts: list[ClipFacts]
    analyses: dict[str, Any]
    models: dict[str, MouthModel]

    def model_for(self, clip: str) -> MouthModel:
        speaker = next(f.speaker for f in self.facts if f.name == clip)
        return self.models[speaker]


def folds(
    settings: Any, media: Any, train: Callable[[list[ClipData]], MouthModel] | None = None,
    analyse: Callable[[ClipFacts], Any] | None = None,
) -> Folds:
    """Analyse every clip of ``media``'s talking and corpus folders and train the
    leave-one-speaker-out models. train: clips -> model (default heygemd.learn.fit.fit);
    analyse: a clip -> its whole TemplateAnalysis (default: the builtin engine's, cached)."""
    from heygemd.learn.corpus import analysing_engine, corpus_clips, from_analysis
    from heygemd.learn.fit import fit

    facts = corpus_clips(media)
    if analyse is not None:
        analyses = {f.name: analyse(f) for f in facts}
    else:
        engine = analysing_engine(settings)
        try:
            analyses = {f.name: engine.analysis_of(f.path)  # type: ignore[attr-defined]
                        for f in facts}
        finally:
            engine.close()
    data = [from_analysis(f, analyses[f.name]) for f in facts]
    return Folds(facts=facts, analyses=analyses, models=loso_models(data, train or fit))


def run(
    settings: Any, corpus: Folds, shares: tuple[float, ...] = SHARES,
    only: list[str] | None = None, late: tuple[int, ...] = (), faster: tuple[int, ...] = (),
    slower: tuple[int, ...] = (),
) -> dict[str, Any]:
    """The leave-one-speaker-out plan evaluation of ``corpus`` (only: clip name prefixes
    scored). Scores the engine with its template regression alone and with the learned model
    beside it; late: also :func:`late_templates` at these delays; faster: also
    :func:`faster_footage` at these multiples of each clip's frame rate; slower:
    :func:`slower_footage` at these fractions (1/N) of it. JSON-ready."""
    from heygemd.engines.builtin.listen import Listener

    listener = Listener()
    listener.load()
    facts = chosen(corpus.facts, only)
    heard = _heard_tracks(corpus, facts, listener)
    cfg = settings.engine.builtin
    alone = [score_split(f, corpus.analyses[f.name], heard[f.name], share, cfg, None)
             for f in facts for share in shares]
    learned = [score_split(f, corpus.analyses[f.name], heard[f.name], share, cfg,
                           corpus.models[f.speaker], diagnose=True)
               for f in facts for share in shares]
    gains = [a["r"] - b["r"] for a, b in zip(
        per_clip(learned).values(), per_clip(alone).values(), strict=True)]
    result = {
        "template_only": {"summary": summarise(alone), "per_clip": per_clip(alone)},
        "learned": {"summary": summarise(learned), "per_clip": per_clip(learned)},
        "paired_gain": interval(gains),
        "footage_offsets": footage_offsets(corpus, facts),
        "scores": [s.record() for s in learned],
        # speaker -> the clips their model learned from
        "folds": {speaker: list(model.trained_on) for speaker, model in corpus.models.items()},
    }
    if late:
        result["late_templates"] = late_templates(cfg, corpus, facts, heard, late, shares)
    if faster:
        result["faster_footage"] = faster_footage(cfg, corpus, facts, listener,
                                                  per_clip(learned), faster, shares)
    if slower:
        result["slower_footage"] = slower_footage(cfg, corpus, facts, heard, listener, slower,
                                                  shares)
    return result


def chosen(facts: list[ClipFacts], only: list[str] | None) -> list[ClipFacts]:
    """The clips whose names start with one of ``only`` (all when it is empty or None)."""
    return [f for f in facts if not only or any(f.name.startswith(p) for p in only)]


def _heard_tracks(corpus: Folds, facts: list[ClipFacts], listener: Any) -> dict[str, Heard]:
    """Clip -> its whole sound track as heard, timed from its first video frame."""
    return {f.name: _heard_at(listener, f, corpus.analyses[f.name], corpus.analyses[f.name])
            for f in facts}


def _heard_at(listener: Any, facts: ClipFacts, full: Any, footage: Any) -> Heard:
    """A clip's sound, timed from its first video frame and as long as ``full``'s frames, heard
    over ``footage``'s frames at its rate (``footage``: the clip, or made from it)."""
    from heygemd.media.audio import load_audio

    audio = load_audio(facts.path, rate=AUDIO_RATE, from_first_frame=True)
    return listener.hear(audio[: int(full.n_frames / full.fps * AUDIO_RATE)], footage.fps,
                         footage.n_frames)


def footage_offsets(corpus: Folds, facts: list[ClipFacts]) -> dict[str, dict[str, Any]]:
    """Clip -> its own sound against its picture over the whole clip, as the engine's
    sync.find_offset finds it for a template with the clip's fold model: ``ms`` (> 0: late)
    and whether it passes the engine's rules (``found``). Where footage is out of step, its
    truth is too, and a plan in step with the sound shows that offset as its best shift."""
    from heygemd.engines.builtin import sync

    out: dict[str, dict[str, Any]] = {}
    for f in facts:
        full = corpus.analyses[f.name]
        valid = np.asarray(full.usable) & np.isfinite(full.opening)
        found = sync.find_offset(corpus.models[f.speaker].predict(full.features),
                                 np.asarray(full.opening), np.asarray(full.speech), valid,
                                 full.fps)
        out[f.name] = {"ms": found.ms(full.fps), "found": found.corrected,
                       "r_at_offset": found.r_at_offset, "r_in_step": found.r_in_step}
    return out


def late_templates(
    cfg: Any, corpus: Folds, facts: list[ClipFacts], heard: dict[str, Heard],
    delays: tuple[int, ...], shares: tuple[float, ...] = SHARES,
) -> dict[str, Any]:
    """Templates recorded out of step: each clip of ``facts`` planned with its template's own
    sound made ``delays`` frames late (< 0: early) against its picture, the new audio and its
    truth left in step, with the learned model, with the template's offset allowed for (``cfg``,
    the builtin engine's settings, with template_sync on) and without. Per delay: mean plan r
    with its 95% interval over clips, the paired gain of allowing for it, and the share of
    splits where it was. JSON-ready."""
    variants = {"allowed_for": cfg.model_copy(update={"template_sync": True}),
                "left_alone": cfg.model_copy(update={"template_sync": False})}
    out: dict[str, Any] = {}
    for delay in delays:
        scores = {name: [score_split(f, corpus.analyses[f.name], heard[f.name], share, variant,
                                     corpus.models[f.speaker], late=delay)
                         for f in facts for share in shares]
                  for name, variant in variants.items()}
        clips = {name: per_clip(rows) for name, rows in scores.items()}
        out[str(delay)] = {
            **{name: interval(c["r"] for c in per.values()) for name, per in clips.items()},
            "gain": interval(a["r"] - b["r"] for a, b in zip(
                clips["allowed_for"].values(), clips["left_alone"].values(), strict=True)),
            "corrected_share": round(float(np.mean(
                [s.offset_corrected for s in scores["allowed_for"]])), 3),
        }
    return out


def repeated(full: Any, times: int) -> Any:
    """A clip's TemplateAnalysis as footage at ``times`` its frame rate would give it: every
    frame ``times`` times (the crops left as they are: planning is given the mouth detail)."""
    def more(values: np.ndarray) -> np.ndarray:
        return np.repeat(values, times, axis=0)

    return replace(
        full, fps=full.fps * times, landmarks=more(full.landmarks), pose=more(full.pose),
        usable=more(full.usable), opening=more(full.opening), features=more(full.features),
        speech=more(full.speech), crop_origin=more(full.crop_origin),
        bridged=None if full.bridged is None else more(full.bridged))


def slower_footage(
    cfg: Any, corpus: Folds, facts: list[ClipFacts], heard: dict[str, Heard], listener: Any,
    factors: tuple[int, ...], shares: tuple[float, ...] = SHARES,
) -> dict[str, Any]:
    """Footage at a lower frame rate (12-15 fps webcams): each clip of ``facts`` at 1/N of its
    rate (every N-th frame, N in ``factors``: planning.at_plan_rate), heard at that rate,
    planned with the learned model and scored against its truth on those frames, beside its
    own-rate plan scored on the same frames (the head N times as long). Per factor: mean plan
    r of each with its 95% interval over clips and the paired change. JSON-ready."""
    out: dict[str, Any] = {}
    for every in factors:
        own, slow = [], []
        for f in facts:
            full = corpus.analyses[f.name]
            slower = planning.at_plan_rate(full, every)
            track = _heard_at(listener, f, full, slower)
            model = corpus.models[f.speaker]
            for share in shares:
                cut = head_frames(slower.n_frames, share, slower.fps)
                slow.append(score_split(f, slower, track, share, cfg, model, cut=cut))
                own.append(score_split(f, full, heard[f.name], share, cfg, model,
                                       cut=cut * every, every=every))
        mine, theirs = per_clip(slow), per_clip(own)
        out[str(every)] = {
            "own_rate": interval(c["r"] for c in theirs.values()),
            "slower": interval(c["r"] for c in mine.values()),
            "change": interval(mine[name]["r"] - theirs[name]["r"] for name in theirs),
        }
    return out


def faster_footage(
    cfg: Any, corpus: Folds, facts: list[ClipFacts], listener: Any, own: dict[str, Any],
    factors: tuple[int, ...], shares: tuple[float, ...] = SHARES,
) -> dict[str, Any]:
    """Footage at a higher frame rate (50 or 60 fps): each clip of ``facts`` shown ``factors``
    times as fast (:func:`repeated`), its sound heard at that rate, planned with the learned
    model and scored against its truth at that rate, beside the same clip at its own rate
    (``own``: :func:`per_clip` of those scores). The same splits: the head ``factors`` times as
    many frames (to the nearest planned frame), with its mouth detail as at its own rate. Per
    factor: mean plan r at each rate with its 95% interval over clips and the paired change.
    JSON-ready."""
    out: dict[str, Any] = {}
    for times in factors:
        rows = []
        for f in facts:
            full = corpus.analyses[f.name]
            faster = repeated(full, times)
            track = _heard_at(listener, f, full, faster)
            step = plan_step(faster.fps)
            for share in shares:
                cut = head_frames(full.n_frames, share, full.fps)
                detail = np.repeat(planning.mouth_detail(replace(
                    full, landmarks=full.landmarks[:cut], usable=full.usable[:cut],
                    crop_origin=full.crop_origin[:cut], crops=full.crops[:cut])), times)
                fast_cut = int(round(cut * times / step)) * step
                detail = np.pad(detail, (0, max(0, fast_cut - len(detail))), mode="edge")
                rows.append(score_split(f, faster, track, share, cfg, corpus.models[f.speaker],
                                        detail=detail, cut=fast_cut))
        fast = per_clip(rows)
        out[str(times)] = {
            "own_rate": interval(c["r"] for c in own.values()),
            "faster": interval(c["r"] for c in fast.values()),
            "change": interval(fast[name]["r"] - own[name]["r"] for name in own),
        }
    return out


def against(before: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """A change judged as the brief asks: the per-clip difference in plan r (learned model)
    from an earlier run's result (``before``, as :func:`run` returns it) to ``now``, with its
    mean and 95% bootstrap interval overall and per language, and how many clips went up or
    down. Clips scored in only one of the runs are left out (and counted)."""
    old, new = before["learned"]["per_clip"], now["learned"]["per_clip"]
    shared = [name for name in new if name in old]
    out: dict[str, Any] = {"clips": len(shared),
                           "left_out": len(set(old) ^ set(new))}
    groups: dict[str, list[float]] = {"all": []}
    for name in shared:
        change = float(new[name]["r"]) - float(old[name]["r"])
        groups["all"].append(change)
        groups.setdefault(str(new[name]["language"]), []).append(change)
    for group, changes in groups.items():
        out[group] = {"r_change": interval(changes), "up": sum(c > 0 for c in changes),
                      "down": sum(c < 0 for c in changes)}
    return out


@dataclass(frozen=True)
class Goal:
    """One of issue 11's targets for the corpus evaluation: what it asks, what was measured,
    whether that meets it."""

    asks: str
    measured: str
    met: bool

    def line(self) -> str:
        return f"  {'met    ' if self.met else 'NOT met'}  {self.asks}: {self.measured}"


def goals(plan: dict[str, Any], render: dict[str, Any] | None = None) -> list[Goal]:
    """The corpus targets, each with its figure from ``plan`` (:func:`run`'s result) and, when
    the clips were rendered, ``render`` (suite.run's: the mouth sharpness against the truth)."""
    summary, clips = plan["learned"]["summary"], plan["learned"]["per_clip"]
    mean, low, high = summary["all"]["r"]
    zh, en = summary.get("zh", {}).get("r"), summary.get("en", {}).get("r")
    over = sorted(name for name, c in clips.items() if abs(c.get("shift", 0.0)) > 1)
    off = summary.get("clips_shift_off", [])
    closed = [c["silent_closed"] for c in clips.values() if np.isfinite(c["silent_closed"])]
    lowest_closed = min(closed, default=float("nan"))
    out = [
        Goal("mean plan r >= 0.55 (leave one speaker out)",
             f"{mean:.3f} [{low:.3f}, {high:.3f}] over {summary['all']['clips']} clips",
             mean >= 0.55),
        Goal("Mandarin within 0.05 of English",
             f"zh {zh[0]:.3f}, en {en[0]:.3f} ({zh[0] - en[0]:+.3f})" if zh and en
             else "no Mandarin or no English clip", bool(zh and en
                                                         and abs(zh[0] - en[0]) <= 0.05)),
        Goal("|best shift| <= 1 frame on every clip",
             f"largest in a split {summary['max_abs_shift']} frames; {len(over)} clips' "
             f"pooled shift over a frame, {len(off)} beyond doubt ({', '.join(off) or 'none'})",
             summary["max_abs_shift"] <= 1),
        Goal("silent frames closed >= 0.9 pooled, >= 0.8 on every clip",
             f"pooled {summary['silent_closed_pooled']:.3f}, lowest clip {lowest_closed:.3f}",
             bool(summary["silent_closed_pooled"] >= 0.9 and lowest_closed >= 0.8)),
        Goal("face found in >= 99% of every clip's frames",
             f"lowest {summary['lowest_face_found']:.3f}", summary["lowest_face_found"] >= 0.99),
    ]
    if render is not None:
        short = render.get("sharpness_shortfall", {}).get("under_target", [])
        out.append(Goal("mouth sharpness >= 0.9 of the truth's on every clip",
                        f"{len(short)} clips under ({', '.join(short) or 'none'})", not short))
    return out


def format_table(result: dict[str, Any]) -> str:
    """Plain text: per clip (means over the template shares) with and without the learned
    model, then the summaries."""
    alone, learned = result["template_only"]["per_clip"], result["learned"]["per_clip"]
    lines = ["clip                                  lang  r(only)  r  target  ceil  voiced  noop  "
             "shift [95%]  silentC  face  synced  footage ms"]
    footage = result.get("footage_offsets", {})
    for name, c in learned.items():
        own = footage.get(name, {})
        lines.append(
            f"{name[:37]:37} {c['language']:5} {alone[name]['r']:6.2f} {c['r']:5.2f} "
            f"{c.get('target_r', float('nan')):6.2f} {c.get('ceiling_r', float('nan')):5.2f} "
            f"{c['voiced_r']:6.2f} {c['noop_r']:5.2f} {_shift(c):>13} "
            f"{c['silent_closed']:7.2f} {c['face_found']:5.3f} "
            f"{c.get('offsets_corrected', 0):6.0f}  "
            f"{own.get('ms', 0.0):+6.0f}{'*' if own.get('found') else ' '}")
    for key in ("template_only", "learned"):
        lines.append(f"{key}: {result[key]['summary']}")
    lines.append(f"paired gain in r (learned - template only): {result['paired_gain']}")
    lines.append("target: r of the opening the selection aims at (what the new audio is heard to "
                 "ask); ceil: r of the mouths it picks when it aims at the truth itself (the "
                 "selection's and the template's own limit)")
    lines.append("shift: frames the plan's mouth is late (< 0: early) against the truth, the "
                 "three splits added per second of the clip, with its 95% interval over those "
                 "seconds drawn again (few seconds: a rough interval)")
    summary = result["learned"]["summary"]
    lines.append(f"clips over one frame of shift in some split: "
                 f"{len(summary['clips_over_one_frame_shift'])}; off by more than a frame "
                 f"(the whole interval, on {SHIFT_MIN_SECONDS} s or more at r >= "
                 f"{SHIFT_MIN_R}): {summary.get('clips_shift_off', [])}")
    lines.append("synced: template splits whose own sound was allowed for; footage ms: the "
                 "clip's own sound against its picture (+: late), * where the engine would "
                 "allow for it")
    if "against" in result:
        change = result["against"]
        lines.append(f"change in r against {change.get('file', 'the earlier run')} "
                     f"({change['clips']} clips): " + ", ".join(
                         f"{group} {v['r_change']} (up {v['up']}, down {v['down']})"
                         for group, v in change.items() if isinstance(v, dict)))
    return "\n".join(lines)


def _shift(clip: dict[str, Any]) -> str:
    """A clip's pooled shift with its interval ("+2 [+1,+3]"), or its largest split's."""
    if "shift_interval" not in clip:
        return f"{clip['max_abs_shift']:.0f}"
    low, high = clip["shift_interval"]
    return f"{clip['shift']:+.0f} [{low:+.0f},{high:+.0f}]"
