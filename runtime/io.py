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
            precision = _jpeg_precision(mapped) if is_jpeg else None
            header = Header(size) if size else read_header(f)
            transparent_gray = None if is_jpeg else _png_transparent_gray(mapped)
            stored_max = None if is_jpeg else _stored_max(mapped)
            aperture = None if is_jpeg else _avif_clean_aperture(mapped)
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
        del data, mapped  # unmaps the file
    if (image is None or image.size == 0) and precision not in (None, 8):
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


def check_size(path: Path, size: tuple[int, int] | int, max_pixels: int) -> None:
    """Raise ImageError when ``size`` ((width, height), or a pixel count) is over ``max_pixels``."""
    pixels = size if isinstance(size, int) else size[0] * size[1]
    if pixels > max_pixels:
        shape = f"{size[0]}×{size[1]} = " if isinstance(size, tuple) else ""
        raise ImageError(
            f"{path}: declares {shape}{pixels / 1e6:.0f} MP, over the limit of {max_pixels / 1e6:.0f} MP "
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


def _png_transparent_gray(png: mmap.mmap) -> int | None:
    """The gray value a gray PNG's tRNS chunk makes transparent, scaled as libpng gives OpenCV 1-, 2- and 4-bit gray
    (stretched to 0–255); None for other files and PNGs without one."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR" or len(png) < 26 or png[25] != 0:  # 0: gray
        return None
    depth, pos = png[24], 8
    while pos + 10 <= len(png):  # chunks: length, type, data, CRC; tRNS comes before the image data
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        if kind == b"tRNS" and length >= 2:
            value = int.from_bytes(png[pos + 8 : pos + 10], "big") & ((1 << depth) - 1)
            return value * (255 // ((1 << depth) - 1)) if depth < 8 else value
        if kind in (b"IDAT", b"IEND"):
            return None
        pos += 12 + length
    return None


def _stored_max(data: mmap.mmap) -> int | None:
    """The largest sample OpenCV's decoder returns, unscaled, for the file ``data`` where that may be below its
    array type's maximum: a 10- or 12-bit AVIF's 1023 or 4095 (in uint16; 255 for an 8-bit one), a 9- to 15-bit
    JPEG 2000's, a binary PNM's maxval (uint8 up to 255, uint16 above; a plain-text one is scaled by OpenCV up to
    255, not above); None for other files."""
    bits = _avif_bit_depth(data) or _jpeg2000_precision(data)
    if bits is not None:
        return (1 << bits) - 1
    if data[:1] != b"P" or data[1:2] not in (b"2", b"3", b"5", b"6"):  # gray and colour PNMs; PAM is refused
        return None
    tokens = re.sub(rb"#[^\r\n]*", b" ", data[2:65536]).split(maxsplit=3)  # width, height, maxval, …
    if len(tokens) < 3 or not tokens[2].isdigit() or len(tokens[2]) > 5:  # OpenCV refuses a maxval over 65535
        return None
    maxval = int(tokens[2])
    return maxval if data[1:2] in (b"5", b"6") or maxval > 255 else None


def _jpeg2000_precision(data: mmap.mmap) -> int | None:
    """The largest component precision (bits) in the SIZ marker segment of a JPEG 2000 codestream, or of a JP2
    file's (in its jp2c box), which sets OpenCV's sample type: 9 to 16 bits come as stored in uint16. None for
    other files."""
    start: int | None = 0
    if data[:12] == b"\0\0\0\x0cjP  \r\n\x87\n":  # the JP2 signature box
        start = next((body for kind, body, _ in _iso_boxes(data, 0, len(data)) if kind == b"jp2c"), None)
    if start is None or data[start : start + 4] != b"\xff\x4f\xff\x51" or start + 42 > len(data):  # SOC, SIZ
        return None
    count = int.from_bytes(data[start + 40 : start + 42], "big")  # Csiz, after Lsiz, Rsiz and 8 sizes and offsets
    sizes = bytes(data[start + 42 : start + 42 + 3 * count])[::3]  # Ssiz, XRsiz, YRsiz of each component
    return max((size & 0x7F) + 1 for size in sizes) if sizes else None  # Ssiz: signed bit, precision - 1


def _avif_bit_depth(avif: mmap.mmap) -> int | None:
    """Bits per sample (8, 10, 12 or 16) of the image libavif decodes from an AVIF; None for other files, or where
    its item's properties do not say. A coded item: its AV1 configuration (av1C); a derived one (a grid, a sample
    transform): its pixel information (pixi), not its inputs' av1C."""
    properties = _avif_item_properties(avif)
    for kind, start, end in properties:
        if kind == b"av1C" and end - start >= 3:
            flags = avif[start + 2]  # seq_tier_0, high_bitdepth, twelve_bit, …
            return 12 if flags & 0x20 else 10 if flags & 0x40 else 8
    for kind, start, end in properties:
        if kind == b"pixi" and end - start >= 6 and avif[start + 4] and 8 <= avif[start + 5] <= 16:
            return avif[start + 5]  # FullBox, channel count, bits of each channel
    return None


def _avif_clean_aperture(avif: mmap.mmap) -> tuple[Fraction, Fraction, Fraction, Fraction] | None:
    """Width, height and horizontal and vertical offset (of its centre from the image's) of the clean aperture box
    (clap) of the image libavif decodes from an AVIF, which viewers crop it to and OpenCV ignores; None for other
    files, or without one (or with a zero denominator)."""
    for kind, start, end in _avif_item_properties(avif):
        if kind == b"clap" and end - start >= 32:
            wn, wd, hn, hd, xn, xd, yn, yd = struct.unpack_from(">IIIIiIiI", avif, start)
            if wd and hd and xd and yd:
                return Fraction(wn, wd), Fraction(hn, hd), Fraction(xn, xd), Fraction(yn, yd)
    return None


def _crop_to_clean_aperture(image: np.ndarray, aperture: tuple[Fraction, Fraction, Fraction, Fraction]) -> np.ndarray:
    """``image`` cropped to a clean ``aperture`` (:func:`_avif_clean_aperture`); the whole image, as Chromium shows
    it, where the aperture is not whole pixels inside it. Contiguous."""
    width, height, dx, dy = aperture
    left, top = dx + (image.shape[1] - width) / 2, dy + (image.shape[0] - height) / 2
    whole = all(value.denominator == 1 for value in (width, height, left, top))
    if not whole or width <= 0 or height <= 0 or left < 0 or top < 0:
        return image
    if left + width > image.shape[1] or top + height > image.shape[0]:
        return image
    return np.ascontiguousarray(image[int(top) : int(top + height), int(left) : int(left + width)])


def _avif_item_properties(avif: mmap.mmap) -> list[tuple[bytes, int, int]]:
    """``(type, body start, body end)`` of the properties of the item libavif decodes from an AVIF: its primary
    item, or the alternative preferred to it (:func:`_preferred_alternative`); [] for other files."""
    if avif[4:8] != b"ftyp":
        return []
    meta = next(((start, end) for kind, start, end in _iso_boxes(avif, 0, len(avif)) if kind == b"meta"), None)
    if meta is None:
        return []
    boxes = {kind: (start, end) for kind, start, end in _iso_boxes(avif, meta[0] + 4, meta[1])}  # FullBox: +4
    primary = _primary_item(avif, boxes.get(b"pitm"))
    if b"iprp" not in boxes or primary is None:
        return []
    primary = _preferred_alternative(avif, boxes.get(b"grpl"), primary)
    properties = {kind: (start, end) for kind, start, end in _iso_boxes(avif, *boxes[b"iprp"])}
    if b"ipco" not in properties:
        return []
    listed = list(_iso_boxes(avif, *properties[b"ipco"]))  # properties are numbered from 1 in this order
    return [listed[i - 1] for i in _item_properties(avif, properties.get(b"ipma"), primary) if 0 < i <= len(listed)]


def _preferred_alternative(data: mmap.mmap, grpl: tuple[int, int] | None, item: int) -> int:
    """The first entity of an alternatives group (altr) listing ``item``, else ``item``: libavif 1.4 stores a 16-bit
    image as a sample transform (sato) of two AV1 images, grouped before a 12-bit primary item that older readers
    show; OpenCV's libavif decodes the former (it writes such files too)."""
    for kind, start, end in _iso_boxes(data, *grpl) if grpl else ():
        if kind == b"altr" and end - start >= 16:  # FullBox, group ID, entity count, entity IDs
            count = min(int.from_bytes(data[start + 8 : start + 12], "big"), (end - start - 12) // 4)
            entities = struct.unpack_from(f">{count}I", data, start + 12)
            if item in entities:
                return entities[0]
    return item


def _iso_boxes(data: mmap.mmap, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """``(type, body start, body end)`` of each ISO BMFF box in ``data[start:end]``; stops at a malformed one."""
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        body = start + 8
        if size == 1 and body + 8 <= end:  # a 64-bit size follows the type
            (size,) = struct.unpack_from(">Q", data, body)
            body += 8
        elif size == 0:  # up to the end
            size = end - start
        if size < body - start or start + size > end:
            return
        yield kind, body, start + size
        start += size


def _primary_item(data: mmap.mmap, pitm: tuple[int, int] | None) -> int | None:
    """The item ID in a primary item box (pitm: a FullBox, then a 16-bit ID in version 0, 32-bit after)."""
    if pitm is None or pitm[1] - pitm[0] < 6:
        return None
    version, start = data[pitm[0]], pitm[0] + 4
    width = 4 if version else 2
    return int.from_bytes(data[start : start + width], "big") if pitm[1] - start >= width else None


def _item_properties(data: mmap.mmap, ipma: tuple[int, int] | None, item: int) -> list[int]:
    """The 1-based ipco indices an item property association box (ipma) gives ``item``; [] when it gives none."""
    if ipma is None:
        return []
    start, end = ipma
    try:
        version, flags = data[start], int.from_bytes(data[start + 1 : start + 4], "big")
        (count,) = struct.unpack_from(">I", data, start + 4)
        pos = start + 8
        for _ in range(count):
            (item_id,) = struct.unpack_from(">I" if version else ">H", data, pos)
            pos += 4 if version else 2
            associations = data[pos]
            pos += 1
            wide = flags & 1  # 15-bit indices instead of 7-bit, after the "essential" bit
            indices = [
                int.from_bytes(data[pos + i * (1 + wide) : pos + (i + 1) * (1 + wide)], "big")
                & (0x7FFF if wide else 0x7F)
                for i in range(associations)
            ]
            pos += associations * (1 + wide)
            if pos > end:
                return []
            if item_id == item:
                return indices
    except (struct.error, IndexError):
        pass
    return []


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
