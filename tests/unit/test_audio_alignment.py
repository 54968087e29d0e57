"""A video's sound timed from its first frame: load_audio(from_first_frame=True)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from heygemd.media.audio import load_audio, shift_start
from tests.mediagen import pattern_frame

RATE = 16000


def _clip(path: Path, video_start: float, audio_start: float) -> Path:
    """1 s of picture from ``video_start`` s and 1 s of sound from ``audio_start`` s: silence
    with a click in its first 10 ms, so the sound's own start can be found again."""
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream("pcm_s16le" if path.suffix == ".mkv" else "aac", rate=48000)
        sound.layout = "mono"
        packets = []
        base = Fraction(1, 25)
        for i in range(25):
            frame = av.VideoFrame.from_ndarray(pattern_frame(i, 64, 48), format="rgb24")
            frame.pts, frame.time_base = int(round(video_start / base)) + i, base
            packets.extend(video.encode(frame))
        packets.extend(video.encode(None))
        samples = np.zeros((1, 48000), np.float32)
        samples[0, :480] = 0.8
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 48000
        ctx = sound.codec_context
        resampler = av.AudioResampler(format=ctx.format.name, layout="mono", rate=48000,
                                      frame_size=ctx.frame_size or None)
        pts = int(round(audio_start * 48000))
        for out in [*resampler.resample(frame), *resampler.resample(None)]:
            out.pts, pts = pts, pts + out.samples
            out.time_base = Fraction(1, 48000)
            packets.extend(sound.encode(out))
        packets.extend(sound.encode(None))
        for packet in sorted(packets, key=lambda p: float((p.dts if p.dts is not None else p.pts)
                                                          * p.time_base)):
            container.mux(packet)
    return path


def _click_at(samples: np.ndarray) -> float:
    """Seconds to the first loud sample."""
    return float(np.flatnonzero(np.abs(samples) > 0.3)[0]) / RATE


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
@pytest.mark.parametrize(("video_start", "audio_start"), [(0.0, 0.2), (0.2, 0.0), (0.0, 0.0)])
def test_the_sound_is_timed_from_the_first_frame(
        tmp_path: Path, suffix: str, video_start: float, audio_start: float) -> None:
    path = _clip(tmp_path / f"clip{suffix}", video_start, audio_start)
    plain = load_audio(path, rate=RATE)
    aligned = load_audio(path, rate=RATE, from_first_frame=True)
    # counted from its own first sample (in MP4 that can be the AAC encoder's 1024 priming
    # samples, 21 ms at 48 kHz, which the stream's timestamps account for)
    assert _click_at(plain) == pytest.approx(0.0, abs=0.022)
    offset = audio_start - video_start
    if offset >= 0:
        assert _click_at(aligned) == pytest.approx(offset, abs=0.002)
    else:  # the click came before the picture: gone
        assert len(aligned) == pytest.approx(len(plain) + offset * RATE, abs=2)
        assert np.abs(aligned).max() < 0.3


def test_shift_start_pads_or_drops() -> None:
    samples = np.arange(1.0, 5.0, dtype=np.float32)[None, :]
    assert shift_start(samples, 2 / 10, 10).tolist() == [[3.0, 4.0]]
    assert shift_start(samples, -2 / 10, 10).tolist() == [[0.0, 0.0, 1.0, 2.0, 3.0, 4.0]]
    assert shift_start(samples, 0.0, 10) is samples
