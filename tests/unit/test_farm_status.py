"""The farm's words and flags, pure: the broker's problem in the status, the workers shown,
a worker's warm and cold stops."""

from __future__ import annotations

import calendar

import pytest

from heygemd.daemon.status import (
    FarmVideo,
    snapshot_from_json,
    snapshot_json,
    status_line,
    status_text,
)
from heygemd.errors import JobInterrupted
from heygemd.farm.app import broker_words
from heygemd.farm.control import WorkerControl
from heygemd.farm.intake import broker_problem, safe_url
from heygemd.web.data import farm_card


@pytest.mark.parametrize(("message", "words"), [
    ("OperationalError: Error 111 connecting to 127.0.0.1:6379. Connection refused.",
     "connection refused"),
    ("OperationalError: Timeout connecting to server", "no answer"),
    ("OperationalError: Error -2 connecting to redis.lan:6379. Name or service not known.",
     "its address is not known"),
    ("AuthenticationError: invalid username-password pair or user is disabled.",
     "its password was refused"),
    ("ConnectionError: Connection closed by server.", "the connection was dropped"),
    ("OperationalError: something new", "it cannot be reached"),
])
def test_broker_words(message: str, words: str) -> None:
    assert broker_words(message) == words


def test_broker_problem_names_the_address_without_its_password_and_since_when() -> None:
    since = calendar.timegm((2026, 12, 3, 12, 1, 30, 0, 0, 0))
    where = safe_url("redis://:s3cret@10.0.0.5:6379/0")
    words = broker_problem(where, "Error 111 connecting. Connection refused.", since)
    assert words == ("videos wait for the task broker at redis://***@10.0.0.5:6379/0: "
                     "connection refused since 12:01 UTC")


def view_with(farm: tuple[FarmVideo, ...]):  # noqa: ANN201 - a StatusView
    from heygemd.daemon.status import StatusView

    return StatusView(updated_at="2026-12-03T12:00:00+00:00", running=None, queued=(),
                      recent=(), farm=farm)


FARM = (FarmVideo("intro", "a.mp4", "gpu-box-2/gpu1/4242", 0.42, 0.8),
        FarmVideo("intro", "b.mp4"),
        FarmVideo("intro", "c.mp4", "gpu-box-3/gpu0/77", 0.1, 40.0))


def test_status_text_and_line_show_which_machine_makes_what() -> None:
    text = status_text(view_with(FARM))
    assert "On the farm's workers:\n" \
        "  - a.mp4 of intro: on gpu-box-2 (gpu1, pid 4242), 42%\n" \
        "  - b.mp4 of intro: waiting for a free worker\n" \
        "  - c.mp4 of intro: on gpu-box-3 (gpu0, pid 77), 10%, no report for 40 s" in text
    assert "2 of 3 videos out on workers" in status_line(view_with(FARM))
    assert "farm" not in status_text(view_with(())).lower()


def test_the_farm_survives_status_json() -> None:
    view = view_with(FARM)
    back = snapshot_from_json(snapshot_json(view))
    assert back.farm == FARM and back.farm[0].host == "gpu-box-2"


def test_jobs_side_by_side_in_every_view() -> None:
    from heygemd.daemon.status import StatusView
    from heygemd.daemon.store import JobRow, State

    def row(job_id: str, name: str, fraction: float) -> JobRow:
        return JobRow(job_id, name, State.RUNNING, 1, "2026-12-03T12:00:00+00:00",
                      "2026-12-03T12:00:01+00:00", None, None, None, None, 1, 1, "a.mp4",
                      fraction)

    view = StatusView(updated_at="2026-12-03T12:00:05+00:00", running=row("J1", "intro", 0.5),
                      queued=(), recent=(), also_running=(row("J2", "outro", 0.25),
                                                          row("J3", "recap", 0.0)))
    text = status_text(view)
    assert "Working on: intro - video 1 of 1 (a.mp4), 50%\n" \
        "Also working on: outro - video 1 of 1 (a.mp4), 25%\n" \
        "Also working on: recap - video 1 of 1 (a.mp4), 0%\n" in text
    assert "running intro: video 1 of 1 (a.mp4), 50%; also running outro, recap" \
        in status_line(view)
    back = snapshot_from_json(snapshot_json(view))
    assert back.also_running == view.also_running and back.running == view.running
    from heygemd.web.data import running_card

    assert [running_card(r, 0.0)["name"] for r in back.also_running] == ["outro", "recap"]  # type: ignore[index]


def test_the_page_card_of_a_farm_video() -> None:
    card = farm_card(FARM[0])
    assert (card["host"], card["device"], card["pid"], card["percent"]) == \
        ("gpu-box-2", "gpu1", 4242, 42.0)
    assert card["words"] == "a.mp4 of intro: on gpu-box-2 (gpu1, pid 4242), 42%"
    waiting = farm_card(FARM[1])
    assert waiting["host"] is None and waiting["pid"] is None


def test_first_stop_is_warm_second_is_cold() -> None:
    control = WorkerControl()
    control.on_shutting_down(sig="SIGTERM", how="Warm")
    assert control.is_stopping and not control.is_cold
    control.check()  # the video goes on
    control.on_shutting_down(sig="SIGTERM", how="Warm")
    assert control.is_cold
    with pytest.raises(JobInterrupted):
        control.check()


def test_sigquit_is_cold_at_once_and_a_stop_is_never_a_restart() -> None:
    control = WorkerControl()
    control.on_shutting_down(sig="SIGQUIT", how="Cold")
    assert control.is_cold
    control.restart.set()
    assert not control.should_restart
    fresh = WorkerControl()
    fresh.restart.set()
    assert fresh.should_restart


def test_a_video_silent_for_the_time_limit_ends_the_worker() -> None:
    import threading
    import time

    from heygemd.farm.control import EX_HUNG

    control = WorkerControl()
    ended: list[int] = []
    fired = threading.Event()

    def exit_(status: int) -> None:
        ended.append(status)
        fired.set()

    control.watch_hangs(1.5, exit=exit_)
    control.begin("a.mp4")
    for _ in range(4):  # reports keep it alive past the limit
        time.sleep(0.6)
        control.check()
    assert not ended
    control.end()  # between videos: nothing to watch
    time.sleep(2.5)
    assert not ended
    control.begin("b.mp4")  # then silent
    assert fired.wait(5) and ended == [EX_HUNG]
