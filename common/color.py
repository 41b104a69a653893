"""Colour conversions used by the field's evaluation protocol (MATLAB ``rgb2ycbcr`` conventions)."""

from __future__ import annotations

import numpy as np

# MATLAB rgb2ycbcr on uint8 input: studio-swing BT.601, Y in [16, 235], Cb/Cr in [16, 240].
_RGB_TO_YCBCR = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], dtype=np.float64
)
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])
# JFIF (ITU-T T.871) full-range RGB → YCbCr: what libjpeg codes (chroma centred on 128 for 8 bits, 0.5 for [0, 1]).
JFIF_RGB_TO_YCBCR = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """MATLAB BT.601 luma of an H×W×3 uint8 RGB image → H×W uint8 in [16, 235].

    ``Y = round(16 + (65.481 R + 128.553 G + 24.966 B) / 255)``, the Y every published JPEG row uses.
    """
    _check_rgb_uint8(rgb)
    y = 16.0 + rgb.astype(np.float64) @ _RGB_TO_YCBCR[0] / 255.0
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 RGB → H×W×3 float64 YCbCr (MATLAB ranges, not rounded)."""
    _check_rgb_uint8(rgb)
    return rgb.astype(np.float64) @ _RGB_TO_YCBCR.T / 255.0 + _YCBCR_OFFSET


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr`: H×W×3 float YCbCr → H×W×3 uint8 RGB (rounded, clipped)."""
    rgb = (ycbcr.astype(np.float64) - _YCBCR_OFFSET) @ np.linalg.inv(_RGB_TO_YCBCR).T * 255.0
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def with_luma(rgb: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``rgb`` (H×W×3 uint8) with its MATLAB-Y replaced by ``y`` (H×W float in [0, 1]: a Y-channel model's output)
    → H×W×3 uint8. The new Y is clipped and rounded to 8 bit, as any Y output is, and Cb/Cr are kept: how a Y model
    restores a colour image, in the runtime and in the benchmarks alike."""
    ycbcr = rgb_to_ycbcr(rgb)
    ycbcr[..., 0] = np.rint(np.clip(y, 0, 1) * 255.0)
    return ycbcr_to_rgb(ycbcr)


def _check_rgb_uint8(rgb: np.ndarray) -> None:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")


def rgb_to_ycbcr_jfif(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 RGB → H×W×3 float64 full-range YCbCr as a JPEG codes it (:data:`JFIF_RGB_TO_YCBCR`), not rounded."""
    _check_rgb_uint8(rgb)
    return rgb.astype(np.float64) @ np.array(JFIF_RGB_TO_YCBCR).T + np.array([0.0, 128.0, 128.0])
