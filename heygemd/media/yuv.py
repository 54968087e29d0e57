"""A template frame carried through a render as the decoder gave it (8-bit 4:2:0), with only
the pixels an engine changes turned to RGB and back.

A job shows most of each template frame as recorded. Turned whole to RGB and back by the
encoder, a 1080x1920 frame costs 5-9 ms and its picture changes by about a level of luma (the
round trip through 8-bit RGB), which x264 then spends bits and time on: the plain encode of
th10 took 8% more CPU that way. A :class:`YuvFrame` goes to the encoder as decoded
(VideoWriter.write), and :meth:`YuvFrame.changed` writes back only the pixels that differ.

Conversions use FFmpeg's own (swscale), with the frame's colour matrix and range, so a region
turned to RGB here equals the same pixels of the whole frame turned by ``to_ndarray``. They run
on private copies only: PyAV's reformat keeps a swscale context (and its threads) on the frame
it is called on and rewrites that frame's colour fields while it runs, so a decoded frame held
and shared between threads is never reformatted itself; each thread keeps one single-threaded
converter.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

# Pixels (even) turned to RGB around the changed ones when they go back: chroma is one sample a
# 2x2 block, filtered across its neighbours, so those at a block's edge see the frame's own.
MARGIN = 4

# (colorspace, color_range, color_primaries, color_trc), FFmpeg's AVCOL_* numbers
Colour = tuple[int, int, int, int]

_converters = threading.local()  # each thread's own VideoReformatter, made on first use


def convert(frame: Any, **options: Any) -> Any:
    """``frame`` (an av.VideoFrame this thread alone holds) reformatted with ``options``
    (VideoReformatter.reformat's) by this thread's converter, on one thread: a 300x300 block
    took 0.10 ms against 0.42 ms through a converter made for each call."""
    converter = getattr(_converters, "converter", None)
    if converter is None:
        from av.video.reformatter import VideoReformatter

        converter = _converters.converter = VideoReformatter()
    return converter.reformat(frame, threads=1, **options)


def rgb_frame(frame: np.ndarray) -> Any:
    """An RGB uint8 (H, W, 3) array of any strides -> an av.VideoFrame (rgb24), copied into the
    frame's own plane: 1-2 ms a 1080x1920 frame whatever its rows (PyAV's from_ndarray takes
    46 ms on a decoder's padded rows, as at 1080 px wide)."""
    import av

    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected RGB uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    height, width = frame.shape[:2]
    out = av.VideoFrame(width, height, "rgb24")
    plane = out.planes[0]
    rows: np.ndarray = np.ndarray((height, width, 3), np.uint8, buffer=memoryview(plane),
                                  strides=(plane.line_size, 3, 1))
    rows[...] = frame
    return out


def colour_of(frame: Any) -> Colour:
    """A decoded av.VideoFrame's colours (:data:`Colour`)."""
    return (int(frame.colorspace), int(frame.color_range), int(frame.color_primaries),
            int(frame.color_trc))


def carried(frame: Any) -> bool:
    """Whether a decoded av.VideoFrame can travel as a :class:`YuvFrame` (:func:`decoded`):
    8-bit 4:2:0 (what the encoder is given; NVDEC's nv12 holds the same samples) with even
    sides."""
    return (frame.format.name in ("yuv420p", "nv12") and frame.width % 2 == 0
            and frame.height % 2 == 0)


def decoded(frame: Any) -> YuvFrame:
    """A :func:`carried` frame as a YuvFrame; an nv12 frame's interleaved chroma is split into
    yuv420p's planes (the same samples: nothing is lost)."""
    if frame.format.name != "nv12":
        return YuvFrame(frame)
    colour = colour_of(frame)
    out = _blank(colour, frame.width, frame.height)
    luma, chroma = frame.planes[0], frame.planes[1]
    y, u, v = planes(out)
    y[...] = np.ndarray((frame.height, frame.width), np.uint8, buffer=memoryview(luma),
                        strides=(luma.line_size, 1))
    pairs: np.ndarray = np.ndarray((frame.height // 2, frame.width // 2, 2), np.uint8,
                                   buffer=memoryview(chroma), strides=(chroma.line_size, 2, 1))
    u[...], v[...] = pairs[..., 0], pairs[..., 1]
    return YuvFrame(out)


def planes(frame: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 views (Y (H, W), U (H/2, W/2), V) over a yuv420p av.VideoFrame's own planes."""
    out: list[np.ndarray] = []
    for n, plane in enumerate(frame.planes):
        sub = 1 if n == 0 else 2
        out.append(np.ndarray((frame.height // sub, frame.width // sub), np.uint8,
                              buffer=memoryview(plane), strides=(plane.line_size, 1)))
    return out[0], out[1], out[2]


def _blank(colour: Colour, width: int, height: int) -> Any:
    """A new yuv420p av.VideoFrame of (width, height) in ``colour``."""
    import av

    out = av.VideoFrame(width, height, "yuv420p")
    out.colorspace, out.color_range, out.color_primaries, out.color_trc = colour
    return out


class YuvFrame:
    """A decoded yuv420p frame (``frame``, an av.VideoFrame, upright, even sides) standing for
    its RGB uint8 (H, W, 3) picture; ``shape`` is that picture's, ``colour`` its colours (read
    once, here). Never changed or reformatted in place: the decoder may give the same frame
    again, and threads may share it."""

    __slots__ = ("colour", "frame", "shape")

    def __init__(self, frame: Any) -> None:
        if not carried(frame):
            raise ValueError(f"not a carried frame: {frame.format.name} "
                             f"{frame.width}x{frame.height}")
        self.frame = frame
        self.shape = (frame.height, frame.width, 3)
        self.colour = colour_of(frame)

    def rgb(self) -> np.ndarray:
        """The whole picture, RGB uint8 (H, W, 3)."""
        height, width = self.shape[:2]
        return np.asarray(convert(self._block(0, 0, width, height), format="rgb24")
                          .to_ndarray())

    def thumbnail(self, width: int, height: int) -> np.ndarray:
        """The picture shrunk to (width, height) by area, RGB uint8 (height, width, 3)."""
        full_h, full_w = self.shape[:2]
        return np.asarray(convert(self._block(0, 0, full_w, full_h), format="rgb24",
                                  width=width, height=height, interpolation="AREA")
                          .to_ndarray())

    def region(self, x0: int, y0: int, width: int, height: int) -> np.ndarray:
        """RGB uint8 of the picture's [y0:y0+height, x0:x0+width], cut at its edges as numpy
        slicing cuts (x0, y0 >= 0): the pixels ``rgb()`` has there, without turning the rest."""
        full_h, full_w = self.shape[:2]
        x1, y1 = min(x0 + width, full_w), min(y0 + height, full_h)
        if x1 <= x0 or y1 <= y0:
            return np.zeros((max(0, y1 - y0), max(0, x1 - x0), 3), np.uint8)
        bx0, by0, bx1, by1 = self._grown(x0, y0, x1, y1)
        block = convert(self._block(bx0, by0, bx1, by1), format="rgb24").to_ndarray()
        return np.asarray(block[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0])

    def changed(self, x0: int, y0: int, before: np.ndarray, after: np.ndarray) -> YuvFrame:
        """This frame with the RGB pixels ``after`` (h, w, 3) placed at (x0, y0) where they
        differ from ``before`` (what :meth:`region` gave there): a new frame, its other
        pixels exactly as decoded (chroma: each 2x2 block holding a changed pixel is new)."""
        differ = before != after
        moved = differ[..., 0] | differ[..., 1] | differ[..., 2]
        if not moved.any():
            return self
        rows, cols = np.flatnonzero(moved.any(axis=1)), np.flatnonzero(moved.any(axis=0))
        bx0, by0, bx1, by1 = self._grown(x0 + int(cols[0]), y0 + int(rows[0]),
                                         x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)
        block = np.array(convert(self._block(bx0, by0, bx1, by1), format="rgb24").to_ndarray())
        mask = np.zeros(block.shape[:2], bool)
        sy, sx = y0 - by0, x0 - bx0  # where ``after`` starts in the block (may be before it)
        ay0, ax0 = max(0, -sy), max(0, -sx)
        ay1 = min(after.shape[0], block.shape[0] - sy)
        ax1 = min(after.shape[1], block.shape[1] - sx)
        inside = (slice(sy + ay0, sy + ay1), slice(sx + ax0, sx + ax1))
        mask[inside] = moved[ay0:ay1, ax0:ax1]
        np.copyto(block[inside], after[ay0:ay1, ax0:ax1], where=moved[ay0:ay1, ax0:ax1, None])
        return YuvFrame(self._with_block(bx0, by0, block, mask))

    def _grown(self, x0: int, y0: int, x1: int, y1: int) -> tuple[int, int, int, int]:
        """The box [x0, x1) x [y0, y1) grown to whole chroma blocks and MARGIN on each side,
        inside the picture."""
        full_h, full_w = self.shape[:2]
        return (max(0, x0 - x0 % 2 - MARGIN), max(0, y0 - y0 % 2 - MARGIN),
                min(full_w, x1 + x1 % 2 + MARGIN), min(full_h, y1 + y1 % 2 + MARGIN))

    def _block(self, x0: int, y0: int, x1: int, y1: int) -> Any:
        """A new av.VideoFrame of the picture's [y0:y1, x0:x1] (even bounds), in its colours."""
        out = _blank(self.colour, x1 - x0, y1 - y0)
        for n, (src, dst) in enumerate(zip(planes(self.frame), planes(out), strict=True)):
            sub = 1 if n == 0 else 2
            dst[...] = src[y0 // sub : y1 // sub, x0 // sub : x1 // sub]
        return out

    def _with_block(self, x0: int, y0: int, block: np.ndarray, mask: np.ndarray) -> Any:
        """A copy of the frame with RGB ``block`` (h, w, 3, even sides, at even x0, y0) turned
        to 4:2:0 and written where ``mask`` (h, w) is set: luma per pixel, chroma per 2x2
        block that holds a masked pixel."""
        frame = self.frame
        turned = convert(rgb_frame(block), format="yuv420p", dst_colorspace=self.colour[0],
                         dst_color_range=self.colour[1])
        out = _blank(self.colour, frame.width, frame.height)
        blocks = mask[0::2, 0::2] | mask[1::2, 0::2] | mask[0::2, 1::2] | mask[1::2, 1::2]
        for n, (src, new, dst) in enumerate(zip(planes(frame), planes(turned), planes(out),
                                                 strict=True)):
            dst[...] = src
            sub = 1 if n == 0 else 2
            where = mask if n == 0 else blocks
            part = dst[y0 // sub : y0 // sub + where.shape[0],
                       x0 // sub : x0 // sub + where.shape[1]]
            np.copyto(part, new, where=where)
        return out


# An engine's output frame: RGB uint8 (H, W, 3), or a decoded frame standing for one where the
# caller takes them (RenderRequest.yuv_frames).
Picture = np.ndarray | YuvFrame


def as_rgb(picture: Picture) -> np.ndarray:
    """RGB uint8 (H, W, 3) of either kind of output frame (an array as it is)."""
    return picture.rgb() if isinstance(picture, YuvFrame) else picture


def region_of(picture: Picture, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """RGB uint8 of either kind's [y0:y0+height, x0:x0+width] (x0, y0 >= 0; cut at the
    picture's edges): an array's own view, or a YuvFrame's region turned alone."""
    if isinstance(picture, YuvFrame):
        return picture.region(x0, y0, width, height)
    return picture[y0 : y0 + height, x0 : x0 + width]


def with_pixels(picture: Picture, x0: int, y0: int, before: np.ndarray,
                after: np.ndarray) -> Picture:
    """A copy of either kind with RGB ``after`` (h, w, 3) at (x0, y0), where ``before`` is what
    :func:`region_of` gave there (a YuvFrame keeps every pixel ``after`` leaves as it was:
    :meth:`YuvFrame.changed`)."""
    if isinstance(picture, YuvFrame):
        return picture.changed(x0, y0, before, after)
    out = picture.copy()
    out[y0 : y0 + after.shape[0], x0 : x0 + after.shape[1]] = after
    return out
