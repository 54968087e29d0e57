"""Warnings about moments the output never shows say so (pure: pipeline.note_unshown_frames)."""

from __future__ import annotations

from heygemd.pipeline import note_unshown_frames
from heygemd.report import Finding, Severity


def _warn(frame: int | None) -> Finding:
    return Finding(code="face_turned_briefly", severity=Severity.WARN,
                   message="The person turns away around 0:06.7.", frame_index=frame)


def test_a_warning_past_the_end_of_the_output_says_so() -> None:
    findings = [_warn(167), _warn(10), _warn(None),
                Finding(code="low_resolution", severity=Severity.WARN, message="Small.")]
    noted = note_unshown_frames(findings, seconds=3.5, fps=25.0)  # 88 frames shown
    assert noted[0].message == (
        "The person turns away around 0:06.7. (The audio is 0:03.5 long, so the result shows "
        "only the video's first 0:03.5: the moment above may not appear in it.)")
    assert noted[1:] == findings[1:]  # inside the output, or not about one moment
    assert findings[0].message == "The person turns away around 0:06.7."  # not changed in place


def test_the_last_shown_frame_is_not_noted() -> None:
    assert note_unshown_frames([_warn(87)], seconds=3.5, fps=25.0) == [_warn(87)]
    assert note_unshown_frames([_warn(88)], seconds=3.5, fps=25.0) != [_warn(88)]
