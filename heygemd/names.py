"""Names heygemd derives from a user's names (outputs, pictures, temporary files): each fits in
one path component and is unique ignoring case (pure).

Linux filesystems and SMB shares hold at most 255 bytes in one name, counted in UTF-8; a user's
video may already use all of them, so ``<stem>.warning.jpg`` or ``.<name>.partial`` would not
fit. A name that must be cut keeps its start (what a person reads) and gets a short digest of
the whole stem, so two long names that differ only near the end stay apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

NAME_MAX = 255  # bytes in one path component (ext4, XFS, btrfs, tmpfs, SMB/CIFS)
DIGEST_CHARS = 8  # hex digits of sha256 appended to a cut stem: "~1a2b3c4d"


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def cut_utf8(text: str, limit: int) -> str:
    """The longest start of ``text`` whose UTF-8 form has at most ``limit`` bytes, cut between
    characters (never inside one)."""
    data = text.encode("utf-8", "surrogateescape")
    if len(data) <= limit:
        return text
    return data[: max(limit, 0)].decode("utf-8", "ignore")


def fit(stem: str, suffix: str, *, limit: int = NAME_MAX) -> str:
    """``stem + suffix`` when it fits in ``limit`` bytes, else the stem cut to make room for
    ``~<digest>`` and the suffix. The suffix is kept whole (it says what the file is)."""
    if utf8_len(stem) + utf8_len(suffix) <= limit:
        return stem + suffix
    mark = "~" + hashlib.sha256(stem.encode("utf-8", "surrogateescape")).hexdigest()[:DIGEST_CHARS]
    room = limit - utf8_len(suffix) - len(mark)
    if room < 1:
        raise ValueError(f"suffix {suffix!r} leaves no room for a name")
    return cut_utf8(stem, room).rstrip(" .") + mark + suffix


def choose(stem: str, suffix: str, taken: Iterable[str], *, limit: int = NAME_MAX) -> str:
    """A name ``stem+suffix`` (else ``stem-2+suffix``, ``stem-3+suffix``...) that fits in
    ``limit`` bytes and is not in ``taken``, compared ignoring case (SMB shares are
    case-insensitive: ``A.jpg`` and ``a.jpg`` would be one file there)."""
    lower = {t.casefold() for t in taken}
    name, n = fit(stem, suffix, limit=limit), 1
    while name.casefold() in lower:
        n += 1
        name = fit(stem, f"-{n}{suffix}", limit=limit)  # the stem is cut, never the number
    return name
