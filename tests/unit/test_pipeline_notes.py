"""What the pipeline adds to a made video's findings (pure): warnings about moments the output
never shows say so (note_unshown_frames); what the engine found, in words (engine_findings)."""

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


def test_a_template_whose_sound_was_allowed_for_says_so_in_plain_words() -> None:
    from heygemd.pipeline import engine_findings

    late = engine_findings({"template_offset_ms": 240.0, "template_offset_corrected": 1.0,
                            "template_offset_at_limit": 0.0}, "anna.mp4")
    assert [(f.code, f.severity, f.value, f.file) for f in late] == [
        ("sound_out_of_step", Severity.WARN, 240.0, "anna.mp4")]
    assert late[0].message == (
        "Your original video's own sound is about 240 ms behind its picture (the lips move "
        "before the words are heard). This was allowed for: the new video's lips follow the new "
        "voice, and nothing needs to be done. Only if you use the original file elsewhere: its "
        "sound needs moving about 240 ms earlier.")
    early = engine_findings({"template_offset_ms": -160.0, "template_offset_corrected": 1.0},
                            "anna.mp4")
    assert "about 160 ms ahead of its picture" in early[0].message
    assert early[0].message.endswith("needs moving about 160 ms later.")


def test_an_offset_at_the_end_of_the_search_asks_the_person_to_look() -> None:
    """Found at the largest lag looked for, the sound may be further out: only part of it was
    allowed for, and the words say so."""
    from heygemd.pipeline import engine_findings

    edge = engine_findings({"template_offset_ms": 320.0, "template_offset_corrected": 1.0,
                            "template_offset_at_limit": 1.0}, "anna.mp4")
    assert edge[0].message.startswith(
        "Your original video's own sound is 320 ms or more behind its picture")
    assert "move the original's sound earlier" in edge[0].message
    assert "nothing needs to be done" not in edge[0].message


def test_an_offset_looked_for_but_not_allowed_for_says_nothing() -> None:
    from heygemd.pipeline import engine_findings

    assert engine_findings({"template_offset_ms": 80.0, "template_offset_corrected": 0.0},
                           "a.mp4") == []
    assert engine_findings({"sync_r": 0.6}, "a.mp4") == []  # not looked for (another engine)
    for odd in (0.0, float("nan")):  # never sent, never said
        assert engine_findings({"template_offset_ms": odd, "template_offset_corrected": 1.0},
                               "a.mp4") == []
