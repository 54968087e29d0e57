"""What probing a media file tells us. Pure data; produced by :mod:`heygemd.media.probe`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# the most channels a job's audio may have: FFmpeg names a standard layout for each count up to
# 8 (7.1), by which a track is mixed down; beyond 8 it knows some counts (10, 12, 16: 5.1.4,
# 7.1.4, ...) and not others (9, 11, 13, ...: such a file cannot be mixed down at all)
MAX_CHANNELS = 8


@dataclass(frozen=True)
class VideoStreamInfo:
    codec: str
    width: int  # after applying rotation metadata (what a viewer sees)
    height: int
    rotation: int  # degrees clockwise the decoded frames must be turned: 0, 90, 180, 270
    avg_fps: float
    real_fps: float  # r_frame_rate / base rate; differs from avg_fps for VFR input
    is_vfr: bool
    frame_count: int | None  # from the container, when it says
    duration: float | None  # seconds
    pix_fmt: str | None
    bit_rate: int | None
    # (matrix, range, primaries, transfer) as the stream says, FFmpeg's numbers (2, 0, 2, 2:
    # unspecified)
    colour: tuple[int, int, int, int] = (2, 0, 2, 2)
    mirrored: bool = False  # after the turn, flipped left to right (a display matrix's flip)

    @property
    def frame_rate(self) -> float:
        """The rate frames are read at (VideoReader's default): the average rate, else the
        stream's base rate, else 25."""
        return self.avg_fps or self.real_fps or 25.0


@dataclass(frozen=True)
class AudioStreamInfo:
    codec: str
    sample_rate: int
    channels: int
    sample_format: str | None
    duration: float | None
    bit_rate: int | None


@dataclass(frozen=True)
class MediaInfo:
    path: str
    container: str  # e.g. "mov,mp4,m4a,3gp,3g2,mj2", "avi", "matroska,webm"
    duration: float  # seconds (container, else longest stream)
    size_bytes: int
    bit_rate: int | None
    video: VideoStreamInfo | None = None  # the first/default video stream
    audio: AudioStreamInfo | None = None  # the first/default audio stream
    streams: tuple[str, ...] = field(default_factory=tuple)  # e.g. ("video:h264", "audio:aac")

    @property
    def has_video(self) -> bool:
        return self.video is not None

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    def summary(self) -> dict[str, Any]:
        """JSON-ready dict for report.json (without the path: it names the daemon's work area,
        which means nothing to the user; the report names the file already)."""
        facts = asdict(self)
        facts.pop("path")
        return facts
