"""Rules on the sampled frames: is there one speaker's face, big enough, facing the camera,
with the mouth uncovered? Pure: they read :class:`FrameEvidence`, one per sampled frame."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from heygemd.media.types import MediaInfo
from heygemd.report import Finding, Severity
from heygemd.settings import LimitSettings, ValidationSettings
from heygemd.validation.rules.common import clock, finding, median, pct, refuse, warn
from heygemd.validation.rules.media import validate_video_info


@dataclass(frozen=True)
class FrameEvidence:
    """What one sampled frame shows of the speaker.

    frame_index: index of the frame in the video at its constant frame rate.
    face_count: faces found in the frame (0 = none).
    face_fraction: speaker's face box height / frame height (0..1); None without a face.
    yaw, pitch: speaker's head pose in degrees (0 = facing the camera); None without a face.
    occlusion: speaker's mouth-occlusion score 0..1 (1 = covered); None without a face.
    hand: share 0..1 of the speaker's lower face a hand covers (faces.hands.hand_cover); None
        without a face.
    light: how well the speaker's face is lit: the L* (0-255) of its best-lit skin
        (faces.occlusion.MouthColour.skin_light); None without a face.
    """

    frame_index: int
    face_count: int
    face_fraction: float | None = None
    yaw: float | None = None
    pitch: float | None = None
    occlusion: float | None = None
    hand: float | None = None
    light: float | None = None

    @property
    def has_face(self) -> bool:
        return self.face_fraction is not None


def _score_or_none(e: FrameEvidence, value: float | None) -> float | None:
    return value if e.has_face else None


# name -> score of a frame (None: not a candidate). The deciding frame of a rule is the first
# frame with the highest score; examine draws its picture.
FRAME_CRITERIA: dict[str, Callable[[FrameEvidence], float | None]] = {
    "yaw": lambda e: _score_or_none(e, abs(e.yaw or 0.0)),
    "pitch": lambda e: _score_or_none(e, abs(e.pitch or 0.0)),
    "occlusion": lambda e: _score_or_none(e, e.occlusion or 0.0),
    "hand": lambda e: _score_or_none(e, e.hand or 0.0),
    "dark": lambda e: None if e.light is None else -e.light,
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
            refuse(
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
    findings += _hand_findings(with_face, cfg, fps)
    findings += _several_faces_findings(frames)
    return findings


def _no_face_findings(
    frames: Sequence[FrameEvidence], cfg: ValidationSettings, fps: float
) -> list[Finding]:
    first = deciding_frame(frames, "no_face")
    if first is None:
        return []
    share = sum(not e.has_face for e in frames) / len(frames)
    when = clock(first.frame_index / fps)
    if share > cfg.max_no_face_share:
        severity, code = Severity.REFUSE, "no_face"
        message = (
            f"No face was found in {pct(share)} of the video (at most "
            f"{pct(cfg.max_no_face_share)} allowed), first at {when}; record the person's "
            "whole face from close by, well lit and facing the camera."
        )
    else:
        severity, code = Severity.WARN, "face_missing_briefly"
        message = (
            f"No face was found in {pct(share)} of the video, first at {when}; those frames "
            "will be passed through unchanged (no lip-sync there)."
        )
    return [
        finding(
            severity, code, message, value=round(share, 3), limit=cfg.max_no_face_share,
            frame_index=first.frame_index,
        )
    ]


def _face_size_findings(
    with_face: Sequence[FrameEvidence], cfg: ValidationSettings
) -> list[Finding]:
    size = median([e.face_fraction or 0.0 for e in with_face])
    if size >= cfg.min_face_fraction:
        return []
    smallest = deciding_frame(with_face, "small_face")
    return [
        refuse(
            "face_too_small",
            f"The face is too small: it fills only {pct(size)} of the picture height (at least "
            f"{pct(cfg.min_face_fraction)} needed); move the camera closer or crop the video "
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
            warn(
                "face_turned_briefly",
                f"The person turns away from the camera (beyond {cfg.max_yaw_degrees:.0f} degrees "
                f"sideways or {cfg.max_pitch_degrees:.0f} up/down) in {pct(share)} of the "
                f"video, around {clock(worst.frame_index / fps)}; the new mouth may look wrong "
                "there, and where the head is turned furthest those frames keep their own "
                "mouth (no lip-sync there).",
                value=round(share, 3),
                limit=cfg.max_turned_share,
                frame_index=worst.frame_index,
            )
        ]
    where = f"in {pct(share)} of the video (at most {pct(cfg.max_turned_share)} allowed)"
    if is_yaw:
        angle = median([abs(e.yaw or 0.0) for e in yawed])
        code, limit = "face_turned", cfg.max_yaw_degrees
        message = (
            f"The person is turned {angle:.0f} degrees away from the camera {where}; ask them "
            f"to turn to face the camera (within {limit:.0f} degrees) and record again."
        )
    else:
        angle = median([abs(e.pitch or 0.0) for e in pitched])
        direction = "down" if (worst.pitch or 0.0) > 0 else "up"
        code, limit = "face_tilted", cfg.max_pitch_degrees
        message = (
            f"The person looks {angle:.0f} degrees {direction} {where}; ask them to look "
            f"straight into the camera (within {limit:.0f} degrees) and record again."
        )
    return [
        refuse(code, message, value=round(angle, 1), limit=limit, frame_index=worst.frame_index)
    ]


# A face lit this dimly (the L*, 0-255, of its best-lit skin; the real clips' 100-220) shows no
# mouth to judge, so where its mouth reads covered the face is too dark, not covered: the cover
# score's mouth-line depths stop shrinking with the light at their floor there
# (faces.occlusion: LINE_DEPTH_LIGHT * LINE_DEPTH_FLOOR[1] / LINE_DEPTH_HIGH), while a dim
# mouth measures 3-5 deep. c22 at 15-20% of its light (19-30) and c06, c20, th02 at 15% (10-12)
# were refused as masked.
DARK_LIGHT = 40.0


def _is_dark(e: FrameEvidence) -> bool:
    return e.light is not None and e.light < DARK_LIGHT


def _occlusion_findings(
    with_face: Sequence[FrameEvidence], cfg: ValidationSettings, fps: float
) -> list[Finding]:
    """Frames whose mouth reads covered: covered where the face is lit, too dark to tell where
    not. Refused when such frames together exceed the share allowed (named for the larger
    kind), else a warning for each kind found."""
    unseen = [e for e in with_face if (e.occlusion or 0.0) > cfg.mouth_covered_threshold]
    if not unseen:
        return []
    dark = [e for e in unseen if _is_dark(e)]
    covered = [e for e in unseen if not _is_dark(e)]
    if len(unseen) / len(with_face) > cfg.max_mouth_covered_share:
        return [_unseen_refusal(covered, dark, len(with_face), cfg)]
    return _covered_warning(covered, with_face, cfg, fps) + _dark_warning(dark, with_face, fps)


def _lightness(light: float) -> float:
    """An L* of 0-255 (as OpenCV measures it) on L*'s usual 0-100 scale, 0.1 apart."""
    return round(light * 100 / 255, 1)


def _light_of(dark: Sequence[FrameEvidence]) -> float:
    """The median lightness of the ``dark`` frames' faces, on the 0-100 scale."""
    return _lightness(median([e.light or 0.0 for e in dark]))


def _unseen_refusal(covered: Sequence[FrameEvidence], dark: Sequence[FrameEvidence],
                    total: int, cfg: ValidationSettings) -> Finding:
    share = (len(covered) + len(dark)) / total
    if len(dark) > len(covered):
        light = _light_of(dark)
        also = f"; something covers it in {pct(len(covered) / total)}" if covered else ""
        return refuse(
            "face_too_dark",
            f"The face is too dark to tell whether the mouth is free in {pct(share)} of the "
            f"video (its best-lit skin has lightness {light:.1f} of 100){also}; light the "
            "face from the front, keep the mouth uncovered and record again.",
            value=light, limit=_lightness(DARK_LIGHT),
            frame_index=_deciding(dark, "dark").frame_index,
        )
    score = median([e.occlusion or 0.0 for e in covered])
    also = f"; the face is too dark to see it in {pct(len(dark) / total)}" if dark else ""
    return refuse(
        "mouth_covered",
        f"The mouth is covered (score {score:.2f}, limit {cfg.mouth_covered_threshold:.2f})"
        f" in {pct(len(covered) / total)} of the video{also}; remove the mask or hand from "
        "the mouth and record again.",
        value=round(score, 3), limit=cfg.mouth_covered_threshold,
        frame_index=_deciding(covered, "occlusion").frame_index,
    )


def _deciding(frames: Sequence[FrameEvidence], criterion: str) -> FrameEvidence:
    worst = deciding_frame(frames, criterion)
    assert worst is not None  # frames is not empty
    return worst


def _dark_warning(dark: Sequence[FrameEvidence], with_face: Sequence[FrameEvidence],
                  fps: float) -> list[Finding]:
    if not dark:
        return []
    worst = _deciding(dark, "dark")
    return [
        warn(
            "face_dark_briefly",
            f"The face is too dark to tell whether the mouth is free in "
            f"{pct(len(dark) / len(with_face))} of the video, around "
            f"{clock(worst.frame_index / fps)}; the lips may look wrong there. Light the face "
            "from the front.",
            value=_light_of(dark), limit=_lightness(DARK_LIGHT),
            frame_index=worst.frame_index,
        )
    ]


def _covered_warning(covered: Sequence[FrameEvidence], with_face: Sequence[FrameEvidence],
                     cfg: ValidationSettings, fps: float) -> list[Finding]:
    if not covered:
        return []
    score = median([e.occlusion or 0.0 for e in covered])
    worst = _deciding(covered, "occlusion")
    return [
        warn(
            "mouth_covered_briefly",
            f"Something covers the mouth (score {score:.2f}) in "
            f"{pct(len(covered) / len(with_face))} of the video, around "
            f"{clock(worst.frame_index / fps)}; the lips may look wrong there. Keep hands and "
            "objects away from the mouth.",
            value=round(score, 3), limit=cfg.mouth_covered_threshold,
            frame_index=worst.frame_index,
        )
    ]


# A hand covering this share of the lower face is in front of it: c18's fingertips at the chin
# cover 0.02, a finger up to the lower lip 0.08; a hand found on no other real clip we hold.
HAND_AT_FACE = 0.015


def _hand_findings(
    with_face: Sequence[FrameEvidence], cfg: ValidationSettings, fps: float
) -> list[Finding]:
    """A warning where a hand comes in front of the chin or mouth: the new mouth meets it there
    (the builtin engine keeps the hand in front and draws the mouth around it; a mouth beside a
    finger may still look wrong). Frames whose mouth counts as covered are the mouth-cover
    finding's."""
    near = [e for e in with_face if (e.hand or 0.0) >= HAND_AT_FACE
            and (e.occlusion or 0.0) <= cfg.mouth_covered_threshold]
    if not near:
        return []
    worst = _deciding(near, "hand")
    share = len(near) / len(with_face)
    return [
        warn(
            "hand_at_mouth",
            f"A hand comes in front of the chin or mouth in {pct(share)} of the video, around "
            f"{clock(worst.frame_index / fps)}; the new mouth may look wrong there, where the "
            "hand meets the lips. Keep hands below the chin.",
            value=round(worst.hand or 0.0, 3),
            limit=HAND_AT_FACE,
            frame_index=worst.frame_index,
        )
    ]


def _several_faces_findings(frames: Sequence[FrameEvidence]) -> list[Finding]:
    crowded = deciding_frame(frames, "face_count")
    if crowded is None:
        return []
    share = sum(e.face_count > 1 for e in frames) / len(frames)
    return [
        warn(
            "several_faces",
            f"Up to {crowded.face_count} faces are visible (in {pct(share)} of the video); the "
            "largest, most central, most persistent face is taken as the speaker. Crop the "
            "video to the speaking person if that is someone else.",
            value=crowded.face_count,
            limit=1,
            frame_index=crowded.frame_index,
        )
    ]
