"""The frame pass's faces, cached by the video's content (``paths.cache``).

Users send the same presenter video again and again with new audio (a course re-voiced, one
message for several presenters): the second time, the sampled frames' faces are read back
instead of decoded and analysed again (th08, 5 s at 512x512: 0.42 s of a warm job's frame
pass). What is cached is the evidence (every sampled frame's faces, their mouth-occlusion
scores, light and the share of their lower face a hand covers, the frame size) and the frames
pictures were drawn on; the rules, the findings and their pictures are made afresh each time,
so a change of rule settings (yaw limits, face size) never needs a new entry.

Key = the file's content (:func:`heygemd.cache.content_key`) + FRAME_PASS_VERSION + what the
evidence depends on: the face analyzer's settings, the sampling settings, mediapipe's and
OpenCV's versions and the source of the code that finds the faces (heygemd/faces/*.py and
validation/examine.py, which samples the frames and scores occlusion), so a change there is
never met by old entries. A cache that cannot be read or written costs only the time: the frame
pass runs. The folder is shared with the engine's template analyses and held to one size limit
(``paths.cache_max_gb``, least recently used first: :class:`heygemd.cache.AnalysisCache`).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import structlog

from heygemd.cache import AnalysisCache, content_key
from heygemd.faces.types import N_LANDMARKS, FaceObservation, SampledFrame
from heygemd.settings import FaceSettings, ValidationSettings

log = structlog.get_logger(__name__)

FRAME_PASS_VERSION = "frame-pass-4"  # 3: HDR templates seen in SDR (media.hdr); 4: flips applied

Evidence = tuple[list[SampledFrame], tuple[int, int]]  # sampled frames, (width, height)


@functools.cache
def code_signature() -> str:
    """What the faces depend on besides settings: library versions and our own source."""
    from importlib.metadata import version

    here = Path(__file__).parent  # heygemd/validation
    digest = hashlib.blake2b(digest_size=8)
    for name in ("mediapipe", "opencv-contrib-python", "opencv-python"):
        try:
            digest.update(f"{name}={version(name)};".encode())
        except Exception:  # noqa: BLE001 - one of the OpenCV wheels is installed, not both
            continue
    for source in sorted((here.parent / "faces").glob("*.py")) + [here / "examine.py"]:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def evidence_key(path: Path, faces: FaceSettings, cfg: ValidationSettings) -> str:
    """The cache key of ``path``'s frame-pass evidence under these settings."""
    parts = [FRAME_PASS_VERSION, code_signature(), faces.model_dump(mode="json"),
             cfg.sample_fps, cfg.max_samples]
    signature = hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()
    return content_key(path, f"{FRAME_PASS_VERSION}-{signature}")


def to_arrays(samples: list[SampledFrame], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Sampled frames (their faces, occlusion scores and hand covers; the speaker is not kept:
    it is derived) -> flat arrays for an npz entry."""
    faces = [face for s in samples for face in s.faces]

    def per_face(values: Callable[[SampledFrame], list[float]]) -> np.ndarray:
        """float64, one per face: its sample's scored value, NaN for the faces not scored."""
        return np.array([values(s)[i] if i < len(values(s)) else np.nan
                         for s in samples for i in range(len(s.faces))], np.float64)

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
        "occlusion": per_face(lambda s: s.occlusions),
        "hand": per_face(lambda s: s.hand_covers),
        "light": per_face(lambda s: s.lights),
    }


def from_arrays(arrays: dict[str, np.ndarray]) -> Evidence:
    """The inverse of :func:`to_arrays`."""
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
        occlusions, hands, lights = ([float(v) for v in arrays[name][at : at + int(scored)]]
                                     for name in ("occlusion", "hand", "light"))
        samples.append(SampledFrame(int(index), faces, occlusions, hand_covers=hands,
                                    lights=lights))
        at += int(count)
    width, height = (int(v) for v in arrays["size"])
    return samples, (width, height)


class FaceCache:
    """The frame pass's evidence per video content, in an :class:`AnalysisCache` folder. Its
    methods never raise for the cache's own trouble (unreadable file, read-only or full disk):
    they log it and the frame pass runs as if there were no cache. ``max_bytes``: the folder's
    size limit, enforced after each entry kept (None: none; ``PathSettings.cache_max_bytes()``).
    """

    def __init__(self, root: Path, faces: FaceSettings, cfg: ValidationSettings,
                 max_bytes: int | None = None) -> None:
        self._cache = AnalysisCache(root, max_bytes)
        self._faces = faces
        self._cfg = cfg

    def recall(self, path: Path) -> tuple[str | None, Evidence | None]:
        """(the key of ``path``'s evidence, the evidence when cached). The key is None when the
        file cannot be read (the frame pass then says why)."""
        try:
            key = evidence_key(path, self._faces, self._cfg)
        except OSError as err:
            log.warning("facecache.unavailable", file=path.name, error=str(err))
            return None, None
        try:
            arrays = self._cache.load_arrays(key)
            return key, None if arrays is None else from_arrays(arrays)
        except (KeyError, ValueError, IndexError) as err:  # another layout: drop it
            log.warning("facecache.unreadable", file=path.name, error=str(err))
            self._forget(key)
        except OSError as err:
            log.warning("facecache.unavailable", file=path.name, error=str(err))
        return key, None

    def keep(self, key: str, evidence: Evidence) -> None:
        """Store the evidence found for ``key`` (from :meth:`recall`), then trim the folder to
        its size limit (this entry kept)."""
        try:
            self._cache.save_arrays(key, to_arrays(*evidence))
        except OSError as err:
            log.warning("facecache.unavailable", error=str(err))

    def frame(self, key: str, index: int) -> np.ndarray | None:
        """The video's frame ``index`` as kept by :meth:`keep_frame` (a picture's frame), or
        None."""
        try:
            arrays = self._cache.load_arrays(key, f"frame-{index}")
        except OSError as err:
            log.warning("facecache.unavailable", error=str(err))
            return None
        frame = None if arrays is None else arrays.get("frame")
        return frame if frame is not None and frame.ndim == 3 else None

    def keep_frame(self, key: str, index: int, frame: np.ndarray) -> None:
        """Keep a decoded frame of the video of ``key`` (the one a picture is drawn on): the
        next run draws it without decoding up to it again (th10, 1080x1920 HEVC: 1.1 s to its
        frame 167)."""
        try:
            self._cache.save_arrays(key, {"frame": frame}, f"frame-{index}")
        except OSError as err:
            log.warning("facecache.unavailable", error=str(err))

    def _forget(self, key: str) -> None:
        try:
            self._cache.drop(key)
        except OSError as err:
            log.warning("facecache.unavailable", error=str(err))
