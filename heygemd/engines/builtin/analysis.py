"""Template analysis: per-frame face geometry, mouth shape, audio features, and mouth crops.

Computed once per template file and cached by content (heygemd.cache). The mouth crops (the
bank of real mouths) are full-resolution cut-outs of each frame's lower face, kept on disk and
memory-mapped, so memory does not grow with the template's length.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from heygemd.cache import AnalysisCache, content_key
from heygemd.contract import AUDIO_RATE
from heygemd.engines.builtin import mesh
from heygemd.engines.builtin.hearing import Hearing
from heygemd.engines.builtin.listen import Heard, feature_signature
from heygemd.engines.builtin.prefetch import Held, prefetched, start_worker
from heygemd.engines.builtin.segments import Handover, Segment, segmented
from heygemd.errors import MediaError
from heygemd.faces.bridge import Filled, GapBridge, bridge_gaps, max_gap_frames
from heygemd.media.tap import FrameTap
from heygemd.media.types import MAX_CHANNELS, MediaInfo
from heygemd.media.yuv import Picture, as_rgb

log = structlog.get_logger(__name__)

ANALYSIS_VERSION = "builtin-analysis-13"  # 11, 12: 50/60 and 10-15 fps templates heard as planned;
# 13: a display matrix's flip applied, and an own sound's NaN samples made silent
MAX_YAW_DEG = 30.0
MAX_PITCH_DEG = 30.0
CROP_MARGIN = 1.25  # crop side = the first face's ring box side times this
DECODE_AHEAD = 4  # frames decoded (and shrunk) ahead, in a worker thread, of the face analysis
# A template this small (all its frames at full size, RGB) is kept decoded after its analysis,
# for the render that follows, instead of being decoded again (th08: 125 frames, 98 MB). Kept as
# decoded (half that), it is held beside the RGB frames while it is analysed in halves: up to
# 1.5 times this until the analysis ends.
KEEP_DECODED_BYTES = 256 * 1024 * 1024
# A template too large to keep may be analysed in segments at once (segment_starts: at most
# one per face worker the engine gives, and MAX_SEGMENTS), each with a decoder and a tracking
# analyzer of its own (:mod:`.segments`); a segment shorter than this does not repay building
# an analyzer (~0.4 CPU-s) and decoding from a keyframe.
MIN_SEGMENT_FRAMES = 100
MAX_SEGMENTS = 8

# (index, frame or None where a segment's worker had it, faces in it, that worker or None)
Answers = Generator[tuple[int, np.ndarray | None, list[Any], Segment | None], None, None]


@dataclass(frozen=True)
class TemplateAnalysis:
    """Everything the engine knows about a template, per frame (N frames at ``fps``).

    landmarks: float32 (N, 478, 3) full-resolution pixels, temporally smoothed, NaN without a face.
    pose: float32 (N, 3) yaw/pitch/roll degrees. usable: bool (N,) a mouth can be placed on the
    frame: its face measured or bridged (:mod:`heygemd.faces.bridge`), turned at most
    MAX_YAW_DEG / MAX_PITCH_DEG. opening: float32 (N,) inner-lip gap / inter-ocular, NaN where
    the mouth was not seen (no face, or bridged): only those frames are mouth sources.
    features: float32 (N, D) what the template's own audio sounds like
    (listen.feature_windows); speech: bool (N,).
    crop_origin: int32 (N, 2) (x0, y0) of each frame's crop; crops: uint8 (N, Hc, Wc, 3).
    bridged: bool (N,) frames whose face was filled in from both sides (a gap of at most
    bridge.MAX_GAP_SECONDS), not measured.
    """

    fps: float
    width: int
    height: int
    landmarks: np.ndarray
    pose: np.ndarray
    usable: np.ndarray
    opening: np.ndarray
    features: np.ndarray
    speech: np.ndarray
    crop_origin: np.ndarray
    crops: np.ndarray
    bridged: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return len(self.usable)

    def arrays(self) -> dict[str, np.ndarray]:
        """The small arrays, for the cache."""
        meta = np.array([self.fps, self.width, self.height], dtype=np.float64)
        return {
            "meta": meta, "landmarks": self.landmarks, "pose": self.pose, "usable": self.usable,
            "opening": self.opening, "features": self.features, "speech": self.speech,
            "crop_origin": self.crop_origin,
            "bridged": self.bridged if self.bridged is not None else np.zeros(len(self.usable),
                                                                               bool),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], crops: np.ndarray) -> TemplateAnalysis:
        fps, width, height = arrays["meta"].tolist()
        return cls(
            fps=float(fps), width=int(width), height=int(height), landmarks=arrays["landmarks"],
            pose=arrays["pose"], usable=arrays["usable"].astype(bool), opening=arrays["opening"],
            features=arrays["features"], speech=arrays["speech"].astype(bool),
            crop_origin=arrays["crop_origin"], crops=crops,
            bridged=arrays["bridged"].astype(bool),
        )


def crop_origin_for(
    center: np.ndarray, side: tuple[int, int], width: int, height: int
) -> np.ndarray:
    """Top-left corner (x0, y0) of a (h, w) crop centred on ``center``, kept inside the frame."""
    h, w = side
    x0 = int(np.clip(round(center[0] - w / 2), 0, max(width - w, 0)))
    y0 = int(np.clip(round(center[1] - h / 2), 0, max(height - h, 0)))
    return np.array([x0, y0], dtype=np.int32)


def crop_side(landmarks: np.ndarray, width: int, height: int) -> tuple[int, int]:
    """Square crop (side, side) for a template from one face's landmarks (478, 3): even, within
    the frame."""
    ring = mesh.ring_points(landmarks)
    span = float((ring.max(axis=0) - ring.min(axis=0)).max()) * CROP_MARGIN
    side = min(width, height, int(np.ceil(span / 2)) * 2)
    return side, side


def _own_track(path: Path, info: MediaInfo) -> np.ndarray | None:
    """The template's own sound, float32 (N,) at 16 kHz, or None without a sound track, or
    where it has more channels than MAX_CHANNELS and FFmpeg knows no layout to mix them down
    by (9, 11, 13 ...): the output's sound is the job's, so the template is analysed as if
    silent rather than refused."""
    from heygemd.media.audio import load_audio

    if info.audio is None:
        return None
    try:
        return load_audio(path, rate=AUDIO_RATE, mono=True, from_first_frame=True)
    except MediaError as err:
        if info.audio.channels <= MAX_CHANNELS:
            raise
        log.warning("template.sound_not_heard", template=path.name,
                    channels=info.audio.channels, error=str(err.__cause__ or err.code))
        return None


def _hear_template(track: np.ndarray | None, fps: float, count: int, hearing: Hearing) -> Heard:
    """What the template's own audio track says, frame by frame (silence without one)."""
    if track is None:
        return Heard.silence(count)
    return hearing.hear(track, fps, count)


_NO_FACE = np.full((478, 3), np.nan, np.float32)


def _face_arrays(faces: list[Any], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(landmarks (478, 3) in full-res pixels or NaN, pose (3,)) of the largest face."""
    if not faces:
        return np.full((478, 3), np.nan, np.float32), np.full(3, np.nan, np.float32)
    face = faces[0]
    points = np.asarray(face.landmarks, dtype=np.float32) / scale
    return points, np.array([face.yaw, face.pitch, face.roll], dtype=np.float32)


def analysis_key(path: Path, scale: float) -> str:
    """The cache key of ``path``'s analysis at ``scale`` (its content, the analysis's version,
    the audio features'); what is derived from the analysis alone is kept under it too."""
    return content_key(path, f"{ANALYSIS_VERSION}-{feature_signature()}-scale{scale:.3f}")


def analyse_template(
    path: Path,
    analyzer: Any,
    hearing: Hearing,
    cache: AnalysisCache,
    scale: float,
    progress: Callable[[float], None],
    helper: Callable[[], Any] | None = None,
    tap: FrameTap | None = None,
    spawn: Callable[[], Any] | None = None,
    workers: int = 1,
    as_yuv: bool = False,
) -> tuple[TemplateAnalysis, bool, Sequence[Picture] | None]:
    """Analyse ``path`` (or load it from ``cache``). Returns (analysis, was_cached, frames):
    ``frames`` are the template's decoded frames (uint8 (H, W, 3), index = frame index) when it
    was analysed now and they fit KEEP_DECODED_BYTES, else None; with ``as_yuv``, those that
    can travel as decoded are held as YuvFrames (VideoReader.picture: half the bytes, and the
    render's encoder takes them as they are), the faces found on the same RGB pixels.

    analyzer: a tracking heygemd.faces.FaceAnalyzer; progress gets 0..1 of this analysis. The
    template's own track is asked of ``hearing`` before the frames are decoded, so that it is
    heard (in the hearing worker) while the faces are analysed. ``helper``: gives a second
    tracking analyzer (asked only when it is used: a template whose frames are all kept is
    analysed in two halves at once
    (:func:`_in_halves`: th08 on two free cores in 0.65 s against 1.0 s in one pass), with the
    same results). ``tap``: each decoded frame is offered there, and it is closed once no more
    will be (at once when the analysis is cached). ``spawn``: makes a new tracking analyzer
    (closed after use); with ``workers`` > 1, a template not analysed in halves is analysed in
    up to that many segments at once (:func:`_in_segments`: c01's faces alone on two cores in
    10.8 s against 12.6 s in one pass), with the same results.
    """
    key = analysis_key(path, scale)
    arrays = cache.load_arrays(key)
    crops = cache.load_big(key, "crops") if arrays is not None else None
    if arrays is not None and crops is not None:
        if tap is not None:
            tap.close()
        log.info("template.cache_hit", template=path.name, key=key[:12])
        return TemplateAnalysis.from_arrays(arrays, crops), True, None
    t0 = time.monotonic()
    try:
        analysis, frames = _analyse(path, analyzer, hearing, cache, key, scale, progress,
                                    helper, tap, spawn, workers, as_yuv)
    finally:
        if tap is not None:
            tap.close()
    cache.save_arrays(key, analysis.arrays())
    log.info(
        "template.analysed", template=path.name, frames=analysis.n_frames,
        usable=int(analysis.usable.sum()), duration_ms=round((time.monotonic() - t0) * 1000, 1),
    )
    return analysis, False, frames


def _decoded(
    frames: Iterator[Picture], capacity: int, small_size: tuple[int, int], scale: float,
    tap: FrameTap | None = None, handover: Handover | None = None,
    held: list[Picture] | None = None,
) -> Generator[tuple[int, np.ndarray, np.ndarray], None, None]:
    """(index, RGB frame, frame at ``small_size``) for the first ``capacity`` frames, each
    offered to ``tap`` first and put in ``held`` as it came; the tap is closed as the decoding
    ends (finished at the file's end), except where segments' workers decode the rest
    (``handover``: told whether it reached the end; the tap is closed as the analysis ends)."""
    finished = False
    last: tuple[Picture, np.ndarray] | None = None  # a frame repeated over a gap: turned once
    try:
        for index, picture in enumerate(frames):
            if index >= capacity:
                return
            if held is not None:
                held.append(picture)
            if last is None or last[0] is not picture:
                last = (picture, as_rgb(picture))
            frame = last[1]
            if tap is not None:
                tap.offer(index, frame)
            yield index, frame, _shrunk(frame, small_size, scale)
        finished = True
    finally:
        if handover is not None:
            handover.decoded_to_end = finished
        elif tap is not None:
            tap.close(finished)


def _shrunk(frame: np.ndarray, small_size: tuple[int, int], scale: float) -> np.ndarray:
    """``frame`` at the analysis's ``small_size`` (itself at ``scale`` 1)."""
    import cv2

    return frame if scale == 1.0 else cv2.resize(frame, small_size, interpolation=cv2.INTER_AREA)


def _analyse(
    path: Path,
    analyzer: Any,
    hearing: Hearing,
    cache: AnalysisCache,
    key: str,
    scale: float,
    progress: Callable[[float], None],
    helper: Callable[[], Any] | None = None,
    tap: FrameTap | None = None,
    spawn: Callable[[], Any] | None = None,
    workers: int = 1,
    as_yuv: bool = False,
) -> tuple[TemplateAnalysis, Sequence[Picture] | None]:
    from heygemd.media.video import VideoReader, keyframe_indices, read_frames

    with VideoReader(path) as reader:
        width, height, fps = reader.width, reader.height, reader.fps
        track = _own_track(path, reader.info)
        if track is not None:  # heard beside the face analysis; the estimate is usually exact
            hearing.ask(track, fps, reader.frame_count)
        capacity = reader.frame_count + 8
        small_size = (max(2, round(width * scale)), max(2, round(height * scale)))
        keep = capacity * width * height * 3 <= KEEP_DECODED_BYTES
        found = _Found(cache, key, capacity, width, height, scale, fps)
        starts = [0]
        if spawn is not None and not (keep and helper is not None) \
                and len(segment_starts(reader.frame_count, workers)) > 1:
            # where segments may be: their starts at keyframes (the file's packets read)
            starts = segment_starts(reader.frame_count, workers, keyframe_indices(path, fps))
        handover = Handover(lambda: found.crops is not None) if len(starts) > 1 else None
        # the frames kept for the render, as decoded (the analysis sees them as RGB)
        held: list[Picture] | None = [] if keep and as_yuv and handover is None else None
        pictures = (picture for _, picture in reader.pictures(as_yuv=held is not None))
        decoded = _decoded(pictures, capacity, small_size, scale, tap, handover, held)
        try:
            kept: Sequence[Picture] | None
            if keep and helper is not None:
                kept = _in_halves(decoded, analyzer, helper(), found, reader.frame_count,
                                  progress)
            elif handover is not None and spawn is not None:
                found.fetch = lambda index: read_frames(path, [index], info=reader.info)[index]
                kept = None
                _in_segments(decoded, analyzer, found, capacity, progress, starts,
                             _segment_maker(path, reader.info, capacity, small_size, scale,
                                            starts, spawn, found, tap),
                             handover, tap)
            else:
                kept = _in_order(decoded, analyzer, found, capacity, keep and held is None,
                                 progress)
            if held is not None:  # the RGB frames the analysis saw go; these stay
                kept = held
            found.close()
            # a refusal the frame pass found meanwhile stops the engine here, before the crops
            # of a refused template are kept
            progress(1.0)
        except BaseException:
            found.discard()
            raise
    if found.crops is None:
        from heygemd.errors import InputRejected

        raise InputRejected(
            f"No face was found in any frame of {path.name}; use a video showing one face.",
            code="no_face",
        )
    return _finish(track, fps, width, height, found.landmarks, found.poses, found.bridged,
                   found.origins, found.crops.entry.commit(), hearing), kept


def _one_by_one(frames: Iterator[tuple[int, np.ndarray, np.ndarray]], analyzer: Any) -> Answers:
    for index, frame, small in frames:
        yield index, frame, analyzer.analyze(small, index), None


def _in_order(
    decoded: Iterator[tuple[int, np.ndarray, np.ndarray]],
    analyzer: Any,
    found: _Found,
    capacity: int,
    keep: bool,
    progress: Callable[[float], None],
    answering: Callable[[Generator[tuple[int, np.ndarray, np.ndarray], None, None]], Answers]
    | None = None,
) -> list[np.ndarray] | None:
    """Every frame, in order, with its faces (``answering`` the decoded frames: by default
    ``analyzer`` on each) into ``found``; the frames, when ``keep`` (not with ``answering``
    segments: their frames are not all here)."""
    kept: list[np.ndarray] | None = [] if keep else None
    last_report = time.monotonic()
    # decoded in a worker thread (PyAV and OpenCV release the GIL) while the faces are found;
    # closed (the worker stopped) before the reader is
    with closing(prefetched(decoded, DECODE_AHEAD, name="builtin-decode")) as frames, \
            closing(answering(frames) if answering is not None
                    else _one_by_one(frames, analyzer)) as answers:
        for index, frame, faces, source in answers:
            if kept is not None and frame is not None:
                kept.append(frame)
            found.take(index, frame, faces, source)
            if time.monotonic() - last_report > 0.5:
                progress(min(index / max(capacity, 1), 0.99))
                last_report = time.monotonic()
    return kept


def segment_starts(frame_count: int, workers: int, keyframes: list[int] | None = None
                   ) -> list[int]:
    """First frames of the segments a template of ``frame_count`` frames is analysed in with
    ``workers`` face workers: at most one per worker (and MAX_SEGMENTS), each at least
    MIN_SEGMENT_FRAMES long, of about equal length. Each lies on a multiple of the tracker's
    re-detection period (where it runs the full-frame detector anyway), at the first such
    frame from a keyframe where ``keyframes`` are known, so that a segment's decode does not
    first decode frames before it (th10's keyframes are 250 frames apart: a start at frame 100
    would decode 100 frames for nothing). ``[0]``: in one pass."""
    from heygemd.faces.analyze import REDETECT_EVERY

    period = REDETECT_EVERY
    count = max(1, min(workers, MAX_SEGMENTS, frame_count // MIN_SEGMENT_FRAMES))
    ideal = [k * frame_count / count for k in range(1, count)]
    if keyframes:
        places = sorted({period * -(-k // period) for k in keyframes})
    else:
        places = sorted({period * round(point / period) for point in ideal})
    starts = [0]
    for point in ideal:
        nearest = min(places, key=lambda place: abs(place - point), default=0)
        if nearest - starts[-1] >= MIN_SEGMENT_FRAMES \
                and frame_count - nearest >= MIN_SEGMENT_FRAMES:
            starts.append(nearest)
    return starts


def _in_segments(
    decoded: Generator[tuple[int, np.ndarray, np.ndarray], None, None],
    analyzer: Any,
    found: _Found,
    capacity: int,
    progress: Callable[[float], None],
    starts: list[int],
    make: Callable[[int], Segment],
    handover: Handover,
    tap: FrameTap | None,
) -> None:
    """Every frame into ``found``, its faces found in segments at once (:mod:`.segments`):
    ``decoded`` (the analysis's own decode, told of ``handover``) through ``analyzer`` up to
    the first hand-over, workers of ``make``'s from there. ``tap`` is closed as it ends."""
    found.handover = handover
    _in_order(decoded, analyzer, found, capacity, False, progress,
              lambda frames: segmented(frames, analyzer, starts, make, handover))
    if tap is not None:
        tap.close(handover.finished)


def _segment_maker(
    path: Path, info: Any, capacity: int, small_size: tuple[int, int], scale: float,
    starts: list[int], spawn: Callable[[], Any], found: _Found, tap: FrameTap | None,
) -> Callable[[int], Segment]:
    """A maker of the segment workers of ``path``'s analysis (:mod:`.segments`): each decodes
    from its start itself (up to ``capacity`` frames), cuts its crops into ``found``'s bank
    and offers its frames to ``tap``."""
    from heygemd.media.video import VideoReader

    boundaries = frozenset(starts[1:])

    def frames_from(start: int) -> Iterator[tuple[int, np.ndarray]]:
        with VideoReader(path, info=info) as own:
            yield from own.frames(start)

    def write_crop(index: int, frame: np.ndarray, points: np.ndarray) -> None:
        assert found.crops is not None  # the workers start once it is made
        found.crops.store(index, frame, points)

    def make(start: int) -> Segment:
        return Segment(start, boundaries, spawn, frames_from,
                       lambda frame: _shrunk(frame, small_size, scale),
                       lambda faces: _face_arrays(faces, scale), write_crop,
                       max_gap_frames(found.fps), tap.offer if tap is not None else None,
                       capacity)

    return make


def _in_halves(
    decoded: Iterator[tuple[int, np.ndarray, np.ndarray]],
    analyzer: Any,
    helper: Any,
    found: _Found,
    estimate: int,
    progress: Callable[[float], None],
) -> list[np.ndarray]:
    """The frames of a template held whole, analysed in two halves at once: ``analyzer`` from
    the start, ``helper`` (a second tracking analyzer, in a thread) from a frame where the
    tracker re-detects anyway (a multiple of its re-detection period). The helper starts there
    with the full-frame detector; what the tracker finds from a detection on depends only on
    the frames, so its half is what ``analyzer`` would have found, as long as ``analyzer``'s
    own answer at the split came from that frame alone (it re-detected there, no face lost on
    the way, and the detector did not miss a face it was following: ``was_fresh``); it
    analyses that one frame too to know. Otherwise the helper's half is dropped and
    ``analyzer`` goes on alone. Either way the results equal one analyzer's in order."""
    from heygemd.faces.analyze import REDETECT_EVERY

    split = REDETECT_EVERY * round(estimate / (2 * REDETECT_EVERY))
    frames = Held(decoded)
    helper.reset()
    second = _Half(helper, frames, split)
    last_report = time.monotonic()

    def report(done: int) -> None:  # at least twice a second, whichever loop runs
        nonlocal last_report
        if time.monotonic() - last_report > 0.5:
            progress(min(done / max(estimate, 1), 0.99))
            last_report = time.monotonic()

    try:
        index = 0
        while index < split and (item := frames.get(index)) is not None:
            found.take(index, item[1], analyzer.analyze(item[2], index))
            index += 1
            report(index + second.done)
        valid = False
        if index == split and (item := frames.get(split)) is not None:
            at_split = analyzer.analyze(item[2], split)
            valid = analyzer.was_fresh
            if not valid:
                found.take(split, item[1], at_split)
                index += 1
        while not second.finished(0.1):
            report(index + second.done)
        faces = second.result()
        log.debug("template.halves", split=split, second=len(faces), valid=valid)
        if valid:
            for offset, observed in enumerate(faces):
                found.take(split + offset, frames.items[split + offset][1], observed)
            index += len(faces)
        while (item := frames.get(index)) is not None:  # the helper's half was not valid
            found.take(index, item[1], analyzer.analyze(item[2], index))
            index += 1
            report(index)
    finally:
        second.stop()
        frames.close()
    return [frame for _, frame, _ in frames.items]


class _Half:
    """``analyzer`` over ``frames`` from ``start`` to their end, in a worker thread."""

    def __init__(self, analyzer: Any, frames: Held, start: int) -> None:
        self.faces: list[Any] = []
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = start_worker(lambda: self._run(analyzer, frames, start), "builtin-faces")

    @property
    def done(self) -> int:
        return len(self.faces)

    def _run(self, analyzer: Any, frames: Held, start: int) -> None:
        try:
            index = start
            while not self._stop.is_set() and (item := frames.get(index)) is not None:
                self.faces.append(analyzer.analyze(item[2], index))
                index += 1
        except BaseException as err:  # noqa: BLE001 - raised in the waiting thread
            self._error = err

    def finished(self, wait: float) -> bool:
        """Whether the worker is done, after waiting at most ``wait`` seconds for it."""
        self._thread.join(wait)
        return not self._thread.is_alive()

    def result(self) -> list[Any]:
        """The faces found in each frame from ``start`` on; the worker's exception raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.faces

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class _Found:
    """What the analysis found, in frame order: landmarks and pose per frame (short gaps
    bridged: :class:`heygemd.faces.bridge.GapBridge`; the frames of an open gap are held until
    it closes), and each frame's crop in the crops entry (opened at the first face found, sized
    on it). Frames a segment's worker answered for come without their picture: it cut their
    crops (:mod:`.segments`), save those of a gap at its edges, decoded again here
    (``fetch``); ``handover`` says which crops a stopped worker may have cut."""

    def __init__(self, cache: AnalysisCache, key: str, capacity: int, width: int, height: int,
                 scale: float, fps: float) -> None:
        self.cache, self.key, self.capacity = cache, key, capacity
        self.width, self.height, self.scale, self.fps = width, height, scale, fps
        self.landmarks: list[np.ndarray] = []
        self.poses: list[np.ndarray] = []
        self.bridged: list[bool] = []
        self.origins: list[np.ndarray] = []
        self.crops: _CropBank | None = None
        self.handover: Handover | None = None
        self.fetch: Callable[[int], np.ndarray] | None = None
        self._bridge = GapBridge(max_gap_frames(fps))
        self._held: deque[tuple[int, np.ndarray | None, Segment | None]] = deque()

    def take(self, index: int, frame: np.ndarray | None, faces: list[Any],
             source: Segment | None = None) -> None:
        """Frame ``index`` (the next in order; None: ``source``, a segment's worker, has it)
        and the faces found in it at ``scale``."""
        points, pose = _face_arrays(faces, self.scale)
        self._held.append((index, frame, source))
        self._settle(self._bridge.push(points, pose))

    def close(self) -> None:
        """No more frames: the frames of a gap still open are settled (without a face)."""
        self._settle(self._bridge.finish())

    def _settle(self, settled: list[Filled]) -> None:
        for item in settled:
            index, frame, source = self._held.popleft()
            points = item.landmarks if item.landmarks is not None else _NO_FACE
            self.landmarks.append(points)
            self.poses.append(item.pose)
            self.bridged.append(item.bridged)
            if self.crops is None and item.landmarks is not None:
                self.crops = _CropBank(self.cache.big_writer(
                    self.key, "crops",
                    (self.capacity, *crop_side(points, self.width, self.height), 3)))
            self.origins.append(self._crop(index, frame, source, item))

    def _crop(self, index: int, frame: np.ndarray | None, source: Segment | None,
              item: Filled) -> np.ndarray:
        """Frame ``index``'s crop origin, its crop cut where it is not yet."""
        if self.crops is None:
            return np.zeros(2, np.int32)
        if item.landmarks is None:
            if self.handover is not None and self.handover.stale(index):
                self.crops.clear(index)
            return np.zeros(2, np.int32)
        if frame is None and source is not None \
                and (not item.bridged or index in source.wrote):
            return self.crops.origin(item.landmarks, self.width, self.height)
        if frame is None:  # a bridged frame at a segment's edge
            assert self.fetch is not None
            frame = self.fetch(index)
        return self.crops.store(index, frame, item.landmarks)

    def discard(self) -> None:
        if self.crops is not None:
            self.crops.entry.discard()


class _CropBank:
    """The crops entry being filled: each frame's lower face, cut around its mouth ring (by
    the analysis, or by segments' workers, each its own frames)."""

    def __init__(self, entry: Any) -> None:
        self.entry = entry
        self.side: tuple[int, int] = (entry.shape[1], entry.shape[2])

    def origin(self, points: np.ndarray, width: int, height: int) -> np.ndarray:
        """The origin (x0, y0) of the crop of a (width x height) frame whose face is at
        ``points``."""
        return crop_origin_for(mesh.ring_center(points), self.side, width, height)

    def store(self, index: int, frame: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Keep frame ``index``'s crop (where its face was found); its origin (x0, y0)."""
        if np.isnan(points).any():
            return np.zeros(2, np.int32)
        height, width = frame.shape[:2]
        origin = self.origin(points, width, height)
        self.entry.put(index, frame[origin[1] : origin[1] + self.side[0],
                                    origin[0] : origin[0] + self.side[1]])
        return origin

    def clear(self, index: int) -> None:
        """Frame ``index`` has no crop (what a stopped worker cut there goes)."""
        self.entry.put(index, 0)


@dataclass(frozen=True)
class FacePass:
    """The speaker's face in every frame of a template, at full resolution.

    landmarks: float32 (N, 478, 3) raw (unsmoothed) pixels, NaN without a face.
    pose: float32 (N, 3) yaw/pitch/roll degrees, NaN without a face.
    bridged: bool (N,) frames whose face was filled in from both sides, not measured.
    """

    landmarks: np.ndarray
    pose: np.ndarray
    bridged: np.ndarray


def face_pass(frames: list[np.ndarray], analyzer: Any, scale: float, fps: float) -> FacePass:
    """The faces of ``frames`` (uint8 (H, W, 3) RGB, already shrunk by ``scale``, in order, at
    ``fps``) as the template analysis finds them (one tracking analyzer, gaps bridged), without
    its crops: for measuring (bench/face_coverage.py)."""
    points, poses = [], []
    for index, frame in enumerate(frames):
        p, pose = _face_arrays(analyzer.analyze(frame, index), scale)
        points.append(p)
        poses.append(pose)
    if not frames:
        return FacePass(np.zeros((0, 478, 3), np.float32), np.zeros((0, 3), np.float32),
                        np.zeros(0, bool))
    return FacePass(*bridge_gaps(np.stack(points), np.stack(poses), max_gap_frames(fps)))


def usable_mask(landmarks: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """bool (N,): frames a mouth is rendered on (a face, turned at most MAX_YAW/PITCH_DEG)."""
    found = ~np.isnan(landmarks).any(axis=(1, 2))
    with np.errstate(invalid="ignore"):
        return found & (np.abs(pose[:, 0]) <= MAX_YAW_DEG) & (np.abs(pose[:, 1]) <= MAX_PITCH_DEG)


# How far a template's mouth must open and close for the builtin engine to make it speak
# (inner-lip gap / inter-ocular, the 1st to the 99th percentile of its usable frames, so that a
# person who speaks in a few of them passes): the new mouths are the person's own, so a mouth
# that never moves gives a video whose lips never move. Measured: 51 real talking clips
# 0.054 and up (c26, bearded, the least); a still video (one frame repeated) 0.0016, a masked
# still 0.0028.
MIN_MOUTH_TRAVEL = 0.01
MIN_TRAVEL_FRAMES = 10  # fewer usable frames: not judged here (the frame pass judges them)


def mouth_travel(analysis: TemplateAnalysis) -> float | None:
    """How far the template's mouth opens and closes over its usable frames (the 1st to the
    99th percentile of their openings), or None with too few of them to say."""
    seen = np.asarray(analysis.usable) & np.isfinite(analysis.opening)
    values = np.asarray(analysis.opening)[seen]
    if len(values) < MIN_TRAVEL_FRAMES:
        return None
    return float(np.percentile(values, 99) - np.percentile(values, 1))


def openings(landmarks: np.ndarray, found: np.ndarray) -> np.ndarray:
    """float32 (N,) inner-lip gap / inter-ocular of each frame in ``found``, NaN elsewhere."""
    from heygemd.faces.geometry import mouth_opening

    return np.array([mouth_opening(p) if ok else np.nan for p, ok in zip(landmarks, found,
                                                                         strict=True)],
                    dtype=np.float32)


def _finish(
    track: np.ndarray | None,
    fps: float,
    width: int,
    height: int,
    raw_landmarks: list[np.ndarray],
    poses: list[np.ndarray],
    bridged: list[bool],
    origins: list[np.ndarray],
    crops: np.ndarray,
    hearing: Hearing,
) -> TemplateAnalysis:
    from heygemd.faces.geometry import smooth_sequence

    raw = np.stack(raw_landmarks)
    pose = np.stack(poses)
    filled = np.array(bridged, bool)
    found = ~np.isnan(raw).any(axis=(1, 2))
    usable = usable_mask(raw, pose)
    opening = openings(raw, found & ~filled)  # a bridged frame's mouth was not seen
    smooth = smooth_sequence(raw, fps).astype(np.float32)
    heard = _hear_template(track, fps, len(raw), hearing)
    return TemplateAnalysis(
        fps=fps, width=width, height=height, landmarks=smooth, pose=pose, usable=usable,
        opening=opening, features=heard.features.copy(), speech=heard.speech.copy(),
        crop_origin=np.stack(origins), crops=crops, bridged=filled,
    )
