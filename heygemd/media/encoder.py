"""Which H.264 encoder makes an MP4 (libx264 on the CPU or NVENC on the GPU), with what options.

``output.encoder`` asks for one: ``auto`` takes NVENC (``h264_nvenc``) where a CUDA device is
present and the encoder opens, else libx264; ``nvenc`` asked for but not opening falls back to
libx264 and says so. The choice (:class:`EncoderChoice`) says which encoder and why, for the
log and report.json. :func:`choose` is the rule, pure given whether CUDA is present and whether
an encoder opens; :func:`encoder_for` asks the machine (a trial open of a tiny encoder).

crf and preset are x264's words; on NVENC they are mapped (:func:`nvenc_options`): rate control
``vbr`` in constant-quality mode (``cq`` = crf, ``b`` = 0: no bitrate target), the nearest to
crf (quality held, bits follow the picture; ``constqp`` would hold the quantiser instead and
spend bits on flat frames); spatial AQ on, as x264 has AQ on by default; 3 B-frames and a
32-frame lookahead (x264 medium: 3 and 40; 32 is NVENC's most); the preset by speed rank
(:data:`NVENC_PRESETS`) with ``tune hq``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import structlog

from heygemd.media.hardware import cuda_present

log = structlog.get_logger(__name__)

X264 = "libx264"
NVENC = "h264_nvenc"

# x264 preset -> NVENC preset of about the same place on the speed/quality scale (p1 fastest)
NVENC_PRESETS = {
    "ultrafast": "p1", "superfast": "p2", "veryfast": "p3", "faster": "p4", "fast": "p4",
    "medium": "p5", "slow": "p6", "slower": "p7",
}
NVENC_LOOKAHEAD = 32  # frames; NVENC's most (x264 medium looks 40 ahead)
NVENC_B_FRAMES = 3  # as x264 medium


@dataclass(frozen=True)
class EncoderChoice:
    """The encoder a video is made with: ``codec`` (FFmpeg's name), its ``options``, what was
    ``asked`` (output.encoder), ``reason`` (plain words: why this one) and whether NVENC was
    wanted (asked for, or tried by auto) and libx264 makes the video instead (``fell_back``)."""

    codec: str
    asked: str
    reason: str
    options: dict[str, str] = field(default_factory=dict)
    fell_back: bool = False

    def summary(self) -> dict[str, str]:
        """What report.json records: name, asked, why."""
        return {"name": self.codec, "asked": self.asked, "why": self.reason}


def x264_options(crf: int, preset: str) -> dict[str, str]:
    """libx264's options for ``crf`` (0-51) and ``preset`` (ultrafast ... slower). A
    template's closed captions are not carried (``a53cc``): frames the engine passes on as
    decoded hold them, new ones do not, so they would come and go."""
    return {"crf": str(crf), "preset": preset, "a53cc": "0"}


def nvenc_options(crf: int, preset: str) -> dict[str, str]:
    """h264_nvenc's options nearest to x264's ``crf`` and ``preset`` (see the module's notes)."""
    return {
        "preset": NVENC_PRESETS[preset], "tune": "hq", "rc": "vbr", "cq": str(crf), "b": "0",
        "spatial-aq": "1", "rc-lookahead": str(NVENC_LOOKAHEAD), "bf": str(NVENC_B_FRAMES),
        "profile": "high", "a53cc": "0", "s12m_tc": "0",  # no captions or timecodes carried
    }


# OpenError: the encoder's error in words (for the log), or None when it opened
OpenError = Callable[[str, dict[str, str]], str | None]


def choose(asked: str, crf: int, preset: str, *, cuda: bool,
           open_error: OpenError) -> tuple[EncoderChoice, str | None]:
    """The encoder for ``asked`` (auto | libx264 | nvenc): (the choice, NVENC's error when it was
    tried and did not open, for the log). ``cuda``: a CUDA device is present; ``open_error``
    tries an encoder with its options. Pure given those two."""
    x264 = x264_options(crf, preset)
    if asked == "libx264":
        return EncoderChoice(X264, asked, "libx264 was asked for", x264), None
    if not cuda:
        if asked == "nvenc":
            return EncoderChoice(X264, asked, "NVENC was asked for, but no CUDA device is "
                                 "present", x264, fell_back=True), None
        return EncoderChoice(X264, asked, "no CUDA device is present", x264), None
    nvenc = nvenc_options(crf, preset)
    error = open_error(NVENC, nvenc)
    if error is None:
        why = ("NVENC was asked for" if asked == "nvenc"
               else "a CUDA device is present and NVENC opened")
        return EncoderChoice(NVENC, asked, why, nvenc), None
    return EncoderChoice(X264, asked, "NVENC could not be opened on this machine's GPU", x264,
                         fell_back=True), error


def open_error(codec: str, options: dict[str, str], width: int, height: int,
               rate: Fraction) -> str | None:
    """Open ``codec`` for yuv420p ``width`` x ``height`` at ``rate`` with ``options`` and close
    it again: None when it opens, else FFmpeg's words (an unknown encoder, no device, no free
    session, a size it refuses)."""
    import av

    try:
        context: Any = av.CodecContext.create(codec, "w")
        context.width, context.height = width, height
        context.pix_fmt = "yuv420p"
        context.time_base = 1 / rate
        context.framerate = rate
        context.options = dict(options)
        context.open()
    except (av.FFmpegError, ValueError) as err:  # ValueError: not in this build of FFmpeg
        return str(err) or type(err).__name__
    del context  # frees the encoder (and its GPU session) now
    return None


# (codec, options, width, height, rate) that opened in this process: not tried again. A
# failure is tried again for the next video (a GPU's encoder sessions may be busy for a while).
_opened: set[tuple[object, ...]] = set()


def encoder_for(asked: str, crf: int, preset: str, width: int, height: int,
                rate: Fraction) -> EncoderChoice:
    """The encoder for a ``width`` x ``height`` video at ``rate`` (even sizes), asked for as
    ``asked``; logs the choice, as a warning where NVENC could not be used. A trial open is
    made until it succeeds once in this process for the size and options."""
    def tried(codec: str, options: dict[str, str]) -> str | None:
        key = (codec, tuple(sorted(options.items())), width, height, rate)
        if key in _opened:
            return None
        error = open_error(codec, options, width, height, rate)
        if error is None:
            _opened.add(key)
        return error

    choice, error = choose(asked, crf, preset, cuda=cuda_present(), open_error=tried)
    if choice.fell_back:
        log.warning("video.encoder_fallback", encoder=choice.codec, asked=asked,
                    why=choice.reason, error=error)
    else:
        log.info("video.encoder", encoder=choice.codec, asked=asked, why=choice.reason)
    return choice
