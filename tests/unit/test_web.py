"""The operator's page: what it reads and how (pure parts), and the metrics' families."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from heygemd.daemon.status import StatusView
from heygemd.daemon.store import JobRow, State, VideoFact
from heygemd.web import data, metrics
from heygemd.web.app import is_loopback, split_listen


def row(name: str, state: State, **kw: object) -> JobRow:
    base: dict[str, object] = dict(job_id=f"J-{name}", name=name, state=state, attempts=1,
                                   submitted_at="2026-12-03T08:00:00+00:00", started_at=None,
                                   finished_at=None, outbox_name=None, status=None, message=None,
                                   video_index=0, video_count=0, video_name=None, fraction=0.0)
    base.update(kw)
    return JobRow(**base)  # type: ignore[arg-type]


REPORT = {
    "job_id": "J-a", "status": "partial", "interruptions": 1,
    "videos": [
        {"name": "anna.mp4", "status": "done", "output": "anna.mp4", "preview": "anna.preview.jpg",
         "pictures": ["anna.warning.jpg"],
         "findings": [{"severity": "warn", "message": "below 720p"}]},
        {"name": "ben.mp4", "status": "rejected", "message": "The face is turned away.",
         "pictures": ["ben.refused.jpg", "../../etc/passwd", ".hidden.jpg", "ben.refused.jpg"],
         "preview": "/etc/shadow"},
    ],
}


def test_only_plain_picture_names_the_report_gives_are_servable() -> None:
    assert data.servable(REPORT) == ["anna.warning.jpg", "anna.preview.jpg", "ben.refused.jpg"]
    assert not data.is_plain_name("a/b.jpg") and not data.is_plain_name("..")
    assert not data.is_plain_name("a\\b.jpg") and data.is_plain_name("视频.preview.jpg")


def test_a_result_card_carries_the_reports_words_and_picture_indexes() -> None:
    card = data.result_card(row("a", State.DONE, status="partial", outbox_name="a"), REPORT)
    assert card.status == "partial" and card.interruptions == 1
    anna, ben = card.videos
    assert (anna.preview, anna.pictures, anna.warnings) == (1, [0], ["below 720p"])
    assert (ben.status, ben.message, ben.pictures, ben.preview) == (
        "rejected", "The face is turned away.", [2], None)


def test_an_accepted_audios_warnings_show_with_each_video_made() -> None:
    report = {**REPORT, "audio": {"name": "voice.wav", "accepted": True, "findings": [
        {"severity": "warn", "message": "2 ms of the audio is damaged"}]}}
    anna, ben = data.result_card(row("a", State.DONE, status="partial"), report).videos
    assert anna.warnings == ["2 ms of the audio is damaged", "below 720p"]
    assert ben.warnings == []


def test_the_running_card_estimates_what_is_left() -> None:
    running = row("r", State.RUNNING, started_at="2026-12-03T08:00:00+00:00", video_index=2,
                  video_count=4, fraction=0.5, video_name="c.mp4")
    started = 1796284800.0  # 2026-12-03T08:00:00Z
    card = data.running_card(running, started + 300)
    assert card is not None
    assert card["percent"] == 37.5 and card["elapsed_s"] == 300 and card["left_s"] == 500
    assert card["words"] == "video 2 of 4 (c.mp4), 50%"
    early = data.running_card(row("r", State.VALIDATING), started)
    assert early is not None and early["percent"] == 0.0 and early["left_s"] is None


def test_the_queue_lists_every_folder_in_status_words() -> None:
    view = StatusView(updated_at="now", running=None,
                      queued=(row("one", State.QUEUED), row("two", State.QUEUED)), recent=(),
                      settling=("three",), copying=("J-two",),
                      blocked=("four: ask the operator to make it readable",),
                      incomplete=("five: empty: add the audio and video files",))
    assert data.queue_cards(view) == [
        {"name": "one", "state": "waiting"},
        {"name": "two", "state": "waiting for the copy to finish"},
        {"name": "three", "state": "being copied"},
        {"name": "four", "state": "cannot be taken: ask the operator to make it readable"},
        {"name": "five", "state": "not taken yet: empty: add the audio and video files"},
    ]


def test_listen_addresses() -> None:
    assert split_listen("127.0.0.1:8750") == ("127.0.0.1", 8750)
    assert split_listen("[::1]:9000") == ("::1", 9000)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def fact(status: str, code: str | None = None, render_ms: float = 2000.0) -> VideoFact:
    return VideoFact(job_id="J", name="v.mp4", status=status, reason_code=code,
                     output_seconds=5.0 if status == "done" else 0.0,
                     frames=125 if status == "done" else 0, examine_ms=300.0,
                     render_ms=render_ms if status == "done" else 0.0,
                     finished_at="2026-12-03T08:00:00+00:00")


def test_metrics_parse_as_prometheus_text_and_count_what_the_store_holds() -> None:
    jobs = [("done", None, "2026-12-03T08:00:00+00:00"), ("failed", "crash_loop", None),
            ("rejected", "no_audio", None)]
    videos = [fact("done"), fact("done", render_ms=5000.0), fact("rejected", "face_turned"),
              fact("failed", "engine_error")]

    class Fixed:
        def collect(self):  # type: ignore[no-untyped-def]
            return metrics.families(jobs, 2, 1, videos, True, {"outbox": 10**9})

    registry = CollectorRegistry()
    registry.register(Fixed())  # type: ignore[arg-type]
    parsed = {m.name: m for m in text_string_to_metric_families(generate_latest(registry).decode())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for m in parsed.values() for s in m.samples}
    assert samples[("heygemd_jobs_total", (("outcome", "done"),))] == 1
    assert samples[("heygemd_videos_total", (("outcome", "done"),))] == 2
    assert samples[("heygemd_errors_total", (("code", "engine_error"),))] == 1
    assert samples[("heygemd_errors_total", (("code", "crash_loop"),))] == 1
    assert samples[("heygemd_refusals_total", (("code", "face_turned"),))] == 1
    assert samples[("heygemd_output_seconds_total", ())] == 10.0
    assert samples[("heygemd_queue_depth", ())] == 2
    assert samples[("heygemd_stage_duration_seconds_count", (("stage", "render"),))] == 2
    bucket = ("heygemd_stage_duration_seconds_bucket", (("le", "2.5"), ("stage", "render")))
    assert samples[bucket] == 1
    assert samples[("heygemd_last_success_timestamp_seconds", ())] == 1796284800.0
    assert samples[("heygemd_free_bytes", (("place", "outbox"),))] == 10**9


def test_histogram_buckets_are_cumulative() -> None:
    assert metrics.histogram_buckets([0.2, 1.0, 7.0], (0.5, 1.0, 5.0)) == [
        ("0.5", 1), ("1.0", 2), ("5.0", 2), ("+Inf", 3)]
