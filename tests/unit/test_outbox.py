"""Outbox naming, RESULT.txt, the status text and publishing by rename."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from heygemd.daemon import outbox
from heygemd.daemon.status import (
    Problem,
    StatusView,
    progress_words,
    snapshot_from_json,
    snapshot_json,
    status_line,
    status_text,
)
from heygemd.daemon.store import JobRow, State
from heygemd.daemon.verdicts import audio_refusal, rejected_videos
from heygemd.report import (
    AudioResult,
    Finding,
    JobReport,
    JobStatus,
    Severity,
    VideoResult,
    VideoStatus,
)


def test_choose_name_adds_suffixes_case_insensitively() -> None:
    assert outbox.choose_name("job", []) == "job"
    assert outbox.choose_name("job", ["JOB"]) == "job-2"
    assert outbox.choose_name("job", ["job", "job-2", "job-4"]) == "job-3"


@pytest.mark.parametrize(("name", "safe"), [
    ("../etc", "_etc"), ("..", "job"), (".hidden", "hidden"), ("a/b\\c", "a_b_c"),
    ("中文", "中文"), ("a..b", "a..b"),
])
def test_safe_name_is_one_visible_component(name: str, safe: str) -> None:
    assert outbox.safe_name(name) == safe


def test_output_names_are_distinct_and_not_reserved() -> None:
    names = outbox.output_names(["a.mov", "a.mp4", "A.mkv", "report.mp4", "inputs.avi", "视频.mp4"])
    # a video already named .mp4 keeps its name; the others take the next free one in order
    assert names == {"a.mov": "a-2.mp4", "a.mp4": "a.mp4", "A.mkv": "A-3.mp4",
                     "report.mp4": "report.mp4", "inputs.avi": "inputs-2.mp4",
                     "视频.mp4": "视频.mp4"}
    assert list(names) == ["a.mov", "a.mp4", "A.mkv", "report.mp4", "inputs.avi", "视频.mp4"]
    assert outbox.output_names(["anna.mov", "anna.mp4"]) == {"anna.mov": "anna-2.mp4",
                                                              "anna.mp4": "anna.mp4"}
    # two .mp4 names that differ only in case: input order decides; .MP4 counts as .mp4
    assert outbox.output_names(["B.mov", "b.MP4", "B.mp4"]) == {
        "B.mov": "B-3.mp4", "b.MP4": "b.mp4", "B.mp4": "B-2.mp4"}


def _report(status: JobStatus, videos: list[VideoResult], **kw: object) -> JobReport:
    return JobReport(job_id="J", job_name="my job", status=status, videos=videos, **kw)


def test_result_text_says_what_worked_and_why_not() -> None:
    warn = Finding(code="low_res", severity=Severity.WARN, message="The video is small.")
    videos = [
        VideoResult(name="a.mp4", status=VideoStatus.DONE, output="a.mp4", findings=[warn]),
        VideoResult(name="b.mp4", status=VideoStatus.REJECTED, message="No face: film the face."),
        VideoResult(name="c.mp4", status=VideoStatus.FAILED, message="Encoder crashed."),
    ]
    text = outbox.result_text(_report(JobStatus.PARTIAL, videos))
    assert "PARTIAL" in text and "OK       a.mp4 -> a.mp4" in text
    assert "REFUSED  b.mp4: No face: film the face." in text
    assert "FAILED   c.mp4: Encoder crashed." in text and "a.mp4: The video is small." in text


def test_audio_refusal_rejects_every_video() -> None:
    audio = AudioResult(name="s.wav", accepted=False, findings=[
        Finding(code="silent", severity=Severity.REFUSE, message="The audio is silent.")])
    message = audio_refusal(audio)
    assert "s.wav" in message and "silent" in message
    videos = rejected_videos(("a.mp4", "b.mp4"), "audio_rejected", message)
    assert [v.status for v in videos] == [VideoStatus.REJECTED] * 2
    text = outbox.result_text(_report(JobStatus.REJECTED, videos, audio=audio, message=message))
    assert "Audio s.wav: refused" in text and "The audio is silent." in text


def test_publish_is_one_rename_and_never_replaces(tmp_path: Path) -> None:
    staging = outbox.staging_dir(tmp_path, "J1")
    staging.mkdir()
    report = _report(JobStatus.REJECTED, [], message="No audio.").model_copy(
        update={"job_id": "J1"})
    outbox.write_results(staging, report)
    original = tmp_path / "work" / "J1" / "job"
    original.mkdir(parents=True)
    (original / "a.wav").write_bytes(b"x")
    assert outbox.move_inputs(original, staging) is True and not original.exists()
    assert outbox.restore_inputs(staging, original) and (original / "a.wav").is_file()
    outbox.move_inputs(original, staging)
    (tmp_path / "job").mkdir()
    with pytest.raises(FileExistsError):
        outbox.publish(staging, tmp_path, "job")
    name = outbox.choose_name("job", outbox.taken_names(tmp_path))
    outbox.publish(staging, tmp_path, name)
    assert outbox.published_job(tmp_path, "job-2") == "J1"
    assert outbox.published_job(tmp_path, "job") is None
    assert (tmp_path / "job-2" / "inputs" / "a.wav").is_file()


def test_write_atomic_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "STATUS.txt"
    outbox.write_atomic(target, "one\n")
    outbox.write_atomic(target, "two\n")
    assert target.read_text() == "two\n" and [p.name for p in tmp_path.iterdir()] == ["STATUS.txt"]


def _row(name: str, state: State, **kw: object) -> JobRow:
    base = dict(job_id=name, name=name, state=state, attempts=1, submitted_at="t",
                started_at=None, finished_at=None, outbox_name=None, status=None, message=None,
                video_index=0, video_count=0, video_name=None, fraction=0.0)
    base.update(kw)
    return JobRow(**base)  # type: ignore[arg-type]


def test_sweep_removes_only_status_twins_that_other_processes_left(tmp_path: Path) -> None:
    status = tmp_path / "STATUS.txt"
    dead = tmp_path / ".STATUS.txt.999999999.tmp"  # a daemon killed mid-write
    mine = outbox.temp_twin(status)
    users = [tmp_path / n for n in (".holiday.2024.tmp", ".STATUS.txt.².tmp", ".STATUS.txt.tmp",
                                    ".STATUS.txt.12.tmp.bak", ".report.json.77.tmp")]
    for path in (dead, mine, *users):
        path.write_text("x")
    (tmp_path / ".STATUS.txt.5.tmp").mkdir()  # not a file: left
    assert outbox.sweep_temp_twins(status) == [dead.name]
    assert not dead.exists() and mine.exists() and all(p.exists() for p in users)


def test_sweep_leaves_what_it_cannot_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status = tmp_path / "STATUS.txt"
    (tmp_path / ".STATUS.txt.999999999.tmp").write_text("x")

    def refuse(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)  # a read-only share: start-up goes on
    assert outbox.sweep_temp_twins(status) == []


def test_status_text_shows_queue_progress_and_results() -> None:
    running = _row("clip job", State.RUNNING, video_index=2, video_count=3, video_name="b.mp4",
                   fraction=0.456)
    assert progress_words(running) == "video 2 of 3 (b.mp4), 46%"
    assert progress_words(_row("x", State.VALIDATING)) == "checking the files"
    checking = _row("y", State.RUNNING, video_index=0, video_count=3, video_name="v.wav",
                    fraction=0.4)
    assert progress_words(checking) == "checking the audio (v.wav), 40%"
    view = StatusView(
        updated_at="now", running=running, queued=[_row("q1", State.QUEUED),
                                                   _row("q2", State.QUEUED)],
        recent=[_row("old", State.REJECTED, status="rejected", outbox_name="old",
                     message="No audio.")],
        settling=["copying"], problems=[Problem("disk", "disk low")])
    text = status_text(view)
    assert "Working on: clip job - video 2 of 3 (b.mp4), 46%" in text
    assert "  1. q1\n  2. q2" in text and "  - copying" in text and "PROBLEM: disk low" in text
    assert "rejected old -> outbox/old (No audio.)" in text
    assert status_line(view) == "running clip job: video 2 of 3 (b.mp4), 46%; 2 queued; disk low"


def test_the_snapshot_round_trips_through_status_json() -> None:
    running = _row("clip job", State.RUNNING, video_index=2, video_count=3, video_name="b.mp4",
                   fraction=0.456, crashes='{"a.mp4": 1}')
    view = StatusView(
        updated_at="now", running=running, queued=[_row("q1", State.QUEUED)],
        recent=[_row("old", State.DONE, status="partial", outbox_name="old")],
        settling=["copying"], problems=[Problem("disk", "less than 2 GB free")],
        blocked=["root-owned: ask the operator"], ran_once=True)
    text = snapshot_json(view)
    data = json.loads(text)
    assert data["format"] == 1 and data["running"]["state"] == "running"
    assert data["problems"] == [{"kind": "disk", "words": "less than 2 GB free"}]
    back = snapshot_from_json(text)
    assert back == dataclasses.replace(view, queued=tuple(view.queued),
                                       recent=tuple(view.recent), settling=("copying",),
                                       problems=tuple(view.problems),
                                       blocked=tuple(view.blocked))
    assert status_text(back) == status_text(view)
    with pytest.raises(ValueError):
        snapshot_from_json('{"format": 99}')


def test_result_text_lists_warnings_only_for_videos_that_were_made() -> None:
    small = Finding(code="low_res", severity=Severity.WARN, message="The video is small.")
    dark = Finding(code="dark", severity=Severity.WARN, message="The video is dark.")
    videos = [
        VideoResult(name="made.mp4", status=VideoStatus.DONE, output="made.mp4", findings=[small]),
        VideoResult(name="refused.mp4", status=VideoStatus.REJECTED, message="No face.",
                    findings=[dark]),
    ]
    text = outbox.result_text(_report(JobStatus.PARTIAL, videos))
    assert "made.mp4: The video is small." in text
    assert "The video is dark." not in text
    only_refused = outbox.result_text(_report(JobStatus.REJECTED, videos[1:]))
    assert "Warnings" not in only_refused


def test_result_text_gives_the_audio_warnings_once_where_a_video_was_made() -> None:
    gap = Finding(code="damaged_audio", severity=Severity.WARN, file="voice.wav",
                  message="2 ms of the audio held no sound values.")
    audio = AudioResult(name="voice.wav", accepted=True, findings=[gap])
    made = VideoResult(name="a.mp4", status=VideoStatus.DONE, output="a.mp4")
    refused = VideoResult(name="b.mp4", status=VideoStatus.REJECTED, message="No face.")
    text = outbox.result_text(_report(JobStatus.PARTIAL, [made, refused], audio=audio))
    assert text.count("voice.wav: 2 ms of the audio held no sound values.") == 1
    assert text.index("Warnings") < text.index("voice.wav: 2 ms")
    nothing_made = outbox.result_text(_report(JobStatus.REJECTED, [refused], audio=audio))
    assert "2 ms" not in nothing_made


def test_result_text_names_ignored_subfolders_and_files() -> None:
    report = _report(JobStatus.REJECTED, [], reason_code="no_audio",
                     message="The folder has no audio file.", ignored_files=["notes.txt"],
                     ignored_folders=["inner/"])
    text = outbox.result_text(report)
    assert "Ignored subfolders: 'inner/' (files must be directly in the job folder" in text
    assert "Ignored files: 'notes.txt' (not an audio or video file)" in text
    assert "Ignored" not in outbox.result_text(_report(JobStatus.DONE, []))


def test_a_job_where_no_video_was_made_has_an_overall_reason() -> None:
    from heygemd.daemon.verdicts import overall_reason

    videos = [
        VideoResult(name="a.mp4", status=VideoStatus.REJECTED, reason_code="no_face",
                    message="No face was found."),
        VideoResult(name="b.mp4", status=VideoStatus.FAILED, reason_code="engine_error",
                    message="The engine failed."),
    ]
    code, message = overall_reason(videos)
    assert code == "no_face"
    assert message == ("No video could be made: a.mp4: No face was found. "
                       "(and 1 other video; see below)")
    # one video: its reason is printed once, under Videos
    assert overall_reason(videos[:1])[1] == "No video could be made: a.mp4 was refused (see below)."
    assert overall_reason(videos[1:])[1] == "No video could be made: b.mp4 failed (see below)."
    text = outbox.result_text(_report(JobStatus.REJECTED, videos, reason_code=code,
                                      message=message))
    assert "Reason: No video could be made: a.mp4" in text


def test_status_shows_a_requested_stop() -> None:
    row = JobRow("J", "clip", State.RUNNING, 1, "t", "t", None, None, None, None, 1, 2, "a.mp4",
                 0.53)
    view = StatusView(updated_at="now", running=row, queued=[], recent=[], stopping=True)
    text = status_text(view)
    assert "Stopping: finishing the current video" in text and "Working on: clip" in text
    assert status_line(view).startswith("stopping: finishing the current video")
    idle = StatusView(updated_at="now", running=None, queued=[], recent=[], stopping=True)
    assert status_line(idle).startswith("stopping;")


def test_result_text_says_when_the_outbox_folder_was_renamed() -> None:
    report = _report(JobStatus.DONE, [])
    assert "already existed" not in outbox.result_text(report, "my job")
    assert ("Your results are in 'my job-2' because 'my job' already existed."
            in outbox.result_text(report, "my job-2"))


def test_publish_makes_every_file_and_folder_durable_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    staging = outbox.staging_dir(tmp_path, "J1")
    (staging / "inputs" / "sub").mkdir(parents=True)
    outbox.write_results(staging, _report(JobStatus.DONE, []).model_copy(update={"job_id": "J1"}))
    (staging / "job.log.jsonl").write_text("{}\n")
    (staging / "inputs" / "a.wav").write_bytes(b"x")
    (staging / "inputs" / "sub" / "b.txt").write_bytes(b"y")
    (staging / "inputs" / "link").symlink_to("/etc")
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    wanted = {str(p) for p in staging.rglob("*") if not p.is_symlink()} | {str(staging)}
    outbox.publish(staging, tmp_path, "job")
    assert wanted <= set(synced[:-1])  # all before the rename; the outbox folder after it
    assert synced[-1] == str(tmp_path) and "/etc" not in synced


def test_not_ready_words_for_folders_that_never_become_a_job() -> None:
    from heygemd.daemon.inbox import Entry, EntryKind
    from heygemd.daemon.status import inbox_words, not_ready_words
    from heygemd.settings import WatchSettings

    hidden = Entry(".DS_Store", EntryKind.FILE, 0, 1)
    sub = Entry("inner", EntryKind.DIR, 0, 1)
    assert not_ready_words(()) == not_ready_words((hidden,)) == "empty: add the audio and " \
        "video files"
    assert not_ready_words((sub,)).startswith("only subfolders")  # type: ignore[union-attr]
    assert not_ready_words((sub, Entry("inner/a.wav", EntryKind.FILE, 1, 1))) is None
    assert not_ready_words(None) is None
    assert inbox_words((), None, WatchSettings()).startswith("empty: add")


def test_a_refused_single_video_job_says_its_reason_once() -> None:
    from heygemd.daemon.verdicts import overall_reason

    long = "The file is damaged. Copy it again from the camera, not from a chat app."
    videos = [VideoResult(name="a.mp4", status=VideoStatus.REJECTED, reason_code="broken",
                          message=long)]
    code, message = overall_reason(videos)
    text = outbox.result_text(_report(JobStatus.REJECTED, videos, reason_code=code,
                                      message=message))
    assert text.count("Copy it again") == 1 and "REFUSED  a.mp4: The file is damaged." in text
    assert "Reason: No video could be made: a.mp4 was refused (see below)." in text


def test_refused_and_warning_lines_name_their_picture() -> None:
    side = Finding(code="profile", severity=Severity.REFUSE, message="The face is sideways.",
                   picture="rj01_profile.f12.refused.jpg")
    dark = Finding(code="dark", severity=Severity.WARN, message="The video is dark.",
                   picture="ok.f3.warn.jpg")
    small = Finding(code="low_res", severity=Severity.WARN, message="The video is small.")
    videos = [
        VideoResult(name="rj01_profile.mp4", status=VideoStatus.REJECTED,
                    message="The face is sideways.", findings=[side],
                    pictures=["rj01_profile.f12.refused.jpg"]),
        VideoResult(name="ok.mp4", status=VideoStatus.DONE, output="ok.mp4",
                    findings=[dark, small], pictures=["ok.f3.warn.jpg"]),
        VideoResult(name="odd.mp4", status=VideoStatus.REJECTED, message="Odd.",
                    pictures=["odd.f1.refused.jpg"]),  # no finding names it: the video's own
        VideoResult(name="none.mp4", status=VideoStatus.FAILED, message="Encoder crashed."),
    ]
    text = outbox.result_text(_report(JobStatus.PARTIAL, videos))
    assert ("REFUSED  rj01_profile.mp4: The face is sideways. "
            "(see picture: rj01_profile.f12.refused.jpg)") in text
    assert "ok.mp4: The video is dark. (see picture: ok.f3.warn.jpg)" in text
    assert "ok.mp4: The video is small.\n" in text
    assert "REFUSED  odd.mp4: Odd. (see picture: odd.f1.refused.jpg)" in text
    assert "FAILED   none.mp4: Encoder crashed.\n" in text


@pytest.mark.parametrize(("toml", "words"), [
    (b"[output]\ncrf = 'high'\n",
     "job.toml: output.crf = 'high' is not a whole number (expected 0-51). Fix or remove it."),
    (b"[output]\ncrf = 99\n", "output.crf = 99 is out of range (expected a whole number 0-51)"),
    (b"[output]\npreset = 'quick'\n",
     "output.preset = 'quick' is not allowed (expected one of: ultrafast, superfast,"),
    (b"[output]\naudio_rate = 100\n",
     "output.audio_rate = 100 is out of range (expected a whole number of at least 8000)"),
    (b"[output]\ncfr = 20\n", "output.cfr is not a setting (allowed: crf, preset,"),
    (b"output = 3\n", "job.toml: output must be a table"),
])
def test_job_toml_errors_are_plain_words(toml: bytes, words: str) -> None:
    from heygemd.settings import Settings
    from heygemd.validation.jobtoml import job_settings

    with pytest.raises(ValueError) as raised:
        job_settings(Settings(), toml)
    assert words in str(raised.value)
    assert "Input should" not in str(raised.value) and "parse" not in str(raised.value)


def test_a_folder_level_refusal_lists_the_videos_as_not_checked() -> None:
    from heygemd.daemon.inbox import Entry, EntryKind, FolderProblem
    from heygemd.daemon.verdicts import folder_videos, not_checked

    entries = (Entry("b.MOV", EntryKind.FILE, 1, 1), Entry("a.mp4", EntryKind.FILE, 1, 1),
               Entry("x.wav", EntryKind.FILE, 1, 1), Entry("notes.txt", EntryKind.FILE, 1, 1),
               Entry("._a.mp4", EntryKind.FILE, 1, 1), Entry("in", EntryKind.DIR, 0, 1),
               Entry("in/c.mp4", EntryKind.FILE, 1, 1), Entry("l.mp4", EntryKind.SYMLINK, 0, 1))
    assert folder_videos(entries) == ("a.mp4", "b.MOV")
    videos = not_checked(folder_videos(entries))
    assert [(v.status, v.reason_code) for v in videos] == [
        (VideoStatus.REJECTED, outbox.NOT_CHECKED)] * 2
    text = outbox.result_text(_report(JobStatus.REJECTED, videos, reason_code="multiple_audio",
                                      message="The folder has 2 audio files."))
    assert ("SKIPPED  a.mp4: not checked: the job was refused before the videos were looked at"
            in text and "SKIPPED  b.MOV: not checked" in text)
    big = FolderProblem("file_too_large", "'b.MOV' is 9000 MB; the limit is 4000 MB.", "b.MOV")
    named = not_checked(folder_videos(entries), big)  # the file the refusal is about says so
    assert [(v.name, v.reason_code) for v in named] == [
        ("a.mp4", outbox.NOT_CHECKED), ("b.MOV", "file_too_large")]


def test_status_keeps_a_result_to_one_short_sentence() -> None:
    from heygemd.daemon.status import RESULT_NOTE_CHARS

    long = ("The file is damaged. Copy it again from the camera, not from a chat app; a chat "
            "app re-compresses it.")
    rows = [_row("a", State.REJECTED, status="rejected", message=long),
            _row("b", State.FAILED, status="failed", message="x" * 300)]
    text = status_text(StatusView(updated_at="now", running=None, queued=[], recent=rows))
    assert "rejected a (The file is damaged.)" in text and "Copy it again" not in text
    line_b = next(line for line in text.splitlines() if " b (" in line)
    assert "x" * (RESULT_NOTE_CHARS - 3) + "...)" in line_b
    assert "x" * RESULT_NOTE_CHARS not in line_b


def test_the_newest_readable_snapshot_is_the_daemons(tmp_path: Path) -> None:
    """The state folder's copy and the outbox's: the newer is read (an older daemon writes the
    outbox's alone; a stuck outbox's is older); one missing or damaged is passed over."""
    from heygemd.daemon.status import _newest

    state, out = tmp_path / "state.json", tmp_path / "outbox.json"
    old = StatusView(updated_at="2026-12-07T05:00:00+00:00", running=None, queued=[], recent=[])
    new = dataclasses.replace(old, updated_at="2026-12-07T05:01:00+00:00",
                              problems=(Problem("status", "STATUS.txt cannot be updated"),))
    out.write_text(snapshot_json(old))
    assert _newest([state, out]) == snapshot_from_json(snapshot_json(old))
    state.write_text(snapshot_json(new))
    assert _newest([state, out]).problems[0].kind == "status"  # type: ignore[union-attr]
    out.write_text("{ half written")
    assert _newest([out, state]).updated_at == new.updated_at  # type: ignore[union-attr]
    assert _newest([tmp_path / "none.json"]) is None
