"""The speaker-independent audio -> mouth model: what a mouth does for a sound, learned from many
speakers (heygemd.learn trains it; models/MODEL_CARD.md says on what and how well).

It reads the listen-feature columns it was trained on (the shipped one: the per-utterance
normalised log-mel and the English phone decoder's viseme classes; the log-mel carries it where
the decoder hears nothing, as in Mandarin) and answers in speaker units: the opening's
z-score over the speaker's own speech frames. The template's own speech openings turn that
into this person's opening (:func:`in_template_units`). A linear map (ridge
regression; numpy), whose weights ship inside the package.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import structlog

from heygemd.engines.builtin import audio_features as af
from heygemd.engines.builtin import phones as ph

MODEL_FILE = "mouth-v1.npz"
_BLOCK = af.N_MELS + ph.N_VISEME_CLASSES  # one context frame's columns in the listen features

log = structlog.get_logger(__name__)


def mel_columns(width: int) -> np.ndarray:
    """int (D,) indices of the log-mel columns in listen features of ``width`` columns (the
    context frames' blocks, each N_MELS mel columns then the viseme classes)."""
    blocks = width // _BLOCK
    return (np.arange(blocks)[:, None] * _BLOCK + np.arange(af.N_MELS)[None, :]).reshape(-1)


@dataclass(frozen=True)
class MouthModel:
    """opening = ((features[:, columns] - mean) / scale) . weights + bias, in speaker units.

    columns: int (D,) the listen-feature columns it reads; mean, scale, weights: float32 (D,);
    ``features``: listen.feature_signature() of the features it learned from (a model meets
    only features of that kind); ``trained_on``: the clip names it learned from.
    """

    columns: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    features: str = ""
    trained_on: tuple[str, ...] = ()

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Listen features float32 (T, FEATURE_DIM) -> float64 (T,) opening in speaker units."""
        x = features[:, self.columns].astype(np.float32)
        return (((x - self.mean) / self.scale) @ self.weights + self.bias).astype(np.float64)

    def save(self, path: Path) -> None:
        with path.open("wb") as f:
            np.savez(f, columns=self.columns, mean=self.mean, scale=self.scale,
                     weights=self.weights, bias=np.float32(self.bias),
                     features=np.array(self.features), trained_on=np.array(self.trained_on,
                                                                            dtype=str))

    @classmethod
    def load(cls, path: Path) -> MouthModel:
        with np.load(path) as z:
            return cls(
                columns=z["columns"].astype(np.int64), mean=z["mean"].astype(np.float32),
                scale=z["scale"].astype(np.float32), weights=z["weights"].astype(np.float32),
                bias=float(z["bias"]), features=str(z["features"]),
                trained_on=tuple(str(s) for s in z["trained_on"]),
            )


@functools.cache
def shipped() -> MouthModel | None:
    """The model inside the package (loaded once); None when the package has none or it was
    trained on features of another kind than listen makes now (said in the log)."""
    from heygemd.engines.builtin.listen import feature_signature

    ref = resources.files("heygemd.engines.builtin") / "models" / MODEL_FILE
    if not ref.is_file():
        return None
    with resources.as_file(ref) as path:
        model = MouthModel.load(path)
    if model.features != feature_signature():
        log.warning("mouthmodel.stale", trained_on_features=model.features,
                    features=feature_signature(),
                    hint="train it again: python -m heygemd.learn")
        return None
    return model


def in_template_units(prediction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Speaker units (T,) -> openings of the template's person: its own speech openings
    ``reference`` (M,) give the mean and spread."""
    if len(reference) < 5:
        return np.zeros(len(prediction))
    return prediction * float(reference.std()) + float(reference.mean())
