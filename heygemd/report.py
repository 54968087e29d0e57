"""Typed records that travel from the pipeline to the outbox (report.json is a model dump)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class Severity(StrEnum):
    REFUSE = "refuse"
    WARN = "warn"


class Finding(Record):
    """One validation result a person can act on.

    ``code`` is stable (machines key on it); ``message`` is plain words saying what to change.
    """

    code: str
    severity: Severity
    message: str
    file: str | None = None
    value: float | str | None = None
    limit: float | str | None = None
    frame_index: int | None = None
    picture: str | None = None  # file name of the annotated JPEG in the outbox, if any


# a made video's reason code where the job's audio, checked at its start, could not be read
# again for the video's sound track (pipeline.JobSound): the service's failure, not the user's
AUDIO_REREAD_FAILED = "audio_reread_failed"


class VideoStatus(StrEnum):
    DONE = "done"
    REJECTED = "rejected"  # input the user must fix
    FAILED = "failed"  # our side went wrong on acceptable input


class VideoResult(Record):
    name: str  # input file name
    status: VideoStatus
    output: str | None = None  # output file name in the job's outbox folder
    reason_code: str | None = None
    message: str | None = None
    findings: list[Finding] = Field(default_factory=list)
    pictures: list[str] = Field(default_factory=list)
    preview: str | None = None  # <stem>.preview.jpg beside the output: frames, voice, mouth
    timings_ms: dict[str, float] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    media: dict[str, Any] = Field(default_factory=dict)  # a MediaInfo summary
    # the H.264 encoder the output was made with: name (libx264 | h264_nvenc), asked
    # (output.encoder: auto | libx264 | nvenc), why (plain words)
    encoder: dict[str, str] = Field(default_factory=dict)


class JobStatus(StrEnum):
    DONE = "done"  # every video succeeded
    PARTIAL = "partial"  # some videos succeeded
    REJECTED = "rejected"  # nothing produced: the inputs need fixing
    FAILED = "failed"  # nothing produced: our side failed


class AudioResult(Record):
    name: str | None
    accepted: bool
    findings: list[Finding] = Field(default_factory=list)
    media: dict[str, Any] = Field(default_factory=dict)


class JobReport(Record):
    job_id: str
    job_name: str
    status: JobStatus
    reason_code: str | None = None
    message: str | None = None
    audio: AudioResult | None = None
    videos: list[VideoResult] = Field(default_factory=list)
    ignored_files: list[str] = Field(default_factory=list)  # top-level, not audio/video
    ignored_folders: list[str] = Field(default_factory=list)  # subfolders ("inner/")
    hidden_files: list[str] = Field(default_factory=list)  # named like inputs, but hidden
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)
    engine: dict[str, str] = Field(default_factory=dict)  # name, version, device
    # times the service was stopped, killed or restarted while the job ran (it resumed)
    interruptions: int = 0
    settings: dict[str, Any] = Field(default_factory=dict)  # effective settings used
    heygemd_version: str = ""


def job_status(videos: list[VideoResult]) -> JobStatus:
    """Overall status from per-video results (pure)."""
    done = sum(v.status is VideoStatus.DONE for v in videos)
    if videos and done == len(videos):
        return JobStatus.DONE
    if done:
        return JobStatus.PARTIAL
    if any(v.status is VideoStatus.FAILED for v in videos):
        return JobStatus.FAILED
    return JobStatus.REJECTED
