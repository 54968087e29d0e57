"""Wav2LipEngine: an operator-supplied Wav2Lip checkpoint, run natively in torch.

render() is lazy and streams: one pass over the template finds and follows the face (and keeps
the decoded frames when they fit ``template_cache_mb``), then output frames are produced batch
by batch while the template plays forward and backward (ping-pong) for as long as the audio
lasts. Frames without a face, and frames in long silences, are the template's own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import structlog
import torch
from pydantic import BaseModel

from heygemd.contract import ProgressFn
from heygemd.engines.base import Engine, EngineContext, Rendering, RenderRequest
from heygemd.engines.handkeep import HandKeeper, near_hands
from heygemd.engines.wav2lip import audio as w2l_audio
from heygemd.engines.wav2lip.checkpoint import checkpoint_problems, load_generator
from heygemd.engines.wav2lip.framing import Framing, build_framing, ping_pong_index, pixel_box
from heygemd.engines.wav2lip.model import Wav2LipGenerator
from heygemd.engines.wav2lip.paste import FaceJob, PasteOptions, paste_batch
from heygemd.engines.wav2lip.template import TemplateFrames
from heygemd.errors import ProcessingError, ResourceError
from heygemd.faces.hands import hand_mask
from heygemd.faces.track import build_track
from heygemd.faces.types import N_LANDMARKS
from heygemd.media.yuv import Picture, as_rgb
from heygemd.settings import Wav2LipSettings

log = structlog.get_logger(__name__)

CPU_MAX_BATCH = 4  # a CPU batch of 4 takes ~0.3-2 s (shared cores): keep progress flowing
FACE_PASS_SHARE = 0.25  # share of the progress bar spent finding faces
PROGRESS_EVERY_S = 0.25
SILENCE_RAMP_S = 0.12


class Wav2LipEngine:
    """The Engine protocol (heygemd.engines.base) over a Wav2Lip generator checkpoint."""

    Options: ClassVar[type[BaseModel]] = Wav2LipSettings  # [engine.wav2lip]
    name = "wav2lip"
    version = "1.0"

    def __init__(self, ctx: EngineContext[Wav2LipSettings]) -> None:
        self.ctx = ctx
        self.cfg = ctx.options
        self.device = ctx.device
        self._model: Wav2LipGenerator | None = None
        self._analyzer: Any = None
        self._checked: tuple[tuple[float, int] | None, list[str]] | None = None

    @property
    def checkpoint_path(self) -> Path:
        return self.ctx.models / self.cfg.checkpoint

    def prepare(self) -> None:
        """Load the checkpoint (fp16 on CUDA, fp32 on CPU) and build the face analyzer; once."""
        if self._model is None:
            self._model = load_generator(self.checkpoint_path, self.device)
        if self._analyzer is None:
            from heygemd.faces.analyze import FaceAnalyzer

            self._analyzer = FaceAnalyzer(self.ctx.faces, tracking=True)

    def problems(self) -> list[str]:
        """Missing or mismatched checkpoint, in plain words; [] when loaded or loadable.
        The file is read at most once per (size, mtime)."""
        if self._model is not None:
            return []
        path = self.checkpoint_path
        stamp = (path.stat().st_mtime, path.stat().st_size) if path.is_file() else None
        if self._checked is None or self._checked[0] != stamp:
            self._checked = (stamp, checkpoint_problems(path))
        return list(self._checked[1])

    def close(self) -> None:
        if self._analyzer is not None:
            self._analyzer.close()
        self._analyzer = None
        self._model = None
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    def render(self, request: RenderRequest, progress: ProgressFn) -> Rendering:
        """Lazy rendering of exactly request.frame_count frames at the template's size."""
        self.prepare()
        video = request.info.video
        if video is None:
            raise ProcessingError(f"{request.template.name} has no video stream to render")
        rendering = Rendering(
            width=video.width,
            height=video.height,
            fps=request.fps,
            frame_count=request.frame_count,
            frames=iter(()),
        )
        rendering.frames = self._frames(request, progress, rendering.metrics)
        return rendering

    # -- the stream ------------------------------------------------------------------------
    def _frames(
        self, request: RenderRequest, progress: ProgressFn, metrics: dict[str, float]
    ) -> Iterator[Picture]:
        started = time.monotonic()
        log.info("stage.start", stage="wav2lip.render", frames=request.frame_count)
        ticker = _Ticker(progress)
        video = request.info.video
        assert video is not None
        # held as decoded where the caller takes such frames (half the bytes of RGB: the
        # budget counts the first frame as held)
        template = TemplateFrames(
            request.template, request.fps, video.width * video.height * 3,
            self.cfg.template_cache_mb * 1024 * 1024, info=request.info,
            as_yuv=request.yuv_frames,
        )  # fmt: skip
        keeper: HandKeeper | None = None
        try:
            framing, landmarks = self._find_faces(template, request, ticker)
            # where the frame pass saw a hand at the lower face (known by now: frames are
            # pulled once its verdict is in), the hands found again are kept in front
            faced = np.isfinite(framing.boxes).all(axis=1)  # Framing.has_face, every frame
            keeper = HandKeeper(near_hands(request.hands() if request.hands is not None
                                           else None, faced, request.fps), landmarks)
            weights = self._speech_weights(request)
            mel = w2l_audio.mel_spectrogram(request.audio)
            counts = _Counts()
            batch = self.cfg.batch_size if self.device.startswith("cuda") else CPU_MAX_BATCH
            batch = min(batch, self.cfg.batch_size)
            total = request.frame_count
            for start in range(0, total, batch):
                indices = range(start, min(total, start + batch))
                yield from self._batch(indices, template, framing, weights, mel, request, counts,
                                       keeper)
                ticker(FACE_PASS_SHARE + (1 - FACE_PASS_SHARE) * indices.stop / total)
        finally:
            template.close()
            if keeper is not None:
                keeper.close()
        metrics.update(counts.as_metrics(framing.frame_count, total))
        elapsed = time.monotonic() - started
        metrics["render_fps"] = round(total / elapsed, 2) if elapsed > 0 else 0.0
        log.info("stage.finish", stage="wav2lip.render", duration_ms=round(elapsed * 1000, 1),
                 **metrics)  # fmt: skip

    def _find_faces(
        self, template: TemplateFrames, request: RenderRequest, ticker: _Ticker
    ) -> tuple[Framing, np.ndarray]:
        """The framing of every template frame and the speaker's landmarks float32 (N, 478, 3)
        (NaN without a face)."""
        needed = request.frame_count
        faces = []
        for index, frame in template.first_pass(needed):
            faces.append(self._analyzer.analyze(as_rgb(frame), index))
            ticker(FACE_PASS_SHARE * (index + 1) / needed)
        if not faces:
            raise ProcessingError(f"no frames could be decoded from {request.template.name}")
        video = request.info.video
        assert video is not None
        size = (video.width, video.height)
        track = build_track(faces, size, len(faces))
        landmarks = np.full((len(faces), N_LANDMARKS, 3), np.nan, np.float32)
        for i, face in enumerate(track.observations):
            if face is not None:
                landmarks[i] = face.landmarks
        return build_framing(track.observations, video.width, video.height,
                             self.cfg.chin_pad_px), landmarks

    def _speech_weights(self, request: RenderRequest) -> np.ndarray:
        levels = w2l_audio.frame_levels_dbfs(request.audio, request.fps, request.frame_count)
        threshold = w2l_audio.silence_threshold(
            levels, self.cfg.silence_dbfs, self.cfg.silence_relative_db
        )
        return w2l_audio.speech_weights(
            levels, request.fps, threshold, self.cfg.min_silence_ms / 1000, SILENCE_RAMP_S
        )

    def _batch(
        self,
        indices: range,
        template: TemplateFrames,
        framing: Framing,
        weights: np.ndarray,
        mel: np.ndarray,
        request: RenderRequest,
        counts: _Counts,
        keeper: HandKeeper | None = None,
    ) -> list[Picture]:
        frames: list[Picture] = []
        jobs: list[tuple[int, FaceJob]] = []
        for out_index in indices:
            t = ping_pong_index(out_index, framing.frame_count)
            frame = template.get(t)
            frames.append(frame)
            if not framing.has_face(t):
                counts.no_face += 1
            elif weights[out_index] <= 0:
                counts.silent += 1
            else:
                box = pixel_box(framing.boxes[t])
                hands = keeper.hands(t, frame) if keeper is not None else []
                held = hand_mask(hands, (box[3] - box[1], box[2] - box[0]), (box[0], box[1])) \
                    if hands else None
                job = FaceJob(frame, box, framing.lower_face[t], framing.lips[t],
                              float(weights[out_index]), held)  # fmt: skip
                jobs.append((out_index, job))
        if jobs:
            windows = w2l_audio.mel_windows(mel, np.array([i for i, _ in jobs]), request.fps)
            pasted = self._generate([job for _, job in jobs], windows, counts)
            for (out_index, _), frame in zip(jobs, pasted, strict=True):
                frames[out_index - indices.start] = frame
        return frames

    def _generate(
        self, jobs: list[FaceJob], windows: np.ndarray, counts: _Counts
    ) -> list[Picture]:
        assert self._model is not None
        options = PasteOptions(self.cfg.colour_match, self.cfg.sharpen)
        t0 = time.monotonic()
        try:
            frames = paste_batch(self._model, jobs, windows, options, self.device)
        except torch.cuda.OutOfMemoryError as err:
            raise ResourceError(
                f"the GPU ran out of memory rendering a batch of {len(jobs)} faces; lower "
                f"engine.wav2lip.batch_size (now {self.cfg.batch_size}) ({err})"
            ) from None
        counts.generated += len(jobs)
        counts.generate_s += time.monotonic() - t0
        return frames


class _Ticker:
    """Calls progress at most every PROGRESS_EVERY_S seconds (and never backwards)."""

    def __init__(self, progress: ProgressFn) -> None:
        self.progress = progress
        self.last = float("-inf")

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S or fraction >= 1.0:
            self.last = now
            self.progress(min(max(fraction, 0.0), 1.0))


class _Counts:
    def __init__(self) -> None:
        self.generated = 0
        self.no_face = 0
        self.silent = 0
        self.generate_s = 0.0

    def as_metrics(self, template_frames: int, total: int) -> dict[str, float]:
        return {
            "frames_total": float(total),
            "frames_generated": float(self.generated),
            "frames_passed_through": float(self.no_face),
            "frames_silent": float(self.silent),
            "template_frames": float(template_frames),
            "generator_fps": round(self.generated / self.generate_s, 2) if self.generate_s else 0.0,
        }


if TYPE_CHECKING:  # mypy holds the class to the protocol it serves
    _SERVES: type[Engine] = Wav2LipEngine
