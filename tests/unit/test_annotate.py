"""Pictures of findings on synthetic frames: the frame shown whole (resized, nothing written over
it), the panel beside or below it, plain words, whole-word wrapping, unicode file names."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from heygemd.faces import landmarks as lm
from heygemd.faces.types import N_LANDMARKS, FaceObservation
from heygemd.report import Finding, Severity
from heygemd.validation import annotate


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
WARNING = Finding(
    code="low_resolution",
    severity=Severity.WARN,
    message="The video is 512x512, below 720p; it will work, but looks sharper from 720p.",
    value=512,
    limit=720,
)


def textured(height: int, width: int) -> np.ndarray:
    """A frame whose every pixel differs from its neighbours' (so a shifted copy never matches)."""
    return np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)


def shown_size(height: int, width: int) -> tuple[int, int]:
    scale = annotate.frame_scale(height, width)
    return round(height * scale), round(width * scale)


def test_the_frame_is_shown_unaltered_with_nothing_written_over_it() -> None:
    frame = textured(240, 320)
    out = annotate.annotate(frame, None, [REFUSAL], frame_index=12, fps=25.0)
    h, w = shown_size(240, 320)
    assert (h, w) == (480, 640)  # small frames are enlarged
    assert np.array_equal(out[:h, :w], annotate.fit_frame(frame))
    assert np.array_equal(out[:h, :w], cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR))
    assert out.shape[0] > h and out.shape[1] == w  # the panel is below, outside the frame
    assert (frame == textured(240, 320)).all()  # input untouched


def test_with_a_face_only_the_box_and_landmarks_touch_the_frame() -> None:
    frame = np.full((360, 480, 3), 128, np.uint8)
    face = synthetic_face()
    out = annotate.annotate(frame, face, [REFUSAL])
    scale = annotate.frame_scale(360, 480)
    h, w = shown_size(360, 480)
    area = out[:h, :w]
    x0, y0, x1, y1 = (round(c * scale) for c in face.box)
    outside = np.ones((h, w), bool)
    outside[y0 - 4 : y1 + 5, x0 - 4 : x1 + 5] = False
    assert (area[outside] == 128).all()  # no text, no band over the frame
    assert not (area[~outside] == 128).all()


def test_the_panel_says_it_in_plain_words() -> None:
    assert annotate.headline([REFUSAL]) == "Refused: the person is turned away from the camera"
    assert annotate.headline([WARNING]).startswith("Accepted, with a warning: the video is small")
    assert annotate.measured_text(REFUSAL) == (
        "turned 38\u00a0degrees away; at most 30\u00a0degrees allowed"
    )
    moment = annotate.moment_text(REFUSAL, synthetic_face(), 25, 25.0, yaw=63.2)
    assert moment == (
        "This picture is at 0:01.0 in the video; here the head is turned 63\u00a0degrees."
    )
    assert annotate.moment_text(REFUSAL, None, 25, None) == "In this picture no face was found."
    assert annotate.moment_text(WARNING, synthetic_face(), 50, 25.0) == (
        "This picture is at 0:02.0 in the video."
    )
    unknown = REFUSAL.model_copy(update={"code": "new_rule", "message": "Too blue; fix it."})
    assert annotate.headline([unknown]) == "Refused: Too blue"  # never the internal code
    for f in (REFUSAL, WARNING):
        text = annotate.headline([f]) + (annotate.measured_text(f) or "")
        assert f.code not in text and not re.search(r"[a-z]_[a-z]", text)


def test_box_is_red_for_refusals_and_amber_for_warnings() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)  # shown at scale 1
    face = synthetic_face()
    refused = annotate.annotate(frame, face, [REFUSAL])
    assert tuple(refused[80, 160]) == annotate.RED  # top edge of the box
    warning = REFUSAL.model_copy(update={"severity": Severity.WARN})
    warned = annotate.annotate(frame, face, [warning])
    assert tuple(warned[80, 160]) == annotate.AMBER
    assert tuple(refused[480 + 3, 5]) == annotate.RED  # the headline banner under the frame
    assert tuple(warned[480 + 3, 5]) == annotate.AMBER


def test_a_far_away_face_is_ringed_to_be_found_a_near_one_is_not() -> None:
    frame = np.zeros((720, 1280, 3), np.uint8)  # shown at scale 1
    ring = round(1280 * annotate.SMALL_FACE_RING)
    small = synthetic_face((500, 300, 530, 330))  # 4% of the height
    out = annotate.annotate(frame, small, [REFUSAL])
    assert tuple(out[315, 515 + ring]) == annotate.RED  # the ring's right edge
    big = synthetic_face((400, 200, 600, 400))
    out = annotate.annotate(frame, big, [REFUSAL])
    assert tuple(out[300, 500 + ring]) != annotate.RED


def test_landmarks_are_drawn_and_scaled_with_the_frame() -> None:
    frame = np.zeros((240, 320, 3), np.uint8)  # shown at scale 2
    face = synthetic_face()
    out = annotate.annotate(frame, face, [])
    for index in lm.EYE_CORNERS:
        x, y = (face.landmarks[index, :2] * 2).round().astype(int)
        assert tuple(out[y, x]) == annotate.LANDMARK


def test_the_mouth_is_ringed_for_mouth_findings() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    face = synthetic_face()
    covered = REFUSAL.model_copy(update={"code": "mouth_covered", "value": 0.9, "limit": 0.5})
    ringed = annotate.annotate(frame, face, [covered])[:480]
    plain = annotate.annotate(frame, face, [REFUSAL])[:480]
    red = (ringed == annotate.RED).all(axis=2).sum()
    assert red > (plain == annotate.RED).all(axis=2).sum() + 100


@pytest.mark.parametrize(
    ("height", "width", "shown"),
    [(240, 320, (480, 640)), (1920, 1080, (1280, 720)), (2160, 3840, (720, 1280)),
     (512, 512, (512, 512)), (100, 4000, (32, 1280))],
)  # fmt: skip
def test_canvas_sizes_are_sane(height: int, width: int, shown: tuple[int, int]) -> None:
    assert shown_size(height, width) == shown
    out = annotate.annotate(np.zeros((height, width, 3), np.uint8), None, [REFUSAL, WARNING])
    h, w = shown
    assert out.dtype == np.uint8 and out.shape[2] == 3
    if annotate.is_portrait(height, width):  # the panel is beside the frame
        assert out.shape[0] == h and w + 480 <= out.shape[1] <= w + 760
    else:  # the panel is below the frame, as wide as it
        assert out.shape[1] == w and h + 100 < out.shape[0] < h + 1200
    assert max(out.shape[:2]) <= 2100


def test_wrap_breaks_only_between_words() -> None:
    words = [f"word{i}" for i in range(60)] + ["43\u00a0degrees", "0:01.0", "(at", "most)"]
    text = " ".join(words)
    lines = annotate.wrap_words(text, 300, 0.6, 1)
    assert len(lines) > 5
    assert " ".join(lines).split(" ") == words  # every word whole, in order
    for line in lines:
        width = cv2.getTextSize(line.replace("\u00a0", " "), annotate.FONT, 0.6, 1)[0][0]
        assert width <= 300


def test_wrap_splits_a_word_only_when_it_cannot_fit_a_line() -> None:
    lines = annotate.wrap_words("short " + "x" * 80 + " end", 200, 0.6, 1)
    assert lines[0] == "short" and lines[-1].endswith("end")
    assert "".join(lines[1:])[:80] == "x" * 80


def test_long_messages_grow_the_panel_not_cover_the_frame() -> None:
    frame = textured(240, 320)
    long = REFUSAL.model_copy(update={"message": "word " * 200})
    out = annotate.annotate(frame, None, [long])
    assert np.array_equal(out[:480, :640], annotate.fit_frame(frame))
    assert out.shape[0] > 480 + 300


def test_ascii_text_maps_punctuation_and_accents() -> None:
    assert annotate.ascii_text("caf\u00e9 \u2014 30\u00b0 \u4eba") == "cafe - 30 deg "


def test_save_jpeg_with_a_unicode_name_decodes_to_the_same_size(tmp_path: Path) -> None:
    frame = np.zeros((300, 400, 3), np.uint8)
    frame[:, :200] = (255, 0, 0)
    path = tmp_path / "vid\u00e9o \u4e2d\u6587.refused.jpg"
    annotate.save_jpeg(path, frame)
    decoded = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (300, 400, 3)
    assert decoded[150, 50, 2] > 200 and decoded[150, 50, 0] < 60  # red stays red (BGR order)
