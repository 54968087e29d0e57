"""Decoded 4:2:0 frames carried through a render (media/yuv.py): regions turned to RGB equal
the whole frame's conversion, changed pixels go back and every other one stays as decoded, and
the writer keeps one set of colours whichever kind of frame it is given."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest

from heygemd.media.video import VideoReader
from heygemd.media.writer import UNTAGGED, VideoWriter
from heygemd.media.yuv import YuvFrame, as_rgb, carried, colour_of, planes
from heygemd.settings import OutputSettings
from tests.mediagen import make_video

BT709, MPEG = 1, 1
LOSSLESS = OutputSettings(encoder="libx264", crf=0, preset="ultrafast")


def picture(width: int = 96, height: int = 64, seed: int = 0) -> np.ndarray:
    """RGB uint8 (height, width, 3): smooth colours with some detail, as skin and lips."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([120 + 80 * np.sin(x / 23.0), 90 + 60 * np.cos(y / 19.0),
                     100 + 50 * np.sin((x + y) / 29.0)], axis=2)
    return np.clip(base + rng.normal(0, 1, base.shape), 0, 255).astype(np.uint8)


def decoded(rgb: np.ndarray, colorspace: int = BT709, color_range: int = MPEG) -> av.VideoFrame:
    """A yuv420p av.VideoFrame of ``rgb`` in the given colours, tagged with them."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", dst_colorspace=colorspace, dst_color_range=color_range)
    frame.colorspace, frame.color_range = colorspace, color_range
    frame.color_primaries = frame.color_trc = colorspace  # BT.709's are 1 as well
    return frame


def copied_planes(frame: av.VideoFrame) -> list[np.ndarray]:
    return [p.copy() for p in planes(frame)]


@pytest.mark.parametrize("colorspace", [BT709, 2])
@pytest.mark.parametrize("box", [(0, 0, 96, 64), (13, 7, 31, 21), (10, 20, 40, 30),
                                 (80, 50, 40, 40), (95, 63, 5, 5)])
def test_a_region_is_the_whole_conversion_cut(colorspace: int,
                                              box: tuple[int, int, int, int]) -> None:
    frame = decoded(picture(), colorspace)
    whole = frame.to_ndarray(format="rgb24")
    x0, y0, w, h = box
    got = YuvFrame(frame).region(x0, y0, w, h)
    assert np.array_equal(got, whole[y0 : y0 + h, x0 : x0 + w])


def test_a_region_past_the_picture_is_empty() -> None:
    assert YuvFrame(decoded(picture())).region(96, 10, 8, 8).shape == (8, 0, 3)


@pytest.mark.parametrize("at", [(30, 20), (31, 21), (0, 0), (85, 1), (90, 58)])
def test_only_changed_pixels_leave_the_decoded_ones(at: tuple[int, int]) -> None:
    """A window changed inside: luma changes only where RGB did, chroma only in 2x2 blocks
    holding such a pixel; the new pixels read back close to what was given; the frame given
    is not touched."""
    source = decoded(picture())
    before_planes = copied_planes(source)
    item = YuvFrame(source)
    x0, y0 = at  # (85, 1) and (90, 58): the window runs past the picture's edge
    before = item.region(x0, y0, 16, 14)
    after = before.copy()
    after[2:12, 3:13] = (200, 40, 60)  # a red lip
    made = item.changed(x0, y0, before, after)
    assert made is not item and made.shape == item.shape
    assert all(np.array_equal(a, b) for a, b in zip(planes(source), before_planes, strict=True))
    y, u, v = (p.astype(int) for p in planes(made.frame))
    moved = np.zeros(item.shape[:2], bool)
    moved[y0 : y0 + after.shape[0], x0 : x0 + after.shape[1]] = np.any(before != after, axis=2)
    assert np.array_equal(y[~moved], before_planes[0][~moved])
    blocks = moved.reshape(32, 2, 48, 2).any(axis=(1, 3))
    assert np.array_equal(u[~blocks], before_planes[1][~blocks])
    assert np.array_equal(v[~blocks], before_planes[2][~blocks])
    assert not np.array_equal(y[moved], before_planes[0][moved])
    # inside the patch, away from chroma blocks it shares with the old pixels
    back = made.region(x0, y0, *after.shape[1::-1])
    inner = (slice(4, min(10, back.shape[0])), slice(5, min(11, back.shape[1])))
    assert np.abs(back[inner].astype(int) - after[inner]).max() <= 3
    assert colour_of(made.frame) == colour_of(source) == (BT709, MPEG, BT709, BT709)


def test_nothing_changed_gives_the_same_frame() -> None:
    item = YuvFrame(decoded(picture()))
    before = item.region(10, 10, 20, 20)
    assert item.changed(10, 10, before, before.copy()) is item


def test_only_even_4_2_0_frames_are_carried() -> None:
    assert carried(decoded(picture()))
    assert not carried(decoded(picture()).reformat(format="yuv444p"))
    assert not carried(av.VideoFrame(63, 48, "yuv420p"))
    with pytest.raises(ValueError):
        YuvFrame(av.VideoFrame(64, 48, "rgb24"))


def _written(path: Path, frames: list[object]) -> list[av.VideoFrame]:
    with VideoWriter(path, 96, 64, 25.0, audio=None, audio_rate=16000,
                     settings=LOSSLESS) as writer:
        for frame in frames:
            writer.write(frame)  # type: ignore[arg-type]
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def test_the_first_decoded_frame_sets_the_outputs_colours(tmp_path: Path) -> None:
    """A BT.709 frame goes to the encoder as decoded and the stream says BT.709; an RGB frame
    after it is turned with BT.709 too, so both read back as the colours given."""
    rgb = picture(seed=1)
    source = decoded(rgb)
    made = _written(tmp_path / "a.mp4", [YuvFrame(source), rgb])
    assert colour_of(made[0]) == (BT709, MPEG, BT709, BT709)
    assert all(np.array_equal(a, b)
               for a, b in zip(planes(made[0]), planes(source), strict=True))
    for frame in made:
        assert np.abs(frame.to_ndarray(format="rgb24").astype(int) - rgb).mean() < 3


def test_an_untagged_output_turns_a_bt709_frame_through_rgb(tmp_path: Path) -> None:
    """After an RGB first frame the output stays untagged (BT.601 as swscale turns RGB): a
    BT.709 frame written next is converted, not passed on with the wrong matrix."""
    rgb = picture(seed=2)
    made = _written(tmp_path / "b.mp4", [rgb, YuvFrame(decoded(rgb))])
    assert colour_of(made[0])[:2] == UNTAGGED[:2]
    def error(frame: av.VideoFrame) -> float:  # against the RGB given, read as BT.601
        got = frame.reformat(format="rgb24", src_colorspace=5).to_ndarray().astype(int)
        return float(np.abs(got - rgb).mean())

    assert error(decoded(rgb)) > 5  # what passing its values on as they are would show
    assert all(error(frame) < 3 for frame in made)  # one or two conversions' rounding


def test_an_output_begun_with_rgb_takes_its_templates_tagged_colours(tmp_path: Path) -> None:
    """Given the template's colours (a rotated BT.709 phone video, whose frames come as RGB),
    an output begun with an RGB frame is made in them and says so (untagged, players read HD
    video as BT.709 while swscale makes BT.601); an HDR template's are the SDR BT.709 its
    frames are shown in; an untagged template's stay untagged."""
    from heygemd.media import hdr
    from heygemd.media.writer import rgb_colours

    assert rgb_colours((BT709, MPEG, BT709, BT709)) == (BT709, MPEG, BT709, BT709)
    assert rgb_colours((5, MPEG, 5, 6)) == (5, MPEG, 5, 6)
    assert rgb_colours((9, MPEG, 9, hdr.HLG)) == hdr.BT709_LIMITED
    assert rgb_colours((2, 0, 2, 2)) == UNTAGGED and rgb_colours(None) == UNTAGGED
    rgb = picture(seed=3)
    path = tmp_path / "c.mp4"
    with VideoWriter(path, 96, 64, 25.0, audio=None, audio_rate=48000,
                     settings=LOSSLESS, colour=(BT709, MPEG, BT709, BT709)) as writer:
        writer.write(rgb)
        writer.write(YuvFrame(decoded(rgb)))
    with av.open(str(path)) as container:
        made = list(container.decode(video=0))
    assert colour_of(made[0]) == (BT709, MPEG, BT709, BT709)
    for frame in made:  # read as tagged, the RGB given
        assert np.abs(frame.to_ndarray(format="rgb24").astype(int) - rgb).mean() < 3


def test_the_reader_gives_decoded_frames_where_they_can_travel(tmp_path: Path) -> None:
    video = make_video(tmp_path / "in.mp4", width=64, height=48, seconds=0.4)
    with VideoReader(video) as reader:
        rgb = [frame for _, frame in reader.frames()]
    with VideoReader(video) as reader:
        pictures = [frame for _, frame in reader.pictures()]
    assert all(isinstance(p, YuvFrame) for p in pictures)
    assert all(np.array_equal(as_rgb(p), r) for p, r in zip(pictures, rgb, strict=True))
    with VideoReader(video, scale=0.5) as reader:
        assert all(isinstance(p, np.ndarray) and p.shape == (24, 32, 3)
                   for _, p in reader.pictures())


def test_a_turned_video_comes_as_rgb(tmp_path: Path) -> None:
    video = make_video(tmp_path / "turned.mp4", width=64, height=48, seconds=0.2, rotation=90)
    with VideoReader(video) as reader:
        pictures = [frame for _, frame in reader.pictures()]
    assert pictures and all(isinstance(p, np.ndarray) and p.shape == (64, 48, 3)
                            for p in pictures)


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_held_frames_turned_to_rgb_keep_no_threads() -> None:
    """A held decoded frame is never reformatted itself: PyAV would keep a swscale context,
    with a thread per core, on each (100 held 1080p template frames: 200 more OS threads)."""
    held = [YuvFrame(decoded(picture(seed=n))) for n in range(40)]
    before = _os_threads()
    for item in held:
        item.rgb()
        item.thumbnail(48, 32)
        item.region(3, 5, 20, 20)
    assert _os_threads() <= before + 1  # at most this thread's converter, once


def test_one_frame_from_two_threads_at_once() -> None:
    """The transplant's threads and the encoder's thread may turn the same decoded frame to RGB
    at once (a frame repeated, or shown as recorded beside a transplanted copy): each gets the
    same pixels, and the frame keeps its colours (PyAV's reformat rewrites them while it runs
    on a frame)."""
    import threading

    item = YuvFrame(decoded(picture(480, 320, seed=4)))
    want = item.rgb()
    wrong: list[str] = []

    def work() -> None:
        for _ in range(30):
            if not np.array_equal(item.rgb(), want):
                wrong.append("rgb")
            if colour_of(item.frame) != item.colour:
                wrong.append("colour")

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_an_nv12_frame_travels_as_its_own_samples(tmp_path: Path) -> None:
    """NVDEC gives nv12 (chroma interleaved): split into yuv420p's planes it is carried with
    every sample as decoded and its colours, and the reader gives it as a YuvFrame."""
    from heygemd.media.yuv import decoded as carried_frame

    source = decoded(picture(seed=5))
    nv12 = source.reformat(format="nv12")
    nv12.colorspace, nv12.color_range = source.colorspace, source.color_range
    nv12.color_primaries, nv12.color_trc = source.color_primaries, source.color_trc
    assert carried(nv12)
    made = carried_frame(nv12)
    assert made.frame.format.name == "yuv420p" and made.colour == colour_of(source)
    assert all(np.array_equal(a, b)
               for a, b in zip(planes(made.frame), planes(source), strict=True))
    video = make_video(tmp_path / "in.mp4", width=96, height=64, seconds=0.2)
    with VideoReader(video) as reader:
        assert isinstance(reader.picture(nv12), YuvFrame)
