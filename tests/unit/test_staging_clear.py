"""A staging folder an earlier try left is removed before the next try, or the reason it cannot
be is raised (an outbox read-only for now is the machine's: the job waits, never counted)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import ROOT


def _leftover(staging: Path) -> Path:
    (staging / "inputs" / "held").mkdir(parents=True)
    (staging / "inputs" / "held" / "a.mp4").write_bytes(b"x" * 100)
    (staging / "made.mp4").write_bytes(b"y" * 100)
    (staging / "inputs" / "held").chmod(0o555)  # a user's read-only folder, copied in as it was
    return staging


def test_a_leftover_staging_folder_is_cleared_even_where_it_holds_a_read_only_one() -> None:
    """Run as a user the file modes bind (root's are not): `nobody` when the tests are root,
    in a folder of its own under /tmp (pytest's are root's alone)."""
    tmp_path = Path(tempfile.mkdtemp(prefix="heygemd-staging-"))
    try:
        _cleared_as_a_service_user(tmp_path)
    finally:
        subprocess.run(["chmod", "-R", "u+rwx", str(tmp_path)], check=False)
        shutil.rmtree(tmp_path, ignore_errors=True)


def _cleared_as_a_service_user(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    staging = _leftover(outbox / ".heygemd-staging-J1")
    code = ("import sys; from pathlib import Path; from heygemd.daemon.jobs import _clear; "
            "s = Path(sys.argv[1]); _clear(s); _clear(s); print(s.exists())")
    argv = [sys.executable, "-c", code, str(staging)]
    if os.geteuid() == 0:  # the whole tree the user's own, as the service's outbox is
        for folder, dirs, files in os.walk(tmp_path):
            for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                os.chown(name, 65534, 65534)
        tmp_path.chmod(0o755)
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
