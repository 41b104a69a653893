"""DnCNN (Zhang, Zuo, Chen, Meng, Zhang, TIP 2017), as used for DnCNN-3 (one blind model for denoising, SISR, JPEG).

Depth D = 20 3×3 convs: Conv+ReLU, (D−2)× Conv+BN+ReLU, Conv; zero padding 1. Residual learning: the network
predicts the artifact, ``output = input − net(input)``. The official MatConvNet release folds BN into the
convolutions (``batch_norm=False``: 665,921 parameters); ``batch_norm=True`` is the training-time form.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class DnCNNConfig:
    in_channels: int = 1
    features: int = 64
    depth: int = 20
    batch_norm: bool = False  # False: BN folded into the conv biases, as released


class DnCNN(nn.Module):
    """N×C×H×W float in [0, 1] → N×C×H×W restored (not clipped); C = ``cfg.in_channels``."""

    def __init__(self, cfg: DnCNNConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or DnCNNConfig()
        c, f = cfg.in_channels, cfg.features
        layers: list[nn.Module] = [nn.Conv2d(c, f, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(cfg.depth - 2):
            layers.append(nn.Conv2d(f, f, 3, padding=1, bias=not cfg.batch_norm))
            if cfg.batch_norm:
                layers.append(nn.BatchNorm2d(f))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(f, c, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)

    def convs(self) -> list[nn.Conv2d]:
        """The convolutions in forward order."""
        return [m for m in self.body if isinstance(m, nn.Conv2d)]
