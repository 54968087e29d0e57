"""Pipeline.startup: the engine is prepared before the pipeline's own face analyzer is built
(the builtin engine's hearing worker boots beside it), and a failed start leaves no engine
part running."""

from __future__ import annotations

from typing import Any, cast

import pytest

from heygemd import pipeline as pipeline_module
from heygemd.engines.base import Engine
from heygemd.pipeline import Pipeline
from heygemd.settings import Settings
from heygemd.validation.facecache import FaceCache


class RecordingEngine:
    name = "recording"
    version = "1"

    def __init__(self, calls: list[str], fail: bool = False) -> None:
        self.calls = calls
        self.fail = fail

    def prepare(self) -> None:
        self.calls.append("engine.prepare")
        if self.fail:  # e.g. its own face model missing, after its worker was started
            raise RuntimeError("engine part missing")

    def close(self) -> None:
        self.calls.append("engine.close")


def _pipeline(calls: list[str], tmp_path: Any, fail: bool = False) -> Pipeline:
    s = Settings()
    return Pipeline(cast(Engine, RecordingEngine(calls, fail)), validation=s.validation,
                    limits=s.limits, faces=s.faces, output=s.output,
                    face_cache=FaceCache(tmp_path, s.faces, s.validation))


def test_startup_prepares_the_engine_before_building_the_analyzer(monkeypatch, tmp_path):
    calls: list[str] = []

    class Analyzer:
        def __init__(self, faces: Any) -> None:
            calls.append("analyzer")

        def close(self) -> None:
            calls.append("analyzer.close")

    monkeypatch.setattr(pipeline_module, "FaceAnalyzer", Analyzer)
    p = _pipeline(calls, tmp_path)
    p.startup()
    assert calls == ["engine.prepare", "analyzer"]
    p.shutdown()
    assert calls[2:] == ["analyzer.close", "engine.close"]


def test_an_analyzer_that_cannot_be_built_closes_the_prepared_engine(monkeypatch, tmp_path):
    calls: list[str] = []

    def broken(faces: Any) -> None:
        raise RuntimeError("no face model")

    monkeypatch.setattr(pipeline_module, "FaceAnalyzer", broken)
    p = _pipeline(calls, tmp_path)
    with pytest.raises(RuntimeError, match="no face model"):
        p.startup()
    assert calls == ["engine.prepare", "engine.close"]


def test_an_engine_that_fails_to_prepare_is_closed_and_no_analyzer_is_built(
    monkeypatch, tmp_path
):
    calls: list[str] = []
    monkeypatch.setattr(pipeline_module, "FaceAnalyzer",
                        lambda faces: calls.append("analyzer"))
    p = _pipeline(calls, tmp_path, fail=True)
    with pytest.raises(RuntimeError, match="engine part missing"):
        p.startup()
    assert calls == ["engine.prepare", "engine.close"]
