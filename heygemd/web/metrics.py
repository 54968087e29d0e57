"""/metrics: Prometheus metrics read from the job store at each scrape (a custom collector), so
the web process holds no counts of its own and a restart of it loses nothing.

Counters are totals over the store's history (published jobs and their videos); gauges are the
snapshot's present (queue depth, running jobs, free disk, whether the daemon runs).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from heygemd.daemon import lock
from heygemd.daemon.store import DB_NAME, FINAL, State, VideoFact
from heygemd.settings import Settings
from heygemd.web.data import open_store

# seconds; a 5 s clip's examine takes ~0.1-0.5 s, a minute of 1080p renders for minutes
STAGE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
STAGES = ("examine", "render")


def histogram_buckets(values: Iterable[float], bounds: Sequence[float]) -> list[tuple[str, int]]:
    """Cumulative (le, count) pairs ending with +Inf (pure)."""
    values = sorted(values)
    buckets, i = [], 0
    for bound in bounds:
        while i < len(values) and values[i] <= bound:
            i += 1
        buckets.append((str(bound), i))
    buckets.append(("+Inf", len(values)))
    return buckets


def _timestamp(iso: str | None) -> float | None:
    try:
        return datetime.fromisoformat(iso).timestamp() if iso else None
    except ValueError:
        return None


def families(
    jobs: Sequence[tuple[str, str | None, str | None]], queued: int, running: int,
    videos: Sequence[VideoFact], daemon_up: bool, free: dict[str, int],
) -> list[Metric]:
    """The metric families (pure). ``jobs``: (outcome, reason code, finished at) of finished
    jobs; ``videos``: their videos; ``free``: bytes free by place."""
    out: list[Metric] = []
    by_outcome = CounterMetricFamily("heygemd_jobs", "Jobs finished, by outcome",
                                     labels=["outcome"])
    for outcome, n in sorted(Counter(j[0] for j in jobs).items()):
        by_outcome.add_metric([outcome], n)
    out.append(by_outcome)
    by_video = CounterMetricFamily("heygemd_videos", "Videos finished, by outcome",
                                   labels=["outcome"])
    for outcome, n in sorted(Counter(v.status for v in videos).items()):
        by_video.add_metric([outcome], n)
    out.append(by_video)
    errors = CounterMetricFamily(
        "heygemd_errors", "Videos (and jobs that made none) failed on our side, by code",
        labels=["code"])
    failed = [v.reason_code or "unknown" for v in videos if v.status == "failed"]
    failed += [j[1] or "unknown" for j in jobs if j[0] == "failed" and j[1] == "crash_loop"]
    for code, n in sorted(Counter(failed).items()):
        errors.add_metric([code], n)
    out.append(errors)
    refusals = CounterMetricFamily("heygemd_refusals", "Videos refused for their input, by code",
                                   labels=["code"])
    for code, n in sorted(Counter(v.reason_code or "unknown" for v in videos
                                  if v.status == "rejected").items()):
        refusals.add_metric([code], n)
    out.append(refusals)
    made = [v for v in videos if v.status == "done"]
    out.append(CounterMetricFamily("heygemd_output_seconds", "Seconds of video made",
                                   value=sum(v.output_seconds for v in made)))
    frames = sum(v.frames for v in made)
    render_s = sum(v.render_ms for v in made) / 1000
    out.append(CounterMetricFamily("heygemd_rendered_frames", "Frames made", value=frames))
    out.append(CounterMetricFamily("heygemd_render_seconds",
                                   "Seconds spent making videos (examine beside render, encode)",
                                   value=render_s))
    last = next((v for v in sorted(made, key=lambda v: v.finished_at or "", reverse=True)
                 if v.render_ms > 0), None)
    out.append(GaugeMetricFamily(
        "heygemd_render_frames_per_second", "Frames per second of the last video made",
        value=last.frames / (last.render_ms / 1000) if last is not None else 0.0))
    stages = HistogramMetricFamily("heygemd_stage_duration_seconds",
                                   "Seconds per video in each stage", labels=["stage"])
    for stage in STAGES:
        values = [(v.examine_ms if stage == "examine" else v.render_ms) / 1000 for v in videos
                  if (v.examine_ms if stage == "examine" else v.render_ms) > 0]
        stages.add_metric([stage], histogram_buckets(values, STAGE_BUCKETS), sum(values))
    out.append(stages)
    success = [t for j in jobs if j[0] in ("done", "partial")
               if (t := _timestamp(j[2])) is not None]
    out.append(GaugeMetricFamily(
        "heygemd_last_success_timestamp_seconds",
        "When the last job with a made video finished (Unix time; 0: never)",
        value=max(success, default=0.0)))
    out.append(GaugeMetricFamily("heygemd_queue_depth", "Jobs waiting to run", value=queued))
    out.append(GaugeMetricFamily("heygemd_jobs_running", "Jobs being made", value=running))
    out.append(GaugeMetricFamily("heygemd_daemon_up", "1 when the daemon holds its state folder",
                                 value=1.0 if daemon_up else 0.0))
    disk = GaugeMetricFamily("heygemd_free_bytes", "Free bytes on the disk of each place",
                             labels=["place"])
    for place, n in sorted(free.items()):
        disk.add_metric([place], n)
    out.append(disk)
    return out


class StoreCollector(Collector):
    """Reads the store (read-only) at each scrape."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        paths = self.settings.paths
        jobs: list[tuple[str, str | None, str | None]] = []
        videos: list[VideoFact] = []
        queued = running = 0
        if (paths.state / DB_NAME).is_file():
            store = open_store(self.settings)
            try:
                jobs = [(r.status or r.state.value, r.reason_code, r.finished_at)
                        for r in store.in_states(*FINAL)]
                videos = store.video_facts()
                queued = len(store.in_states(State.QUEUED))
                running = len(store.in_states(State.VALIDATING, State.RUNNING))
            finally:
                store.close()
        free = {}
        for place, path in (("outbox", paths.outbox), ("work", paths.work)):
            try:
                free[place] = shutil.disk_usage(path).free
            except OSError:
                continue
        yield from families(jobs, queued, running, videos,
                            lock.holder(paths.state) is not None, free)
