"""BuiltinEngine: sample-based mouth re-animation from the template's own frames.

For each output frame the template's own frames are a bank of real mouths: the one whose shape
fits the new audio (regression + phone prior -> target opening -> Viterbi selection) is warped
into the base frame (the template walked in ping-pong order) and blended. No downloaded weights.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
import weakref
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import structlog
from pydantic import BaseModel

from heygemd.cache import AnalysisCache
from heygemd.contract import ProgressFn
from heygemd.engines import handkeep
from heygemd.engines.base import EngineContext, Evaluable, Rendering, RenderRequest
from heygemd.engines.builtin import (
    colour,
    crops,
    mesh,
    mouthmodel,
    overlay,
    phones,
    planning,
    render,
)
from heygemd.engines.builtin.analysis import (
    MIN_MOUTH_TRAVEL,
    TemplateAnalysis,
    analyse_template,
    analysis_key,
    mouth_travel,
)
from heygemd.engines.builtin.hearing import Hearing
from heygemd.engines.builtin.listen import Listener
from heygemd.engines.builtin.mouthmodel import MouthModel
from heygemd.engines.builtin.prefetch import Ahead, start_worker
from heygemd.engines.builtin.render import Constants, Plan
from heygemd.errors import InputRejected, ProcessingError
from heygemd.media.yuv import Picture
from heygemd.settings import BuiltinEngineSettings

log = structlog.get_logger(__name__)

PROGRESS_SECONDS = 0.5
# Batches decoded and transplanted ahead, in a worker thread, while the caller encodes: torch,
# OpenCV and the codecs release the GIL, so on two cores the transplant hides behind x264. The
# worker starts when the plan is made: while the pipeline waits for the frame pass's verdict,
# the first batches are already being made.
PREFETCH_BATCHES = 1
# A batch holds at most this many bytes of full frames (and as many again of their copies
# while it is made):
# batch_size frames at 512x512, fewer at 1080p (7 of 1080x1920), so that the frames in flight
# between decoder and encoder do not grow with the picture.
BATCH_BYTES = 48 * 1024 * 1024
# torch threads of the thread that transplants (and the default of threads started after it;
# threads already running keep theirs): its ops are small (one mouth window each) and the
# encoder works beside it, so a second thread only waits for a core. 16 frames' skin shift on
# a 2-core machine with x264 running: 606 ms on 2 threads, 56 ms on 1.
RENDER_THREADS = 1
# The modules whose rules (and tuned constants) make what template_constants keeps, and those
# they read (paths within the heygemd package): kept constants are found again only under the
# same source of every one (constants_signature).
CONSTANTS_SOURCES = tuple(f"engines/builtin/{name}.py" for name in (
    "colour", "crops", "engine", "mesh", "overlay", "planning", "render", "select", "warp",
)) + ("engines/compose.py", "faces/geometry.py", "faces/landmarks.py")


def _refuse_a_still_mouth(analysis: TemplateAnalysis) -> None:
    """Raise InputRejected (mouth_still) where the template's mouth does not move: its new
    mouths would be that one still mouth (a still picture, or a person who never opens it)."""
    travel = mouth_travel(analysis)
    if travel is None or travel >= MIN_MOUTH_TRAVEL:
        return
    log.info("engine.mouth_still", travel=round(travel, 4), limit=MIN_MOUTH_TRAVEL)
    raise InputRejected(
        "The mouth does not move in this video (a still picture, or the person never opens "
        "their mouth). The new mouth movements are made from the person's own in the video, "
        "so this one cannot be made to speak; send a video of the person talking.",
        code="mouth_still", value=round(travel, 4), limit=MIN_MOUTH_TRAVEL,
    )


class BuiltinEngine:
    """The default engine. Heavy parts (face analyzer, VAD, phone decoder) built in prepare();
    tracks are heard in a worker process beside the video work (``hearing_worker``, see
    :mod:`heygemd.engines.builtin.hearing`)."""

    Options: ClassVar[type[BaseModel]] = BuiltinEngineSettings  # [engine.builtin]
    name = "builtin"
    version = "0.1.0"
    offers_template_frames: ClassVar[bool] = True  # a cold analysis feeds RenderRequest.tap

    def __init__(self, ctx: EngineContext[BuiltinEngineSettings],
                 hearing_worker: bool = True, mouth_model: MouthModel | None = None) -> None:
        self.ctx = ctx
        self.cfg = ctx.options
        self.device = ctx.device
        self.cache = AnalysisCache(ctx.cache, ctx.cache_max_bytes)
        self._analyzer: Any = None
        self._helper: Any = None  # a second tracking analyzer, made for the first small template
        self._listener = Listener(remember=0)  # answers are remembered by the Hearing
        self._hearing = Hearing(self._listener, use_worker=hearing_worker,
                                phone_workers=phones.phone_workers(usable_cores()))
        self.last_plan: Plan | None = None  # the latest render's choices, for evaluation
        self.transplant_workers = transplant_workers()  # threads transplanting batches at once
        # the speaker-independent model planning uses (prepare() loads the shipped one unless
        # one was given, e.g. an evaluation's model that never heard the clip's speaker)
        self.mouth_model = mouth_model

    def prepare(self) -> None:
        from heygemd.faces.analyze import FaceAnalyzer

        # the worker boots (~2 s) while this process builds its own parts and takes its first
        # job: the first track asked of it waits until it is ready
        self._hearing.start()
        if self._analyzer is None:
            self._analyzer = FaceAnalyzer(self.ctx.faces, tracking=True)
        if self.mouth_model is None and self.cfg.speaker_model:
            self.mouth_model = mouthmodel.shipped()

    def problems(self) -> list[str]:
        """Missing bundled models (pocketsphinx, silero-vad) or an unwritable cache folder."""
        import importlib.util

        found: list[str] = []
        for package, relative in (("pocketsphinx", "model/en-us/en-us-phone.lm.bin"),
                                  ("silero_vad", "data/silero_vad.jit")):
            spec = importlib.util.find_spec(package)
            origin = Path(spec.origin).parent if spec and spec.origin else None
            if origin is None or not (origin / relative).is_file():
                found.append(f"builtin engine: {package} model {relative} is missing; "
                             f"reinstall the {package} package")
        cache = self.ctx.cache
        existing = next((p for p in (cache, *cache.parents) if p.exists()), None)
        if existing is None or not os.access(existing, os.W_OK):
            found.append(f"builtin engine: cache folder {cache} is not writable")
        return found

    def close(self) -> None:
        self._hearing.close()
        for analyzer in (self._analyzer, self._helper):
            if analyzer is not None:
                analyzer.close()
        self._analyzer = self._helper = None

    def _helper_analyzer(self) -> Any:
        """The second tracking analyzer (~80 MB), built the first time a template is small
        enough to be analysed in two halves."""
        from heygemd.faces.analyze import FaceAnalyzer

        if self._helper is None:
            self._helper = FaceAnalyzer(self.ctx.faces, tracking=True)
        return self._helper

    def _new_analyzer(self) -> Any:
        """A tracking analyzer for one segment of a large template's analysis, built in the
        segment's thread and closed after it: not kept, so a long render does not hold one
        more (~80 MB) per core."""
        from heygemd.faces.analyze import FaceAnalyzer

        return FaceAnalyzer(self.ctx.faces, tracking=True)

    def forget_heard(self) -> None:
        """Forget the audio heard so far (a benchmark's timed run must hear its audio)."""
        self._hearing.forget()

    def analysis_of(self, template: Path) -> TemplateAnalysis:
        """The (cached) analysis of ``template``, e.g. for evaluation."""
        self.prepare()
        analysis, _, _ = analyse_template(
            template, self._analyzer, self._hearing, self.cache, self.cfg.analysis_scale,
            lambda f: None, self._helper_analyzer, spawn=self._new_analyzer,
            workers=face_workers(),
        )
        return analysis

    def render(self, request: RenderRequest, progress: ProgressFn) -> Rendering:
        """Analyse the template (cached), plan the mouths, and return the lazy frame stream.

        The new audio is asked of the hearing worker first: it is heard while the template is
        analysed (or loaded from the cache), and planning takes the answer. The frames are made
        ahead in a worker thread from the moment the plan is made (:class:`_Frames`).
        """
        self.prepare()
        t0 = time.monotonic()
        count = request.frame_count
        video = request.info.video
        # the rate the template is analysed at (VideoReader's), so that the answer fits planning
        self._hearing.ask(request.audio, video.frame_rate if video else 25.0, count)
        done = [0.0]

        def analysing(fraction: float) -> None:
            done[0] = 0.4 * fraction
            progress(done[0])

        with self._hearing.reporting(lambda: progress(done[0])):
            analysis, cached, decoded = analyse_template(
                request.template, self._analyzer, self._hearing, self.cache,
                self.cfg.analysis_scale, analysing, self._helper_analyzer, request.tap,
                self._new_analyzer, face_workers(), as_yuv=request.yuv_frames,
            )
            if abs(analysis.fps - request.fps) > 0.01:
                log.warning("engine.fps_mismatch", template_fps=analysis.fps,
                            request_fps=request.fps)
            _refuse_a_still_mouth(analysis)
            # what the render and the selection need besides the audio (kept with the
            # template's analysis): the selection's mouth detail now, the render's constants
            # found beside the planning (its first batch waits for them)
            constants, detail = template_constants(
                analysis, self.cache, analysis_key(request.template, self.cfg.analysis_scale))
            # where the frame pass saw a hand at the lower face: those frames' hands are kept
            # and their mouths not taken (waits for the frame pass's samples)
            near = handkeep.near_hands(request.hands() if request.hands is not None else None,
                                       analysis.usable, analysis.fps)
            # planning hears through the Hearing: the answer asked above
            plan, metrics = planning.drive(analysis, request.audio, count, self.cfg,
                                           self._hearing,
                                           self.mouth_model if self.cfg.speaker_model else None,
                                           detail, avoid=near)
        self.last_plan = plan
        metrics["template_cached"] = float(cached)
        metrics["frames_near_hands"] = float(near.sum())
        metrics["plan_ms"] = round((time.monotonic() - t0) * 1000, 1)
        log.info("engine.planned", frames=count, **metrics)
        start = 0.0 if cached else 0.4
        # a template analysed just now may still be held decoded: not decoded again
        keeper = handkeep.HandKeeper(near, analysis.landmarks)
        batches = self._batches(request, analysis, plan, constants, decoded, keeper, metrics)
        frames = _Frames(batches, len(plan.base), progress, start, request.template.name)
        return Rendering(
            width=analysis.width, height=analysis.height, fps=analysis.fps,
            frame_count=count, frames=frames, metrics=metrics,
        )

    def _batches(
        self,
        request: RenderRequest,
        analysis: TemplateAnalysis,
        plan: Plan,
        constants: Future[Constants],
        decoded: Sequence[Picture] | None = None,
        keeper: handkeep.HandKeeper | None = None,
        metrics: dict[str, float] | None = None,
    ) -> Iterator[list[Picture]]:
        """The output frames in batches of ``batch_size`` (fewer where that would pass
        BATCH_BYTES), base frames with their mouths; made in the thread that iterates this (the
        render's own: its torch threads are set to RENDER_THREADS); ``constants``: waited for
        where the first batch is transplanted. ``keeper``: the hands kept
        in front (looked for here, in order, before a batch goes to a transplant thread);
        ``metrics`` gets frames_hands_kept (output frames with a hand kept in front) once the
        last batch is made."""
        import torch

        torch.set_num_threads(RENDER_THREADS)
        frame_bytes = analysis.width * analysis.height * 3
        size = max(1, min(self.cfg.batch_size, BATCH_BYTES // frame_bytes))
        frames = render.base_frames(request.template, plan.base, frame_bytes, request.info,
                                    decoded, as_yuv=request.yuv_frames)
        count = len(plan.base)

        def transplanted(batch: list[Picture], rows: list[int],
                         hands: list[list[np.ndarray]] | None) -> list[Picture]:
            return list(self._flush(batch, rows, plan, analysis, constants.result(), hands))

        # with more than one transplant thread, batches are transplanted at once (their CPU
        # parts: rasterising, remapping, blurring, in OpenCV and numpy, which let go of the GIL)
        # and given in order; with one, here
        workers = self.transplant_workers
        pool = ThreadPoolExecutor(workers, thread_name_prefix="builtin-transplant") \
            if workers > 1 else None
        pending: deque[Future[list[Picture]]] = deque()
        batch: list[Picture] = []
        rows: list[int] = []
        kept = 0
        try:
            for t, frame in enumerate(frames):
                if t >= count:
                    break
                batch.append(frame)
                rows.append(t)
                if len(batch) < size and t < count - 1:
                    continue
                hands = held_hands(keeper, plan, batch, rows)
                kept += sum(1 for found in hands or () if found)
                if pool is not None:
                    pending.append(pool.submit(transplanted, batch, rows, hands))
                else:
                    pending.append(Future())
                    pending[-1].set_result(transplanted(batch, rows, hands))
                # base frames that took a mouth go now, not while the batch waits in the queue
                batch, rows = [], []
                if len(pending) >= workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
            if metrics is not None:
                metrics["frames_hands_kept"] = float(kept)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            if keeper is not None:
                keeper.close()

    def _flush(
        self,
        batch: list[Picture],
        rows: list[int],
        plan: Plan,
        analysis: TemplateAnalysis,
        constants: Constants,
        hands: list[list[np.ndarray]] | None = None,
    ) -> Iterator[Picture]:
        moved = plan.transplanted
        live = [i for i, t in enumerate(rows) if moved[t]]
        out = list(batch)
        if live:
            pairs = [(int(plan.base[rows[i]]), int(plan.source[rows[i]])) for i in live]
            done = render.transplant([batch[i] for i in live], pairs, analysis, constants,
                                     self.device,
                                     None if hands is None else [hands[i] for i in live])
            for i, frame in zip(live, done, strict=True):
                out[i] = frame
        yield from out


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def transplant_workers() -> int:
    """Threads that transplant the render's batches at once: one per four cores, as the
    decoder, the encoder and the frame pass work beside them. Render alone (no encoder), th10
    (1080x1920) on 2 cores: 4.2-4.5 s in two threads against 5.1-6.5 s in one; th08 (512x512)
    1.4-1.7 s against 2.1 s, the same frames. A 2-core job's encoder wants the second core."""
    return max(1, usable_cores() // 4)


def face_workers() -> int:
    """Segments a large template's faces are found in at once (analysis.segment_starts): one
    per two of the cores this process may run on (its affinity), as each keeps a decoder and
    an analyzer busy beside the frame pass and the hearing worker. On 2 cores (one pass there)
    a cold th10 job analysed its template in 8.6-8.7 s in two segments against 7.9-8.5 s in one
    pass: the cores are busy already (bench/bench_cores.py: th10 alone 6.8 s either way,
    c01 13.5 s -> 11.2 s)."""
    return max(1, usable_cores() // 2)


def held_hands(keeper: handkeep.HandKeeper | None, plan: Plan, batch: list[Picture],
               rows: list[int]) -> list[list[np.ndarray]] | None:
    """The hands kept in front of each frame of ``batch`` (output frames ``rows``, decoded
    from their base template frames), [] where it takes no other frame's mouth; None where
    none are looked for."""
    if keeper is None or not keeper.looking:
        return None
    moved = plan.transplanted
    return [keeper.hands(int(plan.base[t]), frame) if moved[t] else []
            for frame, t in zip(batch, rows, strict=True)]


def template_constants(analysis: TemplateAnalysis, cache: AnalysisCache,
                       key: str) -> tuple[Future[Constants], np.ndarray]:
    """The render's constants (:func:`render_constants`) and planning's mouth detail
    (planning.mouth_detail) of ``analysis``, kept in ``cache`` as a part of the analysis's
    entry (its ``key``) under the source of the code that makes them: a template used again
    reads them back (th10: 2 s of reading its crops). Made afresh, the detail comes at once and
    the constants from a thread of their own (th10: 1.1-3 s, which the planning and the render's
    first decoding need not wait for), kept once both are had. A cache that cannot be written
    costs only that time."""
    part = f"constants-{constants_signature()}"
    kept = cache.load_arrays(key, part)
    found: Future[Constants] = Future()
    try:
        if kept is not None and len(kept["lip_colours"]) == len(kept["detail"]) \
                == analysis.n_frames:
            found.set_result(Constants.from_arrays(kept))
            return found, kept["detail"]
    except (KeyError, ValueError) as err:  # another layout: made again and kept over it
        log.warning("engine.constants_unreadable", error=str(err))
    detail = planning.mouth_detail(analysis)

    def make() -> None:
        try:
            constants = render_constants(analysis)
            try:
                cache.save_arrays(key, {**constants.arrays(), "detail": detail}, part)
            except OSError as err:
                log.warning("engine.constants_not_kept", error=str(err))
        except BaseException as err:  # whatever it is, raised where the render waits
            found.set_exception(err)
            return
        found.set_result(constants)  # once kept: a later job finds them

    start_worker(make, "builtin-constants")  # the job's log context goes with it
    return found, detail


@functools.cache
def constants_signature() -> str:
    """A digest of CONSTANTS_SOURCES' text."""
    package = Path(__file__).parents[2]  # heygemd/
    digest = hashlib.blake2b(digest_size=8)
    for name in CONSTANTS_SOURCES:
        digest.update(name.encode() + b"\0" + (package / name).read_bytes())
    return digest.hexdigest()


def render_constants(analysis: TemplateAnalysis) -> Constants:
    """What every batch's transplant reads besides the plan (render.Constants): the mouth
    mesh, each frame's lip colour, the template's steady colours and its occluder."""
    ref = analysis.landmarks[int(np.flatnonzero(analysis.usable)[0])] if analysis.usable.any() \
        else None
    triangles = mesh.triangulate(ref) if ref is not None else np.zeros((0, 3), np.int64)
    lips = colour.lip_colours(analysis.crops, analysis.landmarks, analysis.crop_origin,
                              analysis.usable, analysis.fps)
    steady = overlay.steady_colours(analysis.crops, analysis.usable)
    occluder = overlay.occluder(analysis.crops, analysis.crop_origin, analysis.landmarks,
                                analysis.usable, analysis.width, analysis.height)
    crops.let_go(analysis.crops)  # the lip boxes and the sampled crops were read through the map
    return Constants(triangles=triangles, lip_colours=lips, steady=steady, occluder=occluder)


def _taken(ahead: Ahead, count: int, progress: ProgressFn, start: float,
           name: str) -> Generator[Picture, None, None]:
    """The frames of ``ahead``'s batches one by one, with progress; all ``count`` of them."""
    done, last = 0, time.monotonic()
    for out in ahead:
        yield from out
        done += len(out)
        if time.monotonic() - last > PROGRESS_SECONDS:
            progress(start + (1 - start) * done / count)
            last = time.monotonic()
    if done != count:
        raise ProcessingError(f"rendered {done} of {count} frames from {name}")


class _Frames:
    """The render's frames, one at a time, from batches made ahead in a worker thread that
    starts at construction (:class:`Ahead`): the pipeline examines the video's frames while
    the first batches are made, and encodes only after that verdict. ``progress`` gets
    ``start`` .. 1 as frames are taken (at most every PROGRESS_SECONDS). :meth:`close` (also
    when the stream is dropped) stops the worker, taken from or not."""

    def __init__(self, batches: Iterator[list[Picture]], count: int, progress: ProgressFn,
                 start: float, name: str) -> None:
        self._ahead = Ahead(batches, PREFETCH_BATCHES)
        self._closer = weakref.finalize(self, self._ahead.close)
        # the stream must not hold self: dropped, this object then goes at once (no cycle for
        # the collector to find some time later), and its finalizer stops the worker
        self._stream = _taken(self._ahead, count, progress, start, name)

    def __iter__(self) -> _Frames:
        return self

    def __next__(self) -> Picture:
        try:
            return next(self._stream)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the worker and wait for it (at most a batch). Idempotent."""
        self._stream.close()
        self._closer()


if TYPE_CHECKING:  # mypy holds the class to the protocol it serves
    _SERVES: type[Evaluable] = BuiltinEngine
