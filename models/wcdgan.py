"""WCDGAN (Xie, Zhang, Jung, IEEE Access 2021): weakly connected dense generator and its discriminator.

Generator: shallow features (two 5×5 convs) → N weakly connected dense blocks (WCDB) with a long skip →
reconstruction (two 3×3 convs). A WCDB chains four mixed convolutions (dilations 1, 2, 4, 8), fuses the
block input and all four outputs with a 1×1 conv plus a residual, then applies mixed (channel + spatial)
attention. With the defaults the generator has 1,645,083 parameters for RGB (paper: 1.7 M).

Two stated deviations from the paper, each a config switch (the defaults are the paper's generator):

* ``trunk="half"``: the blocks run at half resolution on the grid a 4:2:0 JPEG codes its chroma on
  (:mod:`models.half_resolution`), the network predicts a residual, and its last convolution starts small
  (the output starts close to the input).
* ``skip_around_attention=True``: a block's skip goes around its attention, ``x + MA(fuse(...))``, instead of
  through it, ``MA(fuse(...) + x)``: the paper's gates (≈ 0.5 each at init) pass ≈ 0.25 of a local change per
  block, so deep stacks barely pass signal (models/pretrained/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from models.half_resolution import HalfResolutionInput, HalfResolutionOutput, pad_to_even, trunk_channels

TRUNKS = ("full", "half")
OUTPUT_INIT_SCALE = 0.1  # the half trunk's last convolution starts at 0.1× PyTorch's default initialisation


@dataclass
class GeneratorConfig:
    """Everything needed to rebuild a generator; stored inside checkpoints and ONNX sidecars."""

    in_channels: int = 3  # 3: RGB model, 1: grayscale / Y-channel model
    features: int = 64
    num_blocks: int = 8
    branch_channels: int = 32  # width of each mixed-convolution branch (half of `features` gives 1.7 M)
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    attention_reduction: int = 4
    spatial_channels: int = 1  # channels of the spatial-attention 1×1 projection
    negative_slope: float = 0.02
    global_residual: bool = False  # the paper has no input→output skip (the half trunk always has one)
    trunk: str = "full"  # "full": the paper's; "half": 4:2:0 half-resolution trunk (models.half_resolution)
    skip_around_attention: bool = False  # the paper: False, MA(fuse + x); True: x + MA(fuse)

    def __post_init__(self) -> None:
        self.dilations = tuple(int(d) for d in self.dilations)
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if self.trunk not in TRUNKS:
            raise ValueError(f"trunk must be one of {TRUNKS}, got {self.trunk!r}")
        if min(self.features, self.num_blocks, self.branch_channels, self.spatial_channels) < 1:
            raise ValueError(f"invalid generator config: {self}")
        if self.features % self.attention_reduction:
            raise ValueError("features must be divisible by attention_reduction")


def _conv(cin: int, cout: int, k: int, dilation: int = 1) -> nn.Conv2d:
    """'Same'-size convolution with zero padding."""
    return nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation)


class MixedConv(nn.Module):
    """A standard and a dilated 3×3 conv side by side (LeakyReLU each), fused back by a 1×1 conv."""

    def __init__(self, features: int, branch: int, dilation: int, slope: float) -> None:
        super().__init__()
        self.standard = _conv(features, branch, 3)
        self.dilated = _conv(features, branch, 3, dilation)
        self.fuse = _conv(2 * branch, features, 1)
        self.act = nn.LeakyReLU(slope, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.act(self.standard(x)), self.act(self.dilated(x))], dim=1))


class MixedAttention(nn.Module):
    """Channel attention (GAP → three 1×1 convs → sigmoid) followed by spatial attention (1×1 → 5×5 → sigmoid)."""

    def __init__(self, features: int, reduction: int, spatial_channels: int, slope: float) -> None:
        super().__init__()
        hidden = features // reduction
        self.channel = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(features, hidden, 1),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(hidden, hidden, 1),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(hidden, features, 1),
            nn.Sigmoid(),
        )
        self.spatial = nn.Sequential(
            nn.Conv2d(features, spatial_channels, 1),
            _conv(spatial_channels, 1, 5),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fc = self.channel(x) * x
        return self.spatial(fc) * fc


class WCDB(nn.Module):
    """Weakly connected dense block: X1..X4 = chained mixed convs; out = MA(conv1×1(cat[X', X1..X4]) + X')."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        f = cfg.features
        self.mixed = nn.ModuleList(MixedConv(f, cfg.branch_channels, d, cfg.negative_slope) for d in cfg.dilations)
        self.fuse = _conv(f * (len(cfg.dilations) + 1), f, 1)
        self.attention = MixedAttention(f, cfg.attention_reduction, cfg.spatial_channels, cfg.negative_slope)
        self.skip_around_attention = cfg.skip_around_attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for mc in self.mixed:
            feats.append(mc(feats[-1]))
        fused = self.fuse(torch.cat(feats, dim=1))
        return x + self.attention(fused) if self.skip_around_attention else self.attention(fused + x)


class WCDGANGenerator(nn.Module):
    """Maps a JPEG-decoded image to its restoration.

    Input and output: N×C×H×W float in [0, 1], C = ``cfg.in_channels``; any H, W ≥ 1 (the half trunk replicates
    an odd last row/column internally; its exported graph takes even H, W, which the runtime's 16-px windows are).
    The output is not clipped (clip when converting to 8-bit) so that training sees the true error.
    """

    def __init__(self, cfg: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or GeneratorConfig()
        c, f, s = cfg.in_channels, cfg.features, cfg.negative_slope
        half = cfg.trunk == "half"
        c_in, c_out = (trunk_channels(c), 4 * c) if half else (c, c)
        self.shallow = nn.Sequential(_conv(c_in, f, 5), _conv(f, f, 5), nn.LeakyReLU(s, inplace=True))
        self.blocks = nn.Sequential(*(WCDB(cfg) for _ in range(cfg.num_blocks)))
        self.reconstruct = nn.Sequential(_conv(f, f, 3), nn.LeakyReLU(s, inplace=True), _conv(f, c_out, 3))
        if half:
            self.encode, self.decode = HalfResolutionInput(c), HalfResolutionOutput(c)
            # A residual network that starts near the identity. Not at it: a zero output layer passes no gradient
            # to the layers before it, and training stalled (0.00 dB gain after 200 iterations on the CPU).
            with torch.no_grad():
                self.reconstruct[-1].weight.mul_(OUTPUT_INIT_SCALE)
                self.reconstruct[-1].bias.zero_()

    def shallow_features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's input features F0 (N×F×H×W; the half trunk: ⌈H/2⌉×⌈W/2⌉) of an image batch."""
        return self.shallow(self.encode(pad_to_even(x)) if self.cfg.trunk == "half" else x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f0 = self.shallow_features(x)
        y = self.reconstruct(self.blocks(f0) + f0)
        if self.cfg.trunk == "half":
            h, w = x.shape[-2:]
            return (pad_to_even(x) + self.decode(y))[..., :h, :w]
        return y + x if self.cfg.global_residual else y


@dataclass
class DiscriminatorConfig:
    """Paper Fig. 3: nine 3×3 Conv-BN-ReLU blocks, two FC layers.

    Stride-2 convs halve the map and double the channels, 64 → 512; the figure's fourth stride-2 conv
    would reach 1024, so the width is capped at ``max_channels`` (80×80 patches end at 5×5×512).
    """

    in_channels: int = 3
    base_channels: int = 64
    max_channels: int = 512
    patch_size: int = 80
    strides: tuple[int, ...] = field(default=(1, 2, 1, 2, 1, 2, 1, 2, 1))
    hidden: int = 1024


class Discriminator(nn.Module):
    """N×C×P×P in [0, 1] (P = ``cfg.patch_size``) → N×1 logits (unbounded: LSGAN targets 1 real / 0 fake)."""

    def __init__(self, cfg: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or DiscriminatorConfig()
        layers: list[nn.Module] = []
        cin, cout, size = cfg.in_channels, cfg.base_channels, cfg.patch_size
        for i, stride in enumerate(cfg.strides):
            if stride == 2 and i > 0:
                cout = min(2 * cout, cfg.max_channels)
            layers += [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin, size = cout, (size + 2 - 3) // stride + 1
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(cin * size * size, cfg.hidden), nn.ReLU(inplace=True), nn.Linear(cfg.hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def open_attention_gates(model: WCDGANGenerator, bias: float) -> None:
    """Set the bias before every attention sigmoid (channel and spatial gate of each WCDB) to ``bias``.

    Why: a WCDB multiplies its whole output, residual included, by both gates. At PyTorch's default init they
    sit at ≈ 0.5, so a block passes ≈ 0.25 of a local change and the 8 chained blocks of the paper's generator
    ≈ 0.25⁸ ≈ 1.5e-5: the deep path barely depends on the image and its first blocks barely learn (measured on
    the window-1 models, see models/pretrained/README.md). With ``bias = 3`` each gate starts at 0.95. An
    initialisation only: the architecture, parameter count and exported graph are unchanged.
    """
    for block in model.blocks:
        for gate in (block.attention.channel, block.attention.spatial):
            conv = gate[-2]  # the convolution feeding the Sigmoid
            nn.init.constant_(conv.bias, bias)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
