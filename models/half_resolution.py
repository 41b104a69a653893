"""The fixed ends of the half-resolution trunk: RGB ↔ JPEG YCbCr and space-to-depth, inside the graph.

A 4:2:0 JPEG codes luma at full resolution and Cb/Cr at half resolution, in 8×8 blocks (16×16 image pixels). The
half-resolution trunk works on the grid where chroma lives: luma as space-to-depth ×2 (4 channels), Cb and Cr
averaged over 2×2 (their coded resolution), so a layer costs ¼ of its full-resolution cost for the same width and
sees twice the distance in image pixels. Both ends are fixed (not learned) linear maps, so the exported ONNX graph
keeps the RGB-in, RGB-out contract of the paper's generator and every consumer works unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from common.color import JFIF_RGB_TO_YCBCR as RGB_TO_YCBCR  # values in [0, 1], chroma centred on 0.5

CHROMA_OFFSET = 0.5


def trunk_channels(in_channels: int) -> int:
    """Channels the trunk reads: 4 luma sub-pixels, plus Cb and Cr for colour (6 for RGB, 4 for gray)."""
    return 6 if in_channels == 3 else 4


class HalfResolutionInput(nn.Module):
    """N×C×H×W in [0, 1] (C = 3 RGB or 1 gray; H, W even) → N×(6|4)×H/2×W/2: luma space-to-depth, chroma 2×2 means."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.colour = in_channels == 3
        if self.colour:
            self.register_buffer("matrix", torch.tensor(RGB_TO_YCBCR).view(3, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.colour:
            return F.pixel_unshuffle(x, 2)
        ycc = F.conv2d(x, self.matrix)
        luma = F.pixel_unshuffle(ycc[:, :1], 2)
        chroma = F.avg_pool2d(ycc[:, 1:], 2) + CHROMA_OFFSET
        return torch.cat([luma, chroma], dim=1)


class HalfResolutionOutput(nn.Module):
    """N×(4·C)×H/2×W/2 residual (per component 4 sub-pixels: Y, Cb, Cr or gray) → N×C×H×W residual in RGB (or gray).

    Depth-to-space gives luma its full resolution back; chroma gets learned (sub-pixel) upsampling the same way.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.colour = in_channels == 3
        if self.colour:
            inverse = torch.linalg.inv(torch.tensor(RGB_TO_YCBCR, dtype=torch.float64)).float()
            self.register_buffer("matrix", inverse.view(3, 3, 1, 1), persistent=False)

    def forward(self, residual: torch.Tensor) -> torch.Tensor:
        full = F.pixel_shuffle(residual, 2)
        return F.conv2d(full, self.matrix) if self.colour else full


def pad_to_even(x: torch.Tensor) -> torch.Tensor:
    """Replicate the last row/column of an odd-sized N×C×H×W tensor so that H and W are even.

    Unconditional (a copy even when nothing is padded) so that the exported graph computes the padding from the
    input's shape and takes odd sizes too.
    """
    h, w = x.shape[-2:]
    return F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
