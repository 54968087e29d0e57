"""The Wav2Lip generator, laid out so that the published checkpoints load unchanged.

Attribute names and module nesting are part of the contract: a checkpoint's state_dict keys
(``face_encoder_blocks.0.0.conv_block.0.weight``, ``audio_encoder.3.conv_block.1.running_mean``,
``output_block.1.weight``, ...) are derived from them. Inputs and outputs (all float32/float16):

    mel:  (B, 1, 80, 16)  normalised log-mel window, values in [-4, 4]
    face: (B, 6, 96, 96)  [masked crop, reference crop], BGR channel order, values in [0, 1]
    out:  (B, 3, 96, 96)  BGR in [0, 1]
"""

from __future__ import annotations

import torch
from torch import nn

FACE_SIZE = 96  # the generator's square face input/output, in pixels
MEL_BANDS = 80
MEL_STEPS = 16  # mel columns per video frame (200 ms at 80 columns/s)


class ConvUnit(nn.Module):
    """Conv2d + BatchNorm2d + ReLU; a residual unit adds its input before the ReLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int,
        stride: int | tuple[int, int],
        padding: int,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout)
        )
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class UpConvUnit(nn.Module):
    """ConvTranspose2d + BatchNorm2d + ReLU."""

    def __init__(
        self, cin: int, cout: int, kernel_size: int, stride: int, padding: int, output_padding: int
    ) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding, output_padding),
            nn.BatchNorm2d(cout),
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


def _down(cin: int, cout: int, n_residual: int) -> nn.Sequential:
    """A stride-2 conv followed by ``n_residual`` residual 3x3 units (halves H and W)."""
    units = [ConvUnit(cin, cout, 3, 2, 1)]
    units += [ConvUnit(cout, cout, 3, 1, 1, residual=True) for _ in range(n_residual)]
    return nn.Sequential(*units)


def _up(cin: int, cout: int, n_residual: int) -> nn.Sequential:
    """A stride-2 transposed conv followed by ``n_residual`` residual units (doubles H and W)."""
    units: list[nn.Module] = [UpConvUnit(cin, cout, 3, 2, 1, 1)]
    units += [ConvUnit(cout, cout, 3, 1, 1, residual=True) for _ in range(n_residual)]
    return nn.Sequential(*units)


def _residuals(channels: int, count: int) -> list[nn.Module]:
    return [ConvUnit(channels, channels, 3, 1, 1, residual=True) for _ in range(count)]


def _face_encoder() -> nn.ModuleList:
    return nn.ModuleList(
        [
            nn.Sequential(ConvUnit(6, 16, 7, 1, 3)),  # 96x96
            _down(16, 32, 2),  # 48
            _down(32, 64, 3),  # 24
            _down(64, 128, 2),  # 12
            _down(128, 256, 2),  # 6
            _down(256, 512, 1),  # 3
            nn.Sequential(ConvUnit(512, 512, 3, 1, 0), ConvUnit(512, 512, 1, 1, 0)),  # 1
        ]
    )


def _audio_encoder() -> nn.Sequential:
    return nn.Sequential(
        ConvUnit(1, 32, 3, 1, 1),  # 80x16
        *_residuals(32, 2),
        ConvUnit(32, 64, 3, (3, 1), 1),  # 27x16
        *_residuals(64, 2),
        ConvUnit(64, 128, 3, 3, 1),  # 9x6
        *_residuals(128, 2),
        ConvUnit(128, 256, 3, (3, 2), 1),  # 3x3
        *_residuals(256, 1),
        ConvUnit(256, 512, 3, 1, 0),  # 1x1
        ConvUnit(512, 512, 1, 1, 0),
    )


def _face_decoder() -> nn.ModuleList:
    return nn.ModuleList(
        [
            nn.Sequential(ConvUnit(512, 512, 1, 1, 0)),  # 1x1
            nn.Sequential(UpConvUnit(1024, 512, 3, 1, 0, 0), *_residuals(512, 1)),  # 3x3
            _up(1024, 512, 2),  # 6
            _up(768, 384, 2),  # 12
            _up(512, 256, 2),  # 24
            _up(320, 128, 2),  # 48
            _up(160, 64, 2),  # 96
        ]
    )


class Wav2LipGenerator(nn.Module):
    """U-Net face generator conditioned on a mel window (see module docstring for shapes)."""

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder_blocks = _face_encoder()
        self.audio_encoder = _audio_encoder()
        self.face_decoder_blocks = _face_decoder()
        self.output_block = nn.Sequential(
            ConvUnit(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid()
        )

    def forward(self, mel: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        """mel: (B, 1, 80, 16); face: (B, 6, 96, 96) -> (B, 3, 96, 96) in [0, 1]."""
        x = self.audio_encoder(mel)  # (B, 512, 1, 1)
        skips = []
        feat = face
        for block in self.face_encoder_blocks:
            feat = block(feat)
            skips.append(feat)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), skips.pop()), dim=1)
        out: torch.Tensor = self.output_block(x)
        return out


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters (buffers such as BatchNorm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())
