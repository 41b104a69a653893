"""Pipe mode: raw frames in, restored raw frames out (``--raw WxH:FMT``), e.g. between two ffmpeg processes.

A frame is ``width × height`` samples of :data:`RAW_FORMATS` (FFmpeg's names), packed, little-endian: read as H×W×3
(rgb) or H×W (gray) uint8/uint16 arrays, restored with one model choice for all frames, written back in the same
format. The streams are read and written in the pipeline's decode and encode threads.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from tqdm import tqdm

from runtime.restorer import Restorer
from runtime.video.pipeline import Frame, Stats, run_pipeline, timed
from runtime.video.restore import restore_window

log = logging.getLogger(__name__)

RAW_FORMATS = {"rgb24": (3, np.dtype("u1")), "rgb48le": (3, np.dtype("<u2")), "gray": (1, np.dtype("u1")),
               "gray16le": (1, np.dtype("<u2"))}  # fmt: skip


@dataclass(frozen=True)
class RawFormat:
    """Raw frames of ``width`` × ``height`` in ``pix_fmt`` (a :data:`RAW_FORMATS` key, FFmpeg's name)."""

    width: int
    height: int
    pix_fmt: str

    @property
    def shape(self) -> tuple[int, ...]:
        channels = RAW_FORMATS[self.pix_fmt][0]
        return (self.height, self.width) if channels == 1 else (self.height, self.width, channels)

    @property
    def dtype(self) -> np.dtype:
        return RAW_FORMATS[self.pix_fmt][1]

    @property
    def frame_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def raw_format(text: str) -> RawFormat:
    """``WxH:FMT`` (e.g. ``640x480:rgb24``) → RawFormat; argparse.ArgumentTypeError when malformed."""
    size, _, pix_fmt = text.partition(":")
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH:FMT (e.g. 640x480:rgb24), got {text!r}") from None
    if pix_fmt not in RAW_FORMATS or min(width, height) < 1:
        raise argparse.ArgumentTypeError(f"expected WxH:FMT with FMT one of {', '.join(RAW_FORMATS)}, got {text!r}")
    return RawFormat(width, height, pix_fmt)


def restore_raw(source: BinaryIO, target: BinaryIO, fmt: RawFormat, restorer: Restorer, quality: int | None,
                stats: Stats, progress: bool = False) -> None:  # fmt: skip
    """Restore the frames of ``source`` into ``target`` (``quality``: the JPEG quality choosing the model; None: the
    model for an unknown quality, as raw frames carry no JPEG tables to estimate it from), counting in ``stats``
    (filled in as it goes: read it after an error too)."""

    def restore(frames: list[Frame]) -> list[Frame]:
        return restore_window(restorer, frames, [quality] * len(frames))

    items = timed(read_raw(source, fmt, stats), stats, "decode_s")
    with tqdm(unit="frame", disable=None if progress else True, leave=False) as bar:
        run_pipeline(items, restore, lambda frames: write_raw(target, fmt, frames, stats), stats, bar)


def read_raw(stream: BinaryIO, fmt: RawFormat, stats: Stats) -> Iterator[Frame]:
    """Frames of ``fmt`` from ``stream`` until its end; a partial last frame is counted in ``stats.corrupt``."""
    index = 0
    while data := _read_up_to(stream, fmt.frame_bytes):
        if len(data) < fmt.frame_bytes:
            stats.corrupt += 1
            log.warning("raw input ends with a partial frame (%d of %d bytes): dropped", len(data), fmt.frame_bytes)
            return
        pixels = np.frombuffer(data, fmt.dtype).reshape(fmt.shape)
        yield Frame(pixels.astype(fmt.dtype.newbyteorder("="), copy=False), index)
        index += 1


def _read_up_to(stream: BinaryIO, size: int) -> bytes:
    """``size`` bytes, fewer only at the end of ``stream`` (pipes return short reads)."""
    chunks, left = [], size
    while left and (chunk := stream.read(left)):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_raw(stream: BinaryIO, fmt: RawFormat, items: Iterable[Frame], stats: Stats) -> None:
    """Write restored frames to ``stream`` in ``fmt`` (converted to its byte order) and flush it."""
    for frame in items:
        t0 = time.perf_counter()
        stream.write(frame.pixels.astype(fmt.dtype, copy=False).tobytes())
        stats.encode_s += time.perf_counter() - t0
    stream.flush()
