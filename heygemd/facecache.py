"""The frame pass's faces, cached by the video's content (``paths.cache``).

Users send the same presenter video again and again with new audio (a course re-voiced, one
message for several presenters): the second time, the sampled frames' faces are read back
instead of decoded and analysed again (th08, 5 s at 512x512: 0.42 s of a warm job's frame
pass). What is cached is the evidence only (every sampled frame's faces and mouth-occlusion
scores, the frame size); the rules, the findings and their pictures are made afresh each time,
so a change of rule settings (yaw limits, face size) never needs a new entry.

Key = the file's content (:func:`heygemd.cache.content_key`) + FRAME_PASS_VERSION + what the
evidence depends on: the face analyzer's settings, the sampling settings and mediapipe's
version. Bump FRAME_PASS_VERSION when face analysis, occlusion scoring or sampling changes.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from heygemd.cache import AnalysisCache, content_key
from heygemd.faces.types import N_LANDMARKS, FaceObservation
from heygemd.settings import FaceSettings, ValidationSettings

if TYPE_CHECKING:
    from heygemd.examine import SampledFrame

FRAME_PASS_VERSION = "frame-pass-1"


@functools.cache
def _mediapipe_version() -> str:
    from importlib.metadata import version

    return version("mediapipe")


def evidence_key(path: Path, faces: FaceSettings, cfg: ValidationSettings) -> str:
    """The cache key of ``path``'s frame-pass evidence under these settings."""
    parts = [FRAME_PASS_VERSION, _mediapipe_version(), faces.model_dump(mode="json"),
             cfg.sample_fps, cfg.max_samples]
    signature = hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()
    return content_key(path, f"{FRAME_PASS_VERSION}-{signature}")


def to_arrays(samples: list[SampledFrame], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Sampled frames (their faces and occlusion scores; the speaker is not kept: it is
    derived) -> flat arrays for an npz entry."""
    faces = [face for s in samples for face in s.faces]
    scores = [
        s.occlusions[i] if i < len(s.occlusions) else np.nan
        for s in samples for i in range(len(s.faces))
    ]
    return {
        "size": np.array(size, np.int64),
        "frame_index": np.array([s.frame_index for s in samples], np.int64),
        "face_count": np.array([len(s.faces) for s in samples], np.int64),
        "scored_count": np.array([len(s.occlusions) for s in samples], np.int64),
        "observed_index": np.array([f.frame_index for f in faces], np.int64),
        "box": np.array([f.box for f in faces], np.float64).reshape(-1, 4),
        "score": np.array([f.score for f in faces], np.float64),
        "pose": np.array([(f.yaw, f.pitch, f.roll) for f in faces], np.float64).reshape(-1, 3),
        "landmarks": np.array([f.landmarks for f in faces], np.float32)
        .reshape(-1, N_LANDMARKS, 3),
        "occlusion": np.array(scores, np.float64),
    }


def from_arrays(arrays: dict[str, np.ndarray]) -> tuple[list[SampledFrame], tuple[int, int]]:
    """The inverse of :func:`to_arrays`."""
    from heygemd.examine import SampledFrame

    samples, at = [], 0
    for index, count, scored in zip(
        arrays["frame_index"], arrays["face_count"], arrays["scored_count"], strict=True
    ):
        faces = [
            FaceObservation(
                frame_index=int(arrays["observed_index"][k]),
                box=tuple(float(v) for v in arrays["box"][k]),  # type: ignore[arg-type]
                score=float(arrays["score"][k]),
                landmarks=arrays["landmarks"][k],
                yaw=float(arrays["pose"][k, 0]),
                pitch=float(arrays["pose"][k, 1]),
                roll=float(arrays["pose"][k, 2]),
            )
            for k in range(at, at + int(count))
        ]
        occlusions = [float(v) for v in arrays["occlusion"][at : at + int(scored)]]
        samples.append(SampledFrame(int(index), faces, occlusions))
        at += int(count)
    width, height = (int(v) for v in arrays["size"])
    return samples, (width, height)


class FaceCache:
    """The frame pass's evidence per video content, in an :class:`AnalysisCache` folder."""

    def __init__(self, root: Path, faces: FaceSettings, cfg: ValidationSettings) -> None:
        self._cache = AnalysisCache(root)
        self._faces = faces
        self._cfg = cfg

    def key(self, path: Path) -> str:
        return evidence_key(path, self._faces, self._cfg)

    def load(self, key: str) -> tuple[list[SampledFrame], tuple[int, int]] | None:
        """The cached evidence, or None on a miss (or an entry that does not read back)."""
        arrays = self._cache.load_arrays(key)
        if arrays is None:
            return None
        try:
            return from_arrays(arrays)
        except (KeyError, ValueError, IndexError):
            self._cache.drop(key)
            return None

    def save(self, key: str, samples: list[SampledFrame], size: tuple[int, int]) -> None:
        self._cache.save_arrays(key, to_arrays(samples, size))
