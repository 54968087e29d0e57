"""HDR pictures (HLG, PQ) become SDR BT.709 frames as they are decoded: the mapping's published
anchor points, the tables against the exact curves, and whole videos read back as the SDR
pictures they were made from."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from heygemd.media import hdr
from heygemd.media.video import VideoReader
from heygemd.media.yuv import YuvFrame, as_rgb
from tests.mediagen import make_hdr_video


def _patches(colours: np.ndarray, side: int = 32, across: int = 4) -> np.ndarray:
    rows = -(-len(colours) // across)
    picture = np.zeros((rows * side, across * side, 3), np.uint8)
    for k, colour in enumerate(colours):
        y, x = divmod(k, across)
        picture[y * side:(y + 1) * side, x * side:(x + 1) * side] = colour
    return picture


def test_reference_white_is_where_bt2408_puts_it() -> None:
    """HLG's 75% signal and PQ's 58% are HDR reference white (203 nits): SDR's 100%."""
    grey = np.full((1, 3), 0.75, np.float32)
    assert hdr.display_light(grey, hdr.HLG)[0] == pytest.approx([1.0] * 3, abs=0.01)
    grey = np.full((1, 3), 0.5807, np.float32)
    assert hdr.display_light(grey, hdr.PQ)[0] == pytest.approx([1.0] * 3, abs=0.01)
    # below the knee light passes as it is; above it is rolled off under SDR white
    assert hdr.roll_off(np.array([[0.5, 0.2, 0.1]]))[0] == pytest.approx([0.5, 0.2, 0.1])
    top = hdr.roll_off(np.array([[1.5, 0.6, 0.3]]))[0]
    assert 0.95 < top.max() < 1.0 and top[1] / top[0] == pytest.approx(0.4)
    assert hdr.roll_off(np.array([[40.0, 1.0, 0.0]]))[0].max() <= 1.0


def _pq_signal(nits: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084's inverse EOTF, from its published constants."""
    y = np.power(np.asarray(nits, np.float64) / 10000.0, 0.1593017578125)
    return np.power((0.8359375 + 18.8515625 * y) / (1 + 18.6875 * y), 78.84375)


def test_published_levels_come_out_where_bt1886_puts_them() -> None:
    """100 nits of grey (PQ 50.8%; HLG 63.0% on a 1000-nit display, BT.2100) is 100/203 of
    SDR white in light, below the knee: SDR signal (100/203)^(1/2.4) = 0.7445."""
    expected = (100 / 203) ** (1 / 2.4)
    for signal, transfer in ((_pq_signal(np.array(100.0)), hdr.PQ), (0.6296, hdr.HLG)):
        grey = np.full((1, 3), signal, np.float32)
        assert hdr.sdr_rgb(grey, transfer)[0] == pytest.approx([expected] * 3, abs=0.003)


def test_bt709_red_stays_pure_red() -> None:
    """BT.709's red primary in BT.2020 light is (0.6274, 0.0691, 0.0164) (ITU-R BT.2087's
    matrix): carried as PQ, it comes back as SDR red alone, at BT.1886's level."""
    light = 0.3 * np.array([0.6274, 0.0691, 0.0164])  # of SDR white
    signal = _pq_signal(light * 203.0)[None, :].astype(np.float32)
    r, g, b = hdr.sdr_rgb(signal, hdr.PQ)[0]
    assert r == pytest.approx(0.3 ** (1 / 2.4), abs=0.003)
    assert g < 0.01 and b < 0.01


def test_a_catch_light_and_fine_lines_keep_their_own_pixels() -> None:
    """In grey, each pixel is mapped alone: a bright pixel (an eye's catch-light) leaves its
    block's neighbours as they are, and one-pixel lines come out as their own levels."""
    convert = hdr.SdrFrames(hdr.PQ)
    frame = av.VideoFrame(8, 8, "yuv420p10le")
    frame.colorspace, frame.color_range, frame.color_primaries, frame.color_trc = 9, 1, 9, 16
    luma = np.full((8, 8), 500, np.uint16)
    luma[2, 2] = 940  # peak white in a mid-grey block
    luma[:, 5] = 64  # a black line beside
    luma[:, 6] = 940  # and a white one, in the same blocks
    planes = [np.ndarray(shape, np.uint16, buffer=memoryview(p), strides=(p.line_size, 2))
              for shape, p in zip(((8, 8), (4, 4), (4, 4)), frame.planes, strict=True)]
    planes[0][...] = luma
    planes[1][...] = planes[2][...] = 512
    out = convert(frame)
    y8 = np.ndarray((8, 8), np.uint8, buffer=memoryview(out.planes[0]),
                    strides=(out.planes[0].line_size, 1)).astype(int)
    alone = {v: int(np.rint(16 + 219 * convert._grey(False)[v << 6])) for v in (64, 500, 940)}
    assert y8[2, 3] == y8[3, 2] == y8[3, 3] == y8[0, 0] == alone[500]
    assert y8[2, 2] == alone[940]
    assert (y8[:, 5] == alone[64]).all() and (y8[:, 6] == alone[940]).all()


@pytest.mark.parametrize("transfer", [hdr.HLG, hdr.PQ])
def test_the_tables_give_the_exact_mapping(transfer: int) -> None:
    signals = np.random.default_rng(2).uniform(0.0, 1.0, (20000, 3)).astype(np.float32)
    exact = hdr.sdr_rgb(signals, transfer)
    fast = np.stack(hdr.SdrFrames(transfer).mapped(*signals.T), axis=-1)
    assert np.abs(fast - exact).max() < 1.0 / 255


@pytest.mark.parametrize("transfer", [hdr.HLG, hdr.PQ])
def test_an_hdr_video_reads_as_the_sdr_picture_it_shows(tmp_path: Path, transfer: int) -> None:
    """Colours made HDR as BT.2408 does come back within a few levels, as BT.709 frames that
    travel decoded (YuvFrames); the HDR signal taken for SDR would be up to 55 (HLG) and 90
    (PQ) levels off."""
    colours = np.random.default_rng(1).integers(10, 220, (12, 3))
    picture = _patches(colours)
    path = make_hdr_video(tmp_path / "hdr.mkv", [picture] * 3, transfer)
    with VideoReader(path) as reader:
        frames = [frame for _, frame in reader.pictures(as_yuv=True)]
    assert len(frames) == 3
    assert all(isinstance(f, YuvFrame) and f.colour == hdr.BT709_LIMITED for f in frames)
    rgb = as_rgb(frames[0]).astype(np.float64)
    for k, colour in enumerate(colours):
        y, x = divmod(k, 4)
        inner = rgb[y * 32 + 4:(y + 1) * 32 - 4, x * 32 + 4:(x + 1) * 32 - 4]
        assert np.abs(inner.reshape(-1, 3).mean(axis=0) - colour).max() <= 4, (k, colour)


def test_fine_luma_detail_survives(tmp_path: Path) -> None:
    """A grey ramp of one level a column keeps every step (the luma of each pixel is mapped,
    not only its block's)."""
    ramp = np.repeat(np.repeat(np.arange(60, 124, dtype=np.uint8)[None, :, None], 16, axis=0),
                     3, axis=2)
    path = make_hdr_video(tmp_path / "ramp.mkv", [ramp], hdr.HLG)
    with VideoReader(path) as reader:
        frame = next(iter(reader))
    row = frame[8, :, 1].astype(int)
    assert np.abs(row - np.arange(60, 124)).max() <= 2
    # monotonic, and the two columns of a 2x2 block apart (one value a block: 32 at most)
    assert (np.diff(row) >= 0).all() and len(np.unique(row)) > 40


def test_nvdec_p010_and_odd_sides_are_taken(tmp_path: Path) -> None:
    """NVDEC gives 10-bit HEVC as p010le: the same SDR frame as from yuv420p10le. A frame of
    odd sides keeps its size; a grey one stays grey."""
    path = make_hdr_video(tmp_path / "grey.mkv", [np.full((8, 10, 3), 150, np.uint8)], hdr.HLG)
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    convert = hdr.SdrFrames(hdr.HLG)
    ten = convert(frame)
    p010 = convert(frame.reformat(format="p010le"))
    assert np.array_equal(ten.to_ndarray(), p010.to_ndarray())
    odd = frame.reformat(width=7, height=5)
    out = convert(odd)
    assert (out.width, out.height, out.format.name) == (7, 5, "yuv420p")
    rgb = out.to_ndarray(format="rgb24").astype(int)
    assert np.abs(rgb - 150).max() <= 3


def test_sdr_ten_bit_video_is_not_converted(tmp_path: Path) -> None:
    """Only HLG and PQ are HDR: a 10-bit BT.709 video comes as RGB through swscale, as always
    (not as a converted BT.709 4:2:0 frame)."""
    assert not hdr.is_hdr(1) and not hdr.is_hdr(14) and not hdr.is_hdr(None)
    path = make_hdr_video(tmp_path / "sdr10.mkv", [np.full((8, 10, 3), 150, np.uint8)], 1)
    with av.open(str(path)) as container:
        raw = next(container.decode(video=0))
    assert raw.format.name == "yuv420p10le" and raw.color_trc == 1
    with VideoReader(path) as reader:
        [(_, frame)] = list(reader.pictures(as_yuv=True))
    assert isinstance(frame, np.ndarray)
    assert np.array_equal(frame, raw.to_ndarray(format="rgb24"))


def test_an_hdr_video_read_backwards_is_held_as_its_sdr_frames(tmp_path: Path) -> None:
    """A backward run (a ping-pong template) holds HDR frames as their SDR 4:2:0 frames and
    gives what a forward read gives, each frame turned once."""
    from heygemd.media.video import read_range_backwards

    pictures = [np.full((16, 16, 3), 40 + 12 * i, np.uint8) for i in range(10)]
    path = make_hdr_video(tmp_path / "run.mkv", pictures, hdr.HLG)
    with VideoReader(path) as reader:
        forward = [as_rgb(p) for _, p in reader.pictures(as_yuv=True)]
    turned: list[int] = []
    real = hdr.SdrFrames.__call__

    def counted(self: hdr.SdrFrames, frame: av.VideoFrame) -> av.VideoFrame:
        turned.append(1)
        return real(self, frame)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hdr.SdrFrames, "__call__", counted)
        backward = list(read_range_backwards(path, 2, 9, as_yuv=True))
    assert [i for i, _ in backward] == list(range(8, 1, -1))
    assert all(isinstance(p, YuvFrame) for _, p in backward)
    assert all(np.array_equal(as_rgb(p), forward[i]) for i, p in backward)
    assert len(turned) == 7


def _ten_bit(luma: np.ndarray, u: float, v: float, transfer: int) -> av.VideoFrame:
    """A limited-range yuv420p10le BT.2020 frame of 10-bit ``luma`` codes under one chroma."""
    h, w = luma.shape
    frame = av.VideoFrame(w, h, "yuv420p10le")
    frame.colorspace, frame.color_range, frame.color_primaries, frame.color_trc = 9, 1, 9, transfer
    for plane, values in zip(frame.planes, (luma, np.full((h // 2, w // 2), u),
                                            np.full((h // 2, w // 2), v)), strict=True):
        rows: np.ndarray = np.ndarray(values.shape, np.uint16, buffer=memoryview(plane),
                                      strides=(plane.line_size, 2))
        rows[...] = np.rint(values)
    return frame


def _lumas(frame: av.VideoFrame, transfer: int) -> tuple[np.ndarray, np.ndarray]:
    """(SdrFrames' 8-bit luma, the exact mapping's: each pixel with its block's chroma)."""
    h, w = frame.height, frame.width
    wide = frame.reformat(format="yuv420p16le")
    y16, u16, v16 = (np.ndarray(shape, np.uint16, buffer=memoryview(p),
                                strides=(p.line_size, 2)).astype(np.float64)
                     for shape, p in zip(((h, w), (h // 2, w // 2), (h // 2, w // 2)),
                                         wide.planes, strict=True))
    luma = (y16 - 4096) / 56064
    cb, cr = (np.repeat(np.repeat((c - 32768) / 57344, 2, axis=0), 2, axis=1) for c in (u16, v16))
    r, b = luma + 2 * (1 - 0.2627) * cr, luma + 2 * (1 - 0.0593) * cb
    g = (luma - 0.2627 * r - 0.0593 * b) / 0.6780
    exact = hdr.sdr_rgb(np.clip(np.stack([r, g, b], axis=-1), 0, 1).astype(np.float32), transfer)
    expected = np.rint(16 + 219 * (exact @ np.array([0.2126, 0.7152, 0.0722], np.float32)))
    out = hdr.SdrFrames(transfer)(frame)
    got = np.ndarray((h, w), np.uint8, buffer=memoryview(out.planes[0]),
                     strides=(out.planes[0].line_size, 1)).astype(int)
    return got, expected


@pytest.mark.parametrize("transfer", [hdr.HLG, hdr.PQ])
def test_one_pixel_stripes_under_a_saturated_colour_keep_their_lumas(
    tmp_path: Path, transfer: int
) -> None:
    """White text on a blue bar, one pixel wide: each 2x2 block holds both, under one chroma.
    Each pixel's luma is what the exact mapping gives it with its block's chroma (mapped at the
    block's mean luma alone, these are 41 levels off on average)."""
    picture = np.full((16, 16, 3), 255, np.uint8)
    picture[:, ::2] = (30, 60, 230)
    path = make_hdr_video(tmp_path / "stripes.mkv", [picture], transfer)
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    got, expected = _lumas(frame, transfer)
    assert np.abs(got - expected).max() <= 1


def test_four_lumas_a_block_are_closer_and_the_spread_threshold_is_smooth() -> None:
    """Blocks of four different lumas under a saturated colour come out nearer the exact
    mapping than their mean's shift alone puts them (mean 17 levels off there), and an edge
    whose spread crosses SPREAD (a stripe 3 codes brighter) does not jump."""
    ramp = np.tile(np.array([[0.0, 1.0], [2.0, 3.0]]), (8, 8)) / 3 * 750 + 150
    got, expected = _lumas(_ten_bit(ramp, 900, 380, hdr.HLG), hdr.HLG)
    assert np.abs(got - expected).mean() < 12
    for mid in range(200, 850, 50):
        under, over = (
            _lumas(_ten_bit(np.where(np.arange(16) % 2 == 0, mid, mid + step)[None, :]
                            .repeat(16, axis=0).astype(float), 700, 430, hdr.HLG), hdr.HLG)[0]
            for step in (69, 72))  # SPREAD is 70.08 codes of the limited range
        assert np.abs(under - over).max() <= 3, mid
