"""Elapsed time for logs and reports, measured on the monotonic clock."""

from __future__ import annotations

import time


def ms_since(t0: float) -> float:
    """Milliseconds (rounded to 0.1) since ``t0``, a :func:`time.monotonic` reading."""
    return round((time.monotonic() - t0) * 1000, 1)
