"""Encode RGB uint8 (H, W, 3) frames and a sound track to an H.264 + AAC MP4 with PyAV.

:class:`VideoWriter` streams frames in one at a time; the output's length follows the audio
(:func:`output_frame_count`: the last frame is held, or the audio padded, so both end together).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import structlog

from heygemd.closing import Closing
from heygemd.errors import ProcessingError
from heygemd.media import hdr
from heygemd.media.audio import ArrayTrack, Track
from heygemd.media.encoder import EncoderChoice, encoder_for
from heygemd.media.video import even_frame, frames_for
from heygemd.media.yuv import Colour, Picture, YuvFrame, colour_of, rgb_frame
from heygemd.settings import OutputSettings

log = structlog.get_logger(__name__)


def _rate(fps: float) -> Fraction:
    """A frame rate as a small fraction: 25.0 -> 25, 29.97 -> 30000/1001."""
    return Fraction(fps).limit_denominator(1001)


def _encodable(chunk: np.ndarray) -> np.ndarray:
    """A block of the track (C, n) -> float32 (1 or 2, n) within [-1, 1], contiguous: more than
    two channels are averaged. Done per block, so the track itself is never copied whole."""
    if chunk.shape[0] > 2:
        chunk = chunk.mean(axis=0, keepdims=True)
    return np.ascontiguousarray(np.clip(chunk, -1.0, 1.0), dtype=np.float32)


UNTAGGED: Colour = (2, 0, 2, 2)  # unspecified: swscale's BT.601, as untagged frames are read
# matrices and ranges that swscale's default (BT.601, limited) turns RGB to: where the output
# is untagged, decoded frames in these go to the encoder as they are
DEFAULT_MATRICES = {2, 5, 6}  # unspecified, BT470BG, SMPTE170M
DEFAULT_RANGES = {0, 1}  # unspecified, MPEG (limited)


def rgb_colours(template: Colour | None) -> Colour:
    """The colours an output begun with an RGB frame is made in and tagged with, for a template
    of ``template``'s colours (pure): an HDR one's SDR BT.709 (the frames it shows, media.hdr),
    a tagged one's own (a rotated BT.709 phone video stays BT.709: players read untagged HD
    video as BT.709, not as swscale's BT.601), else UNTAGGED (read and written alike)."""
    if template is None or template[0] == UNTAGGED[0]:
        return UNTAGGED
    if hdr.is_hdr(template[3]):
        return hdr.BT709_LIMITED
    return template


def same_colours(frame: Colour, output: Colour) -> bool:
    """Whether a frame's YUV values mean the same colours in the output: the same matrix and
    range, or in an untagged output, swscale's default ones."""
    if output == UNTAGGED:
        return frame[0] in DEFAULT_MATRICES and frame[1] in DEFAULT_RANGES
    return frame[:2] == output[:2]


def output_frame_count(frames_written: int, audio_seconds: float, fps: float) -> int:
    """Frames the output holds: what was written, or more (the last frame held) to cover audio."""
    return max(frames_written, frames_for(audio_seconds, fps))


class VideoWriter(Closing):
    """Encode RGB uint8 (height, width, 3) frames + a sound track to an H.264/AAC MP4.

    H.264 (yuv420p; libx264 or NVENC as ``settings.encoder`` asks, :mod:`heygemd.media.encoder`:
    ``encoder`` says which and why; ``settings.crf`` / ``settings.preset``), AAC at
    ``settings.audio_bitrate_kbps`` and ``settings.audio_rate`` Hz, faststart. Odd sizes are
    padded to even. audio: float32 (N,) or (C, N) at ``audio_rate`` Hz, a Track read as the
    frames come (media.audio.TrackStream: the file decoded as it is encoded, never held whole;
    its caller closes it), or None for no sound; mixed and clipped a block at a time.
    ``colour``: the template's colours (VideoStreamInfo.colour), which an output begun with an
    RGB frame is made in (:func:`rgb_colours`).
    The output's length follows the audio: on close the last frame is held until the audio
    ends, and the audio is padded with silence (or trimmed by under half a frame) to end with
    the video. An exception inside ``with`` closes the file and propagates (the caller deletes
    the partial file). Encoder failures raise ProcessingError(code="encode_failed").
    """

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: float,
        *,
        audio: np.ndarray | Track | None,
        audio_rate: int,
        settings: OutputSettings,
        colour: Colour | None = None,
    ) -> None:
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.fps = float(fps)
        self.settings = settings
        self.frames_written = 0
        self._audio: Track | None = ArrayTrack(audio) if isinstance(audio, np.ndarray) \
            else audio
        self._audio_rate = int(audio_rate)
        self._audio_fed = 0  # input samples handed to the resampler so far
        self._last: Any = None  # the last frame written (held to the audio's end), either kind
        self._colour: Colour | None = None  # the output's colours, set by the first frame
        self._rgb_colour = rgb_colours(colour)  # theirs where the first frame is RGB
        self._reformatter: Any = None  # RGB -> yuv420p, one swscale context for every frame
        self._closed = False
        self.encoder: EncoderChoice
        with _encoding(self.path):
            self._open()

    def _open(self) -> None:
        import av

        self._container: Any = av.open(
            str(self.path), mode="w", format="mp4", options={"movflags": "+faststart"}
        )
        rate = _rate(self.fps)
        width, height = self.width + self.width % 2, self.height + self.height % 2
        cfg = self.settings
        self.encoder = encoder_for(cfg.encoder, cfg.crf, cfg.preset, width, height, rate)
        video: Any = self._container.add_stream(self.encoder.codec, rate=rate)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        video.options = dict(self.encoder.options)
        self._video = video
        self._reformatter = av.video.reformatter.VideoReformatter()
        self._audio_stream: Any = None
        if self._audio is not None:
            layout = "stereo" if self._audio.channels == 2 else "mono"
            stream = self._container.add_stream("aac", rate=self.settings.audio_rate)
            stream.layout = layout
            stream.bit_rate = self.settings.audio_bitrate_kbps * 1000
            self._audio_stream = stream
            self._resampler = av.AudioResampler(
                format="fltp", layout=layout, rate=self.settings.audio_rate, frame_size=1024
            )
            self._audio_pts = 0

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frame: Picture) -> None:
        """Append one frame: RGB uint8 (height, width, 3) (any strides), or a
        :class:`~heygemd.media.yuv.YuvFrame` of that size (encoded as decoded)."""
        if isinstance(frame, YuvFrame):
            if frame.shape != (self.height, self.width, 3):
                raise ProcessingError(
                    f"frame {self.frames_written} is {frame.shape}, expected "
                    f"{(self.height, self.width, 3)}", code="encode_failed")
            self._decoded(frame.frame, frame.colour, frame)
            return
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ProcessingError(
                f"frame {self.frames_written} is {frame.dtype} {frame.shape}, expected uint8 "
                f"{(self.height, self.width, 3)}",
                code="encode_failed",
            )
        self._last = frame
        if self._colour is None:
            self._colour = self._rgb_colour
            self._tag(self._colour)
        with _encoding(self.path):
            self._encode(self._from_rgb(even_frame(frame)))

    def write_decoded(self, frame: Any) -> None:
        """Append a decoded av.VideoFrame as it is: yuv420p at the output's size in the output's
        colours goes to the encoder with no round trip through RGB (th10 to libx264 at crf 18,
        medium: 8% less CPU and a 3% smaller file than its RGB frames); any other frame is
        turned to RGB with its own colours first. The first frame written sets the output's
        colours (:func:`colour_of`; a first RGB frame: :func:`rgb_colours`). Its own picture
        type is not passed on: the encoder places its keyframes."""
        self._decoded(frame, colour_of(frame))

    def _decoded(self, frame: Any, colour: Colour, held: YuvFrame | None = None) -> None:
        """:meth:`write_decoded` of ``frame`` in ``colour``; ``held``: the YuvFrame it came
        in (threads may share it: turned to RGB through its private copy)."""
        from av.video.frame import PictureType

        if self._colour is None:
            self._colour = colour
            self._tag(colour)
        self._last = held if held is not None else frame
        width, height = self._video.width, self._video.height
        if frame.format.name != "yuv420p" or (frame.width, frame.height) != (width, height) \
                or not same_colours(colour, self._colour):
            rgb = held.rgb() if held is not None else np.asarray(frame.to_ndarray(
                format="rgb24", width=self.width, height=self.height))
            frame = self._from_rgb(even_frame(rgb))
        else:
            frame.pict_type = PictureType.NONE
        frame.time_base = 1 / _rate(self.fps)  # its pts count output frames, as the others
        with _encoding(self.path):
            self._encode(frame)

    def _from_rgb(self, frame: np.ndarray) -> Any:
        """RGB uint8 (H, W, 3), even sides -> a yuv420p av.VideoFrame in the output's colours."""
        out = rgb_frame(frame)
        colour = self._colour
        assert colour is not None  # set by the first frame, before it is turned
        if colour == UNTAGGED:  # swscale's default: BT.601, limited range
            return self._reformatter.reformat(out, format="yuv420p")
        return self._reformatter.reformat(out, format="yuv420p", dst_colorspace=colour[0],
                                          dst_color_range=colour[1])

    def _tag(self, colour: Colour) -> None:
        """Mark the stream's colours (its VUI), before the encoder opens."""
        if colour == UNTAGGED:
            return
        context = self._video.codec_context
        context.colorspace, context.color_range, context.color_primaries, context.color_trc = \
            colour

    def _encode(self, video_frame: Any) -> None:
        video_frame.pts = self.frames_written
        self._mux(self._video.encode(video_frame))
        self.frames_written += 1
        self._feed_audio(self._input_samples(self.frames_written / self.fps))

    def _input_samples(self, seconds: float) -> int:
        return int(round(seconds * self._audio_rate))

    def _feed_audio(self, until: int) -> None:
        """Encode input audio up to sample ``until``, padding with silence past its end."""
        if self._audio is None or until <= self._audio_fed:
            return
        import av

        chunk = _encodable(self._audio.read(until - self._audio_fed))
        missing = until - self._audio_fed - chunk.shape[1]
        if missing > 0:
            chunk = np.pad(chunk, ((0, 0), (0, missing)))
        layout = "mono" if chunk.shape[0] == 1 else "stereo"
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate = self._audio_rate
        self._audio_fed = until
        self._encode_audio(self._resampler.resample(frame))

    def _encode_audio(self, frames: list[Any]) -> None:
        for out in frames:
            out.pts = self._audio_pts
            self._audio_pts += out.samples
            self._mux(self._audio_stream.encode(out))

    def _mux(self, packets: list[Any]) -> None:
        for packet in packets:
            self._container.mux(packet)

    def close(self) -> None:
        """Hold the last frame until the audio ends, pad the audio, flush and close the file."""
        if self._closed:
            return
        with _encoding(self.path):
            try:
                self._finish()
            finally:
                self._closed = True
                self._container.close()
        log.debug("video.written", file=self.path.name, frames=self.frames_written)

    def _finish(self) -> None:
        # a stream decodes what is left of its track to know its length, and holds it until
        # it is fed: what the frames written fall short of the sound (the pipeline's frames
        # cover all of it but a frame; an engine that stopped early leaves the rest held)
        audio_seconds = 0.0 if self._audio is None else self._audio.length() / self._audio_rate
        total = output_frame_count(self.frames_written, audio_seconds, self.fps)
        if self._last is None and total > 0:
            raise ProcessingError("The engine made no frames for this video.",
                                  code="encode_failed")
        while self.frames_written < total:
            if isinstance(self._last, np.ndarray | YuvFrame):
                self.write(self._last)
            else:
                self.write_decoded(self._last)
        if self._audio is not None:
            self._feed_audio(self._input_samples(total / self.fps))
            self._encode_audio(self._resampler.resample(None))
            self._mux(self._audio_stream.encode(None))
        self._mux(self._video.encode(None))

    def abort(self) -> None:
        """Close the container without finishing the file (after an error)."""
        import av

        if self._closed:
            return
        self._closed = True
        try:
            self._container.close()
        except av.FFmpegError as err:
            log.warning("video.abort_close_failed", file=self.path.name, error=str(err))


@contextmanager
def _encoding(path: Path) -> Iterator[None]:
    """Turn FFmpeg errors raised inside into ProcessingError(code="encode_failed")."""
    import av

    try:
        yield
    except av.FFmpegError as err:
        log.error("video.encode_failed", file=path.name, error=str(err))
        raise ProcessingError(
            "The result could not be encoded (the video encoder reported: "
            f"{err.strerror or type(err).__name__}).", code="encode_failed",
        ) from err
