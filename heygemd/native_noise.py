"""Keep the native libraries' log noise off stderr (journald, the terminal).

mediapipe, TFLite and absl write info and warning lines straight to file descriptor 2 each time
a face graph is built. Environment settings (GLOG_minloglevel, TF_CPP_MIN_LOG_LEVEL) do not
reach absl before its InitializeLog() nor TFLite's own logger (checked with mediapipe 0.10), so
for the length of a block fd 2 is a pipe into a small filter process (``python -m
heygemd.native_noise``) that passes every other line on to the real stderr as it comes.

A process, not a thread: it drains the pipe whatever this process is doing (a native call that
holds the GIL while it writes cannot block on a full pipe), and when this process dies (an
abort after absl's "Check failed" line) it still passes on what was written before the end.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

from heygemd import fatal

# Info and warning lines only: errors (E...) and fatal lines (F...) always get through.
NATIVE_NOISE = re.compile(
    rb"^(INFO: Created TensorFlow Lite|WARNING: All log messages before absl::InitializeLog"
    rb"|[IW]\d{4} [\d:. ]+\d+ \S+\.cc:\d+\] )"
)
DRAIN_SECONDS = 5.0


def main() -> None:
    """The filter: stdin -> stdout, line by line, without NATIVE_NOISE, until EOF. Stop
    signals are for the daemon (the whole systemd control group gets them): the filter ends
    when the last writer closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:  # read to the end whatever happens: the daemon never blocks
        if not NATIVE_NOISE.match(line):
            with contextlib.suppress(OSError):  # stderr itself is gone: drop the line
                out.write(line)
                out.flush()


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Route fd 2 through the filter process for the block; give it back on exit (also on an
    exception). A fatal-signal dump (faulthandler) goes to the real stderr directly. Without a
    usable stderr, or when the filter cannot start, the block runs unfiltered."""
    sys.stderr.flush()
    try:
        real = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep clean
        yield
        return
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "heygemd.native_noise"],
            stdin=subprocess.PIPE, stdout=real, stderr=real,
        )
    except OSError:
        os.close(real)
        yield
        return
    assert child.stdin is not None
    os.dup2(child.stdin.fileno(), 2)
    child.stdin.close()  # fd 2 is now the pipe's only write end in this process
    try:
        with fatal.dumps_to(real):
            yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # closes the pipe: the filter passes on what is left and ends
        os.close(real)
        with contextlib.suppress(subprocess.TimeoutExpired):
            # a library that kept a copy of fd 2 keeps the filter alive until this
            # process ends; the filter writes to its own stdout, never to a reused fd here
            child.wait(timeout=DRAIN_SECONDS)


if __name__ == "__main__":
    main()
