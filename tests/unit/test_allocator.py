"""The allocator settings: applied through glibc's mallopt in a fresh process, never over the
operator's own environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

SHOW = ("import json; from heygemd import allocator; print(json.dumps(allocator.for_frames()))")


def _run(env: dict[str, str]) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", SHOW], capture_output=True, text=True,
                          check=True, timeout=60, cwd=ROOT,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env})
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_frames_are_mapped_and_arenas_few() -> None:
    assert _run({}) == {"MALLOC_MMAP_THRESHOLD_": 4 * 1024 * 1024, "MALLOC_ARENA_MAX": 2}


def test_the_operators_environment_wins() -> None:
    assert _run({"MALLOC_ARENA_MAX": "4"}) == {"MALLOC_MMAP_THRESHOLD_": 4 * 1024 * 1024}
    assert _run({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"}) == {
        "MALLOC_ARENA_MAX": 2}
