"""BuiltinEngine's cheap self-check."""

from __future__ import annotations

from pathlib import Path

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
