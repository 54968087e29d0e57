"""The media layer on the real recordings in ../shared/media: probe, decode, re-encode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heygemd.media.audio import load_audio
from heygemd.media.probe import probe
from heygemd.media.video import VideoReader, read_frames
from heygemd.media.writer import VideoWriter
from heygemd.settings import OutputSettings

FAST = OutputSettings(crf=23, preset="ultrafast", audio_bitrate_kbps=96, audio_rate=48000)

TH10 = "talking/th10_man_standing_portrait1080x1920_latentsync_demo2.mp4"
TH05 = "talking/th05_woman_flagbg_en_sadtalker_WDA_AOC.mp4"
RJ01 = "reject/rj01_profile_man_interview_orlando_bloom.avi"
ZH02 = "speech/zh02_female_3s_cosyvoice_zero_shot_prompt.wav"
ZH01 = "speech/zh01_chinese_news_8s_sadtalker.wav"
EN01 = "speech/en01_male_jfk_inaugural_11s.flac"

# file -> (codec, width, height, fps, frames, has audio)
VIDEOS = {
    TH10: ("hevc", 1080, 1920, 25.0, 502, True),
    TH05: ("mpeg4", 512, 512, 25.0, 200, True),
    RJ01: ("mpeg4", 320, 240, 25.0, 139, False),
}
# file -> (codec, rate, channels, seconds)
SOUNDS = {
    ZH02: ("pcm_f32le", 24000, 1, 3.48),
    ZH01: ("pcm_s16le", 48000, 2, 8.0),
    EN01: ("flac", 44100, 2, 11.0),
}


@pytest.mark.parametrize("name", sorted(VIDEOS))
def test_real_video_probe_and_decode(shared_media: Path, name: str) -> None:
    codec, width, height, fps, frames, has_audio = VIDEOS[name]
    path = shared_media / name
    info = probe(path)
    assert info.video is not None
    assert info.video.codec == codec
    assert (info.video.width, info.video.height) == (width, height)
    assert info.video.avg_fps == pytest.approx(fps)
    assert not info.video.is_vfr
    assert info.has_audio == has_audio
    picked = read_frames(path, [0, frames // 2, frames - 1], scale=0.25)
    assert sorted(picked) == [0, frames // 2, frames - 1]
    for frame in picked.values():
        assert frame.shape == (height // 4, width // 4, 3) and frame.dtype == np.uint8
        assert 10 < frame.mean() < 245  # a real picture, not a blank one
    assert not np.array_equal(picked[0], picked[frames - 1])


def test_small_real_clip_decodes_every_frame(shared_media: Path) -> None:
    with VideoReader(shared_media / RJ01) as reader:
        count = sum(1 for _ in reader)
    assert count == 139


@pytest.mark.parametrize("name", sorted(SOUNDS))
def test_real_audio(shared_media: Path, name: str) -> None:
    codec, rate, channels, seconds = SOUNDS[name]
    info = probe(shared_media / name)
    assert info.audio is not None and info.video is None
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == (
        codec,
        rate,
        channels,
    )
    samples = load_audio(shared_media / name)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) / 16000 == pytest.approx(seconds, abs=0.01)
    assert 0.05 < np.abs(samples).max() <= 1.0
    assert 0.005 < float(np.sqrt(np.mean(samples**2))) < 0.5  # speech, not silence or noise


def test_float_wav_is_not_misread(shared_media: Path) -> None:
    """zh02 is 32-bit float: read as integers it would be full-scale noise."""
    samples = load_audio(shared_media / ZH02, rate=24000)
    assert len(samples) == 83520
    assert np.abs(samples).max() < 0.9 and float(np.mean(np.abs(samples))) < 0.1


@pytest.mark.parametrize(("video", "audio"), [(TH05, ZH01), (TH10, ZH02), (RJ01, EN01)])
def test_reencode_follows_audio(shared_media: Path, tmp_path: Path, video: str, audio: str) -> None:
    track = load_audio(shared_media / audio, rate=48000, mono=False)
    seconds = track.shape[1] / 48000
    out = tmp_path / "out.mp4"
    with VideoReader(shared_media / video, scale=0.25) as reader:
        wanted = int(round(seconds * reader.fps))
        with VideoWriter(
            out,
            reader.width,
            reader.height,
            reader.fps,
            audio=track,
            audio_rate=48000,
            settings=FAST,
        ) as writer:
            for i, frame in enumerate(reader):
                if i >= min(wanted, 75):  # a few seconds are enough; the rest is held
                    break
                writer.write(frame)
    info = probe(out)
    assert info.video is not None and info.audio is not None
    assert info.streams == ("video:h264", "audio:aac")
    assert info.video.frame_count == wanted
    assert info.duration == pytest.approx(seconds, abs=0.05)
    assert len(load_audio(out)) / 16000 == pytest.approx(seconds, abs=0.05)
