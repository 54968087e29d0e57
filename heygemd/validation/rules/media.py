"""Rules on the files and their streams: type, size, duration, the audio's content, the
video's resolution and frame rate, and a video's sound out of step with its picture (found
while it is made). Pure: they read a probe (:class:`MediaInfo`), :class:`AudioStats` or a
measured offset, never a file."""

from __future__ import annotations

from heygemd.media.types import MAX_CHANNELS, MediaInfo
from heygemd.report import Finding
from heygemd.settings import LimitSettings, ValidationSettings
from heygemd.validation.audiostats import AudioStats
from heygemd.validation.jobfiles import (
    AUDIO_EXTS,
    VIDEO_EXTS,
    FileKind,
    allowed_extensions,
    extension,
)
from heygemd.validation.rules.common import MB, clock, pct, refusals, refuse, warn

# ---------------------------------------------------------------- files and streams


def check_extension(name: str, kind: FileKind) -> list[Finding]:
    """A name without one of ``kind``'s extensions (:mod:`heygemd.validation.jobfiles`) is
    refused."""
    allowed = allowed_extensions(kind)
    suffix = extension(name)
    if suffix in allowed:
        return []
    return [
        refuse(
            "unsupported_format",
            f"Files of type '{suffix or '(none)'}' are not supported as {kind}; "
            f"convert it to one of {' '.join(allowed)}.",
            file=name,
            value=suffix,
            limit=" ".join(allowed),
        )
    ]


def check_file_size(size_bytes: int, limits: LimitSettings) -> list[Finding]:
    mb = size_bytes / MB
    if mb <= limits.max_file_mb:
        return []
    return [
        refuse(
            "file_too_large",
            f"The file is {mb:.0f} MB, more than the {limits.max_file_mb:.0f} MB allowed; "
            "shorten it or export it at a lower bitrate.",
            value=round(mb, 1),
            limit=limits.max_file_mb,
        )
    ]


def _short(seconds: float) -> str:
    """A short length in words that never reads as nothing: 0.04 -> "0.04 s", 0.3 -> "0.3 s"."""
    return f"{seconds:.2f} s" if 0 < seconds < 0.1 else f"{seconds:.1f} s"


def _check_duration(seconds: float, low: float, high: float, what: str) -> list[Finding]:
    if seconds < low:
        return [
            refuse(
                f"{what}_too_short",
                f"The {what} is only {_short(seconds)} long; it must last at least {low:.1f} s.",
                value=round(seconds, 2),
                limit=low,
            )
        ]
    if seconds > high:
        return [
            refuse(
                f"{what}_too_long",
                f"The {what} is {seconds:.0f} s long, more than the {high:.0f} s allowed; "
                f"split it into parts of at most {high:.0f} s.",
                value=round(seconds, 2),
                limit=high,
            )
        ]
    return []


# ---------------------------------------------------------------- audio


def validate_audio(
    info: MediaInfo, stats: AudioStats | None, cfg: ValidationSettings, limits: LimitSettings
) -> list[Finding]:
    """Rules for the job's audio file. ``stats`` is None when the samples could not be decoded."""
    findings = check_file_size(info.size_bytes, limits)
    if info.audio is None:
        return findings + [
            refuse(
                "no_audio_stream",
                "The audio file contains no sound track; send the voice recording as "
                f"{' '.join(AUDIO_EXTS)}.",
            )
        ]
    if info.audio.channels > MAX_CHANNELS:
        findings.append(refuse(
            "too_many_channels",
            f"The audio has {info.audio.channels} channels; at most {MAX_CHANNELS} can be "
            "used (mono, stereo, up to 7.1 surround). Export the voice as a mono or stereo "
            "file and send the job again with it.",
            value=info.audio.channels, limit=MAX_CHANNELS,
        ))
    seconds = stats.duration_s if stats is not None else info.duration
    findings += _check_duration(seconds, cfg.min_audio_seconds, limits.max_audio_seconds, "audio")
    if stats is not None:
        findings += audio_content_findings(stats, cfg)
    return findings


def audio_content_findings(stats: AudioStats, cfg: ValidationSettings) -> list[Finding]:
    """Damaged samples (a warning, or a refusal that says why the rest would fail), silence,
    clipping, too little speech, too much noise (each a refusal)."""
    damaged = _damaged_findings(stats, cfg)
    if refusals(damaged):
        return damaged
    if stats.rms_dbfs < cfg.silence_dbfs:
        return [
            refuse(
                "silent_audio",
                f"The audio is silent (level {stats.rms_dbfs:.0f} dBFS, at least "
                f"{cfg.silence_dbfs:.0f} dBFS needed); check the microphone and record again.",
                value=round(stats.rms_dbfs, 1),
                limit=cfg.silence_dbfs,
            )
        ]
    findings: list[Finding] = damaged
    if stats.clipped_share > cfg.clipping_share:
        findings.append(
            refuse(
                "clipped_audio",
                f"The audio is distorted: {pct(stats.clipped_share)} of it is at the loudest "
                f"possible level (clipping, at most {pct(cfg.clipping_share)} allowed); "
                "record again with the input level turned down.",
                value=round(stats.clipped_share, 4),
                limit=cfg.clipping_share,
            )
        )
    if stats.speech_share < cfg.min_speech_share:
        findings.append(
            refuse(
                "too_little_speech",
                f"Only {pct(stats.speech_share)} of the audio is speech (at least "
                f"{pct(cfg.min_speech_share)} needed); send a recording of the person speaking.",
                value=round(stats.speech_share, 3),
                limit=cfg.min_speech_share,
            )
        )
    if stats.snr_db < cfg.min_snr_db:
        findings.append(
            refuse(
                "noisy_audio",
                f"There is too much background noise: the voice is only {stats.snr_db:.0f} dB "
                f"above the noise ({cfg.min_snr_db:.0f} dB needed); record in a quieter place "
                "or closer to the microphone.",
                value=round(stats.snr_db, 1),
                limit=cfg.min_snr_db,
            )
        )
    return findings


def _damaged_findings(stats: AudioStats, cfg: ValidationSettings) -> list[Finding]:
    """Samples that were not numbers (NaN or infinite: a damaged float export), made silent
    when decoded: a warning, or a refusal past ``cfg.max_damaged_audio_share`` of the audio."""
    if stats.damaged_s <= 0.0:
        return []
    share = min(stats.damaged_s / stats.duration_s, 1.0) if stats.duration_s > 0 else 1.0
    length = "less than 1 ms" if stats.damaged_s < 0.001 else \
        f"{stats.damaged_s * 1000:.0f} ms" if stats.damaged_s < 10 else f"{stats.damaged_s:.0f} s"
    if share > cfg.max_damaged_audio_share:
        return [refuse(
            "damaged_audio",
            f"The audio file is damaged: {_share(share)} of it ({length}, from "
            f"{clock(stats.damaged_from_s)}) holds broken values instead of sound (NaN or "
            f"infinite samples; at most {_share(cfg.max_damaged_audio_share)} can be replaced "
            "by silence). Export the voice again, as WAV (16 or 24 bit) or FLAC.",
            value=round(share, 4), limit=cfg.max_damaged_audio_share,
        )]
    return [warn(
        "damaged_audio",
        f"{length} of the audio, from {clock(stats.damaged_from_s)}, is damaged (NaN or "
        "infinite samples) and was replaced by silence; if you hear a gap there, export the "
        "voice again.",
        value=round(share, 6), limit=cfg.max_damaged_audio_share,
    )]


def _share(share: float) -> str:
    """0.0123 -> "1.2%", 0.5 -> "50%": a tenth of a percent where a limit is near."""
    return f"{share * 100:.1f}%" if share < 0.1 else pct(share)


# ---------------------------------------------------------------- video container


def validate_video_info(
    info: MediaInfo, cfg: ValidationSettings, limits: LimitSettings
) -> list[Finding]:
    """Rules that need only the probe: streams, size, duration, resolution, frame rate."""
    findings = check_file_size(info.size_bytes, limits)
    v = info.video
    if v is None:
        return findings + [
            refuse(
                "no_video_stream",
                "The file contains no video picture; send a video of the person "
                f"({' '.join(VIDEO_EXTS)}).",
            )
        ]
    findings += _check_duration(
        v.duration or info.duration, cfg.min_video_seconds, limits.max_video_seconds, "video"
    )
    pixels = v.width * v.height
    if pixels > limits.max_pixels:
        findings.append(
            refuse(
                "too_many_pixels",
                f"The video is {v.width}x{v.height} ({pixels / 1e6:.1f} megapixels), more than "
                f"the {limits.max_pixels / 1e6:.1f} allowed; export it at 4K (3840x2160) or less.",
                value=pixels,
                limit=limits.max_pixels,
            )
        )
    findings += _resolution_findings(v.width, v.height, cfg)
    if v.is_vfr:
        findings.append(
            warn(
                "variable_frame_rate",
                f"The video has a variable frame rate; it will be converted to a constant "
                f"{v.avg_fps:.2f} frames per second.",
                value=round(v.real_fps, 3),
                limit=round(v.avg_fps, 3),
            )
        )
    return findings


def _resolution_findings(width: int, height: int, cfg: ValidationSettings) -> list[Finding]:
    short = min(width, height)
    if short < cfg.min_short_side:
        return [
            refuse(
                "resolution_too_low",
                f"The video is only {width}x{height}; its short side must be at least "
                f"{cfg.min_short_side} pixels. Record or export at 720p or more.",
                value=short,
                limit=cfg.min_short_side,
            )
        ]
    if short < cfg.min_short_side_warn:
        return [
            warn(
                "low_resolution",
                f"The video is {width}x{height}, below {cfg.min_short_side_warn}p; it will work, "
                f"but the result looks sharper from a {cfg.min_short_side_warn}p or larger video.",
                value=short,
                limit=cfg.min_short_side_warn,
            )
        ]
    return []


# ---------------------------------------------------------------- what making the video found


def sound_out_of_step(offset_ms: float, file: str, at_limit: bool = False) -> list[Finding]:
    """A video whose own sound the engine found out of step with its picture by ``offset_ms``
    (> 0: the sound late) and allowed for, said to its person: the new video needs nothing,
    the original file keeps its offset wherever else it is used. ``at_limit``: the offset is
    the largest the engine looks for, so the sound may be further out (partly allowed for)."""
    ms = f"{abs(offset_ms):.0f} ms"
    if offset_ms > 0:
        how = "behind its picture (the lips move before the words are heard)"
        move = "earlier"
    else:
        how = "ahead of its picture (the words are heard before the lips move)"
        move = "later"
    if at_limit:
        message = (
            f"Your original video's own sound is {ms} or more {how}. The new video allows "
            f"for {ms}, the most heygemd looks for; if its lips still look out of step with "
            f"the new voice, move the original's sound {move} to match its picture and send "
            "it again.")
    else:
        message = (
            f"Your original video's own sound is about {ms} {how}. This was allowed for: the "
            "new video's lips follow the new voice, and nothing needs to be done. Only if you "
            f"use the original file elsewhere: its sound needs moving about {ms} {move}.")
    return [warn("sound_out_of_step", message, file=file, value=round(offset_ms, 1))]
