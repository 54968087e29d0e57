"""Pipeline.process_video: the frames are examined beside the engine's planning, and the
frames' verdict decides (synthetic video, a scripted frame pass, a scripted engine)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from heygemd import allocator
from heygemd.contract import AUDIO_RATE, ProgressFn
from heygemd.engines.base import Engine, Rendering, RenderRequest
from heygemd.errors import ProcessingError
from heygemd.faces.analyze import FaceAnalyzer
from heygemd.media.tap import FrameTap
from heygemd.media.video import VideoReader
from heygemd.pipeline import AudioCheck, Pipeline
from heygemd.report import AudioResult, Finding, Severity, VideoStatus
from heygemd.settings import Settings
from heygemd.validation import examine
from heygemd.validation.facecache import FaceCache
from tests.mediagen import make_video

NO_FACE = Finding(code="no_face", severity=Severity.REFUSE, message="No face was found.")


class ScriptedEngine:
    """Plans for ``plan_seconds`` (reporting progress as it goes), then streams grey frames."""

    name = "scripted"
    version = "1"

    def __init__(self, plan_seconds: float = 0.0, fail: bool = False,
                 break_at: int | None = None, metrics: dict[str, float] | None = None) -> None:
        self.plan_seconds = plan_seconds
        self.metrics = metrics or {}  # what the engine reports of the video
        self.fail = fail
        self.break_at = break_at  # the frame stream raises here
        self.planning = threading.Event()
        self.stopped_by: BaseException | None = None
        self.closed = False

    def prepare(self) -> None: ...

    def problems(self) -> list[str]:
        return []

    def close(self) -> None: ...

    def render(self, request: RenderRequest, progress: ProgressFn) -> Rendering:
        self.planning.set()
        deadline = time.monotonic() + self.plan_seconds
        try:
            while time.monotonic() < deadline:
                progress(0.1)
                time.sleep(0.01)
        except BaseException as err:
            self.stopped_by = err
            raise
        if self.fail:
            raise ProcessingError("the engine broke", code="engine_failed")
        count = request.frame_count
        info = request.info.video
        assert info is not None

        def frames() -> Iterator[np.ndarray]:
            try:
                for i in range(count):
                    progress(i / count)
                    if i == self.break_at:
                        raise ProcessingError("the engine broke mid-video", code="engine_failed")
                    yield np.full((info.height, info.width, 3), 128, np.uint8)
            finally:
                self.closed = True

        return Rendering(info.width, info.height, request.fps, count, frames(),
                         dict(self.metrics))


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return make_video(tmp_path / "clip.mp4", width=320, height=240, seconds=1.2)


def run(video: Path, engine: ScriptedEngine, frame_pass: Any,
        monkeypatch: pytest.MonkeyPatch, progress: ProgressFn | None = None,
        analyzer: Any = None) -> Any:
    """process_video with ``frame_pass`` standing in for examine.examine_frames."""
    monkeypatch.setattr(examine, "examine_frames", frame_pass)
    pipeline = Pipeline.from_settings(Settings(), cast(Engine, engine))
    # the scripted pass needs none; the preview's measuring gets this one
    pipeline._analyzer = cast(FaceAnalyzer, analyzer or object())
    samples = np.zeros(int(1.2 * AUDIO_RATE), np.float32)
    audio = AudioCheck(video, AudioResult(name="a.wav", accepted=True), samples)
    return pipeline.process_video(video, audio, video.parent / "out.mp4", video.parent / "pics",
                                  progress or (lambda f: None))


def test_the_frames_are_examined_while_the_engine_plans(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = ScriptedEngine(plan_seconds=0.3)
    overlapped: list[bool] = []

    def frame_pass(path: Path, checked: examine.VideoExamination, *args: Any, **kw: Any) -> Any:
        overlapped.append(engine.planning.wait(5))  # only true if the engine plans meanwhile
        assert isinstance(kw["face_cache"], FaceCache)  # a template sent again is not re-read
        return checked

    result = run(video, engine, frame_pass, monkeypatch)
    assert overlapped == [True]
    assert result.status is VideoStatus.DONE and (video.parent / "out.mp4").stat().st_size > 0
    assert set(result.timings_ms) == {"examine", "render"} and engine.closed
    assert result.preview is None  # this test's stand-in analyzer cannot measure: no preview


def test_a_refusal_found_meanwhile_stops_the_engine_and_decides(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = ScriptedEngine(plan_seconds=30.0)  # would plan for long: it is stopped instead

    def frame_pass(path: Path, checked: examine.VideoExamination, *args: Any, **kw: Any) -> Any:
        return examine.VideoExamination(checked.info, [NO_FACE], [])

    t0 = time.monotonic()
    result = run(video, engine, frame_pass, monkeypatch)
    assert time.monotonic() - t0 < 5
    assert result.status is VideoStatus.REJECTED and result.reason_code == "no_face"
    assert engine.stopped_by is not None and not (video.parent / "out.mp4").exists()


@pytest.mark.parametrize("refused", [True, False])
def test_an_engine_error_counts_only_when_the_frames_pass(
    video: Path, monkeypatch: pytest.MonkeyPatch, refused: bool
) -> None:
    engine = ScriptedEngine(fail=True)

    def frame_pass(path: Path, checked: examine.VideoExamination, *args: Any, **kw: Any) -> Any:
        time.sleep(0.1)  # the engine fails first
        return examine.VideoExamination(checked.info, [NO_FACE] if refused else [], [])

    result = run(video, engine, frame_pass, monkeypatch)
    if refused:
        assert result.status is VideoStatus.REJECTED and result.reason_code == "no_face"
    else:
        assert result.status is VideoStatus.FAILED and result.reason_code == "engine_failed"


def test_progress_comes_from_the_job_thread_and_only_grows(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = ScriptedEngine(plan_seconds=0.2)
    calls: list[tuple[float, str]] = []

    def frame_pass(path: Path, checked: examine.VideoExamination, *args: Any, **kw: Any) -> Any:
        report = args[-1]
        for i in range(30):
            report(i / 30)
            time.sleep(0.02)
        return checked

    def progress(fraction: float) -> None:
        calls.append((fraction, threading.current_thread().name))

    result = run(video, engine, frame_pass, monkeypatch, progress)
    assert result.status is VideoStatus.DONE
    fractions = [f for f, _ in calls]
    assert {name for _, name in calls} == {threading.current_thread().name}
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)


class SlowFaces:
    """A preview analyzer that takes its time and finds no face."""

    def __init__(self) -> None:
        self.calls = 0

    def analyze(self, frame: np.ndarray, frame_index: int) -> list[Any]:
        self.calls += 1
        time.sleep(0.05)
        return []


def measuring_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "preview-measure"]


def test_an_encode_broken_mid_video_leaves_no_preview_thread(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faces = SlowFaces()
    result = run(video, ScriptedEngine(break_at=20), lambda p, checked, *a, **k: checked,
                 monkeypatch, analyzer=faces)
    assert result.status is VideoStatus.FAILED and result.reason_code == "engine_failed"
    assert faces.calls >= 1 and not measuring_threads()  # it measured, then it was ended


def test_the_preview_is_measured_during_the_encode_and_drawn(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faces = SlowFaces()
    (video.parent / "pics").mkdir()
    result = run(video, ScriptedEngine(), lambda p, checked, *a, **k: checked, monkeypatch,
                 analyzer=faces)
    assert result.status is VideoStatus.DONE and result.preview == "out.preview.jpg"
    assert (video.parent / "pics" / "out.preview.jpg").is_file()
    kept = range(0, int(result.metrics["frames"]), 6)  # 25 fps: every 6th frame
    assert faces.calls == len(kept) and not measuring_threads()


class DecodingEngine(ScriptedEngine):
    """Decodes the template in order before planning, offering each frame to the request's tap
    (as the builtin engine's analysis does); ``fail_after``: raises after that many frames."""

    offers_template_frames = True

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__(fail=False)
        self.fail_after = fail_after
        self.tap: FrameTap | None = None

    def render(self, request: RenderRequest, progress: ProgressFn) -> Rendering:
        self.tap = request.tap
        assert request.tap is not None
        with VideoReader(request.template) as reader:
            for index, frame in enumerate(reader):
                if index == self.fail_after:
                    raise ProcessingError("the engine broke", code="engine_failed")
                request.tap.offer(index, frame)
                progress(0.01)
        request.tap.close(finished=True)
        return super().render(request, progress)


class NoFaces:
    def analyze(self, frame: np.ndarray, index: int) -> list:
        return []


def sampling_pass(taken: list[list[int]]) -> Any:
    """A frame pass that samples the frames for real (no faces to find) through the tap."""

    def frame_pass(path: Path, checked: examine.VideoExamination, *args: Any, **kw: Any) -> Any:
        samples, _ = examine.sample_frames(path, cast(FaceAnalyzer, NoFaces()),
                                           Settings().validation, tap=kw["tap"])
        taken.append([s.frame_index for s in samples])
        return checked

    return frame_pass


def test_the_frame_pass_takes_its_samples_from_the_engines_decode(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[list[int]] = []
    engine = DecodingEngine()
    result = run(video, engine, sampling_pass(taken), monkeypatch)
    assert result.status is VideoStatus.DONE
    own, _ = examine.sample_frames(video, cast(FaceAnalyzer, NoFaces()), Settings().validation)
    assert taken == [[s.frame_index for s in own]]
    assert engine.tap is not None and engine.tap.handed == len(own) > 1


def test_an_engine_that_fails_mid_decode_leaves_the_frame_pass_to_decode_the_rest(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[list[int]] = []
    engine = DecodingEngine(fail_after=10)
    result = run(video, engine, sampling_pass(taken), monkeypatch)
    own, _ = examine.sample_frames(video, cast(FaceAnalyzer, NoFaces()), Settings().validation)
    assert taken == [[s.frame_index for s in own]]  # every sample, none waited for in vain
    assert engine.tap is not None and 0 < engine.tap.handed < len(own)
    assert result.status is VideoStatus.FAILED and result.reason_code == "engine_failed"


def test_an_engine_that_does_not_offer_frames_gets_no_tap(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    result = run(video, ScriptedEngine(), lambda p, checked, *a, **k: seen.append(k["tap"])
                 or checked, monkeypatch)
    assert result.status is VideoStatus.DONE and seen == [None]


def test_what_the_engine_found_reaches_the_report_and_result_txt(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine that allowed for the template's own sound out of step: the made video's
    findings say so, and RESULT.txt lists it among the warnings."""
    from heygemd.daemon.outbox import result_text
    from heygemd.report import JobReport, JobStatus

    engine = ScriptedEngine(metrics={"template_offset_ms": 240.0,
                                     "template_offset_corrected": 1.0})
    result = run(video, engine, lambda path, checked, *a, **kw: checked, monkeypatch)
    assert result.status is VideoStatus.DONE
    said = [f for f in result.findings if f.code == "sound_out_of_step"]
    assert [(f.severity, f.file, f.value) for f in said] == [(Severity.WARN, "clip.mp4", 240.0)]
    assert result.metrics["template_offset_ms"] == 240.0
    report = JobReport(job_id="j1", job_name="lesson", status=JobStatus.DONE, videos=[result])
    text = result_text(report)
    assert "Warnings (the video was still made):" in text
    assert "clip.mp4: Your original video's own sound is about 240 ms behind its picture" in text


def test_the_engine_asks_for_the_frame_passs_hand_sightings(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RenderRequest.hands gives what the frame pass saw of hands as soon as its samples are
    known, while the pass still draws its pictures."""
    from heygemd.faces.hands import HandSightings

    seen = HandSightings(np.array([0, 10]), np.array([0.0, 0.2]))
    drawing = threading.Event()
    asked: list[Any] = []

    class Asking(ScriptedEngine):
        def render(self, request: RenderRequest, progress: ProgressFn) -> Rendering:
            assert request.hands is not None
            asked.append(request.hands())
            asked.append(drawing.is_set())
            return super().render(request, progress)

    def frame_pass(path: Path, checked: examine.VideoExamination, *args: Any, **kw: Any) -> Any:
        kw["seen"](seen)
        time.sleep(0.3)  # the rules and pictures
        drawing.set()
        return checked

    result = run(video, Asking(), frame_pass, monkeypatch)
    assert asked == [seen, False] and result.status is VideoStatus.DONE


@pytest.mark.parametrize("how", ["gone", "damaged"])
def test_the_jobs_audio_unreadable_at_the_encode_fails_the_video_without_blaming_the_user(
    video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The sound track is read again as each video is encoded: an audio file checked at the
    job's start and gone or changed since is the service's failure, not a refusal."""
    from tests.mediagen import write_noise

    sound = tmp_path / "a.wav"
    if how == "damaged":
        write_noise(sound, 2048, seed=1)
    monkeypatch.setattr(examine, "examine_frames", lambda path, checked, *a, **k: checked)
    pipeline = Pipeline.from_settings(Settings(), cast(Engine, ScriptedEngine()))
    pipeline._analyzer = cast(FaceAnalyzer, object())
    audio = AudioCheck(sound, AudioResult(name="a.wav", accepted=True),
                       np.zeros(int(1.2 * AUDIO_RATE), np.float32))
    result = pipeline.process_video(video, audio, tmp_path / "out.mp4", tmp_path / "pics",
                                    lambda f: None)
    assert result.status is VideoStatus.FAILED and result.reason_code == "audio_reread_failed"
    assert "a.wav" in result.message and "operator" in result.message
    assert not list(tmp_path.glob("*out*"))  # neither the video nor its partial file


@pytest.mark.parametrize(("error", "machine"), [
    ("OSError", True),  # EIO: a share's fault
    ("InvalidDataError", False),  # the file changed since it was checked
])
def test_the_jobs_audio_failing_mid_encode_is_the_machines_or_the_services(
    video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: str, machine: bool
) -> None:
    """The decoder failing after the sound has begun: an errno (a share gone) is the
    machine's fault (the job waits and is tried again), anything else fails the video; no
    partial file is left either way."""
    import errno

    import av.error

    from heygemd.errors import MachineFault
    from heygemd.media import audio as media_audio
    from tests.mediagen import make_audio

    sound = make_audio(tmp_path / "a.wav", seconds=1.2)
    pulled = [0]
    real = media_audio.TrackStream._pull

    def failing() -> Iterator[Any]:
        raise getattr(av.error, error)(errno.EIO, "from the test")
        yield  # a generator, as the decoder's is

    def pull(stream: Any) -> None:
        pulled[0] += 1
        if pulled[0] == 3:  # the third packet: the first blocks are encoded already
            stream._frames = failing()
        real(stream)

    monkeypatch.setattr(media_audio.TrackStream, "_pull", pull)
    monkeypatch.setattr(examine, "examine_frames", lambda path, checked, *a, **k: checked)
    pipeline = Pipeline.from_settings(Settings(), cast(Engine, ScriptedEngine()))
    pipeline._analyzer = cast(FaceAnalyzer, object())
    audio = AudioCheck(sound, AudioResult(name="a.wav", accepted=True),
                       np.zeros(int(1.2 * AUDIO_RATE), np.float32))

    def made() -> Any:
        return pipeline.process_video(video, audio, tmp_path / "out.mp4", tmp_path / "pics",
                                      lambda f: None)

    if machine:
        with pytest.raises(MachineFault):
            made()
    else:
        result = made()
        assert result.status is VideoStatus.FAILED
        assert result.reason_code == "audio_reread_failed"
    assert pulled[0] == 3 and not list(tmp_path.glob("*out*"))


def test_the_video_is_made_with_the_allocator_fitted_to_its_frames(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fitted: list[tuple[int, int]] = []
    rendered_within: list[bool] = []

    @contextmanager
    def frames_of(width: int, height: int) -> Iterator[None]:
        fitted.append((width, height))
        yield
        fitted.append((0, 0))  # left

    class Watched(ScriptedEngine):
        def render(self, request: RenderRequest, progress: ProgressFn) -> Rendering:
            rendered_within.append(fitted == [(320, 240)])
            return super().render(request, progress)

    monkeypatch.setattr(allocator, "frames_of", frames_of)
    result = run(video, Watched(), lambda path, checked, *a, **kw: checked, monkeypatch)
    assert result.status is VideoStatus.DONE
    assert rendered_within == [True] and fitted == [(320, 240), (0, 0)]
