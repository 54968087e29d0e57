"""Face records shared by analysis, validation and engines. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

N_LANDMARKS = 478  # mediapipe face mesh with refined iris landmarks


@dataclass(frozen=True, eq=False)
class FaceObservation:
    """One face in one frame.

    box: (x0, y0, x1, y1) in image pixels (detector box, clipped to the frame).
    landmarks: float32 (478, 3): x, y in image pixels; z in the same pixel scale
        (mediapipe's relative depth times the crop width), smaller z = nearer the camera.
    yaw/pitch/roll: degrees; yaw > 0 = face turned to the image's right, pitch > 0 = looking
        down, roll > 0 = head tilted clockwise in the image. 0/0/0 is frontal.
    """

    frame_index: int
    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    yaw: float
    pitch: float
    roll: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


@dataclass(frozen=True)
class SampledFrame:
    """One examined frame: where it is, every face found, and the speaker with its scores."""

    frame_index: int  # in the video at its constant frame rate
    faces: list[FaceObservation]  # all faces, largest first
    occlusions: list[float]  # mouth-occlusion score per face in ``faces``
    speaker: FaceObservation | None = None
    speaker_occlusion: float | None = None
    # share of the lower face a hand covers (faces.hands.hand_cover), per face in ``occlusions``
    hand_covers: list[float] = field(default_factory=list)
    speaker_hand: float | None = None
    # how well the face is lit (occlusion.MouthColour.skin_light), per face in ``occlusions``
    lights: list[float] = field(default_factory=list)
    speaker_light: float | None = None
