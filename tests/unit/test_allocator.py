"""The allocator settings: applied through glibc's mallopt in a fresh process, never over the
operator's own environment; free heap pages given back."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import pytest

from heygemd import allocator
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


def test_the_threshold_maps_frames_of_4_mb_or_more_and_keeps_smaller_videos_blocks() -> None:
    mb = 1024 * 1024
    assert allocator.threshold_for([512 * 512 * 3]) == 32 * mb
    assert allocator.threshold_for([1280 * 720 * 3]) == 32 * mb
    assert allocator.threshold_for([512 * 512 * 3, 1920 * 1080 * 3]) == 4 * mb


MAPPED = """
import ctypes, json, os, numpy as np
from heygemd import allocator

class Info(ctypes.Structure):  # glibc's struct mallinfo2
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info

def mapped(size):
    # whether a block of ``size`` bytes is mapped by itself (else it is in a heap)
    before = libc.mallinfo2().hblkhd
    block = np.empty(size, np.uint8)
    grown = libc.mallinfo2().hblkhd - before
    del block
    return grown >= size

allocator.for_frames()
seen = {"none": mapped(6 << 20)}
with allocator.frames_of(512, 512):
    seen["512"] = [mapped(6 << 20), mapped(30 << 20), mapped(40 << 20)]
    with allocator.frames_of(1920, 1080):
        seen["512 and 1080p"] = mapped(6 << 20)
    seen["512 again"] = mapped(6 << 20)
    allocator.for_frames()  # set again meanwhile (a second pipeline built in the process)
    seen["512, set again"] = mapped(6 << 20)
with allocator.frames_of(1080, 1920):
    seen["1080p"] = mapped(6 << 20)
try:
    with allocator.frames_of(512, 512):
        raise ValueError("the video failed")
except ValueError:
    pass
seen["after"] = mapped(6 << 20)
print(json.dumps(seen))
"""

MALLINFO2 = hasattr(ctypes.CDLL(None), "mallinfo2")  # glibc 2.33 and later


def _mapped(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", MAPPED], capture_output=True, text=True,
                          check=True, timeout=60, cwd=ROOT,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env})
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not MALLINFO2, reason="glibc's mallinfo2 (2.33 and later)")
def test_blocks_are_mapped_while_a_video_with_frames_that_large_is_made() -> None:
    assert _mapped({}) == {
        "none": True,  # between videos: 4 MB and more mapped
        "512": [False, False, True],  # small frames: blocks under 32 MB in the heaps
        "512 and 1080p": True,  # a 1080p video beside it: its frames mapped
        "512 again": False,
        "512, set again": False,
        "1080p": True,
        "after": True,  # a video that failed left nothing behind
    }


@pytest.mark.skipif(not MALLINFO2, reason="glibc's mallinfo2 (2.33 and later)")
def test_the_operators_threshold_is_kept_while_videos_are_made() -> None:
    seen = _mapped({"MALLOC_MMAP_THRESHOLD_": str(4 * 1024 * 1024)})
    assert seen["512"] == [True, True, True] and seen["512 again"] is True


HOLES = """
import json, numpy as np
from heygemd import allocator
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
allocator.for_frames()
freed = []
for beside in (False, True):  # alone; with a 1080p video begun meanwhile that goes on after
    large = allocator.frames_of(1920, 1080)
    with allocator.frames_of(512, 512):
        blocks = [np.ones(8 << 20, np.uint8) for _ in range(40)]  # 8 MB each: the heaps
        if beside:
            large.__enter__()
        kept = blocks[4::5]  # every fifth stays: the freed ones are holes, not the top
        del blocks
        inside = rss()
    freed.append(inside - rss())
    if beside:
        large.__exit__(None, None, None)
print(json.dumps({"freed_mb": freed}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_a_small_videos_freed_blocks_go_back_to_the_system_when_it_ends() -> None:
    done = subprocess.run([sys.executable, "-c", HOLES], capture_output=True, text=True,
                          check=True, timeout=60, cwd=ROOT,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)})
    freed = json.loads(done.stdout.strip().splitlines()[-1])["freed_mb"]
    assert min(freed) > 200  # of 256 freed, alone and beside a 1080p video
