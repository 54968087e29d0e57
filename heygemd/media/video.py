"""Stream video frames in and out with PyAV: RGB uint8 (H, W, 3) at a constant frame rate.

:class:`VideoReader` decodes one frame at a time (memory does not grow with video length),
turns HDR pictures (HLG, PQ) into SDR BT.709 ones as pictures are made of them (:mod:`.hdr`),
turns frames upright from rotation metadata and resamples variable-rate input to a constant rate by
timestamp. :mod:`heygemd.media.writer` encodes them back.
The timing and geometry rules are pure functions (:func:`cfr_schedule`, :func:`scaled_size`,
:func:`upright`, :func:`even_frame`) so that tests can drive them on synthetic data.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import numpy as np
import structlog

from heygemd.closing import Closing
from heygemd.errors import COPY_ADVICE, COPY_HINT, MediaError
from heygemd.media import hardware, hdr, yuv
from heygemd.media.probe import open_input, probe
from heygemd.media.types import MediaInfo, VideoStreamInfo
from heygemd.media.yuv import Picture

log = structlog.get_logger(__name__)

T = TypeVar("T")


def frames_for(seconds: float, fps: float) -> int:
    """Frames that cover ``seconds`` at ``fps``: the nearest count, halves rounded up (as
    :func:`cfr_schedule` and FFmpeg's ``fps`` filter round; not Python's round-half-to-even)."""
    return math.floor(seconds * fps + 0.5)


def cfr_schedule(
    timed: Iterable[tuple[float, float, T]],
    fps: float,
    *,
    t0: float | None = None,
    start: int = 0,
) -> Iterator[tuple[int, T]]:
    """Resample timed items to a constant rate: yields (output index, item) in order.

    timed: (start in seconds, duration in seconds, item) in presentation order. Output slot ``k``
    (time ``t0 + k / fps``, t0 = the first start unless given) holds the latest item whose start
    rounds to a slot <= k, like FFmpeg's ``fps`` filter: items are repeated over gaps and dropped
    when several fall into one slot. The output ends where the last item ends:
    ``round((end - t0) * fps)`` slots, and at least one slot for the last item.
    start: yield the slots from this one on; ``timed`` may then begin at any item whose slot is
    <= start (after a seek), and the slots yielded are those of the whole sequence.
    """
    pending: T | None = None
    end = 0.0
    next_index = start
    top = -1  # the highest slot of any item
    for t, duration, item in timed:
        if t0 is None:
            t0 = t
        slot = frames_for(t - t0, fps)  # halves round up, as in FFmpeg
        while pending is not None and next_index < slot:
            yield next_index, pending
            next_index += 1
        pending, end, top = item, t + duration, max(top, slot)
    if pending is None or t0 is None:
        return
    total = max(top + 1, frames_for(end - t0, fps))
    while next_index < total:
        yield next_index, pending
        next_index += 1


def even(n: int) -> int:
    """The largest even number <= n, but at least 2."""
    return max(2, n - n % 2)


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """Output (width, height) for ``scale``: unchanged at 1.0, else rounded down to even numbers."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    if scale == 1.0:
        return width, height
    return even(int(round(width * scale))), even(int(round(height * scale)))


def upright(frame: np.ndarray, rotation: int, mirrored: bool = False) -> np.ndarray:
    """Turn uint8 (H, W, 3) ``frame`` clockwise by ``rotation`` degrees (0/90/180/270), then
    flip it left to right where ``mirrored``."""
    if rotation % 360 == 0 and not mirrored:
        return frame
    turned = np.rot90(frame, k=-(rotation // 90))
    return np.ascontiguousarray(turned[:, ::-1] if mirrored else turned)


def even_frame(frame: np.ndarray) -> np.ndarray:
    """Pad an odd-sized (H, W, 3) frame by repeating its last row/column so both sides are even."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if not pad_h and not pad_w:
        return frame
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


class _NoTimestamp(Exception):
    """After a seek: a frame has no timestamp, so its time is only known by counting."""


class VideoReader(Closing):
    """Iterate the first video stream of ``path`` as upright RGB uint8 (H, W, 3) frames at a
    constant rate: the stream's average rate, or ``fps`` when given (frames are duplicated or
    dropped by timestamp). ``scale`` < 1 shrinks frames (even dimensions).

    Attributes: width, height (of the frames yielded), fps, frame_count (estimated), info.
    ``info``: the probe of ``path`` when the caller already has it (it is not probed again).
    A repeated frame is yielded as the same array object: copy it before changing it in place.
    Raises MediaError (no_video, unreadable_media, ...) for bad input.
    """

    def __init__(
        self,
        path: Path,
        *,
        fps: float | None = None,
        scale: float = 1.0,
        info: MediaInfo | None = None,
    ) -> None:
        self.path = Path(path)
        self.info: MediaInfo = info if info is not None else probe(self.path)
        video = self.info.video
        if video is None:
            log.info("media.no_video", file=self.path.name, streams=list(self.info.streams))
            holds = "only sound" if self.info.audio is not None else "no picture or sound"
            raise MediaError(
                f"{self.path.name} has no video picture (it holds {holds}); a template must be "
                "a video of the person.",
                code="no_video",
            )
        self.rotation, self.mirrored = video.rotation, video.mirrored
        self._source_fps = video.frame_rate
        self.fps = float(fps) if fps else self._source_fps
        self.width, self.height = scaled_size(video.width, video.height, scale)
        # The decoder works before rotation: swap the target size back for quarter turns.
        turned = self.rotation in (90, 270)
        self._decode_size = (self.height, self.width) if turned else (self.width, self.height)
        self._scaled = scale != 1.0
        seconds = video.duration or self.info.duration
        self.frame_count = max(1, frames_for(seconds, self.fps)) if seconds else 0
        self._hw_allowed = True  # until the hardware decoder fails on this file
        self._hw: Any = None  # the NVDEC decoder in use, else None (the stream's own decoder)
        self._sdr: hdr.SdrFrames | None = None  # HDR frames -> SDR ones, made at the first
        self._container: Any = self._open()

    def _open(self) -> Any:
        container = open_input(self.path)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # settable only before decoding starts
        self._hw = hardware.open_decoder(stream, self.path.name) if self._hw_allowed else None
        return container

    def close(self) -> None:
        self._hw = None
        self._container.close()

    @property
    def decoder(self) -> str:
        """The name of the decoder in use (e.g. hevc, or hevc_cuvid on the GPU)."""
        return str(self._hw.name if self._hw is not None
                   else self._container.streams.video[0].codec_context.name)

    def _decoded(self, stream: Any) -> Iterator[Any]:
        """The stream's frames from where the demuxer stands, by the NVDEC decoder when one is
        open (fed the same packets the stream's own decoder would get), else in software."""
        if self._hw is None:
            yield from self._container.decode(stream)
            return
        self._hw.flush_buffers()  # after a seek, nothing from before it
        for packet in self._container.demux(stream):
            yield from self._hw.decode(packet)

    def sdr(self, frame: Any) -> Any:
        """A decoded frame as it is shown in SDR: an HDR one (HLG or PQ) as its BT.709 yuv420p
        frame (hdr.SdrFrames), turned when a picture is made of it, so frames decoded and not
        used (dropped to the output rate, passed after a seek) are never turned; else itself."""
        if not hdr.is_hdr(frame.color_trc):
            return frame
        if self._sdr is None or self._sdr.transfer != frame.color_trc:
            self._sdr = hdr.SdrFrames(frame.color_trc)
            log.info("media.hdr_to_sdr", file=self.path.name,
                     transfer={hdr.HLG: "HLG", hdr.PQ: "PQ"}[frame.color_trc],
                     pix_fmt=frame.format.name)
        return self._sdr(frame)

    def _software_again(self, error: Exception) -> None:
        """The hardware decoder failed on this file: say so (once), decode in software from the
        start of the file."""
        assert self._hw is not None
        hardware.fell_back(self._hw.name, str(error), self.path.name)
        self._hw_allowed = False
        self._container.close()
        self._container = self._open()

    def to_rgb(self, frame: Any) -> np.ndarray:
        """A decoded av.VideoFrame -> upright RGB uint8 (height, width, 3) (an HDR one as shown
        in SDR: :meth:`sdr`)."""
        frame = self.sdr(frame)
        if self._scaled:
            width, height = self._decode_size
            array = frame.to_ndarray(
                format="rgb24", width=width, height=height, interpolation="AREA"
            )
        else:
            array = frame.to_ndarray(format="rgb24")
        return upright(array, self.rotation, self.mirrored)

    def _timed_frames(self, strict: bool = False) -> Iterator[tuple[float, float, Any]]:
        """(start s, duration s, av.VideoFrame) in presentation order; gaps in timestamps filled.
        strict (after a seek, where the previous frame's time is unknown): a frame without a
        timestamp raises _NoTimestamp instead."""
        import av

        stream = self._container.streams.video[0]
        step = 1.0 / self._source_fps
        last: float | None = None
        try:
            for frame in self._frames_or_software(stream, strict):
                t = frame.time
                if t is None and strict:
                    raise _NoTimestamp
                if t is None:
                    t = 0.0 if last is None else last + step
                last = t
                duration = float(frame.duration * frame.time_base) if frame.duration else step
                yield t, duration, frame
        except av.FFmpegError as err:
            log.info("media.unreadable", file=self.path.name, ffmpeg=str(err), hint=COPY_HINT)
            raise MediaError(
                f"The video in {self.path.name} stops decoding after {last or 0.0:.2f} s; the file "
                f"is damaged or cut short.{COPY_ADVICE}",
                code="unreadable_media",
            ) from None

    def _frames_or_software(self, stream: Any, strict: bool) -> Iterator[Any]:
        """:meth:`_decoded`, going on in software where the hardware decoder fails: from the
        start of the file past the frames already given (strict, after a seek: _NoTimestamp,
        which makes :meth:`_seeked` decode from the start)."""
        import av

        given, last = 0, None  # frames given, the time of the last one
        try:
            for frame in self._decoded(stream):
                given, last = given + 1, frame.time
                yield frame
            return
        except av.FFmpegError as err:
            if self._hw is None:
                raise
            self._software_again(err)
        if strict:
            raise _NoTimestamp
        stream = self._container.streams.video[0]
        for number, frame in enumerate(self._container.decode(stream)):
            timed = last is not None and frame.time is not None
            if (frame.time > last) if timed else number >= given:
                yield frame

    def iter_raw(self) -> Iterator[tuple[int, Any]]:
        """(CFR index, av.VideoFrame) without pixel conversion; a frame repeats over gaps."""
        return cfr_schedule(self._timed_frames(), self.fps)

    def iter_raw_from(self, start: int) -> Iterator[tuple[int, Any]]:
        """(CFR index, av.VideoFrame) for the indices from ``start`` on, numbered and timed
        exactly as :meth:`iter_raw` does, but decoding from the keyframe at or before
        ``start`` rather than from the beginning. Use it once per reader."""
        if start <= 0:
            return self.iter_raw()
        return self._seeked(start)

    def frames(self, start: int = 0, stop: int | None = None
               ) -> Generator[tuple[int, np.ndarray], None, None]:
        """(CFR index, upright RGB frame) for start <= index < stop (to the end when None),
        seeking to ``start``. A frame repeated over a gap is the same array object."""
        return self._turned(self.to_rgb, start, stop)

    def pictures(self, start: int = 0, stop: int | None = None, *, as_yuv: bool = True
                 ) -> Generator[tuple[int, Picture], None, None]:
        """:meth:`frames`, but (``as_yuv``) a frame the encoder can take as decoded
        (:meth:`picture`) comes as a :class:`~heygemd.media.yuv.YuvFrame`, not turned to
        RGB."""
        return self._turned(self.picture if as_yuv else self.to_rgb, start, stop)

    def _turned(self, turn: Callable[[Any], T], start: int, stop: int | None
                ) -> Generator[tuple[int, T], None, None]:
        """(CFR index, ``turn`` of the decoded frame) from ``start`` to ``stop``; a frame
        repeated over a gap is turned once and given as the same object."""
        last_raw: Any = None
        last: T | None = None
        for index, frame in self.iter_raw_from(start):
            if stop is not None and index >= stop:
                return
            if frame is not last_raw:
                last_raw, last = frame, turn(frame)
            assert last is not None
            yield index, last

    def picture(self, frame: Any) -> Picture:
        """A decoded av.VideoFrame -> a YuvFrame where it is 4:2:0 (yuv420p, or NVDEC's
        nv12) with even sides and needs no turning or scaling, else its upright RGB
        (:meth:`to_rgb`)."""
        frame = self.sdr(frame)
        if not self._scaled and self.rotation % 360 == 0 and not self.mirrored \
                and yuv.carried(frame):
            return yuv.decoded(frame)
        return self.to_rgb(frame)

    def __iter__(self) -> Iterator[np.ndarray]:
        for _, frame in self.frames():
            yield frame

    def _seeked(self, start: int) -> Iterator[tuple[int, Any]]:
        done = start - 1  # the last index yielded
        try:
            for index, frame in self._seek_and_schedule(start):
                done = index
                yield index, frame
            return
        except _NoTimestamp:
            pass
        # frames without timestamps are timed by counting from the start: decode from there
        self._container.close()
        self._container = self._open()
        for index, frame in self.iter_raw():
            if index > done:
                yield index, frame

    def _seek_and_schedule(self, start: int) -> Iterator[tuple[int, Any]]:
        """Seek to a keyframe whose slot is <= start (further back while the demuxer lands past
        it), then resample from there, timed from the first frame as in :meth:`iter_raw`."""
        stream = self._container.streams.video[0]
        first = next(self._timed_frames(strict=True), None)
        if first is None:
            return
        t0, time_base = first[0], stream.time_base
        back = 0.0
        while time_base is not None and start / self.fps - back > 0:
            target = t0 + start / self.fps - back
            self._container.seek(int(math.floor(target / time_base)), stream=stream,
                                 backward=True, any_frame=False)
            timed = self._timed_frames(strict=True)
            head = next(timed, None)
            if head is not None and frames_for(head[0] - t0, self.fps) <= start:
                yield from cfr_schedule(itertools.chain([head], timed), self.fps, t0=t0,
                                        start=start)
                return
            back = max(2 * back, 1.0)  # the demuxer landed past the frame: further back
        raise _NoTimestamp  # no usable seek point: decode from the start


def read_frames(
    path: Path,
    indices: Sequence[int],
    scale: float = 1.0,
    progress: Callable[[float], None] | None = None,
    info: MediaInfo | None = None,
) -> dict[int, np.ndarray]:
    """Upright RGB uint8 (H, W, 3) frames at the given CFR ``indices`` (the reader's numbering).

    Decodes from the keyframe before the smallest index (a seek) up to the largest and converts
    only the frames asked for. Indices past the end of the video are absent from the result.
    ``progress`` (if given) gets the fraction 0..1 of the decoding done after each decoded frame;
    what it raises propagates. ``info``: the probe of ``path``, when the caller has it.
    """
    wanted = sorted({int(i) for i in indices if i >= 0})
    found: dict[int, np.ndarray] = {}
    if not wanted:
        return found
    targets = set(wanted)
    with VideoReader(path, scale=scale, info=info) as reader:
        for index, frame in reader.iter_raw_from(wanted[0]):
            if index in targets:
                found[index] = reader.to_rgb(frame)
            if progress is not None:
                progress(min(index / wanted[-1], 1.0) if wanted[-1] else 1.0)
            if index >= wanted[-1]:
                break
    return found


def keyframe_indices(path: Path, fps: float) -> list[int]:
    """The frame indices (a reader's numbering at ``fps``) of the keyframes of ``path``'s video,
    from the demuxer alone (nothing is decoded): where a decode seeking there starts without
    decoding frames before it. [] when the packets carry no times."""
    import av

    times: list[tuple[float, bool]] = []
    try:
        with open_input(path) as container:
            stream = container.streams.video[0]
            base = stream.time_base
            for packet in container.demux(stream):
                if packet.pts is not None and base is not None:
                    times.append((float(packet.pts * base), bool(packet.is_keyframe)))
    except (av.FFmpegError, MediaError, IndexError):
        return []
    if not times:
        return []
    t0 = min(t for t, _ in times)  # the first frame shown, where the numbering starts
    return sorted({frames_for(t - t0, fps) for t, key in times if key})


# Frames held while a range is walked backwards: 8-bit 4:2:0 frames as the decoder gave them
# (half the bytes of RGB; an HDR frame as the SDR 4:2:0 frame it is shown as), turned to RGB as
# each is given; other formats as RGB at once, so that every frame equals the one a forward
# walk gives.
HELD_FORMATS = ("yuv420p", "yuvj420p", "nv12")
HELD_BYTES_PER_PIXEL = 1.5


def held_bytes_per_pixel(video: VideoStreamInfo | None) -> float:
    """Bytes per pixel :func:`read_range_backwards` holds for ``video``: 4:2:0 frames as
    decoded (an HDR stream's as shown in SDR, :meth:`VideoReader.sdr`), others as RGB."""
    if video is not None and (video.pix_fmt in HELD_FORMATS or hdr.is_hdr(video.colour[3])):
        return HELD_BYTES_PER_PIXEL
    return 3.0


def read_range_backwards(
    path: Path, start: int, stop: int, *, info: MediaInfo | None = None, as_yuv: bool = False
) -> Iterator[tuple[int, Picture]]:
    """(CFR index, upright RGB uint8 frame) for stop - 1 down to start, the frames
    :func:`read_range` gives, numbered alike (fewer past the end). The range is decoded forwards
    from the keyframe before ``start`` and held (:func:`held_bytes_per_pixel` per pixel: the
    caller sizes ranges by it) until each frame is given. ``as_yuv``: frames that can travel
    decoded come as YuvFrames (VideoReader.picture)."""
    with VideoReader(path, info=info) as reader:
        held: list[tuple[int, Any]] = []
        last_raw: Any = None
        for index, frame in reader.iter_raw_from(start):
            if index >= stop:
                break
            if frame is last_raw:  # repeated over a gap: the same picture again
                held.append((index, held[-1][1]))
            else:
                shown = reader.sdr(frame)  # an HDR frame turned once, held as its SDR one
                held.append((index, shown if shown.format.name in HELD_FORMATS
                             else reader.to_rgb(shown)))
            last_raw = frame
        last_held: Any = None
        last_rgb: Picture | None = None
        while held:
            index, item = held.pop()  # given back to the pool as it is turned to RGB
            if item is not last_held:
                last_held = item
                last_rgb = item if isinstance(item, np.ndarray) \
                    else reader.picture(item) if as_yuv else reader.to_rgb(item)
            assert last_rgb is not None
            yield index, last_rgb


@overload
def read_range(path: Path, start: int, stop: int, *, scale: float = ..., fps: float | None = ...,
               info: MediaInfo | None = ..., as_yuv: Literal[False] = ...
               ) -> Iterator[tuple[int, np.ndarray]]: ...
@overload
def read_range(path: Path, start: int, stop: int, *, scale: float = ..., fps: float | None = ...,
               info: MediaInfo | None = ..., as_yuv: bool
               ) -> Iterator[tuple[int, Picture]]: ...
def read_range(
    path: Path,
    start: int,
    stop: int,
    *,
    scale: float = 1.0,
    fps: float | None = None,
    info: MediaInfo | None = None,
    as_yuv: bool = False,
) -> Iterator[tuple[int, Picture]]:
    """(CFR index, upright RGB uint8 (H, W, 3) frame) for start <= index < stop, numbered as
    iterating :class:`VideoReader` (same ``scale``, ``fps``) numbers them, but seeking to the
    keyframe before ``start`` instead of decoding from the beginning. Fewer past the end.
    ``info``: the probe of ``path``, when the caller has it. ``as_yuv``: frames that can travel
    decoded come as YuvFrames (VideoReader.picture)."""
    with VideoReader(path, fps=fps, scale=scale, info=info) as reader:
        yield from reader.pictures(start, stop, as_yuv=as_yuv)
