"""A lighter touch: blend a restoration with the decoded JPEG it came from (``--strength``)."""

from __future__ import annotations

import numbers

import numpy as np

_BAND_BYTES = 1 << 22  # float64 working memory per band of rows: the blend never holds a full-image float copy


def check_strength(strength: float) -> None:
    """Raise ValueError unless ``0 < strength <= 1`` (NaN fails too)."""
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not 0 < strength <= 1:
        raise ValueError(f"strength must be a number in (0, 1], got {strength!r}")


def blend(jpeg: np.ndarray, restored: np.ndarray, strength: float, out: np.ndarray | None = None) -> np.ndarray:
    """``round(jpeg + strength · (restored − jpeg))`` per sample, in the images' own dtype.

    ``jpeg`` and ``restored``: the decoded input and its restoration, arrays of one shape and one dtype (uint8 or
    uint16; H×W gray or H×W×3 RGB, as :func:`runtime.io.read_image` gives them — an alpha channel is not part of the
    pixels: it is kept as read, like the restorer keeps it). Rounding is half-to-even (``np.rint``, as the restorer
    rounds); the result lies between the two inputs, so it needs no clipping. ``strength`` 1 returns ``restored``'s
    values exactly. ``out`` may be ``restored`` itself (blend in place) or a new array of the same shape and dtype;
    returns ``out`` (a new array when None). Works in bands of rows, so memory stays small for any image size.
    """
    check_strength(strength)
    if jpeg.shape != restored.shape or jpeg.dtype != restored.dtype or jpeg.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"expected two uint8 or uint16 images of one shape, got {jpeg.dtype} {jpeg.shape} and "
            f"{restored.dtype} {restored.shape}"
        )
    if out is None:
        out = np.empty_like(restored)
    elif out.shape != restored.shape or out.dtype != restored.dtype:
        raise ValueError(f"out must be a {restored.dtype} array of shape {restored.shape}, got {out.dtype} {out.shape}")
    if strength == 1:
        if out is not restored:
            out[...] = restored
        return out
    row_bytes = max(restored[:1].size * 8, 1)
    rows = max(1, _BAND_BYTES // row_bytes)
    for top in range(0, restored.shape[0], rows):
        band = slice(top, top + rows)
        base = jpeg[band].astype(np.float64)
        out[band] = np.rint(base + strength * (restored[band] - base))
    return out
