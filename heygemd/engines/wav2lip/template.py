"""Template frames by index, for ping-pong playback, with bounded memory.

A template that fits the memory budget is kept decoded (filled during the face pass, so it is
decoded once). A larger one is streamed forward, and read back in chunks of the budget's size
for the backward half of each ping-pong cycle, each decoded from the keyframe before it (a
seek, not a decode from the start).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import structlog

from heygemd.media.types import MediaInfo
from heygemd.media.video import VideoReader, read_range
from heygemd.media.yuv import Picture, YuvFrame

log = structlog.get_logger(__name__)


def held_bytes(frame: Picture) -> int:
    """Bytes a held frame keeps: a YuvFrame's 4:2:0 planes, an array's own."""
    if isinstance(frame, YuvFrame):
        height, width = frame.shape[:2]
        return width * height * 3 // 2
    return int(frame.nbytes)


class TemplateFrames:
    """RGB uint8 (H, W, 3) frames of ``path`` by index; ``budget_bytes`` caps what is held
    (``frame_bytes`` a frame, until the first frame decoded says what one holds). ``info``: the
    probe of ``path`` when known (the readers then do not probe it again). ``as_yuv``: frames
    that can travel decoded are held and given as YuvFrames (VideoReader.picture)."""

    def __init__(
        self,
        path: Path,
        fps: float,
        frame_bytes: int,
        budget_bytes: int,
        info: MediaInfo | None = None,
        as_yuv: bool = False,
    ) -> None:
        self.path = path
        self.fps = fps
        self.info = info
        self.as_yuv = as_yuv
        self.budget = budget_bytes
        self.chunk = max(1, budget_bytes // max(frame_bytes, 1))
        self._cache: list[Picture] | None = []
        self._chunk_frames: dict[int, Picture] = {}
        self._stream: Iterator[tuple[int, Picture]] | None = None
        self._reader: VideoReader | None = None
        self._position = 0  # index of the next frame the stream yields
        self._last = -1

    def first_pass(self, limit: int) -> Iterator[tuple[int, Picture]]:
        """Decode frames 0..limit-1 (fewer if the video is shorter) in order, keeping them when
        they fit the budget."""
        with VideoReader(self.path, fps=self.fps, info=self.info) as reader:
            for index, frame in reader.pictures(as_yuv=self.as_yuv):
                if index >= limit:
                    break
                if index == 0:  # a frame the decoder gave in another form is held as RGB
                    self.chunk = max(1, self.budget // max(held_bytes(frame), 1))
                if self._cache is not None:
                    if len(self._cache) < self.chunk:
                        self._cache.append(frame)
                    else:
                        self._cache = None
                        log.info("wav2lip.template_streamed", budget_frames=self.chunk)
                yield index, frame

    def get(self, index: int) -> Picture:
        """Frame ``index`` (within what first_pass decoded). Cheapest when called in ping-pong
        order."""
        if self._cache is not None:
            return self._cache[index]
        backward = index < self._last
        self._last = index
        if index in self._chunk_frames:
            return self._chunk_frames[index]
        if backward:
            return self._load_chunk_ending_at(index)
        if self._stream is None or index < self._position:
            self._open_stream(index)
        return self._advance_to(index)

    def _load_chunk_ending_at(self, index: int) -> Picture:
        start = max(0, index - self.chunk + 1)
        self._chunk_frames = {}  # release the previous chunk before decoding the next
        self._chunk_frames = dict(
            read_range(self.path, start, index + 1, fps=self.fps, info=self.info,
                       as_yuv=self.as_yuv)
        )
        return self._chunk_frames[index]

    def _open_stream(self, start: int) -> None:
        self.close()
        self._reader = VideoReader(self.path, fps=self.fps, info=self.info)
        self._stream = self._reader.pictures(start, as_yuv=self.as_yuv)
        self._position = start

    def _advance_to(self, index: int) -> Picture:
        assert self._stream is not None
        self._chunk_frames = {}
        while True:
            position, frame = next(self._stream)
            self._position = position + 1
            if position == index:
                return frame

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = None
        self._stream = None
