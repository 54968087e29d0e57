"""WAVs are opened reading little of them (media.probe.WAV_PROBE_BYTES): the same facts and the
same samples as FFmpeg's full probing, and WAVs that do not hold PCM are opened the usual way."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from heygemd.media import probe as probe_module
from heygemd.media.audio import load_audio
from heygemd.media.probe import open_input, probe
from tests.mediagen import WAV_CODECS, make_audio


def adpcm_wav(path: Path) -> Path:
    """A WAV holding IMA ADPCM (not PCM)."""
    with av.open(str(path), mode="w", format="wav") as container:
        stream = container.add_stream("adpcm_ima_wav", rate=16000)
        stream.layout = "mono"
        samples = (np.sin(np.arange(16000) / 10) * 0.3).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


@pytest.mark.parametrize("fmt", sorted(WAV_CODECS))
@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (48000, 2)])
def test_a_pcm_wav_reads_the_same_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, rate: int, channels: int
) -> None:
    path = make_audio(tmp_path / "a.wav", seconds=2.0, rate=rate, channels=channels, fmt=fmt)
    with open_input(path) as container:  # the short way: the header was enough
        assert container.streams.audio[0].codec_context.name == WAV_CODECS[fmt]
    quick = (probe(path), load_audio(path), load_audio(path, rate=48000, mono=False))
    monkeypatch.setattr(probe_module, "_is_wave", lambda p: False)  # FFmpeg's full probing
    full = (probe(path), load_audio(path), load_audio(path, rate=48000, mono=False))
    assert quick[0] == full[0]
    np.testing.assert_array_equal(quick[1], full[1])
    np.testing.assert_array_equal(quick[2], full[2])


def test_a_wav_without_pcm_is_opened_the_usual_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = adpcm_wav(tmp_path / "adpcm.wav")
    opened: list[dict[str, str]] = []
    real_open = av.open

    def spy(*args: object, **kwargs: object) -> object:
        opened.append(dict(kwargs.get("options") or {}))  # type: ignore[call-overload]
        return real_open(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(av, "open", spy)
    info = probe(path)
    assert opened == [{"probesize": str(probe_module.WAV_PROBE_BYTES)}, {}]
    assert info.audio is not None and info.audio.codec == "adpcm_ima_wav"
    assert abs(info.duration - 1.0) < 0.05


def test_only_riff_wave_files_count_as_wav(tmp_path: Path) -> None:
    flac = make_audio(tmp_path / "a.flac", seconds=0.5)
    wav = make_audio(tmp_path / "a.wav", seconds=0.5)
    misnamed = tmp_path / "b.mp3"
    misnamed.write_bytes(wav.read_bytes())
    assert probe_module._is_wave(wav) and probe_module._is_wave(misnamed)
    assert not probe_module._is_wave(flac)
