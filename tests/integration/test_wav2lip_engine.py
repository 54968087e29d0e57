"""A real talking-head clip and real speech through Wav2LipEngine with a randomly initialised
generator, loaded from a checkpoint saved the way Wav2Lip's training code saved it.

Kept short (22 frames): the 36 M-parameter generator is slow on a shared CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from heygemd.contract import AUDIO_RATE
from heygemd.engines.base import RenderRequest, create_engine
from heygemd.engines.wav2lip.engine import Wav2LipEngine
from heygemd.engines.wav2lip.framing import ping_pong_index
from heygemd.engines.wav2lip.model import Wav2LipGenerator
from heygemd.errors import JobInterrupted, ResourceError
from heygemd.faces import landmarks as lm
from heygemd.faces.analyze import FaceAnalyzer
from heygemd.media.audio import load_audio
from heygemd.media.probe import probe
from heygemd.media.video import read_frames
from heygemd.settings import Settings
from tests.mediagen import make_video
from tests.unit.test_wav2lip_checkpoint import save_training_checkpoint

FPS = 25.0
SPEECH_S = 0.48  # 12 frames of speech ...
SILENCE_S = 0.4  # ... then 10 frames of silence
MAX_EDGE_STEP = 20  # grey levels: the largest change right at the edge of the pasted region


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wav2LipEngine]:
    models = tmp_path_factory.mktemp("models")
    torch.manual_seed(3)
    save_training_checkpoint(Wav2LipGenerator(), models / "wav2lip_gan.pth", prefix="module.")
    settings = Settings()
    built = create_engine(
        settings.engine.model_copy(update={"name": "wav2lip"}),
        settings.faces,
        settings.paths.model_copy(update={"models": models}),
        "cpu",
    )
    assert isinstance(built, Wav2LipEngine)
    assert built.problems() == []
    built.prepare()
    yield built
    built.close()


@pytest.fixture(scope="module")
def template(shared_media: Path) -> Path:
    return shared_media / "talking" / "th08_woman_older_en_real3dportrait_May5s.mp4"


@pytest.fixture(scope="module")
def audio(speech_files: list[Path]) -> np.ndarray:
    jfk = load_audio(next(p for p in speech_files if p.name.startswith("en01")))
    speech = jfk[int(0.4 * AUDIO_RATE) : int((0.4 + SPEECH_S) * AUDIO_RATE)]
    return np.concatenate([speech, np.zeros(int(SILENCE_S * AUDIO_RATE), dtype=np.float32)])


@pytest.fixture(scope="module")
def rendered(
    engine: Wav2LipEngine, template: Path, audio: np.ndarray
) -> tuple[list[np.ndarray], dict[str, float], list[float]]:
    request = RenderRequest(template=template, info=probe(template), audio=audio, fps=FPS)
    progress: list[float] = []
    rendering = engine.render(request, progress.append)
    assert progress == []  # lazy: nothing happens before the frames are asked for
    assert (rendering.width, rendering.height, rendering.frame_count) == (512, 512, 22)
    frames = list(rendering.frames)
    return frames, rendering.metrics, progress


@pytest.fixture(scope="module")
def originals(template: Path) -> list[np.ndarray]:
    found = read_frames(template, range(22))
    return [found[i] for i in range(22)]


def test_frame_count_size_and_metrics(
    rendered: tuple[list[np.ndarray], dict[str, float], list[float]],
) -> None:
    frames, metrics, progress = rendered
    assert len(frames) == 22
    assert all(f.shape == (512, 512, 3) and f.dtype == np.uint8 for f in frames)
    assert metrics["frames_total"] == 22
    assert metrics["frames_passed_through"] == 0  # th08 shows her face throughout
    assert metrics["frames_generated"] + metrics["frames_silent"] == 22
    assert metrics["frames_silent"] >= 5
    assert progress == sorted(progress) and progress[-1] == 1.0


def test_silent_frames_keep_the_template(
    rendered: tuple[list[np.ndarray], dict[str, float], list[float]],
    originals: list[np.ndarray],
) -> None:
    frames, _, _ = rendered
    for out, original in zip(frames[-5:], originals[-5:], strict=True):
        assert np.array_equal(out, original)
    assert not np.array_equal(frames[3], originals[3])


def test_changes_stay_in_the_lower_face_with_a_soft_edge(
    rendered: tuple[list[np.ndarray], dict[str, float], list[float]],
    originals: list[np.ndarray],
) -> None:
    frames, _, _ = rendered
    with FaceAnalyzer(Settings().faces) as analyzer:
        for index in (0, 5, 10):
            [face] = analyzer.analyze(originals[index], index)
            points = face.landmarks
            diff = np.abs(frames[index].astype(np.int16) - originals[index]).max(axis=2)
            rows, cols = np.nonzero(diff)
            assert len(rows) > 1000
            eye_y = points[list(lm.EYE_CORNERS), 1].max()
            oval = points[list(lm.FACE_OVAL)]
            assert rows.min() > eye_y  # eyes and everything above untouched
            assert rows.max() < oval[:, 1].max() + 20  # nothing far below the chin
            assert cols.min() > oval[:, 0].min() - 15 and cols.max() < oval[:, 0].max() + 15
            assert edge_step(diff) <= MAX_EDGE_STEP


def test_decoded_frames_paste_the_same_faces(
    engine: Wav2LipEngine, template: Path, audio: np.ndarray,
    rendered: tuple[list[np.ndarray], dict[str, float], list[float]],
    originals: list[np.ndarray],
) -> None:
    """Asked for decoded frames (as the pipeline asks), the engine gives th08's frames as
    YuvFrames: the template's pixels where the RGB render kept them (but for the 2x2 chroma
    blocks a pasted pixel shares), the pasted faces within 4:2:0 rounding of the RGB render's."""
    from heygemd.media.yuv import YuvFrame, as_rgb

    frames, _, _ = rendered
    request = RenderRequest(template=template, info=probe(template), audio=audio, fps=FPS,
                            yuv_frames=True)
    made = list(engine.render(request, lambda fraction: None).frames)
    assert len(made) == 22 and all(isinstance(f, YuvFrame) for f in made)
    for out, rgb, original in zip(made, frames, originals, strict=True):
        got = as_rgb(out).astype(int)
        pasted = np.any(rgb != original, axis=2)
        near = pasted.reshape(256, 2, 256, 2).any(axis=(1, 3)).repeat(2, 0).repeat(2, 1)
        assert np.array_equal(got[~near], original[~near])
        if pasted.any():
            assert np.abs(got[pasted] - rgb[pasted]).mean() < 3.0


def edge_step(diff: np.ndarray) -> int:
    """Largest change at a pixel next to an unchanged one (a hard paste edge would be large)."""
    changed = diff > 0
    edge = np.zeros_like(changed)
    edge[1:] |= changed[1:] & ~changed[:-1]
    edge[:-1] |= changed[:-1] & ~changed[1:]
    edge[:, 1:] |= changed[:, 1:] & ~changed[:, :-1]
    edge[:, :-1] |= changed[:, :-1] & ~changed[:, 1:]
    return int(diff[edge].max())


def test_faceless_template_loops_ping_pong_and_passes_through(
    engine: Wav2LipEngine, audio: np.ndarray, tmp_path: Path
) -> None:
    video = make_video(tmp_path / "pattern.mp4", width=96, height=64, seconds=0.4, audio=False)
    template = [read_frames(video, range(10))[i] for i in range(10)]
    request = RenderRequest(template=video, info=probe(video), audio=audio, fps=FPS)
    rendering = engine.render(request, lambda fraction: None)
    frames = list(rendering.frames)
    assert len(frames) == 22
    for out_index, frame in enumerate(frames):
        assert np.array_equal(frame, template[ping_pong_index(out_index, 10)]), out_index
    assert rendering.metrics["template_frames"] == 10
    assert rendering.metrics["frames_generated"] == 0
    assert rendering.metrics["frames_passed_through"] == 22


def test_gpu_out_of_memory_becomes_a_resource_error(
    engine: Wav2LipEngine, template: Path, audio: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr("heygemd.engines.wav2lip.engine.paste_batch", out_of_memory)
    request = RenderRequest(template=template, info=probe(template), audio=audio, fps=FPS)
    with pytest.raises(ResourceError, match="lower engine.wav2lip.batch_size"):
        list(engine.render(request, lambda fraction: None).frames)


def test_interruption_from_progress_goes_through(
    engine: Wav2LipEngine, template: Path, audio: np.ndarray
) -> None:
    def interrupt(fraction: float) -> None:
        raise JobInterrupted()

    request = RenderRequest(template=template, info=probe(template), audio=audio, fps=FPS)
    with pytest.raises(JobInterrupted):
        list(engine.render(request, interrupt).frames)


def test_a_finger_at_the_chin_is_kept_in_front(
    engine: Wav2LipEngine, shared_media: Path, audio: np.ndarray, tmp_path: Path
) -> None:
    """c18 touches her chin and lower lip with a finger (frames 8-22): told where the frame
    pass saw it (its real sightings), the engine pastes its mouth around the finger; without
    them the paste covers the finger's tip."""
    from heygemd.faces.hands import HandFinder, hand_mask, kept_hands
    from heygemd.validation import examine

    settings = Settings()
    clip = shared_media / "corpus" / "c18_zh_talkvid_eth_asian_2_talkvid.mp4"
    with FaceAnalyzer(settings.faces) as faces:
        exam = examine.examine_video(clip, faces, settings.validation, settings.limits,
                                     tmp_path)
    info = probe(clip)
    assert info.video is not None
    outputs = {}
    for told in (True, False):
        request = RenderRequest(template=clip, info=info, audio=audio, fps=info.video.avg_fps,
                                hands=(lambda: exam.hands) if told else None)
        outputs[told] = list(engine.render(request, lambda f: None).frames)
    bases = read_frames(clip, range(22))
    with FaceAnalyzer(settings.faces) as faces, HandFinder() as finder:
        for t in (10, 11):  # speech frames (24 fps), the finger up to the lower lip
            base = bases[t].astype(np.int16)
            [face] = faces.analyze(bases[t], t)
            finger = hand_mask(kept_hands(finder.find(bases[t], face.box), face.landmarks),
                               base.shape[:2], (0, 0))
            # found again on another window than the engine's, the hand's edge moves a few
            # pixels: its inside is compared
            inside = cv2.erode(finger, np.ones((7, 7), np.uint8)).astype(bool)
            covered = inside & (np.abs(outputs[False][t] - base).max(axis=2) > 10)
            assert covered.sum() > 100, t  # the paste reaches the finger
            assert np.abs(outputs[True][t] - base).max(axis=2)[covered].max() <= 2, t
