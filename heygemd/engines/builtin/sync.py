"""A template's own sound against its picture.

The per-template regression (motion.fit_kernel) learns which mouth goes with which sound from
the template's own frames. When the template's sound is out of step with its picture (a camera
and a separate microphone, a Bluetooth headset, a screen recorder), it learns the mouth of a
moment before or after each sound, and the output's mouth follows the new audio blurred and out
of time: in the leave-one-speaker-out corpus evaluation, a template whose sound is
120 ms late takes plan r from 0.400 to 0.256, 200 ms late to 0.226 (allowed for as below:
0.267 and 0.276; 200 ms early 0.219 -> 0.285, 320 ms late 0.246 -> 0.305).

The speaker-independent model (mouthmodel.py) never saw this template, so its mouth for the
template's sound is in step with the sound. The lag at which that mouth matches the template's
measured mouth best is the template's offset. A short template gives a noisy lag, and ordinary
footage scatters by a few frames around the model's timing, so the offset is only allowed for
(the template's sound moved into step before the regression is fitted) when it is large
(MIN_OFFSET_MS), found in each half of the template alike, and clearly better matched than no
offset at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Searched either way (rounded to whole frames: 320 ms at 25 fps, 333 ms at 30).
MAX_OFFSET_MS = 320.0
# Smaller offsets are left alone: well-made footage scatters by up to about three frames at
# 25 fps around the model's timing (the corpus's long clips; b/p/m closures in the sound
# against closed lips agree), and a lag found on a few seconds of speech is noisy.
MIN_OFFSET_MS = 150.0
# Each half of the template's speech finds its own best lag within this many frames of the
# whole's. Leave-one-speaker-out (heygemd eval --corpus --late-templates), templates in step:
# without this rule 28 of 153 template splits were moved (short templates, by chance) and plan
# r fell 0.400 -> 0.393; with it 12 were, and it rose to 0.405. Templates made 200-320 ms out of
# step regain more without it (+0.08-0.10 against +0.05-0.07), but in step is the usual case.
HALF_AGREEMENT_FRAMES = 2
# r at the offset over r in step. Between 0 and 0.2 it moved the plan r above by at most 0.003
# at any offset: the halves rule does the work; this one keeps a mouth that repeats (a lag as
# good as none) in place.
MIN_GAIN = 0.1
MIN_PAIRS = 10  # paired frames a lag needs to be scored at all (fewer: no r)


@dataclass(frozen=True)
class TemplateSync:
    """What was found: ``frames`` > 0 when the template's sound is late against its picture
    (heard at frame t is what was said at t - frames); ``corrected``: whether planning allows
    for it; r of the model's mouth against the template's at that lag and in step (NaN when
    there was too little speech to tell); ``at_limit``: the lag found is the largest searched
    (MAX_OFFSET_MS), so the sound may be further out than that."""

    frames: int
    corrected: bool
    r_at_offset: float
    r_in_step: float
    at_limit: bool = False

    def ms(self, fps: float) -> float:
        """The offset in milliseconds at ``fps`` (> 0)."""
        return round(self.frames / fps * 1000.0, 1)


NOT_FOUND = TemplateSync(frames=0, corrected=False, r_at_offset=math.nan, r_in_step=math.nan)


def lag_scores(predicted: np.ndarray, opening: np.ndarray, heard: np.ndarray,
               seen: np.ndarray, max_lag: int) -> np.ndarray:
    """float64 (2 * max_lag + 1,): for lag -max_lag..max_lag, Pearson r of predicted[t + lag]
    against opening[t] over the frames t where ``seen`` (bool (T,): a measured mouth) and
    ``heard``[t + lag] (bool (T,): speech) hold; NaN where fewer than MIN_PAIRS pairs or a
    constant side."""
    n = len(opening)
    t_all = np.arange(n)
    out = np.full(2 * max_lag + 1, np.nan)
    for i, lag in enumerate(range(-max_lag, max_lag + 1)):
        t = t_all[(t_all + lag >= 0) & (t_all + lag < n)]
        t = t[seen[t] & heard[t + lag]]
        if len(t) < MIN_PAIRS:
            continue
        a, b = predicted[t + lag], opening[t]
        if a.std() < 1e-9 or b.std() < 1e-9:
            continue
        out[i] = float(np.corrcoef(a, b)[0, 1])
    return out


def _best(scores: np.ndarray, max_lag: int) -> int | None:
    return None if np.isnan(scores).all() else int(np.nanargmax(scores)) - max_lag


def find_offset(predicted: np.ndarray, opening: np.ndarray, speech: np.ndarray,
                seen: np.ndarray, fps: float) -> TemplateSync:
    """The template's offset from the speaker-independent model's mouth for its sound
    (``predicted``, float (T,)), its measured opening (float (T,), NaN where not measured), its
    speech (bool (T,)) and the frames with a measured mouth (bool (T,)), at ``fps`` (> 0).
    The halves are those of its spoken frames (a template that talks, then listens, has both
    in its first part)."""
    max_lag = max(1, int(round(MAX_OFFSET_MS / 1000.0 * fps)))
    opening = np.nan_to_num(opening.astype(np.float64))
    scores = lag_scores(predicted, opening, speech, seen, max_lag)
    lag = _best(scores, max_lag)
    if lag is None:
        return NOT_FOUND
    r_at, r_in = float(scores[lag + max_lag]), float(scores[max_lag])
    spoken = np.flatnonzero(speech & seen)
    half = int(spoken[len(spoken) // 2])
    halves = [_best(lag_scores(predicted[part], opening[part], speech[part], seen[part],
                               max_lag), max_lag)
              for part in (slice(0, half), slice(half, None))]
    large = abs(lag) / fps * 1000.0 >= MIN_OFFSET_MS
    agreed = all(h is not None and abs(h - lag) <= HALF_AGREEMENT_FRAMES for h in halves)
    clearer = not math.isnan(r_in) and r_at - r_in >= MIN_GAIN
    return TemplateSync(frames=lag, corrected=large and agreed and clearer,
                        r_at_offset=round(r_at, 4), r_in_step=round(r_in, 4),
                        at_limit=abs(lag) == max_lag)


def in_step(features: np.ndarray, speech: np.ndarray, frames: int) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """The template's sound moved ``frames`` earlier (features (T, D), speech bool (T,)): row t
    now holds what was row t + frames, and frames whose sound falls outside the template hear
    no speech."""
    n = len(speech)
    t = np.arange(n)
    source = np.clip(t + frames, 0, max(n - 1, 0))
    inside = (t + frames >= 0) & (t + frames < n)
    return features[source], speech[source] & inside


def allowed_for(predicted: np.ndarray, features: np.ndarray, speech: np.ndarray,
                opening: np.ndarray, seen: np.ndarray, fps: float
                ) -> tuple[TemplateSync, np.ndarray, np.ndarray]:
    """The template's offset (:func:`find_offset`) and its sound's features and speech, moved
    into step where the offset is allowed for (else the arrays given)."""
    found = find_offset(predicted, opening, speech, seen, fps)
    if not found.corrected:
        return found, features, speech
    moved, heard = in_step(features, speech, found.frames)
    return found, moved, heard
