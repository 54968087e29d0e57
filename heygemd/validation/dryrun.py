"""``heygemd validate FOLDER``: a dry run of a job folder, nothing rendered.

The folder-level verdict comes from the daemon's own rules
(:func:`heygemd.validation.jobfiles.check_folder` on an lstat snapshot) and the daemon's own
``job.toml`` check (:func:`heygemd.validation.jobtoml.job_settings`), so the dry run never
accepts a folder the daemon refuses; then the audio and every video are examined as the daemon
would (:mod:`heygemd.validation.examine`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import structlog

from heygemd.faces.analyze import FaceAnalyzer
from heygemd.report import Finding
from heygemd.settings import OutputSettings, Settings
from heygemd.validation import jobfiles, rules
from heygemd.validation.examine import examine_audio, examine_video
from heygemd.validation.jobtoml import job_settings

log = structlog.get_logger(__name__)

# Folder refusals after which the files are still worth examining (the user fixes both at once).
_EXAMINE_ANYWAY = {"no_audio", "multiple_audio", "no_video"}


def _verdict(findings: Sequence[Finding], readable: bool = True) -> str:
    if not readable or rules.refusals(findings):
        return "REFUSED"
    return "ACCEPTED WITH WARNINGS" if findings else "ACCEPTED"


def format_findings(findings: Sequence[Finding], pictures_dir: Path | None = None) -> list[str]:
    """One indented line per finding: severity, code, message, value, limit, frame, picture."""
    lines = []
    for f in findings:
        facts = [  # a code carried as the value (e.g. unreadable_media) is not a measurement
            f"{k} {v}" for k, v in (("value", f.value), ("limit", f.limit))
            if v is not None and not (isinstance(v, str) and v.isidentifier())
        ]
        if f.frame_index is not None:
            facts.append(f"frame {f.frame_index}")
        extra = f" ({', '.join(facts)})" if facts else ""
        lines.append(f"    {f.severity.value:<6} {f.code}: {f.message}{extra}")
        if f.picture and pictures_dir is not None:
            lines.append(f"           picture: {pictures_dir / f.picture}")
    return lines


def validate_folder(folder: Path, settings: Settings) -> tuple[str, bool]:
    """Dry run of a job folder: the daemon's folder checks, then its audio and every video
    examined; nothing is rendered.

    Returns printable text (per file: ACCEPTED / ACCEPTED WITH WARNINGS / REFUSED and each
    finding) and whether the job would be accepted (folder checks pass, its job.toml if any is
    valid, its audio and at least one video are accepted). Pictures of findings go to
    ``<paths.cache>/validate/<folder>/``. Links and devices are never opened.
    """
    lines = [f"Validating {folder}"]
    try:
        entries = jobfiles.scan_entries(folder)
    except OSError as err:
        log.warning("validate.unreadable_folder", error=str(err))
        lines.append("Result: REFUSED: the folder cannot be read (it is gone, or this user may "
                     "not open it).")
        return "\n".join(lines) + "\n", False
    found = jobfiles.check_folder(entries, settings.limits)
    toml_problem = None
    if isinstance(found, jobfiles.JobFiles) and found.job_toml is not None:
        settings, toml_problem = _check_job_toml(folder / found.job_toml, settings, lines)
    top = [e.rel for e in entries if e.kind is jobfiles.EntryKind.FILE and "/" not in e.rel
           and not jobfiles.is_ignored(e.name)]
    if isinstance(found, jobfiles.JobFiles):
        audios, videos = [found.audio], list(found.videos)
    elif found.code in _EXAMINE_ANYWAY:
        audios = sorted(n for n in top if jobfiles.classify(n) == "audio")
        videos = sorted(n for n in top if jobfiles.classify(n) == "video")
    else:
        audios, videos = [], []
    audio_ok, accepted_videos = _examine(folder, settings, audios, videos, lines)
    others, subfolders = jobfiles.unused(entries)
    lines += [f"ignored {n}: not a supported audio or video file" for n in others]
    lines += [f"ignored {n}: a subfolder ({jobfiles.SUBFOLDER_RULE})" for n in subfolders]
    lines += [f"ignored {n}: {jobfiles.HIDDEN_RULE}" for n in jobfiles.hidden_inputs(entries)]
    accepted = (isinstance(found, jobfiles.JobFiles) and toml_problem is None and audio_ok
                and accepted_videos > 0)
    if isinstance(found, jobfiles.FolderProblem):
        lines.append(f"Result: REFUSED: {found.message}")
    elif toml_problem is not None:  # the daemon refuses the whole job before any file
        lines.append(f"Result: REFUSED: {toml_problem}")
    elif accepted:
        lines.append(
            f"Result: ACCEPTED: {accepted_videos} of {len(videos)} videos would be lip-synced."
        )
    else:
        why = "the audio is refused" if not audio_ok else "every video is refused"
        lines.append(f"Result: REFUSED: {why}; fix the problems listed above.")
    return "\n".join(lines) + "\n", accepted


def _check_job_toml(
    path: Path, settings: Settings, lines: list[str]
) -> tuple[Settings, str | None]:
    """Apply ``job.toml`` exactly as the daemon does, appending its verdict to ``lines``.

    Returns (the job's settings, None), or (``settings`` unchanged, the daemon's plain-words
    reason for refusing the whole job with code ``job_toml``)."""
    try:
        job = job_settings(settings, path.read_bytes())
    except OSError as err:
        problem = f"job.toml cannot be read: {err.strerror or err}. Fix or remove it."
    except ValueError as err:
        problem = str(err)
    else:
        lines.append(f"job    {path.name}: ACCEPTED: its output settings will be applied "
                     f"({_describe(job.output)})")
        return job, None
    lines += [f"job    {path.name}: REFUSED", f"    refuse job_toml: {problem}"]
    return settings, problem


def _describe(output: OutputSettings) -> str:
    return ", ".join(f"{k} = {v!r}" for k, v in output.model_dump().items())


def _examine(
    folder: Path, settings: Settings, audios: Sequence[str], videos: Sequence[str],
    lines: list[str],
) -> tuple[bool, int]:
    """Examine each audio and video, appending their verdicts to ``lines``. Returns (the last
    audio is accepted, how many videos are)."""
    pictures_dir = settings.paths.cache / "validate" / folder.name
    audio_ok = False
    for name in audios:
        exam = examine_audio(folder / name, settings.validation, settings.limits)
        readable = exam.samples is not None
        audio_ok = readable and not rules.refusals(exam.findings)
        lines.append(f"audio  {name}: {_verdict(exam.findings, readable)}")
        lines += format_findings(exam.findings)
    accepted_videos = 0
    if not videos:
        return audio_ok, accepted_videos
    with FaceAnalyzer(settings.faces) as analyzer:
        for name in videos:
            exam_v = examine_video(
                folder / name, analyzer, settings.validation, settings.limits, pictures_dir
            )
            accepted_videos += exam_v.info is not None and not rules.refusals(exam_v.findings)
            lines.append(f"video  {name}: {_verdict(exam_v.findings, exam_v.info is not None)}")
            lines += format_findings(exam_v.findings, pictures_dir)
    return audio_ok, accepted_videos
