"""Follow one speaker across frames: associate faces frame to frame, pick the speaker, smooth.

Pure: takes the FaceAnalyzer's per-frame observations, returns a FaceTrack. Works on every
frame of a video (engines) and on sampled frames (validation) alike, since each observation
carries its frame index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from heygemd.faces.geometry import box_iou, interocular, smooth_sequence
from heygemd.faces.types import N_LANDMARKS, FaceObservation

MIN_IOU = 0.2  # boxes overlapping at least this much are the same face
MAX_CENTRE_SHIFT = 0.75  # or: centres closer than this many box sizes (faster motion, gaps)
CENTRALITY_WEIGHT = 0.5  # a face at the frame's corner counts this much less than a central one


@dataclass
class _Tracklet:
    observations: list[FaceObservation] = field(default_factory=list)

    @property
    def last(self) -> FaceObservation:
        return self.observations[-1]


def _affinity(track: FaceObservation, obs: FaceObservation) -> float:
    """How well obs continues track: IoU, or a centre-distance score; 0 = no match."""
    iou = box_iou(track.box, obs.box)
    if iou >= MIN_IOU:
        return 1.0 + iou
    size = max(track.width, track.height, 1e-6)
    shift = float(np.hypot(track.center[0] - obs.center[0], track.center[1] - obs.center[1]))
    return max(0.0, 1.0 - shift / (MAX_CENTRE_SHIFT * size))


def associate(per_frame: Sequence[list[FaceObservation]]) -> list[list[FaceObservation]]:
    """Group observations into per-face tracklets (each in frame order), greedily by affinity.

    per_frame: observations of each analysed frame, in frame order.
    """
    tracklets: list[_Tracklet] = []
    for faces in per_frame:
        pairs = sorted(
            (
                (_affinity(t.last, obs), ti, oi)
                for ti, t in enumerate(tracklets)
                for oi, obs in enumerate(faces)
            ),
            reverse=True,
        )
        used_t: set[int] = set()
        used_o: set[int] = set()
        for affinity, ti, oi in pairs:
            if affinity <= 0.0 or ti in used_t or oi in used_o:
                continue
            tracklets[ti].observations.append(faces[oi])
            used_t.add(ti)
            used_o.add(oi)
        tracklets.extend(_Tracklet([obs]) for oi, obs in enumerate(faces) if oi not in used_o)
    return [t.observations for t in tracklets]


def speaker_weight(obs: FaceObservation, frame_size: tuple[int, int]) -> float:
    """One frame's vote for obs being the speaker: relative face size times centrality."""
    w, h = frame_size
    size = np.sqrt(max(obs.width * obs.height, 0.0) / max(w * h, 1))
    dx = (obs.center[0] - w / 2) / (w / 2)
    dy = (obs.center[1] - h / 2) / (h / 2)
    off_centre = min(float(np.hypot(dx, dy)) / np.sqrt(2), 1.0)
    return float(size * (1.0 - CENTRALITY_WEIGHT * off_centre))


@dataclass(frozen=True)
class FaceTrack:
    """The speaker's face over a video.

    observations: one entry per frame index 0..n_frames-1: the speaker's FaceObservation, or
        None where the speaker was absent or the frame was not analysed.
    n_faces_max: the most faces seen in any one analysed frame (2+ = several people).
    n_tracks: distinct faces followed across the analysed frames (the speaker included).
    frame_size: (width, height) of the frames, pixels.
    """

    observations: list[FaceObservation | None]
    n_faces_max: int
    n_tracks: int
    frame_size: tuple[int, int]

    @property
    def found_indices(self) -> list[int]:
        return [i for i, obs in enumerate(self.observations) if obs is not None]

    def landmarks(self) -> np.ndarray:
        """float32 (T, 478, 3) raw landmarks in pixels; NaN where observations[t] is None."""
        out = np.full((len(self.observations), N_LANDMARKS, 3), np.nan, dtype=np.float32)
        for i, obs in enumerate(self.observations):
            if obs is not None:
                out[i] = obs.landmarks
        return out

    def smoothed_landmarks(self, fps: float) -> np.ndarray:
        """float32 (T, 478, 3) landmarks after one-euro smoothing at fps frames/s; NaN = absent.

        Speeds are measured in the speaker's median inter-ocular distance, so the filter's
        defaults fit any face size (see geometry.OneEuroFilter). Runs of consecutive frames are
        smoothed; across a gap the filter restarts (sampled frames are returned unsmoothed).
        """
        raw = self.landmarks()
        found = [obs for obs in self.observations if obs is not None]
        if not found:
            return raw
        scale = float(np.median([interocular(obs.landmarks) for obs in found]))
        return smooth_sequence(raw, fps, scale=max(scale, 1.0)).astype(np.float32)


def build_track(
    per_frame: Sequence[list[FaceObservation]],
    frame_size: tuple[int, int],
    n_frames: int,
) -> FaceTrack:
    """Pick and follow the speaker: the largest, most central, most persistent face.

    per_frame: FaceAnalyzer output for each analysed frame, in frame order (every frame, or a
        sample); observations carry their frame_index (< n_frames).
    frame_size: (width, height) in pixels. n_frames: frames in the video.
    """
    tracklets = associate(per_frame)
    n_faces_max = max((len(faces) for faces in per_frame), default=0)
    observations: list[FaceObservation | None] = [None] * n_frames
    if tracklets:
        speaker = max(tracklets, key=lambda t: sum(speaker_weight(obs, frame_size) for obs in t))
        for obs in speaker:
            if 0 <= obs.frame_index < n_frames:
                observations[obs.frame_index] = obs
    return FaceTrack(observations, n_faces_max, len(tracklets), frame_size)
