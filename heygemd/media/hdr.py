"""HDR video shown in SDR: HLG or PQ pictures in BT.2020 colours (what phones record by
default) become 8-bit 4:2:0 BT.709 frames as pictures are made of them (VideoReader.sdr), so
everything after the decoder (faces, the render, the encoder) sees an ordinary video and the
output (SDR, tagged BT.709) keeps the original's contrast and colours. Read as SDR, the HDR
signal looks flat and pale: test colours come out up to 55 levels off (HLG), 90 (PQ).

The mapping (:func:`sdr_rgb`, pure): the signal to display light (HLG: its inverse OETF and a
1000-nit display's OOTF; PQ: its EOTF), HDR reference white (203 nits, ITU-R BT.2408) made SDR's
100%, BT.2020 primaries to BT.709's in linear light, highlights above :data:`KNEE` of SDR white
rolled off to reach it at PEAK_NITS (on the largest of R, G and B, so hues stay), colours
outside BT.709 clipped, then BT.709's signal (BT.1886's 2.4 gamma). :class:`SdrFrames`
applies it to a frame's 2x2 blocks (one chroma sample each): each block's colour is mapped
exactly at the block's mean luma (at its lowest and highest where its lumas spread apart), and
each of its four luma samples through the mapping of grey, shifted by what the block's colour
does to luma there.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

HLG, PQ = 18, 16  # FFmpeg's AVCOL_TRC_ARIB_STD_B67, AVCOL_TRC_SMPTE2084
BT709_LIMITED = (1, 1, 1, 1)  # (matrix, range, primaries, transfer): what the frames become
REFERENCE_WHITE_NITS = 203.0  # HDR's graphics white (ITU-R BT.2408): SDR's 100%
HLG_DISPLAY_NITS = 1000.0  # the display HLG's OOTF is taken for (system gamma 1.2)
# SDR linear light from which highlights are rolled off, so that PEAK_NITS reaches SDR white:
# HDR reference white shows at 0.85 (8-bit 239), twice it at 0.99 (254)
KNEE = 0.6
PEAK_NITS = 1000.0  # the brightest light kept apart (HLG's display; PQ's usual mastering)
# A 2x2 block whose lumas spread over more than this (of the signal's range) is mapped at its
# lowest and highest luma too, fully from twice it (SdrFrames._spread_blocks): 0.9% of the
# blocks of th10 made HLG, 1.0% with film grain of 8 codes, 2.3% with 16
SPREAD = 0.08
SDR_GAMMA = 2.4  # BT.1886

# linear-light RGB, BT.2020 primaries -> BT.709 primaries (ITU-R BT.2087)
BT2020_TO_BT709 = np.array([[1.6605, -0.5876, -0.0728],
                            [-0.1246, 1.1329, -0.0083],
                            [-0.0182, -0.1006, 1.1187]], np.float32)
BT2020_LUMA = (0.2627, 0.6780, 0.0593)
BT709_LUMA = (0.2126, 0.7152, 0.0722)

_HLG_A, _HLG_B, _HLG_C = 0.17883277, 0.28466892, 0.55991073
_PQ_M1, _PQ_M2 = 2610 / 16384, 2523 / 4096 * 128
_PQ_C1, _PQ_C2, _PQ_C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32


def is_hdr(transfer: int | None) -> bool:
    """Whether a stream or frame of this transfer characteristic (FFmpeg's number) is HDR."""
    return transfer in (HLG, PQ)


def hlg_scene_light(signal: np.ndarray) -> np.ndarray:
    """HLG's inverse OETF (ITU-R BT.2100): signal [0, 1] -> scene light [0, 1]."""
    e = np.clip(signal, 0.0, 1.0)
    low = e * e / 3.0
    high = (np.exp((e - _HLG_C) / _HLG_A) + _HLG_B) / 12.0
    return np.where(e <= 0.5, low, high).astype(np.float32)


def pq_nits(signal: np.ndarray) -> np.ndarray:
    """PQ's EOTF (SMPTE ST 2084): signal [0, 1] -> display light in nits."""
    p = np.power(np.clip(signal, 0.0, 1.0), 1.0 / _PQ_M2)
    return (10000.0 * np.power(np.maximum(p - _PQ_C1, 0.0) / (_PQ_C2 - _PQ_C3 * p),
                               1.0 / _PQ_M1)).astype(np.float32)


def display_light(rgb: np.ndarray, transfer: int) -> np.ndarray:
    """R'G'B' signals (..., 3) of ``transfer`` (HLG or PQ) -> display light (..., 3), 1.0 at
    HDR reference white."""
    if transfer == HLG:
        scene = hlg_scene_light(rgb)
        luma = np.maximum(scene @ np.array(BT2020_LUMA, np.float32), 1e-6)
        nits = HLG_DISPLAY_NITS * np.power(luma, 0.2)[..., None] * scene  # OOTF, gamma 1.2
    elif transfer == PQ:
        nits = pq_nits(rgb)
    else:
        raise ValueError(f"not an HDR transfer: {transfer}")
    return (nits / REFERENCE_WHITE_NITS).astype(np.float32)


@functools.cache
def _shoulder_rate() -> float:
    """The rate ``a`` of the roll-off k + (1 - k)(1 - e^(-a (x - k))) / (1 - e^(-a (p - k)))
    whose slope at the knee k is 1 (p: PEAK_NITS over reference white)."""
    span, reach = 1.0 - KNEE, PEAK_NITS / REFERENCE_WHITE_NITS - KNEE
    rate = 1.0 / span
    for _ in range(50):  # fixed point of rate = (1 - e^(-rate * reach)) / span
        rate = (1.0 - np.exp(-rate * reach)) / span
    return float(rate)


def rolled(peak: np.ndarray) -> np.ndarray:
    """The roll-off of the largest of R, G, B (linear, 1.0 at SDR white): as it is up to
    KNEE, then an exponential shoulder, slope 1 at the knee, reaching 1.0 at PEAK_NITS
    (beyond it: 1.0)."""
    rate = _shoulder_rate()
    reach = PEAK_NITS / REFERENCE_WHITE_NITS - KNEE
    over = np.clip(peak - KNEE, 0.0, reach)
    shoulder = KNEE + (1.0 - KNEE) * (1.0 - np.exp(-rate * over)) / (1.0 - np.exp(-rate * reach))
    return np.where(peak > KNEE, shoulder, peak)


def roll_off(linear: np.ndarray) -> np.ndarray:
    """Linear RGB (..., 3), 1.0 at SDR white and beyond it -> within [0, 1]: the largest of R,
    G, B through :func:`rolled`, the three scaled alike (hues kept)."""
    rgb = np.maximum(linear, 0.0)
    peak = rgb.max(axis=-1, keepdims=True)
    return (rgb * (rolled(peak) / np.maximum(peak, 1e-6))).astype(np.float32)


def sdr_rgb(rgb: np.ndarray, transfer: int) -> np.ndarray:
    """HDR R'G'B' signals (..., 3) in BT.2020 -> SDR R'G'B' (..., 3) in BT.709, within [0, 1]."""
    linear = display_light(rgb, transfer) @ BT2020_TO_BT709.T
    return np.power(np.clip(roll_off(linear), 0.0, 1.0), 1.0 / SDR_GAMMA).astype(np.float32)


def _ycbcr_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray,
                  luma: tuple[float, float, float]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y'CbCr planes (Y' in [0, 1], Cb and Cr in [-0.5, 0.5]) -> R', G', B' planes."""
    kr, kg, kb = luma
    r = y + 2.0 * (1.0 - kr) * cr
    b = y + 2.0 * (1.0 - kb) * cb
    return r, (y - kr * r - kb * b) / kg, b


def _rgb_to_ycbcr(r: np.ndarray, g: np.ndarray, b: np.ndarray,
                  luma: tuple[float, float, float]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R', G', B' planes -> Y', Cb, Cr planes."""
    kr, kg, kb = luma
    y = kr * r + kg * g + kb * b
    return y, (b - y) / (2.0 * (1.0 - kb)), (r - y) / (2.0 * (1.0 - kr))


class SdrFrames:
    """Decoded HDR av.VideoFrames (any YUV format FFmpeg can bring to 4:2:0, e.g. yuv420p10le
    or NVDEC's p010le) -> yuv420p BT.709 av.VideoFrames of the same size and time (odd sides:
    the last row or column is a block of its own, as in FFmpeg's 4:2:0). :func:`sdr_rgb`'s
    curves are read from tables of 65536 levels (a 1080x1920 frame of natural footage in about
    40 ms on a quiet 2-core VM, of noise 3.4 times that)."""

    LEVELS = 1 << 16

    def __init__(self, transfer: int) -> None:
        if not is_hdr(transfer):
            raise ValueError(f"not an HDR transfer: {transfer}")
        self.transfer = transfer
        levels = np.arange(self.LEVELS, dtype=np.float32) / (self.LEVELS - 1)
        self._greys: dict[bool, np.ndarray] = {}  # full range? -> 16-bit luma code -> SDR luma
        self._gain: np.ndarray | None = None
        if transfer == HLG:
            self._light = hlg_scene_light(levels)  # signal -> scene light
            # scene luma -> the OOTF's gain, in units of HDR reference white
            self._gain = (HLG_DISPLAY_NITS / REFERENCE_WHITE_NITS
                          * np.power(np.maximum(levels, 1e-6), 0.2)).astype(np.float32)
        else:
            self._light = pq_nits(levels) / REFERENCE_WHITE_NITS
        # SDR's encoding, read at the square root of linear light (fine steps near black)
        self._signal = np.power(levels, 2.0 / SDR_GAMMA).astype(np.float32)

    def _grey(self, full: bool) -> np.ndarray:
        """The mapping of grey (a luma code of yuv420p16le -> SDR luma), in that range."""
        if full not in self._greys:
            codes = np.arange(self.LEVELS, dtype=np.float32)
            signal = codes / 65535.0 if full else (codes - 16.0 * 256) / (219.0 * 256)
            self._greys[full] = sdr_rgb(np.repeat(np.clip(signal, 0.0, 1.0)[:, None], 3, axis=1),
                                        self.transfer)[:, 0].copy()
        return self._greys[full]

    def _table(self, table: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``table`` read at ``values`` in [0, 1] (clipped), to the nearest level."""
        index = values * float(self.LEVELS - 1) + 0.5
        np.clip(index, 0.0, float(self.LEVELS - 1), out=index)
        return table[index.astype(np.int32)]

    def mapped(self, r: np.ndarray, g: np.ndarray, b: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:func:`sdr_rgb` of R'G'B' signal planes, through the tables."""
        r, g, b = self._table(self._light, r), self._table(self._light, g), \
            self._table(self._light, b)
        if self._gain is not None:
            kr, kg, kb = BT2020_LUMA
            gain = self._table(self._gain, kr * r + kg * g + kb * b)
            r, g, b = r * gain, g * gain, b * gain
        m = BT2020_TO_BT709
        out = [np.maximum(m[i, 0] * r + m[i, 1] * g + m[i, 2] * b, 0.0) for i in range(3)]
        peak = np.maximum(np.maximum(out[0], out[1]), out[2])
        over = np.flatnonzero(peak > KNEE)
        if len(over):
            top = peak.ravel()[over]
            factor = rolled(top) / top
            for plane in out:
                plane.ravel()[over] *= factor
        r, g, b = (self._table(self._signal, np.sqrt(plane)) for plane in out)
        return r, g, b

    def __call__(self, frame: Any) -> Any:
        import av

        width, height = frame.width, frame.height
        full = frame.color_range == 2  # JPEG (full) range, else MPEG (limited)
        wide = frame.reformat(format="yuv420p16le") if frame.format.name != "yuv420p16le" \
            else frame
        y16, u16, v16 = _planes(wide, np.uint16)
        scale, offset = (65535.0, 0.0) if full else (219.0 * 256, 16.0 * 256)
        c_scale = 65535.0 if full else 224.0 * 256
        luma = (y16.astype(np.float32) - offset) / scale
        cb = (u16.astype(np.float32) - 32768.0) / c_scale
        cr = (v16.astype(np.float32) - 32768.0) / c_scale
        mean = _block_mean(luma)
        r, g, b = _ycbcr_to_rgb(mean, cb, cr, BT2020_LUMA)
        y_block, cb_out, cr_out = _rgb_to_ycbcr(*self.mapped(r, g, b), BT709_LUMA)
        # each pixel's luma mapped as grey's, shifted by what its block's colour does to the
        # luma at the block's own level (nothing for a grey block: a catch-light stays its own)
        grey = self._grey(full)
        y_out = grey[y16]
        level = np.rint(_block_mean(y16.astype(np.float32))).astype(np.int32)
        shift = y_block - grey[level]
        _add_blockwise(y_out, shift)
        self._spread_blocks(y_out, luma, (mean, shift), cb, cr, grey, (scale, offset))
        out = av.VideoFrame(width, height, "yuv420p")
        out.colorspace, out.color_range, out.color_primaries, out.color_trc = BT709_LIMITED
        y8, u8, v8 = _planes(out, np.uint8)
        y8[...] = np.clip(np.rint(16.0 + 219.0 * y_out), 16, 235)
        u8[...] = np.clip(np.rint(128.0 + 224.0 * cb_out), 16, 240)
        v8[...] = np.clip(np.rint(128.0 + 224.0 * cr_out), 16, 240)
        out.pts = frame.pts
        if frame.time_base is not None:
            out.time_base = frame.time_base
        return out

    def _spread_blocks(self, y_out: np.ndarray, luma: np.ndarray,
                       at_mean: tuple[np.ndarray, np.ndarray], cb: np.ndarray, cr: np.ndarray,
                       grey: np.ndarray, coding: tuple[float, float]) -> None:
        """Blocks whose four lumas spread over more than SPREAD (one-pixel edges under a
        saturated colour, as text on a coloured bar): the colour's shift is found at the
        block's lowest and highest luma too, and each pixel's shift in ``y_out`` is taken
        along lowest, mean and highest by its own luma. ``at_mean``: each block's mean luma and
        the shift found there (what ``y_out`` holds). The change is phased in over spreads of
        SPREAD to twice it, so an edge whose spread crosses SPREAD does not jump. ``coding``:
        the 16-bit luma codes' scale and offset."""
        rows, cols = luma.shape[0] // 2, luma.shape[1] // 2
        subs = [luma[dy : 2 * rows : 2, dx : 2 * cols : 2] for dy in (0, 1) for dx in (0, 1)]
        low = np.minimum(np.minimum(subs[0], subs[1]), np.minimum(subs[2], subs[3]))
        high = np.maximum(np.maximum(subs[0], subs[1]), np.maximum(subs[2], subs[3]))
        by, bx = np.nonzero(high - low > SPREAD)
        if not len(by):
            return
        low, high = low[by, bx], high[by, bx]
        mid, at_mid = at_mean[0][by, bx], at_mean[1][by, bx]
        weight = np.minimum((high - low - SPREAD) / SPREAD, 1.0)
        ends = []
        for level in (low, high):
            mapped = self.mapped(*_ycbcr_to_rgb(level, cb[by, bx], cr[by, bx], BT2020_LUMA))
            code = np.clip(np.rint(level * coding[0] + coding[1]), 0, 65535).astype(np.int32)
            ends.append(_rgb_to_ycbcr(*mapped, BT709_LUMA)[0] - grey[code])
        for dy in (0, 1):
            for dx in (0, 1):
                py, px = 2 * by + dy, 2 * bx + dx
                own = luma[py, px]
                lower = own <= mid  # the mean lies strictly between lowest and highest
                along = np.where(
                    lower,
                    ends[0] + (own - low) / (mid - low) * (at_mid - ends[0]),
                    at_mid + (own - mid) / (high - mid) * (ends[1] - at_mid))
                y_out[py, px] += weight * (along - at_mid)


def _planes(frame: Any, dtype: type[np.generic]) -> list[np.ndarray]:
    """Views over a 4:2:0 planar av.VideoFrame's Y, U and V planes of ``dtype`` samples (the
    chroma planes' sides rounded up, as FFmpeg's are)."""
    size = np.dtype(dtype).itemsize
    views: list[np.ndarray] = []
    for n, plane in enumerate(frame.planes):
        shape = (frame.height, frame.width) if n == 0 else \
            ((frame.height + 1) // 2, (frame.width + 1) // 2)
        views.append(np.ndarray(shape, dtype, buffer=memoryview(plane),
                                strides=(plane.line_size, size)))
    return views


def _block_mean(plane: np.ndarray) -> np.ndarray:
    """The mean of each 2x2 block of (H, W) (a last odd row or column averaged alone)."""
    h, w = plane.shape
    if h % 2 or w % 2:
        plane = np.pad(plane, ((0, h % 2), (0, w % 2)), mode="edge")
    return (plane[0::2, 0::2] + plane[1::2, 0::2] + plane[0::2, 1::2] + plane[1::2, 1::2]) * 0.25


def _add_blockwise(plane: np.ndarray, blocks: np.ndarray) -> None:
    """Add each value of ``blocks`` to its 2x2 pixels of ``plane`` (H, W), in place."""
    h, w = plane.shape
    inner = blocks[: h // 2, : w // 2]
    for dy in (0, 1):
        for dx in (0, 1):
            plane[dy : h - h % 2 : 2, dx : w - w % 2 : 2] += inner
    if h % 2:
        plane[-1, : w - w % 2] += np.repeat(blocks[-1, : w // 2], 2)
    if w % 2:
        plane[: h - h % 2, -1] += np.repeat(blocks[: h // 2, -1], 2)
    if h % 2 and w % 2:
        plane[-1, -1] += blocks[-1, -1]
