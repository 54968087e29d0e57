"""What a job folder holds and whether it can be a job: the extension and ignore rules and
the folder-level checks, in one place.

Below both users: the daemon's inbox and ``heygemd validate`` (:mod:`heygemd.validation.dryrun`)
apply the same rules, so the dry run and the daemon give the same folder-level verdict. Everything
is pure except :func:`scan_entries`, the one function that reads the filesystem (lstat only).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePath
from typing import Literal

from heygemd.settings import LimitSettings

# In the order the user reads them in messages.
AUDIO_EXTS = (".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".flv")

IGNORED_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
IGNORED_PREFIXES = (".", "~$")  # hidden files (incl. ._* and .~lock*), Office lock files
IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial")

FileKind = Literal["audio", "video"]

SUBFOLDER_RULE = "files must be directly in the job folder, not in subfolders"
JOB_TOML = "job.toml"
MAX_WALK_ENTRIES = 2000  # a folder with more entries than this is refused without a full walk


def is_ignored(name: str) -> bool:
    """Hidden and temporary files that are never job inputs (case-insensitive)."""
    lower = name.lower()
    return (
        lower in IGNORED_NAMES
        or lower.startswith(IGNORED_PREFIXES)
        or lower.endswith(IGNORED_SUFFIXES)
    )


HIDDEN_RULE = "a name that starts with a dot is hidden and not used: rename it without the dot"
APPLE_DOUBLE = "._"  # macOS's metadata twin of a file on a share: hidden, never named to users


def hidden_inputs(entries: Sequence[Entry]) -> tuple[str, ...]:
    """Top-level files named like an audio or video but hidden (a leading dot), so never used:
    the user is told, since such a name is rarely meant ('..\\clip.mp4', '.clip.mp4'). macOS
    metadata twins ('._clip.mp4') are left out (pure)."""
    return tuple(
        e.rel for e in entries
        if e.kind is EntryKind.FILE and "/" not in e.rel and e.rel.startswith(".")
        and is_text(e.rel) and not e.rel.startswith(APPLE_DOUBLE) and classify(e.rel) is not None
        and not e.rel.lower().endswith(IGNORED_SUFFIXES)
    )


def hidden_hint(names: Sequence[str]) -> str:
    """' Not used: '.a.wav' (a name that starts with a dot ...).' for hidden inputs; '' none."""
    if not names:
        return ""
    shown = ", ".join(f"'{n}'" for n in names[:3]) + (" ..." if len(names) > 3 else "")
    return f" Not used: {shown} ({HIDDEN_RULE})."


def extension(name: str) -> str:
    """The lower-case extension with its dot ("" without one): "Clip.MP4" -> ".mp4"."""
    return PurePath(name).suffix.lower()


def allowed_extensions(kind: FileKind) -> tuple[str, ...]:
    return AUDIO_EXTS if kind == "audio" else VIDEO_EXTS


def classify(name: str) -> FileKind | None:
    """"audio" or "video" by extension (case-insensitive); None for anything else."""
    ext = extension(name)
    if ext in AUDIO_EXTS:
        return "audio"
    if ext in VIDEO_EXTS:
        return "video"
    return None


def nested_hint(nested: Sequence[str]) -> str:
    """Plain words for input files found in subfolders ('' when none): where they are and that
    they must move up. ``nested`` holds paths relative to the job folder ('inner/v.wav')."""
    if not nested:
        return ""
    shown = ", ".join(f"'{n}'" for n in nested[:3]) + (" ..." if len(nested) > 3 else "")
    return f" Found in a subfolder: {shown}; {SUBFOLDER_RULE}: move it up into the job folder."


class EntryKind(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    SPECIAL = "special"  # fifo, socket, device


@dataclass(frozen=True)
class Entry:
    """One thing inside a job folder. ``rel`` uses '/' and is relative to the job folder."""

    rel: str
    kind: EntryKind
    size: int  # bytes
    mtime_ns: int

    @property
    def name(self) -> str:
        """The last part of ``rel``."""
        return self.rel.rsplit("/", 1)[-1]


Snapshot = tuple[Entry, ...]


def written_since(before: Snapshot, after: Snapshot) -> tuple[str, ...]:
    """Files (and links, pipes) of ``after`` that are new or changed (size, time, kind) since
    ``before``: a copy still going on. Entries that went away are not counted, nor folders,
    whose times change when the daemon itself strips an unsafe entry from them (a file written
    inside shows up on its own). Pure."""
    earlier = set(before)
    return tuple(e.rel for e in after if e not in earlier and e.kind is not EntryKind.DIR)


def require_real_dir(folder: Path) -> None:
    """Raise NotADirectoryError unless ``folder`` itself (not what a link points at) is a
    directory: os.scandir and os.rename would otherwise act on a link's target."""
    if not stat.S_ISDIR(os.lstat(folder).st_mode):
        raise NotADirectoryError(f"{folder} is not a real folder (a link or a file)")


def is_link(path: Path) -> bool:
    """``path`` itself is a symlink (never follows it; False when it does not exist)."""
    return path.is_symlink()


def _kind(mode: int) -> EntryKind:
    if stat.S_ISLNK(mode):
        return EntryKind.SYMLINK
    if stat.S_ISDIR(mode):
        return EntryKind.DIR
    if stat.S_ISREG(mode):
        return EntryKind.FILE
    return EntryKind.SPECIAL


def scan_entries(folder: Path) -> Snapshot:
    """Everything under ``folder`` (lstat only, never following links), sorted by path.

    Raises OSError when the folder cannot be read (e.g. it vanished) and NotADirectoryError
    when ``folder`` itself is not a real directory (e.g. swapped for a link to elsewhere).
    """
    require_real_dir(folder)
    found: list[Entry] = []
    pending = [("", folder)]
    while pending and len(found) <= MAX_WALK_ENTRIES:
        prefix, current = pending.pop()
        with os.scandir(current) as it:
            for item in it:
                st = item.stat(follow_symlinks=False)
                entry = Entry(prefix + item.name, _kind(st.st_mode), st.st_size, st.st_mtime_ns)
                found.append(entry)
                if entry.kind is EntryKind.DIR:
                    pending.append((entry.rel + "/", Path(item.path)))
    return tuple(sorted(found, key=lambda e: e.rel))


@dataclass(frozen=True)
class JobFiles:
    """A job folder that passed the folder-level checks. Names are relative to the folder."""

    audio: str
    videos: tuple[str, ...]
    job_toml: str | None


@dataclass(frozen=True)
class FolderProblem:
    """Why a whole job folder is refused before any media is opened."""

    code: str
    message: str  # plain words: what is wrong and what to change
    file: str | None = None


def is_text(name: str) -> bool:
    """The name decodes as UTF-8 (a name written under another character set arrives with
    undecodable bytes, which no report, log line or message can carry)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(name: str) -> str:
    """``name`` as a person can read it: undecodable bytes as '�' (pure)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def check_folder(entries: Snapshot, limits: LimitSettings) -> JobFiles | FolderProblem:
    """Folder-level rules (pure). Only top-level files count as inputs; files in sub-folders are
    carried along untouched. Unsafe entries anywhere (links, devices, pipes) refuse the job, and
    so does a name that is not valid text."""
    garbled = next((e.rel for e in entries if not is_text(e.rel)), None)
    if garbled is not None:
        return FolderProblem(
            "unreadable_name", f"The name '{shown(garbled)}' is not valid text (it was written "
            "with another character set). Rename it using plain letters and copy the folder "
            "again.")
    for e in entries:
        if e.kind is EntryKind.SYMLINK:
            return FolderProblem(
                "symlink", f"'{e.rel}' is a link (shortcut). Copy the real file into the folder "
                "instead.", e.rel)
        if e.kind is EntryKind.SPECIAL:
            return FolderProblem(
                "special_file", f"'{e.rel}' is not a regular file (a pipe or device). Remove it.",
                e.rel)
    files = [
        e for e in entries if e.kind is EntryKind.FILE and not is_ignored(e.name)
    ]
    if len(files) > limits.max_job_files:
        return FolderProblem(
            "too_many_files", f"The folder holds {len(files)} files; at most "
            f"{limits.max_job_files} are allowed. Split it into several jobs.")
    max_bytes = limits.max_file_mb * 1024 * 1024
    for e in files:
        if e.size > max_bytes:
            return FolderProblem(
                "file_too_large", f"'{e.rel}' is {e.size / 1048576:.0f} MB; the limit is "
                f"{limits.max_file_mb:.0f} MB per file. Use a shorter or smaller file.", e.rel)
    top = [e.rel for e in files if "/" not in e.rel]
    audios = sorted(n for n in top if classify(n) == "audio")
    videos = tuple(sorted(n for n in top if classify(n) == "video"))
    exts = "/".join(sorted(e.lstrip(".") for e in AUDIO_EXTS))
    nested = [e.rel for e in files if "/" in e.rel]
    hidden = hidden_inputs(entries)
    if not audios:
        hint = nested_hint([n for n in nested if classify(n) == "audio"]) + \
            hidden_hint([n for n in hidden if classify(n) == "audio"])
        return FolderProblem(
            "no_audio", f"The folder has no audio file. Add exactly one ({exts}).{hint}")
    if len(audios) > 1:
        return FolderProblem(
            "multiple_audio", f"The folder has {len(audios)} audio files ({', '.join(audios)}). "
            "Keep exactly one.")
    if not videos:
        vexts = "/".join(sorted(e.lstrip(".") for e in VIDEO_EXTS))
        hint = nested_hint([n for n in nested if classify(n) == "video"]) + \
            hidden_hint([n for n in hidden if classify(n) == "video"])
        return FolderProblem(
            "no_video",
            f"The folder has no video file. Add one or more template videos ({vexts}).{hint}")
    toml = next((n for n in top if n.lower() == JOB_TOML), None)
    return JobFiles(audios[0], videos, toml)


def unused(entries: Snapshot) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(top-level files that are not inputs, e.g. 'notes.txt'; top-level subfolders, e.g.
    'inner/') — what the job ignores, to tell the user (pure). Hidden/temporary files are not
    listed."""
    files = tuple(
        e.rel for e in entries
        if e.kind is EntryKind.FILE and "/" not in e.rel and not is_ignored(e.name)
        and classify(e.rel) is None and e.rel.lower() != JOB_TOML and is_text(e.rel)
    )
    folders = tuple(
        f"{e.rel}/" for e in entries
        if e.kind is EntryKind.DIR and "/" not in e.rel and not is_ignored(e.name)
        and is_text(e.rel)
    )
    return files, folders
