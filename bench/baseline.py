"""The reference cost of a job without lip-sync: decode a template and encode it again.

``plain_decode_encode`` decodes every frame of a video to RGB with PyAV (our VideoReader) and
encodes it with its own sound track at the given output settings (our VideoWriter). Engine
benchmarks divide their wall time by this number, so what they report is the cost of the
engine itself over the unavoidable media I/O.
"""

from __future__ import annotations

import time
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
