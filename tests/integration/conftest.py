"""Daemon fixtures: tiny real job media (a real face, real speech), temp inbox/outbox configs,
and a handle on a real `heygemd run` subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from heygemd.cli import build_pipeline
from heygemd.daemon.service import Daemon
from heygemd.settings import Settings, load_settings
from tests.conftest import ROOT

CLIP_SIZE = 256  # >= validation.min_short_side (240)
CLIP_SECONDS = 1.6
SPEECH_SECONDS = 1.5
FACE_CLIP = "talking/th08_woman_older_en_real3dportrait_May5s.mp4"
SPEECH = "speech/en02_male_news_commentary_60s_musetalk_eng.wav"


def _resize(frame: np.ndarray, side: int) -> np.ndarray:
    import cv2

    return cv2.resize(frame, (side, side), interpolation=cv2.INTER_AREA)


def make_face_video(source: Path, target: Path, seconds: float = CLIP_SECONDS) -> None:
    """The first ``seconds`` of ``source`` scaled to CLIP_SIZE square, H.264, no audio."""
    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        stream_in = src.streams.video[0]
        fps = Fraction(25)
        stream = out.add_stream("libx264", rate=fps)
        stream.width = stream.height = CLIP_SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for n, frame in enumerate(src.decode(stream_in)):
            if n >= round(seconds * float(fps)):
                break
            small = _resize(frame.to_ndarray(format="rgb24"), CLIP_SIZE)
            for packet in stream.encode(av.VideoFrame.from_ndarray(small, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def make_speech(source: Path, target: Path, start: float, seconds: float) -> None:
    """``seconds`` of ``source`` from ``start`` as 16 kHz mono 16-bit WAV."""
    rate = 16000
    chunks = []
    with av.open(str(source)) as src:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        for frame in src.decode(audio=0):
            for piece in resampler.resample(frame):
                chunks.append(piece.to_ndarray().reshape(-1))
    samples = np.concatenate(chunks)[int(start * rate):int((start + seconds) * rate)]
    with av.open(str(target), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def make_job_media(shared: Path, target: Path) -> dict[str, Path]:
    """face.mp4 (real face), speech.wav (real speech), noface.mp4 (no face: validation refuses),
    silence.wav (no speech: refused), broken.mp4 (not a video)."""
    target.mkdir(parents=True, exist_ok=True)
    files = {name: target / name for name in
             ("face.mp4", "speech.wav", "noface.mp4", "silence.wav", "broken.mp4")}
    make_face_video(shared / FACE_CLIP, files["face.mp4"])
    make_speech(shared / SPEECH, files["speech.wav"], 2.0, SPEECH_SECONDS)
    _make_flat_video(files["noface.mp4"])
    _make_silence(files["silence.wav"])
    files["broken.mp4"].write_bytes(b"this is not a video\n" * 100)
    return files


def _make_flat_video(target: Path) -> None:
    with av.open(str(target), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width = stream.height = CLIP_SIZE
        stream.pix_fmt = "yuv420p"
        for n in range(40):
            img = np.full((CLIP_SIZE, CLIP_SIZE, 3), 60 + n, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _make_silence(target: Path) -> None:
    with av.open(str(target), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 24000), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


BASE_CONFIG: dict[str, dict[str, Any]] = {
    "paths": {"inbox": "inbox", "outbox": "outbox", "work": "work", "state": "state",
              "log_file": "log/heygemd.log"},
    "watch": {"settle_seconds": 0.6, "rescan_seconds": 1.0, "poll_interval_seconds": 0.3},
    "daemon": {"min_free_gb": 0.0, "idle_tick_seconds": 0.2, "graceful_timeout_seconds": 30.0},
    "engine": {"name": "tests.fakes:EchoEngine", "device": "cpu"},
    "output": {"preset": "ultrafast"},
    "logging": {"level": "info"},
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def write_config(path: Path, overrides: dict[str, dict[str, Any]]) -> None:
    sections = {k: dict(v) for k, v in BASE_CONFIG.items()}
    for section, values in overrides.items():
        sections.setdefault(section, {}).update(values)
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(v)}" for key, v in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` every 0.1 s until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class Harness:
    """A temp installation (inbox, outbox, work, state, config) and its daemon processes."""

    root: Path
    media: dict[str, Path]
    env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def configure(self, **overrides: dict[str, Any]) -> None:
        write_config(self.root / "config.toml", overrides)

    def start(self, *, command: str = "run", ready: bool = True) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env}
        n = len(self.procs)
        argv = [sys.executable, "-m", "heygemd", "--config", str(self.root / "config.toml"),
                command]
        with open(self.root / f"stdout{n}.log", "wb") as out, \
                open(self.root / f"stderr{n}.log", "wb") as err:
            proc = subprocess.Popen(argv, cwd=self.root, env=env, stdout=out, stderr=err)
        self.procs.append(proc)
        if ready:
            wait_for(lambda: proc.poll() is not None or self.log_has("daemon.started", n),
                     60, "daemon start")
            assert proc.poll() is None, self.stderr(n)
        return proc

    def log_lines(self, n: int = -1) -> list[dict[str, Any]]:
        index = n if n >= 0 else len(self.procs) - 1
        path = self.root / f"stdout{index}.log"
        if not path.exists():
            return []
        lines = []
        for raw in path.read_bytes().splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        return lines

    def log_has(self, event: str, n: int = -1, **fields: Any) -> bool:
        return any(
            line.get("event") == event and all(line.get(k) == v for k, v in fields.items())
            for line in self.log_lines(n)
        )

    def stderr(self, n: int = -1) -> str:
        index = n if n >= 0 else len(self.procs) - 1
        return (self.root / f"stderr{index}.log").read_text(errors="replace")[-3000:]

    def make_job(self, name: str, files: dict[str, str], *, where: Path | None = None) -> Path:
        """Copy media (``{target name: media key}``) into ``inbox/name`` (or ``where/name``)."""
        folder = (where or self.inbox) / name
        folder.mkdir(parents=True)
        for target, key in files.items():
            shutil.copyfile(self.media[key], folder / target)
        return folder

    def good_job(self, name: str, *, where: Path | None = None) -> Path:
        return self.make_job(name, {"speech.wav": "speech.wav", "face.mp4": "face.mp4"},
                             where=where)

    def published(self) -> dict[str, dict[str, Any]]:
        """outbox folder name -> its report.json (only complete, visible folders)."""
        out = {}
        for folder in self.outbox.iterdir():
            report = folder / "report.json"
            if folder.is_dir() and not folder.name.startswith(".") and report.is_file():
                out[folder.name] = json.loads(report.read_text(encoding="utf-8"))
        return out

    def wait_outbox_clean(self, timeout: float = 10) -> None:
        """Nothing hidden stays in the outbox. The status files are rewritten through hidden
        temp files (about once a second while the daemon runs), so one may be mid-write at any
        moment; a lasting one is a leftover."""
        wait_for(lambda: not any(p.name.startswith(".") for p in self.outbox.iterdir()),
                 timeout, "no hidden files left in the outbox")

    def wait_published(self, count: int, timeout: float = 60) -> dict[str, dict[str, Any]]:
        return wait_for(lambda: len(self.published()) >= count and self.published(), timeout,
                        f"{count} published jobs")

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture(scope="session")
def job_media(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_job_media(shared_media, tmp_path_factory.mktemp("job-media"))


@pytest.fixture
def harness(tmp_path: Path, job_media: dict[str, Path]) -> Iterator[Harness]:
    h = Harness(tmp_path, job_media)
    h.inbox.mkdir()
    h.configure()
    yield h
    h.close()


@pytest.fixture
def settings(harness: Harness) -> Settings:
    """The harness's config as the daemon would load it."""
    return load_settings(harness.root / "config.toml")


@pytest.fixture
def daemon(settings: Settings) -> Iterator[Daemon]:
    """A Daemon driven tick by tick in this process (no threads), shut down after the test."""
    d = Daemon(settings, build_pipeline, env={})
    yield d
    if d._store is not None:
        d.shutdown()


def run_until_idle(daemon: Daemon, ticks: int = 40) -> None:
    """Tick until there is nothing left to do (or ``ticks`` run out)."""
    for _ in range(ticks):
        idle = not daemon.tick() and daemon.store.next_queued() is None
        if idle and not daemon.intake.candidates:
            return
        time.sleep(0.1)


def tick_until_work(daemon: Daemon, ticks: int = 60) -> None:
    """Tick until one tick did a unit of work (a job ran, or was interrupted)."""
    for _ in range(ticks):
        if daemon.tick():
            return
        time.sleep(0.1)
