"""VideoReader / read_frames (media.video) and VideoWriter (media.writer) on small synthetic
files, and the pure helpers."""

from __future__ import annotations

import os
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heygemd.contract import AUDIO_RATE
from heygemd.engines.base import RenderRequest
from heygemd.errors import MediaError, ProcessingError
from heygemd.media.audio import load_audio
from heygemd.media.probe import probe
from heygemd.media.types import MediaInfo
from heygemd.media.video import (
    VideoReader,
    cfr_schedule,
    even_frame,
    frames_for,
    read_frames,
    read_range,
    read_range_backwards,
    scaled_size,
    upright,
)
from heygemd.media.writer import VideoWriter, output_frame_count, rgb_frame
from heygemd.media.yuv import as_rgb
from heygemd.settings import OutputSettings
from tests.mediagen import held_picture, make_video, misnamed_audio, pattern_frame, tone

FAST = OutputSettings(crf=18, preset="ultrafast", audio_bitrate_kbps=96, audio_rate=48000)


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _timed(times: list[float], duration: float) -> list[tuple[float, float, int]]:
    return [(t, duration, i) for i, t in enumerate(times)]


def test_cfr_schedule_keeps_regular_frames() -> None:
    out = list(cfr_schedule(_timed([i / 25 for i in range(10)], 1 / 25), 25.0))
    assert out == [(i, i) for i in range(10)]


def test_cfr_schedule_repeats_over_gaps_and_drops_crowded_frames() -> None:
    # frames at slots 0, 3, and two crowding slot 4 (the later one wins), lasting to slot 6
    out = list(cfr_schedule(_timed([0.0, 0.12, 0.155, 0.165], 0.115), 25.0))
    assert out == [(0, 0), (1, 0), (2, 0), (3, 1), (4, 3), (5, 3), (6, 3)]


def test_cfr_schedule_resamples_to_another_rate_and_offset_start() -> None:
    out = list(cfr_schedule(_timed([5.0 + i / 25 for i in range(25)], 1 / 25), 50.0))
    assert len(out) == 50
    assert [item for _, item in out[:4]] == [0, 0, 1, 1]
    assert not list(cfr_schedule([], 25.0))


def test_scaled_size_and_even() -> None:
    assert scaled_size(1080, 1920, 1.0) == (1080, 1920)
    assert scaled_size(1080, 1920, 0.5) == (540, 960)
    assert scaled_size(333, 251, 0.5) == (166, 126)
    with pytest.raises(ValueError):
        scaled_size(10, 10, 1.5)


def test_upright_turns_clockwise() -> None:
    frame = np.zeros((2, 3, 3), np.uint8)
    frame[0, 0] = 255  # top-left
    turned = upright(frame, 90)
    assert turned.shape == (3, 2, 3)
    assert turned[0, 1, 0] == 255  # top-left goes to top-right on a clockwise quarter turn
    assert upright(frame, 180)[1, 2, 0] == 255
    assert upright(frame, 270)[2, 0, 0] == 255
    assert upright(frame, 0) is frame


def test_even_frame_pads_odd_sizes() -> None:
    frame = np.arange(5 * 3 * 3, dtype=np.uint8).reshape(5, 3, 3)
    padded = even_frame(frame)
    assert padded.shape == (6, 4, 3)
    assert np.array_equal(padded[5, :3], frame[4]) and np.array_equal(padded[:5, 3], frame[:, 2])
    even = np.zeros((4, 2, 3), np.uint8)
    assert even_frame(even) is even


def test_output_frame_count_follows_audio() -> None:
    assert output_frame_count(10, 1.0, 25.0) == 25
    assert output_frame_count(30, 1.0, 25.0) == 30
    assert output_frame_count(0, 0.0, 25.0) == 0


@pytest.mark.parametrize(
    ("seconds", "fps", "frames"), [(2.25, 2.0, 5), (1.25, 2.0, 3), (1.0, 25.0, 25)]
)
def test_one_frame_count_rule_rounds_halves_up(seconds: float, fps: float, frames: int) -> None:
    # 4.5 and 2.5 frames: round() would give 4 and 2 (half to even); the CFR schedule gives 5, 3
    assert frames_for(seconds, fps) == frames
    assert output_frame_count(0, seconds, fps) == frames
    assert len(list(cfr_schedule([(0.0, seconds, "only")], fps))) == frames
    audio = np.zeros(int(seconds * AUDIO_RATE), dtype=np.float32)
    info = MediaInfo(path="t.mp4", container="mp4", duration=seconds, size_bytes=0, bit_rate=None)
    request = RenderRequest(template=Path("t.mp4"), info=info, audio=audio, fps=fps)
    assert request.frame_count == frames


@pytest.mark.parametrize("ext", ["mp4", "avi", "mov", "mkv", "webm", "flv"])
def test_reader_round_trip(tmp_path: Path, ext: str) -> None:
    path = make_video(tmp_path / f"clip.{ext}", width=64, height=48, fps=25, seconds=1.0)
    with VideoReader(path) as reader:
        frames = list(reader)
        assert (reader.width, reader.height, reader.fps) == (64, 48, 25.0)
        assert abs(reader.frame_count - 25) <= 1  # an estimate: some containers pad the end
    assert len(frames) == 25
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)
    assert _diff(frames[10], pattern_frame(10, 64, 48)) < 12
    assert _diff(frames[10], pattern_frame(20, 64, 48)) > 2 * _diff(
        frames[10], pattern_frame(10, 64, 48)
    )


def test_reader_rotation_upright(tmp_path: Path) -> None:
    path = make_video(tmp_path / "r.mp4", width=64, height=48, rotation=90)
    with VideoReader(path) as reader:
        frames = list(reader)
        assert (reader.width, reader.height) == (48, 64)
    assert frames[0].shape == (64, 48, 3)
    expected = np.rot90(pattern_frame(5, 64, 48), k=-1)
    assert _diff(frames[5], expected) < 12
    assert frames[5][2, -3, 0] > 200 and frames[5][2, -3, 1] < 60  # red marker at top-right


def _as_displayed(stored: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``stored`` as its display matrix shows it, by the matrix's own definition: pixel (p, q)
    of the decoded picture lands at (a p + c q, b p + d q), the result moved to start at 0."""
    a, b, c, d = (int(np.sign(matrix[i])) for i in (0, 1, 3, 4))
    h, w = stored.shape[:2]
    q, p = np.mgrid[0:h, 0:w]
    x, y = a * p + c * q, b * p + d * q
    out = np.zeros((int(y.max() - y.min()) + 1, int(x.max() - x.min()) + 1, 3), np.uint8)
    out[y - y.min(), x - x.min()] = stored
    return out


@pytest.mark.parametrize("angle", [0, 90, 180, -90])
@pytest.mark.parametrize("flip", ["none", "hflip", "vflip"])
def test_every_turn_and_flip_of_a_display_matrix_stands_upright(
    tmp_path: Path, angle: int, flip: str
) -> None:
    """A phone's front camera may record a mirror flag beside the turn: the picture is read as
    the matrix shows it (as FFmpeg's autorotation turns and flips it), not mirrored."""
    import av

    path = tmp_path / "m.mp4"
    # red grows to the right, green downwards, a blue block at the top left: no turn or flip of
    # it looks like another
    q, p = np.mgrid[0:48, 0:64]
    stored = np.stack([p * 4, q * 5, np.where((p < 16) & (q < 12), 255, 0)], -1).astype(np.uint8)
    held_picture(path, stored, 3, (angle, flip == "hflip", flip == "vflip"))
    with av.open(str(path)) as container:
        decoded = next(container.decode(video=0))
        data = decoded.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
        matrix = np.frombuffer(bytes(data), "<i4") if data is not None else np.array(
            [65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30])
    expected = _as_displayed(stored, matrix)
    with VideoReader(path) as reader:
        frame = next(iter(reader))
        assert (reader.height, reader.width) == expected.shape[:2]
    with VideoReader(path) as reader:  # as the engine reads a template: decoded where it may be
        _, picture = next(reader.pictures())
    for seen in (frame, as_rgb(picture)):
        assert _diff(seen, expected) < 6
        for other in (expected[:, ::-1], expected[::-1], expected[::-1, ::-1]):
            assert _diff(seen, other) > 30


def test_reader_scale(tmp_path: Path) -> None:
    path = make_video(tmp_path / "s.mkv", width=64, height=48, rotation=90)
    with VideoReader(path, scale=0.5) as reader:
        frame = next(iter(reader))
        assert (reader.width, reader.height) == (24, 32)
    assert frame.shape == (32, 24, 3)


@pytest.mark.parametrize("ext", ["mp4", "mkv", "webm"])
def test_reader_vfr_to_constant_rate(tmp_path: Path, ext: str) -> None:
    path = make_video(tmp_path / f"v.{ext}", fps=25, seconds=2.0, vfr=True, audio=False)
    with VideoReader(path) as reader:
        assert reader.fps == pytest.approx(25.0, rel=0.02)
        frames = list(reader)
    # source frames jitter around their slots (0, 0.6, 2, 2.6, 4 ... frame periods): each one
    # lands in its own slot, in order
    assert len(frames) == 50
    for k in (0, 1, 2, 25, 49):
        assert _diff(frames[k], pattern_frame(k, 64, 48)) < 12


def test_reader_fps_override_duplicates(tmp_path: Path) -> None:
    path = make_video(tmp_path / "c.mp4", fps=25, seconds=1.0, audio=False)
    with VideoReader(path, fps=50) as reader:
        frames = list(reader)
    assert len(frames) == 50
    assert np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[1], frames[2])


def test_read_frames_matches_iteration(tmp_path: Path) -> None:
    path = make_video(tmp_path / "c.mp4", fps=25, seconds=1.0, audio=False)
    with VideoReader(path) as reader:
        frames = list(reader)
    picked = read_frames(path, [24, 0, 7, 7, 99])
    assert sorted(picked) == [0, 7, 24]
    for i, frame in picked.items():
        assert np.array_equal(frame, frames[i])
    assert read_frames(path, []) == {}


def _keyframed(path: Path, *, seconds: float, gop: int, vfr: bool = False,
               rotation: int = 0, pix_fmt: str = "yuv420p") -> Path:
    """The moving pattern at 25 fps, 64x48, with a keyframe every ``gop`` frames (mediagen's
    files have one keyframe, where every seek lands on frame 0). vfr: mediagen's alternating
    0.6 / 1.4 frame gaps in a 1/1000 s time base."""
    import av

    from tests.mediagen import FORMATS, VIDEO_CODECS

    count = int(round(seconds * 25))
    gaps = [(1.4 if i % 2 else 0.6) / 25 if vfr else 1 / 25 for i in range(count)]
    times = np.concatenate([[0.0], np.cumsum(gaps)[:-1]])
    with av.open(str(path), mode="w", format=FORMATS.get(path.suffix)) as container:
        stream: Any = container.add_stream(VIDEO_CODECS[path.suffix][0], rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        stream.codec_context.gop_size = gop
        time_base = Fraction(1, 1000) if vfr else Fraction(1, 25)
        stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(-rotation)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(pattern_frame(i, 64, 48), format="rgb24")
            frame.pts, frame.time_base = int(round(t / time_base)), time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _sequential(path: Path, **kwargs: Any) -> list[np.ndarray]:
    with VideoReader(path, **kwargs) as reader:
        return list(reader)


def _assert_range_matches(path: Path, frames: list[np.ndarray], start: int, stop: int,
                          **kwargs: Any) -> None:
    got = list(read_range(path, start, stop, **kwargs))
    assert [i for i, _ in got] == list(range(start, min(stop, len(frames))))
    for i, frame in got:
        assert np.array_equal(frame, frames[i]), f"frame {i} (from {start})"


@pytest.mark.parametrize("ext", ["mp4", "mkv", "webm", "avi", "mov"])
def test_read_range_seeks_to_the_same_frames_as_sequential_decoding(
    tmp_path: Path, ext: str
) -> None:
    # a keyframe every 12 frames, so that seeks land mid-stream and decode forward
    path = _keyframed(tmp_path / f"k.{ext}", seconds=3.0, gop=12)
    frames = _sequential(path)
    assert len(frames) == 75
    for start in (0, 1, 11, 12, 13, 40, 74):
        _assert_range_matches(path, frames, start, start + 9)
    _assert_range_matches(path, frames, 70, 200)  # past the end: what there is
    assert list(read_range(path, 80, 90)) == []


@pytest.mark.parametrize("ext", ["mp4", "mkv", "webm"])
def test_read_range_keeps_the_vfr_resampling(tmp_path: Path, ext: str) -> None:
    path = _keyframed(tmp_path / f"v.{ext}", seconds=2.0, gop=10, vfr=True)
    for fps in (None, 30.0):
        frames = _sequential(path, fps=fps) if fps else _sequential(path)
        for start in (1, 17, 26, len(frames) - 3):
            kwargs = {"fps": fps} if fps else {}
            _assert_range_matches(path, frames, start, start + 7, **kwargs)


def test_read_range_keeps_rotation_and_scale(tmp_path: Path) -> None:
    path = _keyframed(tmp_path / "r.mp4", seconds=2.0, gop=8, rotation=90)
    frames = _sequential(path, scale=0.5)
    assert frames[0].shape == (32, 24, 3)
    _assert_range_matches(path, frames, 21, 30, scale=0.5)


def test_read_range_backwards_gives_the_forward_frames_in_reverse(tmp_path: Path) -> None:
    path = _keyframed(tmp_path / "b.mp4", seconds=3.0, gop=12, rotation=90)
    frames = _sequential(path)
    for start, stop in ((0, 9), (13, 40), (70, 200)):  # the last one runs past the end
        got = list(read_range_backwards(path, start, stop))
        assert [i for i, _ in got] == list(range(min(stop, len(frames)) - 1, start - 1, -1))
        for i, frame in got:
            assert np.array_equal(frame, frames[i]), f"frame {i} (from {start})"
    assert list(read_range_backwards(path, 80, 90)) == []


@pytest.mark.parametrize("pix_fmt", ["yuv444p", "yuv422p"])
def test_read_range_backwards_gives_other_formats_as_forwards(tmp_path: Path, pix_fmt: str) -> None:
    """Frames not in 8-bit 4:2:0 are held as RGB: the very frames a forward walk gives."""
    from heygemd.media.video import held_bytes_per_pixel

    path = _keyframed(tmp_path / "full.mkv", seconds=1.0, gop=8, pix_fmt=pix_fmt)
    frames = _sequential(path)
    got = list(read_range_backwards(path, 3, 20))
    assert [i for i, _ in got] == list(range(19, 2, -1))
    assert all(np.array_equal(frame, frames[i]) for i, frame in got)
    info = probe(path).video
    assert info is not None and held_bytes_per_pixel(info) == 3.0
    assert held_bytes_per_pixel(replace(info, pix_fmt="yuv420p")) == 1.5
    # an HDR stream's frames are held as the SDR 4:2:0 frames they are shown as
    assert held_bytes_per_pixel(replace(info, pix_fmt="yuv420p10le", colour=(9, 1, 9, 18))) == 1.5


def test_reader_frames_from_the_middle_repeat_over_gaps(tmp_path: Path) -> None:
    path = _keyframed(tmp_path / "c.mp4", seconds=2.0, gop=10)
    with VideoReader(path, fps=50) as reader:
        got = list(reader.frames(31, 36))
    assert [i for i, _ in got] == [31, 32, 33, 34, 35]
    assert got[1][1] is got[2][1]  # slots 32 and 33 show the same source frame (same array)
    assert _diff(got[1][1], pattern_frame(16, 64, 48)) < 12


def test_readers_given_the_probe_do_not_probe_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _keyframed(tmp_path / "c.mp4", seconds=2.0, gop=10, rotation=90)
    info = probe(path)
    frames = _sequential(path, fps=50, scale=0.5)
    picked = read_frames(path, [3, 40], scale=0.5)
    ranged = list(read_range(path, 21, 30, fps=50, scale=0.5))

    def no_probe(path: Path) -> None:
        raise AssertionError(f"probed {path} again")

    monkeypatch.setattr("heygemd.media.video.probe", no_probe)
    with VideoReader(path, fps=50, scale=0.5, info=info) as reader:
        assert reader.info is info
        given = list(reader)
    assert len(given) == len(frames) == 100
    assert all(np.array_equal(a, b) for a, b in zip(given, frames, strict=True))
    again = read_frames(path, [3, 40], scale=0.5, info=info)
    assert sorted(again) == [3, 40]
    assert all(np.array_equal(again[i], picked[i]) for i in picked)
    got = list(read_range(path, 21, 30, fps=50, scale=0.5, info=info))
    assert [i for i, _ in got] == [i for i, _ in ranged] == list(range(21, 30))
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, ranged, strict=True))
    with pytest.raises(AssertionError, match="probed"):
        VideoReader(path)  # the stand-in is in place: without info the reader probes


def test_reader_refuses_audio_only_named_as_video(tmp_path: Path) -> None:
    path = misnamed_audio(tmp_path / "voice.mp4", ".m4a")
    with pytest.raises(MediaError) as err:
        VideoReader(path)
    assert err.value.code == "no_video"
    assert "voice.mp4" in err.value.message


def _write(path: Path, frames: int, audio: np.ndarray | None, size: tuple[int, int] = (64, 48)):
    width, height = size
    with VideoWriter(
        path, width, height, 25.0, audio=audio, audio_rate=16000, settings=FAST
    ) as writer:
        for i in range(frames):
            writer.write(pattern_frame(i, width, height))
    return probe(path)


def test_writer_holds_last_frame_when_audio_is_longer(tmp_path: Path) -> None:
    info = _write(tmp_path / "o.mp4", 10, tone(1.0, 16000))
    assert info.video is not None and info.audio is not None
    assert info.video.codec == "h264" and info.video.pix_fmt == "yuv420p"
    assert info.audio.codec == "aac" and info.audio.sample_rate == 48000
    assert info.video.frame_count == 25
    assert info.duration == pytest.approx(1.0, abs=0.05)
    with VideoReader(tmp_path / "o.mp4") as reader:
        frames = list(reader)
    assert len(frames) == 25 and np.array_equal(frames[9], frames[24])
    samples = load_audio(tmp_path / "o.mp4")
    assert len(samples) / 16000 == pytest.approx(1.0, abs=0.05)
    peak = np.argmax(np.abs(np.fft.rfft(samples))) * 16000 / len(samples)
    assert peak == pytest.approx(440, abs=3)


def test_writer_pads_audio_when_frames_are_longer(tmp_path: Path) -> None:
    info = _write(tmp_path / "o.mp4", 50, tone(1.0, 16000, channels=2))
    assert info.video is not None and info.audio is not None
    assert info.video.frame_count == 50
    assert info.audio.channels == 2
    assert info.audio.duration == pytest.approx(2.0, abs=0.05)
    samples = load_audio(tmp_path / "o.mp4")
    assert np.abs(samples[: 16000 - 800]).max() > 0.3  # the tone
    assert np.abs(samples[16000 + 800 :]).max() < 0.02  # then silence


def test_writer_mixes_many_channels_to_mono(tmp_path: Path) -> None:
    """Six channels (a 5.1 track) are averaged to one as the track is encoded."""
    six = tone(1.0, 16000, channels=6)
    six[3:] *= -1.0  # half the channels in opposite phase: the mean is silence
    info = _write(tmp_path / "o.mp4", 25, six)
    assert info.audio is not None and info.audio.channels == 1
    assert np.abs(load_audio(tmp_path / "o.mp4")).max() < 0.01


def test_writer_does_not_copy_the_track_whole(tmp_path: Path) -> None:
    """A job's track (60 s of 48 kHz stereo: 23 MB) is read a slice at a time: the writer's
    Python-side allocations stay a small part of it (a whole copy was held before)."""
    import tracemalloc

    track = tone(60.0, 48000, channels=2)
    tracemalloc.start()
    try:
        with VideoWriter(tmp_path / "o.mp4", 64, 48, 25.0, audio=track, audio_rate=48000,
                         settings=FAST) as writer:
            for i in range(10):  # the last frame is then held for the 60 s of sound
                writer.write(pattern_frame(i, 64, 48))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < track.nbytes / 4


@pytest.mark.parametrize("ext", ["m4a", "wav"])
def test_a_streamed_track_makes_the_file_the_whole_track_makes(tmp_path: Path, ext: str) -> None:
    """The pipeline's way (the file decoded as the frames come, its length known at the close,
    the last frame held to it) and the array's give the same MP4, byte for byte."""
    from heygemd.media.audio import TrackStream
    from tests.mediagen import make_audio

    sound = make_audio(tmp_path / f"s.{ext}", seconds=1.7, rate=44100, channels=2)
    outputs = []
    for way in ("array", "stream"):
        out = tmp_path / f"{way}.mp4"
        with TrackStream(sound, 48000) as stream:
            track = load_audio(sound, rate=48000, mono=False) if way == "array" else stream
            with VideoWriter(out, 64, 48, 25.0, audio=track, audio_rate=48000,
                             settings=FAST) as writer:
                for i in range(30):  # 1.2 s of frames: the last one held for the rest
                    writer.write(pattern_frame(i, 64, 48))
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert probe(tmp_path / "stream.mp4").video.frame_count == 43  # 1.7 s at 25 fps (42.5)


@pytest.mark.parametrize("layout", ["contiguous", "padded rows", "turned", "every other"])
def test_rgb_frame_takes_any_strides(layout: str) -> None:
    """What the encoder gets equals PyAV's own conversion of a contiguous copy, whatever the
    array's strides: padded rows (a decoder's, 1080 wide), a turned view (VideoReader's
    upright), a strided slice."""
    import av

    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (48, 90, 3), dtype=np.uint8)
    if layout == "padded rows":
        frame = np.pad(frame, ((0, 0), (0, 6), (0, 0)))[:, :90]
    elif layout == "turned":
        frame = np.rot90(rng.integers(0, 256, (90, 48, 3), dtype=np.uint8), -1)
    elif layout == "every other":
        frame = rng.integers(0, 256, (96, 180, 3), dtype=np.uint8)[::2, ::2]
    ours = rgb_frame(frame)
    theirs = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
    assert np.array_equal(ours.to_ndarray(format="rgb24"), frame)
    assert np.array_equal(ours.reformat(format="yuv420p").to_ndarray(),
                          theirs.reformat(format="yuv420p").to_ndarray())


def test_decoded_frames_go_to_the_encoder_as_they_are(tmp_path: Path) -> None:
    """yuv420p frames written as decoded come out of a lossless encode plane for plane (no
    round trip through RGB), with their timing; the last is held to the audio's end; a frame
    of another format is converted, and RGB and decoded frames may be mixed."""
    import av

    source = make_video(tmp_path / "in.mp4", seconds=0.4)
    with av.open(str(source)) as container:
        decoded = list(container.decode(video=0))
    planes = [f.to_ndarray() for f in decoded]
    lossless = FAST.model_copy(update={"crf": 0})
    out = tmp_path / "out.mp4"
    with VideoWriter(out, 64, 48, 25.0, audio=tone(0.6, 16000), audio_rate=16000,
                     settings=lossless) as writer:
        for frame in decoded:
            writer.write_decoded(frame)
    with av.open(str(out)) as container:
        made = list(container.decode(video=0))
    assert len(made) == 15  # 10 written, the last held for the 0.6 s of sound
    assert all(np.array_equal(m.to_ndarray(), p) for m, p in zip(made[:10], planes, strict=True))
    assert all(np.array_equal(m.to_ndarray(), planes[-1]) for m in made[10:])
    assert [round(float(m.time), 2) for m in made[:3]] == [0.0, 0.04, 0.08]
    # another format, and an RGB frame beside a decoded one
    other = tmp_path / "mixed.mp4"
    with VideoWriter(other, 64, 48, 25.0, audio=None, audio_rate=16000,
                     settings=lossless) as writer:
        writer.write_decoded(decoded[0].reformat(format="yuv444p"))
        writer.write(pattern_frame(1, 64, 48))
    with av.open(str(other)) as container:
        assert len(list(container.decode(video=0))) == 2


def test_writer_pads_odd_size_and_works_without_audio(tmp_path: Path) -> None:
    info = _write(tmp_path / "o.mp4", 5, None, size=(63, 47))
    assert info.video is not None and info.audio is None
    assert (info.video.width, info.video.height) == (64, 48)
    assert info.video.frame_count == 5


def _open_fds_to(path: Path) -> int:
    fd_dir = Path("/proc/self/fd")
    return sum(1 for fd in fd_dir.iterdir() if os.path.realpath(fd) == str(path.resolve()))


def test_writer_closes_and_propagates_on_error(tmp_path: Path) -> None:
    path = tmp_path / "partial.mp4"
    with (
        pytest.raises(KeyError),
        VideoWriter(
            path, 64, 48, 25.0, audio=tone(1.0, 16000), audio_rate=16000, settings=FAST
        ) as writer,
    ):
        for i in range(30):  # enough for the encoder to have written packets
            writer.write(pattern_frame(i, 64, 48))
        assert _open_fds_to(path) == 1
        raise KeyError("engine broke")
    assert _open_fds_to(path) == 0
    path.unlink()  # the caller can remove the partial file


def test_writer_rejects_wrong_frame(tmp_path: Path) -> None:
    with (
        pytest.raises(ProcessingError) as err,
        VideoWriter(
            tmp_path / "o.mp4", 64, 48, 25.0, audio=None, audio_rate=16000, settings=FAST
        ) as writer,
    ):
        writer.write(np.zeros((48, 64), np.uint8))
    assert err.value.code == "encode_failed"


def test_writer_output_failure_is_processing_error(tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "o.mp4"
    with (
        pytest.raises(ProcessingError) as err,
        VideoWriter(path, 64, 48, 25.0, audio=None, audio_rate=16000, settings=FAST) as writer,
    ):
        for i in range(30):
            writer.write(pattern_frame(i, 64, 48))
    assert err.value.code == "encode_failed"
    # plain words for the user; the file (a temp name in the daemon) goes only to the log
    assert err.value.message == ("The result could not be encoded (the video encoder reported: "
                                 "No such file or directory).")
    assert isinstance(err.value.__cause__, OSError)


def test_a_surround_track_is_encoded_as_stereo_with_its_centre_at_minus_3_db(
    tmp_path: Path,
) -> None:
    """A 5.1 job audio with its voice in the centre channel: the output's AAC is stereo and
    the voice is in both channels at -3 dB (a mean of the six channels would give -15.6 dB)."""
    import av

    from heygemd.media.audio import HALF_POWER, TrackStream

    n = 48000
    voice = 0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)
    pcm = np.zeros((n, 6), "<i2")
    pcm[:, 2] = np.round(voice * 32767)
    sound = tmp_path / "mix.wav"
    with av.open(str(sound), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=48000)
        stream.layout = "5.1"
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="5.1")
        frame.rate = 48000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    with TrackStream(sound, 48000) as track, \
            VideoWriter(tmp_path / "o.mp4", 64, 48, 25.0, audio=track, audio_rate=48000,
                        settings=FAST) as writer:
        for i in range(25):
            writer.write(pattern_frame(i, 64, 48))
    out = load_audio(tmp_path / "o.mp4", rate=48000, mono=False)
    assert out.shape[0] == 2
    middle = out[:, 4800:-4800]  # AAC's edges aside
    rms = np.sqrt((middle ** 2).mean(axis=1))
    assert np.allclose(rms, 0.5 / np.sqrt(2) * HALF_POWER, rtol=0.05)
