"""The render's constants and planning's mouth detail, kept in the cache beside a template's
analysis (engine.template_constants)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from heygemd.cache import AnalysisCache, scan_entries
from heygemd.engines.builtin import engine, planning
from heygemd.engines.builtin.render import Constants
from tests.unit.test_builtin_planning import _template

KEY = "cd" * 32


@pytest.mark.parametrize("occluder", [None, (7, 13)])
def test_constants_survive_the_cache_form(occluder: tuple[int, int] | None) -> None:
    rng = np.random.default_rng(1)
    made = Constants(
        triangles=rng.integers(0, 40, (31, 3)), lip_colours=rng.random((9, 6), np.float32),
        steady=rng.random(512) > 0.5,
        occluder=None if occluder is None else rng.random(occluder) > 0.7,
    )
    back = Constants.from_arrays(made.arrays())
    assert np.array_equal(back.triangles, made.triangles)
    assert np.array_equal(back.lip_colours, made.lip_colours)
    assert back.steady.dtype == bool and np.array_equal(back.steady, made.steady)
    if occluder is None:
        assert back.occluder is None
    else:
        assert back.occluder is not None and back.occluder.dtype == bool
        assert np.array_equal(back.occluder, made.occluder)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    made: list[int] = []
    real = engine.render_constants

    def counted(analysis):  # type: ignore[no-untyped-def]
        made.append(analysis.n_frames)
        return real(analysis)

    monkeypatch.setattr(engine, "render_constants", counted)
    return made


def test_a_template_used_again_reads_its_constants_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _counting(monkeypatch)
    cache = AnalysisCache(tmp_path)
    analysis = _template(blurred=10)
    first, detail = engine.template_constants(analysis, cache, KEY)
    again, detail_again = engine.template_constants(analysis, cache, KEY)
    assert made == [analysis.n_frames]  # made once, then read
    fresh = engine.render_constants(analysis)
    for name in ("triangles", "lip_colours", "steady"):
        assert np.array_equal(getattr(again, name), getattr(fresh, name), equal_nan=True)
    assert again.occluder is None and first.occluder is None
    assert np.array_equal(detail_again, planning.mouth_detail(analysis), equal_nan=True)
    assert np.array_equal(detail_again, detail, equal_nan=True)
    # kept as a part of the analysis's entry: trimmed with it
    (entry,) = scan_entries(tmp_path)
    assert entry.key == KEY
    assert [p.name for p in entry.paths] == [f"{KEY}.constants-{engine.CONSTANTS_VERSION}.npz"]


def test_constants_of_another_kind_are_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kept constants that do not fit the analysis (another length) or were made by other
    rules (another CONSTANTS_VERSION) are not used."""
    made = _counting(monkeypatch)
    cache = AnalysisCache(tmp_path)
    analysis = _template(blurred=10)
    engine.template_constants(analysis, cache, KEY)
    shorter = replace(analysis, landmarks=analysis.landmarks[:100], pose=analysis.pose[:100],
                      usable=analysis.usable[:100], opening=analysis.opening[:100],
                      features=analysis.features[:100], speech=analysis.speech[:100],
                      crop_origin=analysis.crop_origin[:100], crops=analysis.crops[:100])
    constants, detail = engine.template_constants(shorter, cache, KEY)
    assert len(constants.lip_colours) == len(detail) == 100
    monkeypatch.setattr(engine, "CONSTANTS_VERSION", engine.CONSTANTS_VERSION + 1)
    engine.template_constants(shorter, cache, KEY)
    assert made == [analysis.n_frames, 100, 100]
