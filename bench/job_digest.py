"""Digests of what whole jobs make, to show that a change of structure changed no output.

    .venv/bin/python bench/job_digest.py [--out FILE]

Runs `heygemd once` (builtin engine, CPU) on two jobs, th08 + en01 and th05 + zh01, in a temp
installation, then prints, per made video, the sha256 of its decoded frames (RGB) and of its
decoded sound, and the job's status. Run it before and after a restructuring: equal digests
mean the same frames and sound (the MP4 bytes themselves carry a muxer tag and times).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
JOBS = {
    "th08-en01": ("talking/th08_woman_older_en_real3dportrait_May5s.mp4",
                  "speech/en01_male_jfk_inaugural_11s.flac"),
    "th05-zh01": ("talking/th05_woman_flagbg_en_sadtalker_WDA_AOC.mp4",
                  "speech/zh01_chinese_news_8s_sadtalker.wav"),
}


def decoded_digests(path: Path) -> dict[str, str | int]:
    frames, sound = hashlib.sha256(), hashlib.sha256()
    count = 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.update(frame.to_ndarray(format="rgb24").tobytes())
            count += 1
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            sound.update(frame.to_ndarray().tobytes())
    return {"frames": count, "frames_sha256": frames.hexdigest(),
            "sound_sha256": sound.hexdigest()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="also write the digests here (JSON)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="heygemd-digest-") as tmp:
        root = Path(tmp)
        (root / "config.toml").write_text(
            '[paths]\ninbox = "inbox"\noutbox = "outbox"\nwork = "work"\nstate = "state"\n'
            'log_file = "log/heygemd.log"\ncache = "cache"\n[watch]\nsettle_seconds = 0.5\n'
            '[daemon]\nmin_free_gb = 0.0\n[engine]\ndevice = "cpu"\n[logging]\nstdout = false\n',
            encoding="utf-8")
        for job, files in JOBS.items():
            folder = root / "inbox" / job
            folder.mkdir(parents=True)
            for rel in files:
                shutil.copyfile(MEDIA / rel, folder / Path(rel).name)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-m", "heygemd", "--config", str(root / "config.toml"),
                        "once"], cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
        result = {}
        for job in JOBS:
            report = json.loads((root / "outbox" / job / "report.json").read_text())
            for video in report["videos"]:
                made = root / "outbox" / job / video["output"] if video.get("output") else None
                result[f"{job}/{video['name']}"] = {
                    "status": video["status"],
                    **(decoded_digests(made) if made is not None else {}),
                }
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
