"""Template analysis: per-frame face geometry, mouth shape, audio features, and mouth crops.

Computed once per template file and cached by content (heygemd.cache). The mouth crops (the
bank of real mouths) are full-resolution cut-outs of each frame's lower face, kept on disk and
memory-mapped, so memory does not grow with the template's length.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from heygemd.cache import AnalysisCache, content_key
from heygemd.engines.builtin import audio_features as af
from heygemd.engines.builtin import mesh
from heygemd.engines.builtin.listen import Heard, Listener, feature_signature

log = structlog.get_logger(__name__)

ANALYSIS_VERSION = "builtin-analysis-6"
MAX_YAW_DEG = 30.0
MAX_PITCH_DEG = 30.0
CROP_MARGIN = 1.25  # crop side = the first face's ring box side times this


@dataclass(frozen=True)
class TemplateAnalysis:
    """Everything the engine knows about a template, per frame (N frames at ``fps``).

    landmarks: float32 (N, 478, 3) full-resolution pixels, temporally smoothed, NaN without a face.
    pose: float32 (N, 3) yaw/pitch/roll degrees. usable: bool (N,) face found and not turned.
    opening: float32 (N,) inner-lip gap / inter-ocular. features: float32 (N, D) what the
    template's own audio sounds like (listen.feature_windows); speech: bool (N,).
    crop_origin: int32 (N, 2) (x0, y0) of each frame's crop; crops: uint8 (N, Hc, Wc, 3).
    """

    fps: float
    width: int
    height: int
    landmarks: np.ndarray
    pose: np.ndarray
    usable: np.ndarray
    opening: np.ndarray
    features: np.ndarray
    speech: np.ndarray
    crop_origin: np.ndarray
    crops: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.usable)

    def arrays(self) -> dict[str, np.ndarray]:
        """The small arrays, for the cache."""
        meta = np.array([self.fps, self.width, self.height], dtype=np.float64)
        return {
            "meta": meta, "landmarks": self.landmarks, "pose": self.pose, "usable": self.usable,
            "opening": self.opening, "features": self.features, "speech": self.speech,
            "crop_origin": self.crop_origin,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], crops: np.ndarray) -> TemplateAnalysis:
        fps, width, height = arrays["meta"].tolist()
        return cls(
            fps=float(fps), width=int(width), height=int(height), landmarks=arrays["landmarks"],
            pose=arrays["pose"], usable=arrays["usable"].astype(bool), opening=arrays["opening"],
            features=arrays["features"], speech=arrays["speech"].astype(bool),
            crop_origin=arrays["crop_origin"], crops=crops,
        )


def crop_origin_for(
    center: np.ndarray, side: tuple[int, int], width: int, height: int
) -> np.ndarray:
    """Top-left corner (x0, y0) of a (h, w) crop centred on ``center``, kept inside the frame."""
    h, w = side
    x0 = int(np.clip(round(center[0] - w / 2), 0, max(width - w, 0)))
    y0 = int(np.clip(round(center[1] - h / 2), 0, max(height - h, 0)))
    return np.array([x0, y0], dtype=np.int32)


def crop_side(landmarks: np.ndarray, width: int, height: int) -> tuple[int, int]:
    """Square crop (side, side) for a template from one face's landmarks (478, 3): even, within
    the frame."""
    ring = mesh.ring_points(landmarks)
    span = float((ring.max(axis=0) - ring.min(axis=0)).max()) * CROP_MARGIN
    side = min(width, height, int(np.ceil(span / 2)) * 2)
    return side, side


def _hear_template(
    path: Path, has_audio: bool, fps: float, count: int, listener: Listener
) -> Heard:
    """What the template's own audio track says, frame by frame (silence without one)."""
    from heygemd.media.audio import load_audio

    if not has_audio:
        return Heard.silence(count)
    return listener.hear(load_audio(path, rate=af.RATE, mono=True), fps, count)


def _face_arrays(faces: list[Any], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(landmarks (478, 3) in full-res pixels or NaN, pose (3,)) of the largest face."""
    if not faces:
        return np.full((478, 3), np.nan, np.float32), np.full(3, np.nan, np.float32)
    face = faces[0]
    points = np.asarray(face.landmarks, dtype=np.float32) / scale
    return points, np.array([face.yaw, face.pitch, face.roll], dtype=np.float32)


def analyse_template(
    path: Path,
    analyzer: Any,
    listener: Listener,
    cache: AnalysisCache,
    scale: float,
    progress: Callable[[float], None],
) -> tuple[TemplateAnalysis, bool]:
    """Analyse ``path`` (or load it from ``cache``). Returns (analysis, was_cached).

    analyzer: a tracking heygemd.faces.FaceAnalyzer; progress gets 0..1 of this analysis.
    """
    key = content_key(path, f"{ANALYSIS_VERSION}-{feature_signature()}-scale{scale:.3f}")
    arrays = cache.load_arrays(key)
    crops = cache.load_big(key, "crops") if arrays is not None else None
    if arrays is not None and crops is not None:
        log.info("template.cache_hit", template=path.name, key=key[:12])
        return TemplateAnalysis.from_arrays(arrays, crops), True
    t0 = time.monotonic()
    analysis = _analyse(path, analyzer, listener, cache, key, scale, progress)
    cache.save_arrays(key, analysis.arrays())
    log.info(
        "template.analysed", template=path.name, frames=analysis.n_frames,
        usable=int(analysis.usable.sum()), duration_ms=round((time.monotonic() - t0) * 1000, 1),
    )
    return analysis, False


def _analyse(
    path: Path,
    analyzer: Any,
    listener: Listener,
    cache: AnalysisCache,
    key: str,
    scale: float,
    progress: Callable[[float], None],
) -> TemplateAnalysis:
    import cv2

    from heygemd.media.video import VideoReader

    with VideoReader(path) as reader:
        width, height, fps = reader.width, reader.height, reader.fps
        capacity = reader.frame_count + 8
        small_size = (max(2, round(width * scale)), max(2, round(height * scale)))
        raw_landmarks, poses, origins = [], [], []
        entry: Any = None
        side: tuple[int, int] | None = None
        last_report = time.monotonic()
        try:
            for index, frame in enumerate(reader):
                if index >= capacity:
                    break
                small = frame if scale == 1.0 else cv2.resize(
                    frame, small_size, interpolation=cv2.INTER_AREA
                )
                points, pose = _face_arrays(analyzer.analyze(small, index), scale)
                raw_landmarks.append(points)
                poses.append(pose)
                if side is None and not np.isnan(points).any():
                    side = crop_side(points, width, height)
                    entry = cache.big_writer(key, "crops", (capacity, side[0], side[1], 3))
                origin = np.zeros(2, np.int32)
                if side is not None and not np.isnan(points).any():
                    origin = crop_origin_for(mesh.ring_center(points), side, width, height)
                    entry.array[index] = frame[origin[1] : origin[1] + side[0],
                                               origin[0] : origin[0] + side[1]]
                origins.append(origin)
                if time.monotonic() - last_report > 0.5:
                    progress(min(index / max(capacity, 1), 0.99))
                    last_report = time.monotonic()
        except BaseException:
            if entry is not None:
                entry.discard()
            raise
        has_audio = reader.info.has_audio
    if entry is None:
        from heygemd.errors import InputRejected

        raise InputRejected(
            f"No face was found in any frame of {path.name}; use a video showing one face.",
            code="no_face",
        )
    return _finish(path, has_audio, fps, width, height, raw_landmarks, poses, origins,
                   entry.commit(), listener)


def _finish(
    path: Path,
    has_audio: bool,
    fps: float,
    width: int,
    height: int,
    raw_landmarks: list[np.ndarray],
    poses: list[np.ndarray],
    origins: list[np.ndarray],
    crops: np.ndarray,
    listener: Listener,
) -> TemplateAnalysis:
    from heygemd.faces.geometry import mouth_opening, smooth_sequence

    raw = np.stack(raw_landmarks)
    pose = np.stack(poses)
    found = ~np.isnan(raw).any(axis=(1, 2))
    usable = found & (np.abs(pose[:, 0]) <= MAX_YAW_DEG) & (np.abs(pose[:, 1]) <= MAX_PITCH_DEG)
    opening = np.array(
        [mouth_opening(p) if ok else np.nan for p, ok in zip(raw, found, strict=True)],
        dtype=np.float32,
    )
    smooth = smooth_sequence(raw, fps).astype(np.float32)
    heard = _hear_template(path, has_audio, fps, len(raw), listener)
    return TemplateAnalysis(
        fps=fps, width=width, height=height, landmarks=smooth, pose=pose, usable=usable,
        opening=opening, features=heard.features.copy(), speech=heard.speech.copy(),
        crop_origin=np.stack(origins), crops=crops,
    )
