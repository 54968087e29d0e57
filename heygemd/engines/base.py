"""The Engine protocol and the engine registry.

An engine turns (template video, new audio) into a stream of RGB frames showing the template's
person speaking the audio. It never touches the inbox or outbox (its :class:`EngineContext` names
only the models and cache folders); the pipeline encodes what it yields. Heavy things (models,
detectors) are built in ``prepare()``, once per daemon, not per job. Each engine class names the
pydantic model of its options table, ``Options``; :func:`create_engine` validates the table with it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict

from heygemd.contract import AUDIO_RATE, ProgressFn
from heygemd.errors import ConfigError
from heygemd.faces.hands import HandSightings
from heygemd.media.tap import FrameTap
from heygemd.media.types import MediaInfo
from heygemd.media.video import frames_for
from heygemd.media.yuv import Picture
from heygemd.settings import EngineSettings, FaceSettings, PathSettings

OptionsT = TypeVar("OptionsT", bound=BaseModel)


class NoOptions(BaseModel):
    """The options of an engine with nothing to configure: its table must be empty."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class EngineContext(Generic[OptionsT]):
    """What an engine may know about its environment: its own options table, the face
    settings, where operator-supplied weights lie, where it may keep what it derives (and how
    much), and the device. Never the daemon's folders (inbox, outbox, work)."""

    options: OptionsT  # [engine.<name>], validated by the engine's Options model
    faces: FaceSettings
    models: Path  # operator-supplied weights (paths.models)
    cache: Path  # derived data, shared with the frame pass (paths.cache)
    cache_max_bytes: int  # the cache's size limit (paths.cache_max_gb)
    device: str  # "cpu" or "cuda" (resolved from engine.device)

    @classmethod
    def within(
        cls, paths: PathSettings, options: OptionsT, faces: FaceSettings, device: str
    ) -> EngineContext[OptionsT]:
        """The context of an engine run under ``paths``: of those, only models and cache."""
        return cls(options, faces, paths.models, paths.cache, paths.cache_max_bytes(), device)


@dataclass(frozen=True)
class RenderRequest:
    """template: the template video file; info: its probe.

    audio: float32 (N,) mono at AUDIO_RATE, the new speech. The output has exactly
    ``frame_count`` frames at ``fps`` (the template's rate): length follows the
    audio.

    tap: where an engine that decodes every frame of the template in order (its analysis)
    offers them (:meth:`FrameTap.offer`), closing it when it decodes no more, so that the
    validation's frame pass beside it need not decode the file again. Given only to an engine
    whose class sets ``offers_template_frames = True``.

    hands: where the validation's frame pass saw hands at the speaker's lower face
    (:class:`HandSightings`), asked once the template is analysed: waits for the frame pass's
    samples (reporting progress meanwhile; raises JobInterrupted where the pass refused the
    video), None where it has none. An engine that draws over the lower face keeps a hand
    there in front.

    yuv_frames: the caller takes :class:`~heygemd.media.yuv.YuvFrame` output frames beside RGB
    ones (the pipeline's encoder does): an engine may then pass template pixels on as decoded.
    """

    template: Path
    info: MediaInfo
    audio: np.ndarray
    fps: float
    tap: FrameTap | None = None
    hands: Callable[[], HandSightings | None] | None = None
    yuv_frames: bool = False

    @property
    def frame_count(self) -> int:
        """Frames the output holds: the audio's length at ``fps`` (:func:`frames_for`), >= 1."""
        return max(1, frames_for(len(self.audio) / AUDIO_RATE, self.fps))


@dataclass
class Rendering:
    """A lazy render: iterate ``frames`` (uint8 (H, W, 3) RGB, all the same size; YuvFrames
    standing for such where the request's ``yuv_frames`` allowed them) once.

    ``metrics`` is filled by the engine while frames are produced (complete once the iterator
    is exhausted), e.g. {"frames_passed_through": 12, "sync_r": 0.61}.
    """

    width: int
    height: int
    fps: float
    frame_count: int
    frames: Iterator[Picture]
    metrics: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """What the pipeline and the daemon use of an engine. The class is built with an
    :class:`EngineContext` by :func:`create_engine`; ``name`` (a class attribute) names its
    options table [engine.<name>], validated by ``Options`` (a pydantic model; :class:`NoOptions`
    when there is nothing to configure). An engine whose class sets ``offers_template_frames =
    True`` gets a :class:`RenderRequest` with a ``tap`` (without it: None)."""

    Options: ClassVar[type[BaseModel]]
    name: str
    version: str
    device: str  # where it renders: "cpu" or "cuda", recorded with each job

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


class TemplateFacts(Protocol):
    """Per template frame (N frames): what an engine measured of a template."""

    @property
    def n_frames(self) -> int: ...

    @property
    def landmarks(self) -> np.ndarray:
        """float32 (N, 478, 3) pixels, NaN where no face was found."""
        ...

    @property
    def usable(self) -> np.ndarray:
        """bool (N,): a face found and not turned away."""
        ...

    @property
    def opening(self) -> np.ndarray:
        """float32 (N,): inner-lip gap / inter-ocular distance."""
        ...


class PlannedFrames(Protocol):
    """Per output frame (T,): the template frame whose mouth was used, and whether it was."""

    @property
    def source(self) -> np.ndarray: ...

    @property
    def active(self) -> np.ndarray: ...


@runtime_checkable
class Evaluable(Engine, Protocol):
    """Optional, for `heygemd eval`: an engine that shows how it read a template and what it
    chose for its latest render (the builtin engine does; Wav2Lip does not)."""

    @property
    def last_plan(self) -> PlannedFrames | None:
        """The latest render's choices, complete once its frames are exhausted; None before."""
        ...

    def analysis_of(self, template: Path) -> TemplateFacts:
        """The engine's analysis of ``template`` (cached where the engine caches)."""
        ...


def resolve_device(requested: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'. Where no GPU's device node is there
    (hardware.gpu_node_present) torch is not imported to say so: the engine's hearing worker
    then boots beside this process's own imports (the worker ready ~0.3 s sooner in `once`)."""
    if requested != "auto":
        return requested
    from heygemd.media.hardware import gpu_node_present

    if not gpu_node_present():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


ENGINES = {
    "builtin": "heygemd.engines.builtin.engine:BuiltinEngine",
    "wav2lip": "heygemd.engines.wav2lip.engine:Wav2LipEngine",
}


def engine_class(name: str) -> Any:
    """The engine class named in settings: 'builtin', 'wav2lip', or 'package.module:Class'
    (a custom engine). Raises ConfigError naming engine.name."""
    target = ENGINES.get(name, name)
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
    options = getattr(cls, "Options", None)
    if not isinstance(getattr(cls, "name", None), str) or not (
            isinstance(options, type) and issubclass(options, BaseModel)):
        raise ConfigError(
            f"config error: engine.name: {target!r} is not an engine class (it needs a name "
            "and an Options model as class attributes)"
        )
    return cls


def create_engine(
    settings: EngineSettings, faces: FaceSettings, paths: PathSettings, device: str
) -> Engine:
    """Build the engine named in settings with its options table [engine.<its name>] validated
    by its own Options (ConfigError naming the key) and, of ``paths``, only the models and cache
    folders. Does not load models (see prepare())."""
    cls = engine_class(settings.name)
    options = settings.options(cls.name, cls.Options)
    engine: Engine = cls(EngineContext.within(paths, options, faces, device))
    return engine
