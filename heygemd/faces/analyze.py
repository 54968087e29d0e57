"""Face analysis on RGB frames: mediapipe full-range detection + face mesh on a crop per face.

The detector runs on the whole frame; where that finds nothing, mediapipe's short-range model
looks at the whole frame (a face filling the frame, cut by its edges, as in tight 512x512
crops: the full-range model missed such plain frontal faces in 1 frame of 20 on c07, the
short-range one found them all), then the full-range model on overlapping
tiles, and a box too small for its size to be trusted is measured again on a zoomed square
(:mod:`heygemd.faces.search`: the detector sees the frame at 192x192 and misses faces under
about 8% of a frame's height, or reports them up to twice too big). FaceMesh then runs on a
square crop around each detected box, resized so the face is about FACE_PX pixels wide
(FaceMesh's own short-range detector misses small or tilted faces on a whole frame). The 478
landmarks are mapped back to frame pixels, and head pose comes from
:func:`heygemd.faces.geometry.head_pose`.

mediapipe is imported when a FaceAnalyzer is built, never at module import.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np
import structlog

from heygemd.closing import Closing
from heygemd.errors import ProcessingError
from heygemd.faces.geometry import head_pose
from heygemd.faces.search import (
    Box,
    Square,
    is_small,
    merge_boxes,
    pick_in,
    tile_squares,
    zoom_square,
)
from heygemd.faces.types import N_LANDMARKS, FaceObservation
from heygemd.settings import FaceSettings

log = structlog.get_logger(__name__)

FACE_PX = 256  # detector-box width the mesh crop is resized to, pixels
MIN_BOX_PX = 8.0  # detections smaller than this (either side, pixels) are noise
REDETECT_EVERY = 10  # tracking mode: run the full-frame detector at least this often (frames)
# A followed face whose mesh is lost (and that the detectors miss) is tried once more on a crop
# this many box sides wide: on a 524x524 clip with glasses, 3-frame motion blurs and a hand
# passing over the mouth, the mesh held there on 7 of 121 frames that the usual crop lost.
RETRY_CROP_SCALE = 2.6


def _check_frame(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected uint8 (H, W, 3) RGB, got {frame.dtype} {frame.shape}")
    return np.ascontiguousarray(frame)


def square_crop_box(box: Box, scale: float) -> tuple[int, int, int]:
    """Square crop (x0, y0, side) in pixels around a box: its longer side times scale.

    May extend beyond the frame; :func:`crop_square` pads that part with black.
    """
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(int(round(max(box[2] - box[0], box[3] - box[1]) * scale)), 2)
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def crop_square(frame: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """uint8 (side, side, 3) crop of frame at (x0, y0); parts outside the frame are black."""
    h, w = frame.shape[:2]
    out = np.zeros((side, side, 3), dtype=np.uint8)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side, w), min(y0 + side, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    return out


def landmark_box(landmarks: np.ndarray) -> Box:
    """(x0, y0, x1, y1) extent of (478, 2+) landmarks, pixels."""
    x0, y0 = landmarks[:, :2].min(axis=0)
    x1, y1 = landmarks[:, :2].max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def _clip_box(box: Box, width: int, height: int) -> Box:
    return (
        float(np.clip(box[0], 0, width)),
        float(np.clip(box[1], 0, height)),
        float(np.clip(box[2], 0, width)),
        float(np.clip(box[3], 0, height)),
    )


def box_relative_to(box: Box, ref: Box) -> Box:
    """box expressed in the unit frame of ref (ref's x0, y0 -> 0, 0; x1, y1 -> 1, 1)."""
    rw, rh = max(ref[2] - ref[0], 1e-6), max(ref[3] - ref[1], 1e-6)
    return (
        (box[0] - ref[0]) / rw,
        (box[1] - ref[1]) / rh,
        (box[2] - ref[0]) / rw,
        (box[3] - ref[1]) / rh,
    )


def box_from_relative(rel: Box, ref: Box) -> Box:
    """Inverse of :func:`box_relative_to`."""
    rw, rh = ref[2] - ref[0], ref[3] - ref[1]
    return (ref[0] + rel[0] * rw, ref[1] + rel[1] * rh, ref[0] + rel[2] * rw, ref[1] + rel[3] * rh)


class _Track:
    """Tracking mode's memory of one face: where the detector box sits on the landmark box."""

    def __init__(self, rel_box: Box, score: float, landmarks: np.ndarray) -> None:
        self.rel_box = rel_box
        self.score = score
        self.landmarks = landmarks

    def predicted_box(self) -> Box:
        return box_from_relative(self.rel_box, landmark_box(self.landmarks))


class FaceAnalyzer(Closing):
    """Finds faces and their 478 landmarks in RGB frames. Build once, reuse for every frame.

    tracking=False (validation, sampled frames): every frame is analysed from scratch.
    tracking=True (engines, every frame of a video in order): after a detection, the next frames
    mesh a crop around the previous frame's landmarks and skip the full-frame detector; it runs
    again every ``redetect_every`` frames, when a mesh is lost, or when frame indices jump.
    The detector re-seeds the faces followed, it does not judge them: where it finds nothing
    in a frame following faces, their meshes are tried there (a lost one once more on a crop
    RETRY_CROP_SCALE wide) and kept if they hold. New faces therefore appear at the next
    re-detection. Boxes of tracked frames are placed on the landmarks the way the detector
    placed them at the last detection; scores are carried.
    """

    def __init__(
        self,
        cfg: FaceSettings,
        tracking: bool = False,
        redetect_every: int = REDETECT_EVERY,
    ) -> None:
        import mediapipe as mp  # heavy: loaded only when an analyzer is built

        self.cfg = cfg
        self.tracking = tracking
        self.redetect_every = max(int(redetect_every), 1)
        self._detector: Any = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=cfg.detector_confidence
        )
        # the second try where the full-range model finds nothing: faces that fill the frame
        self._near: Any = mp.solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=cfg.detector_confidence
        )
        self._mesh: Any = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            refine_landmarks=True,
            max_num_faces=1,
            min_detection_confidence=cfg.mesh_confidence,
        )
        self._tracks: list[_Track] = []
        self._last_index: int | None = None
        self._since_detect = 0
        # whether the last analyze() answer came from its frame alone, not from faces followed
        self.was_fresh = True
        log.debug("faces.analyzer_ready", tracking=tracking)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Release the mediapipe graphs. Idempotent."""
        for graph in (self._detector, self._near, self._mesh):
            if graph is not None:
                graph.close()
        self._detector = None
        self._near = None
        self._mesh = None

    # -- public ----------------------------------------------------------------------------
    def analyze(self, frame: np.ndarray, frame_index: int) -> list[FaceObservation]:
        """Every face in frame (uint8 (H, W, 3) RGB), largest box first (the likely speaker)."""
        if self._detector is None:
            raise ProcessingError("FaceAnalyzer used after close()")
        frame = _check_frame(frame)
        self.was_fresh = True
        if not self.tracking:
            return self._detect_faces(frame, frame_index)
        follows = self._follows(frame_index)
        meshed = follows and self._since_detect < self.redetect_every
        if meshed:
            faces = self._track_faces(frame, frame_index)
            if faces is not None:
                self.was_fresh = False
                return faces
        faces = self._detect_faces(frame, frame_index)
        if not faces and follows:
            # the detector is the re-seed, not the judge: where it misses a face the mesh still
            # follows (close-ups cut by the frame's edge, glasses), the face is kept
            scales = (RETRY_CROP_SCALE,) if meshed else (None, RETRY_CROP_SCALE)
            kept = self._track_faces(frame, frame_index, scales)
            if kept is not None:
                self.was_fresh = False
                self._since_detect = 1  # try the detector again after a full period
                return kept
        self._remember(faces, frame_index)
        return faces

    def analyze_many(self, frames: Iterable[tuple[int, np.ndarray]]) -> list[list[FaceObservation]]:
        """analyze() over (frame_index, frame) pairs, in order; logs the rate at debug level."""
        start = time.perf_counter()
        results = [self.analyze(frame, index) for index, frame in frames]
        elapsed = time.perf_counter() - start
        log.debug(
            "faces.analyzed",
            frames=len(results),
            duration_ms=round(elapsed * 1000, 1),
            fps=round(len(results) / elapsed, 1) if elapsed > 0 else None,
        )
        return results

    def reset(self) -> None:
        """Forget the faces followed so far: the next frame is analysed from scratch."""
        self._tracks = []
        self._last_index = None
        self._since_detect = 0

    def would_track(self, frame_index: int) -> bool:
        """Whether :meth:`analyze` of ``frame_index`` next would first follow the faces of the
        frame before (else it runs the full-frame detector, as a fresh analyzer would; where
        that finds nothing it may still follow them: :attr:`was_fresh` says afterwards whether
        the answer came from the frame alone)."""
        return self.tracking and self._follows(frame_index) \
            and self._since_detect < self.redetect_every

    # -- detection path --------------------------------------------------------------------
    def detect_boxes(self, frame: np.ndarray, tiles: bool = True) -> list[tuple[Box, float]]:
        """Faces the detector finds in frame (uint8 (H, W, 3) RGB): [(box in frame pixels,
        clipped to it; score)], any order.

        The whole frame first; where that finds nothing, the short-range model on the whole
        frame (a face filling it); where that finds nothing either and ``tiles``, overlapping
        tiles (:func:`~heygemd.faces.search.tile_squares`). A box too small for its size to be
        trusted (:func:`~heygemd.faces.search.is_small`) takes the detector's box on a zoomed
        square around it. A frame whose faces the whole frame shows at a trusted size costs one
        detector run; the short-range look one more and the tiles 3-8 more, only where nothing
        was found.
        """
        h, w = frame.shape[:2]
        found = self._detect_in(frame, (0, 0))
        if not found:  # a face filling the frame, cut by its edges: the full-range model misses
            found = self._detect_in(frame, (0, 0), self._near)
        if not found and tiles:  # a face in two tiles is found twice: merged, zoomed once
            found = merge_boxes([hit for square in tile_squares(w, h)
                                 for hit in self._detect_in_square(frame, square)])
        if any(is_small(box, w, h) for box, _ in found):
            found = merge_boxes([self._zoom(frame, box, score) if is_small(box, w, h)
                                 else (box, score) for box, score in found])
        boxes: list[tuple[Box, float]] = []
        for box, score in found:
            box = _clip_box(box, w, h)
            if box[2] - box[0] >= MIN_BOX_PX and box[3] - box[1] >= MIN_BOX_PX:
                boxes.append((box, score))
        return boxes

    def _detect_in(self, image: np.ndarray, offset: tuple[int, int],
                   graph: Any = None) -> list[tuple[Box, float]]:
        """The detector (``graph``: the full-range one unless given) on one image: [(box in
        pixels shifted by offset, score)], unclipped."""
        h, w = image.shape[:2]
        result = (graph or self._detector).process(image)
        found: list[tuple[Box, float]] = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            x0, y0 = rel.xmin * w + offset[0], rel.ymin * h + offset[1]
            found.append(((x0, y0, x0 + rel.width * w, y0 + rel.height * h), float(det.score[0])))
        return found

    def _detect_in_square(self, frame: np.ndarray, square: Square) -> list[tuple[Box, float]]:
        x0, y0, side = square
        return self._detect_in(crop_square(frame, x0, y0, side), (x0, y0))

    def _zoom(self, frame: np.ndarray, box: Box, score: float) -> tuple[Box, float]:
        """The detector's look at ``box``'s face on a zoomed square; ``box`` itself if it finds
        no face there."""
        return pick_in(box, self._detect_in_square(frame, zoom_square(box))) or (box, score)

    def mesh_in_box(self, frame: np.ndarray, box: Box,
                    crop_scale: float | None = None) -> np.ndarray | None:
        """float32 (478, 3) landmarks in frame pixels for the face in box, or None if no mesh.

        The crop is ``crop_scale`` (default: the settings') times the box. The mesh must lie
        on this box (its centre inside it), not on a neighbouring face.
        """
        x0, y0, side = square_crop_box(box, crop_scale or self.cfg.crop_scale)
        crop = crop_square(frame, x0, y0, side)
        face_w = max(box[2] - box[0], box[3] - box[1])
        target = int(round(side * FACE_PX / max(face_w, 1.0)))
        if target != side:
            interp = cv2.INTER_AREA if target < side else cv2.INTER_LINEAR
            crop = cv2.resize(crop, (target, target), interpolation=interp)
        result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        marks = result.multi_face_landmarks[0].landmark
        if len(marks) != N_LANDMARKS:
            raise ProcessingError(f"face mesh gave {len(marks)} landmarks, expected {N_LANDMARKS}")
        rel = np.array([(p.x, p.y, p.z) for p in marks], dtype=np.float64)
        points = np.empty((N_LANDMARKS, 3), dtype=np.float32)
        points[:, 0] = x0 + rel[:, 0] * side
        points[:, 1] = y0 + rel[:, 1] * side
        points[:, 2] = rel[:, 2] * side
        cx, cy = points[:, 0].mean(), points[:, 1].mean()
        if not (box[0] <= cx <= box[2] and box[1] <= cy <= box[3]):
            return None
        return points

    def _detect_faces(self, frame: np.ndarray, frame_index: int) -> list[FaceObservation]:
        faces = []
        for box, score in self.detect_boxes(frame, tiles=self._tiles_at(frame_index)):
            points = self.mesh_in_box(frame, box)
            if points is not None:
                faces.append(_observation(frame_index, box, score, points))
        return _largest_first(faces)

    def _tiles_at(self, frame_index: int) -> bool:
        """Whether a frame where the whole-frame pass finds nothing is searched in tiles: always
        for sampled frames; while tracking, on every ``redetect_every``-th frame only (a video
        with long stretches without a face stays cheap; a small face appears by the next one).
        Decided by the index alone, so a fresh analyzer started on such a frame finds the same
        (the engine's two-half analysis splits there)."""
        return not self.tracking or frame_index % self.redetect_every == 0

    # -- tracking path ---------------------------------------------------------------------
    def _follows(self, frame_index: int) -> bool:
        """Whether faces of the frame just before ``frame_index`` are remembered."""
        return bool(self._tracks) and self._last_index is not None \
            and frame_index == self._last_index + 1

    def _track_faces(self, frame: np.ndarray, frame_index: int,
                     crop_scales: tuple[float | None, ...] = (None,)
                     ) -> list[FaceObservation] | None:
        """Mesh around each remembered face, on crops of ``crop_scales`` (None: the settings')
        until one holds a mesh; None (re-detect) when any face's mesh is lost."""
        h, w = frame.shape[:2]
        faces = []
        for track in self._tracks:
            box = _clip_box(track.predicted_box(), w, h)
            points = None
            for scale in crop_scales:
                points = self.mesh_in_box(frame, box, scale)
                if points is not None:
                    break
            if points is None:
                return None
            track.landmarks = points
            box = track.predicted_box()
            faces.append(_observation(frame_index, box, track.score, points, w, h))
        self._last_index = frame_index
        self._since_detect += 1
        return _largest_first(faces)

    def _remember(self, faces: list[FaceObservation], frame_index: int) -> None:
        self._tracks = [
            _Track(box_relative_to(f.box, landmark_box(f.landmarks)), f.score, f.landmarks)
            for f in faces
        ]
        self._last_index = frame_index
        self._since_detect = 1


def _observation(
    frame_index: int,
    box: Box,
    score: float,
    points: np.ndarray,
    width: int | None = None,
    height: int | None = None,
) -> FaceObservation:
    if width is not None and height is not None:
        box = _clip_box(box, width, height)
    yaw, pitch, roll = head_pose(points)
    return FaceObservation(
        frame_index=frame_index,
        box=box,
        score=score,
        landmarks=points,
        yaw=yaw,
        pitch=pitch,
        roll=roll,
    )


def _largest_first(faces: list[FaceObservation]) -> list[FaceObservation]:
    return sorted(faces, key=lambda f: f.width * f.height, reverse=True)


class Follower:
    """The largest face across sampled frames of one video (the preview's, a quarter second
    apart), with ``analyzer``'s graphs: the previous sample's face is meshed again where it
    was, and the detector runs only on the first sample, every ``redetect_every``-th, and where
    that mesh is lost (FaceAnalyzer's tracking needs consecutive frames; these are not). As
    there, the detector re-seeds, it does not judge: where it misses the face being followed,
    the mesh keeps it. The face followed is the largest at the last detection. The preview's
    samples of th10 (46) and th08 (21): 19-24 ms a sample detected afresh, 12-14 ms followed."""

    def __init__(self, analyzer: FaceAnalyzer, redetect_every: int = REDETECT_EVERY) -> None:
        self._analyzer = analyzer
        self.redetect_every = max(int(redetect_every), 1)
        self._track: _Track | None = None
        self._since_detect = 0

    def analyze(self, frame: np.ndarray, frame_index: int) -> list[FaceObservation]:
        """The face in ``frame`` (uint8 (H, W, 3) RGB) followed from the sample before, else
        every face the analyzer finds there afresh (largest first)."""
        frame = _check_frame(frame)
        due = self._since_detect >= self.redetect_every
        if not due:
            followed = self._followed(frame, frame_index)
            if followed is not None:
                return followed
        faces = self._analyzer.analyze(frame, frame_index)
        if not faces and due:  # (a mesh lost just now is not tried again)
            followed = self._followed(frame, frame_index)
            if followed is not None:
                self._since_detect = 1  # the detector is tried again after a full period
                return followed
        self._track = _Track(box_relative_to(faces[0].box, landmark_box(faces[0].landmarks)),
                             faces[0].score, faces[0].landmarks) if faces else None
        self._since_detect = 1
        return faces

    def _followed(self, frame: np.ndarray, frame_index: int) -> list[FaceObservation] | None:
        """The followed face meshed where the sample before had it; None: none followed, or
        its mesh is lost there."""
        track = self._track
        if track is None:
            return None
        h, w = frame.shape[:2]
        points = self._analyzer.mesh_in_box(frame, _clip_box(track.predicted_box(), w, h))
        if points is None:
            return None
        track.landmarks = points
        self._since_detect += 1
        return [_observation(frame_index, track.predicted_box(), track.score, points, w, h)]
