"""What the evaluation measures: mouth opening and sharpness per frame, and the statistics that
compare two such series (best lag, Pearson r over finite frames, closed lips on silent frames).

The series functions are pure; :func:`frames_from` and :func:`template_sharpness` read a video.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from heygemd.engines.builtin import audio_features as af
from heygemd.engines.builtin.motion import CLOSED_OPENING, pearson

MAX_LAG = 5  # frames searched either way for the best lag
# Template frames averaged per opening by :func:`opening_matched`. 5: the sharpness ceilings of
# the 51 corpus clips move 0.016 (mean) from 3 or 9 frames, against 0.037 from the nearest one.
MATCH_NEIGHBOURS = 5


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


def lag_sums(out: np.ndarray, truth: np.ndarray, block: int, max_lag: int = MAX_LAG,
             start: int = 0) -> np.ndarray:
    """The sums :func:`best_lag`'s r come from, kept per second so that seconds can be
    resampled: float64 (2 * max_lag + 1, blocks, 6), per lag (-max_lag first) and block of
    ``block`` frames the sums n, a, b, ab, aa, bb over the finite pairs (out[t + lag], truth[t]),
    both series of one length. ``start``: the frame of the whole clip that truth[0] is, so that
    blocks are the clip's own seconds (block k: frames [k * block, (k + 1) * block) of the clip)
    and the sums of tails cut at different frames of one clip add up second by second."""
    blocks = max(1, -(-(start + len(truth)) // block))
    sums = np.zeros((2 * max_lag + 1, blocks, 6))
    t = np.arange(len(truth))
    for i, lag in enumerate(range(-max_lag, max_lag + 1)):
        inside = (t + lag >= 0) & (t + lag < len(out))
        a = np.full(len(truth), np.nan)
        a[inside] = out[t[inside] + lag]
        ok = np.isfinite(a) & np.isfinite(truth)
        x, y, where = a[ok], truth[ok], (start + t[ok]) // block
        for j, values in enumerate((np.ones_like(x), x, y, x * y, x * x, y * y)):
            sums[i, :, j] = np.bincount(where, weights=values, minlength=blocks)
    return sums


def _r_from_sums(s: np.ndarray) -> np.ndarray:
    """Pearson r from sums (..., 6) as :func:`lag_sums` keeps them; NaN where a series is
    constant (to rounding, as :func:`pearson` takes it) or has under 3 pairs."""
    n, a, b, ab, aa, bb = np.moveaxis(s, -1, 0)
    var_a, var_b = n * aa - a * a, n * bb - b * b  # n^2 times the variances
    flat = 1e-18 * n * n  # pearson's std < 1e-9
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n > 2) & (var_a > flat) & (var_b > flat),
                        (n * ab - a * b) / np.sqrt(var_a * var_b), np.nan)


@dataclass(frozen=True)
class Shift:
    """A best lag with its 95% interval (frames; > 0: late), the r at it, and how many seconds
    with a pair it rests on."""

    lag: int
    low: int
    high: int
    r: float
    seconds: int


def lag_interval(sums: np.ndarray, draws: int = 1000, seed: int = 0) -> Shift:
    """The lag maximising r over the pooled seconds of ``sums`` (:func:`lag_sums`; several
    tails of one clip added second by second) and its 95% interval when those seconds are drawn
    again with replacement. Where the output follows its truth weakly, the best lag moves from
    draw to draw and the interval says so. With a few seconds the interval is narrower than the
    truth's (a percentile bootstrap of under ~10 blocks); nothing to resample gives the whole
    range."""
    max_lag = (sums.shape[0] - 1) // 2
    lags = np.arange(-max_lag, max_lag + 1)
    sums = sums[:, sums[max_lag, :, 0] > 0, :]  # seconds with a pair in step
    r = _r_from_sums(sums.sum(axis=1))
    if not np.isfinite(r).any():
        return Shift(0, -max_lag, max_lag, float("nan"), sums.shape[1])
    best = int(np.nanargmax(r))
    rng = np.random.default_rng(seed)
    counts = np.zeros((draws, sums.shape[1]))  # how often each second is drawn
    np.add.at(counts, (np.arange(draws)[:, None],
                       rng.integers(0, sums.shape[1], size=(draws, sums.shape[1]))), 1)
    drawn = _r_from_sums(np.einsum("db,lbk->ldk", counts, sums))  # (lags, draws)
    valid = np.isfinite(drawn).any(axis=0)
    if not valid.any():
        return Shift(int(lags[best]), -max_lag, max_lag, float(r[best]), sums.shape[1])
    chosen = lags[np.argmax(np.nan_to_num(drawn[:, valid], nan=-2.0), axis=0)]
    return Shift(int(lags[best]), int(np.percentile(chosen, 2.5, method="lower")),
                 int(np.percentile(chosen, 97.5, method="higher")), round(float(r[best]), 3),
                 sums.shape[1])


def finite_pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r over the positions where both series are finite."""
    ok = np.isfinite(a) & np.isfinite(b)
    return pearson(a[ok], b[ok])


def closed_share(opening: np.ndarray, silent: np.ndarray) -> float:
    """Share (3 decimals) of the silent frames with a finite opening whose lips are closed;
    NaN when there are none. opening: (N,) float, silent: bool (N,)."""
    values = opening[silent & np.isfinite(opening)]
    return round(float((values < CLOSED_OPENING).mean()), 3) if len(values) else float("nan")


def planned_opening(
    opening: np.ndarray, source: np.ndarray, base: np.ndarray, active: np.ndarray | None, n: int
) -> np.ndarray:
    """(n,) mouth opening the plan promises: the source frame's where a mouth is transplanted,
    the base frame's where the frame passes through. opening (N,) per template frame."""
    shown = opening[source[:n]]
    if active is not None:
        shown = np.where(active[:n], shown, opening[base[:n]])
    return np.asarray(shown, dtype=np.float64)


def opening_matched(
    values: np.ndarray, opening: np.ndarray, wanted: np.ndarray, k: int = MATCH_NEIGHBOURS
) -> np.ndarray:
    """Per wanted opening, the mean of ``values`` over the ``k`` frames whose opening is
    nearest (frames where either is NaN are skipped): what frames of that opening measure.

    values, opening: (N,) per template frame; wanted: (M,) -> float64 (M,), NaN where
    ``wanted`` is NaN or no frame is finite.
    """
    ok = np.isfinite(values) & np.isfinite(opening)
    out = np.full(len(wanted), np.nan)
    have = np.isfinite(wanted)
    if not ok.any() or not have.any():
        return out
    k = min(k, int(ok.sum()))
    distance = np.abs(np.asarray(wanted, np.float64)[have, None] - opening[ok][None, :])
    nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]
    out[have] = np.asarray(values, np.float64)[ok][nearest].mean(axis=1)
    return out


def silent_mask(audio: np.ndarray, fps: float, count: int, voice: af.VoiceDetector) -> np.ndarray:
    """bool (count,): no voice (silero) or quiet (35 dB under the peak)."""
    quiet = af.quiet_frames(af.loudness_db(audio, fps, count))
    return quiet | ~af.speech_mask_from_spans(voice.spans(audio), fps, count)


def _mouth_grey(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """The grey mouth region (geometry.lip_box: outer-lip box, 30% margin) of an RGB frame;
    None when empty."""
    import cv2

    from heygemd.faces.geometry import lip_box

    x0, y0, x1, y1 = lip_box(landmarks)
    crop = frame[max(y0, 0):y1, max(x0, 0):x1]
    return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.size else None


def mouth_sharpness(frame: np.ndarray, landmarks: np.ndarray) -> float:
    """Variance of the Laplacian of the grey mouth region (outer-lip box, 30% margin)."""
    import cv2

    grey = _mouth_grey(frame, landmarks)
    return float("nan") if grey is None else float(cv2.Laplacian(grey, cv2.CV_64F).var())


def mouth_gradient(frame: np.ndarray, landmarks: np.ndarray) -> float:
    """Mean squared Sobel gradient (Tenengrad) of the same mouth region: a second sharpness
    measure, apart from the Laplacian variance the builtin engine's selection reads."""
    import cv2

    grey = _mouth_grey(frame, landmarks)
    if grey is None:
        return float("nan")
    gx = cv2.Sobel(grey, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_64F, 0, 1, ksize=3)
    return float(np.mean(gx * gx + gy * gy))


@dataclass
class Track:
    """Per frame measurements of a frame stream; a few frames kept for the contact sheet."""

    opening: list[float]
    sharpness: list[float]
    kept: dict[int, np.ndarray]
    gradient: list[float] = field(default_factory=list)  # mouth_gradient per frame


def measure(
    frames: Iterable[np.ndarray], analyzer: Any, scale: float, keep: set[int]
) -> Track:
    """Mouth opening, sharpness and gradient per frame of ``frames`` (analysed at ``scale``)."""
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
            track.gradient.append(mouth_gradient(frame, points))
        else:
            track.opening.append(float("nan"))
            track.sharpness.append(float("nan"))
            track.gradient.append(float("nan"))
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


def template_sharpness(template: Path, landmarks: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Mouth sharpness per template frame (N,), NaN where unusable (landmarks (N, 478, 3))."""
    values = np.full(len(usable), np.nan)
    for i, frame in enumerate(frames_from(template, 0, len(usable))):
        if usable[i]:
            values[i] = mouth_sharpness(frame, landmarks[i])
    return values
