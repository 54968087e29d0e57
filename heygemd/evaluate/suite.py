"""The whole evaluation: every clip scored, means over clips, a text table, and the glue of
``heygemd eval`` (arguments, the JSON written, whether the quality targets are met)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from heygemd.engines.builtin import audio_features as af
from heygemd.errors import ConfigError
from heygemd.evaluate.score import (
    SHARPNESS_TARGET,
    ClipScore,
    DubScore,
    dubbing,
    self_reenactment,
)

if TYPE_CHECKING:
    from heygemd.evaluate.crossval import Folds

log = structlog.get_logger(__name__)


def summary(clips: list[ClipScore]) -> dict[str, float]:
    """Means over clips of the self-reenactment scores."""
    keys = ("r", "voiced_r", "r_best", "baseline_r", "plan_r", "render_r", "silent_closed",
            "sharpness", "sharpness_vs_source", "sharpness_vs_truth", "gradient_vs_truth",
            "sharpness_ceiling",
            "sharpness_template_vs_truth", "sharpness_chosen_vs_same_opening",
            "sharpness_openings", "face_found", "envelope_r", "truth_envelope_r")
    out = {f"mean_{k}": round(float(np.nanmean([getattr(c, k) for c in clips])), 3) for k in keys}
    short = sharpness_shortfall(clips)
    out["clips_under_sharpness_target"] = float(len(short["under_target"]))
    out["of_which_under_ceiling"] = float(len(short["under_ceiling"]))
    out["max_abs_lag"] = float(max(abs(c.best_lag) for c in clips)) if clips else 0.0
    silent = sum(c.silent_frames for c in clips if np.isfinite(c.silent_closed))
    closed = sum(c.silent_closed * c.silent_frames for c in clips if np.isfinite(c.silent_closed))
    out["pooled_silent_closed"] = round(closed / silent, 3) if silent else float("nan")
    return out


# sharpness_vs_truth is about the product of these: what the render keeps of the chosen
# mouths, what the selection takes against the template's other mouths of those shapes, what
# the shapes shown cost against the real ones', and what the footage allows.
SHARPNESS_FACTORS = {"render": "sharpness_vs_source",
                     "selection": "sharpness_chosen_vs_same_opening",
                     "openings": "sharpness_openings", "footage": "sharpness_ceiling"}


def sharpness_shortfall(clips: list[ClipScore]) -> dict[str, Any]:
    """The clips whose mouth is less sharp than SHARPNESS_TARGET of the held-out frames', of
    those the ones whose template cannot reach it (sharpness_ceiling under the target), and
    for each the factor (SHARPNESS_FACTORS) that takes the most."""
    under = [c for c in clips if c.sharpness_vs_truth < SHARPNESS_TARGET]

    def largest_loss(c: ClipScore) -> str | None:
        values = {name: getattr(c, field) for name, field in SHARPNESS_FACTORS.items()
                  if np.isfinite(getattr(c, field))}
        return min(values, key=values.__getitem__) if values else None

    return {"under_target": [c.clip for c in under],
            "under_ceiling": [c.clip for c in under if c.sharpness_ceiling < SHARPNESS_TARGET],
            "largest_loss": {c.clip: largest_loss(c) for c in under}}


def as_dicts(scores: Iterable[ClipScore | DubScore]) -> list[dict[str, Any]]:
    """The scores as JSON-ready dicts (field name -> value)."""
    return [asdict(s) for s in scores]


def run(
    settings: Any,
    clips: list[Path],
    speech: list[Path],
    out_dir: Path,
    dub_seconds: float = 6.0,
    models: Folds | None = None,
) -> dict[str, Any]:
    """Self-reenactment on ``clips`` and dubbing of each clip by each of ``speech``.

    settings: heygemd.settings.Settings (engine, faces, paths sections). Contact sheets and the
    split templates go to ``out_dir``. Returns a JSON-ready dict of per-clip scores and means.
    The engine must be :class:`~heygemd.engines.base.Evaluable` (else ConfigError). models:
    crossval.Folds: each clip is rendered with the mouth model that never heard its speaker.
    """
    import tempfile

    from heygemd.engines.base import Evaluable, create_engine, resolve_device
    from heygemd.faces.analyze import FaceAnalyzer

    engine = create_engine(settings.engine, settings.faces, settings.paths,
                           resolve_device(settings.engine.device))
    if not isinstance(engine, Evaluable):
        raise ConfigError(
            f"config error: engine.name: {settings.engine.name!r} cannot be evaluated: "
            "heygemd eval needs an engine that shows its template analysis and its plan "
            "(analysis_of, last_plan), as the builtin engine does"
        )
    engine.prepare()
    voice = af.VoiceDetector()
    scale = settings.engine.builtin.analysis_scale
    clip_scores: list[ClipScore] = []
    dub_scores: list[DubScore] = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with FaceAnalyzer(settings.faces, tracking=True) as analyzer, \
            tempfile.TemporaryDirectory(prefix="heygemd-eval-") as tmp:
        for clip in clips:
            if models is not None:
                engine.mouth_model = models.model_for(clip.name)  # type: ignore[attr-defined]
            sheet = out_dir / f"sheet-{stamp}-{clip.stem}.png"
            score = self_reenactment(clip, engine, analyzer, voice, scale, Path(tmp), sheet)
            log.info("eval.clip", **asdict(score))
            clip_scores.append(score)
        for clip in clips:
            for audio in speech:
                dub = dubbing(clip, audio, engine, analyzer, voice, scale, dub_seconds)
                log.info("eval.dub", **asdict(dub))
                dub_scores.append(dub)
    engine.close()
    return {
        "self_reenactment": as_dicts(clip_scores),
        "summary": summary(clip_scores),
        "sharpness_shortfall": sharpness_shortfall(clip_scores),
        "dubbing": as_dicts(dub_scores),
        # JSON has no NaN: no dubbing run -> null
        "mean_coupling_r": round(float(np.nanmean([d.coupling_r for d in dub_scores])), 3)
        if dub_scores else None,
        "max_abs_voice_lag": max(abs(d.voice_lag) for d in dub_scores) if dub_scores else None,
    }


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table of a :func:`run` result, for the CLI and the bench."""
    lines = ["clip                                   frames     r voiced  lag r_best  base  plan "
             "render silent closed truthC sharp  vsSrc vsTru  ceil  sel  open  face sync_r"]
    for c in result["self_reenactment"]:
        lines.append(
            f"{c['clip'][:38]:38} {c['frames']:6} {c['r']:5.2f} {c['voiced_r']:6.2f} "
            f"{c['best_lag']:4} {c['r_best']:6.2f} {c['baseline_r']:5.2f} {c['plan_r']:5.2f} "
            f"{c['render_r']:6.2f} {c['silent_frames']:7} "
            f"{c['silent_closed']:6.2f} {c['truth_silent_closed']:6.2f} {c['sharpness']:5.2f} "
            f"{c['sharpness_vs_source']:6.2f} {c['sharpness_vs_truth']:5.2f} "
            f"{c['sharpness_ceiling']:5.2f} {c['sharpness_chosen_vs_same_opening']:4.2f} "
            f"{c['sharpness_openings']:5.2f} {c['face_found']:5.3f} {c['sync_r']:6.2f}"
        )
    lines.append(f"summary: {result['summary']}")
    short = result.get("sharpness_shortfall")
    if short and short["under_target"]:
        lines.append(f"mouth under {SHARPNESS_TARGET} of the truth's sharpness: "
                     f"{', '.join(short['under_target'])}; of which the template cannot reach "
                     f"it (ceiling under {SHARPNESS_TARGET}): "
                     f"{', '.join(short['under_ceiling']) or 'none'}; largest loss: "
                     + ", ".join(f"{clip} {factor or 'unknown'}"
                                 for clip, factor in short["largest_loss"].items()))
    for d in result["dubbing"]:
        lines.append(f"dub {d['template'][:30]:30} x {d['speech'][:30]:30} "
                     f"r={d['coupling_r']:5.2f} base={d['baseline_coupling_r']:5.2f} "
                     f"voice lag={d['voice_lag']:+d} r={d['voice_r']:4.2f}")
    lines.append(f"mean coupling r: {result['mean_coupling_r']}; "
                 f"largest voice lag: {result['max_abs_voice_lag']}")
    return "\n".join(lines)


def _times(text: str) -> int:
    """A whole number of 2 or more (--faster, --slower)."""
    import argparse

    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{text}: a clip is made faster or slower 2 times or "
                                         "more")
    return value


def add_cli_arguments(parser: Any) -> None:
    """Arguments of ``heygemd eval`` (an argparse parser)."""
    parser.add_argument("--media", type=Path, default=None,
                        help="folder with talking/ and speech/ (default: ../shared/media)")
    parser.add_argument("--clips", nargs="*", default=[], help="clip name prefixes (default: all)")
    parser.add_argument("--dub-seconds", type=float, default=6.0,
                        help="seconds of each speech file used for dubbing")
    parser.add_argument("--no-dub", action="store_true", help="self-reenactment only")
    parser.add_argument("--out", type=Path, default=Path("bench/out"),
                        help="where the JSON and contact sheets go")
    parser.add_argument("--corpus", action="store_true",
                        help="leave-one-speaker-out over talking/ and corpus/: the plan of every "
                        "clip at 50/60/70%% templates (minutes), and with --render each clip "
                        "rendered and measured at 60%% (an hour or more on a CPU)")
    parser.add_argument("--render", action="store_true",
                        help="with --corpus: render and measure every clip too")
    parser.add_argument("--late-templates", type=int, nargs="*", default=None, metavar="FRAMES",
                        help="with --corpus: also plan every clip with its template's own sound "
                        "made this many frames late (< 0: early), its offset allowed for and "
                        "not (default -8 -5 -3 0 3 5 8)")
    parser.add_argument("--faster", type=_times, nargs="*", default=None, metavar="TIMES",
                        help="with --corpus: also plan every clip as footage at this many times "
                        "its frame rate (every frame repeated; 50/60 fps cameras), against its "
                        "own rate (default 2)")
    parser.add_argument("--slower", type=_times, nargs="*", default=None, metavar="TIMES",
                        help="with --corpus: also plan every clip as footage at 1/TIMES of its "
                        "frame rate (every TIMES-th frame; 12-15 fps cameras), against its own "
                        "rate's plan on those frames (default 2)")
    parser.add_argument("--against", type=Path, default=None, metavar="EVAL_CORPUS_JSON",
                        help="with --corpus: an earlier run's eval-corpus-*.json; prints the "
                        "per-clip change in plan r with its 95%% interval, per language")


def _corpus_cli(settings: Any, args: Any, media: Path) -> tuple[str, bool]:
    """``heygemd eval --corpus [--render]``: the leave-one-speaker-out evaluation."""
    import json

    from heygemd.evaluate import crossval

    before = None if args.against is None else json.loads(args.against.read_text())["plan"]
    corpus = crossval.folds(settings, media)
    late = () if args.late_templates is None else \
        tuple(args.late_templates or (-8, -5, -3, 0, 3, 5, 8))
    faster = () if args.faster is None else tuple(args.faster or (2,))
    slower = () if args.slower is None else tuple(args.slower or (2,))
    result: dict[str, Any] = {"plan": crossval.run(settings, corpus, only=args.clips or None,
                                                   late=late, faster=faster, slower=slower)}
    if before is not None:
        result["plan"]["against"] = {**crossval.against(before, result["plan"]),
                                     "file": args.against.name}
    text = crossval.format_table(result["plan"])
    if late:
        text += "\ntemplates whose own sound is late by N frames (plan r [95%]):\n" + "\n".join(
            f"  {d:>3}: allowed for {v['allowed_for']}, left alone {v['left_alone']}, "
            f"gain {v['gain']}, allowed for in {v['corrected_share']:.0%} of splits"
            for d, v in result["plan"]["late_templates"].items())
    if faster:
        text += "\nfootage at N times its frame rate, every frame N times (plan r [95%]):\n" + \
            "\n".join(f"  x{n}: own rate {v['own_rate']}, x{n} {v['faster']}, change "
                      f"{v['change']}" for n, v in result["plan"]["faster_footage"].items())
    if slower:
        text += "\nfootage at 1/N of its frame rate, every N-th frame (plan r [95%], against " \
            "the own-rate plan on those frames):\n" + "\n".join(
                f"  1/{n}: own rate {v['own_rate']}, 1/{n} {v['slower']}, change {v['change']}"
                for n, v in result["plan"]["slower_footage"].items())
    if args.render:
        clips = [f.path for f in crossval.chosen(corpus.facts, args.clips)]
        result["render"] = run(settings, clips, [], args.out, models=corpus)
        text += "\n" + format_table(result["render"])
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"eval-corpus-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2, default=float))
    goals = crossval.goals(result["plan"], result.get("render"))
    met = all(goal.met for goal in goals)
    text += "\ntargets:\n" + "\n".join(goal.line() for goal in goals)
    return text + f"\nwritten: {path}\ntargets met: {met}", met


def run_cli(settings: Any, args: Any) -> tuple[str, bool]:
    """``heygemd eval``: run, write eval-<time>.json under args.out; (table text, targets met)."""
    import json

    # heygemd/evaluate/suite.py -> the folder holding the checkout, beside which shared/ lies
    media = args.media or Path(__file__).resolve().parents[3] / "shared" / "media"
    if args.corpus:
        return _corpus_cli(settings, args, media)
    clips = [p for p in sorted((media / "talking").iterdir())
             if not args.clips or any(p.name.startswith(c) for c in args.clips)]
    speech = [] if args.no_dub else sorted((media / "speech").iterdir())
    result = run(settings, clips, speech, args.out, args.dub_seconds)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"eval-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    s = result["summary"]
    met = (s["mean_r"] >= 0.5 and s["mean_r"] > s["mean_baseline_r"] + 0.1
           and s["max_abs_lag"] <= 1 and s["pooled_silent_closed"] >= 0.9
           and s["mean_sharpness"] >= 0.9)
    return format_table(result) + f"\nwritten: {path}\ntargets met: {met}", met
