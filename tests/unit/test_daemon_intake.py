"""What the status says about a ready folder that could not be claimed (pure)."""

from __future__ import annotations

import errno
from pathlib import Path

from heygemd.daemon.intake import claim_failure_words


def test_a_refused_folder_is_the_folders_to_fix() -> None:
    source = Path("/srv/inbox/course 1")
    err = PermissionError(errno.EACCES, "Permission denied", str(source))
    assert "make the folder and everything in it writable" in claim_failure_words(err, source)


def test_a_refused_work_area_is_not_blamed_on_the_folder() -> None:
    source = Path("/srv/inbox/course 1")
    err = PermissionError(errno.EACCES, "Permission denied", "/srv/.work/20261124T000000-abc")
    words = claim_failure_words(err, source)
    assert "make the folder" not in words
    assert words == "it could not be moved out of the inbox (Permission denied); it is tried again"
