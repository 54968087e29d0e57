"""What the intake and the workers exchange through the share, beside the Celery messages.

A claimed job's holder (``<paths.work>/<job_id>``) gets a ``.farm`` folder:

- ``results/<index>-<key>/``: one finished video (its output, pictures and ``result.json``),
  made under ``tmp-<uuid>`` and renamed into place, so a result is there complete or not at
  all; a task that ran twice loses the rename and deletes its copy;
- ``progress/<key>.json``: which worker makes a video and how far it is (best effort);
- ``attempts/<key>/``: one empty file per start of a video, for setting aside a video that
  kills its workers.

The key names the inputs a result depends on (files' size and mtime, the job's settings), so a
result of files since replaced is never taken.

``<paths.work>/.heygemd-farm-share`` marks the share: a random id the intake writes at its first
start and sends in every order. A worker whose paths.work lacks it, or holds another id, is not
looking at the intake's share (not mounted, or another one): it makes nothing and hands the
video back (:class:`ShareNotSeen`); `heygemd doctor` compares the two sides.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from heygemd.daemon.checkpoint import FileStamp, inputs_key
from heygemd.errors import MachineFault
from heygemd.report import AudioResult, VideoResult

FARM = ".farm"
RESULT_JSON = "result.json"
SHARE_MARK = ".heygemd-farm-share"  # in paths.work: the id of the intake's share


class ShareNotSeen(MachineFault):
    """This machine's paths.work is not the share the intake claims jobs into."""


def mark_share(work: Path) -> str:
    """The id in ``work``'s share mark, written now if there is none (the intake, at start;
    kept across restarts; of two intakes racing, the first mark stays)."""
    found = share_id(work)
    if found is not None:
        return found
    new = uuid.uuid4().hex
    tmp = work / f".{SHARE_MARK}.{new}.tmp"
    tmp.write_text(new + "\n", encoding="utf-8")
    try:
        os.link(tmp, work / SHARE_MARK)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    marked = share_id(work)
    if marked is None:
        raise ShareNotSeen(f"the share mark {work / SHARE_MARK} cannot be read back",
                           folder=str(work))
    return marked


def share_id(work: Path) -> str | None:
    """The id in ``work``'s share mark; None when there is none (or it cannot be read)."""
    try:
        return (work / SHARE_MARK).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def check_share(work: Path, expected: str) -> None:
    """Raise ShareNotSeen unless ``work`` holds the mark ``expected`` (empty: not checked,
    an order from an intake that sent no mark)."""
    if not expected:
        return
    seen = share_id(work)
    if seen == expected:
        return
    what = "has no share mark" if seen is None else f"holds another share (mark {seen[:8]})"
    raise ShareNotSeen(f"paths.work {work} on this machine {what}, not the intake's (mark "
                       f"{expected[:8]}): mount the intake's work area there (docs/farm.md)",
                       folder=str(work))


class VideoOrder(BaseModel):
    """One Celery task: make one video of a claimed job (paths relative to ``paths.work``).
    Fields a later intake adds are ignored (workers are upgraded before the intake)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    job_id: str
    name: str  # the job folder's name inside the holder
    index: int  # 1-based position among the job's videos
    video: str
    audio: str
    output: str  # the output file's name (outbox.output_names)
    job_toml: str | None = None
    key: str
    share: str = ""  # the intake's share mark (SHARE_MARK): the worker must see the same

    @property
    def slot(self) -> str:
        return f"{self.index:03d}-{self.key[:16]}"


class FarmResult(BaseModel):
    """``result.json`` of one video made on a worker."""

    model_config = ConfigDict(frozen=True)

    video: VideoResult
    audio: AudioResult
    engine: dict[str, str]
    worker: str
    files: list[str]  # what the worker wrote beside result.json (output, pictures)


class Progress(BaseModel):
    """``progress/<key>.json``: which worker makes a video and how far it is."""

    model_config = ConfigDict(frozen=True)

    worker: str  # host/device/pid (heygemd.farm.worker.worker_name)
    job_id: str
    video: str
    fraction: float  # 0..1 of this video
    at: float  # time.time() of the report
    started: float | None = None  # time.time() the worker started the video


def order_key(folder: Path, video: str, audio: str, settings: dict[str, object]) -> str:
    """Hex digest of what a video's result depends on (reads two stats)."""
    return inputs_key(FileStamp.of(folder / video), FileStamp.of(folder / audio), settings, {})


def farm_dir(work: Path, job_id: str) -> Path:
    return work / job_id / FARM


def result_dir(work: Path, order: VideoOrder) -> Path:
    return farm_dir(work, order.job_id) / "results" / order.slot


def made_dir(work: Path, job_id: str, *parts: str) -> Path:
    """``<holder>/.farm/<parts>``, made as needed but never the holder itself: once the job is
    published (its holder deleted) a late run of a task raises FileNotFoundError instead of
    leaving folders behind."""
    folder = farm_dir(work, job_id)
    for part in ("", *parts):
        folder = folder / part if part else folder
        folder.mkdir(exist_ok=True)
    return folder


def read_result(work: Path, order: VideoOrder) -> FarmResult | None:
    """The finished result of ``order``, or None while there is none."""
    try:
        text = (result_dir(work, order) / RESULT_JSON).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return FarmResult.model_validate_json(text)


def new_scratch(work: Path, job_id: str) -> Path:
    """A fresh folder to make one video in (unique: two runs of a task never share one)."""
    return made_dir(work, job_id, f"tmp-{uuid.uuid4().hex}")


def finish(scratch: Path, work: Path, order: VideoOrder, result: FarmResult) -> bool:
    """Write ``result.json`` into ``scratch`` and rename it into place. False when another run
    of the task got there first (ours is deleted)."""
    (scratch / RESULT_JSON).write_text(result.model_dump_json(), encoding="utf-8")
    target = result_dir(work, order)
    made_dir(work, order.job_id, "results")
    try:
        os.rename(scratch, target)  # an existing non-empty target refuses (ENOTEMPTY/EEXIST)
    except OSError:
        if not (target / RESULT_JSON).is_file():
            raise
        shutil.rmtree(scratch, ignore_errors=True)
        return False
    return True


def copy_result(work: Path, order: VideoOrder, result: FarmResult, staging: Path) -> None:
    """Put a finished video's files into the job's staging folder (a hard link where the
    share allows, else a copy); the result stays until the job is published."""
    source = result_dir(work, order)
    for name in result.files:
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(source / name, target)
        except OSError:
            shutil.copy2(source / name, target)


def start_attempt(work: Path, order: VideoOrder) -> Path:
    """Record one more start of ``order``: the marker file of this start (removed again when
    the start was ended from outside, not by the video)."""
    made_dir(work, order.job_id, "attempts")
    folder = made_dir(work, order.job_id, "attempts", order.key[:16])
    marker = folder / uuid.uuid4().hex
    marker.touch()
    return marker


def attempts(marker: Path) -> int:
    """How many starts of the video ``marker`` records there have been, this one included."""
    return len(list(marker.parent.iterdir()))


def clear_progress(work: Path, order: VideoOrder) -> None:
    (farm_dir(work, order.job_id) / "progress" / f"{order.key[:16]}.json").unlink(
        missing_ok=True)


def write_progress(work: Path, order: VideoOrder, progress: Progress) -> None:
    folder = made_dir(work, order.job_id, "progress")
    tmp = folder / f".{order.key[:16]}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(progress.model_dump_json(), encoding="utf-8")
    os.replace(tmp, folder / f"{order.key[:16]}.json")


def read_progress(work: Path, order: VideoOrder) -> Progress | None:
    path = farm_dir(work, order.job_id) / "progress" / f"{order.key[:16]}.json"
    try:
        return Progress.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (FileNotFoundError, ValueError):
        return None


def listed_files(scratch: Path) -> list[str]:
    """Every regular file under ``scratch``, relative to it (pure listing)."""
    return sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*") if p.is_file())
