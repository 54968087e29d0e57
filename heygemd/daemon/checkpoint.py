"""Per-video checkpoints in the job's private work folder, so that a job stopped after some of
its videos (first SIGTERM, second SIGTERM, kill -9, power cut) resumes with the others instead
of rendering everything again.

``work/<job_id>/.checkpoints/<slot>/`` per video (``slot``: a hash of the video's name) holds
that video's files (output MP4, annotated pictures) and, written last and atomically,
``result.json``: the VideoResult, the size of each file, and the key of the inputs it was made
from. A slot is trusted only when result.json reads back, its key matches the job's inputs now
and every file is there with its recorded size; anything else is ignored and rendered again.
Checkpoints never reach the outbox: they are linked (or copied) into the staging folder when
the job is assembled, and go away with ``work/<job_id>/`` once the job is published.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from heygemd.daemon.outbox import temp_twin, write_atomic
from heygemd.report import VideoResult, VideoStatus

log = structlog.get_logger(__name__)

CHECKPOINTS = ".checkpoints"  # hidden: a job folder with this name is never claimed
RESULT_FILE = "result.json"
FORMAT = 1
# The settings sections a video's result depends on (not paths, watching or logging).
RESULT_SECTIONS = ("limits", "validation", "faces", "engine", "output")


@dataclass(frozen=True)
class FileStamp:
    """What identifies an input file without reading it: name, size (bytes), mtime (ns)."""

    name: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileStamp:
        st = path.stat()
        return cls(path.name, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Checkpoint:
    """A trusted checkpoint: the video's result and the folder holding its files."""

    slot: Path
    result: VideoResult
    files: tuple[str, ...]


def inputs_key(
    video: FileStamp, audio: FileStamp, settings: Mapping[str, Any], engine: Mapping[str, str]
) -> str:
    """Hex digest of everything a video's result depends on: the video and the audio files,
    the result-relevant settings sections (a JSON model dump) and the engine (pure)."""
    data = {
        "video": [video.name, video.size, video.mtime_ns],
        "audio": [audio.name, audio.size, audio.mtime_ns],
        "settings": {k: settings.get(k) for k in RESULT_SECTIONS},
        "engine": dict(engine),
    }
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def slot_dir(holder: Path, video: str) -> Path:
    """``holder/.checkpoints/<hash of the video name>``: one safe path component per video."""
    return holder / CHECKPOINTS / hashlib.sha256(video.encode()).hexdigest()[:24]


def produced_files(result: VideoResult) -> list[str]:
    """The files a result names in the job folder: its output and preview (done) and its
    pictures (pure)."""
    names = [result.output] if result.status is VideoStatus.DONE and result.output else []
    if result.status is VideoStatus.DONE and result.preview:
        names.append(result.preview)
    return names + [p for p in result.pictures if p not in names]


def save(holder: Path, video: str, key: str, result: VideoResult, source: Path) -> Path:
    """Checkpoint ``result`` of ``video``, taking its files from ``source`` (the staging folder).

    Files are linked (or copied, across filesystems) under temporary names, made durable and
    renamed into the slot; result.json is written last. Returns the slot. Raises OSError.
    """
    slot = slot_dir(holder, video)
    (slot / RESULT_FILE).unlink(missing_ok=True)  # untrusted from here until rewritten
    shutil.rmtree(slot, ignore_errors=True)
    slot.mkdir(parents=True)
    sizes = {name: place(source / name, slot / name) for name in produced_files(result)}
    record = {"format": FORMAT, "key": key, "video": video, "files": sizes,
              "result": result.model_dump(mode="json")}
    write_atomic(slot / RESULT_FILE, json.dumps(record, ensure_ascii=False, indent=1) + "\n")
    return slot


def load(holder: Path, video: str, key: str) -> Checkpoint | None:
    """The trusted checkpoint of ``video`` for inputs ``key``, or None (none, incomplete,
    unreadable, or made from other inputs: logged as ``checkpoint.stale``)."""
    slot = slot_dir(holder, video)
    try:
        record = json.loads((slot / RESULT_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("checkpoint.unreadable", video=video, error=str(err))
        return None
    try:
        if record["format"] != FORMAT or record["video"] != video:
            raise ValueError("another format or video")
        result = VideoResult.model_validate(record["result"])
        sizes = {str(k): int(v) for k, v in record["files"].items()}
    except (KeyError, TypeError, ValueError, AttributeError, ValidationError) as err:
        log.warning("checkpoint.unreadable", video=video, error=str(err))
        return None
    if record["key"] != key:
        log.info("checkpoint.stale", video=video, reason="the job's inputs or settings changed")
        return None
    for name, size in sizes.items():
        try:
            ok = (slot / name).stat().st_size == size
        except OSError:
            ok = False
        if not ok:
            log.warning("checkpoint.incomplete", video=video, file=name)
            return None
    return Checkpoint(slot, result, tuple(sizes))


def restore(checkpoint: Checkpoint, target: Path) -> None:
    """Put the checkpoint's files into ``target`` (the staging folder). Raises OSError."""
    for name in checkpoint.files:
        place(checkpoint.slot / name, target / name)


def place(source: Path, target: Path) -> int:
    """Hard-link ``source`` as ``target`` (a copy across filesystems), durable before it
    appears under its name. Returns its size in bytes. Raises OSError."""
    tmp = temp_twin(target)
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copyfile(source, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target.stat().st_size
