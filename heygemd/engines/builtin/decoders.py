"""Phone decoding of pieces of a track: here, or in processes of their own (a long track's pieces,
phones.piece_cuts).

pocketsphinx holds the GIL while it decodes, so pieces decoded in threads take as long as one
after another; processes decode them at once. Each process is a child of children.py (``python
-c`` with a socket pair), decodes each piece it is sent with a fresh decoder (phones.py's rule:
the same piece always gives the same phones), and ends when its socket closes or the thread
that started it ends, however that ends (Linux's parent-death signal: start them from a thread
that lives as long as its process, as the hearing worker's main thread does). A piece whose
process is lost, fails or takes far too long is decoded in the caller instead: the same phones.
"""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from heygemd.engines.builtin import children

log = structlog.get_logger(__name__)

Segments = list[tuple[str, int, int]]
# A piece's answer is waited for at most this long, plus DECODE_FACTOR times its length: it
# takes ~0.05 times its length on one core (a minute of speech: 2.7 s).
DECODE_WAIT_SECONDS = 30.0
DECODE_FACTOR = 2.0
PCM_BYTES_PER_SECOND = 32000  # 16 kHz, 16-bit


def decode(options: dict[str, Any], pcm: bytes) -> Segments:
    """One piece of 16-bit PCM -> its phone segments (phone, first and last 10 ms frame from
    the piece's start), by a fresh pocketsphinx decoder made with ``options``."""
    import pocketsphinx

    return segments_of(pocketsphinx.Decoder(**options), pcm)


def segments_of(decoder: Any, pcm: bytes) -> Segments:
    """A fresh ``decoder``'s segments for one piece of 16-bit PCM (one utterance)."""
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    return [(s.word, int(s.start_frame), int(s.end_frame)) for s in decoder.seg()]


class _Decoder:
    """One decoding process and this end of its socket."""

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket) -> None:
        from multiprocessing.connection import Connection

        self.process = process
        self.sock = sock
        self.conn = Connection(os.dup(sock.fileno()))

    @classmethod
    def launch(cls, options: dict[str, Any]) -> _Decoder:
        """Start one and hand it the decoder's options; OSError when it cannot start."""
        code = "from heygemd.engines.builtin.decoders import serve; serve()"
        decoder = cls(*children.start(code, str(os.getpid())))
        try:
            decoder.conn.send(options)
        except OSError:
            decoder.close()
            raise
        return decoder

    def decode(self, pcm: bytes) -> Segments:
        """The piece's segments; EOFError/OSError when the process is gone, TimeoutError when
        it does not answer in time."""
        self.conn.send_bytes(pcm)
        if not self.conn.poll(DECODE_WAIT_SECONDS + DECODE_FACTOR * len(pcm)
                              / PCM_BYTES_PER_SECOND):
            raise TimeoutError("no answer")
        answer: Segments = self.conn.recv()
        return answer

    def end(self) -> None:
        """Kill the process (a wait on its socket wakes); again: nothing more."""
        children.end(self.process, self.sock)

    def close(self) -> None:
        self.end()
        self.conn.close()
        self.sock.close()


class DecoderProcesses:
    """``count`` decoding processes, started at once (models loaded before this returns);
    :meth:`decode` shares pieces among them. ``options``: pocketsphinx.Decoder's keyword
    arguments. OSError when one cannot be started (those started are ended)."""

    def __init__(self, count: int, options: dict[str, Any]) -> None:
        self.options = options
        self._decoders: list[_Decoder] = []
        try:
            for _ in range(count):
                self._decoders.append(_Decoder.launch(options))
        except OSError:
            for decoder in self._decoders:
                decoder.close()
            raise
        # a process free to decode, or None where one was lost (its pieces are decoded here)
        self._free: queue.SimpleQueue[_Decoder | None] = queue.SimpleQueue()
        for decoder in self._decoders:
            self._free.put(decoder)
        self._threads = ThreadPoolExecutor(count, thread_name_prefix="phone-decoders")
        self.decode([bytes(3200)] * count)  # each loads its models now (~0.4 s, at once)

    @property
    def pids(self) -> list[int]:
        return [d.process.pid for d in self._decoders]

    def decode(self, pieces: list[bytes]) -> list[Segments]:
        """Each piece of 16-bit PCM -> its segments, in the order given."""
        return list(self._threads.map(self._decode_one, pieces))

    def _decode_one(self, pcm: bytes) -> Segments:
        decoder = self._free.get()
        if decoder is None:
            self._free.put(None)
            return decode(self.options, pcm)
        try:
            answer = decoder.decode(pcm)
        except BaseException as err:  # lost, failed or stuck: decode here, and do without it
            decoder.close()
            self._free.put(None)
            log.warning("phones.decoder_lost", pid=decoder.process.pid,
                        exit_code=decoder.process.returncode, error=repr(err))
            if not isinstance(err, Exception):
                raise
            return decode(self.options, pcm)
        self._free.put(decoder)
        return answer

    def close(self) -> None:
        """End the processes (a piece waited for is decoded in its caller), then the threads."""
        for decoder in self._decoders:
            decoder.end()
            self._free.put(None)  # a piece waiting for a process takes it and is decoded here
        self._threads.shutdown(wait=True, cancel_futures=True)
        for decoder in self._decoders:
            decoder.close()


def serve() -> None:
    """A decoding process's life: the socket (fd in argv[1]) brings the decoder's options,
    then pieces of PCM, each answered with its segments, until it closes. It ends with the
    process that started it (pid in argv[2])."""
    import contextlib
    import ctypes
    import signal
    from multiprocessing.connection import Connection

    with contextlib.suppress(OSError):  # not Linux: the socket's close still ends it
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != int(sys.argv[2]):  # the parent ended before the signal was asked for
        return
    conn = Connection(int(sys.argv[1]))
    try:
        options = conn.recv()
        while True:
            pcm = conn.recv_bytes()
            conn.send(decode(options, pcm))
    except (EOFError, OSError):
        return
