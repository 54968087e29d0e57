"""Speech probabilities remembered by content between the audio check and the engine
(heygemd.voice)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from heygemd import voice


@pytest.fixture(autouse=True)
def empty() -> Iterator[None]:
    voice.forget()
    yield
    voice.forget()


def samples(seed: int, n: int = 16000) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def test_what_is_remembered_is_recalled_by_content_read_only() -> None:
    audio = samples(0)
    probs = np.linspace(0, 1, 32, dtype=np.float32)  # ceil(16000 / 512) frames
    voice.remember(audio, probs)
    found = voice.recall(audio.copy())
    assert found is not None and np.array_equal(found, probs)
    assert not found.flags.writeable
    probs[0] = 0.5  # the caller's array is not the remembered one
    assert voice.recall(audio)[0] == 0.0  # type: ignore[index]
    assert voice.recall(audio * np.float32(0.999)) is None  # other samples, other track


def test_only_the_latest_tracks_are_kept() -> None:
    for seed in range(voice.REMEMBER + 1):
        voice.remember(samples(seed), np.zeros(32, np.float32))
    assert voice.recall(samples(0)) is None
    assert all(voice.recall(samples(s)) is not None for s in range(1, voice.REMEMBER + 1))


def test_probabilities_must_cover_the_frames() -> None:
    with pytest.raises(ValueError, match="31 probabilities for 32 frames"):
        voice.remember(samples(0), np.zeros(31, np.float32))


def test_silero_leaves_torchs_thread_count_alone() -> None:
    """silero_vad's import sets torch to one thread for the whole process; through voice it
    does not (a fresh interpreter: in this one silero may be imported already)."""
    import subprocess
    import sys

    code = ("import torch; torch.set_num_threads(3); from heygemd import voice; "
            "voice.load_model(); voice.silero(); print(torch.get_num_threads())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)  # fmt: skip
    assert done.stdout.strip() == "3"
