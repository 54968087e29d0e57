"""Content-addressed template-analysis cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from heygemd.cache import AnalysisCache, content_key


def test_key_follows_content_and_version(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "c.mp4"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    c.write_bytes(b"other bytes")
    assert content_key(a, "v1") == content_key(b, "v1")
    assert content_key(a, "v1") != content_key(c, "v1")
    assert content_key(a, "v1") != content_key(a, "v2")


def test_arrays_miss_then_hit(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path / "cache")
    assert cache.load_arrays("ab" * 32) is None
    cache.save_arrays("ab" * 32, {"x": np.arange(5), "y": np.ones((2, 3), np.float32)})
    got = cache.load_arrays("ab" * 32)
    assert got is not None and got["x"].tolist() == [0, 1, 2, 3, 4]
    assert got["y"].shape == (2, 3)
    assert not list((tmp_path / "cache").rglob(".tmp-*"))


def test_version_bump_misses(tmp_path: Path) -> None:
    video = tmp_path / "t.mp4"
    video.write_bytes(b"video")
    cache = AnalysisCache(tmp_path / "cache")
    cache.save_arrays(content_key(video, "v1"), {"x": np.zeros(1)})
    assert cache.load_arrays(content_key(video, "v1")) is not None
    assert cache.load_arrays(content_key(video, "v2")) is None


def test_big_entry_is_invisible_until_commit(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path)
    key = "cd" * 32
    entry = cache.big_writer(key, "crops", (3, 4, 4, 3))
    entry.array[1] = 7
    assert cache.load_big(key, "crops") is None
    arr = entry.commit()
    assert arr[1].max() == 7 and arr[0].max() == 0
    loaded = cache.load_big(key, "crops")
    assert loaded is not None and loaded.shape == (3, 4, 4, 3)


def test_discarded_big_entry_leaves_nothing(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path)
    entry = cache.big_writer("ef" * 32, "crops", (2, 2, 2, 3))
    entry.discard()
    assert cache.load_big("ef" * 32, "crops") is None
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_corrupt_entry_is_a_miss(tmp_path: Path) -> None:
    cache = AnalysisCache(tmp_path)
    key = "12" * 32
    path = cache.save_arrays(key, {"x": np.zeros(3)})
    path.write_bytes(b"not an npz")
    assert cache.load_arrays(key) is None
    assert not path.exists()


def test_the_builtin_engine_caches_within_paths_cache_max_gb(tmp_path: Path) -> None:
    from heygemd.engines.base import create_engine
    from heygemd.settings import Settings

    settings = Settings()
    paths = settings.paths.model_copy(update={"cache": tmp_path, "cache_max_gb": 0.5})
    engine = create_engine(settings.engine, settings.faces, paths, "cpu")
    assert engine.cache.max_bytes == 512 * 1024**2  # type: ignore[attr-defined]
