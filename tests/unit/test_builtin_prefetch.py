"""The builtin engine's render-ahead worker thread (engine.prefetched)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from heygemd.engines.builtin.engine import prefetched


def test_yields_everything_in_order() -> None:
    assert list(prefetched(iter(range(50)), 1)) == list(range(50))


def test_worker_errors_reach_the_consumer() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise ValueError("boom")

    out = []
    with pytest.raises(ValueError, match="boom"):
        for item in prefetched(items(), 1):
            out.append(item)
    assert out == [1]


def test_closing_early_stops_and_closes_the_source() -> None:
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            closed.set()

    stream = prefetched(items(), 1)
    assert next(stream) == 0
    stream.close()
    assert closed.is_set()
    assert not any(t.name == "builtin-render" for t in threading.enumerate())
