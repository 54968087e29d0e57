"""The GPU's video engines, where a CUDA device is present: NVDEC decoders (FFmpeg's ``*_cuvid``)
for :class:`heygemd.media.video.VideoReader`; :mod:`heygemd.media.encoder` asks
:func:`cuda_present` too.

A hardware decoder that does not open (no CUDA device, no driver, a GPU without that codec) is
said once per process and decoder in the log; readers then decode in software by themselves.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

# FFmpeg's NVDEC decoder for each codec, and the pixel formats it decodes (8/10-bit 4:2:0)
HW_DECODERS = {"h264": "h264_cuvid", "hevc": "hevc_cuvid"}
HW_PIXEL_FORMATS = {"h264": {"yuv420p", "yuvj420p"},
                    "hevc": {"yuv420p", "yuvj420p", "yuv420p10le"}}
# profiles NVDEC does not decode, even where the pixel format is 4:2:0: lossless H.264 (x264 at
# crf 0 writes High 4:4:4 Predictive for yuv420p), H.264's 10-bit and 4:2:2 profiles, HEVC's
# range extensions
HW_REFUSED_PROFILES = {"h264": ("4:4:4", "4:2:2", "High 10"), "hevc": ("Rext",)}

# decoder -> why it could not be used, so that it is said (and tried) once per process
_unavailable: dict[str, str] = {}
_said_using: set[str] = set()


# Where a GPU shows itself as a device (patterns under /): an NVIDIA card (its nodes, its
# driver), one under WSL2; and the others a torch build can run on: AMD's ROCm (its kernel
# driver's node) and NVIDIA Jetson (no /dev/nvidia0 there).
NVIDIA_NODES = ("dev/nvidia[0-9]*", "proc/driver/nvidia", "dev/dxg")
OTHER_GPU_NODES = ("dev/kfd", "dev/nvhost-ctrl*", "dev/nvgpu")


def gpu_node_present(root: Path = Path("/"), nvidia_only: bool = False) -> bool:
    """Whether a GPU's device node is there (NVIDIA_NODES, and OTHER_GPU_NODES unless
    ``nvidia_only``): without one, torch cannot see a GPU and need not be imported to say so."""
    patterns = NVIDIA_NODES if nvidia_only else NVIDIA_NODES + OTHER_GPU_NODES
    return any(next(root.glob(pattern), None) is not None for pattern in patterns)


@functools.cache
def cuda_present() -> bool:
    """Whether torch sees an NVIDIA CUDA device (False where torch is missing), the one
    NVENC and NVDEC run on. Without an NVIDIA device node torch is not imported (a process
    that decodes video need not load it)."""
    if not gpu_node_present(nvidia_only=True):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def hw_decoder_name(codec: str, pix_fmt: str | None, profile: str | None = None) -> str | None:
    """The NVDEC decoder for a stream of ``codec`` in ``pix_fmt`` and ``profile``, None where
    there is none (pure)."""
    name = HW_DECODERS.get(codec)
    if name is None or pix_fmt not in HW_PIXEL_FORMATS[codec]:
        return None
    if profile and any(part in profile for part in HW_REFUSED_PROFILES.get(codec, ())):
        return None
    return name


def open_decoder(stream: Any, file: str) -> Any | None:
    """An opened NVDEC decoder (av.VideoCodecContext) for the demuxed video ``stream``: where
    a CUDA device is present, the stream's codec has one and it opens. None otherwise (the
    reader decodes in software); a decoder that fails to open is said once in the log."""
    if not cuda_present():
        return None
    source = stream.codec_context
    name = hw_decoder_name(source.name, source.format.name if source.format else None,
                           source.profile)
    if name is None or name in _unavailable:
        return None
    import av

    try:
        decoder: Any = av.CodecContext.create(name, "r")
        decoder.extradata = source.extradata
        decoder.width, decoder.height = source.width, source.height
        decoder.open()
    except (av.FFmpegError, ValueError) as err:  # ValueError: not in this FFmpeg build
        fell_back(name, str(err) or type(err).__name__, file)
        return None
    if name not in _said_using:
        _said_using.add(name)
        log.info("media.hw_decode", decoder=name, file=file)
    return decoder


def fell_back(name: str, error: str, file: str) -> None:
    """Remember that decoder ``name`` cannot be used in this process; say so the first time."""
    if name in _unavailable:
        return
    _unavailable[name] = error
    log.warning("media.hw_decode_unavailable", decoder=name, file=file, error=error,
                then="software decoding")
