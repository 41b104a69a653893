"""WCDGAN losses (paper eq. 18–23): L1 content (or MSE, not in the paper), VGG19 conv5_4 perceptual, LSGAN, TV.

All image tensors are N×C×H×W float in [0, 1] (C = 1 or 3). Each function returns a scalar tensor
(mean over every element), so the term magnitudes do not depend on batch or patch size.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# torchvision's ``vgg19().features`` layout: conv widths, "M" = 2×2 max-pool.
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
CONV5_4 = 35  # features[:35] ends with conv5_4, before its ReLU
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)  # the shared weights' preprocessing: RGB 0–255 minus mean
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # torchvision's preprocessing


def l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Content loss ``L_c = mean |out − gt|`` (eq. 18)."""
    return F.l1_loss(output, target)


def mse_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel loss ``mean (out − gt)²`` (not in the paper): the loss PSNR measures."""
    return F.mse_loss(output, target)


LOG_MSE_FLOOR = (0.5 / 255) ** 2  # half an 8-bit level: finer errors vanish when the output is rounded


def log_mse_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of each sample's ``10·log10(MSE + floor)`` (dB; minus its PSNR): mean PSNR's own loss.

    Not in the paper. Plain MSE over a batch of mixed JPEG qualities is dominated by the lowest ones (their errors
    are largest); the log gives every sample the same weight per dB, as the per-image mean PSNR of an evaluation
    does. The floor keeps near-perfect flat patches from dominating instead.
    """
    mse = (output - target).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(mse + LOG_MSE_FLOOR).mean()


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation ``mean |∂x I| + mean |∂y I|`` over all channels (eq. 22).

    Eq. 22 writes ``‖∇x I + ∇y I‖₁``; the text describes per-channel gradients averaged, and the usual
    anisotropic form (each gradient's absolute value) is used, which cannot cancel opposite gradients.
    """
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.abs().mean() + dy.abs().mean()


def lsgan_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator LSGAN loss ``E[(D(gt) − 1)²] + E[D(out)²]`` (eq. 20); real → 1, fake → 0."""
    return ((d_real - 1) ** 2).mean() + (d_fake**2).mean()


def lsgan_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Generator LSGAN loss ``E[(D(out) − 1)²]`` (eq. 21): the generator wants D to call its output real."""
    return ((d_fake - 1) ** 2).mean()


def vgg19_features(depth: int = CONV5_4) -> nn.Sequential:
    """Untrained VGG19 ``features[:depth]`` in torchvision's layout (same module indices and state-dict keys)."""
    layers: list[nn.Module] = []
    cin = 3
    for v in VGG19_LAYOUT:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
            cin = v
    return nn.Sequential(*layers[:depth])


class VGGPerceptual(nn.Module):
    """``L_p = mean |φ(out) − φ(gt)|`` with φ = VGG19 conv5_4 before ReLU (eq. 19); frozen, eval mode.

    Inputs in [0, 1]; 1-channel (Y) images are repeated to 3 channels. ``preprocessing`` is ``"caffe"``
    (RGB·255 − mean, the shared weights) or ``"imagenet"`` ((RGB − mean)/std, torchvision's weights).
    """

    def __init__(self, features: nn.Sequential, preprocessing: str = "caffe") -> None:
        super().__init__()
        if preprocessing == "caffe":
            scale, mean, std = 255.0, torch.tensor(CAFFE_MEAN_RGB), torch.ones(3)
        elif preprocessing == "imagenet":
            scale, mean, std = 1.0, torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        else:
            raise ValueError(f"preprocessing must be 'caffe' or 'imagenet', got {preprocessing!r}")
        self.features = features.eval().requires_grad_(False)
        self.scale = scale
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGGPerceptual:
        return super().train(False)  # always frozen

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """N×{1,3}×H×W in [0, 1] → conv5_4 features N×512×H/16×W/16."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.features((x * self.scale - self.mean) / self.std)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_features = self.embed(target)
        return F.l1_loss(self.embed(output), target_features)


def load_vgg_perceptual(weights: str | os.PathLike | None) -> VGGPerceptual:
    """Build the perceptual loss from a state dict of torchvision ``vgg19().features`` (Caffe preprocessing).

    ``weights=None``: fall back to torchvision's ImageNet weights if torchvision is installed (it downloads
    them once); otherwise raise FileNotFoundError telling the user to pass ``--vgg-weights``.
    """
    if weights is None:
        try:
            from torchvision.models import VGG19_Weights, vgg19
        except ImportError:
            raise FileNotFoundError(
                "the perceptual loss needs VGG19 weights: pass --vgg-weights PATH (torchvision vgg19().features "
                "state dict, Caffe preprocessing, e.g. ../shared/weights/vgg19_features_caffe_rgb_fp16.pth), "
                "install torchvision, or set the perceptual weight to 0"
            ) from None
        features = vgg19(weights=VGG19_Weights.IMAGENET1K_V1).features[:CONV5_4]
        return VGGPerceptual(features, "imagenet")
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"{weights}: no such VGG19 weights file")
    features = vgg19_features()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        features.load_state_dict({k: v.float() for k, v in state.items() if int(k.split(".")[0]) < CONV5_4})
    except (RuntimeError, ValueError, AttributeError, TypeError) as e:
        raise ValueError(f"{weights}: not a VGG19 features state dict ({e})") from None
    return VGGPerceptual(features, "caffe")
