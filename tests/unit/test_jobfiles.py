"""Which names in a job folder are inputs: the rules shared by the inbox and `heygemd validate`."""

from __future__ import annotations

import pytest

from heygemd.validation import jobfiles, rules


@pytest.mark.parametrize("name", [
    ".DS_Store", "Thumbs.db", "._clip.mp4", "~$doc.docx", "clip.mp4.part", "x.tmp",
    "video.mp4.crdownload", ".~lock.file#", ".hidden.wav", "THUMBS.DB",
])
def test_ignored_names(name: str) -> None:
    assert jobfiles.is_ignored(name)


@pytest.mark.parametrize("name", ["clip.mp4", "audio.WAV", "a..b.mp4", "视频.mp4", "READY"])
def test_normal_names_are_not_ignored(name: str) -> None:
    assert not jobfiles.is_ignored(name)


@pytest.mark.parametrize(("name", "kind"), [
    ("Speech.MP3", "audio"), ("a.flac", "audio"), ("clip.MOV", "video"), ("a.b.webm", "video"),
    ("notes.txt", None), ("job.toml", None), ("noext", None), ("mp4", None),
])
def test_classify_by_extension_case_insensitive(name: str, kind: str | None) -> None:
    assert jobfiles.classify(name) == kind


def test_validate_accepts_exactly_what_classify_calls_that_kind() -> None:
    for ext in jobfiles.AUDIO_EXTS + jobfiles.VIDEO_EXTS + (".txt", ".wmv"):
        name = f"x{ext.upper()}"
        for kind in ("audio", "video"):
            accepted = rules.check_extension(name, kind) == []
            assert accepted == (jobfiles.classify(name) == kind), (name, kind)


def test_written_since_sees_growth_and_new_files_not_removals() -> None:
    from heygemd.validation.jobfiles import Entry, EntryKind, written_since

    video = Entry("a.mp4", EntryKind.FILE, 100, 1)
    audio = Entry("v.wav", EntryKind.FILE, 50, 1)
    link = Entry("x", EntryKind.SYMLINK, 0, 1)
    before = (video, audio, link)
    assert written_since(before, (video, audio)) == ()  # the daemon stripped the link
    grown = Entry("a.mp4", EntryKind.FILE, 200, 2)
    new = Entry("b.mp4", EntryKind.FILE, 10, 3)
    assert written_since(before, (grown, new, audio)) == ("a.mp4", "b.mp4")
