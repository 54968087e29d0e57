"""A template's own sound is heard for its analysis unless it has more than 8 channels and
FFmpeg knows no layout to mix them down by (9, 11, ...): then the template is analysed as if
silent (the output's sound is the job's), and the log says so, instead of the video being
refused as damaged. Counts FFmpeg knows (12: 7.1.4) are heard as before."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import pytest
from structlog.testing import capture_logs

from heygemd.contract import AUDIO_RATE
from heygemd.engines.builtin.analysis import _own_track
from heygemd.media.probe import probe


def _template(folder: Path, channels: int, seconds: float = 0.4) -> Path:
    """A tiny video (grey 64x64 frames) with a PCM sound track of ``channels`` channels (a WAV
    written with the standard library, its packets carried over: PyAV names no layout for
    9-11 channels)."""
    count = int(seconds * AUDIO_RATE)
    tone = (np.sin(2 * np.pi * 220 * np.arange(count) / AUDIO_RATE) * 8000).astype("<i2")
    wav = folder / f"sound{channels}.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(AUDIO_RATE)
        out.writeframes(np.repeat(tone, channels).tobytes())
    path = folder / f"template{channels}.mkv"
    with av.open(str(wav)) as source, av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=25)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        sound = out.add_stream_from_template(source.streams.audio[0])
        for _ in range(int(seconds * 25)):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 128, np.uint8),
                                               format="rgb24")
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        for packet in source.demux(source.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = sound
                out.mux(packet)
    return path


@pytest.mark.parametrize("channels", [9, 11])
def test_a_sound_with_more_channels_than_a_layout_names_is_not_heard(
    tmp_path: Path, channels: int
) -> None:
    path = _template(tmp_path, channels)
    info = probe(path)
    assert info.audio is not None and info.audio.channels == channels
    with capture_logs() as logs:
        assert _own_track(path, info) is None
    assert [e for e in logs if e["event"] == "template.sound_not_heard"][0]["channels"] == channels


@pytest.mark.parametrize("channels", [2, 12])
def test_a_sound_ffmpeg_can_mix_down_is_heard(tmp_path: Path, channels: int) -> None:
    path = _template(tmp_path, channels)
    track = _own_track(path, probe(path))
    assert track is not None and track.ndim == 1 and abs(len(track) - 0.4 * AUDIO_RATE) <= 400
    assert np.abs(track).max() > 0.1  # the tone, mixed down
