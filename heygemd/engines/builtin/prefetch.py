"""Items produced ahead in a worker thread: decoding and rendering beside the consumer.

PyAV's decoders, OpenCV and torch release the GIL, so on two cores work done in the worker
(decoding a template, transplanting mouths) overlaps the consumer's (face analysis, x264).
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any


def start_worker(work: Callable[[], None], name: str) -> threading.Thread:
    """A started daemon thread running ``work`` in a copy of the caller's context (log lines
    from the worker keep the job's id)."""
    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(work,), name=name, daemon=True)
    worker.start()
    return worker


def _close(items: Iterator[Any]) -> None:
    """Close ``items`` when it can be closed (a generator: its ``finally`` runs now)."""
    close = getattr(items, "close", None)
    if close is not None:
        close()


class Ahead:
    """``items`` produced in a worker thread from construction on, up to ``depth`` items ahead
    of the consumer (and one more in the worker's hands). Iterate it once; the worker's
    exceptions are raised by ``next``. :meth:`close` (also on leaving ``with``) stops the
    worker and closes ``items`` in it before returning, whether or not it was iterated.
    """

    def __init__(self, items: Iterator[Any], depth: int, name: str = "builtin-render") -> None:
        self._items = items
        self._box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._ended = False
        self._worker = start_worker(self._work, name)

    def _put(self, kind: str, value: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._box.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for item in self._items:
                if not self._put("item", item):
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put("error", exc)
            return
        finally:
            _close(self._items)
        self._put("end", None)

    def __iter__(self) -> Ahead:
        return self

    def __next__(self) -> Any:
        if self._ended:
            raise StopIteration
        kind, value = self._box.get()
        if kind == "item":
            return value
        self._ended = True
        if kind == "error":
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stop the worker (at its next item) and wait for it. Idempotent; from the worker
        itself (a finalizer that ran there) it only asks it to stop."""
        self._ended = True
        self._stop.set()
        if threading.current_thread() is not self._worker:
            self._worker.join()

    def __enter__(self) -> Ahead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prefetched(
    items: Iterator[Any], depth: int, name: str = "builtin-render"
) -> Generator[Any, None, None]:
    """``items`` produced in a worker thread, up to ``depth`` ahead of the consumer, from the
    first ``next`` on (:class:`Ahead` starts at once).

    The worker's exceptions are raised here; closing this generator early (or an exception in
    the consumer) stops the worker and closes ``items`` in it before returning.
    """
    with Ahead(items, depth, name) as ahead:
        yield from ahead


class Held:
    """Every item of ``items`` produced in a worker thread from construction on and kept (no
    limit: for what is held anyway), for consumers in any order: :meth:`get` waits for item
    ``index``. The worker's exception is raised by :meth:`get`; :meth:`close` stops the worker
    and closes ``items`` in it."""

    def __init__(self, items: Iterator[Any], name: str = "builtin-decode") -> None:
        self.items: list[Any] = []
        self._source = items
        self._ended = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._worker = start_worker(self._work, name)

    def _work(self) -> None:
        try:
            for item in self._source:
                with self._changed:
                    self.items.append(item)
                    self._changed.notify_all()
                if self._stop.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the consumers
            self._error = exc
        finally:
            _close(self._source)
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def get(self, index: int) -> Any | None:
        """Item ``index`` once produced; None when ``items`` ended before it."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.items) > index or self._ended)
            if index < len(self.items):
                return self.items[index]
            if self._error is not None:
                raise self._error
            return None

    def close(self) -> None:
        """Stop the worker (after its current item) and wait for it. Idempotent."""
        self._stop.set()
        self._worker.join()
