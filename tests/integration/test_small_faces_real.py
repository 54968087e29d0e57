"""Far-away speakers: real faces shrunk onto larger frames are found at their size and refused as
too small, never as "no face"; frames without a face still show none."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from heygemd.faces.analyze import FaceAnalyzer
from heygemd.media.video import read_frames
from heygemd.settings import Settings
from heygemd.validation import examine

SETTINGS = Settings()
FACE_CLIP = "talking/th08_woman_older_en_real3dportrait_May5s.mp4"
LANDSCAPE, PORTRAIT = (1280, 720), (1080, 1920)
Box = tuple[float, float, float, float]


def background(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A face-free scene of size (width, height): the frame's top-left corner, enlarged and
    blurred."""
    corner = frame[: max(8, frame.shape[0] // 8), : max(8, frame.shape[1] // 4)]
    return cv2.GaussianBlur(cv2.resize(corner, size), (0, 0), 15)


def far_away(frame: np.ndarray, box: Box, share: float, size: tuple[int, int]) -> np.ndarray:
    """``frame`` scaled so that the face ``box`` is ``share`` of a (width, height) frame's
    height, pasted with the face a little left of and above the centre onto
    :func:`background`. uint8 (height, width, 3) RGB."""
    width, height = size
    scale = share * height / (box[3] - box[1])
    small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    out = background(frame, size)
    x0 = int(round(0.4 * width - (box[0] + box[2]) / 2 * scale))
    y0 = int(round(0.45 * height - (box[1] + box[3]) / 2 * scale))
    h, w = small.shape[:2]
    out[max(y0, 0) : y0 + h, max(x0, 0) : x0 + w] = small[max(-y0, 0) :, max(-x0, 0) :][
        : height - max(y0, 0), : width - max(x0, 0)
    ]
    return out


@pytest.fixture(scope="module")
def analyzer() -> Iterator[FaceAnalyzer]:
    with FaceAnalyzer(SETTINGS.faces) as built:
        yield built


@pytest.fixture(scope="module")
def faces(talking_clips: list[Path], analyzer: FaceAnalyzer) -> list[tuple[np.ndarray, Box]]:
    """Frame 10 of every talking clip and its speaker's face box."""
    out = []
    for path in talking_clips:
        frame = read_frames(path, [10])[10]
        out.append((frame, analyzer.analyze(frame, 10)[0].box))
    return out


@pytest.mark.parametrize("size", [LANDSCAPE, PORTRAIT], ids=["1280x720", "1080x1920"])
@pytest.mark.parametrize("share", [0.04, 0.05])
def test_a_small_real_face_is_found_at_its_size(
    faces: list[tuple[np.ndarray, Box]], analyzer: FaceAnalyzer, share: float,
    size: tuple[int, int],
) -> None:
    for frame, box in faces:
        found = analyzer.analyze(far_away(frame, box, share, size), 0)
        assert len(found) == 1
        measured = found[0].height / size[1]
        assert 0.8 * share < measured < 1.15 * share < SETTINGS.validation.min_face_fraction


def test_frames_without_a_face_still_show_none(
    faces: list[tuple[np.ndarray, Box]], analyzer: FaceAnalyzer
) -> None:
    for frame, _ in faces:
        for size in (LANDSCAPE, PORTRAIT):
            assert analyzer.analyze(background(frame, size), 0) == []
    assert analyzer.analyze(np.full((720, 1280, 3), 128, np.uint8), 0) == []


def make_far_away_video(source: Path, target: Path, share: float, seconds: float = 2.0) -> Path:
    """The first ``seconds`` of ``source`` with its speaker far away (:func:`far_away`, the face
    ``share`` of a 1280x720 frame's height), H.264 at 25 fps, no sound."""
    count = int(seconds * 25)
    frames = read_frames(source, range(count))
    with FaceAnalyzer(SETTINGS.faces) as analyzer:
        box = analyzer.analyze(frames[0], 0)[0].box
    with av.open(str(target), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height = LANDSCAPE
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "20"}
        for i in range(count):
            picture = far_away(frames[i], box, share, LANDSCAPE)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return target


@pytest.mark.parametrize("share", [0.04, 0.05])
def test_a_far_away_speaker_is_refused_as_too_small_not_as_no_face(
    shared_media: Path, tmp_path: Path, analyzer: FaceAnalyzer, share: float
) -> None:
    video = make_far_away_video(shared_media / FACE_CLIP, tmp_path / "far.mp4", share)
    exam = examine.examine_video(
        video, analyzer, SETTINGS.validation, SETTINGS.limits, tmp_path / "pictures"
    )
    codes = {f.code: f for f in exam.findings}
    assert "no_face" not in codes and "face_missing_briefly" not in codes
    small = codes["face_too_small"]
    assert small.severity == "refuse"
    assert small.value is not None and 0.8 * share < float(small.value) < 0.06
    assert "The face is too small" in small.message and "closer" in small.message
    assert "well lit" not in " ".join(f.message for f in exam.findings)
    assert small.picture in exam.pictures
