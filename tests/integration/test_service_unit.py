"""The systemd unit (systemd/heygemd.service) and what a real `heygemd run` says to systemd.

The unit was run under a real systemd 252 (docs/service.md, "What was checked"); these tests keep
what that showed: the unit parses cleanly, its exposure as `systemd-analyze security` rates it
stays at or below 2.0, it keeps the settings the daemon was seen to need (and leaves out those
seen to break it), and the daemon speaks sd_notify the way `Type=notify` + the unit's
`WatchdogSec=` expect: READY=1 once started, WATCHDOG=1 at least every WatchdogSec/2 (about every
second while idle; from the job's progress reports while one runs, where gaps of several seconds
are normal), STOPPING=1 on SIGTERM, exit 0. The soak test boots systemd itself
(tests/systemd_check.sh) and runs real jobs under the unit.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import Harness, wait_for

UNIT = ROOT / "systemd" / "heygemd.service"
WEB_UNIT = ROOT / "systemd" / "heygemd-web.service"
SYSTEMD_CHECK = ROOT / "tests" / "systemd_check.sh"
IDLE_PING_GAP = 2.0  # s: idle, the loop pings every second (harness idle tick 0.2 s)
MAX_EXPOSURE = 2.0  # systemd-analyze security's overall rating (0 safest .. 10); 3.0 before


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values, in order (a key may repeat, e.g. DeviceAllow=)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def systemd_analyze() -> str:
    """The systemd-analyze program; its absence fails the test in one line saying what to install
    (the unit's checks are part of the default suite, never skipped)."""
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail("systemd-analyze not found: install systemd (apt-get install systemd) to check "
                    "systemd/heygemd.service", pytrace=False)
    return found


@pytest.mark.parametrize("unit", [UNIT, WEB_UNIT], ids=lambda u: u.name)
def test_unit_passes_systemd_analyze_verify(tmp_path: Path, unit: Path) -> None:
    """`systemd-analyze verify` on a copy whose paths point at this checkout: no warning about
    the unit (a misspelt key or value is only a warning, and the exit status stays 0)."""
    analyze = systemd_analyze()
    script = Path(sys.executable).parent / "heygemd"
    if not script.is_file():
        pytest.skip(f"no heygemd entry point beside {sys.executable}")
    text = unit.read_text(encoding="utf-8").replace("/opt/heygemd/.venv/bin/heygemd", str(script))
    text = text.replace("/opt/heygemd", str(ROOT))
    for old in ("/srv/heygemd", "/var/lib/heygemd", "/var/log/heygemd", "/etc/heygemd"):
        new = tmp_path / old.strip("/").replace("/", "-")
        new.mkdir()
        text = text.replace(old, str(new))
    copy = tmp_path / unit.name
    copy.write_text(text, encoding="utf-8")
    result = subprocess.run([analyze, "verify", "--man=no", str(copy)], capture_output=True,
                            text=True, timeout=60)
    about_unit = [line for line in (result.stdout + result.stderr).splitlines()
                  if "heygemd" in line]
    assert result.returncode == 0 and about_unit == [], result.stdout + result.stderr


@pytest.mark.parametrize("unit", [UNIT, WEB_UNIT], ids=lambda u: u.name)
def test_unit_exposure_is_at_most_two(unit: Path) -> None:
    """`systemd-analyze security --offline=yes` rates each unit as written at <= 2.0 (the
    daemon's was 3.0 before the system call filter, the private network and mounts,
    RemoveIPC; the web page's is 0.9)."""
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "SYSTEMD_COLORS": "0"},
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert result.returncode == 0 and found, result.stdout + result.stderr
    exposed = [line for line in result.stdout.splitlines() if line.startswith("✗")]
    assert float(found[1]) <= MAX_EXPOSURE, "\n".join([found[0], *exposed])


def test_unit_keeps_what_a_real_systemd_showed() -> None:
    unit = read_unit(UNIT)
    service = unit["Service"]
    assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"]
    # SIGTERM to the daemon only: its children end when it closes their pipe / socket
    assert service["KillMode"] == ["mixed"]
    # User= already brings the user's groups; a group the machine lacks fails with 216/GROUP
    assert "SupplementaryGroups" not in service
    # torch's oneDNN kernels are made at run time: with =yes every render fails
    # ("could not create a primitive")
    assert service["MemoryDenyWriteExecute"] == ["no"]
    # sd_notify and the hearing worker's socket pair; nothing else, and no network at all
    assert " ".join(service["RestrictAddressFamilies"]).split() == ["AF_UNIX"]
    assert service["PrivateNetwork"] == ["yes"] and service["IPAddressDeny"] == ["any"]
    # one allow list: every call of a start, a job and a stop is in it (tests/systemd_check.sh);
    # a denied call fails with EPERM instead of killing the daemon
    assert service["SystemCallFilter"] == ["@system-service"]
    assert service["SystemCallErrorNumber"] == ["EPERM"]
    # ProcSubset=pid hides /proc/cpuinfo: torch falls back to its plain CPU kernels (AVX512 ->
    # DEFAULT, "Error in cpuinfo" in the journal)
    assert service.get("ProcSubset", ["all"]) == ["all"]
    # `heygemd status` is for any user and reads the job database; outbox readers need not be
    # in the group: a umask hiding files from others breaks both
    assert service["UMask"] == ["0002"]
    config = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    graceful = float(config["daemon"]["graceful_timeout_seconds"])
    assert float(service["TimeoutStopSec"][0]) > graceful  # a warm stop is not SIGKILLed
    assert float(service["WatchdogSec"][0]) >= 2 * 1.0  # the daemon pings at most every 1 s
    # nothing compiles into the read-only install at run time (numba is not loaded)
    assert not any(e.startswith("NUMBA_") for e in service.get("Environment", []))


@pytest.mark.slow
def test_run_speaks_sd_notify(harness: Harness) -> None:
    watchdog_sec = float(read_unit(UNIT)["Service"]["WatchdogSec"][0])
    name = f"heygemd-notify-{uuid.uuid4().hex}"
    got: list[tuple[float, str]] = []
    done = threading.Event()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(b"\0" + name.encode())
        server.settimeout(0.1)

        def listen() -> None:
            while not done.is_set():
                try:
                    data = server.recv(4096)
                except TimeoutError:
                    continue
                got.append((time.monotonic(), data.decode()))

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        harness.env |= {"NOTIFY_SOCKET": "@" + name,
                        "WATCHDOG_USEC": str(int(watchdog_sec * 1e6))}
        proc = harness.start()
        try:
            wait_for(lambda: any(m.startswith("READY=1") for _, m in got), 30, "READY=1")
            time.sleep(3.0)  # idle
            dropped_at = time.monotonic()
            harness.good_job("job1")
            assert harness.wait_published(1)["job1"]["status"] == "done"
            published_at = time.monotonic()
            time.sleep(3.0)  # idle again
            term_at = time.monotonic()
            assert harness.stop(proc) == 0
            wait_for(lambda: any(m == "STOPPING=1" for _, m in got), 5, "STOPPING=1")
        finally:
            done.set()
            listener.join(5)
    messages = [m for _, m in got]
    ready = [i for i, m in enumerate(messages) if m.startswith("READY=1")]
    assert len(ready) == 1 and messages[ready[0]].startswith("READY=1\nSTATUS="), messages
    ready_at = got[ready[0]][0]
    assert any(m.startswith("STATUS=running job1") for m in messages), messages
    assert [t for t, m in got if m == "STOPPING=1"][0] >= term_at
    pings = [t for t, m in got[ready[0]:] if m == "WATCHDOG=1"]

    def gaps(start: float, end: float) -> list[float]:
        marks = [start, *(t for t in pings if start <= t <= end), end]
        return [b - a for a, b in itertools.pairwise(marks)]

    assert max(gaps(ready_at, term_at)) <= watchdog_sec / 2, gaps(ready_at, term_at)
    idle = gaps(ready_at, dropped_at) + gaps(published_at, term_at)
    assert max(idle) <= IDLE_PING_GAP, idle


@pytest.mark.soak
@pytest.mark.timeout(1600)
def test_unit_under_a_real_systemd() -> None:
    """tests/systemd_check.sh: systemd booted as PID 1 in its own namespaces, heygemd installed
    as docs/service.md says, no system call outside the filter during a real job, then the unit
    verbatim: started, a real job published, stopped while idle and during a job, exit 0."""
    result = subprocess.run(["bash", str(SYSTEMD_CHECK), str(UNIT)], capture_output=True,
                            text=True, timeout=1500)
    if result.returncode == 2:  # cannot run here: the one line that says why
        pytest.fail(result.stderr.strip().splitlines()[-1], pytrace=False)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "FAIL" not in result.stdout and "all checks passed" in result.stdout, result.stdout


def test_the_web_unit_only_reads_and_only_talks_to_localhost() -> None:
    service = read_unit(WEB_UNIT)["Service"]
    assert "ReadWritePaths" not in service and "StateDirectory" not in service
    assert service["ProtectSystem"] == ["strict"]
    assert service["IPAddressDeny"] == ["any"] and service["IPAddressAllow"] == ["localhost"]
    assert service["ExecStart"][0].endswith(" web")
