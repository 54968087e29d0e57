"""CPU and GPU agree: the generator (fp32 and the fp16 used in production) and compose."""

from __future__ import annotations

import pytest
import torch

from heygemd.engines import compose
from heygemd.engines.wav2lip.model import Wav2LipGenerator

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.fixture(scope="module")
def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(8, 1, 80, 16).clamp(-4, 4), torch.rand(8, 6, 96, 96)


@pytest.fixture(scope="module")
def model() -> Wav2LipGenerator:
    torch.manual_seed(0)
    net = Wav2LipGenerator()
    for module in net.modules():  # realistic BatchNorm statistics keep activations alive
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_var.uniform_(0.5, 2.0)
            module.running_mean.uniform_(-0.1, 0.1)
    return net.eval()


def test_generator_fp32_agrees(model: Wav2LipGenerator, inputs: tuple[torch.Tensor, ...]) -> None:
    mel, face = inputs
    with torch.inference_mode():
        cpu = model(mel, face)
        gpu = model.cuda()(mel.cuda(), face.cuda()).cpu()
    model.cpu()
    assert torch.allclose(cpu, gpu, atol=2e-3)


def test_generator_fp16_is_close(model: Wav2LipGenerator, inputs: tuple[torch.Tensor, ...]) -> None:
    mel, face = inputs
    half = Wav2LipGenerator().eval()
    half.load_state_dict(model.state_dict())
    half = half.cuda().half()
    with torch.inference_mode():
        cpu = model(mel, face)
        gpu = half(mel.cuda().half(), face.cuda().half()).float().cpu()
    assert (cpu - gpu).abs().max() < 0.02  # under 5 grey levels


def test_compose_agrees() -> None:
    torch.manual_seed(1)
    angles = torch.linspace(0, 2 * torch.pi, 41)[:-1]
    outline = torch.stack([0.5 + 0.3 * angles.cos(), 0.6 + 0.3 * angles.sin()], dim=1)
    polygons = outline.repeat(4, 1, 1) + torch.rand(4, 1, 2) * 0.05
    cut = torch.full((4,), 0.5)
    source, reference = torch.rand(4, 3, 96, 96), torch.rand(4, 3, 96, 96)
    mask_cpu = compose.lower_face_mask(polygons, cut, 96, 0.06)
    mask_gpu = compose.lower_face_mask(polygons.cuda(), cut.cuda(), 96, 0.06).cpu()
    gap = (mask_cpu - mask_gpu).abs()
    assert float(gap.mean()) < 1e-4 and float(gap.max()) < 0.1  # at most an edge pixel flips
    matched_cpu = compose.match_colour(source, reference, mask_cpu, "lab")
    matched_gpu = compose.match_colour(source.cuda(), reference.cuda(), mask_cpu.cuda(), "lab")
    assert torch.allclose(matched_cpu, matched_gpu.cpu(), atol=1e-3)
