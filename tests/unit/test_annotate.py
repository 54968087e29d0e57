"""Pictures of findings on synthetic frames: size kept, box/landmarks/text drawn, unicode names."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from heygemd import annotate
from heygemd.faces.types import N_LANDMARKS, FaceObservation
from heygemd.report import Finding, Severity


def synthetic_face(box: tuple[float, float, float, float] = (100, 80, 220, 240)) -> FaceObservation:
    rng = np.random.default_rng(0)
    x0, y0, x1, y1 = box
    pts = np.zeros((N_LANDMARKS, 3), np.float32)
    pts[:, 0] = rng.uniform(x0 + 10, x1 - 10, N_LANDMARKS)
    pts[:, 1] = rng.uniform(y0 + 10, y1 - 10, N_LANDMARKS)
    return FaceObservation(
        frame_index=12, box=box, score=0.9, landmarks=pts, yaw=38.4, pitch=-3.0, roll=0.0
    )


REFUSAL = Finding(
    code="face_turned",
    severity=Severity.REFUSE,
    message="The person is turned 38 degrees away from the camera \u2014 turn to face it.",
    value=38.0,
    limit=30.0,
    frame_index=12,
)


def test_annotate_keeps_size_and_leaves_input_untouched() -> None:
    frame = np.full((360, 480, 3), 128, np.uint8)
    out = annotate.annotate(frame, synthetic_face(), [REFUSAL], frame_index=12, occlusion=0.1)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert (frame == 128).all()
    assert not np.array_equal(out, frame)


def test_box_is_red_for_refusals_and_amber_for_warnings() -> None:
    frame = np.zeros((360, 480, 3), np.uint8)
    face = synthetic_face()
    refused = annotate.annotate(frame, face, [REFUSAL])
    assert tuple(refused[80, 160]) == annotate.RED  # top edge of the box
    warning = REFUSAL.model_copy(update={"severity": Severity.WARN})
    warned = annotate.annotate(frame, face, [warning])
    assert tuple(warned[80, 160]) == annotate.AMBER


def test_landmarks_are_drawn_inside_the_box() -> None:
    frame = np.zeros((360, 480, 3), np.uint8)
    face = synthetic_face()
    out = annotate.annotate(frame, face, [])
    x, y = face.landmarks[0, :2].round().astype(int)
    assert tuple(out[y, x]) == annotate.LANDMARK


def test_reason_text_band_is_drawn_at_the_bottom() -> None:
    frame = np.full((360, 480, 3), 200, np.uint8)
    out = annotate.annotate(frame, None, [REFUSAL])
    bottom, top = out[-60:], out[:100]
    assert (top == 200).all()  # nothing drawn up there without a face
    assert bottom.mean() < 150  # darkened band
    assert (bottom.min(axis=2) > 180).any()  # light text on the dark band


def test_long_messages_wrap_within_the_frame() -> None:
    frame = np.full((240, 320, 3), 200, np.uint8)
    long = REFUSAL.model_copy(update={"message": "word " * 200})
    out = annotate.annotate(frame, None, [long])
    assert out.shape == frame.shape
    assert out[0].mean() < 200  # the band filled the whole (small) frame height


def test_ascii_text_maps_punctuation_and_accents() -> None:
    assert annotate.ascii_text("caf\u00e9 \u2014 30\u00b0 \u4eba") == "cafe - 30 deg "
    assert annotate.measurement_text(None, None) == "no face found"
    assert annotate.measurement_text(synthetic_face(), 0.82) == (
        "yaw 38 deg  pitch -3 deg  mouth covered 0.82"
    )


def test_save_jpeg_with_a_unicode_name_decodes_to_the_same_size(tmp_path: Path) -> None:
    frame = np.zeros((300, 400, 3), np.uint8)
    frame[:, :200] = (255, 0, 0)
    path = tmp_path / "vid\u00e9o \u4e2d\u6587.refused.jpg"
    annotate.save_jpeg(path, frame)
    decoded = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (300, 400, 3)
    assert decoded[150, 50, 2] > 200 and decoded[150, 50, 0] < 60  # red stays red (BGR order)
