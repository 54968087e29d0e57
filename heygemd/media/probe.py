"""Probe a media file with PyAV: what it contains, without decoding it all.

I/O happens in :func:`probe` and the small helpers that read a container; the judgements
(rotation angle, VFR from timestamps, container/extension agreement) are pure functions.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from heygemd.errors import COPY_ADVICE, COPY_HINT, MediaError
from heygemd.media.types import AudioStreamInfo, MediaInfo, VideoStreamInfo

log = structlog.get_logger(__name__)

VFR_PACKETS = 48  # video packets whose timestamps decide whether the rate is variable
VFR_TOLERANCE = 0.25  # relative deviation from the median frame spacing that is irregular
VFR_IRREGULAR_SHARE = 0.1  # share of irregular gaps above which a stream counts as VFR
REORDER_DEPTH = 16  # decode-order reordering depth (B-pyramids) to ignore at the end
# FFmpeg reads up to 5 MB of a file to learn its streams: ~1 s of 48 kHz stereo PCM, ~20 ms per
# open. A PCM WAV's header already says everything (probe results and decoded samples of 33
# WAVs, u8..f32, 1-2 channels, 16-48 kHz, came out the same), so WAVs are opened reading this
# much, and opened again the usual way when the WAV does not hold PCM.
WAV_PROBE_BYTES = 65536

# Which FFmpeg demuxers a file extension may legitimately hold. Extensions not listed are not
# checked (the content decides).
EXTENSION_CONTAINERS: dict[str, tuple[str, ...]] = {
    ".mp4": ("mov,mp4,m4a,3gp,3g2,mj2",),
    ".m4v": ("mov,mp4,m4a,3gp,3g2,mj2",),
    ".m4a": ("mov,mp4,m4a,3gp,3g2,mj2",),
    ".mov": ("mov,mp4,m4a,3gp,3g2,mj2",),
    ".3gp": ("mov,mp4,m4a,3gp,3g2,mj2",),
    ".mkv": ("matroska,webm",),
    ".webm": ("matroska,webm",),
    ".avi": ("avi",),
    ".flv": ("flv", "live_flv"),
    ".wav": ("wav", "w64"),
    ".mp3": ("mp3",),
    ".aac": ("aac",),
    ".flac": ("flac",),
    ".ogg": ("ogg",),
    ".oga": ("ogg",),
    ".opus": ("ogg",),
}

# Plain-words names for what a container really is, used in wrong-extension messages.
CONTAINER_NAMES: dict[str, str] = {
    "mov,mp4,m4a,3gp,3g2,mj2": "an MP4/MOV file",
    "matroska,webm": "a Matroska/WebM file",
    "avi": "an AVI file",
    "flv": "an FLV file",
    "wav": "a WAV file",
    "mp3": "an MP3 file",
    "aac": "an AAC file",
    "flac": "a FLAC file",
    "ogg": "an Ogg file",
    "mpegts": "an MPEG-TS file",
    "mpeg": "an MPEG file",
    "asf": "a WMV/WMA file",
}
# FFmpeg's demuxers for still pictures (any other ``*_pipe`` is one too), by their usual name.
PICTURE_NAMES: dict[str, str] = {
    "jpeg_pipe": "JPEG",
    "png_pipe": "PNG",
    "webp_pipe": "WebP",
    "bmp_pipe": "BMP",
    "tiff_pipe": "TIFF",
    "gif": "GIF",
    "image2": "image",
}
TEXT_PROBE_BYTES = 512  # how much of an unreadable file is looked at to tell it is text


def rotation_clockwise(display_rotation: float | None, rotate_tag: str | None) -> int:
    """Degrees (0/90/180/270) the decoded frames must be turned clockwise to stand upright.

    display_rotation: FFmpeg's display-matrix angle (counter-clockwise, -180..180), or None.
    rotate_tag: the legacy ``rotate`` stream tag (clockwise degrees), or None.
    """
    if display_rotation:
        degrees = -float(display_rotation)
    elif rotate_tag:
        try:
            degrees = float(rotate_tag)
        except ValueError:
            return 0
    else:
        return 0
    return int(round(degrees / 90.0)) % 4 * 90


def orientation(matrix: Sequence[int] | None, rotate_tag: str | None) -> tuple[int, bool]:
    """(degrees clockwise 0/90/180/270, mirrored): how the decoded frames stand upright, as
    FFmpeg's own autorotation turns them. Mirrored: flipped left to right after the turn.

    matrix: the display matrix on the decoded frames (9 ints, 16.16 fixed point as FFmpeg keeps
    it), or None; rotate_tag: the legacy ``rotate`` stream tag (clockwise degrees), read where
    there is no matrix. A matrix with a flip (a phone's front camera may record so) turns and
    mirrors the picture, each case as ffmpeg's autorotate filters it (transpose clock_flip and
    cclock_flip, hflip, vflip); an angle off the quarter turns is rounded to the nearest one.
    """
    if matrix is None or len(matrix) < 5:
        return rotation_clockwise(None, rotate_tag), False
    a, b, c, d = (float(matrix[i]) / 65536 for i in (0, 1, 3, 4))
    across, down = math.hypot(a, c), math.hypot(b, d)
    if across == 0.0 or down == 0.0:
        return 0, False
    theta = round(math.degrees(math.atan2(b / down, a / across)))  # clockwise
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    if abs(theta - 90) < 1:
        return 90, c > 0  # cclock_flip (a transpose): a quarter turn, then left to right
    if abs(theta - 270) < 1:
        return 270, c < 0  # clock_flip: the other quarter turn, then left to right
    if abs(theta - 180) < 1:  # hflip where a < 0, vflip where d < 0 (a vflip: a half turn
        return (180, a >= 0) if d < 0 else (0, a < 0)  # mirrored)
    if abs(theta) < 1:
        return (180, True) if d < 0 else (0, False)
    return int(round(theta / 90.0)) % 4 * 90, False


def is_variable_rate(times: Sequence[float], tolerance: float = VFR_TOLERANCE) -> bool:
    """True when frame spacing varies: ``times`` are presentation times in seconds (any order).

    The timestamps are sorted (B-frame reordering is not VFR) and the last few dropped (frames
    still to come in decode order leave holes there). A gap counts as irregular when it differs
    from the median by more than ``tolerance`` (so millisecond rounding in Matroska is not VFR);
    the stream is VFR when over VFR_IRREGULAR_SHARE of its gaps are (one dropped frame is not).
    """
    ordered = sorted(set(times))
    ordered = ordered[: len(ordered) - min(REORDER_DEPTH, len(ordered) // 4)]
    if len(ordered) < 4:
        return False
    gaps = np.diff(np.asarray(ordered, dtype=np.float64))
    median = float(np.median(gaps))
    if median <= 0:
        return False
    irregular = np.abs(gaps / median - 1.0) > tolerance
    return float(irregular.mean()) > VFR_IRREGULAR_SHARE


def picture_kind(container: str) -> str | None:
    """The usual name of the still-picture format FFmpeg's demuxer ``container`` reads
    ("JPEG" for jpeg_pipe), or None when it is not a picture demuxer."""
    if container in PICTURE_NAMES:
        return PICTURE_NAMES[container]
    if container.endswith("_pipe"):
        return container.removesuffix("_pipe").upper()
    return None


def wrong_extension_message(name: str, suffix: str, container: str) -> str:
    """What a user is told when ``name``'s extension ``suffix`` lies about what the file holds
    (``container``: FFmpeg's demuxer name, never shown)."""
    picture = picture_kind(container)
    if picture is not None:
        return (
            f"{name} is a still picture ({picture}), not a video or a sound recording; send "
            "the video or the recording itself."
        )
    really = CONTAINER_NAMES.get(container)
    if really is None:
        return (
            f"{name} is not what its '{suffix}' extension says: it holds another kind of file. "
            "Export it again from the program that made it."
        )
    return (
        f"{name} is really {really}, not what its '{suffix}' extension says; rename it with "
        "the right extension or export it again."
    )


def check_extension(path: Path, container: str) -> None:
    """Raise MediaError(code="wrong_extension") when ``path``'s extension lies about its content."""
    allowed = EXTENSION_CONTAINERS.get(path.suffix.lower())
    if allowed is None or container in allowed:
        return
    log.info("media.wrong_extension", file=path.name, container=container)
    raise MediaError(
        wrong_extension_message(path.name, path.suffix, container),
        code="wrong_extension",
        value=container,
    )


def looks_like_text(head: bytes) -> bool:
    """Whether the first bytes of a file are text (UTF-8, no control characters but line
    breaks and tabs): a script or notes saved under a media name."""
    if not head:
        return False
    text = head.decode("utf-8", errors="replace")
    if text.count("\ufffd") > 1:  # one: a character cut at the end of ``head``
        return False
    return all(c.isprintable() or c in "\n\r\t\f" for c in text.replace("\ufffd", ""))


def _fraction(value: Fraction | None) -> float:
    return float(value) if value else 0.0


def _seconds(amount: int | None, time_base: Fraction | None) -> float | None:
    if amount is None or time_base is None or amount <= 0:
        return None
    return float(amount * time_base)


def _scan_video(container: Any, stream: Any, limit: int = VFR_PACKETS
                ) -> tuple[list[float], tuple[int, ...] | None]:
    """Presentation times (s) of the first ``limit`` packets of ``stream``, and the display
    matrix FFmpeg attaches to the first decoded frame (None without one; decodes until the
    first frame appears)."""
    times: list[float] = []
    matrix: tuple[int, ...] | None = None
    seen = False
    for packet in container.demux(stream):
        if packet.pts is not None and packet.time_base is not None:
            times.append(float(packet.pts * packet.time_base))
        if not seen:
            frames = packet.decode()
            if frames:
                seen, matrix = True, _display_matrix(frames[0])
        if len(times) >= limit and seen:
            break
    return times, matrix


def _display_matrix(frame: Any) -> tuple[int, ...] | None:
    """The frame's display matrix side data as 9 ints, or None."""
    from av.sidedata.sidedata import Type

    data = frame.side_data.get(Type.DISPLAYMATRIX)
    if data is None:
        return None
    raw = bytes(data)
    if len(raw) < 36:
        return None
    return tuple(int(v) for v in np.frombuffer(raw[:36], dtype="<i4"))


def _video_info(container: Any, stream: Any) -> VideoStreamInfo:
    times, matrix = _scan_video(container, stream)
    rotation, mirrored = orientation(matrix, stream.metadata.get("rotate"))
    width, height = stream.codec_context.width, stream.codec_context.height
    if rotation in (90, 270):
        width, height = height, width
    avg = _fraction(stream.average_rate) or _fraction(stream.guessed_rate)
    real = _fraction(stream.base_rate) or avg
    if len(times) >= 8:
        is_vfr = is_variable_rate(times)
    else:  # too few frames to judge by timestamps: trust the container's two rates
        is_vfr = avg > 0 and real > 0 and abs(avg - real) / real > 0.02
    duration = _seconds(stream.duration, stream.time_base)
    return VideoStreamInfo(
        codec=stream.codec_context.codec.canonical_name,
        width=width,
        height=height,
        rotation=rotation,
        mirrored=mirrored,
        avg_fps=avg,
        real_fps=real,
        is_vfr=is_vfr,
        frame_count=stream.frames or None,
        duration=duration,
        pix_fmt=stream.codec_context.pix_fmt,
        bit_rate=stream.codec_context.bit_rate or None,
        colour=(int(stream.codec_context.colorspace), int(stream.codec_context.color_range),
                int(stream.codec_context.color_primaries), int(stream.codec_context.color_trc)),
    )


def _audio_info(stream: Any) -> AudioStreamInfo:
    ctx = stream.codec_context
    return AudioStreamInfo(
        codec=ctx.codec.canonical_name,
        sample_rate=int(ctx.sample_rate or 0),
        channels=int(ctx.channels or 0),
        sample_format=ctx.format.name if ctx.format is not None else None,
        duration=_seconds(stream.duration, stream.time_base),
        bit_rate=ctx.bit_rate or None,
    )


def open_input(path: Path) -> Any:
    """av.open(path) with every FFmpeg failure turned into a plain-words MediaError."""
    import av

    if not path.is_file():
        raise MediaError(f"{path.name} does not exist or is not a file.", code="missing_file")
    if os.path.getsize(path) == 0:
        log.info("media.unreadable", file=path.name, code="empty_file", hint=COPY_HINT)
        raise MediaError(f"{path.name} is empty (0 bytes).{COPY_ADVICE}", code="empty_file")
    try:
        if _is_wave(path):
            container = av.open(str(path), mode="r", options={"probesize": str(WAV_PROBE_BYTES)})
            streams = list(container.streams)
            if streams and all(s.codec_context.name.startswith("pcm_") for s in streams):
                return container
            container.close()
        return av.open(str(path), mode="r")
    except av.FFmpegError as err:
        # FFmpeg's error chained: an errno (a share gone) stays visible to faults.py
        raise _unopenable(path, err) from err


def _unopenable(path: Path, err: Exception) -> MediaError:
    """The MediaError for a file FFmpeg cannot open; FFmpeg's words go to the log."""
    with open(path, "rb") as fh:
        is_text = looks_like_text(fh.read(TEXT_PROBE_BYTES))
    log.info("media.unreadable", file=path.name, code="unreadable_media", ffmpeg=str(err),
             text=is_text, hint=None if is_text else COPY_HINT)
    if is_text:
        return MediaError(
            f"{path.name} holds text, not sound or pictures; send the recording itself.",
            code="unreadable_media",
        )
    return MediaError(
        f"{path.name} cannot be read as audio or video; it may be damaged, cut short or not a "
        f"media file.{COPY_ADVICE}",
        code="unreadable_media",
    )


def _is_wave(path: Path) -> bool:
    """Whether the file starts as a RIFF (or RF64/BW64) WAVE file does."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    return head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE"


def check_complete(path: Path, size_bytes: int, index_ends: Sequence[int]) -> None:
    """Raise MediaError(code="truncated_media") when the container's own index points past the
    end of the file: a copy or download that stopped early.

    index_ends: for each stream, where its last indexed packet ends (byte offset), if known.
    """
    missing = max(index_ends, default=0) - size_bytes
    if missing > 0:
        log.info("media.unreadable", file=path.name, code="truncated_media",
                 missing_bytes=missing, hint=COPY_HINT)
        raise MediaError(
            f"{path.name} is incomplete: its end is missing, so the copy or download probably "
            f"stopped early.{COPY_ADVICE}",
            code="truncated_media",
            value=size_bytes,
        )


def _index_ends(container: Any) -> list[int]:
    ends = []
    for stream in container.streams:
        entries = stream.index_entries
        if entries is not None and len(entries):
            last = entries[len(entries) - 1]
            ends.append(int(last.pos) + int(last.size))
    return ends


def _duration(
    container: Any, video: VideoStreamInfo | None, audio: AudioStreamInfo | None
) -> float:
    if container.duration:
        return float(container.duration) / 1_000_000  # AV_TIME_BASE
    streams = [s.duration for s in (video, audio) if s is not None and s.duration]
    return max(streams, default=0.0)


def probe(path: Path) -> MediaInfo:
    """What ``path`` holds: container, first video and audio stream facts, duration (s).

    Raises MediaError (codes: missing_file, empty_file, unreadable_media, wrong_extension,
    truncated_media, no_streams) with a message in the user's words; FFmpeg's own, and the
    settings an operator may change, are logged (``media.unreadable``).
    """
    import av

    path = Path(path)
    container = open_input(path)
    try:
        check_extension(path, container.format.name)
        check_complete(path, os.path.getsize(path), _index_ends(container))
        streams = [s for s in container.streams if s.type in ("video", "audio")]
        if not streams:
            raise MediaError(
                f"{path.name} contains neither sound nor pictures; send the recording itself.",
                code="no_streams",
            )
        names = tuple(f"{s.type}:{s.codec_context.codec.canonical_name}" for s in container.streams)
        video_streams = [s for s in container.streams.video if not _is_cover_art(s)]
        audio_streams = list(container.streams.audio)
        try:
            video = _video_info(container, video_streams[0]) if video_streams else None
        except av.FFmpegError as err:
            log.info("media.unreadable", file=path.name, code="unreadable_media",
                     ffmpeg=str(err), hint=COPY_HINT)
            raise MediaError(
                f"The video in {path.name} cannot be decoded; the file may be damaged or cut "
                f"short.{COPY_ADVICE}",
                code="unreadable_media",
            ) from None
        audio = _audio_info(audio_streams[0]) if audio_streams else None
        info = MediaInfo(
            path=str(path),
            container=container.format.name,
            duration=_duration(container, video, audio),
            size_bytes=os.path.getsize(path),
            bit_rate=container.bit_rate or None,
            video=video,
            audio=audio,
            streams=names,
        )
    finally:
        container.close()
    log.debug("media.probed", file=path.name, container=info.container, streams=info.streams)
    return info


def _is_cover_art(stream: Any) -> bool:
    """MP3/M4A cover pictures appear as one-frame video streams; they are not video."""
    from av.stream import Disposition

    return bool(stream.disposition & Disposition.attached_pic)
