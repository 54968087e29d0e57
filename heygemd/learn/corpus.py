"""The clips a mouth model learns from and is judged on: who speaks in each, in what language,
under what licence, and what the builtin engine's analysis measured in it.

A clip's facts come from the MANIFEST.md beside it (the media folders' tables). What a clip
holds for learning is :class:`ClipData`: per video frame, the template analysis's audio
features, mouth opening, and which frames are usable speech. Extracting it is the one I/O
function here (:func:`extract`); the rest is pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Licences under which a clip may train a model we ship (MIT, Apache-2.0, CC-BY): the licence
# cell must open with one. A cell that also restricts the footage itself (research-only terms,
# third-party parts excepted from the repository's licence) is not enough.
SHIPPABLE = re.compile(r"^(MIT|Apache-2\.0|CC-BY(?:-\d\.\d)?)\b")
RESTRICTED = re.compile(r"research[- ]only|non-commercial|third-party parts excepted",
                        re.IGNORECASE)


@dataclass(frozen=True)
class ClipFacts:
    """One clip as its manifest describes it."""

    path: Path
    speaker: str
    language: str  # en | zh | other
    licence: str  # the manifest's licence words

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def trainable(self) -> bool:
        """Whether a model we ship may learn from this clip."""
        return bool(SHIPPABLE.match(self.licence)) and not RESTRICTED.search(self.licence)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def read_manifest(manifest: Path, folder: Path) -> list[ClipFacts]:
    """The clips listed in ``manifest`` (a MANIFEST.md) that exist in ``folder``, in name order.

    Two table shapes are understood: the corpus's (file | source | licence | speaker id | lang
    | ...) and the shared talking clips' (file | source (repo : path, licence) | ... | notes,
    where the language is named in the notes and each clip is its own speaker).
    """
    text = manifest.read_text(encoding="utf-8")
    facts: list[ClipFacts] = []
    header: list[str] = []
    for line in text.splitlines():
        if not line.startswith("|"):
            header = [] if not line.strip() else header
            continue
        cells = _cells(line)
        if cells and cells[0] == "file":
            header = [c.lower() for c in cells]
            continue
        if not header or set(cells[0]) <= {"-", ":"} or not (folder / cells[0]).is_file():
            continue
        row = dict(zip(header, cells, strict=False))
        facts.append(_facts_of(folder / cells[0], row))
    return sorted(facts, key=lambda f: f.name)


def _facts_of(path: Path, row: dict[str, str]) -> ClipFacts:
    if "speaker id" in row:
        return ClipFacts(path=path, speaker=row["speaker id"], language=row.get("lang", "other"),
                         licence=row.get("licence (repo license)", row.get("licence", "")))
    source = next((v for k, v in row.items() if k.startswith("source")), "")
    licence = source[source.rfind("(") + 1 : source.rfind(")")] if "(" in source else ""
    notes = row.get("notes", "").lower()
    language = "zh" if "mandarin" in notes or "chinese" in notes else \
        "en" if "english" in notes else "other"
    return ClipFacts(path=path, speaker=path.stem, language=language, licence=licence)


def corpus_clips(media: Path) -> list[ClipFacts]:
    """Every clip of ``media``/talking (listed in ``media``/MANIFEST.md) and ``media``/corpus
    (its own MANIFEST.md), with its facts; a folder or manifest that is not there adds none."""
    places = [(media / "MANIFEST.md", media / "talking"),
              (media / "corpus" / "MANIFEST.md", media / "corpus")]
    return [f for manifest, folder in places if manifest.is_file() and folder.is_dir()
            for f in read_manifest(manifest, folder)]


@dataclass(frozen=True)
class ClipData:
    """What one clip holds for learning, per video frame (T rows) at ``fps``.

    features: float32 (T, D) the template analysis's audio features (listen.feature_windows);
    opening: float32 (T,) inner-lip gap / inter-ocular (NaN without a face); usable: bool (T,)
    a face found and not turned; speech: bool (T,).
    """

    facts: ClipFacts
    fps: float
    features: np.ndarray
    opening: np.ndarray
    usable: np.ndarray
    speech: np.ndarray

    @property
    def spoken(self) -> np.ndarray:
        """bool (T,): usable frames with speech and a measured opening (what a model learns)."""
        return self.usable & self.speech & np.isfinite(self.opening)


def from_analysis(facts: ClipFacts, analysis: Any) -> ClipData:
    """ClipData from a builtin TemplateAnalysis of the whole clip."""
    return ClipData(
        facts=facts, fps=float(analysis.fps), features=np.asarray(analysis.features, np.float32),
        opening=np.asarray(analysis.opening, np.float32),
        usable=np.asarray(analysis.usable, bool), speech=np.asarray(analysis.speech, bool),
    )


def analysing_engine(settings: Any) -> Any:
    """The builtin engine as ``settings`` (heygemd.settings.Settings) make it, for analysis
    only: without the shipped mouth model (what is being trained or judged)."""
    from heygemd.engines.base import create_engine, resolve_device

    builtin = settings.engine.builtin.model_copy(update={"speaker_model": False})
    engine_settings = settings.engine.model_copy(update={"builtin": builtin})
    return create_engine(engine_settings, settings.faces, settings.paths, resolve_device("cpu"))


def extract(clips: list[ClipFacts], engine: Any) -> list[ClipData]:
    """Analyse each whole clip with the builtin ``engine`` (cached by content) -> ClipData."""
    return [from_analysis(facts, engine.analysis_of(facts.path)) for facts in clips]
