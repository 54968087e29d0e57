"""Keep the native libraries' log noise off stderr (journald, the terminal).

mediapipe, TFLite and absl write straight to file descriptor 2 while models load and run, a few
lines each time a face graph is built. Environment settings (GLOG_minloglevel,
TF_CPP_MIN_LOG_LEVEL) do not reach absl before its InitializeLog() nor TFLite's own logger
(checked with mediapipe 0.10), so for the length of a block fd 2 is a pipe read by a thread that
passes every other line on to the real stderr as it comes.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

NATIVE_NOISE = re.compile(
    rb"^(INFO: Created TensorFlow Lite|WARNING: All log messages before absl::InitializeLog"
    rb"|[IWE]\d{4} [\d:. ]+\d+ \S+\.cc:\d+\] )"
)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _pass_on(source: int, target: int) -> None:
    """Copy lines from ``source`` to ``target`` until EOF, dropping NATIVE_NOISE."""
    with os.fdopen(source, "rb") as lines:
        for line in lines:
            if not NATIVE_NOISE.match(line):
                with contextlib.suppress(OSError):  # stderr itself gone: nothing more to say
                    _write_all(target, line)


@contextmanager
def filtered_stderr() -> Iterator[None]:
    """Route fd 2 through the filter for the block. A fatal-signal dump (faulthandler) goes to
    the real stderr directly, so a crash is never lost in the pipe; on exit the pipe is drained
    before fd 2 is given back."""
    sys.stderr.flush()
    real = os.dup(2)
    source, sink = os.pipe()
    os.dup2(sink, 2)
    os.close(sink)
    pump = threading.Thread(target=_pass_on, args=(source, real), name="stderr-filter",
                            daemon=True)
    pump.start()
    was_enabled = faulthandler.is_enabled()
    faulthandler.enable(file=real)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # closes the pipe's last write end: the pump reads EOF
        pump.join(timeout=5.0)
        if was_enabled:
            faulthandler.enable(file=sys.stderr)
        else:
            faulthandler.disable()
        os.close(real)
