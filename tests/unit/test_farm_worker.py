"""The worker's make_video on a stand-in pipeline: which starts count toward setting a video
aside, and orders for a share this machine does not see."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from heygemd.farm import share
from heygemd.farm.worker import make_video
from heygemd.report import AUDIO_REREAD_FAILED, AudioResult, VideoResult, VideoStatus
from heygemd.settings import PathSettings, Settings


class StandIn:
    """check_audio accepts; process_video writes a small output."""

    def check_audio(self, path: Path, output: Any = None) -> Any:
        return SimpleNamespace(result=AudioResult(name=path.name, accepted=True))

    def process_video(self, video: Path, checked: Any, output: Path, scratch: Path,
                      progress: Any) -> VideoResult:
        progress(0.5)
        output.write_bytes(b"made")
        return VideoResult(name=video.name, status=VideoStatus.DONE, output=output.name)


def order_in(work: Path, mark: str) -> share.VideoOrder:
    folder = work / "J1" / "lesson"
    folder.mkdir(parents=True)
    (folder / "a.mp4").write_bytes(b"video")
    (folder / "voice.wav").write_bytes(b"audio")
    return share.VideoOrder(job_id="J1", name="lesson", index=1, video="a.mp4",
                            audio="voice.wav", output="a.mp4", key="k" * 32, share=mark)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(paths=PathSettings(work=tmp_path / "work", inbox=tmp_path / "inbox"))


def starts(work: Path, order: share.VideoOrder) -> int:
    folder = share.farm_dir(work, order.job_id) / "attempts" / order.key[:16]
    return len(list(folder.iterdir())) if folder.is_dir() else 0


def test_a_start_counts_toward_setting_the_video_aside(settings: Settings) -> None:
    work = settings.paths.work
    work.mkdir()
    order = order_in(work, share.mark_share(work))
    assert make_video(StandIn(), settings, {}, "box-1/cpu/11", order) == "made"  # type: ignore[arg-type]
    assert starts(work, order) == 1
    assert share.read_result(work, order).video.status is VideoStatus.DONE  # type: ignore[union-attr]


def test_a_copy_taken_while_another_worker_makes_the_video_is_left_to_it(
    settings: Settings,
) -> None:
    """A restarted intake sends again what has no result yet: a copy taken while another
    worker reports on the video makes nothing (two workers made it at once, and the late one
    logged a failed encode once the job was published); a stale report is no such worker."""
    work = settings.paths.work
    work.mkdir()
    order = order_in(work, share.mark_share(work))
    share.write_progress(work, order, share.Progress(
        worker="box-2/gpu0/22", job_id="J1", video="a.mp4", fraction=0.4, at=time.time()))
    assert make_video(StandIn(), settings, {}, "box-1/cpu/11", order) == "duplicate"  # type: ignore[arg-type]
    assert starts(work, order) == 0 and share.read_result(work, order) is None
    share.write_progress(work, order, share.Progress(
        worker="box-2/gpu0/22", job_id="J1", video="a.mp4", fraction=0.4,
        at=time.time() - 3600))  # that worker went silent long ago
    assert make_video(StandIn(), settings, {}, "box-1/cpu/11", order) == "made"  # type: ignore[arg-type]
    assert starts(work, order) == 1


def test_an_order_for_a_share_not_seen_here_makes_nothing(settings: Settings) -> None:
    work = settings.paths.work
    work.mkdir()
    order = order_in(work, "a" * 32)  # this work area is unmarked: not the intake's share
    with pytest.raises(share.ShareNotSeen):
        make_video(StandIn(), settings, {}, "box-1/cpu/11", order)  # type: ignore[arg-type]
    assert starts(work, order) == 0 and share.read_result(work, order) is None


class AudioLeftMeanwhile(StandIn):
    """The job's inputs are moved while the video is made (the job published, or put back):
    the pipeline fails the video as its sound track cannot be read again."""

    def process_video(self, video: Path, checked: Any, output: Path, scratch: Path,
                      progress: Any) -> VideoResult:
        (video.parent / "voice.wav").unlink()
        return VideoResult(name=video.name, status=VideoStatus.FAILED,
                           reason_code=AUDIO_REREAD_FAILED, message="could not be read again")


def test_a_video_whose_audio_left_meanwhile_reports_nothing(settings: Settings) -> None:
    work = settings.paths.work
    work.mkdir()
    order = order_in(work, share.mark_share(work))
    assert make_video(AudioLeftMeanwhile(), settings, {}, "box-1/cpu/11", order) == "gone"  # type: ignore[arg-type]
    assert share.read_result(work, order) is None  # no FAILED result for a job sent again


def test_a_video_whose_audio_could_not_be_read_again_while_it_is_there_is_failed(
    settings: Settings,
) -> None:
    class Unreadable(StandIn):
        def process_video(self, video: Path, checked: Any, output: Path, scratch: Path,
                          progress: Any) -> VideoResult:
            return VideoResult(name=video.name, status=VideoStatus.FAILED,
                               reason_code=AUDIO_REREAD_FAILED, message="damaged since")

    work = settings.paths.work
    work.mkdir()
    order = order_in(work, share.mark_share(work))
    assert make_video(Unreadable(), settings, {}, "box-1/cpu/11", order) == "made"  # type: ignore[arg-type]
    result = share.read_result(work, order)
    assert result is not None and result.video.reason_code == AUDIO_REREAD_FAILED
