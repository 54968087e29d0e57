"""What a user is told about an empty, cut short, misnamed or non-media file: plain words that
name the file, and no setting name, FFmpeg demuxer or message, error number or server path.
The operator's details (FFmpeg's words, the settings to change) are in the log instead."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
from structlog.testing import capture_logs

from heygemd.media.probe import looks_like_text, picture_kind, wrong_extension_message
from heygemd.media.writer import VideoWriter
from heygemd.report import Finding, Severity
from heygemd.settings import LimitSettings, OutputSettings, ValidationSettings
from heygemd.validation import examine
from tests.mediagen import make_video, pattern_frame, write_noise

CFG = ValidationSettings()
LIMITS = LimitSettings()
LEAKS = ("watch.", "settle_seconds", "ready_marker", "_pipe", "FFmpeg", "[Errno", "Invalid data")


def cut_mp4(path: Path) -> Path:
    """The first half of an MP4 whose index is written last: no index at all."""
    whole = make_video(path.with_name("whole-" + path.name), seconds=1.0).read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    return path


def cut_faststart_mp4(path: Path) -> Path:
    """Two thirds of an MP4 with its index in front: the index points past the end."""
    whole = path.with_name("whole-" + path.name)
    with VideoWriter(whole, 64, 48, 25.0, audio=None, audio_rate=16000,
                     settings=OutputSettings(preset="ultrafast")) as writer:
        for i in range(50):
            writer.write(pattern_frame(i, 64, 48))
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def jpeg(path: Path) -> Path:
    ok, data = cv2.imencode(".jpg", pattern_frame(0, 64, 48))
    assert ok
    path.write_bytes(data.tobytes())
    return path


def text(path: Path) -> Path:
    path.write_text("Hello everyone, and welcome.\nThis is the script for the video.\n")
    return path


def empty(path: Path) -> Path:
    path.touch()
    return path


# file name -> (how it is made, words the user is told, the log event with the details)
CASES: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    "empty.mp4": (empty, "is empty", "media.unreadable"),
    "empty.wav": (empty, "is empty", "media.unreadable"),
    "cut.mp4": (cut_mp4, "cut short", "media.unreadable"),
    "cut-faststart.mp4": (cut_faststart_mp4, "is incomplete", "media.unreadable"),
    "photo.mp4": (jpeg, "is a still picture (JPEG)", "media.wrong_extension"),
    "notes.wav": (text, "holds text", "media.unreadable"),
    "noise.wav": (lambda p: write_noise(p, 4096), "cannot be read", "media.unreadable"),
}


def findings_for(path: Path) -> list[Finding]:
    if path.suffix == ".wav":
        return examine.examine_audio(path, CFG, LIMITS).findings
    return examine.check_container(path, CFG, LIMITS).findings


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_refused_file_is_told_in_the_users_words(tmp_path: Path, name: str) -> None:
    make, words, event = CASES[name]
    path = make(tmp_path / name)
    with capture_logs() as logs:
        [finding] = findings_for(path)
    code = "wrong_extension" if event == "media.wrong_extension" else "unreadable_"
    assert finding.severity is Severity.REFUSE and finding.code.startswith(code)
    message = finding.message
    assert message.startswith(name) and words in message
    for leak in LEAKS:
        assert leak not in message, leak
    assert str(tmp_path) not in message and "/tmp" not in message
    [logged] = [entry for entry in logs if entry["event"] == event]
    assert logged["file"] == name


@pytest.mark.parametrize("name", ["empty.mp4", "cut.mp4", "cut-faststart.mp4", "noise.wav"])
def test_the_settings_for_slow_copies_are_logged_for_the_operator(
    tmp_path: Path, name: str
) -> None:
    path = CASES[name][0](tmp_path / name)
    with capture_logs() as logs:
        [finding] = findings_for(path)
    assert "copy it again" in finding.message and "READY" in finding.message
    [logged] = [entry for entry in logs if entry["event"] == "media.unreadable"]
    assert "watch.settle_seconds" in logged["hint"]
    assert "watch.require_ready_marker" in logged["hint"]


def test_ffmpegs_own_words_are_logged_not_told(tmp_path: Path) -> None:
    path = cut_mp4(tmp_path / "cut.mp4")
    with capture_logs() as logs:
        findings_for(path)
    [logged] = [entry for entry in logs if entry["event"] == "media.unreadable"]
    assert "Invalid data" in logged["ffmpeg"]


def test_a_text_file_is_not_told_to_wait_for_a_copy(tmp_path: Path) -> None:
    [finding] = findings_for(text(tmp_path / "notes.wav"))
    assert "copy" not in finding.message and "send the recording itself" in finding.message


def test_wrong_extension_messages_never_name_the_demuxer() -> None:
    assert picture_kind("jpeg_pipe") == "JPEG" and picture_kind("qoi_pipe") == "QOI"
    assert picture_kind("wav") is None
    for container in ("jpeg_pipe", "png_pipe", "image2", "some_new_demuxer", "wav", "mpegts"):
        message = wrong_extension_message("clip.mp4", ".mp4", container)
        assert container not in message and message.startswith("clip.mp4")
    assert "really a WAV file" in wrong_extension_message("clip.mp4", ".mp4", "wav")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"Hello\nworld\t!\r\n", True),
        ("Grüße, 你好\n".encode(), True),
        ("caf\u00e9".encode()[:-1], True),  # a character cut at the end of what was read
        (b"", False),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", False),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", False),
    ],
)
def test_looks_like_text(head: bytes, expected: bool) -> None:
    assert looks_like_text(head) is expected
