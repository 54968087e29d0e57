"""The render's constants and planning's mouth detail, kept in the cache beside a template's
analysis (engine.template_constants)."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

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
    _same(back, made)


def _same(a: Constants, b: Constants) -> None:
    """Equal arrays of equal types (NaN where NaN)."""
    for name in ("triangles", "lip_colours", "steady", "occluder"):
        x, y = getattr(a, name), getattr(b, name)
        if y is None:
            assert x is None, name
            continue
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name


def _counting(monkeypatch: pytest.MonkeyPatch, occluder: bool = False) -> list[int]:
    """Counts render_constants' calls; ``occluder``: the constants made carry one."""
    made: list[int] = []
    real = engine.render_constants

    def counted(analysis):  # type: ignore[no-untyped-def]
        made.append(analysis.n_frames)
        constants = real(analysis)
        if occluder:
            mask = np.zeros((analysis.height, analysis.width), bool)
            mask[200:230, 40:90] = True
            constants = replace(constants, occluder=mask)
        return constants

    monkeypatch.setattr(engine, "render_constants", counted)
    return made


def _constants(analysis: Any, cache: AnalysisCache) -> tuple[Any, np.ndarray]:
    """template_constants, its constants waited for (made in a thread of their own)."""
    found, detail = engine.template_constants(analysis, cache, KEY)
    return found.result(timeout=60), detail


@pytest.mark.parametrize("occluder", [False, True])
def test_a_template_used_again_reads_its_constants_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, occluder: bool
) -> None:
    made = _counting(monkeypatch, occluder)
    cache = AnalysisCache(tmp_path)
    analysis = _template(blurred=10)
    first, detail = _constants(analysis, cache)
    again, detail_again = _constants(analysis, cache)
    assert made == [analysis.n_frames]  # made once, then read
    _same(again, first)
    assert (again.occluder is not None) == occluder
    expected = planning.mouth_detail(analysis)
    assert detail_again.dtype == detail.dtype == expected.dtype
    assert np.array_equal(detail_again, expected, equal_nan=True)
    # kept as a part of the analysis's entry: trimmed with it
    (entry,) = scan_entries(tmp_path)
    assert entry.key == KEY
    assert [p.name for p in entry.paths] == \
        [f"{KEY}.constants-{engine.constants_signature()}.npz"]


def test_constants_of_another_kind_are_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kept constants that do not fit the analysis (another length), were made by other code
    (another source of the modules they come from) or hold other arrays are not used."""
    made = _counting(monkeypatch)
    cache = AnalysisCache(tmp_path)
    analysis = _template(blurred=10)
    _constants(analysis, cache)
    shorter = replace(analysis, landmarks=analysis.landmarks[:100], pose=analysis.pose[:100],
                      usable=analysis.usable[:100], opening=analysis.opening[:100],
                      features=analysis.features[:100], speech=analysis.speech[:100],
                      crop_origin=analysis.crop_origin[:100], crops=analysis.crops[:100])
    constants, detail = _constants(shorter, cache)
    assert len(constants.lip_colours) == len(detail) == 100
    monkeypatch.setattr(engine, "constants_signature", lambda: "other-code")
    _constants(shorter, cache)
    cache.save_arrays(KEY, {"detail": np.zeros(100)}, "constants-other-code")
    with capture_logs() as logs:
        _constants(shorter, cache)
    assert made == [analysis.n_frames, 100, 100, 100]
    assert [e["event"] for e in logs] == ["engine.constants_unreadable"]


def test_constants_that_cannot_be_kept_cost_only_time(tmp_path: Path) -> None:
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    analysis = _template(blurred=10)
    with capture_logs() as logs:
        constants, detail = _constants(analysis, AnalysisCache(blocked))
    _same(constants, engine.render_constants(analysis))
    assert len(detail) == analysis.n_frames
    assert "engine.constants_not_kept" in [e["event"] for e in logs]


def test_the_constants_signature_follows_the_code() -> None:
    """Every module named is read (none missing), and the digest is of their text."""
    import ast

    package = Path(engine.__file__).parents[2]
    assert all((package / name).is_file() for name in engine.CONSTANTS_SOURCES)
    assert len(engine.constants_signature()) == 16
    # every heygemd module that the modules making the constants import is hashed too (the
    # media, hands and analysis modules they name only for decoding and types aside)
    makers = ["colour", "mesh", "overlay", "select", "crops"]
    read: set[str] = set()
    for name in makers:
        tree = ast.parse((package / f"engines/builtin/{name}.py").read_text())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and node.module
                    and node.module.startswith("heygemd.")):
                continue
            for alias in node.names:  # a module imported, or the module a name comes from
                for module in (f"{node.module}.{alias.name}", node.module):
                    path = module.removeprefix("heygemd.").replace(".", "/") + ".py"
                    if (package / path).is_file():
                        read.add(path)
                        break
    assert read and read <= set(engine.CONSTANTS_SOURCES), read - set(engine.CONSTANTS_SOURCES)


def test_the_detail_comes_at_once_and_the_constants_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made afresh, the planning's detail is given while the render's constants are still
    being made; a failure making or keeping them (of any kind) is raised where they are waited
    for, never left pending."""
    analysis = _template(blurred=10)
    release = threading.Event()
    real = engine.render_constants

    def slow(made: Any) -> Any:
        release.wait(10)
        return real(made)

    monkeypatch.setattr(engine, "render_constants", slow)
    found, detail = engine.template_constants(analysis, AnalysisCache(tmp_path), KEY)
    assert np.array_equal(detail, planning.mouth_detail(analysis), equal_nan=True)
    assert not found.done()
    release.set()
    _same(found.result(timeout=60), real(analysis))

    def broken(made: Any) -> Any:
        raise RuntimeError("no colours")

    monkeypatch.setattr(engine, "render_constants", broken)
    failed, _ = engine.template_constants(analysis, AnalysisCache(tmp_path / "other"), KEY)
    with pytest.raises(RuntimeError, match="no colours"):
        failed.result(timeout=60)

    monkeypatch.setattr(engine, "render_constants", real)
    cache = AnalysisCache(tmp_path / "third")

    def full(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(cache, "save_arrays", full)
    unkept, _ = engine.template_constants(analysis, cache, KEY)
    with pytest.raises(MemoryError):
        unkept.result(timeout=60)
