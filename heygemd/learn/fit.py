"""Fitting the speaker-independent mouth model (:mod:`heygemd.engines.builtin.mouthmodel`) on
many speakers' clips. Deterministic: the same clips give the same weights (a closed-form solve).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heygemd.engines.builtin.mouthmodel import MouthModel, mel_columns
from heygemd.learn.corpus import ClipData


@dataclass(frozen=True)
class FitOptions:
    """ridge: the linear model's lambda (on standardised inputs); phones: whether it reads the
    viseme columns beside the log-mel.

    On the corpus, leave one speaker out (51 clips), the held-out frame r of the linear model on
    the log-mel alone is 0.307 at lambda 10000 (0.282-0.298 at 1000/30000/100000), 0.341 with
    the phones too (Mandarin 0.265 -> 0.314; the plan's r 0.386 -> 0.400), so they are read.
    Multilayer perceptrons of 64 and 32x32 units on the log-mel, tried and not kept, reached
    0.18-0.21 (fewer than 6000 spoken frames of 15 speakers to learn from).
    """

    ridge: float = 10000.0
    phones: bool = True  # read the viseme columns too (else the log-mel alone)


def speaker_units(opening: np.ndarray, spoken: np.ndarray) -> np.ndarray:
    """float64 (T,): the opening's z-score over the ``spoken`` frames (NaN elsewhere)."""
    y = np.full(len(opening), np.nan)
    values = opening[spoken].astype(np.float64)
    if len(values) >= 5 and values.std() > 1e-6:
        y[spoken] = (values - values.mean()) / values.std()
    return y


def columns_for(width: int, phones: bool) -> np.ndarray:
    """int (D,): the listen-feature columns a model reads (all, or the log-mel alone)."""
    return np.arange(width) if phones else mel_columns(width)


def training_rows(clips: list[ClipData], columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every clip's spoken frames: the ``columns`` float32 (N, D) and speaker-unit targets (N,)."""
    xs, ys = [], []
    for clip in clips:
        y = speaker_units(clip.opening, clip.spoken)
        keep = np.isfinite(y)
        xs.append(clip.features[keep][:, columns])
        ys.append(y[keep])
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32)


def held_out_r(clip: ClipData, model: MouthModel) -> float:
    """r of the model's prediction against the clip's speaker-unit opening (spoken frames)."""
    y = speaker_units(clip.opening, clip.spoken)
    keep = np.isfinite(y)
    if keep.sum() < 3:
        return float("nan")
    return round(float(np.corrcoef(model.predict(clip.features)[keep], y[keep])[0, 1]), 3)


def fit(clips: list[ClipData], options: FitOptions = FitOptions()) -> MouthModel:
    """Train on ``clips`` (their spoken frames): ridge regression in closed form."""
    from heygemd.engines.builtin.listen import feature_signature

    columns = columns_for(clips[0].features.shape[1], options.phones)
    x, y = training_rows(clips, columns)
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-3
    z = ((x - mean) / scale).astype(np.float64)
    w = np.linalg.solve(z.T @ z + options.ridge * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return MouthModel(columns=columns, mean=mean, scale=scale, weights=w.astype(np.float32),
                      bias=float(y.mean()), features=feature_signature(),
                      trained_on=tuple(c.facts.name for c in clips))
