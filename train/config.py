"""Training configuration: one typed dataclass, saved inside every checkpoint, plus the two presets.

Paper settings (WCDGAN §IV-A): 80×80 patches on a stride-75 grid, batch 16, Adam β = (0.5, 0.999),
lr 2e-4 (G) / 1e-4 (D) halved every 20 000 iterations, generator-only warm-up, then one G and one D step
alternately, ``L_G = L_c + L_p + L_adv + L_tv``.

Loss weights. The paper sums the four terms with weight 1, but their raw magnitudes differ by orders of
magnitude. Measured with this code on 32 RGB patches (80×80) of the shared training set (Urban100_x2HR +
CBSD432), images in [0, 1], VGG19 conv5_4 on Caffe-scaled 0–255 input, untrained discriminator:

==================  ========================  ==================================
term                full G at init            JPEG input as output (q 5/10/20)
==================  ========================  ==================================
L1 (pixels)         0.53                      0.045 (q5 0.059, q10 0.045, q20 0.035)
VGG conv5_4 L1      25.0                      14.9  (q5 20.2, q10 14.9, q20 10.3)
LSGAN G loss        1.38                      1.26
TV of output        0.006 (target 0.097)      0.067 (target 0.097)
==================  ========================  ==================================

The JPEG column approximates a generator at the end of the L1 warm-up (it starts from, and then beats,
the JPEG input). With weight 1 the VGG term would outweigh L1 ~330× and the GAN term ~28×. The ``gan``
preset therefore weights perceptual ``1e-3`` (≈ 0.015, a third of L1), adversarial ``1e-3`` (≈ 0.0013,
as in SRGAN) and TV ``2e-3`` (its gradient is ≈ 1 % of L1's: a mild smoother, since the clean target
has more TV than the JPEG). The ``psnr`` preset is L1 only, with no discriminator. (Measured by applying
``train.losses`` to a fixed ``train.data.PatchPairs`` batch; the paper's warm-up is 4 epochs, the ``gan``
preset's default is the first fifth of the iterations.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from models.wcdgan import GeneratorConfig

PRESETS = ("psnr", "gan")


@dataclass
class LossWeights:
    """Weight of each generator loss term (0 disables the term; perceptual > 0 needs VGG weights)."""

    l1: float = 1.0
    mse: float = 0.0  # mean squared error: from a zero residual it learns where L1 stalls
    log_mse: float = 0.0  # per-sample 10·log10(MSE) in dB: every JPEG quality weighs the same per dB
    perceptual: float = 0.0
    adversarial: float = 0.0
    tv: float = 0.0

    @property
    def uses_discriminator(self) -> bool:
        return self.adversarial > 0


@dataclass
class TrainConfig:
    """Everything that defines a training run (paths are stored as given, as strings)."""

    data_dirs: list[str] = field(default_factory=list)
    val_dir: str | None = None
    channel: str = "rgb"  # "rgb": colour JPEG 4:2:0 of RGB; "y": grayscale JPEG of MATLAB Y
    qualities: list[int] = field(default_factory=lambda: [10])  # drawn uniformly (or by quality_weights)
    quality_weights: list[float] | None = None
    quality_range: tuple[int, int] | None = None  # blind training: uniform integer quality in [lo, hi]
    patch_size: int = 80
    patch_stride: int = 75
    crop_patches: int = 2  # one compressed crop holds crop_patches × crop_patches grid patches
    patches_per_crop: int = 4  # patches drawn from each compressed crop (batch_size must be a multiple)
    batch_size: int = 16
    iterations: int = 100_000
    lr_g: float = 2e-4
    lr_d: float = 1e-4
    lr_halve_every: int = 20_000
    time_budget_s: float | None = None  # wall-clock run: cosine lr over it, stop at its end (see train.loop.lr_at)
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.0  # > 0: validate and save an exponential moving average of G's weights (not in the paper)
    warmup_iters: int = 0  # generator-only iterations (L1 only) before the full loss and D start
    loss: LossWeights = field(default_factory=LossWeights)
    vgg_weights: str | None = None
    seed: int = 0
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    val_qualities: list[int] = field(default_factory=lambda: [10])  # best.pt: the best mean PSNR over these
    val_crop: int = 256  # centre crop (≤ this, aligned to 16 px) of each validation image; 0 = full image
    val_max_images: int = 16
    val_every: int = 1000
    save_every: int = 1000
    num_workers: int = -1  # -1: 2 on CUDA, 0 on CPU
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = False
    compile: str | None = None  # torch.compile backend for the training forward/backward ("inductor"), None: eager
    init_from: str | None = None  # generator checkpoint the weights start from (fresh optimiser and schedule)
    gate_bias: float | None = None  # initial bias before each attention sigmoid (models.wcdgan.open_attention_gates)
    preset: str = "psnr"
    batch_probe: list[dict[str, Any]] | None = None  # what `--batch auto` measured (train.probe), for the record

    def __post_init__(self) -> None:
        if isinstance(self.loss, dict):
            self.loss = LossWeights(**self.loss)
        if isinstance(self.generator, dict):
            self.generator = GeneratorConfig(**self.generator)
        self.betas = tuple(self.betas)
        if self.quality_range is not None:
            self.quality_range = tuple(int(q) for q in self.quality_range)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError with a user-facing message on inconsistent settings."""
        self._check_channels()
        self._check_qualities()
        self._check_patches()
        self._check_schedule()

    def _check_channels(self) -> None:
        if self.channel not in ("rgb", "y"):
            raise ValueError(f"channel must be 'rgb' or 'y', got {self.channel!r}")
        if self.generator.in_channels != self.channels:
            raise ValueError(f"generator in_channels={self.generator.in_channels} but channel={self.channel!r}")

    def _check_qualities(self) -> None:
        qs = list(self.quality_range or ()) + list(self.qualities) + list(self.val_qualities)
        if not qs or not all(1 <= int(q) <= 100 for q in qs):
            raise ValueError(f"JPEG qualities must be in 1..100, got {qs}")
        if self.quality_range is not None and (
            len(self.quality_range) != 2 or self.quality_range[0] > self.quality_range[1]
        ):
            raise ValueError(f"quality range must be LO HI with LO <= HI, got {self.quality_range}")
        if not self.val_qualities:
            raise ValueError("validation needs at least one JPEG quality")
        if self.quality_weights is not None and len(self.quality_weights) != len(self.qualities):
            raise ValueError("quality_weights needs one weight per quality")

    def _check_patches(self) -> None:
        if self.batch_size % self.patches_per_crop:
            raise ValueError(
                f"batch size {self.batch_size} is not a multiple of patches_per_crop {self.patches_per_crop}"
            )
        if self.patch_size < 8 or self.patch_stride < 1 or self.crop_patches < 1:
            raise ValueError("patch size must be >= 8, stride and crop_patches >= 1")

    def _check_schedule(self) -> None:
        if self.iterations < 0 or self.warmup_iters < 0:
            raise ValueError("iterations and warm-up must be >= 0")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError(f"time budget must be positive, got {self.time_budget_s} s")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {self.ema_decay}")
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {self.preset!r}")

    @property
    def channels(self) -> int:
        return 3 if self.channel == "rgb" else 1

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (JSON- and ``torch.load(weights_only=True)``-safe)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["quality_range"] = list(self.quality_range) if self.quality_range else None
        d["generator"]["dilations"] = list(self.generator.dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        if "val_quality" in d:  # checkpoints before 2026-12-07 validated at one quality
            d = {**d, "val_qualities": [d["val_quality"]]}
        return cls(**{k: v for k, v in d.items() if k in known})


def preset_losses(preset: str) -> LossWeights:
    """Loss weights of a preset (see the module docstring for how they were chosen)."""
    if preset == "psnr":
        return LossWeights(l1=1.0)
    if preset == "gan":
        return LossWeights(l1=1.0, perceptual=1e-3, adversarial=1e-3, tv=2e-3)
    raise ValueError(f"unknown preset {preset!r}; choose from {PRESETS}")
