"""faces.hands: how much of a lower face a hand's outline covers (pure, synthetic points), the
finder's window and filter (a stand-in graph), and a frame pass whose finder fails."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from heygemd.faces import hands
from heygemd.faces.types import N_LANDMARKS, FaceObservation, SampledFrame


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


def test_a_hand_with_a_point_not_finite_is_passed_over_and_a_far_one_costs_nothing() -> None:
    face = oval_face()
    reaching = upright_hand(200.0, 330.0, finger=60.0)
    broken = reaching.copy()
    broken[8] = np.nan
    assert hands.hand_cover([broken], face) == 0.0
    far = upright_hand(20000.0, 20000.0)
    assert hands.hand_cover([far, reaching], face) == hands.hand_cover([reaching], face) > 0.0


class _Graph:
    """A stand-in for mediapipe Hands: answers two hands in the window it is given."""

    def __init__(self, scores: tuple[float, float]) -> None:
        self.scores = scores
        self.seen: list[tuple[int, ...]] = []

    def process(self, image: np.ndarray) -> SimpleNamespace:
        self.seen.append(image.shape)
        point = SimpleNamespace(x=0.5, y=0.25)
        hand = SimpleNamespace(landmark=[point] * 21)
        sides = [SimpleNamespace(classification=[SimpleNamespace(score=s)]) for s in self.scores]
        return SimpleNamespace(multi_hand_landmarks=[hand, hand], multi_handedness=sides)

    def close(self) -> None:
        pass


def finder_with(graph: _Graph) -> hands.HandFinder:
    finder = hands.HandFinder.__new__(hands.HandFinder)
    finder._hands = graph
    return finder


def test_the_finder_looks_around_the_face_and_keeps_only_confident_hands() -> None:
    graph = _Graph((0.95, 0.65))  # a hand, and a beard taken for one
    frame = np.zeros((720, 1280, 3), np.uint8)
    [hand] = finder_with(graph).find(frame, (500.0, 100.0, 600.0, 220.0))
    # a face box wide either side, from its top to 1.5 boxes below: x 400-700, y 100-400
    assert graph.seen == [(300, 300, 3)]
    np.testing.assert_allclose(hand[0], (400 + 0.5 * 300, 100 + 0.25 * 300))
    assert finder_with(graph).find(frame, (-50.0, 700.0, -40.0, 719.0)) == []  # no window


def test_a_frame_pass_whose_hand_finder_fails_goes_on_without_hands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from heygemd.validation import examine

    def broken() -> None:
        raise RuntimeError("no hand model here")

    monkeypatch.setattr(examine, "HandFinder", broken)
    assert examine._hand_finder() is None

    class Faces:
        def analyze(self, frame: np.ndarray, index: int) -> list[FaceObservation]:
            return [FaceObservation(index, (100.0, 100.0, 300.0, 300.0), 0.9, oval_face(),
                                    0.0, 0.0, 0.0)]

    class Failing:
        def find(self, frame: np.ndarray, box: tuple[float, ...]) -> list[np.ndarray]:
            raise RuntimeError("graph error")

    frame = np.full((400, 400, 3), 128, np.uint8)
    for finder in (None, Failing()):
        sample = examine._Looker(Faces(), finder)(7, frame, 0)  # type: ignore[arg-type]
        assert sample.frame_index == 7 and len(sample.faces) == 1 and len(sample.occlusions) == 1
        assert sample.hand_covers == []


def test_a_hand_seen_at_a_sample_marks_the_frames_up_to_its_neighbours() -> None:
    """A hand seen at one sample may have come and gone anywhere between the samples beside it;
    a sample whose cover is not known (no face, a finder that failed) starts nothing."""
    seen = hands.HandSightings(frames=np.array([0, 8, 16, 24, 32]),
                               cover=np.array([0.0, 0.02, np.nan, 0.0, 0.1]))
    near = seen.near(40, reach=100)
    assert np.flatnonzero(near).tolist() == [*range(1, 16), *range(25, 40)]
    # at most ``reach`` frames from the sample (samples seconds apart in a long video)
    assert np.flatnonzero(seen.near(40, reach=3)).tolist() == [*range(5, 12), *range(29, 36)]
    assert not hands.HandSightings(np.array([0, 8]), np.array([0.0, 0.0])).near(10, 9).any()
    assert not hands.HandSightings(np.zeros(0, np.int64), np.zeros(0)).near(5, 9).any()
    # samples beyond the frames asked about mark nothing outside them
    assert hands.HandSightings(np.array([3, 50]), np.array([0.5, 0.0])).near(10, 99).all()


def test_the_hands_kept_in_front_are_those_at_the_lower_face() -> None:
    face = oval_face()
    reaching = upright_hand(200.0, 330.0, finger=60.0)
    beside = upright_hand(400.0, 330.0)  # beside the face: not in front of it
    inside = upright_hand(200.0, 230.0, finger=10.0)  # wholly inside the face: no hand
    kept = hands.kept_hands([reaching, beside, inside], face)
    assert len(kept) == 1 and np.array_equal(kept[0], reaching)
    assert hands.kept_hands([reaching], np.full_like(face, np.nan)) == []
    # the mask of what is kept, drawn in a window whose top-left lies at (150, 250)
    mask = hands.hand_mask(kept, (100, 100), (150, 250))
    assert mask[330 - 250 - 10, 200 - 150] == 1 and mask[5, 5] == 0
    assert not hands.hand_mask([], (10, 10), (0, 0)).any()


def test_the_frame_pass_hands_its_sightings_over_before_its_rules(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """examine_frames gives ``seen`` the speaker's hand cover per sample as soon as the samples
    are known (decoded, or read back from the face cache), before the rules and pictures."""
    from heygemd.media.types import MediaInfo, VideoStreamInfo
    from heygemd.settings import Settings
    from heygemd.validation import examine, rules

    samples = [SampledFrame(i, [FaceObservation(k, (140.0, 120.0, 260.0, 280.0), 0.9,
                                                oval_face(), 0.0, 0.0, 0.0)],
                            [0.1], hand_covers=[cover], lights=[150.0])
               for k, (i, cover) in enumerate(((0, 0.0), (8, 0.05), (16, 0.0)))]  # by position
    events: list[str] = []
    handed: list[hands.HandSightings] = []

    def seen(sightings: hands.HandSightings) -> None:
        events.append("seen")
        handed.append(sightings)

    real_rules = rules.validate_video

    def judged(*args: Any, **kw: Any) -> Any:
        events.append("rules")
        return real_rules(*args, **kw)

    class Known:
        def recall(self, path: Path) -> tuple[None, tuple[list[SampledFrame], tuple[int, int]]]:
            return None, (samples, (400, 400))

    monkeypatch.setattr(examine.rules, "validate_video", judged)
    monkeypatch.setattr(examine, "sample_frames", lambda *a, **k: (samples, (400, 400)))
    video = VideoStreamInfo(codec="h264", width=400, height=400, rotation=0, avg_fps=25.0,
                            real_fps=25.0, is_vfr=False, frame_count=20, duration=0.8,
                            pix_fmt="yuv420p", bit_rate=None)
    checked = examine.VideoExamination(MediaInfo(path="clip.mp4", container="mp4", duration=0.8,
                                                 size_bytes=1, bit_rate=None, video=video),
                                       [], [])
    settings = Settings()
    for cache in (None, Known()):
        events.clear()
        handed.clear()
        exam = examine.examine_frames(tmp_path / "clip.mp4", checked, object(),  # type: ignore[arg-type]
                                      settings.validation, settings.limits, tmp_path,
                                      face_cache=cache, seen=seen)  # type: ignore[arg-type]
        assert events == ["seen", "rules"]
        assert handed[0].frames.tolist() == [0, 8, 16]
        np.testing.assert_allclose(handed[0].cover, [0.0, 0.05, 0.0])
        assert exam.hands is handed[0]
