"""Measured lip-sync quality of an engine (``heygemd eval``, bench/eval_quality.py).

Self-reenactment: a talking clip's first 60% is the template, its own last 40% of audio drives
it, and the real last 40% is the ground truth. Mouth opening (inner-lip gap / inter-ocular) is
measured by face analysis on the OUTPUT pixels and compared with the truth: Pearson r, the lag
that maximises it, the share of silent frames with closed lips, mouth sharpness against the
template, and the same r for a no-op baseline (template frames, audio ignored).
Dubbing: a template driven by another speech file; the coupling of the output's mouth opening
with the audio's loudness envelope.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from heygemd.engines.base import AUDIO_RATE, Engine, RenderRequest
from heygemd.engines.builtin import audio_features as af
from heygemd.engines.builtin.motion import pearson
from heygemd.engines.builtin.select import pingpong_indices
from heygemd.settings import OutputSettings

log = structlog.get_logger(__name__)

TEMPLATE_SHARE = 0.6
MAX_LAG = 5  # frames searched either way for the best lag
CLOSED_OPENING = 0.05  # inner-lip gap / inter-ocular below this: lips closed (ENGINE-NOTES 6)
SHEET_ROWS = 6
SHEET_HEIGHT = 220  # pixels per contact-sheet tile


@dataclass(frozen=True)
class ClipScore:
    clip: str
    frames: int
    r: float  # output vs ground-truth opening, lag 0
    best_lag: int  # frames; > 0: output late
    r_best: float
    baseline_r: float  # template frames (audio ignored) vs ground truth
    plan_r: float  # the chosen source frames' own opening (template analysis) vs ground truth
    render_r: float  # output opening vs the chosen source frames' opening: what the render keeps
    silent_frames: int
    silent_closed: float  # share of silent frames whose output lips are closed
    truth_silent_closed: float  # the same share in the ground truth, for reference
    sharpness: float  # output mouth sharpness / template mouth sharpness (all usable frames)
    sharpness_vs_source: float  # output / the template frames actually chosen (same content)
    sync_r: float  # the engine's own metric (opening vs loudness envelope)
    seconds: float


@dataclass(frozen=True)
class DubScore:
    template: str
    speech: str
    frames: int
    coupling_r: float  # output opening vs the speech's loudness envelope
    baseline_coupling_r: float  # template frames (audio ignored) vs the same envelope
    seconds: float


def best_lag(out: np.ndarray, truth: np.ndarray, max_lag: int = MAX_LAG) -> tuple[int, float]:
    """(lag, r) maximising r between out[t + lag] and truth[t]; NaNs ignored."""
    best = (0, -2.0)
    for lag in range(-max_lag, max_lag + 1):
        a = out[max(lag, 0) : len(out) + min(lag, 0)]
        b = truth[max(-lag, 0) : len(truth) - max(lag, 0)]
        n = min(len(a), len(b))
        r = finite_pearson(a[:n], b[:n])
        if r > best[1]:
            best = (lag, r)
    return best


def finite_pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r over the positions where both series are finite."""
    ok = np.isfinite(a) & np.isfinite(b)
    return pearson(a[ok], b[ok])


def mouth_sharpness(frame: np.ndarray, landmarks: np.ndarray) -> float:
    """Variance of the Laplacian of the grey mouth region (outer-lip box, 30% margin)."""
    import cv2

    from heygemd.faces import landmarks as lm

    lips = landmarks[list(lm.LIPS_OUTER), :2]
    lo, hi = lips.min(axis=0), lips.max(axis=0)
    pad = (hi - lo) * 0.3
    x0, y0 = np.maximum(np.floor(lo - pad), 0).astype(int)
    x1, y1 = np.ceil(hi + pad).astype(int)
    crop = frame[y0:y1, x0:x1]
    if crop.size == 0:
        return float("nan")
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


@dataclass
class Track:
    """Per frame measurements of a frame stream; a few frames kept for the contact sheet."""

    opening: list[float]
    sharpness: list[float]
    kept: dict[int, np.ndarray]


def measure(
    frames: Iterable[np.ndarray], analyzer: Any, scale: float, keep: set[int]
) -> Track:
    """Mouth opening and sharpness per frame of ``frames`` (analysed at ``scale``)."""
    import cv2

    from heygemd.faces.geometry import mouth_opening

    track = Track([], [], {})
    for i, frame in enumerate(frames):
        small = frame if scale == 1.0 else cv2.resize(
            frame, (round(frame.shape[1] * scale), round(frame.shape[0] * scale)),
            interpolation=cv2.INTER_AREA,
        )
        faces = analyzer.analyze(small, i)
        if faces:
            points = np.asarray(faces[0].landmarks) / scale
            track.opening.append(mouth_opening(points))
            track.sharpness.append(mouth_sharpness(frame, points))
        else:
            track.opening.append(float("nan"))
            track.sharpness.append(float("nan"))
        if i in keep:
            track.kept[i] = frame
    return track


def frames_from(path: Path, start: int, count: int) -> Iterator[np.ndarray]:
    """``count`` frames of ``path`` from index ``start``."""
    from heygemd.media.video import VideoReader

    with VideoReader(path) as reader:
        for i, frame in enumerate(reader):
            if i >= start + count:
                return
            if i >= start:
                yield frame


def write_template(clip: Path, frames: int, out: Path) -> None:
    """The first ``frames`` frames of ``clip`` with their audio, as an MP4 (near-lossless)."""
    from heygemd.media.audio import load_audio
    from heygemd.media.video import VideoReader
    from heygemd.media.writer import VideoWriter

    settings = OutputSettings(crf=12, preset="veryfast")
    with VideoReader(clip) as reader:
        audio = load_audio(clip, rate=settings.audio_rate, mono=True)
        audio = audio[: int(frames / reader.fps * settings.audio_rate)]
        with VideoWriter(out, reader.width, reader.height, reader.fps, audio=audio,
                         audio_rate=settings.audio_rate, settings=settings) as writer:
            for i, frame in enumerate(reader):
                if i >= frames:
                    break
                writer.write(frame)


def silent_mask(audio: np.ndarray, fps: float, count: int, voice: af.VoiceDetector) -> np.ndarray:
    """bool (count,): no voice (silero) or quiet (35 dB under the peak)."""
    quiet = af.quiet_frames(af.loudness_db(audio, fps, count))
    return quiet | ~af.speech_mask_from_spans(voice.spans(audio), fps, count)


def template_sharpness(template: Path, landmarks: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Mouth sharpness per template frame (N,), NaN where unusable (landmarks (N, 478, 3))."""
    values = np.full(len(usable), np.nan)
    for i, frame in enumerate(frames_from(template, 0, len(usable))):
        if usable[i]:
            values[i] = mouth_sharpness(frame, landmarks[i])
    return values


def _sheet_indices(count: int) -> list[int]:
    return [int(i) for i in np.linspace(0, count - 1, SHEET_ROWS).round()]


def contact_sheet(rows: list[list[np.ndarray]], path: Path) -> None:
    """Save a PNG: one row per sampled frame, columns as given (template | output | truth, then
    the same three zoomed on the lower face)."""
    import cv2

    tiles = []
    for row in rows:
        scaled = [cv2.resize(im, (round(im.shape[1] * SHEET_HEIGHT / im.shape[0]), SHEET_HEIGHT),
                             interpolation=cv2.INTER_AREA) for im in row]
        tiles.append(np.concatenate(scaled, axis=1))
    width = max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0))) for t in tiles]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(tiles, axis=0), cv2.COLOR_RGB2BGR))


def self_reenactment(
    clip: Path, engine: Engine, analyzer: Any, voice: af.VoiceDetector, scale: float,
    workdir: Path, sheet: Path | None,
) -> ClipScore:
    """Score ``engine`` on one talking clip (see the module docstring)."""
    from heygemd.engines.builtin.analysis import TemplateAnalysis
    from heygemd.media.audio import load_audio
    from heygemd.media.probe import probe

    t0 = time.monotonic()
    info = probe(clip)
    assert info.video is not None
    fps = info.video.avg_fps
    total = len(list(frames_from(clip, 0, 10**9))) if not info.video.frame_count \
        else info.video.frame_count
    cut = int(round(total * TEMPLATE_SHARE))
    template = workdir / f"{clip.stem}.template.mp4"
    write_template(clip, cut, template)
    audio = load_audio(clip, rate=AUDIO_RATE)[int(cut / fps * AUDIO_RATE) :]
    count = total - cut
    audio = audio[: int(count / fps * AUDIO_RATE)]
    request = RenderRequest(template=template, info=probe(template), audio=audio, fps=fps)
    rendering = engine.render(request, lambda f: None)
    keep = set(_sheet_indices(request.frame_count))
    out = measure(rendering.frames, analyzer, scale, keep)
    truth = measure(frames_from(clip, cut, count), analyzer, scale, keep)
    n = min(len(out.opening), len(truth.opening))
    out_open, truth_open = np.array(out.opening[:n]), np.array(truth.opening[:n])
    analysis: TemplateAnalysis = engine.analysis_of(template)  # type: ignore[attr-defined]
    base = pingpong_indices(n, analysis.n_frames)
    silent = silent_mask(audio, fps, n, voice)
    lag, r_best = best_lag(out_open, truth_open)
    plan = getattr(engine, "last_plan", None)
    chosen = plan.source if plan is not None else base
    promised = planned_opening(analysis.opening, chosen, base, plan.active if plan else None, n)
    sharp_t = template_sharpness(template, analysis.landmarks, analysis.usable)
    if sheet is not None:
        bases: dict[int, np.ndarray] = {}
        for i, frame in enumerate(frames_from(template, 0, analysis.n_frames)):
            for k in keep:
                if k < n and base[k] == i:
                    bases[k] = frame
        rows = []
        for k in sorted(keep):
            if k not in bases or k not in out.kept or k not in truth.kept:
                continue
            images = [bases[k], out.kept[k], truth.kept[k]]
            box = _face_box(analysis.landmarks[base[k]], images[0].shape)
            rows.append(images + [im[box[1] : box[3], box[0] : box[2]] for im in images])
        contact_sheet(rows, sheet)
    return ClipScore(
        clip=clip.name, frames=n, r=round(finite_pearson(out_open, truth_open), 3),
        best_lag=lag, r_best=round(r_best, 3),
        baseline_r=round(finite_pearson(analysis.opening[base], truth_open), 3),
        plan_r=round(finite_pearson(promised, truth_open), 3),
        render_r=round(finite_pearson(out_open, promised), 3),
        silent_frames=int(silent.sum()),
        silent_closed=_closed_share(out_open, silent),
        truth_silent_closed=_closed_share(truth_open, silent),
        sharpness=round(float(np.nanmean(out.sharpness)) / float(np.nanmean(sharp_t)), 3),
        sharpness_vs_source=round(
            float(np.nanmean(out.sharpness)) / float(np.nanmean(sharp_t[chosen[:n]])), 3
        ),
        sync_r=float(rendering.metrics.get("sync_r", float("nan"))),
        seconds=round(time.monotonic() - t0, 1),
    )


def planned_opening(
    opening: np.ndarray, source: np.ndarray, base: np.ndarray, active: np.ndarray | None, n: int
) -> np.ndarray:
    """(n,) mouth opening the plan promises: the source frame's where a mouth is transplanted,
    the base frame's where the frame passes through. opening (N,) per template frame."""
    shown = opening[source[:n]]
    if active is not None:
        shown = np.where(active[:n], shown, opening[base[:n]])
    return np.asarray(shown, dtype=np.float64)


def _face_box(points: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) around the lower face of landmarks (478, 3), 30% margin, in the frame."""
    from heygemd.engines.builtin import mesh

    contour = points[mesh.CONTOUR, :2]
    lo, hi = contour.min(axis=0), contour.max(axis=0)
    pad = (hi - lo) * 0.3
    x0, y0 = np.maximum(lo - pad, 0).astype(int)
    x1, y1 = np.minimum(hi + pad, [shape[1], shape[0]]).astype(int)
    return int(x0), int(y0), int(x1), int(y1)


def _closed_share(opening: np.ndarray, silent: np.ndarray) -> float:
    values = opening[silent & np.isfinite(opening)]
    return round(float((values < CLOSED_OPENING).mean()), 3) if len(values) else float("nan")


def dubbing(
    template: Path, speech: Path, engine: Engine, analyzer: Any, scale: float, max_seconds: float,
) -> DubScore:
    """Drive ``template`` with ``speech`` (first ``max_seconds``); coupling with loudness."""
    from heygemd.media.audio import load_audio
    from heygemd.media.probe import probe

    t0 = time.monotonic()
    info = probe(template)
    assert info.video is not None
    audio = load_audio(speech, rate=AUDIO_RATE)[: int(max_seconds * AUDIO_RATE)]
    request = RenderRequest(template=template, info=info, audio=audio, fps=info.video.avg_fps)
    rendering = engine.render(request, lambda f: None)
    out = measure(rendering.frames, analyzer, scale, set())
    opening = np.array(out.opening)
    env = af.envelope(af.loudness_db(audio, request.fps, len(opening)))
    analysis = engine.analysis_of(template)  # type: ignore[attr-defined]
    base = pingpong_indices(len(opening), analysis.n_frames)
    return DubScore(
        template=template.name, speech=speech.name, frames=len(opening),
        coupling_r=round(finite_pearson(opening, env), 3),
        baseline_coupling_r=round(finite_pearson(analysis.opening[base], env), 3),
        seconds=round(time.monotonic() - t0, 1),
    )


def summary(clips: list[ClipScore]) -> dict[str, float]:
    """Means over clips of the self-reenactment scores."""
    keys = ("r", "r_best", "baseline_r", "plan_r", "render_r", "silent_closed", "sharpness",
            "sharpness_vs_source")
    out = {f"mean_{k}": round(float(np.nanmean([getattr(c, k) for c in clips])), 3) for k in keys}
    out["max_abs_lag"] = float(max(abs(c.best_lag) for c in clips)) if clips else 0.0
    silent = sum(c.silent_frames for c in clips if np.isfinite(c.silent_closed))
    closed = sum(c.silent_closed * c.silent_frames for c in clips if np.isfinite(c.silent_closed))
    out["pooled_silent_closed"] = round(closed / silent, 3) if silent else float("nan")
    return out


def as_dicts(scores: Iterable[ClipScore | DubScore]) -> list[dict[str, Any]]:
    return [asdict(s) for s in scores]


def run(
    settings: Any,
    clips: list[Path],
    speech: list[Path],
    out_dir: Path,
    dub_seconds: float = 6.0,
) -> dict[str, Any]:
    """Self-reenactment on ``clips`` and dubbing of each clip by each of ``speech``.

    settings: heygemd.settings.Settings (engine, faces, paths sections). Contact sheets and the
    split templates go to ``out_dir``. Returns a JSON-ready dict of per-clip scores and means.
    """
    import tempfile

    from heygemd.engines.base import EngineContext, create_engine, resolve_device
    from heygemd.faces.analyze import FaceAnalyzer

    ctx = EngineContext(
        settings=settings.engine, faces=settings.faces, paths=settings.paths,
        device=resolve_device(settings.engine.device),
    )
    engine = create_engine(ctx)
    engine.prepare()
    voice = af.VoiceDetector()
    scale = settings.engine.builtin.analysis_scale
    clip_scores: list[ClipScore] = []
    dub_scores: list[DubScore] = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with FaceAnalyzer(settings.faces, tracking=True) as analyzer, \
            tempfile.TemporaryDirectory(prefix="heygemd-eval-") as tmp:
        for clip in clips:
            sheet = out_dir / f"sheet-{stamp}-{clip.stem}.png"
            score = self_reenactment(clip, engine, analyzer, voice, scale, Path(tmp), sheet)
            log.info("eval.clip", **asdict(score))
            clip_scores.append(score)
        for clip in clips:
            for audio in speech:
                dub = dubbing(clip, audio, engine, analyzer, scale, dub_seconds)
                log.info("eval.dub", **asdict(dub))
                dub_scores.append(dub)
    engine.close()
    return {
        "self_reenactment": as_dicts(clip_scores),
        "summary": summary(clip_scores),
        "dubbing": as_dicts(dub_scores),
        "mean_coupling_r": round(float(np.nanmean([d.coupling_r for d in dub_scores])), 3)
        if dub_scores else None,  # JSON has no NaN: no dubbing run -> null
    }


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table of a :func:`run` result, for the CLI and the bench."""
    lines = ["clip                                   frames     r  lag r_best  base  plan render "
             "silent closed truthC sharp  vsSrc sync_r"]
    for c in result["self_reenactment"]:
        lines.append(
            f"{c['clip'][:38]:38} {c['frames']:6} {c['r']:5.2f} {c['best_lag']:4} "
            f"{c['r_best']:6.2f} {c['baseline_r']:5.2f} {c['plan_r']:5.2f} {c['render_r']:6.2f} "
            f"{c['silent_frames']:7} "
            f"{c['silent_closed']:6.2f} {c['truth_silent_closed']:6.2f} {c['sharpness']:5.2f} "
            f"{c['sharpness_vs_source']:6.2f} {c['sync_r']:6.2f}"
        )
    lines.append(f"summary: {result['summary']}")
    for d in result["dubbing"]:
        lines.append(f"dub {d['template'][:30]:30} x {d['speech'][:30]:30} "
                     f"r={d['coupling_r']:5.2f} base={d['baseline_coupling_r']:5.2f}")
    lines.append(f"mean coupling r: {result['mean_coupling_r']}")
    return "\n".join(lines)


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


def run_cli(settings: Any, args: Any) -> tuple[str, bool]:
    """``heygemd eval``: run, write eval-<time>.json under args.out; (table text, targets met)."""
    import json

    media = args.media or Path(__file__).resolve().parents[2] / "shared" / "media"
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
