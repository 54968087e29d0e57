"""Audio features -> target mouth opening per output frame.

Two mappings: a kernel ridge regression fitted per template on its own paired audio and mouth
data (seconds of speech: a fraction of a second on a CPU; its features include the decoded
phones' viseme classes), and the speaker-independent phone prior (phones.py) for templates with
too little speech to fit on. How much the regression is trusted is measured on a held-out tail
of the template itself (a reported metric). The regression's output is given the template's own
speech-opening spread (regression shrinks it). Silence and b/p/m close the mouth; the mouth
leads the sound by ``lead_frames``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Kernel ridge regression with a Gaussian kernel, exp(-gamma |a - b|^2), gamma = KERNEL_WIDTH /
# the median squared distance between training rows; a template gives 50-250 speech frames
# against 477 feature columns. Plan r against the truth (five shared clips, template = first
# 60/50/70% of each) is 0.514/0.362/0.455, voiced frames 0.555/0.440/0.543, against a linear
# ridge's (lambda 1000) 0.508/0.343/0.435 and 0.530/0.405/0.458; this pair has the best mean of
# the splits within width 0.5-2 and lambda 0.3-3.
KERNEL_WIDTH = 1.0
KERNEL_LAMBDA = 1.0
# Rows the kernel is fitted on at most (evenly strided beyond): the solve is cubic in rows.
# 2000 rows are 80 s of speech at 25 fps: 0.4 s to fit on 2 cores, 32 MB of kernel (~80 MB
# at the peak, with the solver's copy).
MAX_KERNEL_ROWS = 2000
PREDICT_CHUNK = 2048  # new-audio rows per kernel block while predicting
HOLDOUT = 0.3  # tail share of the template used to measure the regression's reliability
# The regression alone gives plan r 0.488 against the truth on the five shared clips (template =
# first 60%, linear ridge), against 0.477 mixed 0.95/0.05 with the phone prior and 0.44 at
# 0.85/0.15. The phone prior stays for templates without enough speech to fit on, and its b/p/m
# closures always apply.
REGRESSION_WEIGHT = 1.0
# The speaking mouth is given more than the template's own speech spread: the closed pauses
# (below) sit at the far end of the opening range while the real speaker's pauses rest mid-range,
# and a livelier speaking mouth keeps them from dominating the track. 1.5: plan r 0.444 against
# the truth on the five shared clips (mean of three template splits), against 0.431 at 1.25 and
# 0.438 at 2.0.
SPREAD_GAIN = 1.5
CLOSED_OPENING = 0.05  # inner-lip gap / inter-ocular below this: lips closed (ENGINE-NOTES 6)
# Pauses aim at the template's closed end. Real speakers pause with parted lips (ENGINE-NOTES 6;
# in the shared clips' ground truth no silent frame of th02, th05 or th08 is closed), so closing
# them costs r against the truth: on four clips (linear ridge) plan r is 0.438 with 0.93 of the
# rendered silent frames closed, where pauses aimed at a looser 0.03 give 0.480 but 0.69 closed.


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, D), (M, D) float64 -> (N, M) squared Euclidean distances (never negative)."""
    d2 = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d2, 0.0)


@dataclass(frozen=True)
class KernelModel:
    """y = sum_i coef_i exp(-gamma |x - rows_i|^2) + bias. rows: float64 (N, D); coef: (N,)."""

    rows: np.ndarray
    coef: np.ndarray
    gamma: float
    bias: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(T, D) -> float64 (T,)."""
        x = features.astype(np.float64)
        out = np.empty(len(x))
        for start in range(0, len(x), PREDICT_CHUNK):
            block = x[start : start + PREDICT_CHUNK]
            out[start : start + len(block)] = \
                np.exp(-self.gamma * _squared_distances(block, self.rows)) @ self.coef
        return out + self.bias


def fit_kernel(
    features: np.ndarray,
    targets: np.ndarray,
    lam: float = KERNEL_LAMBDA,
    width: float = KERNEL_WIDTH,
    max_rows: int = MAX_KERNEL_ROWS,
) -> KernelModel:
    """Closed-form kernel ridge regression of targets (N,) on features (N, D).

    Rows with a non-finite feature or target are left out; more than ``max_rows`` rows are
    thinned to ``max_rows`` evenly spaced ones (the solve is cubic in rows). The kernel width
    comes from the median of the positive squared distances between rows (1.0 when all rows
    are the same). With no rows the model predicts 0.
    """
    x = features.astype(np.float64)
    y = targets.astype(np.float64).reshape(-1)
    finite = np.isfinite(x).all(axis=1) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if len(x) > max_rows:
        keep = np.linspace(0, len(x) - 1, max_rows).round().astype(int)
        x, y = x[keep], y[keep]
    if len(x) == 0:
        return KernelModel(rows=x, coef=np.zeros(0), gamma=1.0, bias=0.0)
    kernel = _squared_distances(x, x)
    pairs = kernel[np.triu_indices(len(x), 1)]
    pairs = pairs[pairs > 1e-12]
    gamma = width / float(np.median(pairs)) if len(pairs) else 1.0
    np.multiply(kernel, -gamma, out=kernel)
    np.exp(kernel, out=kernel)
    kernel[np.diag_indices(len(x))] += lam
    bias = float(y.mean())
    coef = np.linalg.solve(kernel, y - bias)
    return KernelModel(rows=x, coef=coef, gamma=gamma, bias=bias)


# The template's own regression and the speaker-independent model (mouthmodel.py) are averaged;
# the template's share grows with its speech: n / (n + TEMPLATE_HALF) of usable speech frames.
# Leave-one-speaker-out plan r over 51 clips (templates at 50/60/70%, lead 0): 0.386 at 50
# (paired gain over the template's fit alone +0.037, 95% interval 0.018-0.059), 0.383 at 30
# and 100, 0.317 with the learned model alone, 0.349 with the template's fit alone.
TEMPLATE_HALF = 50.0


def template_weight(speech_frames: int) -> float:
    """The per-template regression's share (0..1) beside the speaker-independent model."""
    return float(speech_frames / (speech_frames + TEMPLATE_HALF))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two (T,) series; 0.0 when either is constant or too short."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) < 3 or a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def holdout_reliability(features: np.ndarray, opening: np.ndarray, valid: np.ndarray) -> float:
    """r of a regression fitted on the head of the ``valid`` frames (planning passes the usable
    speech frames), tested on their tail."""
    idx = np.flatnonzero(valid)
    if len(idx) < 40:
        return 0.0
    cut = int(len(idx) * (1 - HOLDOUT))
    head, tail = idx[:cut], idx[cut:]
    model = fit_kernel(features[head], opening[head])
    return pearson(model.predict(features[tail]), opening[tail])


@dataclass(frozen=True)
class OpeningScale:
    """The template's opening range (inner-lip gap / inter-ocular distance)."""

    closed: float  # low percentile: lips together
    open: float  # high percentile of speech frames: wide open


def opening_scale(opening: np.ndarray, valid: np.ndarray, speech: np.ndarray) -> OpeningScale:
    """Template opening range from its valid frames (speech frames for the open end)."""
    values = opening[valid]
    if len(values) == 0:
        return OpeningScale(closed=0.0, open=0.2)
    spoken = opening[valid & speech]
    spoken = spoken if len(spoken) >= 5 else values
    closed = float(np.percentile(values, 3))
    return OpeningScale(closed=closed, open=max(float(np.percentile(spoken, 95)), closed + 1e-3))


def match_spread(
    prediction: np.ndarray, speech: np.ndarray, reference: np.ndarray, gain: float = SPREAD_GAIN
) -> np.ndarray:
    """Rescale a regression's output (T,) so that over the speech frames (bool (T,)) it has the
    mean of ``reference`` (the template's own speech openings, (M,)) and ``gain`` times its
    spread.

    Regression output is shrunk towards the mean; left so, the speaking mouth barely moves next to
    the closed pauses and the selection follows the template's runs instead of the audio.
    Rescaled, plan r on the five shared clips is 0.43 against 0.32 (linear ridge), higher on
    every clip.
    """
    rows = prediction[speech] if int(speech.sum()) >= 5 else prediction
    spread = float(rows.std()) if len(rows) else 0.0
    if len(reference) == 0 or spread < 1e-9:
        return prediction
    scaled = (prediction - rows.mean()) / spread * float(reference.std()) * gain \
        + float(reference.mean())
    return scaled.astype(np.float64)


@dataclass(frozen=True)
class Target:
    """Per output frame: opening float32 (T,) in template opening units; closed bool (T,):
    the mouth is meant to be closed there (a pause, led by the lead; a b/p/m, from the lead
    before its sound through its end)."""

    opening: np.ndarray
    closed: np.ndarray


def combine_targets(
    regression_opening: np.ndarray,
    phone_opening: np.ndarray,
    regression_weight: float,
    speech: np.ndarray,
    closed_lips: np.ndarray,
    scale: OpeningScale,
    lead_frames: int,
) -> Target:
    """Target mouth per output frame (T rows).

    regression_opening: regression output (T,); phone_opening: prior in [0, 1] (T,);
    regression_weight: the regression's share (the phone prior gets the rest); speech /
    closed_lips: bool (T,). Pauses and b/p/m aim at the template's closed end, ``lead_frames``
    ahead of the sound; a b/p/m's lips stay closed through it as well (in the shared clips' truth
    they close for two frames; shifted ahead alone, the closure leaves the mouth open where the
    sound is): plan r against the truth over three template splits 0.534/0.374/0.455, against
    0.514/0.362/0.455 with the shift alone.
    """
    w = float(np.clip(regression_weight, 0.0, 1.0))
    phone = scale.closed + phone_opening * (scale.open - scale.closed)
    fitted = np.clip(regression_opening, scale.closed, scale.open)
    target = w * fitted + (1 - w) * phone
    closed = ~speech | closed_lips
    target = np.where(closed, scale.closed, target)
    if lead_frames > 0 and len(target) > 1:
        target = np.concatenate([target[lead_frames:], np.repeat(target[-1:], lead_frames)])
        closed = np.concatenate([closed[lead_frames:], np.repeat(closed[-1:], lead_frames)])
    n = len(regression_opening)
    target, closed = target[:n], closed[:n]
    if lead_frames > 0:
        target = np.where(closed_lips[: len(target)], scale.closed, target)
        closed = closed | closed_lips[: len(closed)]
    return Target(opening=target.astype(np.float32), closed=closed)


def lead_frames_for(lead_ms: float, fps: float) -> int:
    """How many whole frames the mouth leads the sound."""
    return max(0, int(round(lead_ms / 1000.0 * fps)))
