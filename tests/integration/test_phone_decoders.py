"""decoders.py: a long track's pieces decoded by processes of their own give the phones decoded
in the caller, whatever happens to those processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from heygemd.contract import AUDIO_RATE
from heygemd.engines.builtin import children, decoders
from heygemd.engines.builtin.phones import PhoneRecognizer
from tests.integration.procs import alive

CUTS = [AUDIO_RATE, 2 * AUDIO_RATE, 3 * AUDIO_RATE]  # four pieces of 4 s of speech


@pytest.fixture(scope="module")
def speech(shared_media: Path) -> np.ndarray:
    from heygemd.media.audio import load_audio

    return load_audio(shared_media / "speech" / "en01_male_jfk_inaugural_11s.flac")[
        : 4 * AUDIO_RATE]


@pytest.fixture(scope="module")
def in_turn(speech: np.ndarray) -> list[tuple[str, int, int]]:
    return PhoneRecognizer().segments(speech, CUTS)


@pytest.fixture
def recognizer() -> Iterator[PhoneRecognizer]:
    recognizer = PhoneRecognizer()
    recognizer.start_workers(2)
    yield recognizer
    recognizer.close()


def _within(seconds: float, call):  # type: ignore[no-untyped-def]
    """call() in a thread; its answer, failing the test if it takes longer than ``seconds``."""
    answer: list[object] = []
    thread = threading.Thread(target=lambda: answer.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    return answer[0]


def test_a_lost_process_leaves_its_pieces_to_the_caller(
    recognizer: PhoneRecognizer, speech: np.ndarray, in_turn: list
) -> None:
    assert recognizer.segments(speech, CUTS) == in_turn
    first, second = recognizer.worker_pids
    os.kill(first, signal.SIGKILL)
    assert _within(60, lambda: recognizer.segments(speech, CUTS)) == in_turn
    os.kill(second, signal.SIGKILL)
    assert _within(60, lambda: recognizer.segments(speech, CUTS)) == in_turn  # the caller alone
    recognizer.close()
    assert not any(alive(pid) for pid in (first, second))


def test_a_stuck_process_is_given_up(
    recognizer: PhoneRecognizer, speech: np.ndarray, in_turn: list,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(decoders, "DECODE_WAIT_SECONDS", 1.0)
    stuck = recognizer.worker_pids[0]
    os.kill(stuck, signal.SIGSTOP)
    assert _within(30, lambda: recognizer.segments(speech, CUTS)) == in_turn
    assert not alive(stuck)  # killed, not left stopped


def test_a_failing_process_never_blocks_the_pieces(
    recognizer: PhoneRecognizer, speech: np.ndarray, in_turn: list,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fails(self: object, pcm: bytes) -> None:
        raise ValueError("an answer that cannot be read")

    monkeypatch.setattr(decoders._Decoder, "decode", fails)
    for _ in range(3):  # more failures than processes: the caller decodes them all
        assert _within(60, lambda: recognizer.segments(speech, CUTS)) == in_turn


def test_close_while_pieces_are_decoded_ends_everything(speech: np.ndarray) -> None:
    recognizer = PhoneRecognizer()
    recognizer.start_workers(2)
    pids = recognizer.worker_pids
    long = np.tile(speech, 8)  # 32 s in two pieces of 16 s
    busy = threading.Thread(target=recognizer.segments, args=(long, [16 * AUDIO_RATE]),
                            daemon=True)
    busy.start()
    time.sleep(0.3)
    _within(60, recognizer.close)
    busy.join(60)
    assert not busy.is_alive() and not any(alive(pid) for pid in pids)


def test_processes_that_cannot_start_leave_the_decoding_here(
    speech: np.ndarray, in_turn: list, monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = []
    real_start = children.start

    def second_fails(*args: object, **kwargs: object) -> object:
        if started:
            raise OSError(11, "Resource temporarily unavailable")
        started.append(real_start(*args, **kwargs))  # type: ignore[arg-type]
        return started[-1]

    monkeypatch.setattr(children, "start", second_fails)
    recognizer = PhoneRecognizer()
    recognizer.start_workers(2)
    assert recognizer.worker_pids == []
    assert started and started[0][0].wait(timeout=10) is not None  # the first one was ended
    assert recognizer.segments(speech, CUTS) == in_turn


def test_processes_end_with_the_one_that_started_them_even_mid_piece(
    shared_media: Path, tmp_path: Path,
) -> None:
    """However their parent ends (here SIGKILL while they decode a minute of speech each),
    they end at once, not when the piece is done (~2.5 s)."""
    track = shared_media / "speech" / "en02_male_news_commentary_60s_musetalk_eng.wav"
    code = (
        "import os, signal, sys, threading, time, numpy as np\n"
        "from heygemd.engines.builtin.phones import PhoneRecognizer\n"
        "from heygemd.media.audio import load_audio\n"
        f"minute = load_audio({str(track)!r})\n"
        "r = PhoneRecognizer(); r.start_workers(2)\n"
        "print('PIDS', *r.worker_pids, flush=True)\n"
        "both = np.concatenate([minute, minute])\n"
        "threading.Thread(target=r.segments, args=(both, [len(minute)]), daemon=True).start()\n"
        "time.sleep(0.8)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    root = str(Path(decoders.__file__).resolve().parents[3])
    # its stderr to a file: the processes hold it (a pipe would keep run() waiting for them)
    with (tmp_path / "stderr").open("w") as errors:
        done = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=errors, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": root})
    assert done.returncode == -signal.SIGKILL, (tmp_path / "stderr").read_text()[-2000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("PIDS"))
    pids = [int(p) for p in line.split()[1:]]
    assert len(pids) == 2
    deadline = time.monotonic() + 1.0
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids)
