"""Pure validation rules: what was measured -> findings a person can act on.

No I/O here: :mod:`heygemd.examine` probes files, samples frames, runs the face analyzer and the
VAD, and hands the results in as :class:`~heygemd.media.types.MediaInfo`,
:class:`~heygemd.audiostats.AudioStats` and :class:`FrameEvidence`. Every rule names the problem,
the measured value, the limit, and (for picture rules) the deciding frame.

Deciding frames follow fixed criteria (:data:`FRAME_CRITERIA`) so that the examiner can keep just
those frames while it streams through a video instead of holding every sampled frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from heygemd.audiostats import AudioStats
from heygemd.jobfiles import AUDIO_EXTS, VIDEO_EXTS, FileKind, allowed_extensions, extension
from heygemd.media.types import MediaInfo
from heygemd.report import Finding, Severity
from heygemd.settings import LimitSettings, ValidationSettings

MB = 1024 * 1024


@dataclass(frozen=True)
class FrameEvidence:
    """What one sampled frame shows of the speaker.

    frame_index: index of the frame in the video at its constant frame rate.
    face_count: faces found in the frame (0 = none).
    face_fraction: speaker's face box height / frame height (0..1); None without a face.
    yaw, pitch: speaker's head pose in degrees (0 = facing the camera); None without a face.
    occlusion: speaker's mouth-occlusion score 0..1 (1 = covered); None without a face.
    """

    frame_index: int
    face_count: int
    face_fraction: float | None = None
    yaw: float | None = None
    pitch: float | None = None
    occlusion: float | None = None

    @property
    def has_face(self) -> bool:
        return self.face_fraction is not None


def _score_or_none(e: FrameEvidence, value: float | None) -> float | None:
    return value if e.has_face else None


# name -> score of a frame (None: not a candidate). The deciding frame of a rule is the first
# frame with the highest score; examine.FrameKeeper keeps exactly these frames.
FRAME_CRITERIA: dict[str, Callable[[FrameEvidence], float | None]] = {
    "yaw": lambda e: _score_or_none(e, abs(e.yaw or 0.0)),
    "pitch": lambda e: _score_or_none(e, abs(e.pitch or 0.0)),
    "occlusion": lambda e: _score_or_none(e, e.occlusion or 0.0),
    "small_face": lambda e: None if e.face_fraction is None else -e.face_fraction,
    "no_face": lambda e: None if e.has_face else 1.0,
    "face_count": lambda e: float(e.face_count) if e.face_count > 1 else None,
    "representative": lambda e: 1.0 if e.has_face else 0.0,
}


def deciding_frame(frames: Sequence[FrameEvidence], criterion: str) -> FrameEvidence | None:
    """The first frame with the highest score under ``criterion``; None if no frame qualifies."""
    score = FRAME_CRITERIA[criterion]
    best: FrameEvidence | None = None
    best_score = float("-inf")
    for e in frames:
        s = score(e)
        if s is not None and s > best_score:
            best, best_score = e, s
    return best


def refusals(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.REFUSE]


def _refuse(code: str, message: str, **kw: float | str | int | None) -> Finding:
    return Finding(code=code, severity=Severity.REFUSE, message=message, **kw)  # type: ignore[arg-type]


def _warn(code: str, message: str, **kw: float | str | int | None) -> Finding:
    return Finding(code=code, severity=Severity.WARN, message=message, **kw)  # type: ignore[arg-type]


def _pct(share: float) -> str:
    return f"{share * 100:.0f}%"


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


# ---------------------------------------------------------------- files and streams


def check_extension(name: str, kind: FileKind) -> list[Finding]:
    """A name without one of ``kind``'s extensions (:mod:`heygemd.jobfiles`) is refused."""
    allowed = allowed_extensions(kind)
    suffix = extension(name)
    if suffix in allowed:
        return []
    return [
        _refuse(
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
        _refuse(
            "file_too_large",
            f"The file is {mb:.0f} MB, more than the {limits.max_file_mb:.0f} MB allowed; "
            "shorten it or export it at a lower bitrate.",
            value=round(mb, 1),
            limit=limits.max_file_mb,
        )
    ]


def _check_duration(seconds: float, low: float, high: float, what: str) -> list[Finding]:
    if seconds < low:
        return [
            _refuse(
                f"{what}_too_short",
                f"The {what} is only {seconds:.1f} s long; it must last at least {low:.1f} s.",
                value=round(seconds, 2),
                limit=low,
            )
        ]
    if seconds > high:
        return [
            _refuse(
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
            _refuse(
                "no_audio_stream",
                "The audio file contains no sound track; send the voice recording as "
                f"{' '.join(AUDIO_EXTS)}.",
            )
        ]
    seconds = stats.duration_s if stats is not None else info.duration
    findings += _check_duration(seconds, cfg.min_audio_seconds, limits.max_audio_seconds, "audio")
    if stats is not None:
        findings += audio_content_findings(stats, cfg)
    return findings


def audio_content_findings(stats: AudioStats, cfg: ValidationSettings) -> list[Finding]:
    """Silence, clipping, too little speech, too much noise (each a refusal)."""
    if stats.rms_dbfs < cfg.silence_dbfs:
        return [
            _refuse(
                "silent_audio",
                f"The audio is silent (level {stats.rms_dbfs:.0f} dBFS, at least "
                f"{cfg.silence_dbfs:.0f} dBFS needed); check the microphone and record again.",
                value=round(stats.rms_dbfs, 1),
                limit=cfg.silence_dbfs,
            )
        ]
    findings: list[Finding] = []
    if stats.clipped_share > cfg.clipping_share:
        findings.append(
            _refuse(
                "clipped_audio",
                f"The audio is distorted: {_pct(stats.clipped_share)} of it is at the loudest "
                f"possible level (clipping, at most {_pct(cfg.clipping_share)} allowed); "
                "record again with the input level turned down.",
                value=round(stats.clipped_share, 4),
                limit=cfg.clipping_share,
            )
        )
    if stats.speech_share < cfg.min_speech_share:
        findings.append(
            _refuse(
                "too_little_speech",
                f"Only {_pct(stats.speech_share)} of the audio is speech (at least "
                f"{_pct(cfg.min_speech_share)} needed); send a recording of the person speaking.",
                value=round(stats.speech_share, 3),
                limit=cfg.min_speech_share,
            )
        )
    if stats.snr_db < cfg.min_snr_db:
        findings.append(
            _refuse(
                "noisy_audio",
                f"There is too much background noise: the voice is only {stats.snr_db:.0f} dB "
                f"above the noise ({cfg.min_snr_db:.0f} dB needed); record in a quieter place "
                "or closer to the microphone.",
                value=round(stats.snr_db, 1),
                limit=cfg.min_snr_db,
            )
        )
    return findings


# ---------------------------------------------------------------- video container


def validate_video_info(
    info: MediaInfo, cfg: ValidationSettings, limits: LimitSettings
) -> list[Finding]:
    """Rules that need only the probe: streams, size, duration, resolution, frame rate."""
    findings = check_file_size(info.size_bytes, limits)
    v = info.video
    if v is None:
        return findings + [
            _refuse(
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
            _refuse(
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
            _warn(
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
            _refuse(
                "resolution_too_low",
                f"The video is only {width}x{height}; its short side must be at least "
                f"{cfg.min_short_side} pixels. Record or export at 720p or more.",
                value=short,
                limit=cfg.min_short_side,
            )
        ]
    if short < cfg.min_short_side_warn:
        return [
            _warn(
                "low_resolution",
                f"The video is {width}x{height}, below {cfg.min_short_side_warn}p; it will work, "
                f"but the result looks sharper from a {cfg.min_short_side_warn}p or larger video.",
                value=short,
                limit=cfg.min_short_side_warn,
            )
        ]
    return []


# ---------------------------------------------------------------- faces in sampled frames


def validate_video(
    info: MediaInfo,
    frames: Sequence[FrameEvidence],
    cfg: ValidationSettings,
    limits: LimitSettings,
) -> list[Finding]:
    """All rules for one template video: container rules, then face rules on ``frames``."""
    findings = validate_video_info(info, cfg, limits)
    if info.video is None:
        return findings
    return findings + validate_faces(frames, cfg, info.video.avg_fps)


def validate_faces(
    frames: Sequence[FrameEvidence], cfg: ValidationSettings, fps: float
) -> list[Finding]:
    """Face rules over the sampled frames (``fps``: the video's frame rate, for times)."""
    if not frames:
        return [
            _refuse(
                "no_frames",
                "No picture could be decoded from the video; export it again (H.264 MP4 works "
                "everywhere).",
            )
        ]
    findings = _no_face_findings(frames, cfg, fps)
    with_face = [e for e in frames if e.has_face]
    if not with_face:
        return findings
    findings += _face_size_findings(with_face, cfg)
    findings += _pose_findings(with_face, cfg, fps)
    findings += _occlusion_findings(with_face, cfg, fps)
    findings += _several_faces_findings(frames)
    return findings


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _no_face_findings(
    frames: Sequence[FrameEvidence], cfg: ValidationSettings, fps: float
) -> list[Finding]:
    first = deciding_frame(frames, "no_face")
    if first is None:
        return []
    share = sum(not e.has_face for e in frames) / len(frames)
    when = _clock(first.frame_index / fps)
    if share > cfg.max_no_face_share:
        return [
            _refuse(
                "no_face",
                f"No face was found in {_pct(share)} of the video (at most "
                f"{_pct(cfg.max_no_face_share)} allowed), first at {when}; record the person's "
                "whole face, well lit and facing the camera.",
                value=round(share, 3),
                limit=cfg.max_no_face_share,
                frame_index=first.frame_index,
            )
        ]
    return [
        _warn(
            "face_missing_briefly",
            f"No face was found in {_pct(share)} of the video, first at {when}; those frames "
            "will be passed through unchanged (no lip-sync there).",
            value=round(share, 3),
            limit=cfg.max_no_face_share,
            frame_index=first.frame_index,
        )
    ]


def _face_size_findings(
    with_face: Sequence[FrameEvidence], cfg: ValidationSettings
) -> list[Finding]:
    size = _median([e.face_fraction or 0.0 for e in with_face])
    if size >= cfg.min_face_fraction:
        return []
    smallest = deciding_frame(with_face, "small_face")
    return [
        _refuse(
            "face_too_small",
            f"The face is too small: it fills only {_pct(size)} of the picture height (at least "
            f"{_pct(cfg.min_face_fraction)} needed); move the camera closer or crop the video "
            "around the person.",
            value=round(size, 3),
            limit=cfg.min_face_fraction,
            frame_index=smallest.frame_index if smallest else None,
        )
    ]


def _pose_findings(
    with_face: Sequence[FrameEvidence], cfg: ValidationSettings, fps: float
) -> list[Finding]:
    yawed = [e for e in with_face if abs(e.yaw or 0.0) > cfg.max_yaw_degrees]
    pitched = [e for e in with_face if abs(e.pitch or 0.0) > cfg.max_pitch_degrees]
    turned = {e.frame_index for e in yawed} | {e.frame_index for e in pitched}
    if not turned:
        return []
    share = len(turned) / len(with_face)
    is_yaw = len(yawed) >= len(pitched)
    worst = deciding_frame(yawed if is_yaw else pitched, "yaw" if is_yaw else "pitch")
    assert worst is not None  # yawed or pitched is non-empty
    if share <= cfg.max_turned_share:
        return [
            _warn(
                "face_turned_briefly",
                f"The person turns away from the camera (beyond {cfg.max_yaw_degrees:.0f} degrees "
                f"sideways or {cfg.max_pitch_degrees:.0f} up/down) in {_pct(share)} of the "
                f"video, around {_clock(worst.frame_index / fps)}; those frames will be passed "
                "through unchanged (no lip-sync there).",
                value=round(share, 3),
                limit=cfg.max_turned_share,
                frame_index=worst.frame_index,
            )
        ]
    where = f"in {_pct(share)} of the video (at most {_pct(cfg.max_turned_share)} allowed)"
    if is_yaw:
        angle = _median([abs(e.yaw or 0.0) for e in yawed])
        code, limit = "face_turned", cfg.max_yaw_degrees
        message = (
            f"The person is turned {angle:.0f} degrees away from the camera {where}; ask them "
            f"to turn to face the camera (within {limit:.0f} degrees) and record again."
        )
    else:
        angle = _median([abs(e.pitch or 0.0) for e in pitched])
        direction = "down" if (worst.pitch or 0.0) > 0 else "up"
        code, limit = "face_tilted", cfg.max_pitch_degrees
        message = (
            f"The person looks {angle:.0f} degrees {direction} {where}; ask them to look "
            f"straight into the camera (within {limit:.0f} degrees) and record again."
        )
    return [
        _refuse(code, message, value=round(angle, 1), limit=limit, frame_index=worst.frame_index)
    ]


def _occlusion_findings(
    with_face: Sequence[FrameEvidence], cfg: ValidationSettings, fps: float
) -> list[Finding]:
    covered = [e for e in with_face if (e.occlusion or 0.0) > cfg.mouth_covered_threshold]
    if not covered:
        return []
    share = len(covered) / len(with_face)
    score = _median([e.occlusion or 0.0 for e in covered])
    worst = deciding_frame(covered, "occlusion")
    assert worst is not None
    if share > cfg.max_mouth_covered_share:
        return [
            _refuse(
                "mouth_covered",
                f"The mouth is covered (score {score:.2f}, limit {cfg.mouth_covered_threshold:.2f})"
                f" in {_pct(share)} of the video; remove the mask or hand from the mouth and "
                "record again.",
                value=round(score, 3),
                limit=cfg.mouth_covered_threshold,
                frame_index=worst.frame_index,
            )
        ]
    return [
        _warn(
            "mouth_covered_briefly",
            f"Something covers the mouth (score {score:.2f}) in {_pct(share)} of the video, "
            f"around {_clock(worst.frame_index / fps)}; the lips may look wrong there. Keep "
            "hands and objects away from the mouth.",
            value=round(score, 3),
            limit=cfg.mouth_covered_threshold,
            frame_index=worst.frame_index,
        )
    ]


def _several_faces_findings(frames: Sequence[FrameEvidence]) -> list[Finding]:
    crowded = deciding_frame(frames, "face_count")
    if crowded is None:
        return []
    share = sum(e.face_count > 1 for e in frames) / len(frames)
    return [
        _warn(
            "several_faces",
            f"Up to {crowded.face_count} faces are visible (in {_pct(share)} of the video); the "
            "largest, most central, most persistent face is taken as the speaker. Crop the "
            "video to the speaking person if that is someone else.",
            value=crowded.face_count,
            limit=1,
            frame_index=crowded.frame_index,
        )
    ]
