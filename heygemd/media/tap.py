"""One decode of a video seen by two readers.

The builtin engine's template analysis decodes every frame of a template; the validation's frame
pass, running beside it, wants a few of the same frames (its samples). Without a tap the frame
pass decodes the whole file a second time to reach them: th10 (20 s of 1080x1920 HEVC) costs
3.1 CPU-s to decode, on a 2-core machine whose cold job is CPU-bound while the two passes run.
With a tap, the engine's decode hands the wanted frames over as it makes them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator

import numpy as np

DEPTH = 2  # wanted frames waiting to be taken before the producer waits (1080p: 6 MB each)
WAIT_STEP_SECONDS = 0.1  # the consumer reports at least this often while it waits


class FrameTap:
    """Frames of one video by CFR index (:class:`heygemd.media.video.VideoReader`'s numbering),
    handed from the producers that decode them to a consumer that wants some.

    The consumer says which frames it wants and takes them as they come (:meth:`take`); the
    producers offer every frame they decode (:meth:`offer`), one producer in order or several
    (segments of the file, decoded at once: the consumer gets their frames in the order
    offered, a frame offered twice once), and the tap is closed when no more will be offered
    (:meth:`close`; ``finished`` when the file was decoded to its end, so that a wanted frame
    never offered does not exist). Neither side waits on one that has gone: once the consumer
    has stopped (:meth:`stop`), offers return at once; once the tap is closed, :meth:`take`
    ends and the consumer decodes what it did not get itself. Thread-safe; one consumer.
    """

    def __init__(self, depth: int = DEPTH) -> None:
        self._depth = depth
        self._cond = threading.Condition()
        self._wanted: frozenset[int] | None = None  # None until the consumer says
        self._waiting: deque[tuple[int, np.ndarray]] = deque()
        self._due: set[int] = set()  # wanted frames not yet queued
        self._claimed: set[int] = set()  # wanted frames a producer is queuing or has queued
        self._closed = False  # the producer offers no more
        self._finished = False  # ... because it decoded the whole file
        self._stopped = False  # the consumer takes no more
        self.handed = 0  # frames the consumer took from the tap

    # the producer's side

    def offer(self, index: int, frame: np.ndarray) -> None:
        """Frame ``index`` (uint8 (H, W, 3), not modified afterwards) as it is decoded. Waits
        until the consumer has said what it wants, and while DEPTH wanted frames are waiting;
        returns at once for a frame not wanted or once the consumer has stopped."""
        with self._cond:
            while self._wanted is None and not self._stopped:
                self._cond.wait()
            if not (self._stopped or self._closed) and index in self._due \
                    and index not in self._claimed:
                self._claimed.add(index)  # once: another producer's copy is not queued
                while len(self._waiting) >= self._depth and not self._stopped:
                    self._cond.wait()
                if not self._stopped:
                    self._waiting.append((index, frame))
                # due until queued: a take that finds nothing waiting must not end meanwhile
                self._due.discard(index)
            # once every wanted frame is waiting (or taken), the take ends after them
            self._cond.notify_all()

    def close(self, finished: bool = False) -> None:
        """The producer decodes no more; ``finished``: it decoded the file to its end. The
        consumer's :meth:`take` ends when it has taken what is waiting. Idempotent (a later
        close never unsays ``finished``)."""
        with self._cond:
            self._closed = True
            self._finished = self._finished or finished
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        """Whether the producer decoded the whole file: every frame it did not hand over is
        either not wanted or not in the file."""
        with self._cond:
            return self._finished

    # the consumer's side

    def take(
        self, wanted: Iterable[int], report: Callable[[], None]
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(index, frame) for the ``wanted`` indices the producers offer, in the order offered,
        until every one of them has been handed over, or the tap closes. ``report`` runs at
        least every WAIT_STEP_SECONDS while nothing comes; what it raises propagates (the
        caller then calls :meth:`stop`)."""
        with self._cond:
            self._wanted = frozenset(int(i) for i in wanted)
            self._due = set(self._wanted)
            self._cond.notify_all()
        while True:
            with self._cond:
                if not self._waiting and not self._over():
                    self._cond.wait(WAIT_STEP_SECONDS)
                if self._waiting:
                    item: tuple[int, np.ndarray] | None = self._waiting.popleft()
                    self.handed += 1
                    self._cond.notify_all()
                elif self._over():
                    return
                else:
                    item = None
            if item is None:
                report()
            else:
                yield item

    def _over(self) -> bool:
        """Nothing more will come (called holding the lock)."""
        return self._closed or self._stopped or not self._due

    def stop(self) -> None:
        """The consumer takes no more (done, refused, or failed): waiting frames are dropped and
        the producer is never held again. Idempotent."""
        with self._cond:
            self._stopped = True
            self._waiting.clear()
            self._cond.notify_all()
