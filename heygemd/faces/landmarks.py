"""Named index groups of mediapipe's 478-point face mesh (468 mesh points + 10 iris points).

"Right"/"left" are the subject's own sides: the subject's right eye appears on the image's left
in a frontal, unmirrored picture. Contours are listed in drawing order (closed polygons).
Indices follow mediapipe's ``face_mesh_connections`` and ``canonical_face_model.obj``.
"""

from __future__ import annotations

import numpy as np

# Face oval, clockwise in the image starting at the top of the forehead.
FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip

# Outer lip contour, starting at the right mouth corner (image left), lower lip first.
LIPS_OUTER: tuple[int, ...] = (
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
)  # fmt: skip

# Inner lip contour (the mouth opening), same order as LIPS_OUTER.
LIPS_INNER: tuple[int, ...] = (
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191,
)  # fmt: skip

# Jaw line from the right ear (image left) down round the chin to the left ear.
JAW: tuple[int, ...] = (
    234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288,
    361, 323, 454,
)  # fmt: skip

# Lower face below the nose: what a mask or a hand hides. Closed polygon.
LOWER_FACE: tuple[int, ...] = (
    234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288,
    361, 323, 454, 447, 345, 352, 411, 425, 266, 371, 355, 429, 279, 358, 327, 326, 2, 97, 98,
    129, 49, 209, 126, 142, 36, 205, 187, 123, 116, 227,
)  # fmt: skip

NOSE_BRIDGE: tuple[int, ...] = (168, 6, 197, 195, 5)
NOSE_TIP = 1
SUBNASALE = 2  # where the nose meets the upper lip

# Eye corners: outer (lateral) and inner (medial) canthus of each eye.
RIGHT_EYE_OUTER = 33
RIGHT_EYE_INNER = 133
LEFT_EYE_INNER = 362
LEFT_EYE_OUTER = 263
EYE_CORNERS: tuple[int, ...] = (RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER)

RIGHT_IRIS_CENTER = 468
LEFT_IRIS_CENTER = 473

# Mouth key points.
MOUTH_RIGHT_CORNER = 61
MOUTH_LEFT_CORNER = 291
UPPER_LIP_INNER = 13  # middle of the upper lip's inner edge
LOWER_LIP_INNER = 14
UPPER_LIP_OUTER = 0
LOWER_LIP_OUTER = 17
# Inner-lip pairs (upper, lower) across the mouth opening, right to left.
INNER_LIP_PAIRS: tuple[tuple[int, int], ...] = ((82, 87), (13, 14), (312, 317))

FOREHEAD_TOP = 10
CHIN = 152

# Upper cheeks just below the eyes: above where a mask or a hand usually ends.
RIGHT_UPPER_CHEEK: tuple[int, ...] = (116, 117, 118, 119, 100, 47, 121, 120, 111)
LEFT_UPPER_CHEEK: tuple[int, ...] = (345, 346, 347, 348, 329, 277, 350, 349, 340)
# Mid cheeks (level with the nose): covered by most masks.
RIGHT_CHEEK: tuple[int, ...] = (50, 101, 36, 205, 187, 123)
LEFT_CHEEK: tuple[int, ...] = (280, 330, 266, 425, 411, 352)
# Forehead patch between the eyebrows and the hairline.
FOREHEAD: tuple[int, ...] = (151, 9, 108, 337, 69, 299, 107, 336, 66, 296, 109, 338)

# Points that do not move when the person speaks: for aligning one frame's face onto another.
STABLE: tuple[int, ...] = (
    RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER,
    168, 6, 197, 195, 5, 4, 1, 50, 280, 117, 346, 10, 151, 234, 454,
)  # fmt: skip

# Points head_pose fits: the stable points plus the mouth corners and the chin.
POSE_POINTS: tuple[int, ...] = STABLE + (MOUTH_RIGHT_CORNER, MOUTH_LEFT_CORNER, CHIN)

# Metric positions of POSE_POINTS on mediapipe's canonical face model, centimetres, converted to
# image axes: x to the image's right, y down, z away from the camera (the .obj has y up and z
# towards the viewer, so y and z are negated). A frontal face (yaw = pitch = roll = 0) is this
# model unrotated. Source: vertices (0-based, vertex i = mesh index i) of
# mediapipe/modules/face_geometry/data/canonical_face_model.obj in google-ai-edge/mediapipe
# (Apache-2.0).
CANONICAL_POSE_POINTS: dict[int, tuple[float, float, float]] = {
    1: (0.0, 1.126865, -7.475604),
    4: (0.0, 0.463170, -7.586580),
    5: (0.0, -0.365669, -7.242870),
    6: (0.0, -2.473255, -5.788627),
    10: (0.0, -8.261778, -4.481535),
    33: (-4.445859, -2.663991, -3.173422),
    50: (-4.765501, 0.701554, -3.534632),
    61: (-2.456206, 4.342621, -4.283884),
    117: (-5.258659, -0.945811, -2.974312),
    133: (-1.856432, -2.585245, -3.757904),
    151: (0.0, -6.545390, -5.027311),
    152: (0.0, 9.403378, -4.264492),
    168: (0.0, -3.271027, -5.236015),
    195: (0.0, -1.059413, -6.774605),
    197: (0.0, -1.728369, -6.316750),
    234: (-7.664182, -0.673132, 2.435867),
    263: (4.445859, -2.663991, -3.173422),
    280: (4.765501, 0.701554, -3.534632),
    291: (2.456206, 4.342621, -4.283884),
    346: (5.258659, -0.945811, -2.974312),
    362: (1.856432, -2.585245, -3.757904),
    454: (7.664182, -0.673132, 2.435867),
}


def as_array(indices: tuple[int, ...]) -> np.ndarray:
    """Index group as an int64 (K,) array, for fancy indexing of a (478, 3) landmark array."""
    return np.asarray(indices, dtype=np.int64)
