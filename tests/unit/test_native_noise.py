"""fd 2 through the native-noise filter process (run, once, validate, doctor)."""

from __future__ import annotations

import faulthandler
import os
import subprocess
import sys
import textwrap
import time

import pytest

from heygemd.native_noise import filtered_stderr

NOISE = (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
         b"WARNING: All log messages before absl::InitializeLog() is called are written to "
         b"STDERR\n"
         b"W0000 00:00:1795522922.636214   16143 inference_feedback_manager.cc:114] "
         b"Feedback manager requires a model with a single signature inference.\n"
         b"I0000 00:00:1795522922.636214   16143 gl_context.cc:357] GL version: 3.2\n")


def test_noise_is_dropped_and_the_rest_passed_on(capfd: pytest.CaptureFixture[str]) -> None:
    with filtered_stderr():
        os.write(2, NOISE + b"a real problem\n"
                 b"E0000 00:00:1795522922.636214   16143 graph.cc:1] the GPU delegate failed\n")
    assert capfd.readouterr().err == (
        "a real problem\nE0000 00:00:1795522922.636214   16143 graph.cc:1] the GPU delegate "
        "failed\n")


def test_lines_are_passed_on_while_the_block_runs(capfd: pytest.CaptureFixture[str]) -> None:
    """`run` lives for months: what is not noise reaches journald as it is written."""
    with filtered_stderr():
        os.write(2, NOISE + b"Traceback (most recent call last):\n")
        deadline = time.monotonic() + 10.0
        seen = ""
        while "Traceback" not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
            seen += capfd.readouterr().err
        assert seen == "Traceback (most recent call last):\n"  # before the block ends
        os.write(2, b"no newline at the end")
    assert capfd.readouterr().err == "no newline at the end"


def test_an_exception_gives_stderr_and_faulthandler_back(
    capfd: pytest.CaptureFixture[str],
) -> None:
    before = faulthandler.is_enabled()
    with pytest.raises(RuntimeError), filtered_stderr():
        raise RuntimeError("inside")
    assert faulthandler.is_enabled() == before
    os.write(2, NOISE)  # unfiltered again: straight through
    assert capfd.readouterr().err == NOISE.decode()


def test_the_last_words_of_a_native_crash_are_not_lost() -> None:
    """absl writes its fatal line, then aborts: the filter still passes it on."""
    script = textwrap.dedent("""
        import os
        from heygemd.native_noise import filtered_stderr
        with filtered_stderr():
            os.write(2, b"W0000 00:00:1.0   1 a.cc:1] noise\\n")
            os.write(2, b"F0000 00:00:1.0   1 graph.cc:9] Check failed: shape ok\\n")
            os.abort()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode != 0
    assert b"Check failed: shape ok" in done.stderr and b"noise" not in done.stderr, done.stderr
