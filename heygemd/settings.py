"""One typed settings object, read from config.toml plus ``HEYGEMD_*`` environment overrides.

Built once, in the CLI (:func:`load_settings`); every layer receives only its own section.
Environment overrides use ``__`` between section and key, e.g.
``HEYGEMD_WATCH__SETTLE_SECONDS=3`` or ``HEYGEMD_ENGINE__NAME=wav2lip``.

Relative paths are resolved against the directory of the config file, so the same file works
from ``make run`` and from a systemd unit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from heygemd.errors import ConfigError


class Section(BaseModel):
    """Base of every section: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


GIB = 1024**3  # bytes in the "GB" of the *_gb settings


class PathSettings(Section):
    inbox: Path = Path("inbox")
    outbox: Path = Path("outbox")
    work: Path = Path(".heygemd/work")
    state: Path = Path(".heygemd/state")
    log_file: Path | None = Path(".heygemd/log/heygemd.log")
    models: Path = Path("models")
    cache: Path = Path(".heygemd/cache")
    # the cache's size limit, least recently used removed first; beside `cache` because the
    # engines (EngineContext.cache_max_bytes) and the frame pass write there too
    cache_max_gb: float = Field(4.0, gt=0)
    status_file: Path | None = None  # default: <outbox>/STATUS.txt

    def cache_max_bytes(self) -> int:
        """``cache_max_gb`` in bytes."""
        return int(self.cache_max_gb * GIB)


class WatchSettings(Section):
    mode: Literal["auto", "events", "polling"] = "auto"
    settle_seconds: float = Field(10.0, ge=0)
    require_ready_marker: bool = False
    ready_marker: str = "READY"
    rescan_seconds: float = Field(30.0, gt=0)
    poll_interval_seconds: float = Field(2.0, gt=0)


class DaemonSettings(Section):
    graceful_timeout_seconds: float = Field(600.0, gt=0)
    min_free_gb: float = Field(2.0, ge=0)
    idle_tick_seconds: float = Field(1.0, gt=0)
    max_attempts: int = Field(3, ge=1)


class LimitSettings(Section):
    max_file_mb: float = Field(4096.0, gt=0)
    max_job_files: int = Field(50, ge=1)
    max_pixels: int = Field(3840 * 2160, gt=0)
    max_video_seconds: float = Field(300.0, gt=0)
    max_audio_seconds: float = Field(300.0, gt=0)


class ValidationSettings(Section):
    min_short_side_warn: int = Field(720, ge=1)
    min_short_side: int = Field(240, ge=1)
    min_video_seconds: float = Field(1.0, ge=0)
    min_audio_seconds: float = Field(0.5, ge=0)
    sample_fps: float = Field(3.0, gt=0)
    max_samples: int = Field(120, ge=1)
    min_face_fraction: float = Field(0.06, gt=0, le=1)  # face box height / frame height
    max_yaw_degrees: float = Field(30.0, gt=0)
    max_pitch_degrees: float = Field(30.0, gt=0)
    max_turned_share: float = Field(0.2, ge=0, le=1)  # above this share of frames: refuse
    max_no_face_share: float = Field(0.5, ge=0, le=1)
    max_mouth_covered_share: float = Field(0.5, ge=0, le=1)
    mouth_covered_threshold: float = Field(0.5, ge=0, le=1)
    silence_dbfs: float = -50.0
    clipping_share: float = Field(0.01, ge=0, le=1)
    min_snr_db: float = 6.0  # dB; speech over a music bed (speech/zh01) measures ~9
    min_speech_share: float = Field(0.1, ge=0, le=1)
    max_damaged_audio_share: float = Field(0.01, ge=0, le=1)  # not-a-number samples, silenced


class FaceSettings(Section):
    detector_confidence: float = Field(0.5, gt=0, le=1)
    mesh_confidence: float = Field(0.5, gt=0, le=1)
    crop_scale: float = Field(1.8, gt=1)  # mesh crop = detector box scaled by this


class BuiltinEngineSettings(Section):
    analysis_scale: float = Field(0.5, gt=0, le=1)
    # how far the mouth moves ahead of the sound, on top of what the audio -> mouth fits learned
    # from real speakers (they already hold the mouth's own lead): leave-one-speaker-out plan r
    # 0.386 at 0 ms, 0.335 at 40 ms, 0.240 at 80 ms (51 clips, templates at 50/60/70%)
    lead_ms: float = Field(0.0, ge=0)
    continuity_weight: float = Field(1.0, ge=0)
    pose_weight: float = Field(0.3, ge=0)
    batch_size: int = Field(16, ge=1)
    # the speaker-independent mouth model (models/MODEL_CARD.md) beside each template's own
    # regression; off: the template's regression alone
    speaker_model: bool = True
    # a template whose own sound is out of step with its picture (by 150 ms or more, found with
    # the speaker-independent model, so only with speaker_model on) has it moved into step
    # before its regression is fitted
    template_sync: bool = True


class Wav2LipSettings(Section):
    checkpoint: Path = Path("wav2lip_gan.pth")  # relative to paths.models
    batch_size: int = Field(64, ge=1)
    chin_pad_px: int = Field(10, ge=0)
    sharpen: float = Field(0.0, ge=0)
    colour_match: Literal["lab", "rgb", "none"] = "lab"
    silence_dbfs: float = -50.0  # frames quieter than this (or than loud - relative) keep
    silence_relative_db: float = Field(30.0, gt=0)  # the template's mouth
    min_silence_ms: float = Field(250.0, ge=0)
    template_cache_mb: int = Field(2048, ge=1)


def _engine_table(value: Any) -> Any:
    """Any other key of [engine] must be a table ([engine.<engine name>]): a value is a typo."""
    if not isinstance(value, dict):
        raise PydanticCustomError("extra_forbidden", "unknown setting")
    return value


OptionsT = TypeVar("OptionsT", bound=BaseModel)


class EngineSettings(Section):
    """[engine]: which engine, on which device, and each engine's own options table
    [engine.<the engine's name>], validated by that engine's ``Options`` model (:meth:`options`).

    The shipped engines' tables are typed here, so config.toml documents them and an unknown key
    is refused at load; a custom engine's table is kept as given until its engine is created.
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, Annotated[dict[str, Any], BeforeValidator(_engine_table)]] = (
        Field(init=False))

    name: str = "builtin"  # builtin | wav2lip | "module:Class" (a custom engine)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    builtin: BuiltinEngineSettings = BuiltinEngineSettings()
    wav2lip: Wav2LipSettings = Wav2LipSettings()

    def options(self, table: str, model: type[OptionsT]) -> OptionsT:
        """[engine.<table>] validated by ``model`` (an engine's ``Options``); an absent table
        is empty (the model's defaults). Raises ConfigError with one line naming the key."""
        given = self.model_extra or {}
        typed = getattr(self, table, None) if table in type(self).model_fields else None
        raw = typed.model_dump() if isinstance(typed, BaseModel) else given.get(table, {})
        try:
            return model.model_validate(raw)
        except ValidationError as err:
            raise ConfigError(_format_error(err, prefix=("engine", table))) from None


class OutputSettings(Section):
    crf: int = Field(18, ge=0, le=51)
    preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower"
    ] = "medium"
    audio_bitrate_kbps: int = Field(192, ge=32, le=512)
    audio_rate: int = Field(48000, ge=8000)
    # auto: NVENC (h264_nvenc) where a CUDA device is present and the encoder opens, else
    # libx264; nvenc asked for but unavailable falls back to libx264 (logged and in report.json)
    encoder: Literal["auto", "libx264", "nvenc"] = "auto"


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    stdout: bool = True


class WebSettings(Section):
    """`heygemd web`: where the read-only page listens, and the token it asks for."""

    listen: str = "127.0.0.1:8750"  # HOST:PORT; beyond loopback a token is required
    token: str = ""  # empty: none (loopback only)


class FarmSettings(Section):
    """[farm]: a broker switches `heygemd run` into the farm's intake (docs/farm.md); empty: the
    single-machine service, no broker needed."""

    broker: str = ""  # e.g. "redis://:PASSWORD@10.0.0.5:6379/0"
    queue: str = "heygemd"
    task_time_limit_seconds: float = Field(3600.0, gt=0)  # one video on a worker, at most
    # a task unacknowledged this long goes to another worker: above the longest video allowed
    visibility_timeout_seconds: float = Field(7200.0, gt=0)
    poll_seconds: float = Field(0.5, gt=0)  # the intake's look at the share for results
    # jobs out at once, at most; the next starts only once every video sent is with a worker
    jobs_at_once: int = Field(16, ge=1)

    @model_validator(mode="after")
    def _visibility_above_limit(self) -> FarmSettings:
        if self.broker and self.visibility_timeout_seconds <= self.task_time_limit_seconds:
            raise ValueError("visibility_timeout_seconds must be above task_time_limit_seconds "
                             "(else a running video is handed to a second worker)")
        return self


class Settings(BaseSettings):
    """Everything configurable. Sections mirror the tables of config.toml."""

    model_config = SettingsConfigDict(
        env_prefix="HEYGEMD_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    paths: PathSettings = PathSettings()
    watch: WatchSettings = WatchSettings()
    daemon: DaemonSettings = DaemonSettings()
    limits: LimitSettings = LimitSettings()
    validation: ValidationSettings = ValidationSettings()
    faces: FaceSettings = FaceSettings()
    engine: EngineSettings = EngineSettings()
    output: OutputSettings = OutputSettings()
    logging: LogSettings = LogSettings()
    web: WebSettings = WebSettings()
    farm: FarmSettings = FarmSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = init_settings.init_kwargs.pop("_toml_file", None)  # type: ignore[attr-defined]
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    def status_file(self) -> Path:
        return self.paths.status_file or self.paths.outbox / "STATUS.txt"


def _resolve_paths(paths: PathSettings, base: Path) -> PathSettings:
    def absolute(p: Path) -> Path:
        p = p.expanduser()
        return p if p.is_absolute() else (base / p)

    updates: dict[str, Any] = {}
    for name, value in paths:
        if isinstance(value, Path):
            updates[name] = absolute(value)
    return paths.model_copy(update=updates)


# pydantic's wording -> ours, for the errors an operator meets most.
_PLAIN = {"extra_forbidden": "unknown setting"}


def _format_error(
    err: ValidationError, environ: Mapping[str, str] | None = None, prefix: tuple[str, ...] = (),
) -> str:
    """One line naming the key (under ``prefix``, the table validated), what is wrong, the
    value, and the environment variable when the value came from one."""
    first = err.errors()[0]
    loc = (*prefix, *first["loc"])
    key = ".".join(str(p) for p in loc)
    value = first.get("input")
    env_name = "HEYGEMD_" + "__".join(str(p) for p in loc).upper()
    source = f" (from environment {env_name})" if env_name in (environ or os.environ) else ""
    what = _PLAIN.get(first["type"], first["msg"])
    got = "" if first["type"] == "extra_forbidden" else f" (got {value!r})"
    return f"config error: {key}: {what}{got}{source}"


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Read ``config`` (TOML; optional) + ``HEYGEMD_*`` env; relative paths are anchored at the
    config file's directory (or the current directory when there is no file).

    Raises ConfigError with one line naming the offending key.
    """
    base = Path(os.getcwd())
    kwargs: dict[str, Any] = dict(overrides)
    if config is not None:
        config = config.expanduser().resolve()
        if not config.is_file():
            raise ConfigError(f"config error: file not found: {config}")
        base = config.parent
        kwargs["_toml_file"] = config
    try:
        settings = Settings(**kwargs)
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None
    except ValueError as err:  # malformed TOML
        raise ConfigError(f"config error: {config}: {err}") from None
    return settings.model_copy(update={"paths": _resolve_paths(settings.paths, base)})
