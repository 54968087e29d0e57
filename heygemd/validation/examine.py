"""The I/O edge of validation: probe files, decode audio, sample video frames, run the face
analyzer and the VAD, write pictures of findings. The rules themselves are pure
(:mod:`heygemd.validation.rules`); this module only gathers their evidence.

Never raises for bad input: an unreadable file becomes a refuse finding.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import structlog

from heygemd import names, voice
from heygemd.contract import AUDIO_RATE, ProgressFn, progress_span
from heygemd.errors import MediaError
from heygemd.faces.analyze import FaceAnalyzer
from heygemd.faces.geometry import box_iou, limit_yaw
from heygemd.faces.hands import HandFinder, HandSightings, hand_cover
from heygemd.faces.types import SampledFrame
from heygemd.media.audio import read_sound
from heygemd.media.probe import probe
from heygemd.media.tap import FrameTap
from heygemd.media.types import MAX_CHANNELS, MediaInfo
from heygemd.media.video import VideoReader, read_frames
from heygemd.report import Finding, Severity
from heygemd.settings import LimitSettings, ValidationSettings
from heygemd.timing import ms_since
from heygemd.validation import annotate, rules
from heygemd.validation.audiostats import measure_audio
from heygemd.validation.facecache import FaceCache
from heygemd.validation.rules import FrameEvidence

log = structlog.get_logger(__name__)

# Container refusals after which decoding the frames would be pointless or too costly.
_NO_FRAME_PASS = {"no_video_stream", "file_too_large", "too_many_pixels", "video_too_long"}
# Decoded past the audio length limit by this much, a (lying) file is known to be too long.
AUDIO_CAP_MARGIN_SECONDS = 1.0


@dataclass(frozen=True)
class AudioExamination:
    info: MediaInfo | None
    samples: np.ndarray | None  # float32 (N,) mono at 16 kHz; None when unreadable
    findings: list[Finding]


@dataclass(frozen=True)
class VideoExamination:
    info: MediaInfo | None
    findings: list[Finding]
    pictures: list[str]  # file names written into pictures_dir
    frames_examined: int = 0  # sampled frames the face rules looked at
    hands: HandSightings | None = None  # the speaker's lower face, per sampled frame


def _unreadable(kind: str, err: MediaError, name: str) -> Finding:
    """A refusal of a file that could not be opened; one whose extension lies about what it
    holds says so in its code too (a program reading report.json need not parse the words)."""
    return Finding(
        code=err.code if err.code == "wrong_extension" else f"unreadable_{kind}",
        severity=Severity.REFUSE,
        message=err.message,
        file=name,
        value=err.value if err.code == "wrong_extension" else err.code,
    )


def _with_file(findings: list[Finding], name: str) -> list[Finding]:
    return [f if f.file else f.model_copy(update={"file": name}) for f in findings]


def _no_progress(fraction: float) -> None:
    pass


# ---------------------------------------------------------------- audio


DECODE_SHARE = 0.1  # of examine_audio's progress; the VAD pass is the rest


def examine_audio(
    path: Path, cfg: ValidationSettings, limits: LimitSettings, progress: ProgressFn | None = None
) -> AudioExamination:
    """Probe and decode the job's audio, measure it, apply the audio rules.

    ``progress`` gets the fraction (0..1) done: once before decoding, then at least every
    voice.VAD_BLOCK frames of the VAD pass (about every 20 ms of work); it may raise
    JobInterrupted, which propagates (a BaseException, never a finding).
    """
    t0 = time.monotonic()
    report = progress or _no_progress
    findings = rules.check_extension(path.name, "audio")
    if findings:
        return AudioExamination(None, None, findings)
    try:
        info = probe(path)
    except MediaError as err:
        return AudioExamination(None, None, [_unreadable("audio", err, path.name)])
    samples: np.ndarray | None = None
    stats = None
    # refused on the probe alone (too big, no sound, more channels than a layout names,
    # declared too long): nothing is decoded
    blocked = (rules.check_file_size(info.size_bytes, limits) or info.audio is None
               or info.audio.channels > MAX_CHANNELS
               or (info.duration or 0.0) > limits.max_audio_seconds)
    if not blocked:
        report(0.0)
        try:
            sound = read_sound(path, rate=AUDIO_RATE, mono=True,
                               max_seconds=limits.max_audio_seconds + AUDIO_CAP_MARGIN_SECONDS)
        except MediaError as err:
            return AudioExamination(info, None, [_unreadable("audio", err, path.name)])
        samples = sound.samples
        vad = voice.speech_probabilities(samples, progress_span(report, DECODE_SHARE, 1.0))
        stats = measure_audio(samples, vad, damaged=sound.silenced,
                              damaged_from_s=sound.silenced_from or 0.0)
    findings = _with_file(rules.validate_audio(info, stats, cfg, limits), path.name)
    log.info(
        "examine.audio",
        file=path.name,
        findings=[f.code for f in findings],
        stats=stats.__dict__ if stats else None,
        duration_ms=ms_since(t0),
    )
    return AudioExamination(info, samples, findings)


# ---------------------------------------------------------------- video

MAX_FACES_SCORED = 4  # occlusion is scored for at most this many faces per frame, largest first
FRAME_PASS_SHARE = 0.9  # of examine_video's progress; decoding again for the picture is the rest


def sample_indices(frame_count: int, fps: float, sample_fps: float, max_samples: int) -> list[int]:
    """Frame indices to examine: ``sample_fps`` per second of video, evenly spread over the
    whole video and never more than ``max_samples``."""
    if frame_count <= 0:
        return [0]
    step = max(fps / sample_fps, frame_count / max_samples, 1.0)
    n = max(1, min(max_samples, int(frame_count / step)))
    return sorted({min(frame_count - 1, int(round(k * step))) for k in range(n)})


def sample_frames(
    path: Path,
    analyzer: FaceAnalyzer,
    cfg: ValidationSettings,
    progress: ProgressFn | None = None,
    info: MediaInfo | None = None,
    tap: FrameTap | None = None,
) -> tuple[list[SampledFrame], tuple[int, int]]:
    """Analyse faces on the sampled frames of ``path``.

    Returns the sampled frames in order and the frame size (width, height) in pixels.
    ``progress`` gets the fraction (0..1) of the frames decoded, at least once per sampled
    frame, and may raise JobInterrupted. ``info``: the probe of ``path``, when the caller has
    it. ``tap``: where another reader's decode of the same file (the engine's template
    analysis) hands the sampled frames over; where it stopped short of the last sample (an
    error, a cached analysis), the file is decoded here from its start (a damaged stretch is
    met as without a tap) and only the frames not handed over are analysed. The tap is stopped
    before this returns. Raises MediaError when decoding fails.
    """
    report = progress or _no_progress
    samples: list[SampledFrame] = []
    hands = _hand_finder()
    try:
        with VideoReader(path, info=info) as reader:
            look = _Looker(analyzer, hands)
            wanted = sample_indices(reader.frame_count, reader.fps, cfg.sample_fps,
                                    cfg.max_samples)
            if tap is not None:
                samples = _taken(tap, wanted, look, report)
            # every sample handed over: the producer decoded up to the last of them, as far
            # as a decode here would go; a file that ended sooner (finished) has no more
            if tap is None or (len(samples) < len(wanted) and not tap.finished):
                samples = _decoded_samples(reader, wanted, samples, look, report)
            size = (reader.width, reader.height)
    finally:
        if hands is not None:
            hands.close()
        if tap is not None:
            tap.stop()
    return samples, size


def _hand_finder() -> HandFinder | None:
    """A hand finder, or None where mediapipe cannot build one: the frame pass goes on without
    hands (they only ever warn), and the log says why."""
    try:
        return HandFinder()
    except Exception as err:  # noqa: BLE001 - a warning's evidence never fails a job
        log.warning("examine.hands_unavailable", error=repr(err))
        return None


def _taken(tap: FrameTap, wanted: list[int], look: _Looker,
           report: ProgressFn) -> list[SampledFrame]:
    """The sampled frames the tap's producers hand over (in the order offered), in order."""
    samples: list[SampledFrame] = []
    done = [0.0]  # while the tap waits, it reports the share taken again
    for index, frame in tap.take(wanted, lambda: report(done[0])):
        done[0] = (len(samples) + 1) / len(wanted)
        report(done[0])
        samples.append(look(index, frame, len(samples)))
    return _numbered(samples)


def _decoded_samples(reader: VideoReader, wanted: list[int], had: list[SampledFrame],
                     look: _Looker, report: ProgressFn) -> list[SampledFrame]:
    """Every wanted frame, decoding ``reader`` from the start up to the last of them; those in
    ``had`` (handed over before) are kept without being analysed again. Only one decoded
    picture is held at a time."""
    known = {s.frame_index: s for s in had}
    samples: list[SampledFrame] = []
    targets, last = set(wanted), wanted[-1]
    for index, raw in reader.iter_raw():
        report(index / last if last else 0.0)
        if index in known:
            samples.append(known[index])
        elif index in targets:
            samples.append(look(index, reader.to_rgb(raw), len(samples)))
        if index >= last:
            break
    return _numbered(samples)


def _numbered(samples: list[SampledFrame]) -> list[SampledFrame]:
    """``samples`` in frame order, each face numbered by its sample's place (the track's frame
    axis), however they came."""
    ordered = sorted(samples, key=lambda s: s.frame_index)
    return [s if all(f.frame_index == place for f in s.faces)
            else replace(s, faces=[replace(f, frame_index=place) for f in s.faces])
            for place, s in enumerate(ordered)]


@dataclass(frozen=True)
class _Looker:
    """What the frame pass looks at in a sampled frame: the faces (``analyzer``), their mouths'
    cover scores, how well they are lit, and the share of their lower face the hands found
    around the largest face cover (``hands``; None, or a frame where the finder fails: no hand
    evidence)."""

    analyzer: FaceAnalyzer
    hands: HandFinder | None

    def __call__(self, index: int, frame: np.ndarray, position: int) -> SampledFrame:
        """Frame ``index`` (the ``position``-th sample) looked at."""
        from heygemd.faces.occlusion import mouth_colour, score_from_colour

        # The analyzer numbers observations by sample position (the track's frame axis).
        faces = self.analyzer.analyze(frame, position)
        scored = faces[:MAX_FACES_SCORED]
        colours = [mouth_colour(frame, f) for f in scored]
        scores = [score_from_colour(c) for c in colours]
        lights = [c.skin_light for c in colours]
        covers: list[float] = []
        if scored and self.hands is not None:
            try:  # around the largest face (the speaker, nearly always)
                found = self.hands.find(frame, scored[0].box)
                covers = [hand_cover(found, f.landmarks) for f in scored]
            except Exception as err:  # noqa: BLE001 - a warning's evidence never fails a job
                log.warning("examine.hands_failed", frame_index=index, error=repr(err))
        return SampledFrame(index, faces, scores, hand_covers=covers, lights=lights)


def attach_speaker(samples: list[SampledFrame], size: tuple[int, int]) -> list[SampledFrame]:
    """Follow the speaker over the samples (faces.track) and pick their occlusion scores."""
    from heygemd.faces.track import build_track

    if not samples:
        return samples
    track = build_track([s.faces for s in samples], size, len(samples))
    out = []
    for s, speaker in zip(samples, track.observations, strict=True):
        occlusion = hand = light = None
        if speaker is not None and s.occlusions:
            overlaps = [box_iou(speaker.box, f.box) for f in s.faces[: len(s.occlusions)]]
            scored = int(np.argmax(overlaps))
            occlusion = s.occlusions[scored]
            hand = s.hand_covers[scored] if scored < len(s.hand_covers) else None
            light = s.lights[scored] if scored < len(s.lights) else None
        out.append(SampledFrame(s.frame_index, s.faces, s.occlusions, speaker, occlusion,
                                s.hand_covers, hand, s.lights, light))
    return out


def sightings(samples: list[SampledFrame]) -> HandSightings:
    """The speaker's hand cover per sample (:func:`attach_speaker`'s), NaN where unknown."""
    return HandSightings(
        frames=np.array([s.frame_index for s in samples], np.int64),
        cover=np.array([np.nan if s.speaker_hand is None else s.speaker_hand for s in samples],
                       np.float64))


def evidence_of(s: SampledFrame, frame_size: tuple[int, int]) -> FrameEvidence:
    """What the rules need from one examined frame: yaw from
    :func:`~heygemd.faces.geometry.limit_yaw` (three estimates on the scale of the limit), pitch
    from the face analyzer (the mesh's pitch reads true; the generic head's is biased)."""
    if s.speaker is None:
        return FrameEvidence(s.frame_index, len(s.faces))
    return FrameEvidence(
        frame_index=s.frame_index,
        face_count=len(s.faces),
        face_fraction=s.speaker.height / frame_size[1],
        yaw=limit_yaw(s.speaker.landmarks, frame_size),
        pitch=s.speaker.pitch,
        occlusion=s.speaker_occlusion,
        hand=s.speaker_hand,
        light=s.speaker_light,
    )


def _picture_group(findings: list[Finding]) -> tuple[str, list[Finding]]:
    refused = rules.refusals(findings)
    if refused:
        return "refused", refused
    return "warning", [f for f in findings if f.severity is Severity.WARN]


def picture_name(video: str, kind: str, taken: set[str]) -> str:
    """``<stem>.<kind>.jpg`` for a picture of ``video``; ``<name>.<kind>.jpg`` when another
    video of the job with the same stem took that (ignoring case); numbered after that. Always
    one name of at most 255 bytes (pure)."""
    suffix = f".{kind}.jpg"
    first = names.fit(Path(video).stem, suffix)
    if first.casefold() not in {t.casefold() for t in taken}:
        return first
    return names.choose(video, suffix, taken)


def _names_in(folder: Path) -> set[str]:
    try:
        return {p.name for p in folder.iterdir()}
    except FileNotFoundError:
        return set()


# A picture's frame is kept with the video's faces (FaceCache.keep_frame) where it lies this far
# into the video or further: decoding up to it again would cost more than reading it back.
KEEP_FRAME_SECONDS = 1.0


def illustrate(
    path: Path,
    samples: list[SampledFrame],
    evidence: list[FrameEvidence],
    findings: list[Finding],
    pictures_dir: Path,
    progress: ProgressFn | None = None,
    fps: float | None = None,
    info: MediaInfo | None = None,
    face_cache: FaceCache | None = None,
    key: str | None = None,
) -> tuple[list[Finding], list[str]]:
    """Write the picture of the deciding frame (refusals) or the worst frame (warnings).

    Returns the findings (those drawn now name the picture) and the picture names written.
    The frame is decoded again here, so the frame pass never holds more than one picture;
    ``progress`` gets the fraction of that decoding done, once per decoded frame; ``fps`` (the
    video's frame rate) turns the frame index into the time shown on the picture; ``info`` (the
    probe of ``path``) spares probing it again. ``face_cache``, ``key`` (the video's evidence
    key, kept): where the frame is read back from, else kept once decoded, where decoding up
    to it takes KEEP_FRAME_SECONDS of the video or more.
    """
    kind, group = _picture_group(findings)
    if not group:
        return findings, []
    index = next((f.frame_index for f in group if f.frame_index is not None), None)
    if index is None:
        fallback = rules.deciding_frame(evidence, "representative")
        index = fallback.frame_index if fallback else None
    sample = next((s for s in samples if s.frame_index == index), None)
    if index is None or sample is None:
        return findings, []
    frame = face_cache.frame(key, index) if face_cache is not None and key else None
    if frame is None:
        try:
            frame = read_frames(path, [index], progress=progress, info=info).get(index)
        except MediaError as err:
            log.warning("examine.picture_unreadable", file=path.name, error=err.message)
            return findings, []
        if frame is None:
            return findings, []
        if face_cache is not None and key and index >= KEEP_FRAME_SECONDS * (fps or 25.0):
            face_cache.keep_frame(key, index, frame)
    name = picture_name(path.name, kind, _names_in(pictures_dir))
    yaw = next((e.yaw for e in evidence if e.frame_index == index), None)
    image = annotate.annotate(
        frame, sample.speaker, group, index, sample.speaker_occlusion, yaw, fps
    )
    pictures_dir.mkdir(parents=True, exist_ok=True)
    annotate.save_jpeg(pictures_dir / name, image)
    drawn = {id(f) for f in group}
    return [f.model_copy(update={"picture": name}) if id(f) in drawn else f for f in findings], [
        name
    ]


def check_container(
    path: Path, cfg: ValidationSettings, limits: LimitSettings
) -> VideoExamination:
    """The video rules that need no decoded frame: extension, probe, container (size, length,
    pixels). Cheap; :func:`examine_frames` goes on from its result when
    :func:`needs_frame_pass` says so."""
    findings = rules.check_extension(path.name, "video")
    if findings:
        return VideoExamination(None, findings, [])
    try:
        info = probe(path)
    except MediaError as err:
        return VideoExamination(None, [_unreadable("video", err, path.name)], [])
    return VideoExamination(info, _with_file(rules.validate_video_info(info, cfg, limits),
                                             path.name), [])


def needs_frame_pass(checked: VideoExamination) -> bool:
    """Whether the frames of a video whose container was checked are worth examining: it was
    probed and no container refusal makes decoding pointless or too costly."""
    return checked.info is not None and not any(f.code in _NO_FRAME_PASS
                                                 for f in checked.findings)


def examine_frames(
    path: Path,
    checked: VideoExamination,
    analyzer: FaceAnalyzer,
    cfg: ValidationSettings,
    limits: LimitSettings,
    pictures_dir: Path,
    progress: ProgressFn | None = None,
    *,
    face_cache: FaceCache | None = None,
    tap: FrameTap | None = None,
    seen: Callable[[HandSightings], None] | None = None,
) -> VideoExamination:
    """Go on from :func:`check_container`: examine sampled frames for the speaker's face,
    apply the video rules and write the picture of the deciding (refused) or worst (warned)
    frame into ``pictures_dir``. ``checked.info`` must be set (:func:`needs_frame_pass`).

    ``progress`` gets the fraction (0..1) of the frame pass done, at least once per sampled
    frame; it may raise JobInterrupted, which propagates (a BaseException, never a finding).
    ``face_cache``: where the sampled frames' faces of a video seen before are read back (and
    new ones kept), instead of decoding and analysing them again. ``tap``: where the engine's
    decode of the same video hands the sampled frames over (:func:`sample_frames`); stopped
    once the faces are known, whichever way (at once when they are cached). ``seen``: given
    the hand sightings as soon as the samples are known, before the rules and pictures (the
    builtin engine plans around them).
    """
    t0 = time.monotonic()
    report = progress or _no_progress
    info, container = checked.info, checked.findings
    assert info is not None
    key, known = face_cache.recall(path) if face_cache is not None else (None, None)
    cached = known is not None
    if known is None:  # sample_frames stops the tap, however it ends
        try:
            known = sample_frames(
                path, analyzer, cfg, progress_span(report, 0.0, FRAME_PASS_SHARE), info=info,
                tap=tap,
            )
        except MediaError as err:
            return VideoExamination(info, container + [_unreadable("video", err, path.name)], [])
        # evidence without the hands (a finder that failed) is not kept: the next run looks
        # again (nor is its picture's frame)
        if face_cache is not None and key is not None \
                and all(len(s.hand_covers) == len(s.occlusions) for s in known[0]):
            face_cache.keep(key, known)
        else:
            key = None
    elif tap is not None:  # the faces are known: the engine's decode is not held for the picture
        tap.stop()
    samples, size = known
    samples = attach_speaker(samples, size)
    hands = sightings(samples)
    if seen is not None:
        seen(hands)
    evidence = [evidence_of(s, size) for s in samples]
    findings = _with_file(rules.validate_video(info, evidence, cfg, limits), path.name)
    findings, pictures = illustrate(
        path, samples, evidence, findings, pictures_dir,
        progress_span(report, FRAME_PASS_SHARE, 1.0),
        fps=info.video.avg_fps if info.video else None,
        info=info, face_cache=face_cache, key=key,
    )
    log.info(
        "examine.video",
        file=path.name,
        samples=len(samples),
        faces_cached=cached,
        frames_shared=tap.handed if tap is not None else 0,
        findings=[f.code for f in findings],
        pictures=pictures,
        duration_ms=ms_since(t0),
    )
    return VideoExamination(info, findings, pictures, len(samples), hands)


def examine_video(
    path: Path,
    analyzer: FaceAnalyzer,
    cfg: ValidationSettings,
    limits: LimitSettings,
    pictures_dir: Path,
    progress: ProgressFn | None = None,
) -> VideoExamination:
    """Probe ``path``, examine sampled frames for the speaker's face, apply the video rules and
    write the picture of the deciding (refused) or worst (warned) frame into ``pictures_dir``:
    :func:`check_container`, then (when :func:`needs_frame_pass`) :func:`examine_frames`.

    ``progress`` gets the fraction (0..1) of the frame pass done, at least once per sampled
    frame; it may raise JobInterrupted, which propagates (a BaseException, never a finding).
    """
    checked = check_container(path, cfg, limits)
    if not needs_frame_pass(checked):
        return checked
    return examine_frames(path, checked, analyzer, cfg, limits, pictures_dir, progress)
