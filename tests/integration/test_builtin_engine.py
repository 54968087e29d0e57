"""The builtin engine on a real talking clip and real speech (th08, 2.5 s of JFK)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heygemd.engines.base import AUDIO_RATE, EngineContext, RenderRequest
from heygemd.settings import Settings

SECONDS = 2.5


@pytest.fixture(scope="module")
def setup(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from heygemd.engines.builtin.engine import BuiltinEngine
    from heygemd.media.audio import load_audio
    from heygemd.media.probe import probe

    settings = Settings()
    cache = tmp_path_factory.mktemp("cache")
    ctx = EngineContext(
        settings=settings.engine, faces=settings.faces,
        paths=settings.paths.model_copy(update={"cache": cache}), device="cpu",
    )
    engine = BuiltinEngine(ctx)
    engine.prepare()
    template = shared_media / "talking" / "th08_woman_older_en_real3dportrait_May5s.mp4"
    speech = shared_media / "speech" / "en01_male_jfk_inaugural_11s.flac"
    audio = load_audio(speech, rate=AUDIO_RATE)[: int(SECONDS * AUDIO_RATE)]
    info = probe(template)
    assert info.video is not None
    request = RenderRequest(template=template, info=info, audio=audio, fps=info.video.avg_fps)
    progress: list[float] = []
    first = engine.render(request, progress.append)
    frames = list(first.frames)
    second = engine.render(request, lambda f: None)
    yield {
        "engine": engine, "request": request, "first": first, "frames": frames,
        "second": second, "progress": progress, "settings": settings,
    }
    engine.close()


def _template_frames(path: Path, count: int) -> list[np.ndarray]:
    from heygemd.media.video import VideoReader

    with VideoReader(path) as reader:
        return [f for _, f in zip(range(count), reader, strict=False)]


def test_renders_the_right_number_of_frames_of_the_right_size(setup: dict) -> None:
    request, first, frames = setup["request"], setup["first"], setup["frames"]
    assert len(frames) == request.frame_count == first.frame_count == round(SECONDS * 25)
    assert all(f.shape == (first.height, first.width, 3) == (512, 512, 3) for f in frames)
    assert first.metrics["template_cached"] == 0.0
    assert first.metrics["frames_passed_through"] == 0.0
    assert setup["progress"] and max(setup["progress"]) <= 1.0


def test_mouth_changes_and_the_rest_stays(setup: dict) -> None:
    engine, request, frames = setup["engine"], setup["request"], setup["frames"]
    analysis = engine.analysis_of(request.template)
    template = _template_frames(request.template, len(frames))  # ping-pong: no turn in 62 frames
    side = analysis.crops.shape[1]
    mouth_diffs, outside_diffs = [], []
    for t, (out, base) in enumerate(zip(frames, template, strict=True)):
        x0, y0 = analysis.crop_origin[t]
        lips = analysis.landmarks[t, [61, 291, 0, 17], :2]
        (mx0, my0), (mx1, my1) = lips.min(axis=0).astype(int), lips.max(axis=0).astype(int)
        diff = np.abs(out.astype(int) - base.astype(int))
        mouth_diffs.append(diff[my0:my1, mx0:mx1].mean())
        outside = diff.copy()
        outside[y0 : y0 + side, x0 : x0 + side] = 0
        outside_diffs.append(outside.max())
    assert max(outside_diffs) == 0  # nothing outside the lower-face crop is touched
    assert np.mean(np.array(mouth_diffs) > 3.0) > 0.5  # most frames show another mouth


def test_second_run_hits_the_cache(setup: dict) -> None:
    second = setup["second"]
    assert second.metrics["template_cached"] == 1.0
    first_frame = next(second.frames)
    assert np.array_equal(first_frame, setup["frames"][0])


def test_output_mouth_follows_the_audio(setup: dict) -> None:
    from heygemd.engines.builtin import audio_features as af
    from heygemd.engines.builtin.motion import pearson
    from heygemd.faces.analyze import FaceAnalyzer
    from heygemd.faces.geometry import mouth_opening

    frames, request = setup["frames"], setup["request"]
    with FaceAnalyzer(setup["settings"].faces, tracking=True) as analyzer:
        opening = []
        for i, frame in enumerate(frames):
            faces = analyzer.analyze(frame, i)
            opening.append(mouth_opening(faces[0].landmarks) if faces else np.nan)
    opening_arr = np.array(opening)
    env = af.envelope(af.loudness_db(request.audio, request.fps, len(frames)))
    ok = np.isfinite(opening_arr)
    assert ok.mean() > 0.9
    assert pearson(opening_arr[ok], env[ok]) > 0.2
    assert setup["first"].metrics["sync_r"] > 0.2
