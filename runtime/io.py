"""Reading and writing images for the runtime: OpenCV codecs, RGB order, EXIF orientation, alpha, 16 bit.

Contract of :func:`read_image`: pixels are H×W (grayscale) or H×W×3 **RGB**, uint8 or uint16, already
turned upright by the EXIF orientation tag; an alpha channel is split off (kept untouched and re-attached
by :func:`write_image`). CMYK JPEGs are converted to RGB by OpenCV's libjpeg reader (Adobe inverted CMYK
included). Pillow, which reads every header but a JPEG's, decodes what OpenCV would get wrong (8-bit TIFFs with
alpha) and gives the orientation of AVIFs (their rotation and mirror boxes); an AVIF is cropped to its clean
aperture (clap); a gray PNG's transparent gray (tRNS) becomes alpha. Samples OpenCV returns as stored, below their
type's range (a 10- or 12-bit AVIF's, a 9- to 15-bit JPEG 2000's, a PGM/PPM's of a maxval other than 255 or 65535),
are scaled to it. Anything unreadable raises :class:`ImageError` with a message meant for the user.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import cv2
import numpy as np

from common.files import IMAGE_SUFFIXES, atomic_path, atomic_write_bytes  # noqa: F401 (re-exported for the CLI)
from runtime import file_headers
from runtime.formats import DEFAULT_MAX_PIXELS, LOSSLESS_SUFFIXES, ImageError  # noqa: F401 (re-exported)
from runtime.jpeg_quality import JpegQuality, read_jpeg_quality

if TYPE_CHECKING:
    import PIL.Image

_SIXTEEN_BIT_SUFFIXES = (".png", ".tif", ".tiff")  # OpenCV silently writes 8 bit for the others
_EXIF_ORIENTATION_TAG = 0x0112
_TIFF_BITS_PER_SAMPLE = 258


@dataclass
class LoadedImage:
    """A decoded image (see module docstring) and what the runtime needs to know about its file."""

    pixels: np.ndarray  # H×W or H×W×3 RGB, uint8 or uint16
    alpha: np.ndarray | None  # H×W, same dtype as pixels
    jpeg_quality: JpegQuality | None  # estimated IJG quality of a JPEG file, None otherwise
    orientation: int = 1  # the EXIF orientation tag (1–8) that turned the stored pixels upright


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode ``path`` (any format OpenCV reads) into a :class:`LoadedImage`.

    An image whose header declares more than ``max_pixels`` pixels is refused before decoding (a 2.6 MB PNG can
    declare 30000×30000 and would need gigabytes); so is one whose size cannot be read from its header
    (:func:`read_header`). The file is mapped, not read: only what the decoder touches is loaded (a JPEG is
    decoded up to its end-of-image marker, whatever follows it).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise ImageError(f"{path}: empty file")
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            is_jpeg = mapped[:2] == b"\xff\xd8"
            end = _jpeg_end(mapped) if is_jpeg else len(mapped)
            if end is None:
                raise ImageError(f"{path}: truncated JPEG (no end-of-image marker)")
            size = _jpeg_frame_size(mapped) if is_jpeg else None
            header = Header(size) if size else read_header(f)
            transparent_gray = None if is_jpeg else file_headers.png_transparent_gray(mapped)
            stored_max = None if is_jpeg else file_headers.stored_max(mapped)
            aperture = None if is_jpeg else file_headers.avif_clean_aperture(mapped)
            check_size(path, header.size, max_pixels)
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror or e})") from None
    meta_types, meta = (), ()
    if header.pillow_decodes:
        del mapped
        image = _decode_with_pillow(path)
    else:
        data = np.frombuffer(mapped, np.uint8, count=end)
        try:
            flags = cv2.IMREAD_COLOR if _is_os2_colour_bmp(mapped) else cv2.IMREAD_UNCHANGED
            image, meta_types, meta = cv2.imdecodeWithMetadata(data, flags)
        except cv2.error as e:  # OpenCV asserts on images over its own size limit and on some malformed files
            raise ImageError(f"{path}: OpenCV cannot decode it ({e.err})") from None
        precision = _jpeg_precision(mapped) if is_jpeg and (image is None or image.size == 0) else None
        del data, mapped  # unmaps the file
        if precision not in (None, 8):  # looked up only when OpenCV returned nothing: not on every JPEG's path
            raise ImageError(f"{path}: a {precision}-bit JPEG; OpenCV's reader decodes 8-bit JPEGs only")
    if image is None or image.size == 0:
        raise ImageError(f"{path}: not an image OpenCV can decode (corrupt, or an unsupported format)")
    if image.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"{path}: unsupported sample type {image.dtype} (8- and 16-bit integer images only)")
    if aperture is not None:  # OpenCV ignores an AVIF's crop (clap)
        image = _crop_to_clean_aperture(image, aperture)
    if stored_max and stored_max < np.iinfo(image.dtype).max:  # OpenCV returned them as stored
        image = _stretch(image, stored_max)
    pixels, alpha = _split_channels(image, path)
    if alpha is None and pixels.ndim == 2 and transparent_gray is not None:  # OpenCV ignores a gray PNG's tRNS
        alpha = np.where(pixels == transparent_gray, 0, np.iinfo(pixels.dtype).max).astype(pixels.dtype)
    orientation = _exif_orientation(meta_types, meta) if header.orientation is None else header.orientation
    pixels = apply_orientation(pixels, orientation)
    alpha = None if alpha is None else apply_orientation(alpha, orientation)
    return LoadedImage(pixels, alpha, read_jpeg_quality(path) if is_jpeg else None, orientation)


def _distinct_megapixels(pixels: int, limit: int) -> tuple[str, str]:
    """Two pixel counts in MP, to 3 significant digits, or more where 3 would print them equal (1.8 MP over 1.8 MP):
    a small --max-pixels (0.001) reads as such, not as 0 MP."""
    for digits in (3, 6, 9):
        texts = tuple(
            np.format_float_positional(n / 1e6, precision=digits, unique=False, fractional=False, trim="-")
            for n in (pixels, limit)
        )
        if texts[0] != texts[1]:
            return texts
    return texts


def check_size(path: Path, size: tuple[int, int] | int, max_pixels: int) -> None:
    """Raise ImageError when ``size`` ((width, height), or a pixel count) is over ``max_pixels``."""
    pixels = size if isinstance(size, int) else size[0] * size[1]
    if pixels > max_pixels:
        shape = f"{size[0]}×{size[1]} = " if isinstance(size, tuple) else ""
        declared, limit = _distinct_megapixels(pixels, max_pixels)
        raise ImageError(
            f"{path}: declares {shape}{declared} MP, over the limit of {limit} MP "
            "(raise it with --max-pixels if the machine has the memory)"
        )


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
    suffix = path.suffix or "(no suffix)"
    try:  # encoded in memory, so that a failing write is reported as what it is (a full disk, a quota)
        ok, encoded = cv2.imencode(path.suffix, out)
    except cv2.error as e:
        raise ImageError(f"{path}: cannot encode as {suffix}: {e.msg}") from None
    if not ok:
        raise ImageError(f"{path}: cannot write {out.dtype} images as {suffix}")
    del out
    try:
        atomic_write_bytes(path, encoded.data)
    except OSError as e:
        raise ImageError(f"{path}: cannot write ({e.strerror or e})") from None


@dataclass(frozen=True)
class Header:
    """What :func:`read_header` reads of an image file without decoding its pixels."""

    size: tuple[int, int] | int  # (width, height), or the pixel count where Pillow's own bomb check stopped it
    orientation: int | None = None  # the EXIF orientation (1–8) that turns it upright; None: what OpenCV reads
    pillow_decodes: bool = False  # OpenCV would lose or alter its alpha (an 8-bit TIFF with alpha): Pillow decodes it


def read_header(f: BinaryIO) -> Header:
    """The :class:`Header` of the image file ``f``, read by Pillow without decoding (it seeks to where each format
    keeps its size: a TIFF's IFD at the end, a JPEG's SOF after any amount of APP data); only the pixel count when
    Pillow's own bomb check stops it. ImageError when no header gives the size: formats Pillow does not know
    (Radiance HDR, PAM, …) are refused rather than decoded blind."""
    import PIL.Image  # here: JPEGs are sized without it (_jpeg_frame_size)

    name = getattr(f, "name", "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(f) as image:
                return _header(image)
    except PIL.Image.DecompressionBombError as e:  # over Pillow's limit (2 × 89 MP by default): its count decides
        counted = re.search(r"\((\d+) pixels\)", str(e))
        return Header(int(counted.group(1)) if counted else 1 << 62)
    except Exception as e:  # a header reader failing in any way on a hostile header: the size is unknown
        raise ImageError(
            f"{name}: not an image this tool can decode (unknown format or corrupt header; its size must be "
            f"readable before decoding: {type(e).__name__})"
        ) from None
    finally:
        f.seek(0)


def _header(image: PIL.Image.Image) -> Header:
    """What OpenCV's decoder would get wrong in the file Pillow opened as ``image``, and its size.

    An 8-bit TIFF with alpha: OpenCV reads it through libtiff's RGBA interface, which drops a gray image's alpha and
    premultiplies colour by alpha; Pillow decodes it. An AVIF: OpenCV ignores its rotation and mirror boxes (irot,
    imir), which Pillow reads as the EXIF orientation (over an EXIF block's, as viewers do)."""
    if image.format == "AVIF":
        orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        return Header(image.size, orientation if orientation in range(1, 9) else 1)
    bits = image.tag_v2.get(_TIFF_BITS_PER_SAMPLE) if image.format == "TIFF" else None
    if image.has_transparency_data and bits is not None and set(bits if isinstance(bits, tuple) else (bits,)) == {8}:
        return Header(image.size, pillow_decodes=True)
    return Header(image.size)


def _decode_with_pillow(path: Path) -> np.ndarray:
    """The TIFF at ``path`` (one :func:`_header` gives to Pillow) as OpenCV gives other TIFFs: turned upright by its
    Orientation tag, gray+alpha (two channels) or BGRA, straight alpha."""
    import PIL.Image
    import PIL.ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            # a file, not a path: Pillow 13 maps an uncompressed one opened by path, turned 90° into garbage
            with open(path, "rb") as f, PIL.Image.open(f) as image:
                image.load()  # Pillow 13 turns a TIFF upright here (and drops the tag): not turned twice
                upright = PIL.ImageOps.exif_transpose(image)
                gray = upright.mode in ("LA", "La")
                decoded = np.asarray(upright.convert("LA" if gray else "RGBA"))
    except Exception as e:  # a decoder failing in any way on corrupt data
        raise ImageError(f"{path}: not an image Pillow can decode (corrupt: {type(e).__name__})") from None
    return decoded if gray else cv2.cvtColor(decoded, cv2.COLOR_RGBA2BGRA)


def _crop_to_clean_aperture(image: np.ndarray, aperture: tuple[Fraction, Fraction, Fraction, Fraction]) -> np.ndarray:
    """``image`` cropped to a clean ``aperture`` (:func:`runtime.file_headers.avif_clean_aperture`); the whole image,
    as Chromium shows it, where the aperture is not whole pixels inside it. Contiguous."""
    width, height, dx, dy = aperture
    left, top = dx + (image.shape[1] - width) / 2, dy + (image.shape[0] - height) / 2
    whole = all(value.denominator == 1 for value in (width, height, left, top))
    if not whole or width <= 0 or height <= 0 or left < 0 or top < 0:
        return image
    if left + width > image.shape[1] or top + height > image.shape[0]:
        return image
    return np.ascontiguousarray(image[int(top) : int(top + height), int(left) : int(left + width)])


def _stretch(image: np.ndarray, stored_max: int) -> np.ndarray:
    """``image`` with samples of 0…``stored_max`` scaled to the full range of its type, rounded to the nearest
    (1023 → 65535, 512 → 32800); samples over ``stored_max`` (a PNM may hold them) become the maximum. In place
    where ``image`` is contiguous (as decoded)."""
    top = np.iinfo(image.dtype).max
    lut = np.minimum(np.round(np.arange(top + 1) * (top / stored_max)), top).astype(image.dtype)
    image = np.ascontiguousarray(image)
    flat = image.reshape(-1)  # a view of the contiguous array
    for start in range(0, flat.size, 1 << 18):  # in blocks: indexing converts a whole index array to 64 bits
        block = flat[start : start + (1 << 18)]
        block[...] = lut[block]
    return image


def _is_os2_colour_bmp(head: mmap.mmap) -> bool:
    """An OS/2 bitmap (12-byte BITMAPCOREHEADER) of over 8 bits per pixel: OpenCV decodes those as gray unless
    asked for colour (they have no alpha to keep)."""
    return head[:2] == b"BM" and head[14:18] == b"\x0c\0\0\0" and int.from_bytes(head[24:26], "little") > 8


def jpeg_markers(jpeg: mmap.mmap | bytes) -> Iterator[tuple[int, int]]:
    """``(marker, offset)`` of each marker of a JPEG's header, up to and including the first start of scan (0xDA):
    segments (which may hold a thumbnail with its own markers) are skipped by their lengths; stops early at anything
    that is not a marker or runs past the end."""
    pos = 2
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF:
        marker = jpeg[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        yield marker, pos
        if marker == 0xDA:
            return
        pos += 2 if 0xD0 <= marker <= 0xD7 or marker == 0x01 else 2 + int.from_bytes(jpeg[pos + 2 : pos + 4], "big")


def _jpeg_end(jpeg: mmap.mmap | bytes) -> int | None:
    """The offset just past the main image's EOI marker: the first EOI after the first scan ends it (scan data cannot
    contain one: 0xFF is stuffed there). None when there is none (a truncated file). Data after EOI (motion
    photos carry a video) is legal and left unread."""
    for marker, pos in jpeg_markers(jpeg):
        if marker == 0xDA:
            end = jpeg.find(b"\xff\xd9", pos)
            return None if end < 0 else end + 2
    return None


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start of frame; not DHT, JPG, DAC


def _jpeg_frame_size(jpeg: mmap.mmap | bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a JPEG's first frame header, or None (no complete one before the scan, or a height
    left to a DNL marker): Pillow then reads it (:func:`read_header`). Pillow is not imported for the JPEGs this
    reads: a one-image command saves its import (issue 34)."""
    for marker, pos in jpeg_markers(jpeg):
        if marker in _SOF_MARKERS:
            if pos + 9 > len(jpeg) or int.from_bytes(jpeg[pos + 2 : pos + 4], "big") < 8:
                return None
            height, width = struct.unpack(">HH", jpeg[pos + 5 : pos + 9])
            return (width, height) if height and width else None
    return None


def _jpeg_precision(jpeg: mmap.mmap) -> int | None:
    """Bits per sample in a JPEG's first frame header (8; 12 or 16 in extended and lossless JPEGs), None without one."""
    for marker, pos in jpeg_markers(jpeg):
        if marker in _SOF_MARKERS:
            return jpeg[pos + 4] if pos + 4 < len(jpeg) else None
    return None


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
        alpha = np.ascontiguousarray(image[..., 3])
        if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]):
            return np.ascontiguousarray(image[..., 0]), alpha  # gray+alpha, which OpenCV expands to BGRA
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB), alpha
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
    return _tiff_tags(exif, (_EXIF_ORIENTATION_TAG,)).get(_EXIF_ORIENTATION_TAG, 1)


def _tiff_tags(tiff: bytes, wanted: tuple[int, ...]) -> dict[int, int]:
    """SHORT or LONG values of the ``wanted`` tags of a TIFF structure's first IFD (absent or malformed: left out)."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    found: dict[int, int] = {}
    if order is None or len(tiff) < 8:
        return found
    try:
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for i in range(count):
            tag, kind, _, value = struct.unpack_from(order + "HHI4s", tiff, ifd + 2 + 12 * i)
            if tag in wanted and kind in (3, 4):  # SHORT, LONG
                found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), value[: 2 if kind == 3 else 4])[0]
    except struct.error:
        pass
    return found


def undo_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """An upright image turned back as the file stores it: the inverse of :func:`apply_orientation`."""
    return apply_orientation(image, {6: 8, 8: 6}.get(orientation, orientation))  # the others undo themselves


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
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
