"""Receptive field of a generator, measured by impulse response (gradient of one output pixel).

The convolutions give a hard geometric radius (:func:`theoretical_radius`), but the channel attention's global
average pooling makes every output pixel depend, weakly, on every input pixel. No overlap can keep that path as the
whole image has it (each tile pools its own window), so the overlap covers the *local* paths and the pooled path is
reported on its own (``global_pool_mass``). :func:`measure` takes g = |∂ mean-over-channels output(centre) / ∂ input|
on a real JPEG-compressed image (the network is nonlinear, so the response depends on the input), with the pooled
statistics held fixed, and reports, as Chebyshev distances from the centre:

* ``radius[rel]``: the farthest pixel whose g is still ≥ ``rel`` × peak;
* ``mass_radius``: the smallest r such that all of g outside the (2r+1)² window sums to ≤ half an 8-bit step,
  i.e. to first order, nothing outside can move the centre output by 0.5/255 even if it changed by the full range.

The recommended tile overlap covers both (the 1e-3 radius and the mass radius), rounded up to the runtime's
window grid (:data:`common.tiling.ALIGN`, 16: JPEG blocks and 4:2:0 MCUs) — the overlap that actually runs.

Until 2026-12-07 the mass also counted the pooled path, spread thinly over the whole measured crop: it set the half
trunk's overlap to 144 px, while tiles of 256 px with overlap 32 and 144 differ from the whole image by 49.8 and 50.1
dB alike (3 Urban100 validation images at q10, ``benchmarks.tiling_fidelity``): the pooled path, not the overlap,
sets that floor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from common.tiling import ALIGN, align_up
from models.wcdgan import GeneratorConfig, WCDGANGenerator

RELATIVE_THRESHOLDS = (1e-2, 1e-3, 1e-4)
OVERLAP_THRESHOLD = 1e-3  # the recommended overlap covers influence down to 0.1 % of the peak ...
MASS_TOLERANCE = 0.5 / 255  # ... and leaves outside at most half an 8-bit step of total influence


@dataclass
class ReceptiveField:
    theoretical_radius: int  # hard geometric bound of the convolutions (GAP aside)
    radius: dict[str, int]  # relative threshold ("1e-03") → measured radius, pixels
    mass_radius: int  # influence outside sums to ≤ MASS_TOLERANCE
    effective_radius: int  # max(radius at OVERLAP_THRESHOLD, mass_radius): what the overlap must cover
    recommended_overlap: int  # effective_radius rounded up to the tile grid (common.tiling.ALIGN)
    input_size: int
    block_pass_through: list[float]  # per block: relative output change per relative input change (see below)
    global_pool_mass: float  # influence reaching the centre only through global pooling (sum of |g|, [0, 1] units)


def theoretical_radius(cfg: GeneratorConfig) -> int:
    """Shallow 2× 5×5, per block: chained 3×3 mixed convs (radius = max(1, d) each) + the 5×5 spatial attention,
    then 2× 3×3 reconstruction — in trunk pixels. The half trunk's pixel is 2×2 image pixels, and the 2×2 cell an
    output pixel sits in adds one more."""
    per_block = sum(max(1, d) for d in cfg.dilations) + 2
    trunk = 2 * 2 + cfg.num_blocks * per_block + 2 * 1
    return 2 * trunk + 1 if cfg.trunk == "half" else trunk


def measure(model: WCDGANGenerator, image: np.ndarray | None = None) -> ReceptiveField:
    """Impulse-response radius of ``model`` at the centre of a (2R+1+32)² crop, R = the theoretical radius.

    ``image``: optional H×W×C float32 [0, 1] source (at least that size); defaults to a JPEG q10 crop of
    ``skimage.data.astronaut`` (luma for 1-channel models).
    """
    cfg = model.cfg
    r_max = theoretical_radius(cfg)
    size = 2 * r_max + 1 + 32  # room beyond the hard bound, so that what lies there is measured, not cut off
    x = torch.from_numpy(_input_crop(cfg.in_channels, size) if image is None else image[:size, :size])
    x = x.permute(2, 0, 1)[None].contiguous()
    model = model.eval()
    c = size // 2
    whole = _input_gradient(model, x, c)
    with _pooling_held_fixed(model):
        g = _input_gradient(model, x, c)
    yy, xx = np.indices(g.shape)
    dist = np.maximum(np.abs(yy - c), np.abs(xx - c))
    radius = {f"{t:.0e}": int(dist[g >= t * g.max()].max()) for t in RELATIVE_THRESHOLDS}
    outside = g.sum() - np.cumsum(np.bincount(dist.ravel(), weights=g.ravel()))  # mass beyond radius r, r = index
    mass_radius = int(np.argmax(outside <= MASS_TOLERANCE)) if (outside <= MASS_TOLERANCE).any() else c
    effective = max(radius[f"{OVERLAP_THRESHOLD:.0e}"], mass_radius)
    overlap = align_up(effective, ALIGN)
    passes = block_pass_through(model, x.detach())
    pooled = round(float(np.abs(whole - g).sum()), 6)
    return ReceptiveField(r_max, radius, mass_radius, effective, overlap, size, passes, pooled)


def _input_gradient(model: nn.Module, x: torch.Tensor, c: int) -> np.ndarray:
    """|∂ mean-over-channels output(c, c) / ∂ x|, summed over input channels: H×W float64."""
    x = x.detach().requires_grad_(True)
    model(x)[0, :, c, c].mean().backward()
    return x.grad[0].abs().sum(0).numpy().astype(np.float64)


@contextlib.contextmanager
def _pooling_held_fixed(model: nn.Module) -> Iterator[None]:
    """Within: every global average pool's output is a constant to autograd (its value unchanged)."""
    hooks = [m.register_forward_hook(lambda _m, _i, out: out.detach())
             for m in model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]  # fmt: skip
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


@torch.no_grad()
def block_pass_through(model: WCDGANGenerator, x: torch.Tensor) -> list[float]:
    """Per block, how much of a local change of its input reaches its output: mean |Δout| / mean |Δin| for a random
    change of 1e-3 of the input features' mean magnitude, each block fed what it sees on ``x`` (1×C×H×W [0, 1]).

    The paper's block multiplies its skip by both attention gates (≈ 0.5 each at init): ≈ 0.25 passes, and a
    chain of n blocks passes ≈ 0.25ⁿ; a skip around the attention passes ≥ 1.
    """
    noise = torch.Generator().manual_seed(1)
    feats, passes = model.shallow_features(x), []
    for block in model.blocks:
        eps = 1e-3 * feats.abs().mean() * torch.randn(feats.shape, generator=noise)
        out = block(feats)
        passes.append(round(float((block(feats + eps) - out).abs().mean() / eps.abs().mean()), 4))
        feats = out
    return passes


def _input_crop(channels: int, size: int) -> np.ndarray:
    from skimage import data, transform

    from common.color import rgb_to_y
    from common.jpeg import jpeg_roundtrip

    rgb = data.astronaut()
    if min(rgb.shape[:2]) < size:  # only very deep configs need more than 512 px
        rgb = (transform.resize(rgb, (size, size), anti_aliasing=True) * 255).round().astype(np.uint8)
    rgb = np.ascontiguousarray(rgb[:size, :size])
    img = jpeg_roundtrip(rgb_to_y(rgb) if channels == 1 else rgb, 10)
    img = img[..., None] if img.ndim == 2 else img
    return img.astype(np.float32) / 255.0
