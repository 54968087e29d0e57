"""The reference cost of a job without lip-sync: decode a template and encode it again.

``plain_decode_encode`` decodes every frame of a video to RGB with PyAV (our VideoReader) and
encodes it with its own sound track at the given output settings (our VideoWriter). Engine
benchmarks divide their wall time by this number, so what they report is the cost of the
engine itself over the unavoidable media I/O.

One run in a fresh process is not that number: the first decode+encode pays for loading codecs
and warming caches (th08 measured 1.19-2.06 s between runs). ``plain_runs`` warms the path up
once, untimed, then times several runs; ``Spread`` summarises them (median, min, max).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from heygemd.errors import MediaError
from heygemd.media.audio import load_audio
from heygemd.media.video import VideoReader
from heygemd.media.writer import VideoWriter
from heygemd.settings import OutputSettings


@dataclass(frozen=True)
class DecodeEncodeTiming:
    """Seconds spent decoding (to RGB), encoding (H.264 + AAC, incl. flush) and in total."""

    frames: int
    decode_s: float
    encode_s: float
    total_s: float

    @property
    def decode_fps(self) -> float:
        return self.frames / self.decode_s if self.decode_s > 0 else 0.0

    @property
    def encode_fps(self) -> float:
        return self.frames / self.encode_s if self.encode_s > 0 else 0.0


def measure_decode_encode(video: Path, out: Path, settings: OutputSettings) -> DecodeEncodeTiming:
    """Decode ``video`` and encode it (with its own audio, if any) into ``out``; time each side."""
    t0 = time.perf_counter()
    try:
        audio = load_audio(video, rate=settings.audio_rate, mono=False)
    except MediaError as err:
        if err.code != "no_audio":
            raise
        audio = None
    decode_s = time.perf_counter() - t0
    encode_s = 0.0
    frames = 0
    with VideoReader(video) as reader:
        writer = VideoWriter(
            out,
            reader.width,
            reader.height,
            reader.fps,
            audio=audio,
            audio_rate=settings.audio_rate,
            settings=settings,
        )
        with writer:
            iterator = iter(reader)
            while True:
                t1 = time.perf_counter()
                frame = next(iterator, None)
                t2 = time.perf_counter()
                decode_s += t2 - t1
                if frame is None:
                    break
                writer.write(frame)
                encode_s += time.perf_counter() - t2
                frames += 1
            t3 = time.perf_counter()
        encode_s += time.perf_counter() - t3  # the flush on close
    return DecodeEncodeTiming(frames, decode_s, encode_s, time.perf_counter() - t0)


def plain_decode_encode(video: Path, out: Path, settings: OutputSettings) -> float:
    """Seconds for a plain PyAV decode of ``video`` + encode to ``out`` at ``settings``."""
    return measure_decode_encode(video, out, settings).total_s


@dataclass(frozen=True)
class Spread:
    """Repeated wall-clock measurements in seconds: the median is the number to report, the
    range (max - min) says how noisy the machine was."""

    runs: tuple[float, ...]

    @classmethod
    def of(cls, runs: Sequence[float]) -> Spread:
        if not runs:
            raise ValueError("no runs to summarise")
        return cls(tuple(float(r) for r in runs))

    @property
    def median(self) -> float:
        return float(statistics.median(self.runs))

    @property
    def low(self) -> float:
        return min(self.runs)

    @property
    def high(self) -> float:
        return max(self.runs)

    @property
    def range(self) -> float:
        return self.high - self.low


def plain_runs(
    video: Path, out: Path, settings: OutputSettings, runs: int = 3, warm_up: int = 1
) -> Spread:
    """``runs`` timed plain decode+encodes of ``video`` after ``warm_up`` untimed ones."""
    for _ in range(warm_up):
        plain_decode_encode(video, out, settings)
    return Spread.of([plain_decode_encode(video, out, settings) for _ in range(max(1, runs))])
