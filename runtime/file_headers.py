"""What an image file's header says that OpenCV's decoders do not apply: a gray PNG's transparent gray (tRNS), the
stored sample range of AVIF, JPEG 2000 and PNM files (OpenCV returns their samples as stored), an AVIF's clean
aperture (clap). Each reader takes the mapped file and returns None (or []) for files it does not describe; none
decodes pixels or raises on a malformed header (it says nothing instead)."""

from __future__ import annotations

import mmap
import re
import struct
from collections.abc import Iterator
from fractions import Fraction


def png_transparent_gray(png: mmap.mmap) -> int | None:
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


def stored_max(data: mmap.mmap) -> int | None:
    """The largest sample OpenCV's decoder returns, unscaled, for the file ``data`` where that may be below its
    array type's maximum: a 10- or 12-bit AVIF's 1023 or 4095 (in uint16; 255 for an 8-bit one), a 9- to 15-bit
    JPEG 2000's, a binary PNM's maxval (uint8 up to 255, uint16 above; a plain-text one is scaled by OpenCV up to
    255, not above); None for other files."""
    bits = avif_bit_depth(data) or _jpeg2000_precision(data)
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
        start = next((body for kind, body, _ in iso_boxes(data, 0, len(data)) if kind == b"jp2c"), None)
    if start is None or data[start : start + 4] != b"\xff\x4f\xff\x51" or start + 42 > len(data):  # SOC, SIZ
        return None
    count = int.from_bytes(data[start + 40 : start + 42], "big")  # Csiz, after Lsiz, Rsiz and 8 sizes and offsets
    sizes = bytes(data[start + 42 : start + 42 + 3 * count])[::3]  # Ssiz, XRsiz, YRsiz of each component
    return max((size & 0x7F) + 1 for size in sizes) if sizes else None  # Ssiz: signed bit, precision - 1


def avif_bit_depth(avif: mmap.mmap) -> int | None:
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


def avif_clean_aperture(avif: mmap.mmap) -> tuple[Fraction, Fraction, Fraction, Fraction] | None:
    """Width, height and horizontal and vertical offset (of its centre from the image's) of the clean aperture box
    (clap) of the image libavif decodes from an AVIF, which viewers crop it to and OpenCV ignores; None for other
    files, or without one (or with a zero denominator)."""
    for kind, start, end in _avif_item_properties(avif):
        if kind == b"clap" and end - start >= 32:
            wn, wd, hn, hd, xn, xd, yn, yd = struct.unpack_from(">IIIIiIiI", avif, start)
            if wd and hd and xd and yd:
                return Fraction(wn, wd), Fraction(hn, hd), Fraction(xn, xd), Fraction(yn, yd)
    return None


def _avif_item_properties(avif: mmap.mmap) -> list[tuple[bytes, int, int]]:
    """``(type, body start, body end)`` of the properties of the item libavif decodes from an AVIF: its primary
    item, or the alternative preferred to it (:func:`_preferred_alternative`); [] for other files."""
    if avif[4:8] != b"ftyp":
        return []
    meta = next(((start, end) for kind, start, end in iso_boxes(avif, 0, len(avif)) if kind == b"meta"), None)
    if meta is None:
        return []
    boxes = {kind: (start, end) for kind, start, end in iso_boxes(avif, meta[0] + 4, meta[1])}  # FullBox: +4
    primary = _primary_item(avif, boxes.get(b"pitm"))
    if b"iprp" not in boxes or primary is None:
        return []
    primary = _preferred_alternative(avif, boxes.get(b"grpl"), primary)
    properties = {kind: (start, end) for kind, start, end in iso_boxes(avif, *boxes[b"iprp"])}
    if b"ipco" not in properties:
        return []
    listed = list(iso_boxes(avif, *properties[b"ipco"]))  # properties are numbered from 1 in this order
    return [listed[i - 1] for i in _item_properties(avif, properties.get(b"ipma"), primary) if 0 < i <= len(listed)]


def _preferred_alternative(data: mmap.mmap, grpl: tuple[int, int] | None, item: int) -> int:
    """The first entity of an alternatives group (altr) listing ``item``, else ``item``: libavif 1.4 stores a 16-bit
    image as a sample transform (sato) of two AV1 images, grouped before a 12-bit primary item that older readers
    show; OpenCV's libavif decodes the former (it writes such files too)."""
    for kind, start, end in iso_boxes(data, *grpl) if grpl else ():
        if kind == b"altr" and end - start >= 16:  # FullBox, group ID, entity count, entity IDs
            count = min(int.from_bytes(data[start + 8 : start + 12], "big"), (end - start - 12) // 4)
            entities = struct.unpack_from(f">{count}I", data, start + 12)
            if item in entities:
                return entities[0]
    return item


def iso_boxes(data: mmap.mmap, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
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
