"""The audio check's silero probabilities stand in for the engine's VAD run (heygemd.voice):
the same spans, and the same hearing, on real speech."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from heygemd import voice
from heygemd.engines.builtin.audio_features import VoiceDetector
from heygemd.engines.builtin.hearing import Hearing
from heygemd.engines.builtin.listen import Listener


@pytest.fixture(autouse=True)
def empty() -> Iterator[None]:
    voice.forget()
    yield
    voice.forget()


@pytest.fixture(scope="module")
def tracks(speech_files: list[Path]) -> list[np.ndarray]:
    from heygemd.media.audio import load_audio

    return [load_audio(path)[: 20 * 16000] for path in speech_files]


def test_spans_from_the_checks_probabilities_are_the_models_spans(
    tracks: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    import silero_vad

    def model_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model ran again")

    detector = VoiceDetector()
    by_model = [detector.spans(audio) for audio in tracks]
    monkeypatch.setattr(silero_vad, "get_speech_timestamps", model_again)
    for audio, expected in zip(tracks, by_model, strict=True):
        voice.speech_probabilities(audio)  # the audio check: remembers them
        assert detector.spans(audio) == expected


def test_the_hearing_worker_takes_them_and_hears_the_same(tracks: list[np.ndarray]) -> None:
    audio = tracks[0][: 4 * 16000]
    here = Listener().hear(audio, 25.0, 100)
    voice.speech_probabilities(audio)
    hearing = Hearing(Listener(remember=0))
    hearing.start()
    try:
        assert hearing.has_worker
        heard = hearing.hear(audio, 25.0, 100)
    finally:
        hearing.close()
    for name in ("features", "speech", "level", "phone_opening", "closed_lips"):
        np.testing.assert_array_equal(getattr(heard, name), getattr(here, name), err_msg=name)
