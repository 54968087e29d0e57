"""Job discovery, ignore rules, readiness and the claim (pure parts + a real temp folder)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from heygemd.daemon import inbox
from heygemd.daemon.inbox import Entry, EntryKind, FolderProblem, JobFiles, Readiness
from heygemd.settings import LimitSettings

LIMITS = LimitSettings()


def files(*names: str, size: int = 10) -> tuple[Entry, ...]:
    return tuple(Entry(n, EntryKind.FILE, size, 1) for n in names)


def test_classify_accepts_one_audio_and_videos_case_insensitive() -> None:
    found = inbox.classify(files("Speech.MP3", "b.MOV", "a.mp4", "notes.txt", "job.toml"), LIMITS)
    assert found == JobFiles("Speech.MP3", ("a.mp4", "b.MOV"), "job.toml")


@pytest.mark.parametrize(("names", "code"), [
    (("a.mp4",), "no_audio"),
    (("a.wav", "b.flac", "c.mp4"), "multiple_audio"),
    (("a.wav", "readme.txt"), "no_video"),
    (("a.wav", "sub/b.mp4"), "no_video"),  # only top-level files are inputs
])
def test_classify_refuses_folder_problems(names: tuple[str, ...], code: str) -> None:
    found = inbox.classify(files(*names), LIMITS)
    assert isinstance(found, FolderProblem) and found.code == code and found.message


def test_classify_ignores_hidden_audio_copies() -> None:
    found = inbox.classify(files("a.wav", "._a.wav", "v.mp4", "v.mp4.part"), LIMITS)
    assert found == JobFiles("a.wav", ("v.mp4",), None)


def test_classify_refuses_links_specials_and_limits() -> None:
    link = (Entry("x.mp4", EntryKind.SYMLINK, 5, 1),)
    assert inbox.classify(files("a.wav", "v.mp4") + link, LIMITS).code == "symlink"  # type: ignore[union-attr]
    fifo = (Entry("sub/p", EntryKind.SPECIAL, 0, 1),)
    assert inbox.classify(files("a.wav", "v.mp4") + fifo, LIMITS).code == "special_file"  # type: ignore[union-attr]
    many = files("a.wav", *[f"v{i}.mp4" for i in range(5)])
    assert inbox.classify(many, LimitSettings(max_job_files=3)).code == "too_many_files"  # type: ignore[union-attr]
    big = files("a.wav", "v.mp4", size=3 * 1024 * 1024)
    found = inbox.classify(big, LimitSettings(max_file_mb=2))
    assert isinstance(found, FolderProblem) and found.code == "file_too_large"


def test_readiness_waits_for_settle_and_restarts_on_change() -> None:
    r = Readiness(first_seen=0.0)
    snap = files("a.wav", "v.mp4")
    r.observe(snap, 0.0)
    assert not r.is_ready(0.5, 1.0, None)
    grown = files("a.wav", "v.mp4", size=20)
    r.observe(grown, 0.9)  # still being copied
    assert not r.is_ready(1.5, 1.0, None)
    r.observe(grown, 1.95)
    assert r.is_ready(1.95, 1.0, None)


def test_readiness_never_takes_empty_or_temp_only_folders() -> None:
    r = Readiness(first_seen=0.0)
    r.observe((), 0.0)
    assert not r.is_ready(100.0, 1.0, None)
    r.observe(files("v.mp4.part", ".DS_Store"), 0.0)
    assert not r.is_ready(100.0, 1.0, None)


def test_readiness_with_marker_needs_the_marker_file() -> None:
    r = Readiness(first_seen=0.0)
    r.observe(files("a.wav", "v.mp4"), 0.0)
    assert not r.is_ready(100.0, 0.0, "READY")
    r.observe(files("a.wav", "v.mp4", "READY"), 1.0)
    assert r.is_ready(1.0, 10.0, "READY")


def test_scan_entries_does_not_follow_links(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.wav").write_bytes(b"123")
    (tmp_path / "link").symlink_to("/etc")
    os.mkfifo(tmp_path / "pipe")
    kinds = {e.rel: e.kind for e in inbox.scan_entries(tmp_path)}
    assert kinds == {"sub": EntryKind.DIR, "sub/a.wav": EntryKind.FILE,
                     "link": EntryKind.SYMLINK, "pipe": EntryKind.SPECIAL}
    removed = inbox.strip_unsafe(tmp_path, inbox.scan_entries(tmp_path))
    assert sorted(removed) == ["link", "pipe"] and Path("/etc").is_dir()


def test_claim_is_a_rename_that_keeps_the_name(tmp_path: Path) -> None:
    source = tmp_path / "inbox" / "任务 1"
    source.mkdir(parents=True)
    (source / "a.wav").write_bytes(b"x")
    target = inbox.claim(source, tmp_path / "work", "J1")
    assert target == tmp_path / "work" / "J1" / "任务 1" and (target / "a.wav").is_file()
    assert not source.exists()
    with pytest.raises(OSError):
        inbox.claim(source, tmp_path / "work", "J2")  # gone: nothing claimed, nothing left
    assert not (tmp_path / "work" / "J2").exists()


def test_job_ids_sort_by_time_and_are_unique() -> None:
    a, b = inbox.new_job_id(1_000_000), inbox.new_job_id(2_000_000)
    assert a < b and len({inbox.new_job_id(5) for _ in range(50)}) == 50


def test_missing_inputs_found_in_a_subfolder_are_named() -> None:
    entries = (Entry("inner", EntryKind.DIR, 0, 1), *files("inner/p.mp4", "inner/v.wav"))
    found = inbox.classify(entries, LIMITS)
    assert isinstance(found, FolderProblem) and found.code == "no_audio"
    assert "'inner/v.wav'" in found.message and "directly in the job folder" in found.message
    found = inbox.classify((*entries, *files("v.wav")), LIMITS)
    assert isinstance(found, FolderProblem) and found.code == "no_video"
    assert "'inner/p.mp4'" in found.message and "inner/v.wav" not in found.message


def test_unused_lists_other_files_and_subfolders_not_hidden_ones() -> None:
    entries = (
        Entry("inner", EntryKind.DIR, 0, 1), Entry(".git", EntryKind.DIR, 0, 1),
        *files("a.wav", "v.mp4", "notes.txt", "job.toml", ".DS_Store", "inner/x.mp4"),
    )
    assert inbox.unused(entries) == (("notes.txt",), ("inner/",))


def test_scan_claim_and_strip_never_follow_a_linked_job_folder(tmp_path: Path) -> None:
    target = tmp_path / "server"
    target.mkdir()
    (target / "a.wav").write_bytes(b"x")
    (target / "inner").symlink_to("/etc")
    link = tmp_path / "inbox" / "x"
    link.parent.mkdir()
    link.symlink_to(target)
    with pytest.raises(NotADirectoryError):
        inbox.scan_entries(link)
    with pytest.raises(NotADirectoryError):
        inbox.claim(link, tmp_path / "work", "J")
    assert link.is_symlink() and not (tmp_path / "work" / "J").exists()
    assert inbox.strip_unsafe(link, (Entry("inner", EntryKind.SYMLINK, 0, 1),)) == []
    assert (target / "inner").is_symlink()
