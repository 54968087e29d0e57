"""The frame pass's faces, cached by content: what goes in comes back, keys follow the content
and the settings, a bad entry is a miss."""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from heygemd import cache
from heygemd.faces.types import N_LANDMARKS, FaceObservation, SampledFrame
from heygemd.settings import FaceSettings, ValidationSettings
from heygemd.validation import facecache
from heygemd.validation.facecache import FaceCache, from_arrays, to_arrays


def face(index: int, seed: int) -> FaceObservation:
    rng = np.random.default_rng(seed)
    return FaceObservation(
        frame_index=index, box=(10.5, 20.25, 110.0, 140.75), score=0.93 - seed / 100,
        landmarks=rng.normal(size=(N_LANDMARKS, 3)).astype(np.float32),
        yaw=12.5 + seed, pitch=-3.25, roll=1.0 / 3,
    )


def samples() -> list[SampledFrame]:
    return [
        SampledFrame(0, [face(0, 1), face(0, 2)], [0.1, 0.7], hand_covers=[0.0, 0.25],
                     lights=[140.0, 22.5]),
        SampledFrame(8, [], []),  # no face found
        SampledFrame(16, [face(2, 3), face(2, 4), face(2, 5)], [0.2],  # only the first scored
                     hand_covers=[0.125], lights=[96.0]),
    ]


def same(a: list[SampledFrame], b: list[SampledFrame]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if (x.frame_index, x.occlusions, x.hand_covers, x.lights, len(x.faces)) != \
                (y.frame_index, y.occlusions, y.hand_covers, y.lights, len(y.faces)):
            return False
        for f, g in zip(x.faces, y.faces, strict=True):
            if (f.frame_index, f.box, f.score, f.yaw, f.pitch, f.roll) != \
                    (g.frame_index, g.box, g.score, g.yaw, g.pitch, g.roll):
                return False
            if not np.array_equal(f.landmarks, g.landmarks):
                return False
    return True


def test_sampled_frames_come_back_exactly() -> None:
    back, size = from_arrays(to_arrays(samples(), (640, 480)))
    assert size == (640, 480) and same(back, samples())
    assert back[2].occlusions == [0.2] and len(back[2].faces) == 3
    empty, size = from_arrays(to_arrays([], (32, 24)))
    assert empty == [] and size == (32, 24)


def test_an_entry_is_keyed_by_content_and_by_what_the_faces_depend_on(tmp_path: Path) -> None:
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.write_bytes(b"one video")
    b.write_bytes(b"one video")
    faces, cfg = FaceSettings(), ValidationSettings()
    store = FaceCache(tmp_path / "cache", faces, cfg)
    key, known = store.recall(a)
    assert key is not None and known is None
    store.keep(key, (samples(), (640, 480)))
    key_b, hit = store.recall(b)  # the same bytes under another name
    assert key_b == key and hit is not None and same(hit[0], samples())
    others = [
        FaceCache(tmp_path / "cache", FaceSettings(detector_confidence=0.6), cfg),
        FaceCache(tmp_path / "cache", faces, ValidationSettings(sample_fps=5.0)),
        FaceCache(tmp_path / "cache", faces, ValidationSettings(max_samples=10)),
    ]
    assert all(other.recall(a)[1] is None for other in others)
    # rule settings are not part of the key: the rules run afresh on the faces
    rules = FaceCache(tmp_path / "cache", faces, ValidationSettings(max_yaw_degrees=20.0))
    assert rules.recall(a)[1] is not None


def test_the_key_follows_the_face_code(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"video")
    store = FaceCache(tmp_path / "cache", FaceSettings(), ValidationSettings())
    before = store.recall(video)[0]
    monkeypatch.setattr(facecache, "code_signature", lambda: "other code")
    assert store.recall(video)[0] != before


@pytest.mark.parametrize("damage", ["other layout", "cut short", "empty", "not a zip"])
def test_an_entry_that_does_not_read_back_is_a_miss_and_dropped(
    tmp_path: Path, damage: str
) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"video")
    store = FaceCache(tmp_path / "cache", FaceSettings(), ValidationSettings())
    key, _ = store.recall(video)
    assert key is not None
    arrays = to_arrays(samples(), (640, 480))
    if damage == "other layout":
        del arrays["landmarks"]
    entry = cache.AnalysisCache(tmp_path / "cache").save_arrays(key, arrays)
    if damage == "cut short":
        entry.write_bytes(entry.read_bytes()[:100])
    elif damage == "empty":
        entry.write_bytes(b"")
    elif damage == "not a zip":
        entry.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    assert store.recall(video) == (key, None)
    assert not list((tmp_path / "cache").rglob("*.npz"))


def test_a_cache_that_cannot_be_written_costs_only_time(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"video")
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    store = FaceCache(blocked, FaceSettings(), ValidationSettings())
    key, known = store.recall(video)
    assert key is not None and known is None
    store.keep(key, (samples(), (640, 480)))  # logged, not raised
    assert store.recall(tmp_path / "missing.mp4") == (None, None)


def test_a_pictures_frame_is_kept_with_the_evidence(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"video")
    store = FaceCache(tmp_path / "cache", FaceSettings(), ValidationSettings())
    key, _ = store.recall(video)
    assert key is not None
    frame = np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    assert store.frame(key, 17) is None
    store.keep_frame(key, 17, frame)
    back = store.frame(key, 17)
    assert back is not None and back.dtype == np.uint8 and np.array_equal(back, frame)
    assert store.frame(key, 18) is None  # another frame of the video: not kept
    (entry,) = cache.scan_entries(tmp_path / "cache")  # trimmed with the evidence
    assert entry.key == key


def test_a_pictures_frame_that_cannot_be_kept_costs_only_time(tmp_path: Path) -> None:
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    store = FaceCache(blocked, FaceSettings(), ValidationSettings())
    store.keep_frame("ab" * 32, 3, np.zeros((4, 4, 3), np.uint8))  # logged, not raised
    assert store.frame("ab" * 32, 3) is None


@pytest.fixture
def fresh_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "_digests", OrderedDict())


def test_a_file_digest_is_remembered_only_while_the_file_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_digests: None
) -> None:
    path = tmp_path / "v.mp4"
    path.write_bytes(b"first content")
    first = cache.file_digest(path)
    reads: list[str] = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: reads.append(str(p))
                        or real_open(p, *a, **k))
    assert cache.file_digest(path) == first and reads == []  # remembered, not read again
    # new bytes of the same size with the old times put back (cp -p, rsync -a): the inode
    # change time still moves
    st = path.stat()
    time.sleep(0.01)
    path.write_bytes(b"other content")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.file_digest(path) != first and reads == [str(path)]


def test_two_callers_at_once_read_a_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_digests: None
) -> None:
    path = tmp_path / "big.mp4"
    path.write_bytes(b"x" * (3 * cache.CHUNK))
    reads: list[int] = []
    real_sha = hashlib.sha256

    class Slow:
        def __init__(self) -> None:
            self._h = real_sha()

        def update(self, block: bytes) -> None:
            reads.append(len(block))
            time.sleep(0.05)
            self._h.update(block)

        def digest(self) -> bytes:
            return self._h.digest()

    monkeypatch.setattr(cache.hashlib, "sha256", lambda *a: Slow() if not a else real_sha(*a))
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: cache.file_digest(path), range(2)))
    assert results[0] == results[1] == real_sha(path.read_bytes()).digest()
    assert len(reads) == 3  # three chunks, read by one of the two


def test_keeping_faces_holds_the_shared_folder_to_its_limit(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"video")
    root = tmp_path / "cache"
    old = cache.AnalysisCache(root).save_arrays("ab" * 32, {"x": np.zeros(5000, np.uint8)})
    os.utime(old, (1, 1))  # an engine's template analysis, last used long ago
    store = FaceCache(root, FaceSettings(), ValidationSettings(), max_bytes=10)
    key, _ = store.recall(video)
    assert key is not None
    store.keep(key, (samples(), (640, 480)))
    assert not old.exists()  # the oldest went; the faces just kept stayed, alone over the limit
    hit = store.recall(video)[1]
    assert hit is not None and same(hit[0], samples())
