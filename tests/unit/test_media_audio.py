"""load_audio() and TrackStream: every audio container and WAV sample format, tracks of videos,
typed errors; a stream reads load_audio's samples without holding the track."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from heygemd.errors import MediaError
from heygemd.media.audio import (
    HALF_POWER,
    ArrayTrack,
    TrackStream,
    clip_unit,
    load_audio,
    read_sound,
    stereo_matrix,
    to_mono,
    trimmed_length,
)
from tests.mediagen import make_audio, make_video, write_noise


def _peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def test_to_mono_averages_channels() -> None:
    stereo = np.array([[1.0, 0.5], [0.0, -0.5]], dtype=np.float32)
    assert np.allclose(to_mono(stereo), [0.5, 0.0])
    mono = np.ones(3, np.float32)
    assert to_mono(mono) is mono


def test_clip_unit() -> None:
    out = clip_unit(np.array([-1.5, 0.25, 1.01], dtype=np.float64))
    assert out.dtype == np.float32 and np.allclose(out, [-1.0, 0.25, 1.0])


def test_trimmed_length_only_trims_small_excess() -> None:
    assert trimmed_length(1100, 1000, 1000) == 1000
    assert trimmed_length(1100, 500, 1000) == 1100  # too much: distrust the header
    assert trimmed_length(1100, None, 1000) == 1100


@pytest.mark.parametrize("ext", ["wav", "mp3", "m4a", "aac", "flac", "ogg"])
@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (24000, 1)])
def test_audio_formats_load_at_16k(tmp_path: Path, ext: str, rate: int, channels: int) -> None:
    path = make_audio(tmp_path / f"tone.{ext}", seconds=1.0, rate=rate, channels=channels)
    samples = load_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    # ADTS .aac has no header to say where codec priming and padding are: allow 2 x 1024 samples
    assert len(samples) / 16000 == pytest.approx(1.0, abs=0.1 if ext == "aac" else 0.03)
    assert _peak_hz(samples, 16000) == pytest.approx(440, abs=3)
    assert 0.4 < np.abs(samples).max() <= 0.6


@pytest.mark.parametrize("fmt", ["u8", "s16", "s24", "s32", "f32"])
def test_wav_sample_formats(tmp_path: Path, fmt: str) -> None:
    path = make_audio(tmp_path / f"{fmt}.wav", seconds=0.5, rate=24000, fmt=fmt, freq=1000)
    samples = load_audio(path)
    assert len(samples) == 8000
    assert np.abs(samples).max() == pytest.approx(0.5, abs=0.02)
    assert _peak_hz(samples, 16000) == pytest.approx(1000, abs=4)


def test_stereo_kept_when_not_mono(tmp_path: Path) -> None:
    path = make_audio(tmp_path / "st.wav", seconds=0.5, rate=48000, channels=2)
    samples = load_audio(path, rate=48000, mono=False)
    assert samples.shape == (2, 24000)
    assert np.allclose(samples[0], samples[1])


@pytest.mark.parametrize("ext", ["mp4", "mkv", "webm", "avi"])
def test_audio_track_of_video(tmp_path: Path, ext: str) -> None:
    samples = load_audio(make_video(tmp_path / f"v.{ext}", seconds=1.0))
    assert len(samples) / 16000 == pytest.approx(1.0, abs=0.05)
    assert _peak_hz(samples, 16000) == pytest.approx(440, abs=3)


def test_video_without_audio(tmp_path: Path) -> None:
    with pytest.raises(MediaError) as err:
        load_audio(make_video(tmp_path / "silent.mp4", audio=False))
    assert err.value.code == "no_audio"
    assert "silent.mp4" in err.value.message


def test_corrupt_and_empty_audio(tmp_path: Path) -> None:
    noise = write_noise(tmp_path / "noise.wav", 2048, seed=1)
    with pytest.raises(MediaError) as err:
        load_audio(noise)
    assert err.value.code == "unreadable_media" and "cannot be read" in err.value.message
    assert "FFmpeg" not in err.value.message  # FFmpeg's words are logged, not told
    empty = tmp_path / "empty.wav"
    empty.touch()
    with pytest.raises(MediaError) as err:
        load_audio(empty)
    assert err.value.code == "empty_file"


def test_max_seconds_stops_the_decode(tmp_path: Path) -> None:
    path = make_audio(tmp_path / "long.wav", seconds=3.0, rate=48000, channels=2)
    capped = load_audio(path, max_seconds=1.0)
    assert capped.shape == (16000,)
    assert np.array_equal(capped, load_audio(path)[:16000])
    assert load_audio(path, max_seconds=10.0).shape == (48000,)


def _read_in_blocks(stream: TrackStream, sizes: list[int]) -> np.ndarray:
    parts, n = [], 0
    while True:
        block = stream.read(sizes[n % len(sizes)])
        n += 1
        if block.shape[1] == 0:
            return np.concatenate(parts, axis=1) if parts else block
        parts.append(block)


def _plain_decode(path: Path, rate: int, channels: int) -> np.ndarray:
    """The reference: PyAV's planar resampling of every frame, the padding rule applied, and
    clipped (the decode load_audio had before it read through a TrackStream)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=["mono", "stereo"][channels - 1],
                                      rate=rate)
        blocks = []
        for frame in container.decode(stream):
            frame.pts = None
            blocks += [b.to_ndarray() for b in resampler.resample(frame)]
        blocks += [b.to_ndarray() for b in resampler.resample(None)]
        declared = float(stream.duration * stream.time_base) if stream.duration else None
    samples = np.concatenate(blocks, axis=1)
    keep = trimmed_length(samples.shape[1], None if declared is None
                          else int(round(declared * rate)), rate)
    return clip_unit(samples[:, :keep])


@pytest.mark.parametrize("ext", ["wav", "mp3", "m4a", "aac", "flac", "ogg"])
@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (24000, 1)])
def test_a_stream_reads_what_load_audio_returns(
    tmp_path: Path, ext: str, rate: int, channels: int
) -> None:
    # the codecs' padding past the declared end is cut alike, whatever the block sizes, and
    # both give what a plain decode gives
    path = make_audio(tmp_path / f"tone.{ext}", seconds=1.3, rate=rate, channels=channels)
    whole = load_audio(path, rate=48000, mono=False)
    assert np.array_equal(whole, _plain_decode(path, 48000, channels))
    with TrackStream(path, 48000) as stream:
        assert stream.channels == channels
        read = _read_in_blocks(stream, [1921, 7, 48000])
        assert stream.length() == whole.shape[1]
    assert read.dtype == np.float32 and np.array_equal(read, whole)


def test_a_stream_of_a_video_and_its_length_before_the_end(tmp_path: Path) -> None:
    path = make_video(tmp_path / "v.mp4", seconds=1.0)
    whole = load_audio(path, rate=48000, mono=False)
    with TrackStream(path, 48000) as stream:
        head = stream.read(1000)
        assert stream.length() == whole.shape[1]  # the rest decoded, still to be read
        rest = _read_in_blocks(stream, [4096])
    assert np.array_equal(np.concatenate([head, rest], axis=1), whole)


def test_a_stream_holds_a_few_blocks_not_the_track(tmp_path: Path) -> None:
    path = make_audio(tmp_path / "long.flac", seconds=60.0, rate=48000, channels=2)
    whole_bytes = 2 * 60 * 48000 * 4
    tracemalloc.start()
    try:
        with TrackStream(path, 48000) as stream:
            total = 0
            while (block := stream.read(1920)).shape[1]:
                total += block.shape[1]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 60 * 48000
    assert peak < whole_bytes / 20, peak  # 23 MB whole; a stream's peak is under 1.2 MB


def test_a_stream_refuses_what_load_audio_refuses(tmp_path: Path) -> None:
    with pytest.raises(MediaError) as err:
        TrackStream(make_video(tmp_path / "silent.mp4", audio=False), 48000)
    assert err.value.code == "no_audio"
    with pytest.raises(MediaError) as err:
        TrackStream(write_noise(tmp_path / "noise.wav", 2048, seed=1), 48000)
    assert err.value.code == "unreadable_media"


def test_an_array_track_reads_views() -> None:
    samples = np.arange(10, dtype=np.float32)
    track = ArrayTrack(samples)
    assert track.channels == 1 and track.length() == 10
    first = track.read(4)
    assert first.shape == (1, 4) and np.shares_memory(first, samples)
    assert np.array_equal(track.read(100), samples[None, 4:])
    assert track.read(5).shape == (1, 0)


@pytest.mark.parametrize(("keep", "cut"), [
    (None, False),  # no declared length: everything decoded
    (47520, True),  # 10 ms of padding past the declared end: cut
    (43200, True),  # exactly PADDING_SECONDS past it: cut
    (43199, False),  # a sample more: the header is not trusted
    (24000, False),  # half the length declared: not trusted
])
def test_a_stream_cuts_padding_where_load_audio_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep: int | None, cut: bool
) -> None:
    from heygemd.media import audio

    path = make_audio(tmp_path / "tone.wav", seconds=1.0, rate=48000, channels=2)
    decoded = 48000
    seconds = None if keep is None else keep / 48000
    monkeypatch.setattr(audio, "_stream_seconds", lambda stream: seconds)
    whole = load_audio(path, rate=48000, mono=False)
    assert whole.shape[1] == (keep if cut else decoded)
    with TrackStream(path, 48000) as stream:
        read = _read_in_blocks(stream, [4000, 801])
        assert stream.length() == whole.shape[1]
    assert np.array_equal(read, whole)


@pytest.mark.parametrize("channels", [3, 6, 8])
def test_wavs_of_many_channels_load(tmp_path: Path, channels: int) -> None:
    # 8 planar channels used to crash the process inside PyAV (to_ndarray saw 9 planes); a
    # WAV without a channel layout is read in FFmpeg's usual layout for its count (3: 2.1,
    # 6: 5.1, 8: 7.1; the LFE it guesses heard as a centre) and mixed down to stereo, each
    # channel by its own weight (turned down together where the mix would clip)
    import wave

    rate = 48000
    t = np.arange(rate // 2) / rate
    tones = np.stack([0.5 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)])
    path = tmp_path / f"c{channels}.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((tones.T * 32767).astype("<i2").tobytes())
    whole = load_audio(path, rate=rate, mono=False)
    assert whole.shape == (2, rate // 2)
    h = HALF_POWER
    matrix = {3: [[1, 0, h], [0, 1, h]],  # 2.1's guessed LFE heard as a centre
              6: [[1, 0, h, h, h, 0], [0, 1, h, h, 0, h]],
              8: [[1, 0, h, h, h, 0, h, 0], [0, 1, h, h, 0, h, 0, h]]}[channels]
    mixed = np.array(matrix) @ tones
    np.testing.assert_allclose(whole, mixed * min(1.0, 1 / np.abs(mixed).max()), atol=1e-3)
    with TrackStream(path, rate) as stream:
        assert np.array_equal(_read_in_blocks(stream, [1000]), whole)


def test_a_closed_stream_says_so(tmp_path: Path) -> None:
    stream = TrackStream(make_audio(tmp_path / "t.mp3", seconds=1.0), 48000)
    stream.read(100)
    stream.close()
    stream.close()  # again: nothing
    with pytest.raises(ValueError, match="closed"):
        stream.read(100)
    with pytest.raises(ValueError, match="closed"):
        stream.length()


def _surround(path: Path, layout: str | None, channels: dict[int, np.ndarray],
              count: int) -> Path:
    """A 16-bit WAV at 48 kHz of ``count`` channels in ``layout`` (None: no channel mask,
    WAVE_FORMAT_PCM), channel i holding ``channels[i]`` and silence elsewhere."""
    import av

    n = len(next(iter(channels.values())))
    data = np.zeros((count, n), np.float32)
    for i, samples in channels.items():
        data[i] = samples
    pcm = np.round(data * 32767).astype("<i2")
    if layout is None:
        import wave

        with wave.open(str(path), "wb") as out:
            out.setnchannels(count)
            out.setsampwidth(2)
            out.setframerate(48000)
            out.writeframes(pcm.T.tobytes())
        return path
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=48000)
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(pcm.T.reshape(1, -1).copy(), format="s16",
                                           layout=layout)
        frame.rate = 48000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def _tone(amplitude: float, hz: float = 440.0, seconds: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * hz * np.arange(int(48000 * seconds)) / 48000)
            ).astype(np.float32)


def test_the_stereo_matrix_weighs_channels_as_a_stereo_player_does() -> None:
    h = HALF_POWER
    assert np.allclose(stereo_matrix(["FL", "FR", "FC", "LFE", "BL", "BR"]),
                       [[1, 0, h, 0, h, 0], [0, 1, h, 0, 0, h]])
    assert np.allclose(stereo_matrix(["FL", "FR", "FC", "BC", "SL", "SR"])[:, 3], [h * h, h * h])
    assert np.allclose(stereo_matrix(["FL", "FR", "LFE"]), [[1, 0, 0], [0, 1, 0]])


@pytest.mark.parametrize(("layout", "centre"), [("5.1", 2), ("5.1(side)", 2), ("7.1", 2),
                                                ("6.0", 2), (None, 2), ("7.1.4", 2)])
def test_dialogue_in_the_centre_channel_is_heard_at_minus_3_db(
    tmp_path: Path, layout: str | None, centre: int
) -> None:
    """A surround mix comes as stereo with its centre channel (a film's dialogue) at -3 dB on
    both sides, more than 8 channels too (through FFmpeg's 7.1 first)."""
    voice = _tone(0.5)
    count = {"5.1": 6, "5.1(side)": 6, "7.1": 8, "6.0": 6, None: 6, "7.1.4": 12}[layout]
    path = _surround(tmp_path / "mix.wav", layout, {centre: voice}, count)
    with TrackStream(path, 48000) as stream:
        assert stream.channels == 2
        mixed = stream.read(stream.length())
    assert np.allclose(mixed, np.stack([voice, voice]) * HALF_POWER, atol=1e-4)
    mono = load_audio(path, rate=48000)
    assert np.allclose(mono, voice * HALF_POWER, atol=1e-4)


def test_the_lfe_and_the_surrounds_go_where_a_player_puts_them(tmp_path: Path) -> None:
    rumble, left_back = _tone(0.6, hz=50.0), _tone(0.4, hz=300.0)
    path = _surround(tmp_path / "mix.wav", "5.1", {3: rumble, 4: left_back}, 6)
    mixed = load_audio(path, rate=48000, mono=False)
    assert np.allclose(mixed[0], left_back * HALF_POWER, atol=1e-4)  # the LFE left out
    assert np.abs(mixed[1]).max() < 1e-4


def test_a_loud_mix_is_turned_down_just_enough_not_to_clip(tmp_path: Path) -> None:
    """Front left and centre loud together would pass full scale on the left: the whole mix is
    turned down by one gain (its shape kept, never clipped), its peak at full scale."""
    loud = _tone(0.9)
    path = _surround(tmp_path / "mix.wav", "5.1", {0: loud, 2: loud}, 6)
    with TrackStream(path, 48000) as stream:
        mixed = stream.take(stream.length())
    peak = float(np.abs(loud * (1 + HALF_POWER)).max())
    assert np.allclose(mixed[0], loud * (1 + HALF_POWER) / peak, atol=2e-4)
    assert np.allclose(mixed[1], loud * HALF_POWER / peak, atol=2e-4)
    assert abs(float(np.abs(mixed).max()) - 1.0) < 2e-4
    with TrackStream(path, 48000, gain=0.5) as given:  # a gain given is kept
        assert np.allclose(given.take(given.length())[1], loud * HALF_POWER * 0.5, atol=1e-4)


def test_a_mix_is_turned_down_for_the_part_read_and_its_gain_found_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With max_seconds the peak is read no further (a loud end past it turns nothing down);
    a stream of the same file after a whole read takes the gain found then."""
    from heygemd.media import audio

    quiet, loud = _tone(0.3, seconds=1.0), _tone(0.9, seconds=1.0)
    path = _surround(tmp_path / "mix.wav", "5.1",
                     {0: np.concatenate([quiet, loud]), 2: np.concatenate([quiet, loud])}, 6)
    scans: list[float | None] = []
    real_keep = audio._Gains.keep

    def keep(self: Any, path: Path, rate: int, gain: float, seconds: float | None) -> None:
        scans.append(seconds)
        real_keep(self, path, rate, gain, seconds)

    monkeypatch.setattr(audio._Gains, "keep", keep)
    first = load_audio(path, rate=48000, mono=False, max_seconds=1.0)
    assert np.allclose(first[0], quiet * (1 + HALF_POWER), atol=2e-4)  # not turned down
    whole = load_audio(path, rate=48000, mono=False)
    assert abs(float(np.abs(whole).max()) - 1.0) < 2e-4  # the loud end turns it all down
    with TrackStream(path, 48000) as again:
        assert np.array_equal(again.read(again.length()), whole)
    assert scans == [1.0, None]  # the third read took the whole read's gain


def _float_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """A mono 32-bit float WAV (WAVE_FORMAT_IEEE_FLOAT) of ``samples`` as they are, NaN and
    infinities included (what a damaged float export holds)."""
    import struct

    data = np.asarray(samples, "<f4").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack(
        "<IHHIIHH", 16, 3, 1, rate, rate * 4, 4, 32) + b"data" + struct.pack("<I", len(data))
    path.write_bytes(header + data)
    return path


@pytest.mark.parametrize("rate", [16000, 48000])
def test_samples_that_are_not_numbers_are_made_silent_and_counted(
    tmp_path: Path, rate: int
) -> None:
    t = np.arange(48000) / 48000
    clean = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    damaged = clean.copy()
    damaged[[1000, 30000]] = [np.nan, np.inf]
    good = read_sound(_float_wav(tmp_path / "good.wav", clean, 48000), rate=rate)
    sound = read_sound(_float_wav(tmp_path / "bad.wav", damaged, 48000), rate=rate)
    assert good.silenced == 0
    assert np.isfinite(sound.samples).all() and sound.samples.shape == good.samples.shape
    # two bad samples: at the file's rate two silent ones, resampled each one spreads over the
    # resampler's filter (a few ms), never further
    assert 2 <= sound.silenced <= 2 * rate // 200
    differ = np.flatnonzero(sound.samples != good.samples)
    assert len(differ) == sound.silenced
    assert (np.abs(differ / rate - 1000 / 48000) < 0.005).sum() + \
        (np.abs(differ / rate - 30000 / 48000) < 0.005).sum() == len(differ)
    assert sound.silenced_from == pytest.approx(1000 / 48000, abs=0.003)
    with TrackStream(tmp_path / "bad.wav", rate) as stream:  # an output's sound track
        assert np.isfinite(stream.read(stream.length())).all() and stream.silenced > 0


def test_a_damaged_channel_beside_a_whole_one_keeps_the_voice(tmp_path: Path) -> None:
    """One channel of a stereo file all NaN: the other's voice fills it; nothing is silenced."""
    import av

    t = np.arange(48000) / 48000
    voice = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    planes = np.stack([voice, np.full_like(voice, np.nan)])
    path = tmp_path / "half.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_f32le", rate=48000, layout="stereo")
        frame = av.AudioFrame.from_ndarray(planes.T.reshape(1, -1).copy(), format="flt",
                                           layout="stereo")
        frame.rate = 48000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    sound = read_sound(path, rate=48000, mono=False)
    assert sound.silenced == 0 and sound.silenced_from is None
    np.testing.assert_allclose(sound.samples[1], sound.samples[0])
    np.testing.assert_allclose(sound.samples[0], voice, atol=1e-6)
