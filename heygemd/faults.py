"""Whose fault is an error: the user's input, the machine, or our code (pure).

A run that ends because the machine is short of something (space, permission to write, a
share that stopped answering) is never held against the job: the job waits and runs again.
The words here are for STATUS.txt and RESULT.txt, which users read on the share: they name the
kind of place ("the outbox"), never a server path, and never an errno.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path

from heygemd.errors import MachineFault, ResourceError

SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
READ_ONLY_ERRNOS = frozenset({errno.EROFS})
DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM})
UNREACHABLE_ERRNOS = frozenset({
    errno.EIO, errno.ESTALE, errno.ENOTCONN, errno.ETIMEDOUT, errno.EHOSTDOWN,
    errno.EHOSTUNREACH, errno.ENETDOWN, errno.ENETUNREACH, errno.ECONNRESET,
})
SHORT_ERRNOS = frozenset({errno.ENOMEM, errno.EMFILE, errno.ENFILE})
MACHINE_ERRNOS = (SPACE_ERRNOS | READ_ONLY_ERRNOS | DENIED_ERRNOS | UNREACHABLE_ERRNOS
                  | SHORT_ERRNOS)


def chain(err: BaseException) -> Iterator[BaseException]:
    """``err`` and the exceptions it was raised from or during, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        hidden = current.__suppress_context__  # `raise X from None`: not caused by it
        current = current.__cause__ or (None if hidden else current.__context__)


def os_error(err: BaseException) -> OSError | None:
    """The first OSError with an errno in ``err``'s chain (PyAV's errors are OSErrors too)."""
    return next((e for e in chain(err) if isinstance(e, OSError) and e.errno is not None), None)


def is_out_of_space(err: BaseException) -> bool:
    """A disk (or quota) was full somewhere in ``err``'s chain."""
    found = os_error(err)
    return found is not None and found.errno in SPACE_ERRNOS


def is_machine_fault(err: BaseException) -> bool:
    """The machine's problem (a full, read-only, forbidden or unreachable place; memory or file
    handles short), not the job's: its run does not count against it."""
    if any(isinstance(e, ResourceError) or _store_full(e) for e in chain(err)):
        return True
    found = os_error(err)
    return found is not None and found.errno in MACHINE_ERRNOS


def _store_full(err: BaseException) -> bool:
    """SQLite's own disk errors (not OSErrors): the job database's disk is full or failing."""
    return isinstance(err, sqlite3.OperationalError) and any(
        words in str(err) for words in ("disk is full", "disk I/O error"))


def is_unreadable_input(err: BaseException, path: Path) -> bool:
    """The service may not read the user's own file ``path`` (e.g. copied in as another user
    with no read rights): the user's to fix, not the machine's."""
    found = os_error(err)
    return found is not None and found.errno in DENIED_ERRNOS and \
        found.filename is not None and Path(str(found.filename)) == path


def place_of(err: BaseException, places: Mapping[str, Path]) -> str | None:
    """The name of the place (a key of ``places``, e.g. "the outbox") under which the failing
    file lies, or None when it is none of them or unknown."""
    full = next((e for e in chain(err) if isinstance(e, MachineFault) and e.folder), None)
    found = os_error(err)
    files: list[object] = []
    if found is not None:  # a copy names both files; a write error is the target's
        both = [found.filename2, found.filename]
        files += both if found.errno in SPACE_ERRNOS | READ_ONLY_ERRNOS else both[::-1]
    files += [full.folder] if full is not None else []  # where a file was being written
    for filename in files:  # none for e.g. ENOSPC from write(), which names no file
        for name, root in places.items() if filename else ():
            try:
                Path(str(filename)).relative_to(root)
            except ValueError:
                continue
            return name
    return None


def machine_words(err: BaseException, place: str | None) -> str:
    """What went wrong, in a sentence fragment a user understands:
    'no space is left on the disk that holds the outbox'."""
    where = place or "the server's disk"
    found = os_error(err)
    code = found.errno if found is not None else None
    if code in SPACE_ERRNOS or (code is None and is_out_of_space(err)):
        return f"no space is left on the disk that holds {place}" if place \
            else "no space is left on the server's disk"
    if code in READ_ONLY_ERRNOS:
        return f"{where} is read-only"
    if code in DENIED_ERRNOS:
        return f"the service is not allowed to write to {where}"
    if code in UNREACHABLE_ERRNOS:
        return f"{where} did not respond (a disk or network share problem)"
    if code in SHORT_ERRNOS:
        return "the server ran short of memory or open files"
    return "the server could not write the results"
