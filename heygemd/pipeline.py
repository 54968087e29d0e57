"""One video through the stages: examine -> validate -> engine -> encode.

Knows nothing of inbox, outbox or job folders: the caller (the daemon, `heygemd eval`, a bench)
names the input files and where the output goes, and gets typed results back. One bad video
becomes a VideoResult with a reason, never an exception that stops the job's other videos.

A video whose container passes (and whose job audio was accepted) has its frames examined in a
worker thread while the engine plans the video (``Engine.render``, which only analyses and
plans: frames are made when the encoder pulls them). Nothing is encoded before the verdict; a
refusal found meanwhile stops the engine at its next progress call. On short clips the frame
pass (~0.3 s for 5 s at 512x512) is then hidden behind the engine's planning.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from heygemd import allocator, faults, names, preview
from heygemd.contract import AUDIO_RATE, ProgressFn, progress_span
from heygemd.engines.base import Engine, Rendering, RenderRequest
from heygemd.errors import (
    DiskFull,
    HeygemError,
    InputRejected,
    MachineFault,
    MediaError,
    ProcessingError,
    ResourceError,
)
from heygemd.faces.analyze import FaceAnalyzer, Follower
from heygemd.faces.hands import HandSightings
from heygemd.media.audio import TrackStream
from heygemd.media.tap import FrameTap
from heygemd.media.types import MediaInfo
from heygemd.media.video import frames_for
from heygemd.media.writer import VideoWriter
from heygemd.media.yuv import Colour
from heygemd.report import (
    AUDIO_REREAD_FAILED,
    AudioResult,
    Finding,
    Severity,
    VideoResult,
    VideoStatus,
)
from heygemd.settings import (
    FaceSettings,
    LimitSettings,
    OutputSettings,
    Settings,
    ValidationSettings,
)
from heygemd.timing import ms_since
from heygemd.validation import annotate, examine
from heygemd.validation.facecache import FaceCache
from heygemd.validation.framepass import FramePass, RefusedMeanwhile, Shares, Sightings
from heygemd.validation.rules import refusals
from heygemd.validation.rules.common import clock
from heygemd.validation.rules.media import sound_out_of_step

log = structlog.get_logger(__name__)

EXAMINE_SHARE = 0.1  # of a video's progress; rendering and encoding are the rest
UNREADABLE = "unreadable_file"


def unreadable_words(name: str) -> str:
    """A refusal for a file the service may not read (pure)."""
    return (f"The service is not allowed to read {name} (the file's permissions let only its "
            "owner read it). Copy the file again, or ask the operator to make it readable.")


@dataclass(frozen=True)
class AudioCheck:
    """The job's audio, examined once and shared by all its videos."""

    path: Path
    result: AudioResult
    samples: np.ndarray | None  # float32 (N,) mono at AUDIO_RATE; None when refused
    # the job's output settings: its videos are encoded with them, each with ``path``'s sound
    # decoded at their audio_rate as it is encoded (a job.toml may override the configured ones)
    output: OutputSettings = field(default_factory=OutputSettings)


class JobSound:
    """The job's audio read again as one video's sound track (a media.audio.Track over a
    TrackStream). It was checked at the job's start, so a failure to read it now is not the
    user's to fix: ProcessingError (AUDIO_REREAD_FAILED), chained to the MediaError and what
    FFmpeg said, where a machine's fault (a share gone) shows."""

    def __init__(self, path: Path, rate: int) -> None:
        self.name = path.name
        with self._rereading():
            self._stream = TrackStream(path, rate)
        self.channels = self._stream.channels

    @contextmanager
    def _rereading(self) -> Iterator[None]:
        try:
            yield
        except MediaError as err:
            log.warning("audio.reread_failed", file=self.name, code=err.code, error=err.message)
            raise ProcessingError(
                f"The job's audio ({self.name}) could not be read again for this video's sound; "
                "the operator has the details in the log.", code=AUDIO_REREAD_FAILED,
            ) from err

    def read(self, count: int) -> np.ndarray:
        with self._rereading():
            return self._stream.read(count)

    def length(self) -> int:
        with self._rereading():
            return self._stream.length()

    def __enter__(self) -> JobSound:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()


class Pipeline:
    """Built once per daemon (heavy things in startup()), then used for every video. Holds
    the sections that are the same for every job; a job's output settings travel with its
    audio check (:meth:`check_audio`)."""

    def __init__(
        self, engine: Engine, *, validation: ValidationSettings, limits: LimitSettings,
        faces: FaceSettings, output: OutputSettings, face_cache: FaceCache,
    ) -> None:
        self.engine = engine
        self.validation, self.limits, self.faces = validation, limits, faces
        self.output = output  # the configured output settings, for jobs that bring none
        self.face_cache = face_cache
        self._analyzer: FaceAnalyzer | None = None

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> Pipeline:
        """A pipeline of the configured sections (validation, limits, faces, output, the
        cache under paths)."""
        cache = FaceCache(settings.paths.cache, settings.faces, settings.validation,
                          settings.paths.cache_max_bytes())
        return cls(engine, validation=settings.validation, limits=settings.limits,
                   faces=settings.faces, output=settings.output, face_cache=cache)

    def startup(self) -> None:
        """Prepare the engine, then build the face analyzer; a failure in either leaves
        nothing running (what the engine had started is closed)."""
        try:
            # the engine first: the builtin engine's hearing worker boots (~2 s) beside the rest
            self.engine.prepare()
            self._analyzer = FaceAnalyzer(self.faces)
        except BaseException:
            self.engine.close()
            raise

    def shutdown(self) -> None:
        if self._analyzer is not None:
            self._analyzer.close()
            self._analyzer = None
        self.engine.close()

    @property
    def analyzer(self) -> FaceAnalyzer:
        if self._analyzer is None:
            raise RuntimeError("Pipeline.startup() was not called")
        return self._analyzer

    def check_audio(
        self, audio: Path, progress: ProgressFn | None = None, *,
        output: OutputSettings | None = None,
    ) -> AudioCheck:
        """Examine the job's audio once for all its videos. ``output``: the job's output
        settings (default: the configured ones); its videos are encoded with them. ``progress``
        gets the fraction of the check done (decoding, then the VAD pass) at least every half
        second of work; it may raise JobInterrupted, which propagates."""
        output = output or self.output
        t0 = time.monotonic()
        try:
            exam = examine.examine_audio(audio, self.validation, self.limits, progress)
        except OSError as err:
            if not faults.is_unreadable_input(err, audio):
                raise
            log.warning("audio.unreadable", file=audio.name, error=str(err))
            refusal = Finding(code=UNREADABLE, severity=Severity.REFUSE, file=audio.name,
                              message=unreadable_words(audio.name))
            return AudioCheck(audio, AudioResult(name=audio.name, accepted=False,
                                                 findings=[refusal]), None, output=output)
        accepted = exam.samples is not None and not refusals(exam.findings)
        log.info(
            "audio.examined",
            file=audio.name,
            accepted=accepted,
            findings=[f.code for f in exam.findings],
            duration_ms=ms_since(t0),
        )
        result = AudioResult(
            name=audio.name,
            accepted=accepted,
            findings=exam.findings,
            media=exam.info.summary() if exam.info else {},
        )
        return AudioCheck(audio, result, exam.samples if accepted else None, output=output)

    def process_video(
        self,
        video: Path,
        audio: AudioCheck,
        output: Path,
        pictures_dir: Path,
        progress: ProgressFn,
    ) -> VideoResult:
        """Examine ``video``; if acceptable, lip-sync it to ``audio`` into ``output`` (MP4).

        Annotated pictures of findings go into ``pictures_dir``. When the container passes and the
        job's audio was accepted, the frames are examined beside the engine's planning
        (:mod:`heygemd.validation.framepass`); nothing is encoded before their verdict. ``progress``
        gets the fraction of the video done (examining is EXAMINE_SHARE of it, rendering the rest),
        from this thread, at least once per engine progress report or a quarter second of waiting.
        Never raises for bad input or engine failure (those become the result); lets JobInterrupted
        (raised by ``progress``) through, and raises MachineFault (DiskFull when the disk fills)
        when a file cannot be read or written for the machine's reasons (full, read-only, forbidden,
        not answering): the caller keeps the video for later.
        """
        timings: dict[str, float] = {}
        bound = log.bind(video=video.name)
        try:
            cfg, limits = self.validation, self.limits
            checked = examine.check_container(video, cfg, limits)
            if (audio.samples is not None and examine.needs_frame_pass(checked)
                    and not refusals(checked.findings)):
                # the preview's frames are measured in a thread: it ends however the video ends
                with _frames_memory(checked), \
                        preview.Sampler(Follower(self.analyzer)) as sampler:
                    return self._examine_beside_render(video, checked, audio, output,
                                                       pictures_dir, progress, bound, timings,
                                                       sampler)
            with _stage(bound, timings, "examine"):
                exam = checked
                if examine.needs_frame_pass(checked):
                    exam = examine.examine_frames(
                        video, checked, self.analyzer, cfg, limits, pictures_dir,
                        progress_span(progress, 0.0, EXAMINE_SHARE), face_cache=self.face_cache,
                    )
            return _rejection(video, exam, timings)  # refused, or the job's audio was
        except InputRejected as err:
            return _failure(video, VideoStatus.REJECTED, err.code, err.message, timings)
        except Exception as err:
            if faults.is_unreadable_input(err, video):  # the user's to fix: say how
                bound.warning("video.unreadable", error=str(err))
                return _failure(video, VideoStatus.REJECTED, UNREADABLE,
                                unreadable_words(video.name), timings)
            if faults.is_out_of_space(err):  # the machine's: the job waits for space
                bound.error("video.disk_full", error=str(err))
                raise DiskFull("No space was left on the disk while this video was being "
                               "made.", folder=str(output.parent)) from err
            if faults.os_error(err) is not None and faults.is_machine_fault(err):
                bound.error("video.machine_fault", error=str(err))
                raise MachineFault("A file could not be read or written while this video was "
                                   "being made.", folder=str(output.parent)) from err
            if isinstance(err, ResourceError):
                bound.error("video.resource_error", code=err.code, error=err.message)
                return _failure(video, VideoStatus.FAILED, err.code, err.message, timings)
            if isinstance(err, HeygemError):
                bound.error("video.failed", code=err.code, error=err.message)
                return _failure(video, VideoStatus.FAILED, err.code, err.message, timings)
            # one broken video must not stop the job's others; the details (which may name
            # server paths) go to the log, the user reads plain words
            bound.exception("video.internal_error")
            msg = ("Something went wrong on our side while making this video (an internal "
                   f"error, {type(err).__name__}); the operator has the details in the log.")
            return _failure(video, VideoStatus.FAILED, "internal_error", msg, timings)

    def _examine_beside_render(
        self,
        video: Path,
        checked: examine.VideoExamination,
        audio: AudioCheck,
        output: Path,
        pictures_dir: Path,
        progress: ProgressFn,
        bound: Any,
        timings: dict[str, float],
        sampler: preview.Sampler,
    ) -> VideoResult:
        """The frame pass in a worker thread while the engine plans; encode on its verdict;
        the preview (``sampler`` keeps and measures its frames during the encode).

        Progress: the frame pass is EXAMINE_SHARE of the video, the engine the rest, reported
        from this thread only (the caller's callback need not be thread-safe). A refusal found
        while the engine plans stops the engine at its next progress call; an engine error
        counts only when the frames pass.
        """
        info, samples = checked.info, audio.samples
        assert info is not None and info.video is not None and samples is not None
        cfg, limits = self.validation, self.limits
        # the frame pass takes its samples from the engine's decode of the template, if any
        tap = FrameTap() if getattr(self.engine, "offers_template_frames", False) else None
        seen = Sightings()
        bound.info("stage.start", stage="examine")
        bound.info("stage.start", stage="render", beside="examine")
        t0 = time.monotonic()
        rendering: Rendering | None = None
        failure: Exception | None = None

        def examining(report: ProgressFn) -> examine.VideoExamination:
            try:
                return examine.examine_frames(video, checked, self.analyzer, cfg, limits,
                                              pictures_dir, report, face_cache=self.face_cache,
                                              tap=tap, seen=seen.put)
            finally:  # however the pass ends, the engine's decode is never held for it
                if tap is not None:
                    tap.stop()

        with FramePass(examining) as frames:
            shares = Shares(progress, frames, EXAMINE_SHARE)

            def sightings() -> HandSightings | None:
                if tap is not None:  # an engine asking offers no more frames: never held
                    tap.close()
                return seen.wait(frames, shares.waiting)

            # the writer takes decoded frames: template pixels need not go through RGB
            request = RenderRequest(template=video, info=info, audio=samples,
                                    fps=info.video.avg_fps, tap=tap, hands=sightings,
                                    yuv_frames=True)
            try:
                try:
                    rendering = self.engine.render(request, shares.rendering)
                except RefusedMeanwhile:
                    pass
                except Exception as err:  # the frames' verdict decides whether this counts
                    failure = err
                finally:
                    if tap is not None:  # whatever the engine did, it offers no more now
                        tap.close()
                exam = frames.wait(shares.waiting)
                timings["examine"] = frames.duration_ms
                bound.info("stage.finish", stage="examine", duration_ms=timings["examine"])
                refused = bool(refusals(exam.findings))
                if failure is not None and not refused:
                    raise failure
                if refused or rendering is None:
                    return _rejection(video, exam, timings)
                # the frame pass has ended: its analyzer measures the preview's frames now
                sampler.pace(rendering.frame_count, rendering.fps)
                metrics, encoder = self._encode(rendering, audio, output, shares.rendering,
                                                sampler, video_colour(exam.info))
            finally:
                _close(rendering)
        timings["render"] = ms_since(t0)
        bound.info("stage.finish", stage="render", duration_ms=timings["render"],
                   beside_examine_ms=timings["examine"], **metrics)
        shown = self._preview(sampler, audio, rendering.fps, int(metrics["frames"]), output,
                              pictures_dir, bound, timings)
        return _done(video, output, exam, audio, timings, metrics).model_copy(
            update={"preview": shown, "encoder": encoder})

    def _preview(
        self, sampler: preview.Sampler, audio: AudioCheck, fps: float, frame_count: int,
        output: Path, pictures_dir: Path, bound: Any, timings: dict[str, float],
    ) -> str | None:
        """``<stem>.preview.jpg`` in ``pictures_dir``: its name, or None when it could not
        be made (logged; the video stands). A full or unwritable disk raises as usual."""
        assert audio.samples is not None
        name = names.fit(output.stem, preview.SUFFIX)
        try:
            with _stage(bound, timings, "preview") as facts:
                image = preview.picture(sampler, sampler.analyzer, audio.samples, fps,
                                        frame_count)
                annotate.save_jpeg(pictures_dir / name, image)
                facts["measured_frames"] = len(sampler.seen)
        except Exception as err:
            if faults.is_machine_fault(err):
                raise
            bound.warning("video.preview_failed", error=str(err))
            return None
        return name

    def _encode(
        self, rendering: Rendering, audio: AudioCheck, output: Path, progress: ProgressFn,
        sampler: preview.Sampler, colour: Colour | None,
    ) -> tuple[dict[str, float], dict[str, str]]:
        """Pull the engine's frames into an MP4 at ``output`` with the job's sound track;
        ``sampler`` sees every frame (it keeps a few for the preview); ``colour``: the
        template's (the output's where its frames come as RGB). Returns the metrics and the
        encoder used (its report.json summary)."""
        assert audio.samples is not None
        out_cfg = audio.output
        partial = output.with_name(names.fit(f".{output.stem}", ".mp4.partial"))
        try:
            # the sound decoded at the output's rate as the frames come (more than two channels
            # mixed down to stereo: media.audio.TrackStream)
            with JobSound(audio.path, out_cfg.audio_rate) as track, VideoWriter(
                partial, rendering.width, rendering.height, rendering.fps,
                audio=track, audio_rate=out_cfg.audio_rate, settings=out_cfg, colour=colour,
            ) as writer:
                for index, frame in enumerate(rendering.frames):
                    writer.write(frame)
                    sampler.see(index, frame)
            os.replace(partial, output)
        finally:
            partial.unlink(missing_ok=True)
            _close(rendering)
        progress(1.0)
        metrics = dict(rendering.metrics)
        metrics["output_seconds"] = round(len(audio.samples) / AUDIO_RATE, 3)
        metrics["frames"] = float(writer.frames_written)
        return metrics, writer.encoder.summary()


def _close(rendering: Rendering | None) -> None:
    """Stop an engine's frame stream (and its worker threads) now, not at GC."""
    close = getattr(rendering.frames, "close", None) if rendering is not None else None
    if close is not None:
        close()


def _done(
    video: Path, output: Path, exam: examine.VideoExamination, audio: AudioCheck,
    timings: dict[str, float], metrics: dict[str, float],
) -> VideoResult:
    assert exam.info is not None and audio.samples is not None
    fps = exam.info.video.avg_fps if exam.info.video else 0.0
    return VideoResult(
        name=video.name,
        status=VideoStatus.DONE,
        output=output.name,
        findings=note_unshown_frames(exam.findings, len(audio.samples) / AUDIO_RATE, fps)
        + engine_findings(metrics, video.name),
        pictures=exam.pictures,
        timings_ms=timings,
        metrics=metrics,
        media=exam.info.summary(),
    )


def video_colour(info: MediaInfo | None) -> Colour | None:
    """The colours ``info``'s video stream says it is in (None where it has no video)."""
    return info.video.colour if info is not None and info.video is not None else None


def engine_findings(metrics: dict[str, float], file: str) -> list[Finding]:
    """What the engine found about the video ``file`` while making it, as findings (pure): its
    own sound out of step with its picture and allowed for (the builtin engine's
    template_offset_ms, _corrected, _at_limit)."""
    offset = float(metrics.get("template_offset_ms", 0.0))
    if metrics.get("template_offset_corrected") and math.isfinite(offset) and offset != 0.0:
        return sound_out_of_step(offset, file, bool(metrics.get("template_offset_at_limit")))
    return []


def note_unshown_frames(findings: list[Finding], seconds: float, fps: float) -> list[Finding]:
    """Warnings about a moment the output never reaches say so.

    The output is as long as the audio and starts at the video's first frame, so with audio
    shorter than the video, a warning found at 0:06.7 may be about frames no one will see.
    """
    if fps <= 0:
        return findings
    shown = frames_for(seconds, fps)
    noted = []
    for f in findings:
        if f.severity is Severity.WARN and f.frame_index is not None and f.frame_index >= shown:
            f = f.model_copy(update={"message": (
                f"{f.message} (The audio is {clock(seconds)} long, so the result shows only the "
                f"video's first {clock(seconds)}: the moment above may not appear in it.)")})
        noted.append(f)
    return noted


def _frames_memory(checked: examine.VideoExamination) -> AbstractContextManager[None]:
    """The allocator fitted to the video's frames while it is made (allocator.frames_of)."""
    video = checked.info.video if checked.info is not None else None
    return allocator.frames_of(video.width, video.height) if video is not None \
        else nullcontext()


@contextmanager
def _stage(
    bound: Any, timings: dict[str, float], stage: str
) -> Iterator[dict[str, float]]:
    """Log ``stage.start`` / ``stage.finish`` (with ``duration_ms`` and the facts the block
    adds to the yielded dict) and record the duration in ``timings`` when the block succeeds."""
    facts: dict[str, float] = {}
    t0 = time.monotonic()
    bound.info("stage.start", stage=stage)
    yield facts
    timings[stage] = ms_since(t0)
    bound.info("stage.finish", stage=stage, duration_ms=timings[stage], **facts)


def _rejection(
    video: Path, exam: examine.VideoExamination, timings: dict[str, float]
) -> VideoResult:
    """The video refused by its own first refusal, or (none) because the job's audio was."""
    refused = refusals(exam.findings)
    first = refused[0] if refused else None
    return VideoResult(
        name=video.name,
        status=VideoStatus.REJECTED,
        reason_code=first.code if first else "audio_rejected",
        message=first.message if first else "The job's audio file was refused.",
        findings=exam.findings,
        pictures=exam.pictures,
        timings_ms=timings,
        media=exam.info.summary() if exam.info else {},
    )


def _failure(
    video: Path, status: VideoStatus, code: str, message: str, timings: dict[str, float]
) -> VideoResult:
    return VideoResult(
        name=video.name, status=status, reason_code=code, message=message, timings_ms=timings
    )

