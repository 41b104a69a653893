"""What the commands know about image files before any codec loads: the output formats, the size limit and
:class:`ImageError`. A leaf (no OpenCV, Pillow or numpy): :mod:`runtime.io` re-exports these names, and the
commands and :mod:`runtime.settings` take them from here so that ``import runtime.infer`` stays cheap (issue 34)."""

from __future__ import annotations

# The CLI collects common.files.IMAGE_SUFFIXES from folders; a GIF given by name is read too (its first frame).
LOSSLESS_SUFFIXES = (".png", ".tiff", ".tif", ".webp", ".bmp")  # what outputs may be written as (WebP: lossless)
DEFAULT_MAX_PIXELS = 200_000_000  # decoded input and output of this size take ~1.2 GB (8-bit RGB)


class ImageError(ValueError):
    """An image file cannot be read or written; the message says why, for the user."""
