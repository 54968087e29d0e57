"""The builtin engine's face pass on a real close-up (c07: a frontal face filling a 512x512 frame,
chin cut off, that the full-range detector misses in 1 frame of 20): a face in every frame, and
short gaps bridged, long ones left empty, through the template analysis itself; the frame
pass's "face missing" warning only where the face is really gone."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from heygemd.cache import AnalysisCache
from heygemd.engines.builtin.analysis import analyse_template, face_pass
from heygemd.engines.builtin.hearing import Hearing
from heygemd.engines.builtin.listen import Listener
from heygemd.faces.analyze import FaceAnalyzer
from heygemd.faces.geometry import interocular
from heygemd.media.video import read_frames
from heygemd.settings import Settings
from heygemd.validation import examine

SETTINGS = Settings()
SCALE = SETTINGS.engine.builtin.analysis_scale
CLOSE_UP = "corpus/c07_en_hdtf_WDA_EdMarkey_sadtalker.mp4"
FRAMES = 100  # before: frames 40-41, 72-75 and 86 of these had no face (95%)
SHORT_GAP = (20, 21)  # frames without a face that are bridged
LONG_GAP = range(35, 55)  # 0.8 s without a face: not bridged


@pytest.fixture(scope="module")
def analyzer() -> Iterator[FaceAnalyzer]:
    with FaceAnalyzer(SETTINGS.faces, tracking=True) as built:
        yield built


def shrunk(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    size = (max(2, round(w * SCALE)), max(2, round(h * SCALE)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def no_face(frame: np.ndarray) -> np.ndarray:
    """A face-free picture of the same scene: the frame's top-left corner, enlarged, blurred."""
    h, w = frame.shape[:2]
    return cv2.GaussianBlur(cv2.resize(frame[: h // 8, : w // 4], (w, h)), (0, 0), 15)


def write(frames: list[np.ndarray], target: Path) -> Path:
    """H.264 at 25 fps, no sound."""
    with av.open(str(target), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(25))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return target


def test_a_close_up_has_a_face_in_every_frame(shared_media: Path, analyzer: FaceAnalyzer) -> None:
    frames = read_frames(shared_media / CLOSE_UP, range(FRAMES))
    analyzer.reset()
    faces = face_pass([shrunk(frames[i]) for i in range(FRAMES)], analyzer, SCALE, 25.0)
    found = ~np.isnan(faces.landmarks).any(axis=(1, 2))
    assert found.mean() >= 0.99
    assert not faces.bridged.any()  # every face measured, none filled in
    # one face followed, never a jump: the head moves a few pixels a frame, its size hardly
    sizes = np.array([interocular(p) for p in faces.landmarks[found]])
    steps = np.linalg.norm(np.diff(faces.landmarks[found, :, :2].mean(axis=1), axis=0), axis=1)
    assert steps.max() < 0.25 * np.median(sizes)
    assert sizes.min() / np.median(sizes) > 0.85 and sizes.max() / np.median(sizes) < 1.15
    assert np.abs(faces.pose[found, :2]).max() < 30.0


def test_short_gaps_are_bridged_and_long_ones_left_empty(
    shared_media: Path, analyzer: FaceAnalyzer, tmp_path: Path
) -> None:
    frames = read_frames(shared_media / CLOSE_UP, range(60))
    pictures = [no_face(frames[i]) if i in SHORT_GAP or i in LONG_GAP else frames[i]
                for i in range(60)]
    template = write(pictures, tmp_path / "gaps.mp4")
    analyzer.reset()
    hearing = Hearing(Listener(remember=0), use_worker=False)  # no sound: nothing to hear
    analysis, cached, _ = analyse_template(
        template, analyzer, hearing, AnalysisCache(tmp_path / "cache"), SCALE, lambda f: None)
    assert not cached
    assert np.flatnonzero(analysis.bridged).tolist() == list(SHORT_GAP)
    found = ~np.isnan(analysis.landmarks).any(axis=(1, 2))
    assert not found[list(LONG_GAP)].any() and not analysis.usable[list(LONG_GAP)].any()
    expected = np.ones(60, bool)
    expected[list(LONG_GAP)] = False
    assert (found == expected).all() and (analysis.usable == expected).all()
    # a bridged frame takes a mouth, it never gives one: its own mouth was not seen
    assert np.isnan(analysis.opening[list(SHORT_GAP)]).all()
    assert np.isfinite(analysis.opening[expected & ~analysis.bridged]).all()
    # its face lies between its neighbours', and its crop was kept like any other
    before, after = analysis.landmarks[SHORT_GAP[0] - 1], analysis.landmarks[SHORT_GAP[-1] + 1]
    middle = analysis.landmarks[SHORT_GAP[0]]
    span = np.abs(after - before)[:, :2].max() + 2.0
    assert np.abs(middle - before)[:, :2].max() <= span
    assert all(np.asarray(analysis.crops[i]).any() for i in SHORT_GAP)


def face_codes(path: Path, tmp_path: Path) -> dict[str, float | None]:
    with FaceAnalyzer(SETTINGS.faces) as analyzer:
        exam = examine.examine_video(path, analyzer, SETTINGS.validation, SETTINGS.limits,
                                     tmp_path)
    return {f.code: f.value for f in exam.findings if f.code in ("no_face", "face_missing_briefly")}


def test_face_missing_is_said_only_where_the_face_is_gone(
    shared_media: Path, tmp_path: Path
) -> None:
    # before: "No face was found in 8% of the video" (2 of 24 samples, plain frontal faces)
    assert face_codes(shared_media / CLOSE_UP, tmp_path) == {}
    frames = read_frames(shared_media / CLOSE_UP, range(100))
    gone = write([no_face(frames[i]) if 40 <= i < 80 else frames[i] for i in range(100)],
                 tmp_path / "gone.mp4")
    codes = face_codes(gone, tmp_path)
    assert list(codes) == ["face_missing_briefly"]
    assert codes["face_missing_briefly"] == pytest.approx(0.4, abs=0.1)
