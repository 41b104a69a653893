"""Estimate the IJG (libjpeg) quality factor of a JPEG file from its quantisation tables.

Pure Python + numpy: the DQT segments are read from the file's header bytes (no decoding). libjpeg builds
its tables by scaling the Annex K tables of the JPEG standard with ``scale = 5000/q`` (q < 50) or
``200 - 2q`` and rounding, so matching a file's tables against those scaled for q = 1..100 recovers q
exactly for libjpeg-written files (OpenCV, Pillow, most cameras' "IJG" modes) and gives the nearest
quality for files written with other tables (then ``exact`` is False).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

# JPEG standard Annex K tables, natural (row-major) order.
_STD_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
     14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.int64,
)  # fmt: skip
_STD_CHROMA = np.full(64, 99, dtype=np.int64)
_STD_CHROMA[[0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 24, 25]] = [17, 18, 24, 47, 18, 21, 26, 66, 24, 26, 56, 47, 66]
# Position in natural order of the k-th coefficient of a DQT table (tables are stored in zigzag order).
_ZIGZAG_TO_NATURAL = np.array(
    [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14,
     21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60,
     61, 54, 47, 55, 62, 63],
    dtype=np.int64,
)  # fmt: skip
_SOI, _SOS, _EOI, _DQT = 0xD8, 0xDA, 0xD9, 0xDB
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # markers without a length field (TEM, RSTn)


@dataclass(frozen=True)
class JpegQuality:
    """Estimated IJG quality (1–100); ``exact`` when the tables equal libjpeg's for that quality."""

    quality: int
    exact: bool

    def __str__(self) -> str:
        return f"q{self.quality}" if self.exact else f"q≈{self.quality} (non-IJG tables)"


def ijg_table(quality: int, chroma: bool = False, baseline: bool = True) -> np.ndarray:
    """libjpeg's quantisation table for ``quality`` (``jpeg_set_quality``), 64 ints in natural order."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    table = ((_STD_CHROMA if chroma else _STD_LUMA) * scale + 50) // 100
    return np.clip(table, 1, 255 if baseline else 32767)


def read_quant_tables(f: BinaryIO) -> dict[int, np.ndarray] | None:
    """Quantisation tables of a JPEG stream, ``{table id: 64 ints in natural order}``.

    Returns None when the stream does not start with a JPEG SOI marker. Reads segment headers only,
    up to the first scan; raises ValueError on a malformed header.
    """
    if f.read(2) != b"\xff\xd8":
        return None
    tables: dict[int, np.ndarray] = {}
    while True:
        byte = f.read(1)
        if not byte:
            raise ValueError("truncated JPEG header")
        if byte != b"\xff":
            raise ValueError("malformed JPEG header (expected a marker)")
        marker = f.read(1)
        while marker == b"\xff":  # fill bytes
            marker = f.read(1)
        if not marker:
            raise ValueError("truncated JPEG header")
        code = marker[0]
        if code in _STANDALONE:
            continue
        if code in (_SOS, _EOI):
            return tables
        header = f.read(2)
        if len(header) != 2:
            raise ValueError("truncated JPEG header")
        (length,) = struct.unpack(">H", header)
        payload = f.read(length - 2)
        if len(payload) != length - 2 or length < 2:
            raise ValueError("truncated JPEG header")
        if code == _DQT:
            tables.update(_parse_dqt(payload))


def _parse_dqt(payload: bytes) -> dict[int, np.ndarray]:
    tables: dict[int, np.ndarray] = {}
    pos = 0
    while pos < len(payload):
        precision, table_id = payload[pos] >> 4, payload[pos] & 0x0F
        size = 128 if precision else 64
        raw = payload[pos + 1 : pos + 1 + size]
        if len(raw) != size:
            raise ValueError("malformed DQT segment")
        zigzag = np.frombuffer(raw, dtype=">u2" if precision else np.uint8).astype(np.int64)
        natural = np.empty(64, dtype=np.int64)
        natural[_ZIGZAG_TO_NATURAL] = zigzag
        tables[table_id] = natural
        pos += 1 + size
    return tables


def estimate_quality(tables: dict[int, np.ndarray]) -> JpegQuality | None:
    """Nearest IJG quality for tables from :func:`read_quant_tables` (table 0 luma, table 1 chroma)."""
    if 0 not in tables:
        return None
    baseline = bool(max(t.max() for t in tables.values()) <= 255)
    best_q, best_err = 0, None
    for q in range(1, 101):
        err = int(np.abs(tables[0] - ijg_table(q, False, baseline)).sum())
        if 1 in tables:
            err += int(np.abs(tables[1] - ijg_table(q, True, baseline)).sum())
        if best_err is None or err < best_err:
            best_q, best_err = q, err
    return JpegQuality(best_q, best_err == 0)


def read_jpeg_quality(path: str | os.PathLike) -> JpegQuality | None:
    """Estimated IJG quality of the JPEG file at ``path``; None for non-JPEG or unreadable headers."""
    try:
        with open(path, "rb") as f:
            tables = read_quant_tables(f)
    except (OSError, ValueError):
        return None
    return estimate_quality(tables) if tables else None
