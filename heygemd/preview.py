"""The preview picture of a made video (``<name>.preview.jpg`` beside it in the outbox): a
contact sheet of frames across the video and, under it on one time axis, the new audio's
loudness and the output's mouth opening, with the stretches where no face was found (the
frames passed through unchanged) shaded.

:class:`Sampler` keeps a few shrunk output frames while the video is encoded and (given the
face analyzer) measures their mouths meanwhile in a thread of its own; the drawing is pure.
"""

from __future__ import annotations

import contextvars
import math
import queue
import threading
from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

from heygemd.contract import AUDIO_RATE
from heygemd.faces.geometry import mouth_opening
from heygemd.faces.types import FaceObservation
from heygemd.media.yuv import Picture, YuvFrame, as_rgb

SUFFIX = ".preview.jpg"
SHEET_COLUMNS = 4
SHEET_ROWS = 2
THUMB_WIDTH = 240  # pixels; the sheet is SHEET_COLUMNS of these wide
PLOT_HEIGHT = 150
MARGIN = 8
FLOOR_DB = -60.0  # loudness below this draws as silence
SAMPLE_FPS = 4.0  # output frames measured for the mouth curve, per second of video
MAX_SAMPLES = 240  # at most this many (a 60 s video is measured every 0.25 s)
SAMPLE_SIDE = 320  # long side (pixels) of a measured frame (a shown one kept until the end)
WHITE, INK, GREY = (255, 255, 255), (40, 40, 40), (150, 150, 150)
VOICE, MOUTH, MISSING = (185, 205, 230), (200, 40, 40), (250, 215, 215)


def sample_step(count: int, fps: float) -> int:
    """Keep every ``step``-th output frame: about SAMPLE_FPS a second, at most MAX_SAMPLES."""
    step = max(1, round(fps / SAMPLE_FPS)) if fps > 0 else 1
    return max(step, math.ceil(count / MAX_SAMPLES)) if count > 0 else step


def thumb_picks(samples: int, shown: int = SHEET_COLUMNS * SHEET_ROWS) -> list[int]:
    """Which of ``samples`` sampled frames (their order numbers) the picture shows: ``shown``
    spread evenly from the first to the last."""
    if samples <= 0:
        return []
    return sorted({round(i * (samples - 1) / max(shown - 1, 1)) for i in range(shown)})


def shrink(frame: Picture, side: int = SAMPLE_SIDE) -> np.ndarray:
    """``frame`` (H, W, 3) with its long side at most ``side`` pixels, RGB (a YuvFrame is
    shrunk and turned in one step)."""
    height, width = frame.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return as_rgb(frame).copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if isinstance(frame, YuvFrame):
        return frame.thumbnail(*size)
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def loudness_db(audio: np.ndarray, fps: float, count: int) -> np.ndarray:
    """float (count,): RMS level (dBFS) of ``audio`` (float32 (N,) at AUDIO_RATE) under each of
    ``count`` video frames at ``fps``; FLOOR_DB where silent or past the audio's end."""
    out = np.full(count, FLOOR_DB)
    per = AUDIO_RATE / fps if fps > 0 else len(audio)
    for i in range(count):
        chunk = audio[int(i * per):int((i + 1) * per)]
        if len(chunk):
            rms = float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64))))
            out[i] = max(20 * math.log10(rms), FLOOR_DB) if rms > 0 else FLOOR_DB
    return out


def _label(image: np.ndarray, text: str, at: tuple[int, int], colour: tuple[int, int, int],
           scale: float = 0.45) -> None:
    cv2.putText(image, text, at, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def contact_sheet(thumbs: Sequence[tuple[float, np.ndarray]]) -> np.ndarray:
    """Up to SHEET_COLUMNS x SHEET_ROWS frames (time in seconds, RGB frame), each scaled to
    THUMB_WIDTH and stamped with its time, on a white sheet."""
    if not thumbs:
        return np.full((MARGIN, SHEET_COLUMNS * THUMB_WIDTH, 3), 255, np.uint8)
    first = thumbs[0][1]
    tile_h = max(1, round(THUMB_WIDTH * first.shape[0] / first.shape[1]))
    rows = math.ceil(len(thumbs) / SHEET_COLUMNS)
    sheet = np.full((rows * tile_h, SHEET_COLUMNS * THUMB_WIDTH, 3), 255, np.uint8)
    for n, (seconds, frame) in enumerate(thumbs):
        tile = cv2.resize(frame, (THUMB_WIDTH, tile_h), interpolation=cv2.INTER_AREA)
        y, x = (n // SHEET_COLUMNS) * tile_h, (n % SHEET_COLUMNS) * THUMB_WIDTH
        sheet[y:y + tile_h, x:x + THUMB_WIDTH] = tile
        stamp = f"{int(seconds // 60)}:{seconds % 60:04.1f}"
        cv2.rectangle(sheet, (x, y + tile_h - 18), (x + 52, y + tile_h), (0, 0, 0), -1)
        _label(sheet, stamp, (x + 3, y + tile_h - 5), WHITE, 0.42)
    return sheet


def timeline(
    width: int, seconds: float, level_db: np.ndarray, opening: np.ndarray, fps: float,
    opening_fps: float,
) -> np.ndarray:
    """The plot under the sheet: loudness (filled, per frame at ``fps``), mouth opening (line,
    per sample at ``opening_fps``; NaN = no face found: that stretch is shaded)."""
    plot = np.full((PLOT_HEIGHT, width, 3), 255, np.uint8)
    top, bottom, left, right = 8, PLOT_HEIGHT - 34, MARGIN, width - MARGIN
    span = max(seconds, 1e-6)

    def x_of(t: float) -> int:
        return left + round((right - left) * min(max(t / span, 0.0), 1.0))

    def y_of(v: float) -> int:
        return bottom - round((bottom - top) * min(max(v, 0.0), 1.0))

    for i, value in enumerate(opening):  # shade where no face was found
        if not np.isfinite(value):
            cv2.rectangle(plot, (x_of(i / opening_fps), top),
                          (x_of((i + 1) / opening_fps), bottom), MISSING, -1)
    if len(level_db):
        norm = (level_db - FLOOR_DB) / -FLOOR_DB
        points = [(x_of(i / fps), y_of(float(v))) for i, v in enumerate(norm)]
        polygon = np.array([(points[0][0], bottom), *points, (points[-1][0], bottom)], np.int32)
        cv2.fillPoly(plot, [polygon], VOICE)
    finite = opening[np.isfinite(opening)]
    peak = float(np.percentile(finite, 98)) if len(finite) else 0.0
    if peak > 0:
        run: list[tuple[int, int]] = []
        for i, value in enumerate([*opening, math.nan]):
            if np.isfinite(value):
                run.append((x_of(i / opening_fps), y_of(float(value) / peak)))
            elif run:
                cv2.polylines(plot, [np.array(run, np.int32)], False, MOUTH, 2, cv2.LINE_AA)
                run = []
    cv2.line(plot, (left, bottom), (right, bottom), GREY, 1)
    step = next(s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if span / s <= 12)
    for t in range(0, int(span) + 1, step):
        cv2.line(plot, (x_of(t), bottom), (x_of(t), bottom + 4), GREY, 1)
        at = min(max(x_of(t) - 12, 0), width - 30)  # the first and last labels stay whole
        _label(plot, f"{t // 60}:{t % 60:02d}", (at, bottom + 16), INK, 0.38)
    legend_y = PLOT_HEIGHT - 6
    cv2.rectangle(plot, (left, legend_y - 9), (left + 14, legend_y), VOICE, -1)
    _label(plot, "voice loudness", (left + 18, legend_y), INK, 0.4)
    cv2.line(plot, (left + 140, legend_y - 4), (left + 156, legend_y - 4), MOUTH, 2)
    _label(plot, "mouth opening", (left + 160, legend_y), INK, 0.4)
    cv2.rectangle(plot, (left + 285, legend_y - 9), (left + 299, legend_y), MISSING, -1)
    _label(plot, "no face found: frames passed through", (left + 303, legend_y), INK, 0.4)
    return plot


def preview(
    thumbs: Sequence[tuple[float, np.ndarray]], seconds: float, level_db: np.ndarray, fps: float,
    opening: np.ndarray, opening_fps: float,
) -> np.ndarray:
    """The whole picture: the contact sheet above the timeline (RGB uint8)."""
    sheet = contact_sheet(thumbs)
    plot = timeline(sheet.shape[1], seconds, level_db, opening, fps, opening_fps)
    gap = np.full((MARGIN, sheet.shape[1], 3), 255, np.uint8)
    return np.concatenate([sheet, gap, plot], axis=0)


class Analyzer(Protocol):
    def analyze(self, frame: np.ndarray, frame_index: int) -> list[FaceObservation]: ...


class Sampler:
    """Samples every ``step``-th output frame, shrunk to SAMPLE_SIDE, as it is encoded: their
    indices in ``seen``, their pixels in ``kept`` (index, frame).

    Given an ``analyzer``, a thread of its own measures each sampled frame's mouth as it comes
    (while the video is still being made, its cores shared with the encoder) instead of all of
    them after the encode; :meth:`close` ends that thread, whatever happened meanwhile. The
    frames reach the analyzer in order, so one that follows a face from a frame to the next
    (faces.analyze.Follower) need not look for it afresh in each. Measured so and paced
    (:meth:`pace`), only the frames the picture will show are kept (thumb_picks of the
    samples the pace foresees) and the latest sample: 9 of up to MAX_SAMPLES (at 1080p:
    1.6 MB against up to 41 MB; at 512x512 2.8 against up to 74).
    """

    def __init__(self, analyzer: Analyzer | None = None, step: int = 1) -> None:
        self.step = step
        self.seen: list[int] = []
        self.kept: list[tuple[int, np.ndarray]] = []
        self.analyzer = analyzer
        self._shown: set[int] | None = None  # the sample numbers whose pixels are kept
        self._latest: tuple[int, np.ndarray] | None = None  # the last sample not kept
        self._measured: list[float] = []
        self._queue: queue.SimpleQueue[tuple[int, np.ndarray] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None

    def pace(self, frame_count: int, fps: float) -> None:
        """Keep about SAMPLE_FPS frames a second of a video of ``frame_count`` at ``fps``."""
        self.step = sample_step(frame_count, fps)
        self._shown = set(thumb_picks(math.ceil(frame_count / self.step)))

    def see(self, index: int, frame: Picture) -> None:
        if index % self.step:
            return
        small = shrink(frame)
        number = len(self.seen)
        self.seen.append(index)
        if self.analyzer is None or self._shown is None or number in self._shown:
            self.kept.append((index, small))  # measured later, or shown
        else:
            self._latest = (index, small)  # the sheet's last picture where the pace fell short
        if self.analyzer is None:
            return
        if self._thread is None:
            # the job's log context goes with it (its lines keep the job id)
            context = contextvars.copy_context()
            thread = threading.Thread(target=context.run, args=(self._measure, self.analyzer),
                                      name="preview-measure", daemon=True)
            thread.start()
            self._thread = thread
        self._queue.put((index, small))

    def _measure(self, analyzer: Analyzer) -> None:
        while (item := self._queue.get()) is not None and not self._stop.is_set():
            try:
                self._measured.append(float(openings([item], analyzer)[0]))
            except Exception as err:  # noqa: BLE001 - raised again by openings_of()
                self._error = err
                return

    def shown_candidates(self) -> list[tuple[int, np.ndarray]]:
        """The sampled frames whose pixels are held: those kept and the latest sample (where
        the video ended before its pace foresaw, the sheet still ends at its end)."""
        if self._latest is None or (self.kept and self.kept[-1][0] > self._latest[0]):
            return list(self.kept)
        return [*self.kept, self._latest]

    def openings_of(self, analyzer: Analyzer | None) -> np.ndarray:
        """float (len(seen),): :func:`openings` of the sampled frames; those measured meanwhile
        are waited for, not measured again (NaN: not measured, with no ``analyzer``, or
        dropped by :meth:`close` before they were measured meanwhile)."""
        if self._thread is None:
            if len(self.kept) == len(self.seen) and not self._measured:  # none measured yet
                if analyzer is None:
                    return np.full(len(self.seen), np.nan)
                return openings(self.kept, analyzer)
            measured = np.full(len(self.seen), np.nan)
            measured[: len(self._measured)] = self._measured
            return measured
        self._queue.put(None)
        self._thread.join()
        self._thread = None
        if self._error is not None:
            raise self._error
        if len(self._measured) != len(self.seen):
            raise RuntimeError(f"{len(self._measured)} of {len(self.seen)} preview frames "
                               "were measured")
        return np.asarray(self._measured, dtype=float)

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop measuring (the frames not measured yet are dropped) and end the thread."""
        if self._thread is not None:
            self._stop.set()
            self._queue.put(None)
            self._thread.join()
            self._thread = None


def openings(kept: Sequence[tuple[int, np.ndarray]], analyzer: Analyzer) -> np.ndarray:
    """float (len(kept),): the mouth opening of the largest face in each kept frame; NaN
    where no face is found."""
    out = np.full(len(kept), np.nan)
    for n, (index, frame) in enumerate(kept):
        faces = analyzer.analyze(frame, index)
        if faces:
            face = max(faces, key=lambda f: f.width * f.height)
            out[n] = mouth_opening(face.landmarks)
    return out


def picture(
    sampler: Sampler, analyzer: Analyzer | None, audio: np.ndarray, fps: float,
    frame_count: int,
) -> np.ndarray:
    """The preview of a video of ``frame_count`` frames at ``fps`` whose sound is ``audio``
    (float32 (N,) at AUDIO_RATE), from the frames ``sampler`` sampled: those thumb_picks
    chooses, each shown by the nearest of its shown_candidates (the one itself, where the
    pace foresaw the samples)."""
    thumbs: list[tuple[float, np.ndarray]] = []
    candidates = sampler.shown_candidates()
    for pick in thumb_picks(len(sampler.seen)) if candidates else []:
        index, frame = min(candidates, key=lambda k: abs(k[0] - sampler.seen[pick]))
        if not thumbs or thumbs[-1][1] is not frame:
            thumbs.append((index / fps, frame))
    return preview(thumbs, frame_count / fps if fps > 0 else 0.0,
                   loudness_db(audio, fps, frame_count), fps, sampler.openings_of(analyzer),
                   fps / sampler.step if fps > 0 else 1.0)
