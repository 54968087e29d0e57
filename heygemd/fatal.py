"""Where a fatal-signal dump goes (faulthandler: SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL).

faulthandler holds one target for the whole process; this module is the one place that sets
it, so a block can send dumps elsewhere for a while and give the previous target back. The
daemon points it at a file in the running job's work folder: after a restart, a non-empty file
says the process died of the job's own crash; an empty one says it was killed from outside
(kill -9, the OOM killer, a power cut), which is never held against the job.
"""

from __future__ import annotations

import contextlib
import faulthandler
import sys
from collections.abc import Iterator
from typing import IO, Any

_targets: list[IO[Any] | int] = []  # innermost last; empty: whatever was set before us


@contextlib.contextmanager
def dumps_to(target: IO[Any] | int) -> Iterator[None]:
    """Send fatal-signal dumps (all threads) to ``target`` (an open file or a descriptor) for
    the block; the previous target (or none) is restored on exit."""
    was_enabled = faulthandler.is_enabled()
    faulthandler.enable(file=target, all_threads=True)
    _targets.append(target)
    try:
        yield
    finally:
        _targets.pop()
        if _targets:
            faulthandler.enable(file=_targets[-1], all_threads=True)
        elif was_enabled:
            faulthandler.enable(file=sys.stderr, all_threads=True)
        else:
            faulthandler.disable()
