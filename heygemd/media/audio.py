"""Load the audio of any supported file as float32 samples at a chosen rate.

:class:`TrackStream` does the I/O: a track decoded as it is read (an output's sound track,
never held whole; samples that are not numbers made silent); :func:`read_sound` (and
:func:`load_audio`, its samples) reads one whole through it. :class:`ArrayTrack` reads an array
as a stream is read. :func:`to_mono`, :func:`clip_unit`, :func:`trimmed_length` and
:func:`shift_start` are pure.
Resampling uses FFmpeg's libswresample through PyAV's AudioResampler, in the track's own
channel layout; mono and stereo are kept, so the down-mix to mono is a plain mean
(libswresample's own mono down-mix can exceed 1.0). A track of more channels is mixed down to
stereo with libswresample's own weights (:func:`stereo_matrix`: the centre and the surrounds at
-3 dB, the LFE left out), turned down only as far as keeps the mix from clipping, so a 5.1
mix's dialogue, in its centre channel, is heard at -3 dB.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import structlog

from heygemd.contract import AUDIO_RATE
from heygemd.errors import COPY_ADVICE, MediaError
from heygemd.media.probe import open_input
from heygemd.media.types import MAX_CHANNELS
from heygemd.timing import ms_since

log = structlog.get_logger(__name__)

PADDING_SECONDS = 0.1  # most decoded audio past the declared end that counts as codec padding

HALF_POWER = 0.7071  # -3 dB: the centre and the surrounds in a stereo down-mix (ITU-R BS.775)
GAINS_KEPT = 16  # down-mix gains remembered, by file (a job's audio: its check, then each video)


def stereo_matrix(names: Sequence[str]) -> np.ndarray:
    """(2, C) float32 gains taking channels named ``names`` (FFmpeg's: FL, FC, LFE, SL ...) to
    left and right, as libswresample's own stereo down-mix weighs them: the front pair and the
    pair beside the centre as they are, the centre at -3 dB on both sides, every other channel
    on its side at -3 dB (one in the middle, e.g. BC: on both at -6 dB), low-frequency effects
    left out. Pure."""
    matrix = np.zeros((2, len(names)), np.float32)
    for i, name in enumerate(names):
        if name in ("FL", "FLC"):
            matrix[0, i] = 1.0
        elif name in ("FR", "FRC"):
            matrix[1, i] = 1.0
        elif name == "FC":
            matrix[:, i] = HALF_POWER
        elif name.startswith("LFE"):
            continue
        elif name.endswith("L"):
            matrix[0, i] = HALF_POWER
        elif name.endswith("R"):
            matrix[1, i] = HALF_POWER
        else:  # a centre behind or above, or a channel FFmpeg cannot name
            matrix[:, i] = HALF_POWER * HALF_POWER
    return matrix


def to_mono(samples: np.ndarray) -> np.ndarray:
    """float32 (C, N) -> (N,) by averaging channels; (N,) is returned unchanged."""
    if samples.ndim == 1:
        return samples
    return samples.mean(axis=0, dtype=np.float32)


def clip_unit(samples: np.ndarray) -> np.ndarray:
    """Clip to [-1, 1] (resampling filters ring slightly above full scale) as float32."""
    return np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)


def trimmed_length(decoded: int, declared: int | None, rate: int) -> int:
    """Samples of a track's ``decoded`` ones that are kept, the stream declaring ``declared``
    (None: nothing declared): lossy codecs (AAC, Opus) decode a few ms of padding after the
    end, so the container's length is trusted only when the excess is that small (at most
    PADDING_SECONDS at ``rate``)."""
    if declared is not None and 0 < decoded - declared <= PADDING_SECONDS * rate:
        return declared
    return decoded


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


@dataclass(frozen=True)
class Sound:
    """A whole track as :func:`read_sound` gives it: ``samples`` float32 (N,) or (C, N) in
    [-1, 1]; ``silenced``: how many of them (per channel) were not numbers in every channel
    (NaN or infinite, a damaged float export) and were made silent."""

    samples: np.ndarray
    silenced: int = 0
    silenced_from: float | None = None  # seconds: where the first of them is


def load_audio(
    path: Path, rate: int = AUDIO_RATE, mono: bool = True, max_seconds: float | None = None,
    from_first_frame: bool = False,
) -> np.ndarray:
    """:func:`read_sound`'s samples."""
    return read_sound(path, rate, mono, max_seconds, from_first_frame).samples


def read_sound(
    path: Path, rate: int = AUDIO_RATE, mono: bool = True, max_seconds: float | None = None,
    from_first_frame: bool = False,
) -> Sound:
    """The first audio stream of ``path`` (an audio file or a video's sound track).

    Returns float32 in [-1, 1]: (N,) when ``mono``, else (C, N), at ``rate`` Hz. With
    ``max_seconds``, decoding stops there (N <= max_seconds * rate): a file whose header
    understates its length cannot make the decode use unbounded memory. ``from_first_frame``: a
    video's sound timed from its first video frame, as VideoReader counts frames (a sound track
    that starts later gets silence before it; one that starts earlier loses what comes before
    the picture), so that sample t / rate is heard with frame t * fps / rate.
    Raises MediaError: no_audio when there is no audio stream, unreadable_media when FFmpeg
    cannot open or decode it (FFmpeg's words go to the log). Decoded through a
    :class:`TrackStream` (samples that are not numbers made silent), the mean of the channels
    taken before the clipping.
    """
    path = Path(path)
    t0 = time.monotonic()
    with TrackStream(path, rate, limit_seconds=max_seconds) as stream:
        if max_seconds is not None:  # decoding stops once these are had
            samples = stream.take(int(max_seconds * rate))
        else:
            samples = stream.take(stream.length())
        first, silenced, silenced_from = stream.first_time, stream.silenced, stream.silenced_from
    if from_first_frame and first is not None:
        video_start = _first_video_time(path)
        if video_start is not None:
            samples = shift_start(samples, video_start - first, rate)
    out = clip_unit(to_mono(samples) if mono else samples)
    log.debug(
        "audio.loaded",
        file=path.name,
        rate=rate,
        shape=out.shape,
        duration_ms=ms_since(t0),
    )
    return Sound(out, min(silenced, out.shape[-1]), silenced_from)


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


class _Gains:
    """Down-mix gains found, by file and rate: a job's audio is streamed again for each video
    after its check, and its peak is read once at the output's rate. ``seconds``: how far the
    peak was read (None: to the track's end)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: OrderedDict[tuple[Any, ...], tuple[float, float | None]] = OrderedDict()

    @staticmethod
    def _key(path: Path, rate: int) -> tuple[Any, ...] | None:
        """The file as it is now (a copy that keeps the time is another inode or change time)
        at ``rate`` (the resampler's filters reach their own peaks)."""
        try:
            stat = path.stat()
        except OSError:
            return None
        return (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns,
                stat.st_ctime_ns, rate)

    def recall(self, path: Path, rate: int, seconds: float | None) -> float | None:
        """The gain found for ``path`` at ``rate`` over at least ``seconds`` (None: the whole
        track)."""
        key = self._key(path, rate)
        with self._lock:
            found = self._found.get(key) if key is not None else None
        if found is None:
            return None
        gain, over = found
        return gain if over is None or (seconds is not None and over >= seconds) else None

    def keep(self, path: Path, rate: int, gain: float, seconds: float | None) -> None:
        key = self._key(path, rate)
        if key is None:
            return
        with self._lock:
            self._found[key] = (gain, seconds)
            self._found.move_to_end(key)
            while len(self._found) > GAINS_KEPT:
                self._found.popitem(last=False)


_gains = _Gains()


class TrackStream:
    """The first audio stream of ``path`` at ``rate`` Hz, decoded as it is read, the codec's
    padding past the declared end cut (:func:`trimmed_length`): held a few packets at a time (an
    output's track: 11.5 MB a minute per channel as float32, whole); :func:`load_audio` reads
    its tracks whole through one. Mono and stereo stay as they are; more channels come mixed
    down to stereo (:func:`stereo_matrix` of the file's layout, or FFmpeg's usual one for the
    count where the file names none; more than 8 asked of FFmpeg as 7.1 first: what it cannot
    mix so is unreadable_media), times ``gain``: None, the largest up to 1 that keeps the mix
    within [-1, 1], from the mix's peak over the track (up to ``limit_seconds``) read once
    more first, or remembered from an earlier stream of the same file.

    Raises MediaError: missing_file, empty_file, no_audio, unreadable_media (at opening, or at
    the read or length() where the decoder fails; FFmpeg's error chained, so that an errno
    stays visible to faults.py). Close it (or use ``with``); read and length then raise
    ValueError. ``first_time``: the first decoded frame's presentation time (None before it,
    or unknown). A sample that is not a number (NaN or infinite, as a damaged float file holds;
    the resampler spreads one over its filter's length) takes the mean of the channels that
    are numbers there, or silence where none is: ``silenced`` counts those silent ones so far
    (per channel), ``silenced_from`` says where the first was (seconds), and the log says so
    once (``quiet``: never).
    """

    def __init__(self, path: Path, rate: int, gain: float | None = None,
                 limit_seconds: float | None = None, quiet: bool = False) -> None:
        import av

        self.path = Path(path)
        self.rate = int(rate)
        self._mix: np.ndarray | None = None  # (2, channels decoded): the stereo down-mix
        self._gain = gain
        self._limit_seconds = limit_seconds
        self._container = open_input(self.path)
        try:
            if not self._container.streams.audio:
                raise MediaError(
                    f"{self.path.name} has no sound track; add audio or choose another file.",
                    code="no_audio",
                )
            stream = self._container.streams.audio[0]
            self._decoded_channels = min(max(int(stream.codec_context.channels or 1), 1),
                                         MAX_CHANNELS)
            layout: Any = _layout_name(self._decoded_channels)
            if self._decoded_channels > 2:
                # as the file orders them (no remix); more than 8 are FFmpeg's 7.1 ("8c")
                if self._decoded_channels == stream.codec_context.channels:
                    layout = stream.codec_context.layout
                names = [c.name for c in av.AudioLayout(layout).channels]
                if all(name == "NONE" for name in names):
                    # FFmpeg's usual layout for the count, its LFE heard as a centre: where a
                    # file names no channels, a voice may be in the one guessed to be the LFE
                    names = ["FC" if c.name.startswith("LFE") else c.name
                             for c in av.AudioLayout(f"{len(names)}c").channels]
                self._mix = stereo_matrix(names)
            self.channels = 2 if self._mix is not None else self._decoded_channels
            seconds = _stream_seconds(stream)
            self._declared = None if seconds is None else int(round(seconds * self.rate))
            self._resampler = av.AudioResampler(format="flt", layout=layout, rate=self.rate)
            self._frames = self._container.decode(stream)
        except av.FFmpegError as err:
            self._container.close()
            raise self._undecodable(err) from err
        except BaseException:
            self._container.close()
            raise
        self.first_time: float | None = None
        self._blocks: deque[np.ndarray] = deque()
        self._decoded = 0  # samples per channel out of the resampler so far
        self._given = 0  # samples per channel read so far
        self.silenced = 0  # samples per channel that were not numbers in any channel
        self.silenced_from: float | None = None
        self._quiet = quiet
        self._told = False
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

    def _undecodable(self, err: Exception) -> MediaError:
        log.info("media.unreadable", file=self.path.name, ffmpeg=str(err))
        return MediaError(
            f"The audio in {self.path.name} cannot be decoded; the file may be damaged or cut "
            f"short.{COPY_ADVICE}",
            code="unreadable_media",
        )

    def _known(self) -> int:
        """Samples per channel that are certainly in the track so far: past the declared end,
        only once the excess is more than codec padding (or the stream ended with more)."""
        if self._ended:
            return trimmed_length(self._decoded, self._declared, self.rate)
        if self._declared is None or self._decoded - self._declared > PADDING_SECONDS * self.rate:
            return self._decoded
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
                if self.first_time is None:
                    self.first_time = frame.time
                frame.pts = None  # timestamp gaps must not make the resampler add or drop samples
                out = self._resampler.resample(frame)
        except av.FFmpegError as err:
            raise self._undecodable(err) from err
        for block in out:
            array = _samples(block, self._decoded_channels)
            finite = np.isfinite(array)
            if not finite.all():
                array = self._silenced(array, finite)
            if self._mix is not None:
                array = self._mix @ array * self._mix_gain()
            self._blocks.append(array)
            self._decoded += array.shape[1]

    def _silenced(self, array: np.ndarray, finite: np.ndarray) -> np.ndarray:
        """``array`` (channels, n) with each sample that is not a number replaced by the mean
        of its channels that are (a damaged channel beside a whole one keeps the voice), or by
        silence where none is (counted in ``silenced``)."""
        if not self._told and not self._quiet:
            first = int(np.flatnonzero(~finite.all(axis=0))[0])
            log.warning("audio.not_a_number", file=self.path.name,
                        at_seconds=round((self._decoded + first) / self.rate, 3))
        self._told = True
        kept = np.where(finite, array, np.float32(0.0))
        counts = finite.sum(axis=0)
        fill = kept.sum(axis=0) / np.maximum(counts, 1)
        none = counts == 0
        if none.any():
            if self.silenced_from is None:
                self.silenced_from = (self._decoded + int(np.flatnonzero(none)[0])) / self.rate
            self.silenced += int(none.sum())
        return np.where(finite, array, fill[None, :]).astype(np.float32)

    def _mix_gain(self) -> float:
        """The down-mix's gain: as given, else as found for this file before, else the largest
        up to 1 under which its peak (read through a stream of its own at gain 1, up to the
        limit) stays within [-1, 1]."""
        if self._gain is None:
            self._gain = _gains.recall(self.path, self.rate, self._limit_seconds)
        if self._gain is None:
            t0 = time.monotonic()
            peak, limit = 0.0, None
            if self._limit_seconds is not None:
                limit = int(self._limit_seconds * self.rate)
            read, ended = 0, False
            with TrackStream(self.path, self.rate, gain=1.0, quiet=True) as whole:
                while not ended and (limit is None or read < limit):
                    block = whole.take(1 << 16 if limit is None else min(1 << 16, limit - read))
                    ended = block.shape[1] == 0
                    if not ended:
                        read += block.shape[1]
                        peak = max(peak, float(np.abs(block).max()))
            self._gain = 1.0 if peak <= 1.0 else 1.0 / peak
            _gains.keep(self.path, self.rate, self._gain, None if ended else self._limit_seconds)
            log.debug("audio.mixed_down", file=self.path.name, peak=round(peak, 3),
                      gain=round(self._gain, 3), duration_ms=ms_since(t0))
        return self._gain

    def read(self, count: int) -> np.ndarray:
        return clip_unit(self.take(count))

    def take(self, count: int) -> np.ndarray:
        """:meth:`read` before the clipping to [-1, 1] (the resampler's filters ring slightly
        past it): float32 (channels, <= count)."""
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
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def length(self) -> int:
        self._open()
        while not self._ended:
            self._pull()
        return self._known()
