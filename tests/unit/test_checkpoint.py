"""Per-video checkpoints: the inputs key, write -> read back, and every way one is distrusted."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from heygemd.daemon import checkpoint
from heygemd.daemon.checkpoint import FileStamp, inputs_key
from heygemd.report import Finding, Severity, VideoResult, VideoStatus
from heygemd.settings import Settings

VIDEO = FileStamp("a.mp4", 1000, 1_700_000_000_000_000_000)
AUDIO = FileStamp("voice.wav", 48000, 1_700_000_000_000_000_001)
ENGINE = {"name": "echo", "version": "1.0", "device": "cpu"}
SETTINGS = Settings().model_dump(mode="json")
KEY = inputs_key(VIDEO, AUDIO, SETTINGS, ENGINE)


def done_result() -> VideoResult:
    warn = Finding(code="small_face", severity=Severity.WARN, message="small",
                   picture="a.warning.jpg")
    return VideoResult(name="a.mp4", status=VideoStatus.DONE, output="a.mp4", findings=[warn],
                       pictures=["a.warning.jpg"], timings_ms={"examine": 10.0, "render": 20.0})


@pytest.fixture
def staged(tmp_path: Path) -> Path:
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "a.mp4").write_bytes(b"mp4 bytes" * 100)
    (staging / "a.warning.jpg").write_bytes(b"jpeg")
    return staging


def test_inputs_key_follows_the_inputs_and_the_settings_that_shape_a_video() -> None:
    assert inputs_key(VIDEO, AUDIO, SETTINGS, ENGINE) == KEY  # stable
    changed = [
        inputs_key(FileStamp("a.mp4", 1001, VIDEO.mtime_ns), AUDIO, SETTINGS, ENGINE),
        inputs_key(FileStamp("a.mp4", 1000, VIDEO.mtime_ns + 1), AUDIO, SETTINGS, ENGINE),
        inputs_key(FileStamp("b.mp4", 1000, VIDEO.mtime_ns), AUDIO, SETTINGS, ENGINE),
        inputs_key(VIDEO, FileStamp("voice.wav", 48001, AUDIO.mtime_ns), SETTINGS, ENGINE),
        inputs_key(VIDEO, AUDIO, {**SETTINGS, "output": {**SETTINGS["output"], "crf": 30}},
                   ENGINE),
        inputs_key(VIDEO, AUDIO, SETTINGS, {**ENGINE, "device": "cuda"}),
        inputs_key(VIDEO, AUDIO, SETTINGS, {**ENGINE, "version": "2.0"}),
    ]
    assert KEY not in changed and len(set(changed)) == len(changed)
    unrelated = {**SETTINGS, "daemon": {**SETTINGS["daemon"], "graceful_timeout_seconds": 1.0},
                 "paths": {**SETTINGS["paths"], "inbox": "/elsewhere"}}
    assert inputs_key(VIDEO, AUDIO, unrelated, ENGINE) == KEY


def test_file_stamp_reads_name_size_and_mtime(tmp_path: Path) -> None:
    path = tmp_path / "x.mp4"
    path.write_bytes(b"12345")
    os.utime(path, ns=(1, 2_000_000_123))
    assert FileStamp.of(path) == FileStamp("x.mp4", 5, 2_000_000_123)


def test_produced_files() -> None:
    assert checkpoint.produced_files(done_result()) == ["a.mp4", "a.warning.jpg"]
    with_preview = done_result().model_copy(update={"preview": "a.preview.jpg"})
    assert checkpoint.produced_files(with_preview) == ["a.mp4", "a.preview.jpg", "a.warning.jpg"]
    refused = VideoResult(name="b.mov", status=VideoStatus.REJECTED, pictures=["b.refused.jpg"])
    assert checkpoint.produced_files(refused) == ["b.refused.jpg"]
    failed = VideoResult(name="c.mp4", status=VideoStatus.FAILED, output="c.mp4")
    assert checkpoint.produced_files(failed) == []


def test_save_then_load_and_restore(tmp_path: Path, staged: Path) -> None:
    holder = tmp_path / "work" / "J1"
    slot = checkpoint.save(holder, "a.mp4", KEY, done_result(), staged)
    assert slot.parent == holder / checkpoint.CHECKPOINTS
    assert sorted(p.name for p in slot.iterdir()) == ["a.mp4", "a.warning.jpg", "result.json"]
    assert (slot / "a.mp4").stat().st_ino == (staged / "a.mp4").stat().st_ino  # a hard link
    found = checkpoint.load(holder, "a.mp4", KEY)
    assert found is not None and found.result == done_result()
    assert found.files == ("a.mp4", "a.warning.jpg")
    target = tmp_path / "staging2"
    target.mkdir()
    checkpoint.restore(found, target)
    assert (target / "a.mp4").read_bytes() == (staged / "a.mp4").read_bytes()
    assert sorted(p.name for p in target.iterdir()) == ["a.mp4", "a.warning.jpg"]  # no temps
    assert checkpoint.load(holder, "b.mp4", KEY) is None  # another video: no checkpoint


def test_names_map_to_distinct_safe_slots(tmp_path: Path) -> None:
    slots = {checkpoint.slot_dir(tmp_path, n) for n in ("a.mp4", "A.mp4", "../x.mp4", "视频.mp4")}
    assert len(slots) == 4 and all(s.parent == tmp_path / checkpoint.CHECKPOINTS for s in slots)


def test_other_inputs_make_a_checkpoint_stale(tmp_path: Path, staged: Path) -> None:
    checkpoint.save(tmp_path, "a.mp4", KEY, done_result(), staged)
    other = inputs_key(FileStamp("a.mp4", 999, VIDEO.mtime_ns), AUDIO, SETTINGS, ENGINE)
    with capture_logs() as logs:
        assert checkpoint.load(tmp_path, "a.mp4", other) is None
    assert [e["event"] for e in logs] == ["checkpoint.stale"]


@pytest.mark.parametrize("damage", ["no_result", "missing_file", "truncated_file", "bad_json",
                                    "wrong_video", "bad_result"])
def test_incomplete_or_damaged_checkpoints_are_not_trusted(
    tmp_path: Path, staged: Path, damage: str
) -> None:
    slot = checkpoint.save(tmp_path, "a.mp4", KEY, done_result(), staged)
    result_file = slot / checkpoint.RESULT_FILE
    record = json.loads(result_file.read_text())
    if damage == "no_result":  # killed before result.json was written
        result_file.unlink()
    elif damage == "missing_file":
        (slot / "a.warning.jpg").unlink()
    elif damage == "truncated_file":
        (slot / "a.mp4").unlink()
        (slot / "a.mp4").write_bytes(b"mp4")
    elif damage == "bad_json":
        result_file.write_text('{"format": 1, "key": ')
    elif damage == "wrong_video":
        result_file.write_text(json.dumps({**record, "video": "b.mp4"}))
    else:
        result_file.write_text(json.dumps({**record, "result": {"name": "a.mp4"}}))
    assert checkpoint.load(tmp_path, "a.mp4", KEY) is None


def test_saving_again_replaces_the_slot(tmp_path: Path, staged: Path) -> None:
    checkpoint.save(tmp_path, "a.mp4", KEY, done_result(), staged)
    refused = VideoResult(name="a.mp4", status=VideoStatus.REJECTED, reason_code="no_face")
    slot = checkpoint.save(tmp_path, "a.mp4", KEY, refused, staged)
    assert sorted(p.name for p in slot.iterdir()) == ["result.json"]
    found = checkpoint.load(tmp_path, "a.mp4", KEY)
    assert found is not None and found.result == refused and found.files == ()


def test_place_copies_across_filesystems(
    tmp_path: Path, staged: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    slot = checkpoint.save(tmp_path, "a.mp4", KEY, done_result(), staged)
    assert (slot / "a.mp4").stat().st_ino != (staged / "a.mp4").stat().st_ino
    assert (slot / "a.mp4").read_bytes() == (staged / "a.mp4").read_bytes()
    assert checkpoint.load(tmp_path, "a.mp4", KEY) is not None


def test_a_failed_save_leaves_no_trusted_checkpoint(tmp_path: Path, staged: Path) -> None:
    checkpoint.save(tmp_path, "a.mp4", KEY, done_result(), staged)
    (staged / "a.warning.jpg").unlink()  # the source vanished: the save raises half-way
    with pytest.raises(OSError):
        checkpoint.save(tmp_path, "a.mp4", KEY, done_result(), staged)
    assert checkpoint.load(tmp_path, "a.mp4", KEY) is None
