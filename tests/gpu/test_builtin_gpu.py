"""The builtin engine's warp and blend give the same pixels on CUDA as on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heygemd.engines.builtin import render, warp

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def _batch() -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    sources = rng.integers(0, 256, size=(4, 96, 96, 3), dtype=np.uint8)
    src = np.array([[10.0, 10], [80, 12], [12, 84], [84, 86], [48, 50]])
    triangles = np.array([[0, 1, 4], [1, 3, 4], [3, 2, 4], [2, 0, 4]])
    affines, maps = [], []
    for _ in range(4):
        dst = src + rng.normal(0, 3, size=src.shape)
        affines.append(warp.triangle_affines(src, dst, triangles))
        maps.append(warp.triangle_map(dst, triangles, 96, 96))
    return sources, affines, np.stack(maps)


def test_warp_matches_cpu() -> None:
    sources, affines, maps = _batch()
    cpu, cov_cpu = warp.warp_batch(sources, affines, maps, "cpu")
    gpu, cov_gpu = warp.warp_batch(sources, affines, maps, "cuda")
    assert torch.equal(cov_cpu, cov_gpu.cpu())
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-2)


def test_blend_weights_match_cpu() -> None:
    polygon = np.array([[25.0, 38], [102, 32], [96, 115], [38, 109]])
    hard = torch.from_numpy(render.hard_masks([polygon, polygon + 3], 128))
    covered = torch.ones(2, 1, 128, 128)
    a_cpu, r_cpu = render.blend_weights(hard, covered)
    a_gpu, r_gpu = render.blend_weights(hard.cuda(), covered.cuda())
    assert torch.allclose(a_cpu, a_gpu.cpu(), atol=1e-5)
    assert torch.allclose(r_cpu, r_gpu.cpu(), atol=1e-5)
