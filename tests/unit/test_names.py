"""Derived names fit in one path component (255 UTF-8 bytes) and are unique ignoring case."""

from __future__ import annotations

from pathlib import Path

import pytest

from heygemd import names
from heygemd.daemon import outbox
from heygemd.validation.examine import picture_name

LONG_LATIN = "a" * 251 + ".mov"  # 255 bytes
LONG_CHINESE = "视频" * 41 + "x.mp4"  # 6 * 41 + 5 = 251 bytes


@pytest.mark.parametrize("video", [LONG_LATIN, LONG_CHINESE, "ü" * 125 + ".mp4"])
def test_every_name_derived_from_a_long_video_name_fits(video: str) -> None:
    assert names.utf8_len(video) <= names.NAME_MAX
    stem = Path(video).stem
    derived = [
        picture_name(video, "warning", set()),
        picture_name(video, "refused", {picture_name(video, "refused", set())}),
        outbox.output_names([video])[video],
        names.fit(f".{stem}", ".mp4.partial"),
        outbox.choose_name(stem, {stem}),
    ]
    for name in derived:
        assert names.utf8_len(name) <= names.NAME_MAX, name
        name.encode("utf-8")  # whole characters: never a cut inside one
    assert derived[0].endswith(".warning.jpg") and derived[1].endswith(".refused.jpg")
    assert derived[0].startswith(stem[:20]) and derived[4] != stem
    assert len(set(derived)) == len(derived)


def test_two_long_names_that_differ_only_at_the_end_stay_apart() -> None:
    a, b = "x" * 250 + "1.mov", "x" * 250 + "2.mov"
    out = outbox.output_names([a, b])
    assert out[a] != out[b]
    assert picture_name(a, "warning", set()) != picture_name(b, "warning", set())


def test_short_names_are_unchanged() -> None:
    assert names.fit("anna", ".warning.jpg") == "anna.warning.jpg"
    assert outbox.choose_name("job", {"other"}) == "job"
    assert outbox.choose_name("job", {"JOB", "job-2"}) == "job-3"


def test_pictures_are_unique_ignoring_case() -> None:
    first = picture_name("A.mp4", "warning", set())
    second = picture_name("a.mov", "warning", {first})
    assert first == "A.warning.jpg"
    assert second.casefold() != first.casefold()
    third = picture_name("a.mkv", "warning", {first, second})
    assert len({first.casefold(), second.casefold(), third.casefold()}) == 3


def test_a_suffix_that_leaves_no_room_is_a_bug() -> None:
    with pytest.raises(ValueError):
        names.fit("x", "y" * 260)
