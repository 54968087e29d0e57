"""The hearing worker process (heygemd.engines.builtin.hearing) on real speech: it hears exactly
what the Listener hears in this process, starts and stops cleanly, and is not needed."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from heygemd.contract import AUDIO_RATE
from heygemd.engines.builtin import children
from heygemd.engines.builtin import hearing as hearing_module
from heygemd.engines.builtin.hearing import Hearing
from heygemd.engines.builtin.listen import Heard, Listener
from tests.integration.procs import alive

FPS = 25.0
FIELDS = ("features", "speech", "level", "phone_opening", "closed_lips")


@pytest.fixture(scope="module")
def speech(shared_media: Path) -> np.ndarray:
    from heygemd.media.audio import load_audio

    speech = load_audio(shared_media / "speech" / "en01_male_jfk_inaugural_11s.flac")
    return speech[: 4 * AUDIO_RATE]


@pytest.fixture(scope="module")
def here(speech: np.ndarray) -> Heard:
    """What a Listener in this process hears."""
    return Listener().hear(speech, FPS, 100)


@pytest.fixture
def hearing() -> Iterator[Hearing]:
    hearing = Hearing(Listener(remember=0))
    hearing.start()
    assert hearing.wait_ready()  # its signal handlers are in place
    yield hearing
    hearing.close()


def assert_same(a: Heard, b: Heard) -> None:
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_the_worker_hears_what_this_process_hears(
    hearing: Hearing, speech: np.ndarray, here: Heard
) -> None:
    assert hearing.has_worker
    hearing.ask(speech, FPS, 100)
    heard = hearing.hear(speech, FPS, 100)
    assert_same(heard, here)
    assert not heard.features.flags.writeable  # shared answers are read-only
    assert hearing.hear(speech, FPS, 100) is heard  # remembered by content
    other = hearing.hear(speech * 0.5, FPS, 100)  # other samples: heard again
    assert other is not heard


def test_the_worker_gets_the_voice_mask_and_never_loads_torch(
    hearing: Hearing, speech: np.ndarray, here: Heard
) -> None:
    """The voice detector runs in this process (on the talking thread); the worker, sent each
    track's mask, maps no torch library, and its answer is this process's, mask included."""
    assert hearing._worker is not None
    hearing.ask(speech, FPS, 100)
    assert_same(hearing.hear(speech, FPS, 100), here)
    maps = Path(f"/proc/{hearing._worker.process.pid}/maps").read_text()
    assert "libtorch" not in maps and "silero" not in maps


def test_a_speech_mask_given_is_the_one_used_and_must_fit(speech: np.ndarray, here: Heard) -> None:
    listener = Listener(remember=0)
    assert np.array_equal(listener.speech_mask(speech, FPS, 100), here.speech)
    silent = listener.hear(speech, FPS, 100, speech=np.zeros(100, bool))
    assert not silent.speech.any() and not np.array_equal(silent.features, here.features)
    with pytest.raises(ValueError, match="100 frames"):
        listener.hear(speech, FPS, 100, speech=np.zeros(99, bool))


def test_a_lost_worker_is_replaced_by_hearing_here(
    hearing: Hearing, speech: np.ndarray, here: Heard
) -> None:
    assert hearing._worker is not None
    process = hearing._worker.process
    process.kill()
    process.wait()
    hearing.ask(speech, FPS, 100)
    assert_same(hearing.hear(speech, FPS, 100), here)  # answered in this process
    assert not hearing.has_worker
    hearing.start()  # the engine's prepare() starts a new one
    assert hearing.has_worker and hearing._worker is not None
    assert hearing._worker.process.pid != process.pid


def test_a_started_worker_boots_while_the_caller_works(
    speech: np.ndarray, here: Heard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """start() returns before the worker is ready; the first track asked waits for it. A
    worker that never says it is ready is given up: tracks are heard here."""
    hearing = Hearing(Listener(remember=0))
    try:
        t0 = time.monotonic()
        hearing.launch()
        assert time.monotonic() - t0 < 10.0  # a fork and exec; the worker's start-up is ~4 s more
        hearing.start()  # already launched: the in-process listener loads
        assert hearing.has_worker and hearing._worker is not None
        hearing.ask(speech, FPS, 100)
        assert_same(hearing.hear(speech, FPS, 100), here)
        assert hearing.has_worker and hearing._worker.ready
    finally:
        hearing.close()

    # a worker that never says it is ready (alive, silent), given up after START_SECONDS
    monkeypatch.setattr(hearing_module, "START_SECONDS", 0.5)
    monkeypatch.setattr(hearing_module._Worker, "launch", classmethod(
        lambda cls, phone_workers=0: cls(*children.start("import time; time.sleep(60)"))))
    slow = Hearing(Listener(remember=0))
    try:
        slow.start()
        slow.ask(speech, FPS, 100)
        assert_same(slow.hear(speech, FPS, 100), here)
        assert not slow.has_worker
        slow.start()  # the engine's next prepare() launches another
        assert slow.has_worker
    finally:
        slow.close()


def test_the_worker_ends_by_itself_when_its_socket_closes(hearing: Hearing) -> None:
    """The daemon's death closes the socket: the worker ends without being killed."""
    import socket

    assert hearing._worker is not None
    process = hearing._worker.process
    hearing._worker.sock.shutdown(socket.SHUT_RDWR)
    assert process.wait(timeout=30) == 0
    hearing.close()


def test_the_worker_ignores_stop_signals_and_ends_with_its_socket(hearing: Hearing) -> None:
    assert hearing._worker is not None
    process = hearing._worker.process
    os.kill(process.pid, signal.SIGTERM)  # systemd's or a terminal's: the daemon decides
    os.kill(process.pid, signal.SIGINT)
    time.sleep(0.3)
    assert process.poll() is None
    hearing.close()
    assert process.poll() is not None and not hearing.has_worker


def test_an_interrupted_wait_leaves_the_answer_for_later(
    hearing: Hearing, speech: np.ndarray, here: Heard, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Stop(BaseException):
        pass

    monkeypatch.setattr(hearing_module, "WAIT_STEP_SECONDS", 0.01)  # hearing takes ~0.3 s
    def interrupt() -> None:
        raise Stop

    hearing.ask(speech, FPS, 100)
    with pytest.raises(Stop), hearing.reporting(interrupt):
        hearing.hear(speech, FPS, 100)  # the first wait step interrupts
    assert_same(hearing.hear(speech, FPS, 100), here)  # no report outside the block


def test_without_a_worker_the_answers_are_the_same(speech: np.ndarray, here: Heard) -> None:
    hearing = Hearing(Listener(remember=0), use_worker=False)
    hearing.start()
    hearing.ask(speech, FPS, 100)  # nothing to ask
    assert not hearing.has_worker
    assert_same(hearing.hear(speech, FPS, 100), here)
    hearing.forget()
    hearing.close()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_phone_workers_hear_a_long_track_as_this_process_does_and_end_with_the_worker(
    shared_media: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from heygemd.engines.builtin.phones import PhoneRecognizer, piece_cuts
    from heygemd.media.audio import load_audio

    long = load_audio(shared_media / "speech" / "en02_male_news_commentary_60s_musetalk_eng.wav")
    count = int(len(long) / AUDIO_RATE * FPS)
    asked: list[list[int] | None] = []
    segments = PhoneRecognizer.segments
    monkeypatch.setattr(PhoneRecognizer, "segments", lambda self, audio, cuts=None: (
        asked.append(cuts), segments(self, audio, cuts))[1])
    here = Listener().hear(long, FPS, count)  # its pieces decoded one after another
    # a minute is heard in three pieces or more, cut in its pauses
    assert asked == [piece_cuts(here.speech, FPS, len(long))] and len(asked[0] or []) >= 2
    hearing = Hearing(Listener(remember=0), phone_workers=2)
    hearing.start()
    try:
        assert hearing.wait_ready() and hearing._worker is not None
        worker = hearing._worker.process.pid
        workers = _children(worker)
        assert len(workers) == 2  # started with the worker, before its first track
        hearing.ask(long, FPS, count)
        assert_same(hearing.hear(long, FPS, count), here)
        os.kill(worker, signal.SIGKILL)  # however the worker ends, its phone workers end too
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in workers)
    finally:
        hearing.close()
