"""Loose entries in the inbox root (files and links, not job folders): which count, and the
one status line that names them."""

from __future__ import annotations

import os
from pathlib import Path

from heygemd.daemon.inbox import is_loose, loose_entries
from heygemd.daemon.status import LOOSE_SHOWN, StatusView, loose_words, status_text

LINE = ("Not a job folder (left alone): 'loose voice.wav' - put the audio and videos together "
        "in a folder")


def test_loose_entries_are_files_and_links_not_folders_or_ignored_names(tmp_path: Path) -> None:
    (tmp_path / "job").mkdir()
    (tmp_path / "loose voice.wav").write_bytes(b"x")
    (tmp_path / "clip.mp4").write_bytes(b"x")
    (tmp_path / "to-job").symlink_to(tmp_path / "job")  # a link to a folder is still loose
    (tmp_path / "dangling").symlink_to(tmp_path / "missing")
    os.mkfifo(tmp_path / "pipe")
    for ignored in (".DS_Store", "big.mp4.part", "~$notes.docx", ".hidden"):
        (tmp_path / ignored).write_bytes(b"x")
    assert loose_entries(tmp_path) == ["clip.mp4", "dangling", "loose voice.wav", "pipe",
                                       "to-job"]
    assert not is_loose(tmp_path / "job")
    assert not is_loose(tmp_path / "gone.wav")


def test_loose_entries_of_a_missing_inbox_is_empty(tmp_path: Path) -> None:
    assert loose_entries(tmp_path / "nope") == []


def test_status_text_names_loose_entries_once_and_only_when_there_are_some() -> None:
    view = StatusView(updated_at="now", running=None, queued=(), recent=())
    assert "Not a job folder" not in status_text(view)
    lines = status_text(StatusView(updated_at="now", running=None, queued=(), recent=(),
                                   loose=("loose voice.wav",))).splitlines()
    assert lines.count(LINE) == 1
    assert lines.index(LINE) < lines.index("Last results:")


def test_loose_words_counts_what_it_does_not_name() -> None:
    names = [f"f{i}.wav" for i in range(LOOSE_SHOWN + 2)]
    words = loose_words(names)
    assert f"'f{LOOSE_SHOWN - 1}.wav' and 2 more - put" in words
    assert f"'f{LOOSE_SHOWN}.wav'" not in words
