"""Which files of a job folder are inputs: the extension and ignore rules, in one place.

Pure and below both users: the daemon's inbox (folder-level checks) and ``heygemd validate``
(:mod:`heygemd.examine`, :mod:`heygemd.validate`) apply the same rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import Literal

# In the order the user reads them in messages.
AUDIO_EXTS = (".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".flv")

IGNORED_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
IGNORED_PREFIXES = (".", "~$")  # hidden files (incl. ._* and .~lock*), Office lock files
IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial")

FileKind = Literal["audio", "video"]

SUBFOLDER_RULE = "files must be directly in the job folder, not in subfolders"


def is_ignored(name: str) -> bool:
    """Hidden and temporary files that are never job inputs (case-insensitive)."""
    lower = name.lower()
    return (
        lower in IGNORED_NAMES
        or lower.startswith(IGNORED_PREFIXES)
        or lower.endswith(IGNORED_SUFFIXES)
    )


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
