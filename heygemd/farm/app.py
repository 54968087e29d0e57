"""The Celery app of the farm, built from [farm] (never at import)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from heygemd.settings import FarmSettings

if TYPE_CHECKING:
    from celery import Celery

TASK_NAME = "heygemd.make_video"


def make_app(farm: FarmSettings) -> Celery:
    """A Celery app on ``farm.broker``: late acks (a message leaves the broker only once its
    video is on the share), one message at a time per worker, no result backend (results are
    files on the share)."""
    from celery import Celery

    app = Celery("heygemd", broker=farm.broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        task_default_queue=farm.queue,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # a message unacknowledged this long is handed to another worker (a worker killed
        # mid-video): above the longest video a task may take
        # throttle 1: every worker looks for such messages each unacked_restore_interval
        # (10 s), not every 10th time (kombu's default: a killed worker's video waited ~100 s)
        broker_transport_options={"visibility_timeout": farm.visibility_timeout_seconds,
                                  "unacked_restore_throttle": 1},
        task_time_limit=farm.task_time_limit_seconds,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for the broker for ever
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        worker_enable_remote_control=False,
        # the intake sends while the broker is down: fail fast, it says so and tries again
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0.2,
                                   "interval_step": 0.2, "interval_max": 0.5},
        broker_connection_timeout=2.0,
    )
    return app


BROKER_WORDS = (  # what the client's message says -> plain words (first match wins)
    (("connection refused", "error 111"), "connection refused"),
    (("timed out", "timeout"), "no answer"),
    (("name or service not known", "name resolution", "nodename nor servname",
      "error -2 ", "error -3 "), "its address is not known"),
    (("noauth", "wrongpass", "invalid password", "authentication", "invalid username"),
     "its password was refused"),
    (("connection reset", "closed by server", "broken pipe", "error 104", "error 32"),
     "the connection was dropped"),
)


def broker_words(why: str) -> str:
    """Plain words for why the broker cannot be used, from the client's message (pure):
    "connection refused", "no answer", ... or "it cannot be reached"."""
    low = why.lower()
    for needles, words in BROKER_WORDS:
        if any(n in low for n in needles):
            return words
    return "it cannot be reached"


def share_key(queue: str) -> str:
    """The broker's key for the intake's share mark (farm.share.SHARE_MARK) of ``queue``."""
    return f"heygemd:{queue}:share"


def announce_share(app: Celery, queue: str, mark: str) -> None:
    """Tell the broker the intake's share mark, for `heygemd doctor` on the workers (raises
    what the client raises when the broker cannot be reached)."""
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        conn.default_channel.client.set(share_key(queue), mark)


def announced_share(app: Celery, queue: str) -> str | None:
    """The intake's share mark as the broker holds it; None before an intake announced one."""
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        found = conn.default_channel.client.get(share_key(queue))
    return found.decode() if isinstance(found, bytes) else found


def broker_reachable(app: Celery) -> str | None:
    """None when the broker answers, else why not (one line)."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
    except Exception as err:  # kombu raises whatever the transport's client raises
        return f"{type(err).__name__}: {err}"
    return None
