"""LPIPS v0.1 with AlexNet features (Zhang et al., CVPR 2018), rebuilt in plain PyTorch from stored weights.

Needs two files in a weights folder (no torchvision, no download):

- ``alexnet_features_torchvision_fp16.pth``: torchvision ``AlexNet.features`` state dict (keys ``0.weight`` …
  ``10.bias``), stored fp16 and cast to float32 here;
- ``lpips_v0.1_alex_lin.pth``: the official v0.1 linear heads (keys ``lin{0..4}.model.1.weight``).

Distance of two images: shift/scale the [-1, 1] input, take the five ReLU outputs of AlexNet, normalise
each feature vector over channels, square the difference, weight channels with the 1×1 linear head,
average over space and sum over the five layers. Lower is more similar.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

ALEXNET_FILE = "alexnet_features_torchvision_fp16.pth"
LIN_FILE = "lpips_v0.1_alex_lin.pth"

# LPIPS' ScalingLayer: maps [-1, 1] inputs to (roughly) the ImageNet normalisation AlexNet was trained with.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_CHANNELS = (64, 192, 384, 256, 256)
_EPS = 1e-10


def _alexnet_features() -> nn.Sequential:
    """torchvision ``AlexNet.features`` (same indices, so its state dict loads unchanged), without the last pool."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(),
    )


# End index (exclusive) of each LPIPS tap in ``features``: relu1 … relu5.
_TAPS = (2, 5, 8, 10, 12)


class _LinearHead(nn.Module):
    """Non-negative channel weights as a bias-free 1×1 conv; ``model.1`` matches the official key names."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPSNet(nn.Module):
    """The LPIPS network on tensors: two N×3×H×W float tensors in [-1, 1] → N distances."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.features = _alexnet_features()
        self.lins = nn.ModuleList(_LinearHead(c) for c in _CHANNELS)
        self.requires_grad_(False)
        self.eval()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa, fb = self._taps((a - self.shift) / self.scale), self._taps((b - self.shift) / self.scale)
        total = a.new_zeros(a.shape[0])
        for lin, xa, xb in zip(self.lins, fa, fb, strict=True):
            diff = (_unit_norm(xa) - _unit_norm(xb)) ** 2
            total = total + lin(diff).mean(dim=(1, 2, 3))
        return total

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs, start = [], 0
        for end in _TAPS:
            x = self.features[start:end](x)
            outs.append(x)
            start = end
        return outs


class LPIPS:
    """LPIPS v0.1 (alex) on numpy images: ``LPIPS.from_dir(weights)(a, b) -> float``."""

    def __init__(self, net: LPIPSNet, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()

    @classmethod
    def from_dir(cls, weights_dir: str | os.PathLike, device: str | torch.device = "cpu") -> LPIPS:
        """Load both weight files from ``weights_dir``; raise ``FileNotFoundError`` naming a missing one."""
        weights_dir = Path(weights_dir)
        alex_path, lin_path = weights_dir / ALEXNET_FILE, weights_dir / LIN_FILE
        for p in (alex_path, lin_path):
            if not p.is_file():
                raise FileNotFoundError(f"LPIPS weights not found: {p}")
        net = LPIPSNet()
        alex = torch.load(alex_path, map_location="cpu", weights_only=True)
        net.features.load_state_dict({k: v.float() for k, v in alex.items()})
        lin = torch.load(lin_path, map_location="cpu", weights_only=True)
        # Official keys are lin0.model.1.weight …; ours are lins.0.model.1.weight …
        net.lins.load_state_dict({k.removeprefix("lin"): v.float() for k, v in lin.items()})
        return cls(net, device)

    @torch.no_grad()
    def __call__(self, a: np.ndarray, b: np.ndarray) -> float:
        """Distance of two uint8 images of equal shape, H×W×3 RGB or H×W (luma, repeated to 3 channels)."""
        if a.shape != b.shape or a.dtype != np.uint8 or b.dtype != np.uint8:
            raise ValueError(f"expected two uint8 images of equal shape, got {a.dtype} {a.shape} / {b.dtype} {b.shape}")
        return float(self.net(_to_tensor(a).to(self.device), _to_tensor(b).to(self.device))[0])


def _unit_norm(x: torch.Tensor) -> torch.Tensor:
    """Normalise each spatial feature vector to unit length over channels (LPIPS ``normalize_tensor``)."""
    return x / (torch.sqrt((x * x).sum(dim=1, keepdim=True)) + _EPS)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 H×W or H×W×{1,3} → 1×3×H×W float32 in [-1, 1] (LPIPS ``im2tensor``: x / 127.5 − 1)."""
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"expected H×W, H×W×1 or H×W×3, got {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    return t / 127.5 - 1.0
