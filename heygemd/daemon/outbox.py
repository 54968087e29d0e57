"""The outbox: results are assembled in a hidden staging folder and published with one rename.

``outbox/<job-name>/`` (``-2``, ``-3``... when taken; nothing is overwritten) holds one
``<video-stem>.mp4`` per finished video, report.json, RESULT.txt, job.log.jsonl, the annotated
pictures, the originals under ``inputs/`` and a hidden marker naming the job id, so that a
publish the store did not record before a crash is recognised instead of repeated.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import structlog

from heygemd import names
from heygemd.report import JobReport, JobStatus, Severity, VideoResult, VideoStatus
from heygemd.validation import jobfiles

log = structlog.get_logger(__name__)

MARKER = ".heygemd-job"
STAGING_PREFIX = ".heygemd-staging-"
TEMP_SUFFIX = ".tmp"
INPUTS = "inputs"
# reason_code of a video never looked at because the whole job was refused first
NOT_CHECKED = "not_checked"
RESERVED = frozenset({"report.json", "result.txt", "job.log.jsonl", INPUTS, MARKER.lower()})


def choose_name(wanted: str, taken: Iterable[str]) -> str:
    """``wanted``, else ``wanted-2``, ``wanted-3``... — the first not in ``taken`` (pure,
    case-insensitive because SMB shares are), cut to fit one name (:mod:`heygemd.names`)."""
    return names.choose(wanted, "", taken)


def safe_name(name: str) -> str:
    """A single, visible path component: no separators, no leading dots, not empty (pure)."""
    cleaned = name.replace("/", "_").replace("\\", "_").replace("\0", "_").lstrip(". ")
    return cleaned or "job"


def output_names(videos: Iterable[str]) -> dict[str, str]:
    """Input video name -> output ``<stem>.mp4``, distinct even when stems repeat and never a
    reserved name (pure). Videos already named ``.mp4`` choose first, so they keep their own
    name (``a.mov`` and ``a.mp4`` -> ``a-2.mp4`` and ``a.mp4``); otherwise input order decides.
    The dict is in input order."""
    ordered = list(videos)
    taken: set[str] = set(RESERVED)
    chosen: dict[str, str] = {}
    for video in sorted(ordered, key=lambda v: jobfiles.extension(v) != ".mp4"):  # stable
        stem = names.choose(safe_name(Path(video).stem), "", taken,
                            limit=names.NAME_MAX - len(".mp4"))
        chosen[video] = f"{stem}.mp4"
        taken.add(stem)
    return {video: chosen[video] for video in ordered}


def _see_pictures(pictures: Iterable[str | None]) -> str:
    """' (see picture: a.jpg)' / ' (see pictures: a.jpg, b.jpg)'; '' when there is none."""
    names = list(dict.fromkeys(p for p in pictures if p))
    if not names:
        return ""
    return f" (see picture{'s' if len(names) > 1 else ''}: {', '.join(names)})"


def _video_line(video: VideoResult) -> str:
    if video.status is VideoStatus.DONE:
        shown = f" (preview: {video.preview})" if video.preview else ""
        return f"  OK       {video.name} -> {video.output}{shown}"
    word = "REFUSED " if video.status is VideoStatus.REJECTED else "FAILED  "
    if video.reason_code == NOT_CHECKED:
        word = "SKIPPED "
    refusals = [f.picture for f in video.findings if f.severity == Severity.REFUSE]
    see = _see_pictures(refusals if any(refusals) else video.pictures)
    return f"  {word} {video.name}: {video.message or 'no reason recorded'}{see}"


def result_text(report: JobReport, published_as: str | None = None) -> str:
    """RESULT.txt: what succeeded and, for each refused or failed file, why and what to change.
    ``published_as``: the outbox folder's name, mentioned when it is not the job's own."""
    headline = {
        JobStatus.DONE: "All videos were made.",
        JobStatus.PARTIAL: "Some videos were made; the others are listed below with the reason.",
        JobStatus.REJECTED: "Nothing was made: the inputs need to be changed (see below).",
        JobStatus.FAILED: "Nothing was made: processing failed on our side (see below).",
    }[report.status]
    lines = [f"Job: {report.job_name}", f"Result: {report.status.value.upper()} - {headline}", ""]
    wanted = safe_name(report.job_name)
    if published_as is not None and published_as != wanted:
        lines += [f"Your results are in '{published_as}' because '{wanted}' already existed.", ""]
    if report.message:
        lines += [f"Reason: {report.message}", ""]
    if report.interruptions:
        times = "once" if report.interruptions == 1 else f"{report.interruptions} times"
        lines += [f"Note: the service was stopped or restarted {times} while this job was being "
                  "made; it went on from where it was each time, and nothing was lost.", ""]
    if report.audio is not None and not report.audio.accepted:
        lines.append(f"Audio {report.audio.name}: refused")
        lines += [f"  - {f.message}" for f in report.audio.findings if f.severity == "refuse"]
        lines.append("")
    if report.videos:
        lines.append("Videos:")
        lines += [_video_line(v) for v in report.videos]
        made = [v for v in report.videos if v.status is VideoStatus.DONE]
        # the audio's own warnings (it was accepted) once, before the videos' that were made
        heard = [(report.audio.name, f) for f in report.audio.findings
                 if f.severity == "warn"] if report.audio is not None and made else []
        warnings = heard + [(v.name, f) for v in made for f in v.findings if f.severity == "warn"]
        if warnings:
            lines += ["", "Warnings (the video was still made):"]
            lines += [f"  {name}: {f.message}{_see_pictures([f.picture])}" for name, f in warnings]
        lines.append("")
    lines += _ignored_lines(report)
    lines.append("Your original files are in the 'inputs' folder. Details: report.json.")
    return "\n".join(lines) + "\n"


def _ignored_lines(report: JobReport) -> list[str]:
    lines = []
    if report.ignored_folders:
        names = ", ".join(f"'{n}'" for n in report.ignored_folders)
        lines.append(f"Ignored subfolders: {names} ({jobfiles.SUBFOLDER_RULE}).")
    if report.ignored_files:
        names = ", ".join(f"'{n}'" for n in report.ignored_files)
        lines.append(f"Ignored files: {names} (not an audio or video file).")
    hidden = [n for n in report.hidden_files if f"'{n}'" not in (report.message or "")]
    if hidden:
        names = ", ".join(f"'{n}'" for n in hidden)
        lines.append(f"Not used: {names} ({jobfiles.HIDDEN_RULE}).")
    return lines + ([""] if lines else [])


def temp_twin(path: Path) -> Path:
    """The hidden name ``path`` is written under before its atomic rename: ``.NAME.PID.tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def sweep_temp_twins(path: Path) -> list[str]:
    """Remove the temp twins of ``path`` (``.NAME.PID.tmp`` beside it, exactly) that another
    process left: a daemon killed while rewriting STATUS.txt. Nothing else in the folder (a
    user's share) is touched. Only safe while holding the single-instance lock. Returns the
    names removed; one that cannot be removed is logged and left."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+){re.escape(TEMP_SUFFIX)}", re.ASCII)
    removed = []
    for twin in path.parent.glob(f".{glob.escape(path.name)}.*{TEMP_SUFFIX}"):
        found = pattern.fullmatch(twin.name)
        if found is None or int(found.group(1)) == os.getpid() or not twin.is_file():
            continue
        try:
            twin.unlink()
        except FileNotFoundError:
            continue
        except OSError as err:
            log.warning("outbox.temp_not_removed", file=twin.name, error=str(err))
            continue
        removed.append(twin.name)
    return removed


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never half."""
    tmp = temp_twin(path)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def staging_dir(outbox: Path, job_id: str) -> Path:
    return outbox / f"{STAGING_PREFIX}{job_id}"


def write_results(staging: Path, report: JobReport, published_as: str | None = None) -> None:
    """report.json, RESULT.txt and the job-id marker into the staging folder."""
    (staging / "report.json").write_text(
        json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    (staging / "RESULT.txt").write_text(result_text(report, published_as), encoding="utf-8")
    (staging / MARKER).write_text(report.job_id + "\n", encoding="utf-8")


def move_inputs(original: Path, staging: Path) -> bool:
    """Put the originals under ``staging/inputs``: a rename when work and outbox share a
    filesystem (returns True: moved), else a copy (returns False: the caller deletes the
    originals only after publishing). A job folder that is itself a link is never followed:
    the link is removed and nothing is put under ``inputs`` (returns True)."""
    target = staging / INPUTS
    if original.is_symlink():
        original.unlink()
        return True
    try:
        os.rename(original, target)
        return True
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
    copy_tree(original, target)
    return False


def copy_tree(source: Path, target: Path) -> None:
    """Copy ``source`` to the new folder ``target`` (links copied as links, never followed).
    The first error is raised as it is (shutil.copytree gathers them into one shutil.Error and
    loses their errno, so a full disk would not read as one)."""
    target.mkdir()
    for root, dirs, files in os.walk(source):
        into = target / Path(root).relative_to(source)
        for name in dirs + files:
            src, dst = Path(root, name), into / name
            if src.is_symlink():
                os.symlink(os.readlink(src), dst)
            elif name in dirs:
                dst.mkdir()
            else:
                shutil.copy2(src, dst)


def restore_inputs(staging: Path, original: Path) -> bool:
    """Undo ``move_inputs`` after a crash before publishing. True when something was moved."""
    inputs = staging / INPUTS
    if original.exists() or not inputs.is_dir():
        return False
    original.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(inputs, original)
    return True


def publish(staging: Path, outbox: Path, final_name: str) -> Path:
    """Rename the complete staging folder to ``outbox/final_name`` (refusing to replace).

    Every file and folder in staging is made durable first: after a power cut a published
    folder holds whole files (an empty marker would make recovery fail a published job)."""
    target = outbox / final_name
    if target.exists() or target.is_symlink():
        raise FileExistsError(errno.EEXIST, "outbox name taken", str(target))
    sync_tree(staging)
    os.rename(staging, target)
    _fsync_dir(outbox)
    return target


def published_report(folder: Path) -> tuple[JobStatus, JobReport | None]:
    """The status and report of a published job folder: its report.json's status (done when
    unreadable: the folder is there), and the whole report when it reads as one."""
    try:
        data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        status = JobStatus(data["status"])
    except (OSError, ValueError, KeyError, TypeError):
        return JobStatus.DONE, None
    try:
        return status, JobReport.model_validate(data)
    except ValueError:
        return status, None


def published_job(outbox: Path, name: str | None) -> str | None:
    """The job id recorded in ``outbox/name``'s marker, if that folder was published by us."""
    if not name:
        return None
    try:
        return (outbox / name / MARKER).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def taken_names(outbox: Path) -> set[str]:
    return {p.name for p in outbox.iterdir()}


def sync_tree(folder: Path) -> None:
    """fsync every regular file and folder under ``folder`` (links are not followed)."""
    for root, dirs, files in os.walk(folder):
        for name in files:
            path = Path(root, name)
            if not path.is_symlink() and path.is_file():
                _fsync_file(path)
        for name in dirs:
            sub = Path(root, name)
            if not sub.is_symlink():  # os.walk lists links to folders here too
                _fsync_dir(sub)
    _fsync_dir(folder)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
