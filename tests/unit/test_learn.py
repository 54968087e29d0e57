"""heygemd.learn: which clips may train a shipped model, the fit, its file and its card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from heygemd.engines.builtin import audio_features as af
from heygemd.engines.builtin import mouthmodel
from heygemd.engines.builtin.listen import FEATURE_DIM, feature_signature
from heygemd.learn.card import card_text
from heygemd.learn.corpus import ClipData, ClipFacts, read_manifest
from heygemd.learn.fit import (
    FitOptions,
    columns_for,
    fit,
    held_out_r,
    speaker_units,
    training_rows,
)

CORPUS_MANIFEST = """# corpus

| file | source repo : path (commit) | licence (repo LICENSE) | speaker id | lang | dur s |
|---|---|---|---|---|---|
| a.mp4 | x/y : a.mp4 | Apache-2.0 | alice | en | 5 |
| b.mp4 | x/y : b.mp4 | MIT (code); LRS2 footage is BBC, research-only terms | bob | en | 5 |
| c.mp4 | x/y : c.mp4 | none found (project-page repo); code repo is Apache-2.0 | carol | zh | 5 |
| d.mp4 | x/y : d.mp4 | Apache-2.0 (SadTalker; third-party parts excepted) | dan | en | 5 |
| e.mp4 | x/y : e.mp4 | MIT (code); GRID corpus is CC-BY-4.0 | eve | en | 5 |
| gone.mp4 | x/y : gone.mp4 | MIT | ghost | en | 5 |
"""

SHARED_MANIFEST = """# media

## talking/
| file | source (repo : path, licence) | duration | notes |
|---|---|---|---|
| t1.mp4 | org/repo : t.mp4 (MIT) | 5 s | woman, English, yaw 4 |
| t2.mp4 | org/repo : u.mp4 (Apache-2.0) | 5 s | man, Mandarin |

## reject/
| file | source | facts |
|---|---|---|
| r1.avi | nowhere | profile |
"""


def _folder(tmp_path: Path, text: str, names: list[str]) -> Path:
    (tmp_path / "MANIFEST.md").write_text(text)
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_corpus_manifest_gives_speaker_language_and_whether_a_clip_may_train(
        tmp_path: Path) -> None:
    folder = _folder(tmp_path, CORPUS_MANIFEST, ["a.mp4", "b.mp4", "c.mp4", "d.mp4", "e.mp4"])
    facts = {f.name: f for f in read_manifest(folder / "MANIFEST.md", folder)}
    assert sorted(facts) == ["a.mp4", "b.mp4", "c.mp4", "d.mp4", "e.mp4"]  # gone.mp4 absent
    assert (facts["a.mp4"].speaker, facts["a.mp4"].language) == ("alice", "en")
    assert facts["c.mp4"].language == "zh"
    assert {n for n, f in facts.items() if f.trainable} == {"a.mp4", "e.mp4"}


def test_shared_manifest_names_licence_and_language_from_the_notes(tmp_path: Path) -> None:
    talking = tmp_path / "talking"
    talking.mkdir()
    (tmp_path / "MANIFEST.md").write_text(SHARED_MANIFEST)
    for name in ("t1.mp4", "t2.mp4"):
        (talking / name).write_bytes(b"x")
    facts = read_manifest(tmp_path / "MANIFEST.md", talking)
    assert [(f.name, f.licence, f.language, f.speaker, f.trainable) for f in facts] == [
        ("t1.mp4", "MIT", "en", "t1", True), ("t2.mp4", "Apache-2.0", "zh", "t2", True)]


def _clip(name: str, seed: int, n: int = 400, trainable: bool = True) -> ClipData:
    """A speaker whose opening follows mel column 0 of the centre context frame (plus noise)."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, FEATURE_DIM)).astype(np.float32)
    centre = mouthmodel.mel_columns(FEATURE_DIM)[af.CONTEXT * af.N_MELS]
    opening = (0.2 + 0.05 * features[:, centre] + 0.01 * rng.normal(size=n)).astype(np.float32)
    facts = ClipFacts(path=Path(name), speaker=name, language="en",
                      licence="MIT" if trainable else "none found")
    return ClipData(facts=facts, fps=25.0, features=features, opening=opening,
                    usable=np.ones(n, bool), speech=np.arange(n) % 5 != 0)


def test_mel_columns_skip_the_viseme_classes() -> None:
    cols = mouthmodel.mel_columns(FEATURE_DIM)
    assert len(cols) == af.N_MELS * (2 * af.CONTEXT + 1)
    block = FEATURE_DIM // (2 * af.CONTEXT + 1)
    assert cols[af.N_MELS] == block  # the second frame's first mel column


def test_speaker_units_are_z_scores_over_the_spoken_frames() -> None:
    opening = np.array([0.1, 0.2, 0.3, 0.2, 0.2, 9.0])
    y = speaker_units(opening, np.array([True, True, True, True, True, False]))
    assert np.allclose(y[:5], [-1.5811388, 0.0, 1.5811388, 0.0, 0.0]) and np.isnan(y[5])


def test_fit_learns_a_new_speaker_and_is_deterministic(tmp_path: Path) -> None:
    options = FitOptions(ridge=10.0)
    clips = [_clip(f"s{i}", i) for i in range(3)]
    model = fit(clips, options)
    assert model.trained_on == ("s0", "s1", "s2")
    assert held_out_r(_clip("new", 9), model) > 0.8
    again = fit(clips, options)
    assert np.array_equal(model.weights, again.weights) and model.bias == again.bias
    model.save(tmp_path / "m.npz")
    loaded = mouthmodel.MouthModel.load(tmp_path / "m.npz")
    x = _clip("new", 9).features
    assert np.allclose(loaded.predict(x), model.predict(x)) and loaded.trained_on == ("s0", "s1",
                                                                                     "s2")
    assert loaded.features == feature_signature() and np.array_equal(loaded.columns,
                                                                     model.columns)


def test_training_rows_are_the_spoken_frames_only() -> None:
    clip = _clip("a", 0, n=50)
    x, y = training_rows([clip], columns_for(FEATURE_DIM, phones=False))
    assert len(x) == len(y) == int(clip.spoken.sum()) == 40
    assert x.shape[1] == af.N_MELS * (2 * af.CONTEXT + 1)
    assert len(columns_for(FEATURE_DIM, phones=True)) == FEATURE_DIM


def test_in_template_units_takes_the_templates_mean_and_spread() -> None:
    out = mouthmodel.in_template_units(np.array([-1.0, 0.0, 1.0]),
                                       np.array([0.1, 0.2, 0.3, 0.1, 0.3]))
    assert np.allclose(out, [0.2 - 0.0894427, 0.2, 0.2 + 0.0894427], atol=1e-6)
    assert np.array_equal(mouthmodel.in_template_units(np.ones(3), np.zeros(2)), np.zeros(3))


def test_the_shipped_model_loads_and_its_card_names_each_training_clip() -> None:
    model = mouthmodel.shipped()
    assert model is not None and len(model.trained_on) >= 10
    assert model.predict(np.zeros((3, FEATURE_DIM), np.float32)).shape == (3,)
    card = (Path(mouthmodel.__file__).parent / "models" / "MODEL_CARD.md").read_text()
    assert all(name in card for name in model.trained_on)


def test_a_shipped_model_of_other_features_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from heygemd.engines.builtin import listen

    mouthmodel.shipped.cache_clear()
    monkeypatch.setattr(listen, "feature_signature", lambda: "other-features")
    try:
        with capture_logs() as logs:
            assert mouthmodel.shipped() is None
        assert [e["event"] for e in logs] == ["mouthmodel.stale"]
    finally:
        mouthmodel.shipped.cache_clear()


def test_card_lists_clips_licences_and_held_out_scores() -> None:
    pool = [_clip("a.mp4", 0), _clip("b.mp4", 1)]
    text = card_text(pool, FitOptions(), {"a.mp4": 0.5, "b.mp4": 0.25}, "00ff")
    assert "| a.mp4 | a.mp4 | en | MIT |" in text and "Mean over 2 clips: 0.375" in text
