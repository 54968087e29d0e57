"""Whose fault an error is, the words for a machine-side problem, what ends a run, and the
store's new counters on an older database."""

from __future__ import annotations

import errno
import json
import sqlite3
from pathlib import Path

import pytest

from heygemd import faults
from heygemd.daemon.jobs import Ended, FilesChanged, WarmStop, ended_by
from heygemd.daemon.store import State, Store
from heygemd.errors import DiskFull, JobInterrupted, ProcessingError
from heygemd.validation import jobfiles

PLACES = {"the outbox": Path("/srv/share/outbox"), "the work area": Path("/srv/share/work")}


def raised_from(inner: BaseException, outer: Exception) -> Exception:
    try:
        try:
            raise inner
        except BaseException as err:
            raise outer from err
    except Exception as err:
        return err


def test_a_full_disk_deep_in_the_chain_is_the_machines() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/srv/share/outbox/.s/v.mp4")
    err = raised_from(full, ProcessingError("encoding failed"))
    assert faults.is_out_of_space(err) and faults.is_machine_fault(err)
    assert faults.place_of(err, PLACES) == "the outbox"
    words = faults.machine_words(err, "the outbox")
    assert words == "no space is left on the disk that holds the outbox"
    assert "/srv" not in words and "28" not in words


@pytest.mark.parametrize(("code", "words"), [
    (errno.EROFS, "the outbox is read-only"),
    (errno.EACCES, "the service is not allowed to write to the outbox"),
    (errno.EDQUOT, "no space is left on the disk that holds the outbox"),
    (errno.ESTALE, "the outbox did not respond (a disk or network share problem)"),
])
def test_machine_words_name_the_place_never_the_path(code: int, words: str) -> None:
    err = OSError(code, "x", "/srv/share/outbox/a")
    assert faults.is_machine_fault(err)
    assert faults.machine_words(err, faults.place_of(err, PLACES)) == words


def test_a_full_disk_without_a_file_name_says_the_servers_disk() -> None:
    err = OSError(errno.ENOSPC, "No space left on device")  # write() names no file
    assert faults.place_of(err, PLACES) is None
    assert faults.machine_words(err, None) == "no space is left on the server's disk"
    told = raised_from(err, DiskFull("full", folder="/srv/share/outbox/.staging-x"))
    assert faults.place_of(told, PLACES) == "the outbox"


def test_a_copy_that_fills_the_disk_names_its_target() -> None:
    err = OSError(errno.ENOSPC, "No space left on device", "/srv/share/work/j/a.wav", None,
                  "/srv/share/outbox/.staging/inputs/a.wav")
    assert faults.place_of(err, PLACES) == "the outbox"
    denied = OSError(errno.EACCES, "Permission denied", "/srv/share/work/j/a.wav", None,
                     "/srv/share/outbox/x")
    assert faults.place_of(denied, PLACES) == "the work area"


def test_a_machine_fault_reading_an_input_names_the_input_s_place() -> None:
    from heygemd.errors import MachineFault

    gone = OSError(errno.ESTALE, "Stale file handle", "/srv/share/work/j/clip.mp4")
    err = raised_from(gone, MachineFault("x", folder="/srv/share/outbox/.staging-j"))
    assert ended_by(err) is Ended.MACHINE
    assert faults.place_of(err, PLACES) == "the work area"


def test_errors_of_ours_are_not_the_machines() -> None:
    assert not faults.is_machine_fault(ValueError("a bug"))
    assert not faults.is_machine_fault(OSError(errno.ENOENT, "gone", "/srv/x"))
    assert not faults.is_machine_fault(ProcessingError("engine failed"))


def test_what_ended_a_run() -> None:
    assert ended_by(JobInterrupted("stop")) is Ended.INTERRUPTED
    assert ended_by(WarmStop("stop")) is Ended.INTERRUPTED
    assert ended_by(FilesChanged(("a.mp4",))) is Ended.COPYING
    assert ended_by(DiskFull("full")) is Ended.MACHINE
    assert ended_by(PermissionError(errno.EACCES, "denied", "/x")) is Ended.MACHINE
    assert ended_by(KeyError("bug")) is Ended.FAULT


def test_hidden_inputs_are_found_but_macos_twins_and_temp_files_are_not() -> None:
    entries = [jobfiles.Entry(n, jobfiles.EntryKind.FILE, 1, 0) for n in (
        "..\\..\\escape.mp4", ".voice.WAV", "._clip.mp4", ".clip.mp4.part", ".DS_Store",
        "clip.mp4", "inner/.x.mp4")]
    assert jobfiles.hidden_inputs(entries) == ("..\\..\\escape.mp4", ".voice.WAV")


def test_a_folder_with_only_hidden_audio_says_so_in_its_refusal() -> None:
    from heygemd.settings import LimitSettings

    entries = (jobfiles.Entry(".voice.wav", jobfiles.EntryKind.FILE, 10, 0),
               jobfiles.Entry("clip.mp4", jobfiles.EntryKind.FILE, 10, 0))
    problem = jobfiles.check_folder(entries, LimitSettings())
    assert isinstance(problem, jobfiles.FolderProblem) and problem.code == "no_audio"
    assert "Not used: '.voice.wav' (a name that starts with a dot is hidden" in problem.message


def test_an_older_database_gains_the_new_counters(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "jobs.sqlite3")
    db.executescript("""CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT UNIQUE NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, submitted_at TEXT NOT NULL, started_at TEXT,
        finished_at TEXT, outbox_name TEXT, status TEXT, message TEXT,
        video_index INTEGER NOT NULL DEFAULT 0, video_count INTEGER NOT NULL DEFAULT 0,
        video_name TEXT, fraction REAL NOT NULL DEFAULT 0);
        INSERT INTO jobs (job_id, name, state, attempts, submitted_at)
        VALUES ('J1', 'old', 'queued', 2, 't');""")
    db.commit()
    db.close()
    reader = Store(tmp_path, readonly=True)  # before the daemon migrates: defaults stand in
    [row] = reader.in_states(State.QUEUED)
    assert (row.attempts, row.faults, row.interruptions, row.crash_counts()) == (2, 0, 0, {})
    reader.close()
    store = Store(tmp_path)
    store.update("J1", crashes='{"a.mp4": 2}', interruptions=3)
    row = store.get("J1")
    assert row is not None and row.crash_counts() == {"a.mp4": 2} and row.interruptions == 3
    store.close()


def test_report_settings_carry_no_secrets_or_server_paths(tmp_path: Path) -> None:
    from heygemd.daemon.making import report_settings
    from heygemd.settings import load_settings

    config = tmp_path / "config.toml"
    config.write_text('[web]\nlisten = "0.0.0.0:8750"\ntoken = "s3cret-token"\n'
                      '[engine.wav2lip]\ncheckpoint = "/srv/models/w.pth"\n', encoding="utf-8")
    dumped = report_settings(load_settings(config))
    text = json.dumps(dumped)
    assert "s3cret-token" not in text and "/srv/models" not in text and str(tmp_path) not in text
    assert dumped["output"]["crf"] == 18 and dumped["watch"]["settle_seconds"] == 10.0


def test_what_is_not_the_machines() -> None:
    import sqlite3

    inside = Path("/srv/share/work/j/job/clip.mp4")
    denied = PermissionError(errno.EACCES, "Permission denied", str(inside))
    assert faults.is_unreadable_input(denied, inside)
    assert not faults.is_unreadable_input(denied, Path("/srv/share/work/j/job/other.mp4"))
    assert faults.is_machine_fault(sqlite3.OperationalError("database or disk is full"))
    assert not faults.is_machine_fault(OSError(errno.EAGAIN, "try again"))
    try:
        try:
            raise OSError(errno.ENOSPC, "full")
        except OSError:
            raise ValueError("a bug of ours, not caused by the disk") from None
    except ValueError as hidden:
        assert not faults.is_machine_fault(hidden)
