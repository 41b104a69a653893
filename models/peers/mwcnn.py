"""MWCNN (Liu, Zhang, Zhang, Lin, Zuo, CVPRW 2018): multi-level wavelet CNN, a U-Net whose down/up-sampling
is the orthogonal Haar DWT/IWT (lossless: C×H×W ↔ 4C×H/2×W/2).

Layout of the authors' PyTorch release (24 3×3 conv layers, 64 base channels, three DWT levels, some
convs dilated 2/3, sum skips across levels, global residual):

    head C→64 · [d2, d1]64 → DWT → 256→128 · [d2, d1]128 → DWT → 512→256 · [d2, d1]256 → DWT →
    1024→512 · [d2, d3]512 · [d3, d2]512 · 512→1024 → IWT (+) → [d2, d1]256 · 256→512 → IWT (+) →
    [d2, d1]128 · 128→256 → IWT (+) → [d2, d1]64 · tail 64→C (+ input)

All convs but the tail are followed by ReLU. 24.93 M parameters for C = 1 (WCDGAN's Table 3: 25.1 M).
Input sides must be multiples of 8 (pad before, crop after: :func:`pad_to_multiple`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class MWCNNConfig:
    in_channels: int = 1
    features: int = 64


def haar_dwt(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D Haar DWT: N×C×H×W (H, W even) → N×4C×H/2×W/2 as [LL, HL, LH, HH] channel groups."""
    a = x[:, :, 0::2, 0::2] / 2
    b = x[:, :, 1::2, 0::2] / 2
    c = x[:, :, 0::2, 1::2] / 2
    d = x[:, :, 1::2, 1::2] / 2
    return torch.cat((a + b + c + d, -a - b + c + d, -a + b - c + d, a - b - c + d), dim=1)


def haar_iwt(y: torch.Tensor) -> torch.Tensor:
    """Exact inverse of :func:`haar_dwt`: N×4C×h×w → N×C×2h×2w."""
    ll, hl, lh, hh = torch.chunk(y, 4, dim=1)
    n, c, h, w = ll.shape
    out = y.new_empty(n, c, 2 * h, 2 * w)
    out[:, :, 0::2, 0::2] = (ll - hl - lh + hh) / 2
    out[:, :, 1::2, 0::2] = (ll - hl + lh - hh) / 2
    out[:, :, 0::2, 1::2] = (ll + hl - lh - hh) / 2
    out[:, :, 1::2, 1::2] = (ll + hl + lh + hh) / 2
    return out


def pad_to_multiple(x: torch.Tensor, multiple: int = 8) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad bottom/right so H and W divide ``multiple``; returns the padded tensor and the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    return (F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x), (h, w)


def _conv_relu(cin: int, cout: int, dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True)]


def _dilated_pair(f: int, dilations: tuple[int, int]) -> list[nn.Module]:
    return _conv_relu(f, f, dilations[0]) + _conv_relu(f, f, dilations[1])


class MWCNN(nn.Module):
    """N×C×H×W float in [0, 1], H and W multiples of 8 → N×C×H×W restored (not clipped)."""

    def __init__(self, cfg: MWCNNConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or MWCNNConfig()
        c, f = cfg.in_channels, cfg.features
        self.head = nn.Sequential(*_conv_relu(c, f), *_dilated_pair(f, (2, 1)))
        self.down1 = nn.Sequential(*_conv_relu(4 * f, 2 * f), *_dilated_pair(2 * f, (2, 1)))
        self.down2 = nn.Sequential(*_conv_relu(8 * f, 4 * f), *_dilated_pair(4 * f, (2, 1)))
        self.bottom = nn.Sequential(
            *_conv_relu(16 * f, 8 * f),
            *_dilated_pair(8 * f, (2, 3)),
            *_dilated_pair(8 * f, (3, 2)),
            *_conv_relu(8 * f, 16 * f),
        )
        self.up2 = nn.Sequential(*_dilated_pair(4 * f, (2, 1)), *_conv_relu(4 * f, 8 * f))
        self.up1 = nn.Sequential(*_dilated_pair(2 * f, (2, 1)), *_conv_relu(2 * f, 4 * f))
        self.up0 = nn.Sequential(*_dilated_pair(f, (2, 1)))
        self.tail = nn.Conv2d(f, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(f"MWCNN needs H and W divisible by 8, got {tuple(x.shape[-2:])} (see pad_to_multiple)")
        x0 = self.head(x)
        x1 = self.down1(haar_dwt(x0))
        x2 = self.down2(haar_dwt(x1))
        y = haar_iwt(self.bottom(haar_dwt(x2))) + x2
        y = haar_iwt(self.up2(y)) + x1
        y = haar_iwt(self.up1(y)) + x0
        return self.tail(self.up0(y)) + x
