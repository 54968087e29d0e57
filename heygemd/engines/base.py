"""The Engine protocol and the engine registry.

An engine turns (template video, new audio) into a stream of RGB frames showing the template's
person speaking the audio. It never touches the inbox or outbox; the pipeline encodes what it
yields. Heavy things (models, detectors) are built in ``prepare()``, once per daemon, not per job.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from heygemd.errors import ConfigError
from heygemd.media.types import MediaInfo
from heygemd.media.video import frames_for
from heygemd.settings import EngineSettings, FaceSettings, PathSettings

# Called by engines with the fraction (0..1) of the current video rendered. It may raise
# heygemd.errors.JobInterrupted: engines must let that propagate (it is a BaseException).
ProgressFn = Callable[[float], None]


def progress_span(progress: ProgressFn, start: float, stop: float) -> ProgressFn:
    """A callback for one part of a task: its fractions 0..1 reach ``progress`` as
    ``start``..``stop`` (e.g. examining is the first tenth of a video's progress)."""

    def part(fraction: float) -> None:
        progress(start + (stop - start) * fraction)

    return part

AUDIO_RATE = 16000  # the rate of RenderRequest.audio


@dataclass(frozen=True)
class EngineContext:
    """What an engine may know about its environment: its settings, paths, and the device."""

    settings: EngineSettings
    faces: FaceSettings
    paths: PathSettings  # models dir (operator-supplied weights) and cache dir
    device: str  # "cpu" or "cuda" (resolved from settings.device)


@dataclass(frozen=True)
class RenderRequest:
    """template: the template video file; info: its probe.

    audio: float32 (N,) mono at AUDIO_RATE, the new speech. The output has exactly
    ``frame_count`` frames at ``fps`` (the template's rate): length follows the
    audio.
    """

    template: Path
    info: MediaInfo
    audio: np.ndarray
    fps: float

    @property
    def frame_count(self) -> int:
        """Frames the output holds: the audio's length at ``fps`` (:func:`frames_for`), >= 1."""
        return max(1, frames_for(len(self.audio) / AUDIO_RATE, self.fps))


@dataclass
class Rendering:
    """A lazy render: iterate ``frames`` (uint8 (H, W, 3) RGB, all the same size) once.

    ``metrics`` is filled by the engine while frames are produced (complete once the iterator
    is exhausted), e.g. {"frames_passed_through": 12, "sync_r": 0.61}.
    """

    width: int
    height: int
    fps: float
    frame_count: int
    frames: Iterator[np.ndarray]
    metrics: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    name: str
    version: str

    def prepare(self) -> None:
        """Load models / build detectors. Called once at daemon start-up."""

    def problems(self) -> list[str]:
        """What stops this engine from working (missing weights, ...), for `heygemd doctor`.
        Empty when ready. Must be cheap and must not load models."""
        ...

    def render(self, request: RenderRequest, progress: ProgressFn) -> Rendering:
        """Start rendering; raise InputRejected / ProcessingError / ResourceError."""
        ...

    def close(self) -> None:
        """Release models and devices."""


def resolve_device(requested: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'."""
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def create_engine(ctx: EngineContext) -> Engine:
    """Build the engine named in settings: 'builtin', 'wav2lip', or 'package.module:Class'
    (a custom engine class taking an EngineContext). Does not load models (see prepare())."""
    name = ctx.settings.name
    target = {
        "builtin": "heygemd.engines.builtin.engine:BuiltinEngine",
        "wav2lip": "heygemd.engines.wav2lip.engine:Wav2LipEngine",
    }.get(name, name)
    module_name, _, class_name = target.partition(":")
    if not class_name:
        raise ConfigError(
            f"config error: engine.name: unknown engine {name!r} "
            "(use builtin, wav2lip or module:Class)"
        )
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"config error: engine.name: cannot load {target!r}: {err}") from None
    engine: Engine = cls(ctx)
    return engine
