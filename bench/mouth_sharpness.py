"""Mouth sharpness of the builtin engine's output against the held-out truth, per clip.

    .venv/bin/python bench/mouth_sharpness.py [--clips th10 c16 ...] [--sheets DIR]
                                              [--seconds S] [--device cpu|cuda] [--fps]

Self-reenactment as heygemd.evaluate.score.self_reenactment: template = the clip's first 60%,
driving audio = its own last 40%. The template is written losslessly (x264 crf 0), so that what
is measured is the engine's resampling, not a re-encode of the template. Per clip:

- ``vs_truth``: mean mouth sharpness of the output / of the real last 40% (the held-out truth);
- ``vs_source``: of the transplanted output frames / of the template frames chosen for them
  (the same mouths before the engine touched them);
- ``passed``: of the frames passed through or shown as recorded (no transplant) / their
  truth, for reference;
- ``chosen_vs_truth``, ``template_vs_truth``: the chosen template mouths, and all of them, /
  the truth: what the selection and the template themselves give, before any resampling;
- with ``--encode``, output and truth both go through the default output encode (crf 18,
  medium) first, as a user gets them: ``vs_truth`` is then encoded / encoded, ``vs_raw_truth``
  encoded output / the real frames, ``truth_encoded_vs_raw`` what the encode costs the truth.

Sharpness is heygemd.evaluate.metrics.mouth_sharpness (Laplacian variance in the outer-lip box,
30% margin), the box found by the face analyzer on each frame itself. ``--sheets DIR`` writes,
per clip, a PNG of mouth crops: output | chosen source | truth, rows spread over the clip, and
the lower face of the output (the blend's edge) beside the truth's. ``--fps`` times the render
alone (analysis cached, frames consumed, nothing measured) before the measured run.
``--grain S`` adds camera-like grain (sigma S levels) to the whole clip first.
Writes bench/out/mouth-sharpness-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from heygemd.contract import AUDIO_RATE  # noqa: E402
from heygemd.engines.base import EngineContext, RenderRequest, resolve_device  # noqa: E402
from heygemd.engines.builtin.engine import BuiltinEngine  # noqa: E402
from heygemd.evaluate.metrics import frames_from, mouth_sharpness  # noqa: E402
from heygemd.evaluate.score import write_template  # noqa: E402
from heygemd.settings import OutputSettings, load_settings  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
DEFAULT_CLIPS = ("th10", "th03", "th05", "th08", "c16", "c19", "c22", "c30", "c02", "c01", "c10")
TEMPLATE_SHARE = 0.6
SHEET_ROWS = 6
CROP_HEIGHT = 200  # sheet cells are scaled to this height (nearest neighbour: pixels stay visible)


def find_clip(name: str) -> Path:
    """A clip of ../shared/media/talking or corpus by the start of its name (th10, c16)."""
    for folder in ("talking", "corpus"):
        hits = sorted((MEDIA / folder).glob(f"{name}*.mp4"))
        if hits:
            return hits[0]
    raise SystemExit(f"no clip {name!r} under {MEDIA}")


def write_lossless(clip: Path, frames: int, out: Path) -> None:
    """The first ``frames`` frames of ``clip`` with their audio, losslessly (x264 crf 0)."""
    write_template(clip, frames, out,
                   OutputSettings(crf=0, preset="ultrafast", encoder="libx264"))


def with_grain(clip: Path, sigma: float, out: Path) -> Path:
    """``clip`` with camera-like grain added (Gaussian, ``sigma`` levels, new in every frame,
    the same on the three channels), written losslessly with its sound: footage as a camera
    gives it, which the heavily compressed clips of the corpus are not."""
    from heygemd.media.audio import load_audio
    from heygemd.media.video import VideoReader
    from heygemd.media.writer import VideoWriter

    settings = OutputSettings(crf=0, preset="ultrafast")
    rng = np.random.default_rng(0)
    with VideoReader(clip) as reader:
        audio = load_audio(clip, rate=settings.audio_rate, mono=True)
        with VideoWriter(out, reader.width, reader.height, reader.fps, audio=audio,
                         audio_rate=settings.audio_rate, settings=settings) as writer:
            for frame in reader:
                noise = rng.normal(0.0, sigma, frame.shape[:2]).astype(np.float32)[..., None]
                writer.write(np.clip(frame + noise, 0, 255).astype(np.uint8))
    return out


def landmarks_of(frame: np.ndarray, analyzer: Any, scale: float, index: int) -> np.ndarray | None:
    """The first face's landmarks (478, 3) in ``frame``'s pixels, found at ``scale``; None."""
    import cv2

    small = frame if scale == 1.0 else cv2.resize(
        frame, (round(frame.shape[1] * scale), round(frame.shape[0] * scale)),
        interpolation=cv2.INTER_AREA)
    faces = analyzer.analyze(small, index)
    return np.asarray(faces[0].landmarks, dtype=np.float64) / scale if faces else None


def lip_box(points: np.ndarray, shape: tuple[int, ...], margin: float) -> tuple[int, ...]:
    """(x0, y0, x1, y1) of the outer lips of ``points`` with ``margin`` of their size."""
    from heygemd.faces import landmarks as lm

    lips = points[list(lm.LIPS_OUTER), :2]
    lo, hi = lips.min(axis=0), lips.max(axis=0)
    pad = (hi - lo) * margin
    x0, y0 = np.maximum(np.floor(lo - pad), 0).astype(int)
    x1 = int(min(np.ceil(hi[0] + pad[0]), shape[1]))
    y1 = int(min(np.ceil(hi[1] + pad[1]), shape[0]))
    return int(x0), int(y0), x1, y1


def face_box(points: np.ndarray, shape: tuple[int, ...]) -> tuple[int, ...]:
    """(x0, y0, x1, y1) of the lower face (jaw to nose, cheek to cheek), 15% margin."""
    from heygemd.engines.builtin import mesh

    contour = mesh.pushed(points, 1.15)
    lo, hi = contour.min(axis=0), contour.max(axis=0)
    x0, y0 = np.maximum(np.floor(lo), 0).astype(int)
    return int(x0), int(y0), int(min(np.ceil(hi[0]), shape[1])), int(min(np.ceil(hi[1]), shape[0]))


def cell(frame: np.ndarray, box: tuple[int, ...], height: int = CROP_HEIGHT) -> np.ndarray:
    """The ``box`` of ``frame`` scaled to ``height`` (nearest neighbour)."""
    import cv2

    x0, y0, x1, y1 = box
    crop = frame[y0:y1, x0:x1]
    if crop.size == 0:
        return np.zeros((height, height, 3), np.uint8)
    width = max(1, round(crop.shape[1] * height / crop.shape[0]))
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_NEAREST)


def row_of(cells: list[np.ndarray]) -> np.ndarray:
    """Cells side by side, top-aligned on white."""
    height = max(c.shape[0] for c in cells)
    gap = np.full((height, 6, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for c in cells:
        parts += [np.pad(c, ((0, height - c.shape[0]), (0, 0), (0, 0)), constant_values=255),
                  gap]
    return np.concatenate(parts[:-1], axis=1)


def write_sheet(path: Path, rows: list[list[np.ndarray]]) -> None:
    """Rows of cells, left-aligned on white, as a PNG."""
    import cv2

    lines = [row_of(r) for r in rows]
    width = max(line.shape[1] for line in lines)
    padded = [np.pad(line, ((0, 6), (0, width - line.shape[1]), (0, 0)), constant_values=255)
              for line in lines]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(padded), cv2.COLOR_RGB2BGR))


def time_render(engine: BuiltinEngine, request: RenderRequest) -> dict[str, float]:
    """Seconds to take every frame of one render (analysis cached): plan and frames apart."""
    engine.forget_heard()
    t0 = time.perf_counter()
    rendering = engine.render(request, lambda f: None)
    t1 = time.perf_counter()
    count = sum(1 for _ in rendering.frames)
    t2 = time.perf_counter()
    return {"plan_s": round(t1 - t0, 2), "frames_s": round(t2 - t1, 2),
            "render_fps": round(count / (t2 - t1), 1)}


def encoded(frames: Any, path: Path, fps: float) -> Any:
    """``frames`` written with the default OutputSettings (no sound), then read back."""
    from heygemd.media.writer import VideoWriter

    first = next(iter(frames))
    settings = OutputSettings()
    with VideoWriter(path, first.shape[1], first.shape[0], fps, audio=None,
                     audio_rate=settings.audio_rate, settings=settings) as writer:
        writer.write(first)
        count = 1
        for frame in frames:
            writer.write(frame)
            count += 1
    return frames_from(path, 0, count)


def score_clip(clip: Path, engine: BuiltinEngine, analyzer: Any, scale: float, work: Path,
               sheets: Path | None, seconds: float | None, timed: bool,
               encode: bool = False) -> dict[str, Any]:
    from heygemd.media.audio import load_audio
    from heygemd.media.probe import probe

    info = probe(clip)
    assert info.video is not None
    fps = info.video.avg_fps
    total = info.video.frame_count or sum(1 for _ in frames_from(clip, 0, 10**9))
    if seconds is not None:
        total = min(total, int(round(seconds * fps)))
    cut = int(round(total * TEMPLATE_SHARE))
    count = total - cut
    template = work / f"{clip.stem}.template.mp4"
    write_lossless(clip, cut, template)
    audio = load_audio(clip, rate=AUDIO_RATE)[int(cut / fps * AUDIO_RATE):]
    audio = audio[: int(count / fps * AUDIO_RATE)]
    request = RenderRequest(template=template, info=probe(template), audio=audio, fps=fps)
    analysis = engine.analysis_of(template)
    result: dict[str, Any] = {"clip": clip.stem.split("_")[0], "size": f"{info.video.width}x"
                              f"{info.video.height}", "frames": count}
    if timed:
        time_render(engine, request)  # first-call costs paid untimed
        result.update(time_render(engine, request))
    engine.forget_heard()
    rendering = engine.render(request, lambda f: None)
    plan = engine.last_plan
    assert plan is not None
    out_frames: Any = rendering.frames
    truth_frames: Any = frames_from(clip, cut, count)
    if encode:
        # as a user gets them: both through the daemon's default output encode (crf 18, medium)
        out_frames = encoded(rendering.frames, work / "out.mp4", fps)
        truth_frames = encoded(frames_from(clip, cut, count), work / "truth.mp4", fps)
    keep = set(np.linspace(0, count - 1, SHEET_ROWS).round().astype(int).tolist())
    truth_s: list[float] = []
    out_open: list[float] = []
    truth_open: list[float] = []
    kept: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    analyzer.reset()
    # output and truth analysed in turns by one tracking analyzer would mix two tracks
    outs: list[tuple[float, np.ndarray | None, np.ndarray | None]] = []
    for t, frame in enumerate(out_frames):
        points = landmarks_of(frame, analyzer, scale, t)
        out_open.append(opening_of(points))
        outs.append((mouth_sharpness(frame, points) if points is not None else np.nan,
                     frame if t in keep else None, points if t in keep else None))
    analyzer.reset()
    for t, truth in enumerate(truth_frames):
        points = landmarks_of(truth, analyzer, scale, t)
        truth_s.append(mouth_sharpness(truth, points) if points is not None else np.nan)
        truth_open.append(opening_of(points))
        if t in keep and t < len(outs) and outs[t][1] is not None and points is not None:
            kept[t] = (outs[t][1], truth, points)
    out_s = [o[0] for o in outs]
    raw_truth: list[float] = []
    if encode:  # the encoded output against the real frames as they were
        analyzer.reset()
        for t, truth in enumerate(frames_from(clip, cut, count)):
            points = landmarks_of(truth, analyzer, scale, t)
            raw_truth.append(mouth_sharpness(truth, points) if points is not None else np.nan)
    n = min(len(out_s), len(truth_s))
    out_a, truth_a = np.array(out_s[:n]), np.array(truth_s[:n])
    active = plan.transplanted[:n]
    template_sharp = _template_sharpness(template, analysis)
    source_sharp = template_sharp[plan.source[:n][active]]
    result.update({
        "vs_truth": _ratio(out_a, truth_a),
        "vs_truth_same_opening": at_same_opening(out_a, np.array(out_open[:n]), truth_a,
                                                 np.array(truth_open[:n])),
        "vs_source": _ratio(out_a[active], source_sharp),
        "passed": _ratio(out_a[~active], truth_a[~active]) if (~active).any() else None,
        # what the selection alone gives: the chosen mouths, and all the template's, vs truth
        "chosen_vs_truth": _ratio(source_sharp, truth_a[active]),
        "template_vs_truth": _ratio(template_sharp, truth_a),
        "active_share": round(float(active.mean()), 3),
        "vs_raw_truth": _ratio(out_a, np.array(raw_truth[:n])) if raw_truth else None,
        "truth_encoded_vs_raw": _ratio(truth_a, np.array(raw_truth[:n])) if raw_truth else None,
        "out_mean": round(float(np.nanmean(out_a)), 1),
        "truth_mean": round(float(np.nanmean(truth_a)), 1),
    })
    if sheets is not None:
        _sheet(sheets / f"mouth-{clip.stem.split('_')[0]}.png", kept, template, analysis, plan)
    return result


def opening_of(points: np.ndarray | None) -> float:
    from heygemd.faces.geometry import mouth_opening

    return float(mouth_opening(points)) if points is not None else float("nan")


def at_same_opening(out: np.ndarray, out_open: np.ndarray, truth: np.ndarray,
                    truth_open: np.ndarray) -> float:
    """Mean output sharpness / the truth's at the output's own mouth openings (a line fitted to
    the truth's sharpness against its opening): an open mouth shows teeth and is sharper, so
    this takes what was chosen apart from how it was rendered."""
    ok = np.isfinite(truth) & np.isfinite(truth_open)
    if ok.sum() < 3:
        return float("nan")
    slope, offset = np.polyfit(truth_open[ok], truth[ok], 1)
    use = np.isfinite(out) & np.isfinite(out_open)
    expected = offset + slope * out_open[use]
    return round(float(out[use].mean() / max(float(expected.mean()), 1e-6)), 3)


def _ratio(a: np.ndarray, b: np.ndarray) -> float:
    return round(float(np.nanmean(a)) / float(np.nanmean(b)), 3)


def _template_sharpness(template: Path, analysis: Any) -> np.ndarray:
    """Mouth sharpness of each template frame (N,), NaN where not usable."""
    values = np.full(analysis.n_frames, np.nan)
    for i, frame in enumerate(frames_from(template, 0, analysis.n_frames)):
        if analysis.usable[i]:
            values[i] = mouth_sharpness(frame, analysis.landmarks[i])
    return values


def _sheet(path: Path, kept: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
           template: Path, analysis: Any, plan: Any) -> None:
    """Per kept frame: output mouth | chosen source mouth | truth mouth | output lower face |
    truth lower face."""
    sources = {int(plan.source[t]) for t in kept}
    frames = {i: f for i, f in enumerate(frames_from(template, 0, analysis.n_frames))
              if i in sources}
    rows = []
    for t, (out, truth, points) in sorted(kept.items()):
        s = int(plan.source[t])
        src_box = lip_box(analysis.landmarks[s], frames[s].shape, 0.5)
        box = lip_box(points, out.shape, 0.5)
        rows.append([cell(out, box), cell(frames[s], src_box), cell(truth, box),
                     cell(out, face_box(points, out.shape), 2 * CROP_HEIGHT),
                     cell(truth, face_box(points, truth.shape), 2 * CROP_HEIGHT)])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_sheet(path, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=list(DEFAULT_CLIPS))
    parser.add_argument("--sheets", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=None, help="use at most this much")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fps", action="store_true", help="time the render alone first")
    parser.add_argument("--grain", type=float, default=0.0,
                        help="add camera-like grain of this sigma (levels) to the clip first")
    parser.add_argument("--encode", action="store_true",
                        help="measure output and truth after the default output encode")
    args = parser.parse_args()
    from heygemd.faces.analyze import FaceAnalyzer

    settings = load_settings(None)
    options = settings.engine.builtin
    scale = options.analysis_scale
    results = []
    with tempfile.TemporaryDirectory(prefix="mouth-sharpness-") as tmp:
        ctx = EngineContext(options, settings.faces, Path(tmp) / "models", Path(tmp) / "cache",
                            4 << 30, resolve_device(args.device))
        engine = BuiltinEngine(ctx, hearing_worker=False)
        engine.prepare()
        with FaceAnalyzer(settings.faces, tracking=True) as analyzer:
            for name in args.clips:
                t0 = time.perf_counter()
                clip = find_clip(name)
                if args.grain > 0:
                    clip = with_grain(clip, args.grain, Path(tmp) / f"{clip.stem}.grain.mp4")
                row = score_clip(clip, engine, analyzer, scale, Path(tmp),
                                 args.sheets, args.seconds, args.fps, args.encode)
                row["seconds"] = round(time.perf_counter() - t0, 1)
                print(json.dumps(row), flush=True)
                results.append(row)
        engine.close()
    out = ROOT / "bench" / "out" / f"mouth-sharpness-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"analysis_scale": scale, "device": args.device,
                               "encoded": args.encode, "grain": args.grain,
                               "clips": results}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
