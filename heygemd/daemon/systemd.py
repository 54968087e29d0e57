"""sd_notify without a dependency: one datagram per message to ``$NOTIFY_SOCKET``.

Outside systemd (no ``NOTIFY_SOCKET``) every call is a cheap no-op. A leading '@' names a
socket in the abstract namespace (a NUL byte on the wire).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


def socket_address(value: str) -> str | bytes | None:
    """``$NOTIFY_SOCKET`` -> an AF_UNIX address (pure). None when unusable."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of systemd's WatchdogSec (``WATCHDOG_USEC``),
    or None when the watchdog is off or meant for another process (``WATCHDOG_PID``). A value
    that is not a whole number is logged (``sd_notify.bad_watchdog_usec``) and read as off."""
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2e6, 0.1)
    except ValueError:
        log.warning("sd_notify.bad_watchdog_usec", value=usec,
                    hint="WATCHDOG_USEC must be whole microseconds; no WATCHDOG=1 is sent, "
                         "so systemd's watchdog will stop the service")
        return None


class Notifier:
    """Sends READY / STATUS / WATCHDOG / STOPPING; rate-limits STATUS and WATCHDOG."""

    def __init__(self, env: Mapping[str, str] | None = None, min_interval: float = 1.0) -> None:
        env = os.environ if env is None else env
        self._address = socket_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog = watchdog_interval(env)
        self._min_interval = min_interval
        self._last_ping = 0.0
        self._last_status: tuple[float, str] = (0.0, "")

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, message: str) -> bool:
        """One datagram; False (logged once per failure) when it could not be sent."""
        if self._address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall(message.encode())
            return True
        except OSError as err:
            log.warning("sd_notify.failed", error=str(err))
            return False

    def ready(self, status: str) -> None:
        self.send(f"READY=1\nSTATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def status(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        last_at, last_text = self._last_status
        if text != last_text and (force or now - last_at >= self._min_interval):
            self._last_status = (now, text)
            self.send(f"STATUS={text}")

    def ping(self) -> None:
        """WATCHDOG=1, at most every min(half WatchdogSec, min_interval) seconds."""
        if self._watchdog is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= min(self._watchdog, self._min_interval):
            self._last_ping = now
            self.send("WATCHDOG=1")
