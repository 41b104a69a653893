"""Tile-grid geometry: fixed-shape windows on the JPEG block grid, cropped without seams.

An image is covered by windows of one fixed shape ``core + 2 * overlap`` per axis, so an engine or a
cuDNN plan built for that shape serves every tile of every image. Along each axis:

* ``n = ceil(length / core)`` windows; the first starts at ``-overlap``, the last ends at or beyond
  ``length + overlap``, the ones between are spread evenly. Every window start is a multiple of ``align``
  (8: the JPEG block grid; 16, the default: also the 4:2:0 colour MCU grid), so a tile sees the blocking
  artifacts at the same phase as the whole image does.
* Pixels outside the image are filled by reflection (periodic, so it works for any length, even 1).
* **Cropped, not blended**: each output pixel is taken from the one window where it is most central
  (boundaries at midpoints between window centres). Every pixel then has at least ``overlap`` pixels of
  context on every side, each pixel is written exactly once (the output can be filled tile by tile in its
  final dtype, with no full-image float accumulator), and a network whose receptive field fits in the
  overlap gives exactly its whole-image result. Blending would only average two already-converged values.

``core`` and ``overlap`` are rounded up to multiples of ``align``; ``core`` is at least ``2 * align``.

Backends that accept any window size (ONNX Runtime and OpenVINO on the CPU) tile each image with a **fitted**
core (:meth:`TileGrid.fitted`): as few tiles per axis as the largest allowed core needs, each as small as covers
the image on the grid. A 1920×1080 image with cores up to 512 computes 3×4 windows of 432×544 (1.36× its
pixels at overlap 32) instead of 5×8 windows of 320×320 (1.98×) at a fixed 256 core.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AxisTile:
    """One window along an axis: it reads ``[start, start + size)`` and supplies output ``[crop_start, crop_end)``."""

    start: int
    crop_start: int
    crop_end: int


@dataclass(frozen=True)
class Tile:
    """A 2-D window: ``y``/``x`` are its :class:`AxisTile` rows and columns; ``index`` its row-major number."""

    index: int
    y: AxisTile
    x: AxisTile


def align_up(value: int, align: int) -> int:
    return -(-value // align) * align


def axis_tiles(length: int, core: int, overlap: int, align: int) -> list[AxisTile]:
    """Windows of size ``core + 2 * overlap`` covering ``[0, length)`` (see module docstring).

    ``core`` and ``overlap`` must already be multiples of ``align`` with ``core >= 2 * align``.
    """
    if length < 1:
        raise ValueError(f"axis length must be ≥ 1, got {length}")
    if core % align or overlap % align or core < 2 * align or overlap < 0:
        raise ValueError(f"core {core} and overlap {overlap} must be multiples of {align}, core ≥ {2 * align}")
    size = core + 2 * overlap
    n = max(1, math.ceil(length / core))
    if n == 1:
        return [AxisTile(-overlap, 0, length)]
    # Total travel of the window start, in grid units; ≤ (n-1)·core, so neighbours are ≤ core apart.
    units = align_up(length - core, align) // align
    starts = [-overlap + align * (k * units // (n - 1)) for k in range(n)]
    bounds = [0] + [(a + b + size) // 2 for a, b in itertools.pairwise(starts)] + [length]
    return [AxisTile(s, lo, hi) for s, lo, hi in zip(starts, bounds, bounds[1:], strict=False)]


def fitted_core(length: int, core_max: int, align: int) -> int:
    """The smallest core on the ``align`` grid covering ``length`` in ``ceil(length / core_max)`` tiles
    (``core_max`` a multiple of ``align``); never above ``core_max``, at least ``2 * align``."""
    n = max(1, math.ceil(length / core_max))
    return max(align_up(math.ceil(length / n), align), 2 * align)


ALIGN = 16  # window-start grid: JPEG 8×8 blocks and 4:2:0 16×16 colour MCUs keep their phase in every tile
DEFAULT_CORE = 256  # tile core per side: the runtime's default --tile, and the window engines are prebuilt for
ENGINE_BATCH = 4  # tiles per call on a GPU: the runtime's default --batch there, and the batch engines are prebuilt for
DEFAULT_OVERLAP = 32  # context per side for a model whose sidecar recommends none
MAX_TILE, MAX_OVERLAP = 4096, 1024  # per side, px: beyond these a setting is a typo, not a plan


def window_grid(
    core: int | tuple[int, int], recommended: int | None, requested: int | None = None, align: int = ALIGN
) -> TileGrid:
    """The tile geometry a model runs with (an empty grid: read ``.core``, ``.overlap``, ``.window``).

    Overlap: ``requested`` if given, else the model's ``recommended`` overlap, else :data:`DEFAULT_OVERLAP`;
    core and overlap rounded up to the ``align`` grid. The one definition of the window shape shared by the
    runtime and the engine prebuild, so that a prebuilt engine is the one the runtime asks for.
    """
    overlap = requested if requested is not None else (recommended or DEFAULT_OVERLAP)
    return TileGrid.create(1, 1, core, overlap, align)


@dataclass(frozen=True)
class TileGrid:
    """The tiling of one ``height × width`` image; ``window`` is the fixed (h, w) shape every tile has."""

    height: int
    width: int
    core: tuple[int, int]
    overlap: int
    align: int = ALIGN

    @classmethod
    def create(cls, height: int, width: int, core: int | tuple[int, int], overlap: int, align: int = ALIGN) -> TileGrid:
        """Round ``core`` (int or (h, w)) and ``overlap`` up to the grid and build the tiling."""
        ch, cw = (core, core) if isinstance(core, int) else core
        ch, cw = (max(align_up(c, align), 2 * align) for c in (ch, cw))
        return cls(height, width, (ch, cw), align_up(max(overlap, 0), align), align)

    @classmethod
    def fitted(cls, height: int, width: int, core_max: tuple[int, int], overlap: int, align: int = ALIGN) -> TileGrid:
        """The tiling with per-axis :func:`fitted_core` cores ≤ ``core_max`` (multiples of ``align``)."""
        core = (fitted_core(height, core_max[0], align), fitted_core(width, core_max[1], align))
        return cls(height, width, core, overlap, align)

    @property
    def window(self) -> tuple[int, int]:
        return self.core[0] + 2 * self.overlap, self.core[1] + 2 * self.overlap

    @property
    def rows(self) -> list[AxisTile]:
        return axis_tiles(self.height, self.core[0], self.overlap, self.align)

    @property
    def cols(self) -> list[AxisTile]:
        return axis_tiles(self.width, self.core[1], self.overlap, self.align)

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def __iter__(self) -> Iterator[Tile]:
        cols = self.cols
        for i, y in enumerate(self.rows):
            for j, x in enumerate(cols):
                yield Tile(i * len(cols) + j, y, x)


def reflect_indices(start: int, size: int, length: int) -> np.ndarray:
    """Source indices for positions ``start .. start+size-1`` of an axis of ``length``, reflected at the ends.

    Reflection without repeating the edge pixel (numpy's ``reflect``), continued periodically so that any
    position maps into ``[0, length)``; a length-1 axis maps everything to 0.
    """
    idx = np.arange(start, start + size)
    if length == 1:
        return np.zeros(size, dtype=np.intp)
    period = 2 * (length - 1)
    idx = np.mod(idx, period)
    return np.where(idx < length, idx, period - idx).astype(np.intp)


def extract_window(image: np.ndarray, tile: Tile, window: tuple[int, int]) -> np.ndarray:
    """The ``window``-shaped patch of ``image`` (H×W or H×W×C) that ``tile`` reads, reflected at borders."""
    (wh, ww), (h, w) = window, image.shape[:2]
    y0, x0 = tile.y.start, tile.x.start
    if y0 >= 0 and x0 >= 0 and y0 + wh <= h and x0 + ww <= w:
        return image[y0 : y0 + wh, x0 : x0 + ww]  # interior: a view, no index arrays
    rows, cols = reflect_indices(y0, wh, h), reflect_indices(x0, ww, w)
    return image[rows[:, None], cols[None, :]]


def crop_slices(tile: Tile) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """``(image region, window region)`` slices of the pixels ``tile`` supplies to the output."""
    y, x = tile.y, tile.x
    image_region = (slice(y.crop_start, y.crop_end), slice(x.crop_start, x.crop_end))
    window_region = (
        slice(y.crop_start - y.start, y.crop_end - y.start),
        slice(x.crop_start - x.start, x.crop_end - x.start),
    )
    return image_region, window_region
