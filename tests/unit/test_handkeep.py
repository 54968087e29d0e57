"""Hands kept in front of a new mouth (engines.handkeep): which frames are looked at, each once,
and a hand model that cannot be built or fails (stand-in finders)."""

from __future__ import annotations

import numpy as np
import pytest
import structlog

from heygemd.engines import handkeep
from heygemd.faces.hands import HandSightings
from tests.unit.test_hands import oval_face, upright_hand

FACE = oval_face()
REACHING = upright_hand(200.0, 330.0, finger=60.0)  # from below the chin up to the lips


class Finder:
    """Answers the same hands on every frame, and counts its calls."""

    def __init__(self, found: list[np.ndarray]) -> None:
        self.found = found
        self.calls: list[tuple[float, ...]] = []
        self.closed = False

    def find(self, frame: np.ndarray, box: tuple[float, float, float, float]
             ) -> list[np.ndarray]:
        self.calls.append(box)
        return self.found

    def close(self) -> None:
        self.closed = True


def keeper(near: list[int], finder: object, count: int = 10) -> handkeep.HandKeeper:
    mask = np.zeros(count, bool)
    mask[near] = True
    return handkeep.HandKeeper(mask, np.stack([FACE] * count), make=lambda: finder)


def test_only_frames_near_a_sighting_are_looked_at_each_once() -> None:
    finder = Finder([REACHING, upright_hand(450.0, 330.0)])  # one at the chin, one beside
    keep = keeper([3, 4], finder)
    frame = np.zeros((400, 400, 3), np.uint8)
    assert keep.looking
    assert keep.hands(0, frame) == [] and not finder.calls  # no model built away from hands
    for _ in range(3):
        [hand] = keep.hands(3, frame)
        np.testing.assert_array_equal(hand, REACHING)
    assert keep.hands(4, frame) and keep.hands(12, frame) == []
    assert len(finder.calls) == 2  # frames 3 and 4, once each
    box = finder.calls[0]
    assert box[0] == pytest.approx(FACE[:, 0].min()) and box[3] == pytest.approx(FACE[:, 1].max())
    keep.close()
    assert finder.closed


def test_no_sightings_look_at_nothing() -> None:
    usable = np.ones(10, bool)
    assert not handkeep.near_hands(None, usable, 25.0).any()
    seen = HandSightings(np.array([0, 5]), np.array([0.3, 0.0]))
    usable[2] = False
    assert np.flatnonzero(handkeep.near_hands(seen, usable, 25.0)).tolist() == [0, 1, 3, 4]
    # half a second either side at most: 2 frames at 4 fps
    assert np.flatnonzero(handkeep.near_hands(seen, np.ones(10, bool), 4.0)).tolist() == [0, 1, 2]


def test_a_hand_model_that_cannot_be_built_or_fails_keeps_no_hands() -> None:
    def unbuildable() -> None:
        raise RuntimeError("no hand model here")

    class Failing(Finder):
        def find(self, frame: np.ndarray, box: tuple[float, float, float, float]
                 ) -> list[np.ndarray]:
            raise RuntimeError("graph error")

    frame = np.zeros((400, 400, 3), np.uint8)
    with structlog.testing.capture_logs() as logs:
        broken = handkeep.HandKeeper(np.ones(3, bool), np.stack([FACE] * 3), make=unbuildable)
        assert broken.hands(0, frame) == [] and broken.hands(1, frame) == []
        assert keeper([1], Failing([REACHING])).hands(1, frame) == []
    events = [e["event"] for e in logs]
    assert events.count("engine.hands_unavailable") == 1  # tried once, not per frame
    assert events.count("engine.hands_failed") == 1


def test_a_batch_asks_for_the_hands_of_its_base_frames() -> None:
    """The hands kept in an output frame are those of its base template frame (the template
    plays back and forth); a frame that takes no mouth asks for none."""
    from heygemd.engines.builtin.engine import held_hands
    from heygemd.engines.builtin.render import Plan

    asked: list[int] = []

    class Asked(handkeep.HandKeeper):
        def hands(self, index: int, frame: np.ndarray) -> list[np.ndarray]:
            asked.append(index)
            return [REACHING] if index == 7 else []

    keep = Asked(np.ones(10, bool), np.stack([FACE] * 10))
    plan = Plan(base=np.array([9, 8, 7, 6]), source=np.zeros(4, np.int64),
                active=np.array([True, True, True, False]))
    frames = [np.zeros((4, 4, 3), np.uint8)] * 3
    held = held_hands(keep, plan, frames, [1, 2, 3])
    assert asked == [8, 7] and held is not None and [len(h) for h in held] == [0, 1, 0]
    assert held_hands(None, plan, frames, [1, 2, 3]) is None
    nothing = handkeep.HandKeeper(np.zeros(10, bool), np.stack([FACE] * 10))
    assert held_hands(nothing, plan, frames, [1, 2, 3]) is None  # nothing looked for


def test_a_frame_that_is_its_own_source_is_shown_as_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Frames whose mouth source is their base, or without a usable face, are given as decoded
    (the same arrays, never transplanted, no hands looked for); the others are transplanted,
    with their base frames' hands."""
    from heygemd.engines.builtin import render
    from heygemd.engines.builtin.engine import BuiltinEngine
    from heygemd.engines.builtin.render import Plan

    calls: list[tuple[list[tuple[int, int]], object]] = []

    def transplant(frames: list[np.ndarray], pairs: list[tuple[int, int]], analysis: object,
                   constants: object, device: str, hands: object = None) -> list[np.ndarray]:
        calls.append((pairs, hands))
        return [f + 1 for f in frames]

    monkeypatch.setattr(render, "transplant", transplant)
    engine = BuiltinEngine.__new__(BuiltinEngine)
    engine.device = "cpu"
    plan = Plan(base=np.array([4, 5, 6, 7]), source=np.array([9, 5, 2, 7]),
                active=np.array([True, True, True, False]))
    assert plan.transplanted.tolist() == [True, False, True, False]
    batch = [np.full((2, 2, 3), i, np.uint8) for i in range(4)]
    hands = [[REACHING], [], [], []]
    out = list(engine._flush(batch, [0, 1, 2, 3], plan, None, None, hands))  # type: ignore[arg-type]
    assert calls == [([(4, 9), (6, 2)], [[REACHING], []])]
    assert out[1] is batch[1] and out[3] is batch[3]
    assert (out[0] == 1).all() and (out[2] == 3).all()
