"""Helper processes of the builtin engine: ``python -c`` with a socket pair to their parent.

No multiprocessing start method, semaphores or resource tracker, and no import of the parent's
``__main__``: the child runs the code given, with the heygemd package importable and the socket's
file descriptor as its first argument. The hearing worker (hearing.py) and its phone decoding
processes (decoders.py) are such children.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path


def start(code: str, *args: str, new_session: bool = False
          ) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Start ``python -c code <socket fd> args...``: (the process, this end of the socket).
    new_session: its own session (a terminal's Ctrl-C is not its to hear). OSError when it
    cannot be started."""
    ours, theirs = socket.socketpair()
    root = str(Path(__file__).resolve().parents[3])  # the heygemd package's parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", code, str(theirs.fileno()), *args],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            env=env, start_new_session=new_session,
        )
    except OSError:
        ours.close()
        raise
    finally:
        theirs.close()
    return process, ours


def end(process: subprocess.Popen[bytes], sock: socket.socket) -> None:
    """Shut the socket down (whoever waits on it wakes), kill the process and reap it."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        process.kill()
    process.wait()
