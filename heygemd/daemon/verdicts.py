"""What a job's report says about videos that were not made: plain words and records (pure).

The runner (heygemd.daemon.jobs) decides; this module words it: videos refused for one
job-wide reason, videos never looked at because the folder was refused, the job's overall
reason when nothing was made, and a refused audio.
"""

from __future__ import annotations

from heygemd.daemon import inbox, outbox
from heygemd.report import AudioResult, JobStatus, VideoResult, VideoStatus
from heygemd.validation import jobfiles


def rejected_videos(videos: tuple[str, ...], code: str, message: str) -> list[VideoResult]:
    """Every video refused for one job-wide reason (e.g. the audio was refused). Pure."""
    return [
        VideoResult(name=v, status=VideoStatus.REJECTED, reason_code=code, message=message)
        for v in videos
    ]


def crashed_video(video: str, times: int) -> VideoResult:
    """A video set aside because making it crashed the service ``times`` times (pure)."""
    return VideoResult(
        name=video, status=VideoStatus.FAILED, reason_code="crash_loop",
        message=(f"Making this video crashed the service {times} times, so it was set aside "
                 "and the job's other videos were made. The file may be damaged in a way our "
                 "checks did not catch: exporting it again (for example as an H.264 MP4) "
                 "usually helps. The operator can find the details in the service log."))


NOT_CHECKED_WORDS = "not checked: the job was refused before the videos were looked at"
AUDIO_REFUSED_WORDS = "not made: the audio file was refused (see above)"


def not_checked(
    videos: tuple[str, ...], problem: inbox.FolderProblem | None = None
) -> list[VideoResult]:
    """The videos of a job refused before any video was opened; the one the folder's
    ``problem`` names (e.g. a file too large) carries that reason instead (pure)."""
    return [
        rejected_videos((v,), problem.code, problem.message)[0]
        if problem is not None and v == problem.file
        else rejected_videos((v,), outbox.NOT_CHECKED, NOT_CHECKED_WORDS)[0]
        for v in videos
    ]


def folder_videos(entries: inbox.Snapshot) -> tuple[str, ...]:
    """The top-level video files of a job folder, in the order a job takes them (pure)."""
    return tuple(sorted(
        e.rel for e in entries
        if e.kind is inbox.EntryKind.FILE and "/" not in e.rel
        and not jobfiles.is_ignored(e.name) and jobfiles.classify(e.rel) == "video"
        and jobfiles.is_text(e.rel)
    ))


NOTHING_MADE = (JobStatus.REJECTED, JobStatus.FAILED)
SWAPPED_FOR_LINK = (
    "The job folder was replaced by a link (shortcut) while it was waiting, so it was not used. "
    "Put a real folder holding the audio and video files in the inbox instead.")


def overall_reason(videos: list[VideoResult]) -> tuple[str | None, str | None]:
    """The job's reason when no video was made: the first refused or failed video's code and
    'No video could be made: <its reason> (and N other videos; see below)'; with one video
    only, 'No video could be made: <name> was refused (see below).' (pure)."""
    first = next((v for v in videos if v.status is not VideoStatus.DONE), None)
    if first is None:
        return None, None
    more = len(videos) - 1
    if not more:  # its reason is under Videos; said once there
        word = "was refused" if first.status is VideoStatus.REJECTED else "failed"
        return first.reason_code, f"No video could be made: {first.name} {word} (see below)."
    others = f" (and {more} other video{'s' if more > 1 else ''}; see below)" if more else ""
    reason = first.message or "no reason recorded"
    return first.reason_code, f"No video could be made: {first.name}: {reason}{others}"


def audio_refusal(audio: AudioResult) -> str:
    """Plain words for a refused audio (pure)."""
    reasons = [f.message for f in audio.findings if f.severity == "refuse"]
    detail = " ".join(reasons) or "It could not be used."
    return f"The audio file '{audio.name}' was refused: {detail}"
