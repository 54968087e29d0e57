"""The allocator settings: applied through glibc's mallopt in a fresh process, never over the
operator's own environment; free heap pages given back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

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


GIVE_BACK = """
import json, numpy as np
from heygemd import allocator
allocator.for_frames()
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
blocks = [np.ones(2**20, np.uint8) for _ in range(200)]  # 1 MB each: in the heaps
kept = blocks[9::10]  # every tenth stays: the freed ones are holes, not the heap's top
del blocks
before = rss()
given = allocator.give_back()
print(json.dumps({"given": given, "freed_mb": before - rss()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_free_pages_between_blocks_in_use_go_back_to_the_system() -> None:
    done = subprocess.run([sys.executable, "-c", GIVE_BACK], capture_output=True, text=True,
                          check=True, timeout=60, cwd=ROOT,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)})
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["given"] and result["freed_mb"] > 150
