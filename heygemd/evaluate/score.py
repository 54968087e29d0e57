"""Scoring one clip: self-reenactment against the clip's own ground truth, and dubbing by
another speech file (see :mod:`heygemd.evaluate`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heygemd.contract import AUDIO_RATE
from heygemd.engines.base import Evaluable, RenderRequest
from heygemd.engines.builtin import audio_features as af
from heygemd.engines.builtin.select import pingpong_indices
from heygemd.evaluate.metrics import (
    MATCH_NEIGHBOURS,
    Track,
    best_lag,
    closed_share,
    finite_pearson,
    frames_from,
    measure,
    opening_matched,
    planned_opening,
    silent_mask,
    template_sharpness,
)
from heygemd.evaluate.sheet import sheet_indices, write_sheet
from heygemd.media.yuv import as_rgb
from heygemd.settings import OutputSettings

TEMPLATE_SHARE = 0.6
# Issue #11: the output's mouth at least this sharp against the real held-out frames'.
SHARPNESS_TARGET = 0.9
# the split template's encode: lossless (crf 0), so that its frames decode the same on every
# run (lossy libx264 output varies from run to run even on one thread: c10 at crf 12, frames up
# to 26 levels apart, and the render's scores with them); libx264 on every machine, so that a
# GPU server's templates equal a CPU's.
TEMPLATE_OUTPUT = OutputSettings(crf=0, preset="veryfast", encoder="libx264")


@dataclass(frozen=True)
class ClipScore:
    clip: str
    frames: int
    r: float  # output vs ground-truth opening, lag 0
    # the same over the voiced frames only: the audio -> mouth mapping where the product's
    # closed pauses (real speakers often pause with parted lips) do not enter
    voiced_r: float
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
    sharpness_vs_truth: float  # output / the real held-out frames (the person's real mouth)
    gradient_vs_truth: float  # the same with metrics.mouth_gradient (Tenengrad), a second measure
    # What the template's footage allows: its frames of each held-out frame's opening (the
    # MATCH_NEIGHBOURS nearest) against the held-out frames. Under SHARPNESS_TARGET, template
    # mouths of the real openings cannot reach the target: the held-out footage is sharper.
    sharpness_ceiling: float
    sharpness_template_vs_truth: float  # all template frames / the held-out frames
    # The chosen template frames against the template's other frames of the same openings (the
    # MATCH_NEIGHBOURS nearest to each chosen one's): under 1, the selection takes blurrier
    # mouths than the template holds for those shapes.
    sharpness_chosen_vs_same_opening: float
    # The template's frames of the chosen frames' openings against those of the truth's
    # openings: under 1, the output shows shapes whose mouths are less sharp than the real
    # ones' (more closed: lips hide the teeth). With sharpness_vs_source, the selection's figure
    # and sharpness_ceiling it makes up sharpness_vs_truth.
    sharpness_openings: float
    face_found: float  # share of the template's frames with a usable face
    sync_r: float  # the engine's own metric (opening vs loudness envelope)
    envelope_r: float  # output opening vs the audio's loudness envelope (dubbing's coupling)
    truth_envelope_r: float  # the real speaker's: how much of that coupling real speech has
    seconds: float


@dataclass(frozen=True)
class DubScore:
    template: str
    speech: str
    frames: int
    coupling_r: float  # output opening vs the speech's loudness envelope
    baseline_coupling_r: float  # template frames (audio ignored) vs the same envelope
    # Timing, in any language: the lag (frames; < 0: the mouth moves first) maximising r
    # between the output opening and the speech's voice activity (silero), and that r. The
    # engine adds engine.builtin.lead_ms (0 by default) to what its fits learned; the
    # envelope's own best lag is no timing measure (loudness peaks late in a syllable).
    voice_lag: int
    voice_r: float
    seconds: float


def write_template(
    clip: Path, frames: int, out: Path, settings: OutputSettings = TEMPLATE_OUTPUT
) -> None:
    """The first ``frames`` frames of ``clip`` with their audio, as an MP4 (``settings``;
    lossless by default)."""
    from heygemd.media.audio import load_audio
    from heygemd.media.video import VideoReader
    from heygemd.media.writer import VideoWriter

    with VideoReader(clip) as reader:
        audio = load_audio(clip, rate=settings.audio_rate, mono=True, from_first_frame=True)
        audio = audio[: int(frames / reader.fps * settings.audio_rate)]
        with VideoWriter(out, reader.width, reader.height, reader.fps, audio=audio,
                         audio_rate=settings.audio_rate, settings=settings) as writer:
            for i, frame in enumerate(reader):
                if i >= frames:
                    break
                writer.write(frame)


def self_reenactment(
    clip: Path, engine: Evaluable, analyzer: Any, voice: af.VoiceDetector, scale: float,
    workdir: Path, sheet: Path | None,
) -> ClipScore:
    """Score ``engine`` on one talking clip (see :mod:`heygemd.evaluate`)."""
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
    audio = load_audio(clip, rate=AUDIO_RATE, from_first_frame=True)[int(cut / fps * AUDIO_RATE) :]
    count = total - cut
    audio = audio[: int(count / fps * AUDIO_RATE)]
    # the frames the pipeline's encoder is given (template pixels as decoded where they can be)
    request = RenderRequest(template=template, info=probe(template), audio=audio, fps=fps,
                            yuv_frames=True)
    rendering = engine.render(request, lambda f: None)
    keep = set(sheet_indices(request.frame_count))
    out = measure(map(as_rgb, rendering.frames), analyzer, scale, keep)
    truth = measure(frames_from(clip, cut, count), analyzer, scale, keep)
    n = min(len(out.opening), len(truth.opening))
    out_open, truth_open = np.array(out.opening[:n]), np.array(truth.opening[:n])
    analysis = engine.analysis_of(template)
    base = pingpong_indices(n, analysis.n_frames)
    silent = silent_mask(audio, fps, n, voice)
    lag, r_best = best_lag(out_open, truth_open)
    plan = engine.last_plan
    chosen = plan.source if plan is not None else base
    promised = planned_opening(analysis.opening, chosen, base, plan.active if plan else None, n)
    sharp_t = template_sharpness(template, analysis.landmarks, analysis.usable)
    envelope = af.envelope(af.loudness_db(audio, fps, n))
    if sheet is not None:
        write_sheet(sheet, template, analysis, base, n, keep, out, truth)
    return ClipScore(
        clip=clip.name, frames=n, r=round(finite_pearson(out_open, truth_open), 3),
        voiced_r=round(finite_pearson(out_open[~silent], truth_open[~silent]), 3),
        best_lag=lag, r_best=round(r_best, 3),
        baseline_r=round(finite_pearson(analysis.opening[base], truth_open), 3),
        plan_r=round(finite_pearson(promised, truth_open), 3),
        render_r=round(finite_pearson(out_open, promised), 3),
        silent_frames=int(silent.sum()),
        silent_closed=closed_share(out_open, silent),
        truth_silent_closed=closed_share(truth_open, silent),
        sharpness=round(float(np.nanmean(out.sharpness)) / float(np.nanmean(sharp_t)), 3),
        sharpness_vs_source=round(
            float(np.nanmean(out.sharpness)) / float(np.nanmean(sharp_t[chosen[:n]])), 3
        ),
        sharpness_vs_truth=round(
            float(np.nanmean(out.sharpness)) / float(np.nanmean(truth.sharpness)), 3),
        gradient_vs_truth=round(
            float(np.nanmean(out.gradient)) / float(np.nanmean(truth.gradient)), 3),
        **sharpness_ceilings(sharp_t, analysis.opening, truth),
        sharpness_chosen_vs_same_opening=chosen_vs_same_opening(
            sharp_t, analysis.opening, chosen[:n]),
        sharpness_openings=openings_vs_truth(sharp_t, analysis.opening, chosen[:n], truth),
        face_found=round(float(analysis.usable.mean()), 4),
        sync_r=float(rendering.metrics.get("sync_r", float("nan"))),
        envelope_r=round(finite_pearson(out_open, envelope), 3),
        truth_envelope_r=round(finite_pearson(truth_open, envelope), 3),
        seconds=round(time.monotonic() - t0, 1),
    )


def sharpness_ceilings(
    template_sharp: np.ndarray, template_opening: np.ndarray, truth: Track
) -> dict[str, float]:
    """ClipScore's sharpness_ceiling and sharpness_template_vs_truth: template frames'
    mouth sharpness (N,) and opening (N,) against the held-out frames' ``truth``."""
    real = float(np.nanmean(truth.sharpness))
    matched = opening_matched(template_sharp, template_opening, np.array(truth.opening))
    return {
        "sharpness_ceiling": round(float(np.nanmean(matched)) / real, 3),
        "sharpness_template_vs_truth": round(float(np.nanmean(template_sharp)) / real, 3),
    }


def chosen_vs_same_opening(
    template_sharp: np.ndarray, template_opening: np.ndarray, chosen: np.ndarray
) -> float:
    """Mean mouth sharpness of the ``chosen`` template frames (int (T,)) over the mean of, for
    each, the MATCH_NEIGHBOURS other template frames nearest its opening: template frames'
    sharpness (N,) and opening (N,). NaN where too few frames are measured."""
    sharp = np.asarray(template_sharp, np.float64)
    opening = np.asarray(template_opening, np.float64)
    ok = np.flatnonzero(np.isfinite(sharp) & np.isfinite(opening))
    picks = np.asarray(chosen)[np.isin(chosen, ok)]
    if len(picks) == 0 or len(ok) <= MATCH_NEIGHBOURS:
        return float("nan")
    distance = np.abs(opening[picks][:, None] - opening[ok][None, :])
    distance[picks[:, None] == ok[None, :]] = np.inf  # a frame is not its own peer
    nearest = np.argpartition(distance, MATCH_NEIGHBOURS - 1, axis=1)[:, :MATCH_NEIGHBOURS]
    peers = sharp[ok][nearest].mean(axis=1)
    return round(float(sharp[picks].mean()) / float(peers.mean()), 3)


def openings_vs_truth(
    template_sharp: np.ndarray, template_opening: np.ndarray, chosen: np.ndarray, truth: Track
) -> float:
    """The template's mouth sharpness at the ``chosen`` frames' openings (opening_matched) over
    its sharpness at the held-out frames' openings (``truth``): what the shapes shown cost."""
    shown = opening_matched(template_sharp, template_opening,
                            np.asarray(template_opening, np.float64)[chosen])
    real = opening_matched(template_sharp, template_opening, np.array(truth.opening))
    if not (np.isfinite(shown).any() and np.isfinite(real).any()):
        return float("nan")
    return round(float(np.nanmean(shown)) / float(np.nanmean(real)), 3)


def dubbing(
    template: Path, speech: Path, engine: Evaluable, analyzer: Any, voice: af.VoiceDetector,
    scale: float, max_seconds: float,
) -> DubScore:
    """Drive ``template`` with ``speech`` (first ``max_seconds``); coupling with loudness."""
    from heygemd.media.audio import load_audio
    from heygemd.media.probe import probe

    t0 = time.monotonic()
    info = probe(template)
    assert info.video is not None
    audio = load_audio(speech, rate=AUDIO_RATE)[: int(max_seconds * AUDIO_RATE)]
    request = RenderRequest(template=template, info=info, audio=audio, fps=info.video.avg_fps,
                            yuv_frames=True)
    rendering = engine.render(request, lambda f: None)
    out = measure(map(as_rgb, rendering.frames), analyzer, scale, set())
    opening = np.array(out.opening)
    env = af.envelope(af.loudness_db(audio, request.fps, len(opening)))
    voiced = ~silent_mask(audio, request.fps, len(opening), voice)
    voice_lag, voice_r = best_lag(opening, voiced.astype(np.float64))
    analysis = engine.analysis_of(template)
    base = pingpong_indices(len(opening), analysis.n_frames)
    return DubScore(
        template=template.name, speech=speech.name, frames=len(opening),
        coupling_r=round(finite_pearson(opening, env), 3),
        baseline_coupling_r=round(finite_pearson(analysis.opening[base], env), 3),
        voice_lag=voice_lag, voice_r=round(voice_r, 3),
        seconds=round(time.monotonic() - t0, 1),
    )
