"""Processes as /proc shows them, for the tests that check helper processes end."""

from __future__ import annotations

from pathlib import Path


def alive(pid: int) -> bool:
    """A process that runs (not ended, not a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
