"""Is the mouth covered? A colour check of the lips against the face's own skin.

mediapipe still places lip landmarks on a masked face, so the mesh alone cannot tell. Lips are
flesh: their chroma (CIE Lab a*, b*) lies near the skin's, shifted towards red. A cloth mask
(black, white, blue, patterned) is grey or coloured unlike skin; a hand is skin-coloured but
lacks the lips' extra redness. The skin reference comes from the forehead and the upper cheeks
just below the eyes, above where a mask or a hand ends.

Pure functions on a frame and its FaceObservation; the only cost is one colour conversion of
the face's bounding region.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from heygemd.faces import landmarks as lm
from heygemd.faces.geometry import interocular
from heygemd.faces.types import FaceObservation

# Chroma distance (Lab a*/b* units, 8-bit OpenCV scale ~ CIE units) at which a lip pixel no
# longer looks like flesh of this face.
FAR_CHROMA = 12.0
# Lips keep at least this share of the skin's redness (a* above neutral) while their chroma
# may lie farther than FAR_CHROMA from it: on darker skin the lips lose the skin's yellow (b*)
# and stay as red (c20: lips a* 17, b* 3 against the skin's 16, 17). Covers of cloth, paper or
# plastic in black, white, grey or green sit at a* <= ~1; blue and purple ones, red enough,
# lie far below the red-to-orange hues of flesh: b* < -FLESH_HUE_SLOPE * a* (hue under -27
# degrees; a cloth blue (60, 90, 200) is a* 26, b* -61).
# Lips are never much lighter than the face's best-lit skin (c20 L* 90 against 95, c30 95
# against 144, c10 101 against 137) nor much redder than it where they are as pale: pink, rose
# and mauve cloth (a* 17-34, lighter than most skin) is not flesh.
FLESH_RED_SHARE = 0.6
FLESH_RED_MAX = 1.6  # lip a* at most this many times the skin's to count as flesh
FLESH_LIGHTER = 10.0  # the lips' median L* at most this far above the best-lit skin's
FLESH_HUE_SLOPE = 0.5
# Lips are redder than skin: a* excess (units as above) below LOW means "no lip redness",
# above HIGH means clearly lips. Measured on the talking clips: 1-30 (a pale man: 1-3).
REDNESS_LOW = 0.0
REDNESS_HIGH = 6.0
# The mouth line is darker than the lips (L*, 0-255 scale): below LOW it is absent (a flat
# cover), above HIGH clearly there. Measured: real mouths 31-96, covers 3-6.
LINE_DEPTH_LOW = 8.0
LINE_DEPTH_HIGH = 20.0
# Those depths hold for a face lit at least this well (the skin's L*; the real clips' skin:
# 100-220). A dimmer face scales them down with its skin's lightness: every L* difference
# shrinks with the light (c22 at a third of its light: skin 27, lips 14, its mouth line 6 below
# them, was "masked"). The skin, not the lips: a dark cover on a well-lit face stays flat.
LINE_DEPTH_LIGHT = 100.0
BRIDGE = (168, 6)  # the top of the nose's bridge, between the eyes: a lighting patch
# The scaled depths never fall below these (L*): in the dark, camera noise alone reads 3 deep, so
# a hand or a black mask there would read as a mouth (review: a flat hand at a fifth of the light
# with noise of 3 levels was missed on 22 of 51 real faces; with the floor, none).
LINE_DEPTH_FLOOR = (4.0, 8.0)
SKIN_RADIUS = 0.06  # reference discs around skin landmarks, in inter-ocular distances
LINE_WIDTH = 0.03  # band drawn along the inner-lip contour, in inter-ocular distances
MIN_PIXELS = 12  # fewer lip or skin pixels than this: the face is too small to judge


@dataclass(frozen=True)
class MouthColour:
    """Measured colour features of one face (Lab, OpenCV 8-bit scale: a*, b* offset by 128).

    far_share: share of lip pixels whose chroma is farther than FAR_CHROMA from the skin's.
    redness: median a* of the lips minus median a* of the skin.
    line_depth: how much darker the mouth line (the inner-lip contour) is than the lips, L*
        units: the shadow between closed lips or the open mouth; near 0 on a hand or cloth.
    skin_light: the median L* of the best-lit skin patch, forehead, either upper cheek or the
        bridge of the nose (how well the face is lit: what the line depth is judged against).
    """

    far_share: float
    redness: float
    line_depth: float
    lip_pixels: int
    skin_pixels: int
    skin_light: float = LINE_DEPTH_LIGHT


def _polygon_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], (1,))
    return mask.astype(bool)


def _discs_mask(points: np.ndarray, radius: float, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    r = max(int(round(radius)), 1)
    for x, y in np.round(points).astype(np.int32):
        cv2.circle(mask, (int(x), int(y)), r, (1,), -1)
    return mask.astype(bool)


def _line_mask(points: np.ndarray, width: float, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    thickness = max(int(round(width)), 1)
    cv2.polylines(mask, [np.round(points).astype(np.int32)], True, (1,), thickness)
    return mask.astype(bool)


def mouth_colour(frame: np.ndarray, obs: FaceObservation) -> MouthColour:
    """Colour features of the lips against the skin of obs's face in frame (uint8 RGB)."""
    h, w = frame.shape[:2]
    marks = obs.landmarks[:, :2].astype(np.float64)
    x0, y0 = np.floor(marks.min(axis=0)).astype(int)
    x1, y1 = np.ceil(marks.max(axis=0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return MouthColour(0.0, 0.0, 0.0, 0, 0)
    lab = cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1]), cv2.COLOR_RGB2LAB)
    local = marks - (x0, y0)
    shape = (y1 - y0, x1 - x0)
    lips = _polygon_mask(local[list(lm.LIPS_OUTER)], shape)
    lips &= ~_polygon_mask(local[list(lm.LIPS_INNER)], shape)
    radius = SKIN_RADIUS * interocular(obs.landmarks)
    forehead, right_cheek, left_cheek, bridge = (
        _discs_mask(local[list(group)], radius, shape)
        for group in (lm.FOREHEAD, lm.RIGHT_UPPER_CHEEK, lm.LEFT_UPPER_CHEEK, BRIDGE))
    skin = forehead | right_cheek | left_cheek
    lip_lab = lab[lips].astype(np.float64)
    lip_ab = lip_lab[:, 1:]
    skin_ab = lab[skin][:, 1:].astype(np.float64)
    if len(lip_ab) < MIN_PIXELS or len(skin_ab) < MIN_PIXELS:
        return MouthColour(0.0, 0.0, 0.0, len(lip_ab), len(skin_ab))
    skin_ref = np.median(skin_ab, axis=0)
    dist = np.linalg.norm(lip_ab - skin_ref, axis=1)
    redder = lip_ab[:, 0] - skin_ref[0] > np.abs(lip_ab[:, 1] - skin_ref[1])
    # as red as lips on this face and no yellower than its skin: flesh, however far in chroma
    red, yellow = lip_ab[:, 0] - 128.0, lip_ab[:, 1] - 128.0
    skin_red = max(skin_ref[0] - 128.0, 0.0)
    # how well the face is lit: its best-lit skin patch (a mask pulled up covers the cheeks,
    # bangs the forehead, neither the bridge of the nose between the eyes)
    lit = max((float(np.median(lab[patch][:, 0]))
               for patch in (forehead, right_cheek, left_cheek, bridge) if patch.any()),
              default=LINE_DEPTH_LIGHT)
    # lightness is judged on the whole region (shining lips have pixels lighter than the skin),
    # against the best-lit patch, not a median that may hold hair
    dark_enough = np.median(lip_lab[:, 0]) <= lit + FLESH_LIGHTER
    flesh = (red >= FLESH_RED_SHARE * skin_red) & (red <= FLESH_RED_MAX * skin_red) \
        & (lip_ab[:, 1] <= skin_ref[1]) & (yellow >= -FLESH_HUE_SLOPE * red) & dark_enough
    far = (dist > FAR_CHROMA) & ~redder & ~flesh  # a deep-red lip is far but still a lip
    redness = float(np.median(lip_ab[:, 0]) - skin_ref[0])
    line = _line_mask(local[list(lm.LIPS_INNER)], LINE_WIDTH * radius / SKIN_RADIUS, shape)
    line_l = lab[line][:, 0].astype(np.float64)
    depth = float(np.median(lip_lab[:, 0]) - np.percentile(line_l, 10)) if line_l.size else 0.0
    return MouthColour(float(far.mean()), redness, depth, len(lip_ab), len(skin_ab), lit)


def _ramp_down(value: float, low: float, high: float) -> float:
    """1 at or below low, 0 at or above high, linear between."""
    return float(np.clip((high - value) / (high - low), 0.0, 1.0))


def score_from_colour(colour: MouthColour) -> float:
    """Occlusion score in [0, 1] from colour features (1 = mouth covered).

    max(far_share, flat * (0.6 + 0.4 * pale)): a cover unlike skin scores its share of the lip
    area; a skin-coloured cover (a hand) scores by the missing mouth line (its depth judged
    for a face lit to LINE_DEPTH_LIGHT, less for a dimmer one), more so when the lip redness is
    missing too. Too few pixels to judge: 0.
    """
    if colour.lip_pixels < MIN_PIXELS or colour.skin_pixels < MIN_PIXELS:
        return 0.0
    pale = _ramp_down(colour.redness, REDNESS_LOW, REDNESS_HIGH)
    light = float(np.clip(colour.skin_light / LINE_DEPTH_LIGHT, 0.0, 1.0))
    flat = _ramp_down(colour.line_depth, max(LINE_DEPTH_LOW * light, LINE_DEPTH_FLOOR[0]),
                      max(LINE_DEPTH_HIGH * light, LINE_DEPTH_FLOOR[1]))
    return float(np.clip(max(colour.far_share, flat * (0.6 + 0.4 * pale)), 0.0, 1.0))


def mouth_occlusion_score(frame: np.ndarray, obs: FaceObservation) -> float:
    """How covered the mouth of obs is in frame (uint8 (H, W, 3) RGB): 0 = visible, 1 = covered."""
    return score_from_colour(mouth_colour(frame, obs))
