"""What ends or restarts a worker's Celery loop: the operator's signals and the broker.

- SIGTERM: Celery's warm shutdown (the current video is finished, then the worker exits). A
  second SIGTERM (or a SIGQUIT): cold; :meth:`WorkerControl.check` raises ``JobInterrupted``
  from the video's progress callback, the task rejects its message back to the queue and the
  worker exits; another worker makes the video.
- A video that reports no progress for ``task_time_limit_seconds`` is hung (an engine stuck in
  a native call cannot be interrupted from Python): :meth:`WorkerControl.watch_hangs` ends the
  process with EX_HUNG. Its message was not acknowledged, so Redis hands it to another worker
  after the visibility timeout; systemd starts the worker again; the start counts toward
  ``daemon.max_attempts`` like a crash.
- The broker lost and back: kombu's Redis transport can miss that its connection died while a
  video was being made (the worker stays up but takes no message again; celery issues #8091,
  #10205). A thread asks the broker every few seconds on a connection of its own; once it
  answers again after failing, the Celery loop is stopped warm (the current video finished)
  and :func:`heygemd.farm.worker.run_worker` starts a fresh one, the engine kept loaded.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from heygemd.errors import JobInterrupted
from heygemd.farm.app import broker_reachable, broker_words

if TYPE_CHECKING:
    from celery import Celery

log = structlog.get_logger(__name__)

BROKER_WATCH_SECONDS = 2.0  # between the watch's looks at the broker
EX_TEMPFAIL = 75  # the Celery loop's exit status when it is stopped to be started afresh
EX_HUNG = 70  # the process's exit status when a video hung (EX_SOFTWARE)
HANG_WATCH_SECONDS = 1.0  # between the hang watch's looks


@dataclass
class WorkerControl:
    """Flags of one worker process, set from Celery's signal handlers and the broker watch,
    read by the running task (through :meth:`check`) and by ``run_worker``'s loop."""

    signals: int = 0  # shutdown signals received (SIGTERM, SIGQUIT, SIGINT)
    is_cold: bool = False
    restart: threading.Event = field(default_factory=threading.Event)
    _stop_watch: threading.Event = field(default_factory=threading.Event)
    _watch: threading.Thread | None = None
    # monotonic time of the running video's last progress report; None between videos
    last_report: float | None = None
    video: str | None = None  # the running video, for the hang's log line

    @property
    def is_stopping(self) -> bool:
        return self.signals > 0

    def on_shutting_down(self, sig: str = "", how: str = "", **_: Any) -> None:
        """Celery's ``worker_shutting_down`` signal (sent from its signal handlers): counts
        the operator's stops; the second one, or a cold one, is cold."""
        self.signals += 1
        if self.signals >= 2 or how == "Cold":
            if not self.is_cold:
                log.warning("worker.cold_stop", signal=sig,
                            hint="the current video is abandoned; its message goes back")
            self.is_cold = True
        else:
            log.info("worker.warm_stop", signal=sig, hint="finishing the current video")

    def check(self) -> None:
        """Called at each progress report of a video: abandon it on a cold stop."""
        self.last_report = time.monotonic()
        if self.is_cold:
            raise JobInterrupted("cold shutdown of the worker")

    def begin(self, video: str) -> None:
        """A video starts (its first report is now)."""
        self.video, self.last_report = video, time.monotonic()

    def end(self) -> None:
        self.video = self.last_report = None

    def hung_for(self, now: float) -> float:
        """Seconds since the running video's last report (0 between videos)."""
        last = self.last_report
        return 0.0 if last is None else now - last

    def watch_hangs(self, limit: float, exit: Callable[[int], object] = os._exit) -> None:
        """Start the hang watch: a video silent for ``limit`` seconds ends the process."""

        def look() -> None:
            while True:
                time.sleep(HANG_WATCH_SECONDS)
                silent = self.hung_for(time.monotonic())
                if silent > limit:
                    log.critical("worker.hung", video=self.video, silent_s=round(silent, 1),
                                 hint="no progress for the task's time limit: the process "
                                      "ends; another worker makes the video after the "
                                      "visibility timeout")
                    logging.shutdown()
                    exit(EX_HUNG)
                    return

        threading.Thread(target=look, name="heygemd-hang-watch", daemon=True).start()

    def hold(self, seconds: float) -> None:
        """Wait ``seconds``, less once the operator stops the worker."""
        deadline = time.monotonic() + seconds
        while not self.is_stopping and time.monotonic() < deadline:
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0.0)))

    def watch(self, app: Celery) -> None:
        """Start the broker watch for one run of the Celery loop."""
        self.restart.clear()
        self._stop_watch.clear()
        self._watch = threading.Thread(target=self._watch_broker, args=(app,),
                                       name="heygemd-broker-watch", daemon=True)
        self._watch.start()

    def end_watch(self) -> None:
        self._stop_watch.set()
        if self._watch is not None:
            self._watch.join(10)
            self._watch = None

    def _watch_broker(self, app: Celery) -> None:
        lost_at: float | None = None
        while not self._stop_watch.wait(BROKER_WATCH_SECONDS):
            why = broker_reachable(app)
            if why is not None and lost_at is None:
                lost_at = time.monotonic()
                log.error("worker.broker_lost", why=broker_words(why))
            elif why is None and lost_at is not None:
                log.warning("worker.broker_back", down_s=round(time.monotonic() - lost_at, 1),
                            hint="starting the Celery loop afresh once the current video is "
                                 "done")
                self._request_restart()
                return

    def _request_restart(self) -> None:
        from celery.worker import state

        self.restart.set()
        if not state.should_stop and not state.should_terminate:
            state.should_stop = EX_TEMPFAIL  # read by the loop between messages: a warm stop

    @property
    def should_restart(self) -> bool:
        """The loop ended for the broker (not for the operator): start it again."""
        return self.restart.is_set() and not self.is_stopping


def reset_celery_state() -> None:
    """Clear the stop flags Celery keeps per process, before its loop is started again."""
    from celery.worker import state

    state.should_stop = None
    state.should_terminate = None
