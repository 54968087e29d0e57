"""Phone decoding of a long track's pieces (phones.piece_cuts) in processes of their own.

pocketsphinx holds the GIL while it decodes, so pieces decoded in threads take as long as one
after another; processes decode them at once. Each process is ``python -c`` with a socket to
the one that started it (as the hearing worker is to the daemon: no multiprocessing start
method, semaphores or resource tracker), decodes each piece it is sent with a fresh decoder
(phones.PhoneRecognizer's rule: the same piece always gives the same phones), and ends when its
socket closes or the process that started it ends, however that ends (Linux's parent-death
signal). A piece whose process is lost is decoded in the caller instead: the same phones.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

Segments = list[tuple[str, int, int]]


class _Decoder:
    """One decoding process and its end of the socket."""

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket) -> None:
        from multiprocessing.connection import Connection

        self.process = process
        self.sock = sock
        self.conn = Connection(os.dup(sock.fileno()))

    @classmethod
    def launch(cls, options: dict[str, Any]) -> _Decoder:
        ours, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parents[3])  # the heygemd package's parent
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        code = "from heygemd.engines.builtin.decoders import serve; serve()"
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", code, str(theirs.fileno()), str(os.getpid())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, env=env,
            )
        finally:
            theirs.close()
        decoder = cls(process, ours)
        decoder.conn.send(options)
        return decoder

    def decode(self, pcm: bytes) -> Segments:
        self.conn.send_bytes(pcm)
        answer: Segments = self.conn.recv()
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.process.kill()
        self.process.wait()
        self.conn.close()
        self.sock.close()


class DecoderProcesses:
    """``count`` decoding processes, started at once; :meth:`decode` shares pieces among them.
    ``options``: pocketsphinx.Decoder's keyword arguments."""

    def __init__(self, count: int, options: dict[str, Any]) -> None:
        self.options = options
        self._decoders = [_Decoder.launch(options) for _ in range(count)]
        # a process free to decode, or None where one was lost (its pieces are decoded here)
        self._free: queue.SimpleQueue[_Decoder | None] = queue.SimpleQueue()
        for decoder in self._decoders:
            self._free.put(decoder)
        self._threads = ThreadPoolExecutor(count, thread_name_prefix="phone-decoders")
        # each loads its models now (~0.4 s, at once), not on the first long track
        self.decode([bytes(3200)] * count)

    @property
    def pids(self) -> list[int]:
        return [d.process.pid for d in self._decoders]

    def decode(self, pieces: list[bytes]) -> list[Segments]:
        """Each piece of 16-bit PCM -> its segments, in the order given."""
        return list(self._threads.map(self._decode_one, pieces))

    def _decode_one(self, pcm: bytes) -> Segments:
        from heygemd.engines.builtin.phones import decode

        decoder = self._free.get()
        if decoder is None:
            self._free.put(None)
            return decode(self.options, pcm)
        try:
            answer = decoder.decode(pcm)
        except (EOFError, OSError):  # the process is gone: decode here, and do without it
            decoder.close()
            self._free.put(None)
            return decode(self.options, pcm)
        self._free.put(decoder)
        return answer

    def close(self) -> None:
        self._threads.shutdown(wait=True, cancel_futures=True)
        for decoder in self._decoders:
            decoder.close()


def serve() -> None:
    """A decoding process's life: the socket (fd in argv[1]) brings the decoder's options,
    then pieces of PCM, each answered with its segments, until it closes. It ends with the
    process that started it (pid in argv[2])."""
    import ctypes
    import signal
    from multiprocessing.connection import Connection

    from heygemd.engines.builtin.phones import decode

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
