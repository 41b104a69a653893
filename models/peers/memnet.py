"""MemNet (Tai, Yang, Liu, Xu, ICCV 2017): persistent memory network, the 80-layer M6R6 used for JPEG deblocking.

Every layer is pre-activation BN→ReLU→Conv. Feature extraction (3×3, C→64) → M memory blocks → a shared
reconstruction layer (3×3, 64→C) with a global residual. A memory block runs its recursive unit R times (a
residual block of two 3×3 convs) and a gate unit (1×1 conv) fuses the R recursion outputs with the outputs of
all earlier blocks (long-term memory). Multi-supervision: every block's output is reconstructed and the final
image is a learned weighted sum of the M reconstructions.

Parameter counts (C = 1, 64 channels, M6R6):
- ``share_recursion=True`` (the paper: one residual block applied R times): 677 k, the paper's own count.
- ``share_recursion=False`` (R distinct residual blocks, as in the widely used PyTorch re-implementations):
  2.91 M — this is the 2.9 M that the WCDGAN paper's Table 3 lists for MemNet. Both variants cost the same FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class MemNetConfig:
    in_channels: int = 1
    features: int = 64
    num_memblocks: int = 6  # M
    num_recursions: int = 6  # R
    share_recursion: bool = True  # the paper's recursive unit; False gives the 2.9 M variant
    multi_supervision: bool = True


class BNReLUConv(nn.Sequential):
    """Pre-activation unit: BN → ReLU → k×k conv (zero 'same' padding)."""

    def __init__(self, cin: int, cout: int, k: int = 3) -> None:
        super().__init__(nn.BatchNorm2d(cin), nn.ReLU(inplace=False), nn.Conv2d(cin, cout, k, padding=k // 2))


class ResidualBlock(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.body = nn.Sequential(BNReLUConv(features, features), BNReLUConv(features, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class MemoryBlock(nn.Module):
    """Recursive unit (R residual recursions) + gate unit over [recursion outputs, earlier block outputs]."""

    def __init__(self, features: int, recursions: int, num_previous: int, share: bool) -> None:
        super().__init__()
        self.recursions = recursions
        self.units = nn.ModuleList(ResidualBlock(features) for _ in range(1 if share else recursions))
        self.gate = BNReLUConv((recursions + num_previous) * features, features, k=1)

    def forward(self, x: torch.Tensor, memory: list[torch.Tensor]) -> torch.Tensor:
        short_term = []
        for r in range(self.recursions):
            x = self.units[r % len(self.units)](x)
            short_term.append(x)
        return self.gate(torch.cat(short_term + memory, dim=1))


class MemNet(nn.Module):
    """N×C×H×W float in [0, 1] → N×C×H×W restored (not clipped)."""

    def __init__(self, cfg: MemNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or MemNetConfig()
        f, m = cfg.features, cfg.num_memblocks
        self.extract = BNReLUConv(cfg.in_channels, f)
        # block i sees the extracted features and the outputs of blocks 1..i-1: i earlier states
        self.blocks = nn.ModuleList(MemoryBlock(f, cfg.num_recursions, i + 1, cfg.share_recursion) for i in range(m))
        self.reconstruct = BNReLUConv(f, cfg.in_channels)
        if cfg.multi_supervision:
            self.weights = nn.Parameter(torch.full((m,), 1.0 / m))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        memory = [self.extract(x)]
        for block in self.blocks:
            memory.append(block(memory[-1], memory))
        if not self.cfg.multi_supervision:
            return x + self.reconstruct(memory[-1])
        outputs = [x + self.reconstruct(b) for b in memory[1:]]
        return sum(w * y for w, y in zip(self.weights, outputs, strict=True))
