"""Test-double engines: real implementations of heygemd.engines.base.Engine, cheap enough for
daemon tests (configure with ``engine.name = "tests.fakes:EchoEngine"``; its options table is
[engine.echo], validated by :class:`EchoOptions` when the engine is created).

EchoEngine plays the template's own frames (forwards then backwards, so any audio length is
covered) and paints a bar across the bottom whose brightness follows the audio's loudness: a
visible change that depends on the new audio, with exactly ``request.frame_count`` frames.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from heygemd.contract import AUDIO_RATE, ProgressFn
from heygemd.engines.base import EngineContext, Rendering, RenderRequest
from heygemd.errors import ProcessingError
from heygemd.media.video import VideoReader

BAR_FRACTION = 0.08  # height of the loudness bar, as a share of the frame height
MAX_TEMPLATE_FRAMES = 250  # frames held in memory from the template


class EchoOptions(BaseModel):
    """[engine.echo]: a custom engine's own options table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bar_fraction: float = Field(BAR_FRACTION, gt=0, le=1)  # loudness bar height / frame height


def loudness_per_frame(audio: np.ndarray, frame_count: int) -> np.ndarray:
    """float32 (frame_count,) RMS in 0..1 of the audio slice under each output frame.

    audio: float32 (N,) mono at AUDIO_RATE.
    """
    edges = np.linspace(0, len(audio), frame_count + 1).astype(int)
    out = np.zeros(frame_count, dtype=np.float32)
    for i in range(frame_count):
        piece = audio[edges[i]:edges[i + 1]]
        out[i] = float(np.sqrt(np.mean(piece**2))) if len(piece) else 0.0
    peak = out.max() if frame_count else 0.0
    return out / peak if peak > 0 else out


def ping_pong(count: int, length: int) -> list[int]:
    """Template frame index for each of ``count`` output frames: 0..L-1, L-2..1, 0..."""
    if length <= 1:
        return [0] * count
    cycle = list(range(length)) + list(range(length - 2, 0, -1))
    return [cycle[i % len(cycle)] for i in range(count)]


class EchoEngine:
    """The template's frames, re-timed to the new audio, with a loudness bar painted on.

    ``HEYGEMD_FAKE_SLOW_MS``: extra milliseconds per frame (tests that must catch a job mid-run).
    ``HEYGEMD_FAKE_FAIL``: a substring; templates whose name contains it fail with
    ProcessingError (a bad video among good ones, on our side).
    ``HEYGEMD_FAKE_CRASH``: a substring; rendering a template whose name contains it kills the
    process with SIGABRT (as a native library's crash would), no core file.
    ``HEYGEMD_FAKE_HANG``: a substring; rendering a template whose name contains it sleeps an
    hour without a progress report (an engine stuck in a native call).
    """

    Options: ClassVar[type[BaseModel]] = EchoOptions
    name = "echo"
    version = "1.0"

    def __init__(self, ctx: EngineContext[EchoOptions]) -> None:
        self.ctx = ctx
        self.options = ctx.options
        self.device = ctx.device
        self.prepared = False
        self.slow = float(os.environ.get("HEYGEMD_FAKE_SLOW_MS", "0")) / 1000.0
        self.fail_on = os.environ.get("HEYGEMD_FAKE_FAIL", "")
        self.crash_on = os.environ.get("HEYGEMD_FAKE_CRASH", "")
        self.hang_on = os.environ.get("HEYGEMD_FAKE_HANG", "")

    def prepare(self) -> None:
        self.prepared = True

    def problems(self) -> list[str]:
        return []

    def render(self, request: RenderRequest, progress: ProgressFn) -> Rendering:
        if self.crash_on and self.crash_on in request.template.name:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            os.abort()
        if self.hang_on and self.hang_on in request.template.name:
            time.sleep(3600)  # stuck, as in a native call: no progress, no error
        if self.fail_on and self.fail_on in request.template.name:
            raise ProcessingError(f"echo engine told to fail on {request.template.name}")
        with VideoReader(request.template, fps=request.fps, info=request.info) as reader:
            template = []
            for frame in reader:
                template.append(frame)
                if len(template) >= MAX_TEMPLATE_FRAMES:
                    break
        if not template:
            raise ProcessingError(f"no frames in {request.template.name}")
        height, width = template[0].shape[:2]
        count = request.frame_count
        rendering = Rendering(width, height, request.fps, count, iter(()))
        rendering.frames = self._frames(template, request.audio, count, progress, rendering)
        return rendering

    def _frames(
        self, template: list[np.ndarray], audio: np.ndarray, count: int, progress: ProgressFn,
        rendering: Rendering,
    ) -> Iterator[np.ndarray]:
        levels = loudness_per_frame(audio, count)
        bar = max(2, int(template[0].shape[0] * self.options.bar_fraction))
        last = time.monotonic()
        for i, src in enumerate(ping_pong(count, len(template))):
            frame = template[src].copy()
            frame[-bar:, :, :] = np.uint8(round(float(levels[i]) * 255))
            if self.slow:
                time.sleep(self.slow)
            if time.monotonic() - last >= 0.2 or i == 0:
                progress(i / count)
                last = time.monotonic()
            yield frame
        rendering.metrics.update(frames=float(count), audio_seconds=len(audio) / AUDIO_RATE)

    def close(self) -> None:
        self.prepared = False
