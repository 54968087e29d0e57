"""Items produced ahead in a worker thread: decoding and rendering beside the consumer.

PyAV's decoders, OpenCV and torch release the GIL, so on two cores work done in the worker
(decoding a template, transplanting mouths) overlaps the consumer's (face analysis, x264).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any


def prefetched(
    items: Iterator[Any], depth: int, name: str = "builtin-render"
) -> Generator[Any, None, None]:
    """``items`` produced in a worker thread, up to ``depth`` ahead of the consumer.

    The worker's exceptions are raised here; closing this generator early (or an exception in
    the consumer) stops the worker and closes ``items`` in it before returning.
    """
    import contextvars
    import queue
    import threading

    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                box.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put("item", item):
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put("error", exc)
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        put("end", None)

    context = contextvars.copy_context()  # log lines from the worker keep the job's id
    worker = threading.Thread(target=context.run, args=(work,), name=name, daemon=True)
    worker.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join()
