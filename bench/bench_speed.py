"""Speed and memory of whole `heygemd once` jobs against a plain decode + encode (issue 15).

    .venv/bin/python bench/bench_speed.py [--part all|speed|memory] [--minutes 1 2 5]
                                          [--rounds 3] [--device auto|cpu|cuda]

speed: for each pair (th10 1080x1920 + en01, th08 512x512 + en01), --rounds rounds of: the
plain cost of the output (the template decoded with PyAV, looped as far as the audio goes, and
encoded with libx264 at the same settings, config.toml's [output]: preset medium, crf 18, with
en01's sound), a cold job (`heygemd once` in a fresh process, the template cache emptied) and
a warm job (`heygemd once` again, the cache filled, audio never heard before: en01 quieter by
a hair). Both the process's wall time (what `heygemd once` makes a user wait, its start-up
included) and the job's own time (its job.finish log line's duration) are divided by the plain
time of the same round; the ratios reported are the medians of those (each round's are kept).
The row also has the plain cost with the decoded frames given to libx264 as they are
(``plain_decoded_s``, no round trip through RGB, and the ratios against it, ``*_ratio_decoded``)
and both plain files' sizes: the floor a job that kept its untouched pixels as decoded would
meet.
memory: th10 driven by en02 (60 s) looped to each of --minutes, one `heygemd once` each; the
peak RSS of the heygemd process (its ru_maxrss) and of its process tree (sampled every 0.2 s:
the engine's hearing worker is a process of its own), and the tree's peak PSS (the libraries
both processes map counted once). Flat in length means the job streams. --long-template adds
the same rows with a template as long as the sound (th10 looped): a dubbed
talk brings its own long recording, and the analysis and the selection grow with it.
minute (on a GPU machine: bench/gpu_check.sh): th10 driven by en02, one minute of 1080x1920
output, cold and warm `heygemd once` with ``--engine`` (builtin, or wav2lip with a randomly
initialised generator saved as the operator's checkpoint: the same cost as real weights);
seconds per minute of output, the device named.
profile: where a warm job's time goes (--clip th10 or th08, + en01, in this process, the engine
prepared and the template analysed by an untimed cold job first): every thread's stack sampled
every 5 ms, wall seconds per function (inclusive: on the stack; self: at its top), per thread;
and CPU seconds per thread (x264's and the decoders' own threads as "native") and of the
hearing worker, beside the plain decode + encode's CPU seconds: on N cores a job cannot take
less wall time than its CPU seconds over N.

Each run also records the CPU seconds other processes used meanwhile (``*_others_cpu_s``): on a
shared machine a ratio measured beside someone else's job says so. The machine (cores, CPU
model, GPU) is in the output, bench/out/bench-speed-<time>.json. On 2 cores the whole run takes
about an hour (5 minutes of 1080p output alone ~30 min): run it once, ``nice -n 10``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_engine import (  # noqa: E402
    descendants,
    own_track_as_wav,
    process_stats,
    with_others,
    write_wav,
)

from heygemd.media.audio import load_audio  # noqa: E402
from heygemd.media.video import VideoReader, frames_for  # noqa: E402
from heygemd.media.writer import VideoWriter  # noqa: E402
from heygemd.settings import OutputSettings, load_settings  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
TH10 = MEDIA / "talking" / "th10_man_standing_portrait1080x1920_latentsync_demo2.mp4"
TH08 = MEDIA / "talking" / "th08_woman_older_en_real3dportrait_May5s.mp4"
EN01 = MEDIA / "speech" / "en01_male_jfk_inaugural_11s.flac"
EN02 = MEDIA / "speech" / "en02_male_news_commentary_60s_musetalk_eng.wav"
WARM_GAIN = 0.999  # the warm job's audio: en01 this much quieter (never heard before)


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory and (where torch sees one) the GPU of this machine."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    facts: dict[str, Any] = {"cores": os.cpu_count(), "cpu": model, "host": platform.node(),
                             "memory_gb": round(os.sysconf("SC_PAGE_SIZE")
                                                * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}
    try:
        import torch

        if torch.cuda.is_available():
            facts["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return facts


def installation(root: Path, output: OutputSettings, device: str,
                 engine: str = "builtin") -> Path:
    """A temp heygemd installation under ``root`` (its own folders, models and cache) with the
    repository's [output] settings; returns its config.toml."""
    out = "\n".join(f"{k} = {json.dumps(v)}" for k, v in output.model_dump().items())
    config = root / "config.toml"
    config.write_text(
        '[paths]\ninbox = "inbox"\noutbox = "outbox"\nwork = "work"\nstate = "state"\n'
        'log_file = "log/heygemd.log"\ncache = "cache"\nmodels = "models"\n'
        '[watch]\nsettle_seconds = 0.5\n[daemon]\nmin_free_gb = 0.0\n'
        f'[engine]\nname = "{engine}"\ndevice = "{device}"\n'
        '[limits]\nmax_audio_seconds = 900.0\n'
        f'[logging]\nstdout = false\n[output]\n{out}\n', encoding="utf-8")
    return config


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, MB (0 where it has gone)."""
    stats = process_stats()
    pages = sum(int(stats[p][21]) for p in [pid, *descendants(pid, stats)] if p in stats)
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def tree_pss_mb(pid: int) -> float:
    """Proportional resident memory of ``pid`` and its descendants, MB: pages shared between
    them (the libraries both map: torch, numpy) counted once in all, as the kernel's Pss does."""
    stats = process_stats()
    total = 0
    for p in [pid, *descendants(pid, stats)]:
        try:
            with open(f"/proc/{p}/smaps_rollup", encoding="ascii") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
    return total / 1024


def run_once(config: Path, job: str, files: dict[str, Path]) -> dict[str, Any]:
    """Put one job (``files``: name in the job folder -> source) in the inbox and run
    `heygemd once` on it: wall seconds, the job's own seconds, peak RSS (process, tree), and
    what report.json says of the video (status, encoder, stage times)."""
    root = config.parent
    folder = root / "inbox" / job
    folder.mkdir(parents=True)
    for name, source in files.items():
        shutil.copyfile(source, folder / name)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    peak_tree = peak_pss = 0.0
    timeline: list[tuple[float, float]] = []  # (seconds since start, tree RSS MB) every 10 s
    t0 = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "heygemd", "--config", str(config), "once"],
                             cwd=root, env=env, stdout=subprocess.DEVNULL)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree, peak_pss
        while not done.wait(0.2):
            now = tree_rss_mb(child.pid)
            peak_tree = max(peak_tree, now)
            peak_pss = max(peak_pss, tree_pss_mb(child.pid))
            seconds = time.perf_counter() - t0
            if not timeline or seconds - timeline[-1][0] >= 10:
                timeline.append((round(seconds, 1), round(now, 1)))
                print(f"  {job}: {seconds:6.0f} s  tree RSS {now:7.1f} MB  peak "
                      f"{peak_tree:7.1f} MB, tree PSS peak {peak_pss:7.1f} MB", flush=True)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    child.returncode = os.waitstatus_to_exitcode(status)
    report = json.loads((root / "outbox" / job / "report.json").read_text())
    video = report["videos"][0]
    if video["status"] != "done":
        raise SystemExit(f"{job}: {video['status']} {video.get('reason_code')} "
                         f"{video.get('message')}")
    return {
        "wall_s": round(wall, 2), "job_s": job_seconds(root / "log" / "heygemd.log", report),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "peak_tree_rss_mb": round(peak_tree, 1),
        "peak_tree_pss_mb": round(peak_pss, 1),
        "exit": child.returncode, "encoder": video.get("encoder", {}),
        "stages_ms": video.get("timings_ms", {}), "metrics": video.get("metrics", {}),
        "frames": video.get("metrics", {}).get("frames"), "rss_timeline": timeline,
    }


def job_seconds(log_file: Path, report: dict[str, Any]) -> float:
    """The job's own seconds: its ``job.finish`` log line's duration (milliseconds; report.json's
    started_at and finished_at are whole seconds), else those."""
    for line in reversed(log_file.read_text(encoding="utf-8").splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "job.finish" and entry.get("job_id") == report["job_id"]:
            return round(float(entry["duration_ms"]) / 1000, 2)
    started = datetime.fromisoformat(report["started_at"])
    finished = datetime.fromisoformat(report["finished_at"])
    return round((finished - started).total_seconds(), 2)


def plain_same_length(template: Path, audio: Path, out: Path, settings: OutputSettings,
                      decoded: bool = False) -> float:
    """Seconds to decode ``template`` (looped) for as many frames as ``audio`` lasts and encode
    them with ``audio``'s sound into ``out`` with libx264 at ``settings``: the unavoidable
    media work of the job's output. ``decoded``: the decoder's frames are given to the encoder
    as they are (:func:`write_looped_decoded`), no round trip through RGB."""
    t0 = time.perf_counter()
    track = load_audio(audio, rate=settings.audio_rate, mono=False)
    x264 = settings.model_copy(update={"encoder": "libx264"})
    with VideoReader(template) as probe_reader:
        width, height, fps = probe_reader.width, probe_reader.height, probe_reader.fps
    total = frames_for(track.shape[-1] / settings.audio_rate, fps)
    with VideoWriter(out, width, height, fps, audio=track, audio_rate=settings.audio_rate,
                     settings=x264) as writer:
        (write_looped_decoded if decoded else write_looped)(template, writer, total)
    return time.perf_counter() - t0


def write_looped_decoded(template: Path, writer: VideoWriter, count: int) -> None:
    """:func:`write_looped` with PyAV's decoded frames (VideoWriter.write_decoded): the plainest
    decode + encode, the floor of what a job's media work could cost. The template's rotation
    is not applied (th10 and th08 have none)."""
    import av

    written = 0
    while written < count:
        with av.open(str(template)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # as VideoReader decodes: frame and slice threads
            for frame in container.decode(stream):
                if written >= count:
                    return
                writer.write_decoded(frame)
                written += 1


def write_looped(template: Path, writer: VideoWriter, count: int) -> None:
    """``count`` frames of ``template`` into ``writer``, decoded from its start again as often
    as it takes."""
    written = 0
    while written < count:
        with VideoReader(template) as reader:
            for frame in reader:
                if written >= count:
                    return
                writer.write(frame)
                written += 1


def timed(run: Any) -> tuple[Any, float | None]:
    """(``run()``, CPU seconds other processes used meanwhile)."""
    box: list[Any] = []

    def seconds() -> float:
        box.append(run())
        return 0.0

    _, others = with_others(seconds)
    return box[0], None if others is None else round(others, 2)


def speed_pair(tmp: Path, template: Path, output: OutputSettings, device: str,
               rounds: int = 1) -> dict[str, Any]:
    """``rounds`` rounds of: the plain decode + encode, a cold job (the template cache
    emptied), a warm job (audio never heard before), for ``template`` + en01; a row.

    The ratios are each round's jobs over that round's plain run (the one that began it),
    their median over the rounds: on a shared machine whose speed drifts by a third within
    minutes, a ratio of two medians taken minutes apart says more about the drift than about
    the job. Every round's figures are in the row (``rounds``); the times are medians; stages
    and metrics are the first round's, peak memory the largest of any round's, and the plain
    run on decoded frames is measured once, after the rounds."""
    root = tmp / template.stem[:4]
    root.mkdir()
    config = installation(root, output, device)
    cold_wav = own_track_as_wav(EN01, tmp / "en01.wav", 1.0)
    suffix = template.suffix
    each: list[dict[str, Any]] = []
    for n in range(rounds):
        plain, plain_others = timed(lambda: plain_same_length(
            template, cold_wav, tmp / "plain.mp4", output))
        shutil.rmtree(root / "cache", ignore_errors=True)
        cold, cold_others = timed(lambda n=n: run_once(config, f"cold{n}", {
            f"template{suffix}": template, "en01.wav": cold_wav}))
        warm_wav = own_track_as_wav(EN01, tmp / f"en01-warm{n}.wav", WARM_GAIN ** (n + 1))
        warm, warm_others = timed(lambda n=n, wav=warm_wav: run_once(config, f"warm{n}", {
            f"template{suffix}": template, "en01.wav": wav}))
        each.append({
            "plain_s": round(plain, 2), "cold": cold, "warm": warm,
            "others_cpu_s": {"plain": plain_others, "cold": cold_others, "warm": warm_others},
        })
        print(f"  {template.name[:4]} round {n + 1}/{rounds}: plain {plain:.2f} s, cold "
              f"{cold['wall_s']} s (job {cold['job_s']}), warm {warm['wall_s']} s (job "
              f"{warm['job_s']})", flush=True)
    decoded, decoded_others = timed(lambda: plain_same_length(
        template, cold_wav, tmp / "plain-decoded.mp4", output, decoded=True))

    def median(values: list[float]) -> float:
        return round(float(np.median(values)), 2)

    def ratios(run: str, field: str) -> list[float]:
        return [round(r[run][field] / r["plain_s"], 3) for r in each]

    first = each[0]
    cold, warm = first["cold"], first["warm"]
    row: dict[str, Any] = {
        "clip": template.name, "audio": EN01.name, "rounds_run": rounds,
        "plain_s": median([r["plain_s"] for r in each]),
        # against the frames given to x264 as decoded (no RGB): the stricter floor
        "plain_decoded_s": round(decoded, 2),
        "plain_mb": round((tmp / "plain.mp4").stat().st_size / 1e6, 2),
        "plain_decoded_mb": round((tmp / "plain-decoded.mp4").stat().st_size / 1e6, 2),
    }
    for run in ("cold", "warm"):  # cold_s, cold_ratio, ..., cold_job_s, cold_job_ratio, ...
        for field, name in (("wall_s", run), ("job_s", f"{run}_job")):
            row[f"{name}_s"] = median([r[run][field] for r in each])
            row[f"{name}_ratio"] = median(ratios(run, field))
            row[f"{name}_ratio_rounds"] = ratios(run, field)
        row[f"{run}_ratio_decoded"] = round(row[f"{run}_s"] / decoded, 2)
    row.update({
        "frames": cold["frames"], "encoder": cold["encoder"],
        "cold_stages_ms": cold["stages_ms"], "warm_stages_ms": warm["stages_ms"],
        "cold_metrics": cold["metrics"], "warm_metrics": warm["metrics"],
        "peak_tree_rss_mb": {"cold": max(r["cold"]["peak_tree_rss_mb"] for r in each),
                             "warm": max(r["warm"]["peak_tree_rss_mb"] for r in each)},
        "others_cpu_s": {"rounds": [r["others_cpu_s"] for r in each],
                         "plain_decoded": decoded_others},
        "rounds": [{"plain_s": r["plain_s"],
                    **{f"{run}_{field}": r[run][field] for run in ("cold", "warm")
                       for field in ("wall_s", "job_s")}} for r in each],
    })
    print(json.dumps(row), flush=True)
    return row


def looped_wav(source: Path, minutes: float, out: Path) -> Path:
    """``source``'s sound repeated to ``minutes`` long, a 16-bit 48 kHz WAV."""
    track = load_audio(source, rate=48000, mono=False)
    count = int(round(minutes * 60 * 48000))
    reps = -(-count // track.shape[-1])
    return write_wav(np.tile(track, (1, reps))[:, :count], out)


def looped_template(source: Path, minutes: float, out: Path) -> Path:
    """A template ``minutes`` long (what a dubbed talk brings: its own long recording): the
    frames of ``source`` over and over (a cut where it starts again, as an edited talk has)
    with its sound repeated, encoded with libx264 ultrafast at crf 18."""
    with VideoReader(source) as reader:
        width, height, fps = reader.width, reader.height, reader.fps
    sound = load_audio(source, rate=48000, mono=False)
    samples = int(round(minutes * 60 * 48000))
    track = np.tile(sound, (1, -(-samples // sound.shape[-1])))[:, :samples]
    fast = OutputSettings(encoder="libx264", preset="ultrafast", crf=18)
    with VideoWriter(out, width, height, fps, audio=track, audio_rate=48000,
                     settings=fast) as writer:
        write_looped(source, writer, frames_for(minutes * 60, fps))
    return out


def memory_row(tmp: Path, minutes: float, output: OutputSettings, device: str,
               long_template: bool = False) -> dict[str, Any]:
    """th10 + en02 looped to ``minutes``: one `heygemd once`, its peak memory. With
    ``long_template`` the template is as long as the sound (:func:`looped_template` of
    th10): the analysis and the selection then grow with the length too."""
    root = tmp / f"mem-{minutes:g}{'-long' if long_template else ''}"
    root.mkdir()
    config = installation(root, output, device)
    wav = looped_wav(EN02, minutes, tmp / f"en02-{minutes:g}min.wav")
    # a template at most a second under the longest one accepted (limits.max_video_seconds)
    longest = (load_settings(ROOT / "config.toml").limits.max_video_seconds - 1) / 60
    template_minutes = min(minutes, longest) if long_template else None
    template = looped_template(TH10, template_minutes, tmp / f"th10-{minutes:g}min.mp4") \
        if template_minutes is not None else TH10
    result, others = timed(lambda: run_once(config, "long", {
        f"template{TH10.suffix}": template, "speech.wav": wav}))
    row = {"minutes": minutes, "clip": TH10.name, "audio": f"{EN02.name} looped",
           "template": TH10.name if template_minutes is None else
           f"{TH10.name} looped to {template_minutes:.2f} min",
           "frames": result["frames"], "wall_s": result["wall_s"], "job_s": result["job_s"],
           "peak_rss_mb": result["peak_rss_mb"], "peak_tree_rss_mb": result["peak_tree_rss_mb"],
           "peak_tree_pss_mb": result["peak_tree_pss_mb"],
           "encoder": result["encoder"], "others_cpu_s": others,
           "rss_timeline": result["rss_timeline"]}
    print(json.dumps(row), flush=True)
    return row


def random_wav2lip(models: Path) -> None:
    """A randomly initialised Wav2Lip generator saved as the operator's checkpoint would be."""
    import torch

    from heygemd.engines.wav2lip.model import Wav2LipGenerator

    models.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": Wav2LipGenerator().state_dict(), "optimizer": {},
                "global_step": 0, "global_epoch": 0}, models / "wav2lip_gan.pth",
               _use_new_zipfile_serialization=False)


def minute_rows(tmp: Path, engine: str, output: OutputSettings, device: str) -> dict[str, Any]:
    """th10 + en02 (one minute of 1080x1920 output), cold then warm: seconds per minute."""
    root = tmp / f"minute-{engine}"
    root.mkdir()
    config = installation(root, output, device, engine)
    if engine == "wav2lip":
        random_wav2lip(root / "models")
    minutes = load_audio(EN02, rate=16000).shape[-1] / 16000 / 60
    cold_wav = own_track_as_wav(EN02, tmp / f"en02-{engine}.wav", 1.0)
    warm_wav = own_track_as_wav(EN02, tmp / f"en02-{engine}-warm.wav", WARM_GAIN)
    row: dict[str, Any] = {"engine": engine, "clip": TH10.name, "audio": EN02.name,
                           "output_minutes": round(minutes, 3)}
    for name, wav in (("cold", cold_wav), ("warm", warm_wav)):
        result, others = timed(lambda name=name, wav=wav: run_once(config, name, {
            f"template{TH10.suffix}": TH10, "speech.wav": wav}))
        row[name] = {**result, "others_cpu_s": others,
                     "wall_s_per_minute": round(result["wall_s"] / minutes, 1),
                     "job_s_per_minute": round(result["job_s"] / minutes, 1)}
        print(json.dumps({"engine": engine, "run": name, **row[name]}), flush=True)
    return row


class StackSampler:
    """Samples every thread's Python stack every ``interval`` seconds (wall clock, so time a
    thread waits counts where it waits): seconds per (thread, function), inclusive and self."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.inclusive: dict[tuple[str, str], int] = {}
        self.own: dict[tuple[str, str], int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stack-sampler", daemon=True)

    def __enter__(self) -> StackSampler:
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.seconds = time.perf_counter() - self._t0

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            names = {t.ident: t.name for t in threading.enumerate()}
            self.samples += 1
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                thread = names.get(ident, str(ident))
                seen: set[str] = set()
                top: Any = frame
                while frame is not None:
                    code = frame.f_code
                    where = f"{Path(code.co_filename).name}:{code.co_name}"
                    if where not in seen:
                        seen.add(where)
                        key = (thread, where)
                        self.inclusive[key] = self.inclusive.get(key, 0) + 1
                    frame = frame.f_back
                code = top.f_code
                key = (thread, f"{Path(code.co_filename).name}:{code.co_name}")
                self.own[key] = self.own.get(key, 0) + 1

    def table(self, counts: dict[tuple[str, str], int], top: int) -> dict[str, dict[str, float]]:
        """thread -> {function: seconds}, the ``top`` largest per thread."""
        per_sample = self.seconds / max(1, self.samples)
        threads: dict[str, dict[str, float]] = {}
        for (thread, where), n in sorted(counts.items(), key=lambda kv: -kv[1]):
            row = threads.setdefault(thread, {})
            if len(row) < top:
                row[where] = round(n * per_sample, 2)
        return threads


def _process_cpu_s() -> float:
    """CPU seconds of this process, all its threads."""
    times = os.times()
    return times.user + times.system


class ThreadCpu:
    """CPU seconds per thread of this process over a block, by thread name (Python threads by
    their names; threads the codecs and libraries start, x264's among them, as "native"), and
    of its descendants (the hearing worker). Threads that end inside the block are read every
    ``interval`` seconds: what the reads miss (the last moments of a thread that ends, a thread
    that lives less than an interval) is ``unattributed``, this process's CPU less the threads'.
    The benchmark's own threads (``measuring``) are apart from ``total``."""

    MEASURING = ("thread-cpu", "stack-sampler")

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.by_thread: dict[str, float] = {}
        self.descendants = self.unattributed = self.measuring = self.total = 0.0
        self._names: dict[int, str] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="thread-cpu", daemon=True)

    @staticmethod
    def _read() -> dict[int, float]:
        tick = os.sysconf("SC_CLK_TCK")
        out: dict[int, float] = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
        return out

    def _look(self) -> None:
        for t in threading.enumerate():
            if t.native_id is not None:
                self._names[t.native_id] = t.name
        self._last.update(self._read())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._look()

    def __enter__(self) -> ThreadCpu:
        from bench_engine import own_cpu_s

        self._before = self._read()
        self._process_before = _process_cpu_s()
        self._own_before = own_cpu_s()  # this process and its descendants
        self._look()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        from bench_engine import own_cpu_s

        self._stop.set()
        self._thread.join()
        self._look()
        process = _process_cpu_s() - self._process_before
        self.descendants = round(max(0.0, own_cpu_s() - self._own_before - process), 2)
        main = threading.main_thread().native_id
        seen = 0.0
        for tid, cpu in self._last.items():
            name = "MainThread" if tid == main else self._names.get(tid, "native")
            used = cpu - self._before.get(tid, 0.0)
            seen += used
            if name in self.MEASURING:
                self.measuring += used
            else:
                self.by_thread[name] = round(self.by_thread.get(name, 0.0) + used, 2)
        self.measuring = round(self.measuring, 2)
        self.unattributed = round(max(0.0, process - seen), 2)
        self.total = round(process - self.measuring + self.descendants, 2)

    def table(self) -> dict[str, float]:
        """Thread name -> CPU seconds, largest first, then the descendants', the unattributed,
        the total (the measuring threads left out) and the measuring threads'."""
        rows = dict(sorted(self.by_thread.items(), key=lambda kv: -kv[1]))
        return {**rows, "descendants": self.descendants, "unattributed": self.unattributed,
                "total": self.total, "measuring": self.measuring}


def profile_warm(tmp: Path, settings: Any, device: str, clip: Path = TH10) -> dict[str, Any]:
    """A warm ``clip`` + en01 job in this process under :class:`StackSampler` and
    :class:`ThreadCpu`, and the plain decode + encode's CPU seconds beside it."""
    from bench_engine import own_cpu_s, whole_job_seconds

    from heygemd.engines.base import EngineContext, resolve_device
    from heygemd.engines.builtin.engine import BuiltinEngine
    from heygemd.pipeline import Pipeline

    cache = tmp / "profile-cache"
    settings = settings.model_copy(update={
        "paths": settings.paths.model_copy(update={"cache": cache})})
    ctx = EngineContext.within(settings.paths, options=settings.engine.builtin,
                               faces=settings.faces, device=resolve_device(device))
    engine = BuiltinEngine(ctx)
    pipeline = Pipeline.from_settings(settings, engine)
    pipeline.startup()
    cold = whole_job_seconds(pipeline, clip, own_track_as_wav(EN01, tmp / "p-cold.wav"),
                             tmp / "p-cold.mp4")
    engine.forget_heard()
    wav = own_track_as_wav(EN01, tmp / "p-warm.wav", WARM_GAIN)
    with StackSampler() as sampler, ThreadCpu() as cpu:
        warm = whole_job_seconds(pipeline, clip, wav, tmp / "p-warm.mp4")
    pipeline.shutdown()
    before = own_cpu_s()
    plain = plain_same_length(clip, EN01, tmp / "p-plain.mp4", settings.output)
    plain_cpu = own_cpu_s() - before
    return {"clip": clip.name, "audio": EN01.name, "cold_s": round(cold, 2),
            "warm_s": round(warm, 2), "plain_s": round(plain, 2),
            "warm_cpu_s": cpu.table(),
            "plain_cpu_s": round(plain_cpu, 2), "samples": sampler.samples,
            "inclusive_s": sampler.table(sampler.inclusive, 40),
            "self_s": sampler.table(sampler.own, 25)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["all", "speed", "memory", "minute", "profile"],
                        default="all")
    parser.add_argument("--engine", nargs="*", default=["builtin", "wav2lip"],
                        help="--part minute: the engines to time")
    parser.add_argument("--minutes", type=float, nargs="*", default=[1.0, 2.0, 5.0])
    parser.add_argument("--rounds", type=lambda v: max(1, int(v)), default=3,
                        help="--part speed: rounds of plain, cold and warm per clip (the "
                             "ratios: each round's job over its plain run, the median)")
    parser.add_argument("--long-template", action="store_true",
                        help="--part memory: also a row per --minutes with a template as long "
                             "as the sound (a dubbed talk's own recording)")
    parser.add_argument("--clip", choices=["th10", "th08"], default="th10",
                        help="--part profile: the template")
    parser.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"],
                        help="the jobs' engine.device (default: config.toml's)")
    args = parser.parse_args()
    settings = load_settings(ROOT / "config.toml")
    output, device = settings.output, args.device or settings.engine.device
    result: dict[str, Any] = {"machine": machine(), "device": device,
                              "output": output.model_dump(), "started": time.strftime("%c")}
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-speed-{args.part}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    with tempfile.TemporaryDirectory(prefix="heygemd-speed-") as tmp_name:
        tmp = Path(tmp_name)
        if args.part in ("all", "speed"):
            result["speed"] = []
            for clip in (TH10, TH08):
                result["speed"].append(speed_pair(tmp, clip, output, device, args.rounds))
                path.write_text(json.dumps(result, indent=2))  # a row at a time: kept if cut
        if args.part in ("all", "memory"):
            result["memory"] = []
            for minutes in args.minutes:
                result["memory"].append(memory_row(tmp, minutes, output, device))
                result["memory_mb_per_minute"] = slope(result["memory"])
                path.write_text(json.dumps(result, indent=2))
            if args.long_template:
                result["memory_long_template"] = []
                for minutes in args.minutes:
                    result["memory_long_template"].append(
                        memory_row(tmp, minutes, output, device, long_template=True))
                    result["memory_long_template_mb_per_minute"] = \
                        slope(result["memory_long_template"])
                    path.write_text(json.dumps(result, indent=2))
        if args.part == "profile":
            result["profile"] = profile_warm(tmp, settings, device,
                                             {"th10": TH10, "th08": TH08}[args.clip])
        if args.part == "minute":
            result["minute"] = []
            for engine in args.engine:
                result["minute"].append(minute_rows(tmp, engine, output, device))
                path.write_text(json.dumps(result, indent=2))
    result["finished"] = time.strftime("%c")
    path.write_text(json.dumps(result, indent=2))
    print(f"written: {path}")


def slope(rows: list[dict[str, Any]]) -> float | None:
    """Peak tree RSS growth per minute of output (least squares), MB; None under two rows."""
    if len(rows) < 2:
        return None
    minutes = np.array([r["minutes"] for r in rows], float)
    peaks = np.array([r["peak_tree_rss_mb"] for r in rows], float)
    return round(float(np.polyfit(minutes, peaks, 1)[0]), 1)


if __name__ == "__main__":
    main()
