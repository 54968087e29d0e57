"""Mouth-occlusion score on a painted synthetic face (real-media checks: integration tests)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from heygemd.faces import landmarks as lm
from heygemd.faces.occlusion import (
    LINE_DEPTH_HIGH,
    LINE_DEPTH_LOW,
    MouthColour,
    mouth_colour,
    mouth_occlusion_score,
    score_from_colour,
)
from heygemd.faces.types import N_LANDMARKS, FaceObservation

SKIN = (205, 150, 125)
LIPS = (185, 85, 85)
MOUTH_LINE = (70, 30, 30)


def ring(n: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """n points on an ellipse, starting at its left end and going round (image y down)."""
    angles = np.pi + np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(angles), cy - ry * np.sin(angles)], axis=1)


def synthetic_face(skin: tuple[int, int, int] = SKIN, lips: tuple[int, int, int] = LIPS,
                   line: tuple[int, int, int] = MOUTH_LINE) -> tuple[np.ndarray, FaceObservation]:
    """A 400x400 RGB face: skin, red lips, a dark mouth line; landmarks where they belong."""
    marks = np.zeros((N_LANDMARKS, 3), dtype=np.float32)
    marks[:, :2] = (200.0, 200.0)
    marks[lm.RIGHT_EYE_OUTER, :2] = (140, 150)
    marks[lm.LEFT_EYE_OUTER, :2] = (260, 150)
    marks[list(lm.LIPS_OUTER), :2] = ring(len(lm.LIPS_OUTER), 200, 280, 50, 22)
    marks[list(lm.LIPS_INNER), :2] = ring(len(lm.LIPS_INNER), 200, 280, 40, 3)
    rng = np.random.default_rng(0)
    marks[list(lm.FOREHEAD), :2] = rng.uniform((160, 80), (240, 110), (len(lm.FOREHEAD), 2))
    for group, x in ((lm.RIGHT_UPPER_CHEEK, 130), (lm.LEFT_UPPER_CHEEK, 270)):
        marks[list(group), :2] = rng.uniform((x - 15, 180), (x + 15, 200), (len(group), 2))
    marks[lm.FOREHEAD_TOP, :2] = (200, 60)
    marks[lm.CHIN, :2] = (200, 340)
    frame = np.zeros((400, 400, 3), dtype=np.uint8)
    cv2.ellipse(frame, (200, 200), (120, 150), 0, 0, 360, skin, -1)
    cv2.fillPoly(frame, [marks[list(lm.LIPS_OUTER), :2].astype(np.int32)], lips)
    cv2.polylines(frame, [marks[list(lm.LIPS_INNER), :2].astype(np.int32)], True, line, 4)
    noise = rng.normal(0, 3, frame.shape)
    frame = np.clip(frame + noise, 0, 255).astype(np.uint8)
    return frame, FaceObservation(0, (80, 50, 320, 350), 0.9, marks, 0.0, 0.0, 0.0)


def cover_mouth(frame: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    covered = frame.copy()
    covered[220:340, 110:290] = colour
    return covered


def test_visible_mouth_scores_low() -> None:
    frame, obs = synthetic_face()
    colour = mouth_colour(frame, obs)
    assert colour.redness > 10
    assert colour.line_depth > 20
    assert mouth_occlusion_score(frame, obs) < 0.2


@pytest.mark.parametrize(
    "cover", [(128, 128, 128), (60, 90, 200), (20, 20, 20), (240, 240, 240), (120, 200, 230)]
)
def test_cloth_coloured_cover_scores_high(cover: tuple[int, int, int]) -> None:
    frame, obs = synthetic_face()
    assert mouth_occlusion_score(cover_mouth(frame, cover), obs) > 0.9


def lab_to_rgb(lab: tuple[int, int, int]) -> tuple[int, int, int]:
    """An OpenCV 8-bit Lab colour (a*, b* offset by 128) as RGB."""
    rgb = cv2.cvtColor(np.uint8([[lab]]), cv2.COLOR_LAB2RGB)[0, 0]
    return int(rgb[0]), int(rgb[1]), int(rgb[2])


def test_lips_as_red_as_the_skin_but_less_yellow_score_low() -> None:
    """Darker skin (c20's measured medians): lips a* 17, b* 3 against the skin's 16, 17, farther
    than FAR_CHROMA in chroma and not redder, yet flesh."""
    skin = lab_to_rgb((103, 128 + 16, 128 + 17))
    lips = lab_to_rgb((98, 128 + 17, 128 + 3))
    frame, obs = synthetic_face(skin=skin, lips=lips, line=(25, 12, 12))
    colour = mouth_colour(frame, obs)
    assert colour.redness < 6.0  # not redder than the skin: the redness rule does not save it
    assert mouth_occlusion_score(frame, obs) < 0.2


@pytest.mark.parametrize("cover", [(60, 90, 200), (120, 60, 140), (90, 140, 90)])
def test_covers_red_enough_but_of_other_hues_still_score_high(
    cover: tuple[int, int, int],
) -> None:
    """Blue, purple and green cloth on the darker face of the test above."""
    skin = lab_to_rgb((103, 128 + 16, 128 + 17))
    frame, obs = synthetic_face(skin=skin, lips=lab_to_rgb((98, 128 + 17, 128 + 3)),
                                line=(25, 12, 12))
    assert mouth_occlusion_score(cover_mouth(frame, cover), obs) > 0.9


def pleated_cover(frame: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """The cover of cover_mouth with pleats, one folding darkly along the mouth line (y 280),
    so the mouth-line rule sees a mouth: the colour alone must tell."""
    covered = cover_mouth(frame, colour).astype(np.float32)
    rows = np.arange(220, 340, dtype=np.float32)
    covered[220:340, 110:290] *= (1.0 + 0.18 * np.sin(2 * np.pi * (rows - 280) / 30.0))[:, None,
                                                                                        None]
    covered[277:284, 110:290] *= 0.45
    return np.clip(covered, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    "skin,lips,cover",
    [
        (SKIN, LIPS, (255, 182, 193)),  # pink on a pale face
        (lab_to_rgb((103, 144, 145)), lab_to_rgb((98, 145, 131)), (255, 182, 193)),  # pink, c20
        (lab_to_rgb((103, 144, 145)), lab_to_rgb((98, 145, 131)), (180, 120, 140)),  # mauve, c20
    ],
)
def test_pleated_pink_and_mauve_covers_are_not_flesh(
    skin: tuple[int, int, int], lips: tuple[int, int, int], cover: tuple[int, int, int]
) -> None:
    frame, obs = synthetic_face(skin=skin, lips=lips, line=(25, 12, 12))
    covered = pleated_cover(frame, cover)
    colour = mouth_colour(covered, obs)
    assert colour.line_depth > LINE_DEPTH_HIGH  # the pleat reads as a mouth line
    assert colour.far_share > 0.8
    assert mouth_occlusion_score(covered, obs) > 0.8


def test_a_visible_mouth_in_dim_light_scores_low_and_a_hand_there_high() -> None:
    """At a fifth of the light, with camera noise, every lightness difference shrinks: the
    mouth line is 13 L* below the lips, partly "flat" by the full-light depths, still a mouth;
    a skin-coloured cover there has none."""
    frame, obs = synthetic_face()
    rng = np.random.default_rng(3)

    def dimmed(image: np.ndarray) -> np.ndarray:
        dim = image.astype(np.float32) * 0.2 + rng.normal(0.0, 2.0, image.shape)
        return np.clip(dim, 0, 255).astype(np.uint8)

    colour = mouth_colour(dimmed(frame), obs)
    assert colour.skin_light < 40 and LINE_DEPTH_LOW < colour.line_depth < LINE_DEPTH_HIGH
    assert mouth_occlusion_score(dimmed(frame), obs) < 0.2
    assert mouth_occlusion_score(dimmed(cover_mouth(frame, SKIN)), obs) > 0.8


def test_skin_coloured_flat_cover_scores_high() -> None:
    frame, obs = synthetic_face()
    assert mouth_occlusion_score(cover_mouth(frame, SKIN), obs) > 0.8


def test_score_from_colour_is_bounded_and_monotone() -> None:
    visible = MouthColour(far_share=0.0, redness=12.0, line_depth=40.0, lip_pixels=500,
                          skin_pixels=500)  # fmt: skip
    hand = MouthColour(0.0, 0.5, 4.0, 500, 500)
    pale_lips = MouthColour(0.0, 1.0, 32.0, 500, 500)
    cloth = MouthColour(0.97, -15.0, 3.0, 500, 500)
    too_small = MouthColour(1.0, -15.0, 0.0, 5, 500)
    assert score_from_colour(visible) == 0.0
    assert score_from_colour(pale_lips) < 0.1
    assert score_from_colour(hand) > 0.9
    assert score_from_colour(cloth) == pytest.approx(1.0)
    assert score_from_colour(too_small) == 0.0
