"""The tracking FaceAnalyzer follows a face the detector misses: driven by stand-ins for the
detectors and the mesh (a white square is the face; a blind detector misses it), so that what is
followed, re-detected and lost is exact."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from heygemd.faces.analyze import FaceAnalyzer
from heygemd.faces.types import N_LANDMARKS
from heygemd.settings import FaceSettings

SIZE = 320


def white_box(image: np.ndarray) -> tuple[float, float, float, float] | None:
    ys, xs = np.nonzero(image[..., 1] > 200)
    if len(xs) == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


class Detector:
    """Finds the white square unless ``blind``."""

    def __init__(self, blind: bool = False) -> None:
        self.blind = blind
        self.calls = 0

    def process(self, image: np.ndarray) -> Any:
        self.calls += 1
        box = None if self.blind else white_box(image)
        if box is None:
            return SimpleNamespace(detections=None)
        h, w = image.shape[:2]
        rel = SimpleNamespace(xmin=box[0] / w, ymin=box[1] / h, width=(box[2] - box[0]) / w,
                              height=(box[3] - box[1]) / h)
        return SimpleNamespace(detections=[SimpleNamespace(
            location_data=SimpleNamespace(relative_bounding_box=rel), score=[0.9])])

    def close(self) -> None:
        pass


class Mesh:
    """478 points spread over the white square of the crop it is given (none without one)."""

    def __init__(self) -> None:
        self.calls = 0
        self.layout = np.random.default_rng(0).uniform(0.1, 0.9, (N_LANDMARKS, 2))

    def process(self, crop: np.ndarray) -> Any:
        self.calls += 1
        box = white_box(crop)
        if box is None:
            return SimpleNamespace(multi_face_landmarks=None)
        h, w = crop.shape[:2]
        xs = (box[0] + self.layout[:, 0] * (box[2] - box[0])) / w
        ys = (box[1] + self.layout[:, 1] * (box[3] - box[1])) / h
        marks = [SimpleNamespace(x=x, y=y, z=0.0) for x, y in zip(xs, ys, strict=True)]
        return SimpleNamespace(multi_face_landmarks=[SimpleNamespace(landmark=marks)])

    def close(self) -> None:
        pass


def frame(x: int, face: bool = True) -> np.ndarray:
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    if face:
        image[100:200, x : x + 100] = 255
    return image


@pytest.fixture
def analyzer() -> Iterator[tuple[FaceAnalyzer, Detector, Detector, Mesh]]:
    with FaceAnalyzer(FaceSettings(), tracking=True, redetect_every=5) as built:
        for graph in (built._detector, built._near, built._mesh):
            graph.close()
        far, near, mesh = Detector(), Detector(), Mesh()
        built._detector, built._near, built._mesh = far, near, mesh
        yield built, far, near, mesh


def test_a_face_the_detectors_miss_at_a_redetection_is_followed(
    analyzer: tuple[FaceAnalyzer, Detector, Detector, Mesh],
) -> None:
    built, far, near, _ = analyzer
    fresh = []
    for i in range(12):
        # the detectors miss every frame from 3 on; the mesh still finds the face
        far.blind = near.blind = i >= 3
        faces = built.analyze(frame(100 + i), i)
        assert len(faces) == 1
        assert faces[0].landmarks[:, 0].min() >= 100 + i  # on this frame's square
        fresh.append(built.was_fresh)
    # detected at 0; followed (not fresh) from 1 on; the detectors tried again at 5 and 10
    # (the whole frame, the short-range look, then the 4 tiles of a 320x320 frame)
    assert fresh == [True] + [False] * 11
    assert far.calls == 1 + 5 + 5 and near.calls == 2


def test_a_face_really_gone_is_lost_and_looked_for_again(
    analyzer: tuple[FaceAnalyzer, Detector, Detector, Mesh],
) -> None:
    built, far, near, mesh = analyzer
    found = [len(built.analyze(frame(100, face=not 3 <= i <= 4), i)) for i in range(7)]
    assert found == [1, 1, 1, 0, 0, 1, 1]
    assert built.was_fresh is False  # frame 6 followed frame 5's face
    # frame 3: the mesh lost, the detectors found nothing, the mesh tried on the wider crop
    assert far.calls == 1 + 2 + 1  # frames 0, 3, 4, 5 (tiles only at 0 and 5: found there)
    assert near.calls == 2  # frames 3 and 4


def test_the_short_range_model_is_the_detectors_second_try(
    analyzer: tuple[FaceAnalyzer, Detector, Detector, Mesh],
) -> None:
    built, far, near, _ = analyzer
    far.blind = True
    boxes = built.detect_boxes(frame(100), tiles=False)
    assert [tuple(round(v) for v in box) for box, _ in boxes] == [(100, 100, 200, 200)]
    assert far.calls == 1 and near.calls == 1
    near.blind = True
    assert built.detect_boxes(frame(100), tiles=False) == []


def test_would_track_and_a_fresh_start_agree_from_a_detection_on(
    analyzer: tuple[FaceAnalyzer, Detector, Detector, Mesh],
) -> None:
    built, *_ = analyzer
    for i in range(5):
        built.analyze(frame(100 + i), i)
    assert not built.would_track(5)  # the detector's turn
    first = built.analyze(frame(105), 5)
    assert built.was_fresh
    built.reset()
    again = built.analyze(frame(105), 5)
    np.testing.assert_array_equal(first[0].landmarks, again[0].landmarks)
    assert built.would_track(6)
