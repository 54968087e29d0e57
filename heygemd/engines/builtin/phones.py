"""Speaker-independent audio -> mouth prior: pocketsphinx phone decoding, phones -> visemes.

The pocketsphinx wheel bundles an English acoustic model and a phone language model, so nothing
is downloaded. Phones map to a mouth-opening prior in [0, 1] (0 = lips closed, as on b/p/m).
For other languages the recogniser still finds vowel-like and closure-like stretches, which is
what the prior needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from heygemd.contract import AUDIO_RATE
from heygemd.engines.builtin.decoders import DecoderProcesses, segments_of

PHONE_RATE = 100.0  # pocketsphinx frames per second
PHONE_HOP = int(AUDIO_RATE / PHONE_RATE)  # samples per pocketsphinx frame
# A long track is decoded in pieces cut in its pauses, each at least PIECE_SECONDS long (the
# last at least half that, else joined to the one before), so that a server's cores decode them
# at once (phone_workers). The cuts depend on the track and the frame rate it is heard at (its
# speech per video frame), never on the machine: every machine hears the same phones. A piece
# starts its own utterance (cepstral mean, phone context): 88-91% of video frames keep their
# viseme class against one utterance for a minute (en02, c01), where 1e-4 of noise keeps
# 97-99%; the leave-one-speaker-out plan r did not move (0.000 [-0.002, 0.002]).
PIECE_SECONDS = 15.0
MIN_PAUSE_SECONDS = 0.2  # the shortest pause a track is cut in (its middle)
# Decoders built ahead, while the hearing worker is idle: a cold job hears two tracks (the
# template's own and the new audio), each with a fresh decoder (~0.1 s to build).
SPARE_DECODERS = 2

# ARPAbet phone -> mouth opening prior (0 closed .. 1 wide open).
VISEME_OPENING: dict[str, float] = {
    "M": 0.0, "B": 0.0, "P": 0.0,
    "F": 0.12, "V": 0.12,
    "W": 0.3, "UW": 0.4, "UH": 0.45, "OW": 0.55, "OY": 0.6, "R": 0.35,
    "TH": 0.3, "DH": 0.3,
    "S": 0.25, "Z": 0.25, "SH": 0.3, "ZH": 0.3, "CH": 0.3, "JH": 0.3,
    "T": 0.3, "D": 0.3, "N": 0.3, "L": 0.4, "Y": 0.35,
    "K": 0.4, "G": 0.4, "NG": 0.35, "HH": 0.5,
    "IY": 0.45, "IH": 0.55, "EY": 0.65, "EH": 0.7, "ER": 0.5,
    "AE": 0.9, "AH": 0.8, "AA": 1.0, "AO": 0.85, "AW": 0.9, "AY": 0.9,
}
CLOSED_PHONES = frozenset({"M", "B", "P"})

# ARPAbet phone -> viseme class (phones that look alike on the lips share one). The classes are
# features for the per-template regression, which learns what each looks like on this speaker.
VISEME_CLASS: dict[str, int] = {
    "M": 0, "B": 0, "P": 0,  # lips together
    "F": 1, "V": 1,  # lower lip to teeth
    "W": 2, "UW": 2, "UH": 2, "R": 2, "ER": 2,  # rounded
    "OW": 3, "OY": 3, "AO": 3,  # rounded open
    "TH": 4, "DH": 4, "T": 4, "D": 4, "N": 4, "L": 4,  # tongue to teeth / ridge
    "S": 5, "Z": 5,  # teeth together
    "SH": 6, "ZH": 6, "CH": 6, "JH": 6,  # lips forward
    "Y": 7, "IY": 7, "IH": 7,  # spread
    "K": 8, "G": 8, "NG": 8,  # back of the tongue
    "HH": 9,
    "EY": 10, "EH": 10,  # mid open
    "AE": 11, "AH": 11, "AA": 11, "AW": 11, "AY": 11,  # wide open
}
OTHER_CLASS = 12  # a phone the table does not know (silence and noise get no class)
N_VISEME_CLASSES = 13
SILENT_PHONES = frozenset({"SIL", "+NSN+", "+SPN+", "+BREATH+", "+NOISE+"})


def viseme_opening(phone: str) -> float:
    """Opening prior of one phone; silence and noise are closed (0.0), unknown phones 0.4."""
    if phone in SILENT_PHONES:
        return 0.0
    return VISEME_OPENING.get(phone, 0.4)


def phones_to_frames(
    segments: list[tuple[str, int, int]], fps: float, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Phone segments (phone, start, end in 10 ms frames, end inclusive) -> per video frame.

    Returns (opening float32 (count,) in [0, 1], closed bool (count,): a b/p/m covers the frame
    centre).
    """
    opening = np.zeros(count, dtype=np.float32)
    weight = np.zeros(count, dtype=np.float32)
    closed = np.zeros(count, dtype=bool)
    centres = (np.arange(count) + 0.5) / fps
    for phone, start, end in segments:
        t0, t1 = start / PHONE_RATE, (end + 1) / PHONE_RATE
        f0, f1 = int(np.floor(t0 * fps)), int(np.ceil(t1 * fps))
        for t in range(max(0, f0), min(count, f1)):
            overlap = min(t1, (t + 1) / fps) - max(t0, t / fps)
            if overlap > 0:
                opening[t] += overlap * viseme_opening(phone)
                weight[t] += overlap
        if phone in CLOSED_PHONES:
            closed |= (centres >= t0) & (centres < t1)
    return np.where(weight > 0, opening / np.maximum(weight, 1e-9), 0.0).astype(np.float32), closed


def viseme_frames(segments: list[tuple[str, int, int]], fps: float, count: int) -> np.ndarray:
    """Phone segments (as :func:`phones_to_frames`) -> float32 (count, N_VISEME_CLASSES): the
    share of each video frame that each viseme class covers (rows of silence are all zero)."""
    out = np.zeros((count, N_VISEME_CLASSES), dtype=np.float32)
    for phone, start, end in segments:
        if phone in SILENT_PHONES:
            continue
        k = VISEME_CLASS.get(phone, OTHER_CLASS)
        t0, t1 = start / PHONE_RATE, (end + 1) / PHONE_RATE
        for t in range(max(0, int(np.floor(t0 * fps))), min(count, int(np.ceil(t1 * fps)))):
            overlap = min(t1, (t + 1) / fps) - max(t0, t / fps)
            if overlap > 0:
                out[t, k] += overlap * fps
    return out


def piece_cuts(speech: np.ndarray, fps: float, n_samples: int) -> list[int]:
    """Where a track of ``n_samples`` is cut into pieces: sample indices (multiples of
    PHONE_HOP, ascending, inside the track), in the middle of pauses (runs of frames without
    ``speech``, bool per video frame at ``fps``, of MIN_PAUSE_SECONDS or more), each piece at
    least PIECE_SECONDS long and the last at least half that. [] for a short track."""
    cuts: list[int] = []
    last = 0
    min_run = max(1, int(np.ceil(MIN_PAUSE_SECONDS * fps)))
    quiet = np.concatenate([[False], ~np.asarray(speech, bool), [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):  # pauses [start, stop)
        if stop - start < min_run:
            continue
        cut = int(round((start + stop) / 2 / fps * PHONE_RATE)) * PHONE_HOP
        if cut - last >= PIECE_SECONDS * AUDIO_RATE and \
                n_samples - cut >= PIECE_SECONDS / 2 * AUDIO_RATE:
            cuts.append(cut)
            last = cut
    return cuts


def phone_workers(cores: int) -> int:
    """Processes that decode a long track's pieces at once on a machine of ``cores``: one per
    four cores, at most four (a minute of speech is three or four pieces); none under eight
    cores, where
    the pieces are decoded one after another in the hearing worker (it already runs beside the
    face analysis and the frame pass)."""
    workers = min(4, cores // 4)
    return workers if workers >= 2 else 0


class PhoneRecognizer:
    """pocketsphinx all-phone decoder.

    A decoder adapts its noise and cepstral-mean estimates from one utterance to the next, so
    the same audio decoded twice gives other phones: each call gets a fresh decoder (about 0.1 s
    to build) and the same audio always gives the same phones, whatever was decoded before.
    Decoders may be built ahead (:meth:`make_spare`, when idle): one built ahead and never
    used is as fresh as one built in the call, and gives the same phones.
    """

    def __init__(self) -> None:
        self._options: dict[str, Any] | None = None
        self._spares: list[Any] = []  # fresh decoders, never used
        self._workers: DecoderProcesses | None = None  # start_workers

    def load(self) -> None:
        """Find the bundled models (and fail here, not mid-job, when they are missing)."""
        if self._options is not None:
            return
        import pocketsphinx

        model = Path(pocketsphinx.__file__).parent / "model" / "en-us"
        options = {
            "hmm": str(model / "en-us"), "allphone": str(model / "en-us-phone.lm.bin"),
            "lm": None, "beam": 1e-20, "pbeam": 1e-20, "lw": 2.0, "samprate": AUDIO_RATE,
            "logfn": "/dev/null",
        }
        pocketsphinx.Decoder(**options)  # the models load
        self._options = options

    @property
    def spares(self) -> int:
        """Fresh decoders held for the next calls of :meth:`segments`."""
        return len(self._spares)

    def make_spare(self) -> None:
        """Build one fresh decoder now (~0.1 s, ~20 MB) for a later call of :meth:`segments`."""
        import pocketsphinx

        self.load()
        assert self._options is not None
        self._spares.append(pocketsphinx.Decoder(**self._options))

    def segments(self, audio: np.ndarray, cuts: list[int] | None = None
                 ) -> list[tuple[str, int, int]]:
        """float32 (N,) 16 kHz -> [(phone, start_frame, end_frame)] at 100 frames/s.

        cuts: where the track is cut into pieces (:func:`piece_cuts`), each decoded as an
        utterance of its own, by the phone workers at once when there are some."""
        import pocketsphinx

        self.load()
        assert self._options is not None
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
        bounds = [0, *(cuts or []), len(pcm)]
        pieces = [pcm[a:b].tobytes() for a, b in zip(bounds, bounds[1:], strict=False)]
        if self._workers is not None and len(pieces) > 1:
            found = self._workers.decode(pieces)
        else:
            found = []
            for piece in pieces:
                decoder = self._spares.pop() if self._spares else \
                    pocketsphinx.Decoder(**self._options)
                found.append(segments_of(decoder, piece))
        return [(phone, start + a // PHONE_HOP, end + a // PHONE_HOP)
                for a, segments in zip(bounds, found, strict=False)
                for phone, start, end in segments]

    def start_workers(self, count: int) -> None:
        """Decode the pieces of long tracks in ``count`` processes of their own from now on
        (none: < 2; decoders.py), started from this thread, which must live as long as they
        are wanted (they end with it). They start and load their models here (~0.5 s, at once;
        ~30 MB each); when they cannot, pieces are decoded here (said in the log)."""
        if count < 2 or self._workers is not None:
            return
        self.load()
        assert self._options is not None
        try:
            self._workers = DecoderProcesses(count, self._options)
        except OSError as err:
            import structlog

            structlog.get_logger(__name__).warning("phones.decoders_unavailable", count=count,
                                                   error=str(err))

    @property
    def worker_pids(self) -> list[int]:
        """The decoding processes' ids (none without them)."""
        return [] if self._workers is None else self._workers.pids

    def close(self) -> None:
        """Stop the decoding processes, if any."""
        if self._workers is not None:
            self._workers.close()
            self._workers = None
