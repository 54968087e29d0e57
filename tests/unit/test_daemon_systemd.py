"""sd_notify over a real AF_UNIX datagram socket, mountinfo parsing, the per-job log sink."""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from pathlib import Path

import pytest
import structlog

from heygemd.daemon.systemd import Notifier, socket_address, watchdog_interval
from heygemd.daemon.watcher import choose_mode, mount_of, parse_mountinfo
from heygemd.logs import configure_logging, job_log
from heygemd.settings import LogSettings


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _receive(sock: socket.socket) -> list[str]:
    out = []
    sock.setblocking(False)
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


@pytest.mark.parametrize("abstract", [False, True])
def test_notify_sends_datagrams(tmp_path: Path, abstract: bool) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        if abstract:
            name = f"heygemd-test-{uuid.uuid4().hex}"
            server.bind(b"\0" + name.encode())
            env = {"NOTIFY_SOCKET": "@" + name}
        else:
            path = tmp_path / "notify.sock"
            server.bind(str(path))
            env = {"NOTIFY_SOCKET": str(path)}
        env |= {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
        notifier = Notifier(env, min_interval=60.0)
        notifier.ready("idle; 0 queued")
        notifier.status("running x", force=True)
        notifier.status("running y")  # rate-limited away
        notifier.ping()
        notifier.ping()  # rate-limited away
        notifier.stopping()
        assert _receive(server) == ["READY=1\nSTATUS=idle; 0 queued", "STATUS=running x",
                                    "WATCHDOG=1", "STOPPING=1"]


def test_notify_is_a_no_op_outside_systemd() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.send("READY=1") is False


def test_socket_address_and_watchdog_interval() -> None:
    assert socket_address("@abc") == b"\0abc" and socket_address("/run/x") == "/run/x"
    assert socket_address("relative") is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None


def test_malformed_watchdog_usec_is_logged_not_silently_ignored() -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        assert watchdog_interval({"WATCHDOG_USEC": "30s"}) is None
        assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert [(e["event"], e["log_level"], e["value"]) for e in logs] == [
        ("sd_notify.bad_watchdog_usec", "warning", "30s")]


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /mnt/share rw,relatime shared:20 - cifs //nas/jobs rw,vers=3.0
41 22 0:36 / /mnt/my\\040disk rw - nfs4 server:/export rw
42 40 0:37 / /mnt/share/local rw - tmpfs tmpfs rw
"""


def test_parse_mountinfo_and_pick_the_longest_mount() -> None:
    mounts = parse_mountinfo(MOUNTINFO + "garbage line\n")
    assert [m.fs_type for m in mounts] == ["ext4", "cifs", "nfs4", "tmpfs"]
    assert mounts[2].mount_point == "/mnt/my disk"
    assert mount_of(Path("/mnt/share/inbox"), mounts).fs_type == "cifs"  # type: ignore[union-attr]
    assert mount_of(Path("/mnt/share/local/in"), mounts).fs_type == "tmpfs"  # type: ignore[union-attr]
    assert mount_of(Path("/mnt/sharex"), mounts).fs_type == "ext4"  # type: ignore[union-attr]
    assert choose_mode("auto", mount_of(Path("/mnt/my disk/in"), mounts)) == "polling"
    assert choose_mode("auto", mount_of(Path("/home"), mounts)) == "events"
    assert choose_mode("events", mounts[1]) == "events"


def test_job_log_copies_that_jobs_lines_with_its_id(tmp_path: Path) -> None:
    configure_logging(LogSettings(stdout=False), tmp_path / "log" / "heygemd.log")
    log = structlog.get_logger("test")
    try:
        log.info("before")
        with job_log("J1", tmp_path / "job.log.jsonl"):
            log.info("stage.start", stage="examine")
            structlog.get_logger("other").warning("inner", 名="值")
        log.info("after")
    finally:
        structlog.reset_defaults()
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
    lines = [json.loads(x) for x in (tmp_path / "job.log.jsonl").read_text().splitlines()]
    assert [x["event"] for x in lines] == ["stage.start", "inner"]
    # the service's log file is made as logrotate.conf makes its successors (0640)
    mode = (tmp_path / "log" / "heygemd.log").stat().st_mode & 0o777
    assert mode == 0o640 & ~_umask()
    assert all(x["job_id"] == "J1" for x in lines) and lines[1]["名"] == "值"
    main = [json.loads(x) for x in (tmp_path / "log" / "heygemd.log").read_text().splitlines()]
    assert [x["event"] for x in main] == ["before", "stage.start", "inner", "after"]
    assert "job_id" not in main[-1]
