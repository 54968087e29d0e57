"""Hearing beside the video work: the Listener runs in a worker process, asked early.

Hearing a track (listen.Listener: log-mel, silero VAD, pocketsphinx phones) is ~0.35 s of CPU per
5 s of audio, and a job hears two tracks when its template is new (the template's own and the
new audio). pocketsphinx holds the GIL while it decodes and mediapipe needs it between graph
calls, so hearing in a thread does not overlap the template's face analysis (th08: hear 0.36 s +
faces 1.02 s in turn, 1.44 s in two threads); a process does. The engine asks for each track as
soon as it knows it (:meth:`Hearing.ask`) and takes the answer when planning needs it
(:meth:`Hearing.hear`). Answers are remembered by content, as the Listener itself does: the
videos of one job hear the job's audio once. While no request waits, the worker builds the
phone decoders of the next tracks ahead (phones.SPARE_DECODERS; ~0.1 s each): a track asked
does not wait for its decoder (th08's 5 s: answered in ~0.25 s instead of ~0.33 s).

The voice detector (silero, on torch) runs here, on the talking thread, before a track is sent:
where the audio check already ran it over the same samples it is not run again (heygemd.voice
remembers them), and the worker gets each frame's voice mask with the samples. So the worker
never imports torch: it is ready 0.7-1.0 s after its launch (0.8-1.1 s of CPU) instead of
2.2-2.3 s (2.3-2.4 s of CPU), resident in 102 MB instead of 317 MB (anonymous: 76 MB, not
214 MB).

The worker is ``python -c`` with a socket to this process: no multiprocessing start method, no
import of the parent's ``__main__``. It ignores SIGINT/SIGTERM (the daemon decides when to stop:
it kills the worker as it closes) and ends by itself when its socket closes, the daemon's death
included. When it cannot start or is lost, tracks are heard in this process, by the same code:
the answers are the same, only slower.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import Any

import numpy as np
import structlog

from heygemd import allocator
from heygemd.engines.builtin import children
from heygemd.engines.builtin.listen import (
    REMEMBER,
    Heard,
    HeardMemory,
    Key,
    Listener,
    feature_signature,
    key_of,
)
from heygemd.engines.builtin.phones import SPARE_DECODERS

log = structlog.get_logger(__name__)

START_SECONDS = 120.0  # the worker's start-up (pocketsphinx, its phone decoders) at most
WAIT_STEP_SECONDS = 0.5  # a waiting caller's progress callback runs this often

def _no_report() -> None:
    pass


class WorkerLost(Exception):
    """The worker process is gone (or never answered): hear in this process instead."""


class Hearing:
    """What the engine hears, asked early and answered by a worker process.

    Not thread-safe: one engine thread asks and hears. ``listener`` hears in this process when
    there is no worker; give it ``remember=0`` (answers are remembered here).
    """

    def __init__(self, listener: Listener, use_worker: bool = True,
                 remember: int = REMEMBER, phone_workers: int = 0) -> None:
        self.listener = listener
        self.use_worker = use_worker
        # processes the worker decodes a long track's pieces in at once (phones.phone_workers;
        # the same phones without them, one piece after another)
        self.phone_workers = phone_workers
        self._remember = remember
        self._heard = HeardMemory(remember)
        self._asked: OrderedDict[Key, Future[Heard]] = OrderedDict()
        self._worker: _Worker | None = None
        self._waiting: Callable[[], None] = _no_report

    def launch(self) -> None:
        """Start the worker process (once; again after it was lost) without waiting for it: it
        boots (~1 s: pocketsphinx and its first decoders) while this process goes on; the
        first track asked of it waits until it is ready."""
        if not self.use_worker or (self._worker is not None and self._worker.alive):
            return
        if self._worker is not None:
            self._worker.close()
        try:
            self._worker = _Worker.launch(self.phone_workers)
        except WorkerLost as err:
            log.warning("hearing.worker_unavailable", error=str(err))
            self._worker = None

    def start(self) -> None:
        """:meth:`launch`, and load the in-process listener (it answers when the worker
        cannot)."""
        self.launch()
        self.listener.load()

    def wait_ready(self) -> bool:
        """Wait until the worker is ready (a track asked waits for this anyway); False when
        there is none or it never became ready (tracks are heard here)."""
        if self._worker is None:
            return False
        try:
            self._worker.wait_ready()
        except WorkerLost as err:
            log.warning("hearing.worker_unavailable", error=str(err))
            return False
        return True

    @property
    def has_worker(self) -> bool:
        """A worker is running or booting (not known to be lost)."""
        return self._worker is not None and self._worker.alive

    def ask(self, audio: np.ndarray, fps: float, count: int) -> None:
        """Start hearing ``audio`` (float32 (N,) 16 kHz) for ``count`` frames at ``fps`` now, in
        the worker; :meth:`hear` takes the answer. Without a worker this does nothing."""
        key = key_of(audio, fps, count)
        if key in self._heard or key in self._asked or not self.has_worker:
            return
        assert self._worker is not None
        self._asked[key] = self._worker.submit(audio, fps, count, self.listener.speech_mask)
        while len(self._asked) > self._remember:  # asked by jobs that were interrupted
            self._asked.popitem(last=False)

    def hear(self, audio: np.ndarray, fps: float, count: int) -> Heard:
        """What ``count`` frames at ``fps`` hear of ``audio``, as :meth:`Listener.hear` answers
        (read-only arrays): remembered, asked earlier, or heard now."""
        key = key_of(audio, fps, count)
        remembered = self._heard.get(key)
        if remembered is not None:
            return remembered
        self.ask(audio, fps, count)
        heard = None
        if key in self._asked:
            heard = self._answer(key)
        if heard is None:
            heard = self.listener.hear(audio, fps, count)
        return self._heard.put(key, heard)

    @contextmanager
    def reporting(self, report: Callable[[], None]) -> Iterator[None]:
        """Within the block, :meth:`hear` calls ``report`` every WAIT_STEP_SECONDS while it
        waits for the worker (a progress callback: what it raises, JobInterrupted included,
        propagates; the answer stays asked)."""
        self._waiting = report
        try:
            yield
        finally:
            self._waiting = _no_report

    def forget(self) -> None:
        """Forget every remembered answer (a benchmark's timed run must hear its audio)."""
        self._heard.clear()

    def close(self) -> None:
        """Stop the worker (answers not taken are dropped)."""
        self._asked.clear()
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def _answer(self, key: Key) -> Heard | None:
        """The worker's answer for ``key`` (None when the worker failed: hear it here)."""
        future = self._asked[key]
        while True:
            try:
                heard = future.result(timeout=WAIT_STEP_SECONDS)
                break
            except FutureTimeout:
                self._waiting()  # may raise JobInterrupted: the answer stays asked
            except WorkerLost as err:
                del self._asked[key]
                log.warning("hearing.worker_lost", error=str(err))
                return None
        del self._asked[key]
        return heard


class _Worker:
    """The worker process and the one thread that talks to it (a request, then its answer)."""

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket) -> None:
        from multiprocessing.connection import Connection

        self.process = process
        self.sock = sock
        self.conn = Connection(os.dup(sock.fileno()))
        self.alive = True
        self.ready = False  # it said it hears as this process does (wait_ready)
        self._launched = time.monotonic()
        self._talk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="builtin-hearing")
        self._lock = threading.Lock()

    @classmethod
    def launch(cls, phone_workers: int = 0) -> _Worker:
        """The worker process, started; not yet ready (:meth:`wait_ready`). It decodes a long
        track's pieces in ``phone_workers`` processes of its own (none: < 2)."""
        code = ("import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "from heygemd.engines.builtin.hearing import serve; serve()")
        try:
            # its own session: a terminal's Ctrl-C is the daemon's to handle
            process, sock = children.start(code, str(phone_workers), new_session=True)
        except OSError as err:
            raise WorkerLost(f"cannot start the hearing worker: {err}") from err
        return cls(process, sock)

    def wait_ready(self) -> None:
        """Wait (START_SECONDS from its launch at most) for the worker to say it is ready and
        hears with the same features as this process; WorkerLost (and the worker marked lost)
        when it does not."""
        with self._lock:
            self._ready_or_lost()

    def _ready_or_lost(self) -> None:
        """:meth:`wait_ready` with the lock held (the talking thread's first round trip)."""
        if self.ready:
            return
        if not self.alive:
            raise WorkerLost("the hearing worker was stopped")
        try:
            left = START_SECONDS - (time.monotonic() - self._launched)
            if not self.conn.poll(max(0.0, left)):
                raise WorkerLost(f"no answer from the hearing worker in {START_SECONDS:.0f} s")
            kind, signature = self.conn.recv()
            if kind != "ready" or signature != feature_signature():
                raise WorkerLost(f"the hearing worker hears otherwise ({kind}, {signature})")
        except (EOFError, OSError, WorkerLost) as err:
            self.alive = False  # closed by whoever launches the next one, or at close()
            raise WorkerLost(str(err)) from err
        self.ready = True
        # read when the first track is asked: the worker may have been ready long before
        log.info("hearing.worker_ready", pid=self.process.pid,
                 since_launch_ms=round((time.monotonic() - self._launched) * 1000, 1))

    def submit(self, audio: np.ndarray, fps: float, count: int,
               speech_mask: Callable[[np.ndarray, float, int], np.ndarray]) -> Future[Heard]:
        """Hear ``audio`` in the worker, its voice mask found here first by ``speech_mask``
        (Listener.speech_mask), on the talking thread."""
        samples = np.ascontiguousarray(audio, dtype=np.float32)
        return self._talk.submit(self._round_trip, samples, float(fps), int(count), speech_mask)

    def _round_trip(self, audio: np.ndarray, fps: float, count: int,
                    speech_mask: Callable[[np.ndarray, float, int], np.ndarray]) -> Heard:
        speech = speech_mask(audio, fps, count)
        with self._lock:
            self._ready_or_lost()
            if not self.alive:
                raise WorkerLost("the hearing worker was stopped")
            try:
                self.conn.send(("hear", audio, fps, count, speech))
                kind, answer = self.conn.recv()
            except (EOFError, OSError) as err:
                self.alive = False
                raise WorkerLost(f"the hearing worker is gone ({err})") from err
        if kind != "heard":
            raise WorkerLost(f"the hearing worker failed: {answer}")
        return Heard(**answer)

    def close(self) -> None:
        """Shut the socket down (a round trip waiting on it wakes) and end the worker: it keeps
        nothing, so it is killed rather than left to tear torch down (~1 s); then wait for the
        talking thread."""
        self.alive = False
        children.end(self.process, self.sock)
        self._talk.shutdown(wait=True, cancel_futures=True)
        self.conn.close()
        self.sock.close()


def serve() -> None:
    """The worker process's life: hear what the socket (fd in argv[1]) asks until it closes,
    a long track's phones decoded in argv[2] processes of its own (phones.phone_workers).
    SIGINT and SIGTERM are ignored (before this module is imported, and so in its phone
    workers too): the daemon stops it, and its phone workers end with it."""
    from multiprocessing.connection import Connection

    import structlog as slog

    slog.configure(wrapper_class=slog.make_filtering_bound_logger(30),
                   logger_factory=slog.PrintLoggerFactory(sys.stderr))
    conn = Connection(int(sys.argv[1]))
    listener = Listener(remember=0)
    listener.phones.load()  # the voice mask comes with each track: no voice detector here
    # the decoder's first run, now
    listener.hear(np.zeros(1600, np.float32), 25.0, 4, speech=np.zeros(4, bool))
    listener.phones.start_workers(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    try:
        _make_spares(listener, conn)
        conn.send(("ready", feature_signature()))
    except (EOFError, OSError):  # the daemon went while this process was starting
        return
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        answer = _answer(listener, request)
        del request
        try:
            conn.send(answer)
            del answer
            # the track's arrays are freed: their pages go back while the job renders (after a
            # 5 min track, 80 MB of the worker's 360 MB resident otherwise)
            allocator.give_back()
            _make_spares(listener, conn)
        except (EOFError, OSError):
            return


def _answer(listener: Listener, request: tuple[Any, ...]) -> tuple[str, Any]:
    """What the worker sends back for one request: the track as heard, or why it failed."""
    _, audio, fps, count, speech = request
    try:
        heard = listener.hear(audio, fps, count, speech=speech)
        return ("heard", {
            "features": heard.features, "speech": heard.speech, "level": heard.level,
            "phone_opening": heard.phone_opening, "closed_lips": heard.closed_lips})
    except Exception as err:  # noqa: BLE001 - the parent hears it again and raises it
        return ("failed", f"{type(err).__name__}: {err}")


def _make_spares(listener: Listener, conn: Any) -> None:
    """Build phone decoders ahead (SPARE_DECODERS) while no request waits: a track asked later
    does not wait for its decoder (~0.1 s of its ~0.3 s)."""
    while listener.phones.spares < SPARE_DECODERS and not conn.poll(0):
        listener.phones.make_spare()
