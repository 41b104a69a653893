"""Full-reference image-quality metrics of the JPEG-artifact-removal literature (numpy only).

All functions take two uint8 images of the same shape, H×W or H×W×C, with values in 0–255, and return a
Python float. No border is cropped. The conventions follow BasicSR/KAIR (see ``docs/EVALUATION.md`` in
``../shared``), which reproduce the published JPEG rows to 0.01 dB.
"""

from __future__ import annotations

import math

import numpy as np

_PEAK = 255.0
_SSIM_C1 = (0.01 * _PEAK) ** 2
_SSIM_C2 = (0.03 * _PEAK) ** 2
_SSIM_SIZE = 11
_SSIM_SIGMA = 1.5
_BLOCK = 8  # JPEG DCT block size, the grid PSNR-B looks for blocking on


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels (float64 MSE, peak 255).

    Identical images give ``inf``.
    """
    return _psnr_of(*_as_float_pair(a, b))


PSNR_CAP = 100.0  # dB reported for identical images where a finite number is needed (JSON has no infinity)


def psnr_capped(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two uint8 arrays of any one shape (images, N×C×H×W batches), at most :data:`PSNR_CAP`."""
    if a.shape != b.shape or a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"expected two uint8 arrays of one shape, got {a.dtype} {a.shape} and {b.dtype} {b.shape}")
    return min(PSNR_CAP, _psnr_of(a.astype(np.float64), b.astype(np.float64)))


def _psnr_of(x: np.ndarray, y: np.ndarray) -> float:
    mse = _mse(x, y)
    return math.inf if mse == 0 else 10.0 * math.log10(_PEAK**2 / mse)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """A model's [0, 1] float output → uint8 the way every writer does it (clip, round)."""
    return np.clip(np.round(x.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity with an 11×11 Gaussian window (σ = 1.5), C1 = (0.01·255)², C2 = (0.03·255)².

    Statistics are taken only where the window fits inside the image (the 'valid' region, i.e. BasicSR's
    ``cv2.filter2D`` result cropped by 5 px); the SSIM map is averaged. Colour: mean over channels.
    Images must be at least 11×11.
    """
    x, y = _as_float_pair(a, b)
    if min(x.shape[:2]) < _SSIM_SIZE:
        raise ValueError(f"SSIM needs images of at least {_SSIM_SIZE}×{_SSIM_SIZE}, got {x.shape[:2]}")
    if x.ndim == 2:
        return _ssim_channel(x, y)
    return float(np.mean([_ssim_channel(x[..., c], y[..., c]) for c in range(x.shape[2])]))


def psnr_b(restored: np.ndarray, target: np.ndarray) -> float:
    """PSNR-B (Yim & Bovik 2011) in dB: ``10·log10(255² / (MSE + BEF))``.

    BEF, the blocking effect factor on the 8×8 grid, is measured on ``restored`` only (as in KAIR's
    ``calculate_psnrb``, including its boundary counts). Colour images: PSNR-B per channel (MSE and
    BEF of that channel), then the mean of the per-channel dB values — KAIR's convention; the Y-channel
    tables need only the single-channel case. Identical block-free images give ``inf``.

    JPEG baselines: Classic5 (512×512) matches the published rows exactly; on LIVE1, whose sizes are
    mostly not multiples of 8, KAIR's boundary counts land 0.00–0.012 dB below the printed values.
    """
    x, y = _as_float_pair(restored, target)
    if x.ndim == 2:
        return _psnr_b_channel(x, y)
    return float(np.mean([_psnr_b_channel(x[..., c], y[..., c]) for c in range(x.shape[2])]))


def blocking_effect_factor(image: np.ndarray) -> float:
    """Blocking effect factor of one H×W channel (uint8 or float on the 0–255 scale), ≥ 0.

    Mean squared difference across 8×8 block boundaries minus that across non-boundary neighbours,
    weighted by ``log2(8) / log2(min(H, W))``, clipped at 0. The boundary counts use ``W // 8 − 1``
    columns (and rows) as in KAIR's ``_blocking_effect_factor``, which the published PSNR-B rows use.
    """
    im = np.asarray(image, dtype=np.float64)
    if im.ndim != 2:
        raise ValueError(f"expected one H×W channel, got shape {im.shape}")
    h, w = im.shape
    if min(h, w) < 2:
        raise ValueError(f"BEF needs at least 2×2 pixels, got {im.shape}")
    col_diff = np.diff(im, axis=1) ** 2  # col_diff[:, j] = (im[:, j] - im[:, j + 1])², j < W-1
    row_diff = np.diff(im, axis=0) ** 2
    col_edge = _boundary_mask(w)
    row_edge = _boundary_mask(h)
    boundary_sum = col_diff[:, col_edge].sum() + row_diff[row_edge, :].sum()
    nonboundary_sum = col_diff[:, ~col_edge].sum() + row_diff[~row_edge, :].sum()
    n_boundary = h * (w // _BLOCK - 1) + w * (h // _BLOCK - 1)
    n_nonboundary = h * (w - 1) + w * (h - 1) - n_boundary
    boundary = boundary_sum / n_boundary if n_boundary > 0 else 0.0
    nonboundary = nonboundary_sum / n_nonboundary
    if boundary <= nonboundary:
        return 0.0
    return float(math.log2(_BLOCK) / math.log2(min(h, w)) * (boundary - nonboundary))


def _boundary_mask(n: int) -> np.ndarray:
    """Which of the n−1 neighbour differences straddle a block boundary (pixel 8k+7 | 8k+8)."""
    idx = np.arange(n - 1)
    return idx % _BLOCK == _BLOCK - 1


def _psnr_b_channel(x: np.ndarray, y: np.ndarray) -> float:
    denom = _mse(x, y) + blocking_effect_factor(x)
    return math.inf if denom == 0 else 10.0 * math.log10(_PEAK**2 / denom)


def _ssim_channel(x: np.ndarray, y: np.ndarray) -> float:
    mu_x, mu_y = _gaussian_valid(x), _gaussian_valid(y)
    var_x = _gaussian_valid(x * x) - mu_x**2
    var_y = _gaussian_valid(y * y) - mu_y**2
    cov = _gaussian_valid(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + _SSIM_C1) * (2 * cov + _SSIM_C2)
    den = (mu_x**2 + mu_y**2 + _SSIM_C1) * (var_x + var_y + _SSIM_C2)
    return float(np.mean(num / den))


def _gaussian_kernel() -> np.ndarray:
    """1-D normalised Gaussian taps, the same as ``cv2.getGaussianKernel(11, 1.5)``."""
    r = np.arange(_SSIM_SIZE, dtype=np.float64) - (_SSIM_SIZE - 1) / 2
    k = np.exp(-(r**2) / (2 * _SSIM_SIGMA**2))
    return k / k.sum()


_KERNEL = _gaussian_kernel()


def _gaussian_valid(im: np.ndarray) -> np.ndarray:
    """Separable 11×11 Gaussian filter, 'valid' output ((H−10)×(W−10)); the kernel is symmetric."""
    rows = np.lib.stride_tricks.sliding_window_view(im, _SSIM_SIZE, axis=0) @ _KERNEL
    return np.lib.stride_tricks.sliding_window_view(rows, _SSIM_SIZE, axis=1) @ _KERNEL


def _mse(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((x - y) ** 2))


def _as_float_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate two uint8 images of equal shape; return them as float64."""
    for name, im in (("a", a), ("b", b)):
        if not isinstance(im, np.ndarray) or im.dtype != np.uint8 or im.ndim not in (2, 3):
            raise ValueError(f"{name}: expected an H×W or H×W×C uint8 array, got {getattr(im, 'dtype', type(im))}")
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return a.astype(np.float64), b.astype(np.float64)
