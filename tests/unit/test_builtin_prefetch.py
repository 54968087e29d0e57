"""The builtin engine's render-ahead worker thread (prefetch.Ahead, prefetch.prefetched)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from heygemd.engines.builtin.prefetch import Ahead, prefetched


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


def test_ahead_works_before_it_is_asked_and_closes_untouched() -> None:
    made: list[int] = []
    started, closed = threading.Event(), threading.Event()

    def items() -> Iterator[int]:
        try:
            for i in range(1000):
                made.append(i)
                started.set()
                yield i
        finally:
            closed.set()

    ahead = Ahead(items(), 1)
    assert started.wait(5)  # made before anyone asked
    ahead.close()  # never iterated: the worker stops all the same
    assert closed.is_set()
    assert len(made) < 10  # no further than its depth (plus the item in its hands)
    assert list(ahead) == []


def test_held_items_are_kept_for_consumers_in_any_order() -> None:
    from heygemd.engines.builtin.prefetch import Held

    held = Held(iter(range(20)))
    assert held.get(15) == 15 and held.get(3) == 3  # waits for the later one
    assert held.get(20) is None and held.items == list(range(20))
    held.close()


def test_held_raises_the_worker_error_past_what_was_made() -> None:
    from heygemd.engines.builtin.prefetch import Held

    def items() -> Iterator[int]:
        yield 0
        raise ValueError("boom")

    held = Held(items())
    assert held.get(0) == 0
    with pytest.raises(ValueError, match="boom"):
        held.get(1)
    held.close()


def test_a_dropped_render_stream_stops_its_worker_at_once() -> None:
    """The engine's frame stream, dropped without close (a caller that raised): its worker
    stops then, not whenever the garbage collector next runs."""
    import gc

    import numpy as np

    from heygemd.engines.builtin.engine import _Frames

    closed = threading.Event()

    def batches() -> Iterator[list[np.ndarray]]:
        try:
            while True:
                yield [np.zeros((2, 2, 3), np.uint8)]
        finally:
            closed.set()

    frames = _Frames(batches(), 100, lambda f: None, 0.0, "t.mp4")
    next(frames)
    gc.disable()
    try:
        del frames
        assert closed.wait(5)
    finally:
        gc.enable()
