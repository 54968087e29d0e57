"""Load the audio of any supported file as float32 samples at a chosen rate.

Two things do I/O: :func:`load_audio` (the whole track at once) and :class:`TrackStream` (the
same samples, decoded as they are read: an output's sound track, never held whole);
:class:`ArrayTrack` reads an array the same way. :func:`to_mono` and :func:`clip_unit` are pure.
Resampling uses FFmpeg's libswresample through PyAV's AudioResampler, keeping every channel so
that the down-mix to mono is a plain mean (libswresample's own mono down-mix can exceed 1.0).
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import structlog

from heygemd.contract import AUDIO_RATE
from heygemd.errors import COPY_ADVICE, MediaError
from heygemd.media.probe import open_input
from heygemd.timing import ms_since

log = structlog.get_logger(__name__)

MAX_CHANNELS = 8  # layouts beyond 7.1 are not expected in speech or template videos
PADDING_SECONDS = 0.1  # most decoded audio past the declared end that counts as codec padding


def to_mono(samples: np.ndarray) -> np.ndarray:
    """float32 (C, N) -> (N,) by averaging channels; (N,) is returned unchanged."""
    if samples.ndim == 1:
        return samples
    return samples.mean(axis=0, dtype=np.float32)


def clip_unit(samples: np.ndarray) -> np.ndarray:
    """Clip to [-1, 1] (resampling filters ring slightly above full scale) as float32."""
    return np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)


def trim_padding(samples: np.ndarray, seconds: float | None, rate: int) -> np.ndarray:
    """Cut encoder padding: (C, N) samples decoded past the stream's declared ``seconds``.

    Lossy codecs (AAC, Opus) decode a few ms of padding after the end; the container's
    duration is trusted only when the excess is that small (under PADDING_SECONDS).
    """
    if seconds is None:
        return samples
    keep = int(round(seconds * rate))
    excess = samples.shape[-1] - keep
    if 0 < excess <= PADDING_SECONDS * rate:
        return samples[..., :keep]
    return samples


def shift_start(samples: np.ndarray, seconds: float, rate: int) -> np.ndarray:
    """(C, N) samples starting ``seconds`` later (> 0: the first samples dropped) or earlier
    (< 0: silence put before them)."""
    shift = int(round(seconds * rate))
    if shift > 0:
        return samples[..., shift:]
    if shift < 0:
        pad = np.zeros((*samples.shape[:-1], -shift), dtype=samples.dtype)
        return np.concatenate([pad, samples], axis=-1)
    return samples


def _first_video_time(path: Path) -> float | None:
    """The presentation time of the first video frame (what VideoReader counts frames from)."""
    container = open_input(path)
    try:
        if not container.streams.video:
            return None
        frame = next(container.decode(container.streams.video[0]), None)
        return None if frame is None else frame.time
    finally:
        container.close()


def _stream_seconds(stream: Any) -> float | None:
    if not stream.duration or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def _layout_name(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")


def _samples(frame: Any, channels: int) -> np.ndarray:
    """A resampled packed float frame -> float32 (channels, n). The resampler gives packed
    samples ("flt", one plane): the same numbers as planar "fltp", whose frames of 8 channels
    PyAV cannot turn into an array (it sees 9 planes and the process crashes)."""
    return np.ascontiguousarray(frame.to_ndarray().reshape(-1, channels).T, dtype=np.float32)


def _decode_resampled(
    container: Any, stream: Any, rate: int, channels: int, max_samples: int | None = None
) -> tuple[np.ndarray, float | None]:
    """Decode ``stream`` and resample to float at ``rate`` -> float32 (C, N), stopping once
    ``max_samples`` (per channel) are decoded, if given: N <= max_samples; and the first
    decoded frame's presentation time (None when unknown)."""
    import av

    resampler = av.AudioResampler(format="flt", layout=_layout_name(channels), rate=rate)
    chunks: list[np.ndarray] = []
    total = 0
    first: float | None = None
    for frame in container.decode(stream):
        if not chunks and first is None:
            first = frame.time
        frame.pts = None  # timestamps gaps must not make the resampler insert or drop samples
        for out in resampler.resample(frame):
            chunks.append(_samples(out, channels))
            total += chunks[-1].shape[-1]
        if max_samples is not None and total >= max_samples:
            break
    else:
        chunks.extend(_samples(out, channels) for out in resampler.resample(None))
    if not chunks:
        return np.zeros((channels, 0), dtype=np.float32), first
    samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    return (samples if max_samples is None else samples[:, :max_samples]), first


def load_audio(
    path: Path, rate: int = AUDIO_RATE, mono: bool = True, max_seconds: float | None = None,
    from_first_frame: bool = False,
) -> np.ndarray:
    """The first audio stream of ``path`` (an audio file or a video's sound track).

    Returns float32 in [-1, 1]: (N,) when ``mono``, else (C, N), at ``rate`` Hz. With
    ``max_seconds``, decoding stops there (N <= max_seconds * rate): a file whose header
    understates its length cannot make the decode use unbounded memory. ``from_first_frame``: a
    video's sound timed from its first video frame, as VideoReader counts frames (a sound track
    that starts later gets silence before it; one that starts earlier loses what comes before
    the picture), so that sample t / rate is heard with frame t * fps / rate.
    Raises MediaError: no_audio when there is no audio stream, unreadable_media when FFmpeg
    cannot open or decode it (the message carries FFmpeg's words).
    """
    import av

    path = Path(path)
    t0 = time.monotonic()
    container = open_input(path)
    try:
        if not container.streams.audio:
            raise MediaError(
                f"{path.name} has no sound track; add audio or choose another file.",
                code="no_audio",
            )
        stream = container.streams.audio[0]
        channels = min(max(int(stream.codec_context.channels or 1), 1), MAX_CHANNELS)
        cap = None if max_seconds is None else int(max_seconds * rate)
        samples, first = _decode_resampled(container, stream, rate, channels, cap)
        samples = trim_padding(samples, _stream_seconds(stream), rate)
        if from_first_frame and first is not None:
            video_start = _first_video_time(path)
            if video_start is not None:
                samples = shift_start(samples, video_start - first, rate)
    except av.FFmpegError as err:
        log.info("media.unreadable", file=path.name, ffmpeg=str(err))
        raise MediaError(
            f"The audio in {path.name} cannot be decoded; the file may be damaged or cut "
            f"short.{COPY_ADVICE}",
            code="unreadable_media",
        ) from None
    finally:
        container.close()
    out = clip_unit(to_mono(samples) if mono else samples)
    log.debug(
        "audio.loaded",
        file=path.name,
        rate=rate,
        shape=out.shape,
        duration_ms=ms_since(t0),
    )
    return out


class Track(Protocol):
    """A sound track read from its start a block at a time: float32 (channels, n) within
    [-1, 1] at the rate it was made for."""

    channels: int

    def read(self, count: int) -> np.ndarray:
        """The next ``count`` samples per channel, fewer (none) at the track's end."""
        ...

    def length(self) -> int:
        """Samples per channel in the whole track (a stream decodes what is left to know)."""
        ...


class ArrayTrack:
    """A track held whole: float32 (N,) or (C, N), read through views of it (never copied
    whole)."""

    def __init__(self, samples: np.ndarray) -> None:
        planar = samples[np.newaxis, :] if samples.ndim == 1 else samples
        if planar.ndim != 2:
            raise ValueError(f"audio must be (N,) or (C, N), got shape {samples.shape}")
        self._samples = planar
        self.channels = planar.shape[0]
        self._given = 0

    def read(self, count: int) -> np.ndarray:
        block = self._samples[:, self._given : self._given + max(0, count)]
        self._given += block.shape[1]
        return block

    def length(self) -> int:
        return int(self._samples.shape[1])


class TrackStream:
    """The first audio stream of ``path`` at ``rate`` Hz, every channel kept (at most
    MAX_CHANNELS), decoded as it is read: the samples ``load_audio(path, rate, mono=False)``
    returns, the codec's padding past the declared end cut alike (:func:`trim_padding`), but
    held a few packets at a time (an output's track: 11.5 MB a minute per channel as float32,
    whole).

    Raises MediaError as load_audio does: missing_file, empty_file, no_audio, unreadable_media
    (at opening, or at the read or length() where the decoder fails). Close it (or use
    ``with``); read and length then raise ValueError.
    """

    def __init__(self, path: Path, rate: int) -> None:
        import av

        self.path = Path(path)
        self.rate = int(rate)
        self._container = open_input(self.path)
        try:
            if not self._container.streams.audio:
                raise MediaError(
                    f"{self.path.name} has no sound track; add audio or choose another file.",
                    code="no_audio",
                )
            stream = self._container.streams.audio[0]
            self.channels = min(max(int(stream.codec_context.channels or 1), 1), MAX_CHANNELS)
            seconds = _stream_seconds(stream)
            self._declared = None if seconds is None else int(round(seconds * self.rate))
            self._resampler = av.AudioResampler(
                format="flt", layout=_layout_name(self.channels), rate=self.rate)
            self._frames = self._container.decode(stream)
        except BaseException:
            self._container.close()
            raise
        self._blocks: deque[np.ndarray] = deque()
        self._decoded = 0  # samples per channel out of the resampler so far
        self._given = 0  # samples per channel read so far
        self._ended = False
        self._closed = False

    def __enter__(self) -> TrackStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._frames.close()  # the decoder's generator first: nothing reads the container after
        self._container.close()
        self._blocks.clear()

    def _open(self) -> None:
        if self._closed:
            raise ValueError(f"the sound track of {self.path.name} is closed")

    def _known(self) -> int:
        """Samples per channel that are certainly in the track so far: past the declared end,
        only once the excess is more than codec padding (or the stream ended with more)."""
        if self._declared is None or self._decoded - self._declared > PADDING_SECONDS * self.rate:
            return self._decoded
        if self._ended:
            return self._declared if self._decoded > self._declared else self._decoded
        return min(self._decoded, self._declared)

    def _pull(self) -> None:
        """Decode the next frame into blocks (the resampler flushed at the stream's end)."""
        import av

        try:
            frame = next(self._frames, None)
            if frame is None:
                out = self._resampler.resample(None)
                self._ended = True
            else:
                frame.pts = None  # as load_audio: gaps must not add or drop samples
                out = self._resampler.resample(frame)
        except av.FFmpegError as err:
            log.info("media.unreadable", file=self.path.name, ffmpeg=str(err))
            raise MediaError(
                f"The audio in {self.path.name} cannot be decoded; the file may be damaged or "
                f"cut short.{COPY_ADVICE}",
                code="unreadable_media",
            ) from err  # an errno (a share gone) stays visible to faults.is_machine_fault
        for block in out:
            array = _samples(block, self.channels)
            self._blocks.append(array)
            self._decoded += array.shape[1]

    def read(self, count: int) -> np.ndarray:
        self._open()
        while self._known() - self._given < count and not self._ended:
            self._pull()
        take = max(0, min(count, self._known() - self._given))
        parts: list[np.ndarray] = []
        needed = take
        while needed > 0:
            block = self._blocks[0]
            if block.shape[1] <= needed:
                parts.append(self._blocks.popleft())
                needed -= block.shape[1]
            else:
                parts.append(block[:, :needed])
                self._blocks[0] = block[:, needed:]
                needed = 0
        self._given += take
        if not parts:
            return np.zeros((self.channels, 0), np.float32)
        return clip_unit(parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1))

    def length(self) -> int:
        self._open()
        while not self._ended:
            self._pull()
        return self._known()
