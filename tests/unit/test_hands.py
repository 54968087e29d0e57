"""faces.hands: how much of a lower face a hand's outline covers (pure, synthetic points)."""

from __future__ import annotations

import numpy as np

from heygemd.faces import hands
from heygemd.faces.types import N_LANDMARKS


def oval_face(cx: float = 200.0, cy: float = 200.0, rx: float = 60.0, ry: float = 80.0
              ) -> np.ndarray:
    """float32 (478, 3): mesh points filling an oval face centred at (cx, cy), the nose tip
    (landmark 1) at its centre."""
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, 2 * np.pi, N_LANDMARKS)
    radius = np.sqrt(rng.uniform(0, 1, N_LANDMARKS))
    points = np.zeros((N_LANDMARKS, 3), np.float32)
    points[:, 0] = cx + rx * radius * np.cos(angle)
    points[:, 1] = cy + ry * radius * np.sin(angle)
    points[:hands.MESH_POINTS:50, :2] = [[cx + rx * np.cos(a), cy + ry * np.sin(a)]
                                         for a in np.linspace(0, 2 * np.pi, 10)]
    points[hands.NOSE_TIP, :2] = (cx, cy)
    return points


def upright_hand(x: float, wrist_y: float, finger: float = 40.0) -> np.ndarray:
    """float (21, 2): a hand held up, fingers 16 px apart and ``finger`` px long."""
    points = np.zeros((21, 2))
    points[0] = (x, wrist_y)
    for k, dx in enumerate((-32.0, -16.0, 0.0, 16.0, 32.0)):  # thumb, index ... little
        base = 1 + 4 * k
        for j in range(4):
            points[base + j] = (x + dx, wrist_y - 30.0 - finger * j / 3)
    return points


def test_a_hand_from_below_reaching_the_lips_covers_part_of_the_lower_face() -> None:
    face = oval_face()
    # the wrist well below the chin (y 280), the finger tips at y 200 - 280 + ...
    share = hands.hand_cover([upright_hand(200.0, 330.0, finger=60.0)], face)
    assert 0.05 < share < 0.6


def test_no_hand_far_hand_or_a_face_without_points_cover_nothing() -> None:
    face = oval_face()
    assert hands.hand_cover([], face) == 0.0
    assert hands.hand_cover([upright_hand(450.0, 330.0)], face) == 0.0
    assert hands.hand_cover([upright_hand(200.0, 330.0)], np.full_like(face, np.nan)) == 0.0


def test_a_hand_found_inside_the_face_is_taken_for_no_hand() -> None:
    """The hand model answers on open mouths and beards: a "hand" lying in the face is not
    one (a real hand at the chin reaches below the face)."""
    face = oval_face(rx=120.0, ry=160.0)
    inside = upright_hand(200.0, 260.0, finger=20.0)  # wrist to finger tips within the oval
    assert hands.hand_cover([inside], face) == 0.0
    assert hands.hand_cover([inside, upright_hand(200.0, 420.0, finger=60.0)], face) > 0.0


def test_an_outline_has_its_fingers_and_palm() -> None:
    hand = upright_hand(50.0, 100.0)
    mask = hands.hand_outline(hand, (120, 100))  # fingers 0.3 x 48 px wide
    assert mask[100 - 20, 50] == 1  # palm
    assert mask[100 - 30 - 40, 50 - 16] == 1  # index finger tip
    assert mask[100 - 30 - 20, 50 - 8] == 0  # between index and middle finger
    assert mask[5, 5] == 0
