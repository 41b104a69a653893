"""YUV ↔ RGB for video frames, through the matrix and range the stream declares.

The model's frames are H×W×3 RGB ``np.ndarray`` s: uint8 (0–255), or uint16 (0–65535) for sources with more than 8
bits per sample. :class:`Colour` carries FFmpeg's AVColorSpace / AVColorRange / primaries / transfer codes; where a
stream declares no matrix or range the rule of ``--help`` applies (:func:`frame_colour`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import av
import numpy as np
from av.video.reformatter import Colorspace, Interpolation

HD_LINES = 720  # a stream that declares no matrix: BT.709 from this height up, BT.601 below (players' convention)
RGB, BT709, BT601 = 0, 1, 6  # AVColorSpace codes
LIMITED, FULL = 1, 2  # AVColorRange codes
# swscale's default YUV→RGB path is off by up to 2 levels (Y=75 limited BT.709 gray: 67 instead of 69); the full-chroma
# paths with accurate rounding are exact to rounding
_INTERPOLATION = (
    Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT | Interpolation.FULL_CHR_H_INP
)
# AVColorSpace codes → the swscale matrix implementing them (BT.470BG and SMPTE 170M are both BT.601)
_MATRICES = {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.ITU601,
             7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}  # fmt: skip
# Kr, Kb of each matrix (Y = Kr·R + (1 − Kr − Kb)·G + Kb·B): the exact RGB → YUV of :func:`rgb_to_yuv420`
_WEIGHTS = {1: (0.2126, 0.0722), 4: (0.30, 0.11), 5: (0.299, 0.114), 6: (0.299, 0.114), 7: (0.212, 0.087),
            9: (0.2627, 0.0593), 10: (0.2627, 0.0593)}  # fmt: skip
_YUV420_BITS = {"yuv420p": 8, "yuv420p10le": 10}  # the lossy codecs' pixel formats (runtime.video.encode.CODECS)
_MATRIX_NAMES = {0: "RGB", 1: "BT.709", 4: "FCC", 5: "BT.601", 6: "BT.601", 7: "SMPTE 240M", 9: "BT.2020",
                 10: "BT.2020"}  # fmt: skip


@dataclass(frozen=True)
class Colour:
    """How a stream's samples map to RGB: ``matrix`` (AVColorSpace: 0 RGB, 1 BT.709, 5/6 BT.601, 9 BT.2020 …),
    ``range`` (AVColorRange: 1 limited, 2 full), the ``primaries`` and ``trc`` tags (carried to the output, never
    converted) and whether matrix or range were ``guessed`` (the stream leaves them unspecified)."""

    matrix: int
    range: int
    primaries: int
    trc: int
    guessed: bool = False

    def as_rgb(self) -> Colour:
        """This colour for RGB samples (an RGB encoder's output): matrix RGB, full range, the same tags."""
        return replace(self, matrix=RGB, range=FULL)

    def as_yuv(self, height: int) -> Colour:
        """This colour for a YUV encoder's output: itself, or for RGB samples (an FFV1 input) the matrix of the
        module's rule for ``height`` (BT.709 from :data:`HD_LINES` up, BT.601 below) in limited range, as players
        assume."""
        if self.matrix != RGB:
            return self
        return replace(self, matrix=BT709 if height >= HD_LINES else BT601, range=LIMITED)

    def describe(self) -> str:
        """``BT.709 limited range`` (``(not declared: assumed)`` when guessed), or ``RGB``: for the log."""
        if self.matrix == RGB:
            return "RGB"
        value_range = "full" if self.range == FULL else "limited"
        return f"{_MATRIX_NAMES[self.matrix]} {value_range} range{' (not declared: assumed)' if self.guessed else ''}"


def frame_colour(frame: av.VideoFrame) -> Colour:
    """The colour a decoded frame declares, with the rule of the module's --help where it declares none."""
    primaries, trc = int(frame.color_primaries), int(frame.color_trc)
    if frame.format.is_rgb:
        return Colour(RGB, FULL, primaries, trc)
    matrix, value_range = int(frame.colorspace), int(frame.color_range)
    guessed = matrix not in _MATRICES or value_range not in (LIMITED, FULL)
    if matrix not in _MATRICES:
        matrix = BT709 if frame.height >= HD_LINES else BT601
    if value_range not in (LIMITED, FULL):
        value_range = FULL if frame.format.name.startswith("yuvj") else LIMITED
    return Colour(matrix, value_range, primaries, trc, guessed)


def is_deep(frame: av.VideoFrame) -> bool:
    """Whether the frame has more than 8 bits per sample (restored as 16-bit RGB)."""
    return max(c.bits for c in frame.format.components) > 8


def frame_to_rgb(frame: av.VideoFrame, colour: Colour, deep: bool = False) -> np.ndarray:
    """H×W×3 RGB of a decoded frame through ``colour``'s matrix and range: uint8, or uint16 when ``deep``."""
    rgb = frame.reformat(
        format="rgb48le" if deep else "rgb24", src_colorspace=_MATRICES.get(colour.matrix),
        src_color_range=colour.range, interpolation=_INTERPOLATION,
    )  # fmt: skip
    return rgb.to_ndarray()


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str, colour: Colour) -> av.VideoFrame:
    """An encoder's frame of ``pix_fmt`` from H×W×3 uint8/uint16 RGB, through ``colour``'s matrix and range (RGB
    formats: exact; 4:2:0 YUV: :func:`rgb_to_yuv420`, exact to rounding)."""
    if pix_fmt in _YUV420_BITS:
        frame = av.VideoFrame.from_ndarray(rgb_to_yuv420(rgb, colour, _YUV420_BITS[pix_fmt]), format=pix_fmt)
        frame.colorspace, frame.color_range = colour.matrix, colour.range
        return frame
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le" if rgb.dtype == np.uint16 else "rgb24")
    if av.VideoFormat(pix_fmt).is_rgb:
        return frame.reformat(format=pix_fmt)
    return frame.reformat(
        format=pix_fmt, dst_colorspace=_MATRICES[colour.matrix], dst_color_range=colour.range,
        interpolation=_INTERPOLATION,
    )  # fmt: skip


def rgb_to_yuv420(rgb: np.ndarray, colour: Colour, bits: int = 8) -> np.ndarray:
    """H×W×3 uint8/uint16 RGB (even H and W) → planar 4:2:0 YUV of ``bits`` per sample in ``colour``'s matrix and
    range, as PyAV's ``yuv420p``/``yuv420p10le`` arrays: Y (H×W) then U and V (H/2×W/2 each) in (3H/2)×W, uint8 or
    uint16. Each sample is the exact conversion rounded to nearest (swscale's truncates chroma: half a level low in
    full range); chroma is the mean of each 2×2 block."""
    kr, kb = _WEIGHTS[colour.matrix]
    x = rgb.astype(np.float32) / np.float32(np.iinfo(rgb.dtype).max)
    y = kr * x[..., 0] + (1 - kr - kb) * x[..., 1] + kb * x[..., 2]
    h, w = y.shape
    block = (h // 2, 2, w // 2, 2)
    cb = ((x[..., 2] - y) / (2 * (1 - kb))).reshape(block).mean(axis=(1, 3))
    cr = ((x[..., 0] - y) / (2 * (1 - kr))).reshape(block).mean(axis=(1, 3))
    top = (1 << bits) - 1
    if colour.range == FULL:
        luma, chroma, centre = top * y, [top * c for c in (cb, cr)], 1 << (bits - 1)
    else:  # limited: 16–235 luma, 16–240 chroma at 8 bits, times 4 at 10
        scale = 1 << (bits - 8)
        luma, chroma, centre = (16 + 219 * y) * scale, [224 * scale * c for c in (cb, cr)], 128 * scale
    planes = [luma.ravel(), *(centre + c.ravel() for c in chroma)]
    out = np.clip(np.rint(np.concatenate(planes)), 0, top).astype(np.uint8 if bits == 8 else np.uint16)
    return out.reshape(h * 3 // 2, w)
