"""structlog set-up: JSON lines to stdout (journald), to the log file, and per job.

The log file uses ``logging.handlers.WatchedFileHandler``, which reopens the file after logrotate
moves it (so logrotate needs no copytruncate). While a job runs, :func:`job_log` binds its id to
every line (structlog contextvars) and copies those lines into the job's ``job.log.jsonl``.
"""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import os
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import structlog

from heygemd.settings import LogSettings

LOG_FILE_MODE = 0o640  # a new log file's permissions (before the umask), as logrotate's create

_sinks: dict[str, TextIO] = {}
_sinks_lock = threading.Lock()


def _job_sink(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: a line carrying a job id also goes to that job's open sink."""
    job_id = event_dict.get("job_id")
    if job_id is not None:
        with _sinks_lock:
            sink = _sinks.get(str(job_id))
            if sink is not None:
                sink.write(json.dumps(event_dict, default=str, ensure_ascii=False) + "\n")
                sink.flush()
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(cfg: LogSettings, log_file: Path | None) -> None:
    """Once, in the CLI. Replaces the root logger's handlers; foreign (stdlib) loggers are
    rendered as the same JSON lines."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            # Real UTF-8 (names are often Chinese), as in job.log.jsonl.
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
    )
    handlers: list[logging.Handler] = []
    if cfg.stdout:
        if isinstance(sys.stdout, io.TextIOWrapper):  # a non-UTF-8 locale must not crash a line
            sys.stdout.reconfigure(errors="backslashreplace")
        handlers.append(logging.StreamHandler(sys.stdout))
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        # made 0640 (job names are in it), as logrotate.conf makes its successors
        os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, LOG_FILE_MODE))
        handlers.append(logging.handlers.WatchedFileHandler(log_file, encoding="utf-8"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(getattr(logging, cfg.level.upper()))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _job_sink,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


@contextmanager
def job_log(job_id: str, path: Path) -> Iterator[None]:
    """Bind ``job_id`` to every log line in this context and append those lines to ``path``."""
    sink = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in finally
    with _sinks_lock:
        _sinks[job_id] = sink
    tokens = structlog.contextvars.bind_contextvars(job_id=job_id)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
        with _sinks_lock:
            _sinks.pop(job_id, None)
        sink.close()
