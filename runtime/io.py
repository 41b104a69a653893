"""Reading and writing images for the runtime: OpenCV codecs, RGB order, EXIF orientation, alpha, 16 bit.

Contract of :func:`read_image`: pixels are H×W (grayscale) or H×W×3 **RGB**, uint8 or uint16, already
turned upright by the EXIF orientation tag; an alpha channel is split off (kept untouched and re-attached
by :func:`write_image`). CMYK JPEGs are converted to RGB by OpenCV's libjpeg reader (Adobe inverted CMYK
included). Anything unreadable raises :class:`ImageError` with a message meant for the user.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common.files import atomic_path
from runtime.jpeg_quality import JpegQuality, jpeg_quality

# Formats the CLI collects from folders (OpenCV decodes all of them in its standard wheels).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff")
_SIXTEEN_BIT_SUFFIXES = (".png", ".tif", ".tiff")  # OpenCV silently writes 8 bit for the others
_EXIF_ORIENTATION_TAG = 0x0112


class ImageError(ValueError):
    """An image file cannot be read or written; the message says why, for the user."""


@dataclass
class LoadedImage:
    """A decoded image (see module docstring) and what the runtime needs to know about its file."""

    pixels: np.ndarray  # H×W or H×W×3 RGB, uint8 or uint16
    alpha: np.ndarray | None  # H×W, same dtype as pixels
    jpeg_quality: JpegQuality | None  # estimated IJG quality of a JPEG file, None otherwise


def read_image(path: str | os.PathLike) -> LoadedImage:
    """Decode ``path`` (any format OpenCV reads) into a :class:`LoadedImage`."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror or e})") from None
    if data.size == 0:
        raise ImageError(f"{path}: empty file")
    is_jpeg = data[:2].tobytes() == b"\xff\xd8"
    if is_jpeg and not _has_end_of_image(data.tobytes()):
        raise ImageError(f"{path}: truncated JPEG (no end-of-image marker)")
    image, meta_types, meta = cv2.imdecodeWithMetadata(data, cv2.IMREAD_UNCHANGED)
    del data
    if image is None or image.size == 0:
        raise ImageError(f"{path}: not an image OpenCV can decode (corrupt, or an unsupported format)")
    if image.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"{path}: unsupported sample type {image.dtype} (8- and 16-bit integer images only)")
    pixels, alpha = _split_channels(image, path)
    orientation = _exif_orientation(meta_types, meta)
    pixels = _apply_orientation(pixels, orientation)
    alpha = None if alpha is None else _apply_orientation(alpha, orientation)
    return LoadedImage(pixels, alpha, jpeg_quality(path) if is_jpeg else None)


def write_image(
    path: str | os.PathLike, pixels: np.ndarray, alpha: np.ndarray | None = None, in_place: bool = False
) -> None:
    """Write H×W or H×W×3 RGB ``pixels`` (+ optional H×W ``alpha``) atomically; the format follows the suffix.

    ``in_place``: the caller gives up ``pixels``; RGB→BGR then reuses its memory instead of a full-size copy.
    """
    path = Path(path)
    if pixels.dtype == np.uint16 and path.suffix.lower() not in _SIXTEEN_BIT_SUFFIXES:
        raise ImageError(f"{path}: {path.suffix or '(no suffix)'} cannot store 16-bit images; use .png or .tiff")
    if alpha is not None:
        gray = pixels.ndim == 2
        out = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR if gray else cv2.COLOR_RGB2BGR)
        out = np.dstack([out, alpha])
    else:
        out = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR, dst=pixels if in_place else None)
    try:
        with atomic_path(path) as tmp:
            try:
                ok = cv2.imwrite(str(tmp), out)
            except cv2.error as e:
                raise ImageError(f"{path}: cannot encode as {path.suffix or '(no suffix)'}: {e.msg}") from None
            if not ok:
                raise ImageError(f"{path}: cannot write {out.dtype} images as {path.suffix or '(no suffix)'}")
    except OSError as e:
        raise ImageError(f"{path}: cannot write ({e.strerror or e})") from None


def _has_end_of_image(jpeg: bytes) -> bool:
    """An EOI marker after the first scan (scan data cannot contain one: 0xFF is stuffed there).

    Searches the whole file, since data appended after EOI (motion photos carry a video) is legal.
    """
    scan = jpeg.find(b"\xff\xda")
    return scan >= 0 and jpeg.find(b"\xff\xd9", scan) >= 0


def _split_channels(image: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """OpenCV's BGR/BGRA/gray/gray+alpha → (gray or RGB pixels, alpha or None)."""
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 1:
        return image.reshape(image.shape[:2]), None
    if channels == 2:
        return np.ascontiguousarray(image[..., 0]), np.ascontiguousarray(image[..., 1])
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image), None
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB), np.ascontiguousarray(image[..., 3])
    raise ImageError(f"{path}: unsupported channel count {channels}")


def _exif_orientation(meta_types: tuple, meta: tuple) -> int:
    """The EXIF orientation tag (1–8) from OpenCV's metadata chunks; 1 when absent or unparsable."""
    for kind, chunk in zip(meta_types, meta, strict=False):
        if kind == cv2.IMAGE_METADATA_EXIF:
            value = _tiff_orientation(np.asarray(chunk, dtype=np.uint8).tobytes())
            if value in range(1, 9):
                return value
    return 1


def _tiff_orientation(exif: bytes) -> int:
    """Orientation entry of IFD0 in a TIFF-structured EXIF block (with or without the ``Exif\\0\\0`` prefix)."""
    if exif.startswith(b"Exif\x00\x00"):
        exif = exif[6:]
    order = {b"II": "<", b"MM": ">"}.get(exif[:2])
    if order is None or len(exif) < 8:
        return 1
    try:
        (ifd,) = struct.unpack_from(order + "I", exif, 4)
        (count,) = struct.unpack_from(order + "H", exif, ifd)
        for i in range(count):
            tag, kind, _, value = struct.unpack_from(order + "HHI2s", exif, ifd + 2 + 12 * i)
            if tag == _EXIF_ORIENTATION_TAG and kind == 3:  # SHORT
                return struct.unpack(order + "H", value)[0]
    except struct.error:
        pass
    return 1


def _apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn a stored image upright (EXIF 2–8: mirrors and rotations); contiguous result."""
    if orientation == 1:
        return image
    if orientation in (5, 6, 7, 8):
        image = np.swapaxes(image, 0, 1)  # transpose (5); 6 = transpose + mirror, 8 = transpose + flip, 7 = both
        flip_x, flip_y = orientation in (6, 7), orientation in (7, 8)
    else:
        flip_x, flip_y = orientation in (2, 3), orientation in (3, 4)
    if flip_x:
        image = image[:, ::-1]
    if flip_y:
        image = image[::-1]
    return np.ascontiguousarray(image)
