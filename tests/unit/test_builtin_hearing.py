"""What the hearing remembers answers by (heygemd.engines.builtin.hearing.key_of)."""

from __future__ import annotations

import numpy as np

from heygemd.engines.builtin.hearing import key_of


def test_the_same_samples_at_the_same_rate_and_length_are_the_same_track() -> None:
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    assert key_of(audio, 25.0, 25) == key_of(audio.copy(), 25.0000001, 25)
    assert key_of(audio, 25.0, 25) == key_of(audio.astype(np.float64), 25.0, 25)


def test_other_samples_rate_or_length_are_another_track() -> None:
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    louder = audio * np.float32(1.001)
    keys = {key_of(audio, 25.0, 25), key_of(louder, 25.0, 25), key_of(audio, 30.0, 25),
            key_of(audio, 25.0, 26)}
    assert len(keys) == 4
