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

    before = set(threading.enumerate())  # other tests' renders may still hold workers
    stream = prefetched(items(), 1)
    assert next(stream) == 0
    [worker] = [t for t in threading.enumerate() if t not in before]
    assert worker.name == "builtin-render"
    stream.close()
    assert closed.is_set()
    assert not worker.is_alive()
