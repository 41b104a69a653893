"""AR-CNN (Dong, Deng, Loy, Tang, ICCV 2015): four-layer artifact-reduction CNN, official MATLAB release layout.

feature extraction 9×9 1→64 ReLU → feature enhancement 7×7 64→32 ReLU → mapping 1×1 32→16 ReLU →
reconstruction 5×5 16→1 (linear). The release's test code filters with MATLAB ``imfilter(.., 'same', 'replicate')``
— correlation (no kernel flip) with replicate padding at every layer — so the convolutions pad with
``padding_mode="replicate"``. 106,448 parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ARCNNConfig:
    """Layer widths and kernel sizes of the released models (one model per JPEG quality)."""

    in_channels: int = 1
    widths: tuple[int, ...] = (64, 32, 16)
    kernels: tuple[int, ...] = (9, 7, 1, 5)  # last entry: the reconstruction layer
    padding_mode: str = "replicate"  # MATLAB imfilter 'replicate'; "zeros" for the Caffe training-time variant


class ARCNN(nn.Module):
    """N×1×H×W float Y in [0, 1] → N×1×H×W restored Y (not clipped)."""

    def __init__(self, cfg: ARCNNConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ARCNNConfig()
        if len(cfg.kernels) != len(cfg.widths) + 1:
            raise ValueError("ARCNNConfig.kernels needs one entry per hidden layer plus the reconstruction layer")
        chans = (cfg.in_channels, *cfg.widths, cfg.in_channels)
        layers: list[nn.Module] = []
        for i, k in enumerate(cfg.kernels):
            layers.append(nn.Conv2d(chans[i], chans[i + 1], k, padding=k // 2, padding_mode=cfg.padding_mode))
            if i < len(cfg.widths):
                layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def convs(self) -> list[nn.Conv2d]:
        """The convolutions in forward order."""
        return [m for m in self.body if isinstance(m, nn.Conv2d)]
