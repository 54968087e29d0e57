"""BuiltinEngine's cheap self-check."""

from __future__ import annotations

from pathlib import Path

import pytest

from heygemd.engines.base import Evaluable, create_engine
from heygemd.settings import Settings


def test_builtin_is_the_default_engine_and_reports_no_problems(tmp_path: Path) -> None:
    settings = Settings()
    paths = settings.paths.model_copy(update={"cache": tmp_path / "cache"})
    engine = create_engine(settings.engine, settings.faces, paths, "cpu")
    assert engine.name == "builtin" and engine.device == "cpu"
    assert isinstance(engine, Evaluable)  # `heygemd eval` can measure it
    assert engine.problems() == []
    assert getattr(engine, "_analyzer", None) is None  # problems() must not build models


def test_the_engine_decodes_long_tracks_over_the_cores_it_may_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """16 usable cores: the hearing worker it starts decodes phones in 4 processes; 2: none."""
    import os

    settings = Settings()
    paths = settings.paths.model_copy(update={"cache": tmp_path / "cache"})
    for cores, processes in ((16, 4), (2, 0)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cores: set(range(n)))
        engine = create_engine(settings.engine, settings.faces, paths, "cpu")
        assert engine._hearing.phone_workers == processes  # type: ignore[attr-defined]
