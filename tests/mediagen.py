"""Small synthetic media files made with PyAV, for tests anywhere in the suite.

``make_video`` writes a moving pattern (a white square crossing a dark-grey frame, with a red
marker in the top-left corner so orientation can be checked) and, optionally, a tone;
``make_audio`` writes a tone. Both choose codecs that fit the container of the file's extension.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

TONE_HZ = 440.0
MARKER = 8  # side of the red top-left marker in pixels

# extension -> (video codec, audio codec, audio rate or None to keep the requested one)
VIDEO_CODECS: dict[str, tuple[str, str]] = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "aac"),
    ".avi": ("mpeg4", "pcm_s16le"),  # MP3 priming would shift AVI video by a frame
    ".webm": ("libvpx", "libopus"),
    ".flv": ("flv", "libmp3lame"),
}
AUDIO_CODECS: dict[str, str] = {
    ".mp3": "libmp3lame",
    ".m4a": "aac",
    ".aac": "aac",
    ".flac": "flac",
    ".ogg": "libopus",
}
WAV_CODECS: dict[str, str] = {
    "u8": "pcm_u8",
    "s16": "pcm_s16le",
    "s24": "pcm_s24le",
    "s32": "pcm_s32le",
    "f32": "pcm_f32le",
}
FORMATS = {".m4a": "mp4", ".aac": "adts", ".mkv": "matroska"}
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def pattern_frame(index: int, width: int, height: int) -> np.ndarray:
    """uint8 (height, width, 3) RGB: a white square moving right one step per frame."""
    frame = np.full((height, width, 3), 40, dtype=np.uint8)
    side = max(4, min(width, height) // 4)
    x = (index * 3) % max(1, width - side)
    y = (height - side) // 2
    frame[y : y + side, x : x + side] = 255
    frame[:MARKER, :MARKER] = (255, 0, 0)
    return frame


def tone(seconds: float, rate: int, channels: int = 1, freq: float = TONE_HZ) -> np.ndarray:
    """float32 (channels, N) sine at ``freq`` Hz, amplitude 0.5."""
    t = np.arange(int(round(seconds * rate))) / rate
    wave = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(wave[np.newaxis, :], channels, axis=0)


def _encode_audio(stream: Any, samples: np.ndarray, rate: int, layout: str) -> list[Any]:
    """Encode float32 (C, N) ``samples`` at ``rate`` (resampled to ``stream``'s) -> packets."""
    ctx = stream.codec_context
    resampler = av.AudioResampler(
        format=ctx.format.name,
        layout=layout,
        rate=ctx.sample_rate,
        frame_size=ctx.frame_size or None,
    )
    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=layout)
    frame.sample_rate = rate
    packets: list[Any] = []
    pts = 0
    for out in [*resampler.resample(frame), *resampler.resample(None)]:
        out.pts, pts = pts, pts + out.samples  # explicit timestamps let MP4 record the priming
        packets.extend(stream.encode(out))
    packets.extend(stream.encode(None))
    return packets


def _mux_in_time_order(container: Any, packets: list[Any]) -> None:
    """Interleave packets of several streams by decode time, as a real muxing tool would."""

    def seconds(packet: Any) -> float:
        stamp = packet.dts if packet.dts is not None else packet.pts
        return float(stamp * packet.time_base) if stamp is not None else 0.0

    for packet in sorted(packets, key=seconds):
        container.mux(packet)


def _add_audio_stream(container: Any, codec: str, rate: int, channels: int) -> Any:
    if codec == "libopus" and rate not in OPUS_RATES:
        rate = 48000
    stream = container.add_stream(codec, rate=rate)
    stream.layout = "mono" if channels == 1 else "stereo"
    return stream


def make_audio(
    path: Path,
    *,
    seconds: float = 1.0,
    rate: int = 16000,
    channels: int = 1,
    fmt: str = "s16",
    freq: float = TONE_HZ,
) -> Path:
    """Write a tone of ``freq`` Hz to ``path`` (wav mp3 m4a aac flac ogg, by extension).

    fmt: the WAV sample format (u8, s16, s24, s32, f32); other containers use their codec's.
    """
    suffix = path.suffix.lower()
    codec = WAV_CODECS[fmt] if suffix == ".wav" else AUDIO_CODECS[suffix]
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), mode="w", format=FORMATS.get(suffix)) as container:
        stream = _add_audio_stream(container, codec, rate, channels)
        for packet in _encode_audio(stream, tone(seconds, rate, channels, freq), rate, layout):
            container.mux(packet)
    return path


def _frame_times(count: int, fps: float, vfr: bool) -> list[float]:
    """Presentation times (s): regular, or alternating 0.6 and 1.4 frame-period gaps."""
    if not vfr:
        return [i / fps for i in range(count)]
    gaps = [(1.4 if i % 2 else 0.6) / fps for i in range(count)]
    return [float(sum(gaps[:i])) for i in range(count)]


def make_video(
    path: Path,
    *,
    width: int = 64,
    height: int = 48,
    fps: float = 25.0,
    seconds: float = 1.0,
    audio: bool = True,
    codec: str | None = None,
    rotation: int = 0,
    vfr: bool = False,
) -> Path:
    """Write ``seconds`` of the moving pattern (+ a 440 Hz tone when ``audio``) to ``path``.

    The container follows the extension (mp4 mov mkv avi webm flv). rotation: degrees clockwise
    a player must turn the picture (stored as a display matrix). vfr: frames at alternating
    0.6 and 1.4 frame spacing (average rate ``fps``), in a 1/1000 s time base.
    """
    suffix = path.suffix.lower()
    video_codec, audio_codec = VIDEO_CODECS[suffix]
    count = int(round(seconds * fps))
    with av.open(str(path), mode="w", format=FORMATS.get(suffix)) as container:
        stream = container.add_stream(
            codec or video_codec, rate=Fraction(fps).limit_denominator(1001)
        )
        # the codec is named at run time, so PyAV's types cannot tell it makes a video stream
        assert isinstance(stream, av.VideoStream), f"{codec or video_codec} is not a video codec"
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        time_base = Fraction(1, 1000) if vfr else 1 / Fraction(stream.codec_context.framerate)
        if vfr:
            stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(-rotation)  # PyAV takes counter-clockwise degrees
        sound = _add_audio_stream(container, audio_codec, 48000, 1) if audio else None
        packets: list[Any] = []
        for i, t in enumerate(_frame_times(count, fps, vfr)):
            frame = av.VideoFrame.from_ndarray(pattern_frame(i, width, height), format="rgb24")
            frame.pts = int(round(t / time_base))
            frame.time_base = time_base
            packets.extend(stream.encode(frame))
        packets.extend(stream.encode(None))
        if sound is not None:
            packets.extend(_encode_audio(sound, tone(seconds, 48000), 48000, "mono"))
        _mux_in_time_order(container, packets)
    return path


def held_picture(path: Path, picture: np.ndarray, count: int,
                 display: tuple[float, bool, bool] | None = None) -> Path:
    """An H.264 MP4 at 25 fps of one RGB ``picture`` held for ``count`` frames; ``display``:
    (angle, hflip, vflip) written as its display matrix (PyAV's set_display_rotation)."""
    import av

    with av.open(str(path), mode="w") as container:
        stream: Any = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = picture.shape[1], picture.shape[0], \
            "yuv420p"
        if display is not None:
            angle, hflip, vflip = display
            stream.set_display_rotation(angle, hflip=hflip, vflip=vflip)
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_noise(path: Path, size: int, seed: int = 0) -> Path:
    """``size`` random bytes: a file that no demuxer can read, whatever its extension."""
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def misnamed_audio(path: Path, real_suffix: str, seconds: float = 0.5) -> Path:
    """A real audio file (``real_suffix``, e.g. ".m4a") saved under ``path``'s misleading name."""
    real = make_audio(path.with_name(path.stem + "-real" + real_suffix), seconds=seconds)
    real.rename(path)
    return path


def hdr_signal(sdr: np.ndarray, transfer: int) -> np.ndarray:
    """SDR BT.709 R'G'B' (..., 3) in [0, 1] -> the HDR R'G'B' signal in BT.2020 that shows it
    (SDR white at HDR reference white, BT.2408): heygemd.media.hdr's mapping run backwards,
    for making HDR test videos of known pictures (HLG's OOTF inverted for a 1000-nit display)."""
    from heygemd.media import hdr

    linear = np.power(np.clip(sdr, 0.0, 1.0), hdr.SDR_GAMMA) @ \
        np.linalg.inv(hdr.BT2020_TO_BT709.astype(np.float64)).T
    nits = np.maximum(linear, 0.0) * hdr.REFERENCE_WHITE_NITS
    if transfer == hdr.PQ:
        y = np.power(nits / 10000.0, 2610 / 16384)
        return np.power((3424 / 4096 + 2413 / 128 * y) / (1 + 2392 / 128 * y), 2523 / 32)
    luma_d = np.maximum(nits @ np.array(hdr.BT2020_LUMA), 1e-9)  # display luminance
    luma_s = np.power(luma_d / hdr.HLG_DISPLAY_NITS, 1 / 1.2)  # the scene's
    scene = nits / (hdr.HLG_DISPLAY_NITS * np.power(luma_s, 0.2))[..., None]
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    return np.where(scene <= 1 / 12, np.sqrt(3 * scene),
                    a * np.log(np.maximum(12 * scene - b, 1e-9)) + c)


def make_hdr_video(path: Path, pictures: list[np.ndarray], transfer: int,
                   fps: float = 25.0) -> Path:
    """A lossless 10-bit 4:2:0 BT.2020 video (FFV1 in Matroska) tagged HLG or PQ
    (``transfer``: FFmpeg's number) of the SDR RGB uint8 ``pictures`` (even sides)."""
    kr, kb = 0.2627, 0.0593
    with av.open(str(path), "w", format="matroska") as container:
        rate = Fraction(fps).limit_denominator(1001)
        stream = container.add_stream("ffv1", rate=rate)
        height, width = pictures[0].shape[:2]
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p10le"
        context = stream.codec_context  # the colours Matroska's track header carries
        context.colorspace, context.color_range = 9, 1
        context.color_primaries, context.color_trc = 9, transfer
        for i, picture in enumerate(pictures):
            rgb = hdr_signal(picture.astype(np.float64) / 255.0, transfer)
            y = rgb @ np.array([kr, 1 - kr - kb, kb])
            cb = (rgb[..., 2] - y) / (2 * (1 - kb))
            cr = (rgb[..., 0] - y) / (2 * (1 - kr))

            def sub(plane: np.ndarray) -> np.ndarray:
                return plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))

            frame = av.VideoFrame(width, height, "yuv420p10le")
            frame.colorspace, frame.color_range = 9, 1
            frame.color_primaries, frame.color_trc = 9, transfer
            for plane, values in zip(frame.planes, (64 + 876 * y, 512 + 896 * sub(cb),
                                                    512 + 896 * sub(cr)), strict=True):
                rows: np.ndarray = np.ndarray(values.shape, np.uint16, buffer=memoryview(plane),
                                              strides=(plane.line_size, 2))
                rows[...] = np.clip(np.rint(values), 0, 1023)
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def twice_as_fast(source: Path, path: Path) -> Path:
    """``source`` (a real clip) at twice its frame rate, as a camera recording at that rate
    would show it: each frame followed by the mean of it and the next; its sound as it was
    (AAC in MP4, ``path``)."""
    with av.open(str(source)) as container:
        rate = container.streams.video[0].average_rate
        pictures = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(source)) as container:
        sound = container.streams.audio[0].rate
        mono = av.AudioResampler(format="flt", layout="mono", rate=sound)
        samples = np.concatenate([out.to_ndarray()[0] for f in container.decode(audio=0)
                                  for out in mono.resample(f)])
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate * 2)
        assert isinstance(stream, av.VideoStream)
        stream.height, stream.width = pictures[0].shape[:2]
        stream.pix_fmt, stream.options = "yuv420p", {"crf": "16", "preset": "ultrafast"}
        audio = _add_audio_stream(container, "aac", sound, 1)
        packets: list[Any] = []
        for a, b in zip(pictures, pictures[1:] + pictures[-1:], strict=True):
            between = ((a.astype(np.uint16) + b) // 2).astype(np.uint8)
            for picture in (a, between):
                packets.extend(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        packets.extend(stream.encode(None))
        packets.extend(_encode_audio(audio, samples[None].astype(np.float32), sound, "mono"))
        _mux_in_time_order(container, packets)
    return path
