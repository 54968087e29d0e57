"""The share's mark: written once by the intake, checked by each worker before it makes a
video, so a worker that mounts the wrong folder at paths.work hands videos back instead of
judging their jobs gone."""

from __future__ import annotations

from pathlib import Path

import pytest

from heygemd.errors import MachineFault
from heygemd.farm.share import SHARE_MARK, ShareNotSeen, check_share, mark_share, share_id


def test_the_mark_is_written_once_and_kept(tmp_path: Path) -> None:
    assert share_id(tmp_path) is None
    mark = mark_share(tmp_path)
    assert len(mark) == 32 and share_id(tmp_path) == mark
    assert mark_share(tmp_path) == mark  # a restarted intake keeps its share's mark
    assert sorted(p.name for p in tmp_path.iterdir()) == [SHARE_MARK]  # no temp file left


def test_a_worker_that_sees_the_mark_goes_on(tmp_path: Path) -> None:
    check_share(tmp_path, mark_share(tmp_path))
    check_share(tmp_path / "anywhere", "")  # an order without a mark is not checked


@pytest.mark.parametrize("other", [None, "f" * 32])
def test_a_worker_elsewhere_is_told_to_mount_the_share(tmp_path: Path, other: str | None) -> None:
    intake, worker = tmp_path / "share", tmp_path / "local"
    intake.mkdir()
    worker.mkdir()
    expected = mark_share(intake)
    if other is not None:
        (worker / SHARE_MARK).write_text(other + "\n")
    with pytest.raises(ShareNotSeen) as caught:
        check_share(worker, expected)
    assert isinstance(caught.value, MachineFault)  # the machine's fault: never the job's
    words = str(caught.value)
    assert f"paths.work {worker}" in words and expected[:8] in words
    assert "mount the intake's work area there" in words
    assert ("has no share mark" if other is None else "holds another share (mark ffffffff)") \
        in words
