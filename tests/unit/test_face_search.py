"""Where the detector looks for small faces (tiles, zoomed squares) and how its boxes are merged:
the pure geometry, and FaceAnalyzer.detect_boxes driven by a stand-in detector that, like
mediapipe's, misses what is tiny in its 192-pixel input and reports small things too big."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from heygemd.faces import search
from heygemd.faces.analyze import FaceAnalyzer
from heygemd.settings import FaceSettings


@pytest.mark.parametrize(
    ("size", "count"), [((1280, 720), 8), ((1920, 1080), 8), ((1080, 1920), 3), ((720, 720), 4)]
)
def test_tiles_lie_in_the_frame_and_hold_every_small_face_whole(
    size: tuple[int, int], count: int
) -> None:
    width, height = size
    tiles = search.tile_squares(width, height)
    assert len(tiles) == count
    for x0, y0, side in tiles:
        assert 0 <= x0 <= width - side and 0 <= y0 <= height - side
    face = int(0.15 * height)  # a face this tall, anywhere, lies whole in some tile
    for x in range(0, width - face + 1, 7):
        for y in range(0, height - face + 1, 7):
            assert any(
                tx <= x and x + face <= tx + s and ty <= y and y + face <= ty + s
                for tx, ty, s in tiles
            ), (x, y)


def test_a_small_box_is_small_in_the_detector_input() -> None:
    assert search.input_px((0, 0, 29, 29), 1280, 720) == pytest.approx(29 * 192 / 1280)
    assert search.is_small((100, 100, 129, 129), 1280, 720)  # a 4% face of 720p
    assert not search.is_small((100, 100, 244, 244), 1280, 720)  # 20%


def test_zoom_square_is_centred_and_four_sides_wide() -> None:
    assert search.zoom_square((100, 200, 120, 230)) == (50, 155, 120)


def test_merge_keeps_one_box_per_face_the_best_scored() -> None:
    face = (100.0, 100.0, 130.0, 130.0)
    shifted = (102.0, 101.0, 131.0, 132.0)  # the same face from another tile
    part = (100.0, 100.0, 112.0, 130.0)  # the face cut at a tile's edge
    other = (300.0, 100.0, 330.0, 130.0)
    merged = search.merge_boxes([(part, 0.95), (face, 0.9), (shifted, 0.8), (other, 0.7)])
    assert merged == [(part, 0.95), (other, 0.7)]


def test_pick_in_takes_the_best_detection_centred_in_the_box() -> None:
    inflated = (80.0, 80.0, 150.0, 150.0)
    found = [((100.0, 100.0, 130.0, 130.0), 0.8), ((10.0, 10.0, 40.0, 40.0), 0.99)]
    assert search.pick_in(inflated, found) == found[0]
    assert search.pick_in(inflated, found[1:]) is None


class SquareDetector:
    """Finds white squares the way mediapipe's full-range detector finds faces: in the image
    letterboxed into 192 pixels, one under MISS of those pixels is missed, one under FLOOR is
    reported FLOOR wide (centred)."""

    MISS, FLOOR = 6.0, 10.0

    def __init__(self) -> None:
        self.calls = 0

    def process(self, image: np.ndarray) -> Any:
        self.calls += 1
        h, w = image.shape[:2]
        scale = search.DETECTOR_INPUT_PX / max(h, w)
        mask = (image[..., 0] > 200).astype(np.uint8)
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        found = []
        for x, y, bw, bh, _ in stats[1:]:
            side = max(bw, bh) * scale
            if side < self.MISS:
                continue
            half = max(side, self.FLOOR) / scale / 2
            cx, cy = x + bw / 2, y + bh / 2
            box = SimpleNamespace(xmin=(cx - half) / w, ymin=(cy - half) / h,
                                  width=2 * half / w, height=2 * half / h)
            found.append(SimpleNamespace(
                location_data=SimpleNamespace(relative_bounding_box=box), score=[0.9]))
        return SimpleNamespace(detections=found or None)

    def close(self) -> None:
        pass


def frame_with_square(side: int, size: tuple[int, int] = (1280, 720)) -> np.ndarray:
    width, height = size
    frame = np.zeros((height, width, 3), np.uint8)
    x0, y0 = int(0.4 * width), int(0.45 * height)
    frame[y0 : y0 + side, x0 : x0 + side] = 255
    return frame


@pytest.fixture
def detector() -> Iterator[tuple[FaceAnalyzer, SquareDetector]]:
    with FaceAnalyzer(FaceSettings()) as analyzer:
        analyzer._detector.close()
        fake = analyzer._detector = SquareDetector()
        yield analyzer, fake


def square_box(side: int) -> tuple[float, float, float, float]:
    return (512.0, 324.0, 512.0 + side, 324.0 + side)


def test_a_large_face_costs_one_detector_run(detector: tuple[FaceAnalyzer, SquareDetector]) -> None:
    analyzer, fake = detector
    [(box, _)] = analyzer.detect_boxes(frame_with_square(144))  # 20% of 720
    assert np.allclose(box, square_box(144), atol=1) and fake.calls == 1


def test_a_face_too_small_for_the_whole_frame_is_found_in_tiles_at_its_size(
    detector: tuple[FaceAnalyzer, SquareDetector],
) -> None:
    analyzer, fake = detector
    [(box, _)] = analyzer.detect_boxes(frame_with_square(29))  # 4% of 720: 4 input pixels
    assert np.allclose(box, square_box(29), atol=1)
    assert fake.calls == 1 + 8 + 1  # the whole frame, 8 tiles, the zoomed look


def test_a_face_reported_too_big_is_measured_again_zoomed_in(
    detector: tuple[FaceAnalyzer, SquareDetector],
) -> None:
    analyzer, fake = detector
    [(box, _)] = analyzer.detect_boxes(frame_with_square(50))  # 7%: 7.5 input px, told as 10
    assert np.allclose(box, square_box(50), atol=1) and fake.calls == 2


def test_no_face_searches_the_tiles_and_finds_nothing(
    detector: tuple[FaceAnalyzer, SquareDetector],
) -> None:
    analyzer, fake = detector
    assert analyzer.detect_boxes(np.zeros((720, 1280, 3), np.uint8)) == []
    assert fake.calls == 1 + 8
    assert analyzer.detect_boxes(np.zeros((720, 1280, 3), np.uint8), tiles=False) == []
    assert fake.calls == 1 + 8 + 1


def test_tracking_searches_tiles_on_every_redetect_th_frame_only() -> None:
    with FaceAnalyzer(FaceSettings(), tracking=True, redetect_every=5) as analyzer:
        analyzer._detector.close()
        fake = analyzer._detector = SquareDetector()
        empty = np.zeros((720, 1280, 3), np.uint8)
        runs = []
        for index in range(11):
            before = fake.calls
            assert analyzer.analyze(empty, index) == []
            runs.append(fake.calls - before)
    assert runs == [9, 1, 1, 1, 1, 9, 1, 1, 1, 1, 9]
