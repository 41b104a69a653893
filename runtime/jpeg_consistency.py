"""Consistency with the JPEG file: project a restoration onto what the file's DCT coefficients allow.

A JPEG stores, per 8×8 block and component, quantised DCT coefficients ``c = round(F / Q)``. The original photo's
coefficients ``F`` therefore lie in ``[(c − ½)·Q, (c + ½)·Q]``; a restoration whose coefficients leave those
intervals contradicts the file. :func:`project` clamps them back — in the DCT domain of each YCbCr plane that is
the Euclidean projection onto the set the file allows, and the photo lies in that set, so it can only move the
output towards the photo (bringing the result back into 8-bit RGB adds small deviations) — and
:func:`consistent_share` measures the share of luma coefficients that quantise back to the file's values (the "never
worse" check).

What is exact and what is not:

- **Luma** (and gray) is exact: the full-resolution Y plane is what the encoder transformed, with libjpeg's RGB→YCbCr
  (JFIF, full range) and level shift 128; the JPEG DCT is the orthonormal 8×8 DCT-II.
- **Chroma at the coded sampling** (4:4:4, 4:2:2, 4:2:0, any integer factor) is exact for files written by libjpeg
  (OpenCV, Pillow, most software): its encoder downsamples chroma by a box average of each fv×fh cell, so the
  constraint is on the box average of the output's chroma. The projection clamps that average's coefficients and
  adds the correction back replicated over each cell, which is the least-squares change whose box average is the
  clamped one (box-averaging a replicated plane gives it back exactly). Files from encoders that downsample with
  another filter (some cameras, Photoshop) get the same treatment, an approximation there; the luma part, and the
  check, stay exact.
- **Edge blocks** that the image covers only partly (a side not a multiple of 8, or of 8·factor for chroma) were
  padded by the encoder by replicating the last row/column; they are left as the network made them, and the check
  counts the blocks inside the image only.
- The result is rounded to 8-bit RGB (and clipped to [0, 255]): coefficients clamped into an interval are put
  :data:`MARGIN` inside it (when the interval is wide enough), so that this rounding does not push them back out.

Blocks never straddle whole MCU rows, so the work runs strip by strip (:data:`_STRIP_BLOCKS` block rows): its float
copies take memory for a strip, not the image, and stay in the CPU's caches (3× faster here than in one piece).

Coefficients are read by ``jpeglib`` (libjpeg's own Huffman decoding: baseline, progressive, restart markers, any
sampling), a dependency of the toolkit; a Motion-JPEG packet without Huffman tables gets the standard ones
(:func:`with_huffman_tables`).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from runtime.io import ImageError, apply_orientation, jpeg_markers, undo_orientation
from runtime.settings import CONSISTENT_INSTALL_HINT

# project, bring into 8-bit RGB, again: bringing into range and rounding move a few out again (LIVE1 q40, worst of 4
# images: 99.84 % of luma coefficients consistent after one round, 99.96 % after two, 99.98 % after three)
_ROUNDS = 2
_STRIP_BLOCKS = 16  # block rows per strip (128 image rows, 256 for 4:2:0): bounds the float copies' memory
# libjpeg's RGB → YCbCr (jccolor.c, JFIF full range) with the DCT's level shift: Y − 128, and Cb/Cr without their
# offset of 128, which the shift takes off again.
_RGB_TO_YCC = np.array(
    [[0.299, 0.587, 0.114], [-0.168735892, -0.331264108, 0.5], [0.5, -0.418687589, -0.081312411]], dtype=np.float32
)
_SHIFT = np.array([128, 0, 0], dtype=np.float32)
_TO_YCC = np.hstack([_RGB_TO_YCC, -_SHIFT[:, None]])  # affine 3×4 matrices for cv2.transform (numpy's 3×3
_YCC_TO_RGB = np.linalg.inv(_RGB_TO_YCC.astype(np.float64)).astype(np.float32)  # matmul is 50× slower)
_TO_RGB = np.hstack([_YCC_TO_RGB, (_YCC_TO_RGB @ _SHIFT)[:, None]])
_DCT = np.array(
    [[np.sqrt((1 if u == 0 else 2) / 8) * np.cos((2 * x + 1) * u * np.pi / 16) for x in range(8)] for u in range(8)],
    dtype=np.float32,
)  # orthonormal DCT-II: F = D · block · Dᵀ (the JPEG DCT)
# How far inside its interval a clamped coefficient goes: the most that rounding a block's pixels by ≤ ½ can move
# each coefficient (smooth blocks round all pixels alike, so a small margin is not enough), ≤ 4 DCT units.
MARGIN = (0.5 * np.outer(np.abs(_DCT).sum(axis=1), np.abs(_DCT).sum(axis=1))).astype(np.float32)


class ConsistencyError(ImageError):
    """A file that the consistent mode cannot work on (not a JPEG, 16-bit, an unsupported colour space)."""


class ReaderMissing(RuntimeError):
    """``jpeglib`` (a dependency of the toolkit) is not installed."""


@dataclass(frozen=True)
class Component:
    """One component of a JPEG: its quantised coefficients (blocks_y × blocks_x × 8 × 8, natural order), its
    quantisation table (8 × 8) and its downsampling factor (vertical, horizontal) against the full resolution."""

    coefficients: np.ndarray
    table: np.ndarray
    factor: tuple[int, int]


@dataclass(frozen=True)
class JpegCoefficients:
    """What a JPEG file says about its image, in the file's orientation (``height`` × ``width``, before EXIF
    ``orientation`` is applied): luma (or gray) first, then Cb and Cr."""

    height: int
    width: int
    components: tuple[Component, ...]
    orientation: int = 1


def check_reader() -> None:
    """Raise :class:`ReaderMissing` (naming the extra to install) unless ``jpeglib`` can be imported."""
    try:
        import jpeglib  # noqa: F401
    except ImportError:
        raise ReaderMissing(f"consistent mode needs the jpeglib package: {CONSISTENT_INSTALL_HINT}") from None


def read_coefficients(path: str | os.PathLike, orientation: int = 1) -> JpegCoefficients:
    """The quantised DCT coefficients and tables of the JPEG at ``path`` (``orientation``: its EXIF tag, as
    :attr:`runtime.io.LoadedImage.orientation` gives it). ConsistencyError for a file that is not an 8-bit YCbCr or
    gray JPEG; ReaderMissing without ``jpeglib``."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            is_jpeg = f.read(2) == b"\xff\xd8"
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror or e})") from None
    if not is_jpeg:
        raise ConsistencyError(f"{path}: consistent mode needs a JPEG file (the constraint is its DCT coefficients)")
    return _read_jpeg(path, str(path), orientation)


def read_packet_coefficients(data: bytes, name: str) -> JpegCoefficients:
    """:func:`read_coefficients` of one JPEG held in memory: a Motion-JPEG video frame's packet (``name``: where it
    is, for messages). A packet without Huffman tables (AVI's MJPEG leaves them out) gets the standard ones first
    (:func:`with_huffman_tables`), as every MJPEG decoder assumes them."""
    if data[:2] != b"\xff\xd8":
        raise ConsistencyError(f"{name}: not a JPEG (consistent mode needs each frame's DCT coefficients)")
    with tempfile.TemporaryDirectory(prefix="wcdgan-frame-") as folder:  # jpeglib reads files only
        path = Path(folder) / "frame.jpg"
        path.write_bytes(with_huffman_tables(data))
        return _read_jpeg(path, name, 1)


# ITU-T T.81 Annex K.3's Huffman tables as one DHT segment (DC 0, AC 0, DC 1, AC 1): what libjpeg writes unless it
# optimises, and what a Motion-JPEG frame without a DHT segment is coded with (the AVI1 convention).
STANDARD_HUFFMAN_TABLES = bytes.fromhex(
    "ffc401a2"
    "0000010501010101010100000000000000000102030405060708090a0b100002010303020403050504040000017d01020300041105122131"
    "410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a53"
    "5455565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8"
    "b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa01000301010101010101010100000000"
    "00000102030405060708090a0b1100020102040403040705040400010277000102031104052131061241510761711322328108144291a1b1"
    "c109233352f0156272d10a162434e125f11718191a262728292a35363738393a434445464748494a535455565758595a636465666768696a"
    "737475767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4"
    "d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa"
)


def with_huffman_tables(jpeg: bytes) -> bytes:
    """``jpeg`` as it is when its header defines Huffman tables (a DHT segment before the scan), else with
    :data:`STANDARD_HUFFMAN_TABLES` inserted before its start of scan (a header without one is returned as it is:
    the reader says what is wrong)."""
    markers = dict(jpeg_markers(jpeg))  # marker → offset (the last of each kind; SOS ends the header)
    if 0xC4 in markers or 0xDA not in markers:
        return jpeg
    return jpeg[: markers[0xDA]] + STANDARD_HUFFMAN_TABLES + jpeg[markers[0xDA] :]


def _read_jpeg(path: Path, name: str, orientation: int) -> JpegCoefficients:
    """:func:`read_coefficients` of the JPEG file ``path`` (named ``name`` in messages)."""
    check_reader()
    import jpeglib

    try:
        jpeg = jpeglib.read_dct(str(path))
        planes = [jpeg.Y, *((jpeg.Cb, jpeg.Cr) if jpeg.has_chrominance else ())]
        space = str(jpeg.jpeg_color_space)
    except Exception as e:  # libjpeg's own errors (corrupt data, 12-bit samples) come as various types
        raise ConsistencyError(f"{name}: cannot read its DCT coefficients ({type(e).__name__}: {e})") from None
    if not space.endswith(("YCbCr", "GRAYSCALE")) or jpeg.num_components != len(planes):
        raise ConsistencyError(f"{name}: consistent mode handles YCbCr and gray JPEGs, not {space.split('_')[-1]}")
    sampling = np.asarray(jpeg.samp_factor).reshape(-1, 2)  # (vertical, horizontal) per component
    tables = np.asarray(jpeg.qt)
    components = []
    for i, plane in enumerate(planes):
        (v, h), (max_v, max_h) = sampling[i], sampling.max(axis=0)
        if max_v % v or max_h % h:
            raise ConsistencyError(f"{name}: sampling factors {sampling.tolist()} are not integer ratios")
        table = tables[np.asarray(jpeg.quant_tbl_no)[i]].astype(np.float32)
        components.append(Component(np.asarray(plane), table, (int(max_v // v), int(max_h // h))))
    if components[0].factor != (1, 1):  # the luma carries the image's full resolution in every usual file
        raise ConsistencyError(f"{name}: sampling factors {sampling.tolist()} leave the luma subsampled")
    return JpegCoefficients(int(jpeg.height), int(jpeg.width), tuple(components), orientation)


def project(image: np.ndarray, jpeg: JpegCoefficients) -> np.ndarray:
    """``image`` (the restoration: H×W×3 RGB or H×W gray, uint8, upright) with its DCT coefficients clamped into
    the intervals that ``jpeg`` allows (see the module docstring for what is exact); a new array, same shape."""
    stored = _stored_orientation(image, jpeg)
    gray = stored.ndim == 2
    if gray != (len(jpeg.components) == 1):
        kind = "gray" if gray else "colour"
        raise ConsistencyError(f"a {kind} image cannot be projected onto a {len(jpeg.components)}-component JPEG")
    rows = 8 * max(c.factor[0] for c in jpeg.components) * _STRIP_BLOCKS  # whole MCU rows: strips are independent
    out = np.empty_like(stored)
    for top in range(0, stored.shape[0], rows):
        strip = [_rows_of(c, top, rows) for c in jpeg.components]
        out[top : top + rows] = _project_strip(stored[top : top + rows], strip)
    return apply_orientation(out, jpeg.orientation)


def _rows_of(component: Component, top: int, rows: int) -> Component:
    """``component`` restricted to the block rows under image rows ``top`` to ``top + rows`` (MCU-aligned)."""
    first, count = top // (8 * component.factor[0]), rows // (8 * component.factor[0])
    return dataclasses.replace(component, coefficients=component.coefficients[first : first + count])


def _project_strip(pixels: np.ndarray, components: list[Component]) -> np.ndarray:
    """:func:`project` of a strip of whole MCU rows (file orientation), given the components' blocks under it."""
    gray = pixels.ndim == 2
    out = pixels
    for _ in range(_ROUNDS):
        ycc = _to_ycc(out)
        planes = [ycc] if gray else [ycc[..., k] for k in range(3)]
        clamped = [_project_plane(plane, component) for plane, component in zip(planes, components, strict=True)]
        if not any(clamped):
            break
        rgb = np.clip(ycc + 128, 0, 255) if gray else _desaturate_into_gamut(cv2.transform(ycc, _TO_RGB))
        out = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return out


def consistent_share(image: np.ndarray, jpeg: JpegCoefficients) -> float:
    """The share (0–1) of luma DCT coefficients of ``image`` (uint8 RGB or gray, upright), in the 8×8 blocks inside
    it, that quantise to the values stored in ``jpeg``: the image's own coefficients (luma not rounded, exact DCT).
    The original photo scores 0.996–0.9995 at q10–q40 and less at high qualities (on LIVE1), since the encoder
    rounded its luma to integers and used an integer DCT; a re-encode of any image differs from this measure in
    about as many coefficients."""
    stored = _stored_orientation(image, jpeg)
    y = stored.astype(np.float32) if stored.ndim == 2 else cv2.transform(stored.astype(np.float32), _RGB_TO_YCC[:1])
    luma = jpeg.components[0]
    rows, cols = y.shape[0] // 8, y.shape[1] // 8
    if rows * cols == 0:
        return 1.0
    quantised = np.rint(_dct_blocks(y[: rows * 8, : cols * 8] - 128) / luma.table)
    return float(np.mean(quantised == luma.coefficients[:rows, :cols]))


def _stored_orientation(image: np.ndarray, jpeg: JpegCoefficients) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ConsistencyError(f"consistent mode works on 8-bit images (JPEG samples), not {image.dtype}")
    stored = undo_orientation(image, jpeg.orientation)
    if stored.shape[:2] != (jpeg.height, jpeg.width):
        raise ConsistencyError(
            f"image of {stored.shape[1]}×{stored.shape[0]} does not match the JPEG's {jpeg.width}×{jpeg.height}"
        )
    return stored


def _to_ycc(image: np.ndarray) -> np.ndarray:
    """Gray or RGB (any number type) → level-shifted float32 Y or YCbCr as the JPEG encoder transforms it."""
    if image.ndim == 2:
        return image.astype(np.float32) - 128
    return cv2.transform(image.astype(np.float32), _TO_YCC)


def _desaturate_into_gamut(rgb: np.ndarray) -> np.ndarray:
    """Float RGB brought into [0, 255], in place, by moving each pixel out of range towards the gray of its own luma
    (clipped to [0, 255]): unlike clipping each channel, this keeps the luma, so the projected luma coefficients
    survive."""
    outside = cv2.inRange(rgb, (0, 0, 0), (255, 255, 255)) == 0
    pixels = rgb[outside]  # few: only they are computed
    y = np.clip(pixels @ _RGB_TO_YCC[0], 0, 255)[:, None]
    excursion = pixels - y
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(excursion > 0, (255 - y) / excursion, np.where(excursion < 0, -y / excursion, np.inf))
    rgb[outside] = y + np.clip(room.min(axis=1, keepdims=True), 0, 1) * excursion
    return rgb


def _project_plane(plane: np.ndarray, component: Component) -> bool:
    """Clamp, in place, the coefficients of the full blocks of ``plane`` (level-shifted, full resolution) as coded
    at ``component``'s sampling: at full resolution directly, else on the box average with the correction
    replicated. Whether any coefficient was out of its interval."""
    fv, fh = component.factor
    rows, cols = plane.shape[0] // (8 * fv), plane.shape[1] // (8 * fh)
    if rows * cols == 0:
        return False
    region = plane[: rows * 8 * fv, : cols * 8 * fh]
    coded = region if (fv, fh) == (1, 1) else cv2.resize(region, (cols * 8, rows * 8), interpolation=cv2.INTER_AREA)
    coefficients = _dct_blocks(coded)
    stored = component.coefficients[:rows, :cols].astype(np.float32) * component.table
    half = component.table / 2
    inner = np.maximum(half - MARGIN, half / 2)  # the margin, but never more than half the interval
    outside = np.abs(coefficients - stored) > half
    if not outside.any():
        return False
    clamped = np.where(outside, np.clip(coefficients, stored - inner, stored + inner), coefficients)
    change = _idct_blocks(clamped - coefficients)
    region += change if (fv, fh) == (1, 1) else np.repeat(np.repeat(change, fv, axis=0), fh, axis=1)
    return True


def _dct_blocks(plane: np.ndarray) -> np.ndarray:
    """8×8 DCT of each block of ``plane`` (sides multiples of 8) → blocks_y × blocks_x × 8 × 8."""
    h, w = plane.shape
    blocks = plane.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
    return _DCT @ blocks @ _DCT.T


def _idct_blocks(coefficients: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_dct_blocks`: blocks_y × blocks_x × 8 × 8 → the plane."""
    rows, cols = coefficients.shape[:2]
    return (_DCT.T @ coefficients @ _DCT).transpose(0, 2, 1, 3).reshape(rows * 8, cols * 8)
