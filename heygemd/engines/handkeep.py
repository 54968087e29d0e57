"""Hands in front of the lower face stay in front of a new mouth: the template frames near where
the frame pass saw a hand at the speaker's chin or mouth (RenderRequest.hands) are looked at
again, one by one, as an engine decodes them, and the hands found there are kept from the
template's frame. The builtin engine also never takes those frames' mouths for other frames
(planning's avoid: a hand's fingertips would come with them); Wav2Lip regenerates each frame's
own lower face and leaves the hand's pixels out of its paste.

Without sightings (another caller than the pipeline, or a frame pass that saw no hand) nothing
is looked for and nothing costs more.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import structlog

from heygemd.faces.hands import HandSightings, kept_hands
from heygemd.media.yuv import Picture, as_rgb

log = structlog.get_logger(__name__)


# A hand seen at a sample is looked for at most this far from it: the frame pass samples about
# three frames a second, but a long video's samples lie seconds apart.
REACH_SECONDS = 0.5


def near_hands(sightings: HandSightings | None, usable: np.ndarray, fps: float) -> np.ndarray:
    """bool (N,): the ``usable`` template frames (at ``fps``) a hand may be at the lower face
    in."""
    if sightings is None:
        return np.zeros(len(usable), bool)
    return sightings.near(len(usable), max(1, int(round(REACH_SECONDS * fps)))) & usable


def face_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a face's landmarks float (478, >=2)."""
    points = landmarks[:, :2]
    return (float(points[:, 0].min()), float(points[:, 1].min()),
            float(points[:, 0].max()), float(points[:, 1].max()))


class HandKeeper:
    """The hands at the lower face of the template frames in ``near`` (:func:`near_hands`),
    found on the decoded frames the render passes (:meth:`hands`), each frame once.

    The mediapipe graph is built on the first frame that needs it and used by one thread at a
    time; a graph that cannot be built or fails on a frame leaves that frame without hands
    (the output is made as before; the log says why)."""

    def __init__(self, near: np.ndarray, landmarks: np.ndarray, make: Any = None) -> None:
        self.near = near
        self.landmarks = landmarks
        self._make = make
        self._finder: Any = None
        self._broken = False
        self._found: dict[int, list[np.ndarray]] = {}
        self._lock = threading.Lock()

    @property
    def looking(self) -> bool:
        return bool(self.near.any())

    def hands(self, index: int, frame: Picture) -> list[np.ndarray]:
        """The hands (float (21, 2), frame pixels) at the lower face of template frame
        ``index``, decoded as ``frame`` (uint8 RGB (H, W, 3), or a YuvFrame: turned to RGB
        only here); [] away from a sighting."""
        if index >= len(self.near) or not self.near[index]:
            return []
        with self._lock:
            if index not in self._found:
                self._found[index] = self._look(index, frame)
            return self._found[index]

    def _look(self, index: int, frame: Picture) -> list[np.ndarray]:
        finder = self._finder_or_none()
        if finder is None:
            return []
        points = self.landmarks[index]
        try:
            return kept_hands(finder.find(as_rgb(frame), face_box(points)), points)
        except Exception as err:  # noqa: BLE001 - the frame is made as before, without hands
            log.warning("engine.hands_failed", frame_index=index, error=repr(err))
            return []

    def _finder_or_none(self) -> Any:
        if self._finder is None and not self._broken:
            try:
                if self._make is not None:
                    self._finder = self._make()
                else:
                    from heygemd.faces.hands import HandFinder

                    self._finder = HandFinder()
            except Exception as err:  # noqa: BLE001 - no hands kept, as before
                self._broken = True
                log.warning("engine.hands_unavailable", error=repr(err))
        return self._finder

    def close(self) -> None:
        """Release the hand model. Idempotent."""
        with self._lock:
            if self._finder is not None:
                self._finder.close()
            self._finder = None
