"""Compare output: see what a restoration changed (``--compare``), and measure it against an original (``--reference``).

Per input, :class:`CompareRun` writes a side-by-side PNG — the input JPEG | the restoration (| the original), each
column labelled, with the image regions the restoration changed most shown again below, zoomed by nearest neighbour
so that JPEG blocks and ringing stay visible — and, for the whole run, one self-contained HTML report
(:mod:`runtime.report_html`).

Images follow :mod:`runtime.io`'s contract: H×W gray or H×W×3 **RGB**, uint8 or uint16 (alpha is not part of the
pixels and is not shown). Pictures and metrics work on 8 bits: 16-bit images are rounded to 8 bits first
(:func:`to_8bit`). Metrics are those of the project's evaluation protocol (:mod:`common.metrics`): on the images as
they are (gray, or RGB over all three channels); a gray input measured against a colour original is measured on
the original's MATLAB BT.601 Y (the Y-channel protocol of ``docs/EVALUATION.md``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common.color import rgb_to_y
from common.files import IMAGE_SUFFIXES, NAME_MAX
from common.metrics import psnr, psnr_b, ssim
from runtime.io import DEFAULT_MAX_PIXELS, ImageError, read_image, write_image
from runtime.jpeg_quality import JpegQuality
from runtime.report_html import HtmlReport
from runtime.report_types import (
    CROP_COLOURS,
    DEFAULT_FOLDER,
    REPORT_NAME,
    CompareSettings,
    Metrics,
    RunFacts,
    Scores,
)

log = logging.getLogger(__name__)

PICTURE_SUFFIX = "_compare.png"  # <input stem><this>: the side-by-side picture of one input
LABEL_HEIGHT = 28  # px of the bar above each column that names it
GAP = 8  # px between columns and between rows
MIN_COLUMN = 120  # px: a column is at least this wide, so that its label fits
BACKGROUND = (32, 32, 32)  # RGB of the canvas and label bars
TEXT = (255, 255, 255)
_FONT, _FONT_SCALE, _FONT_THICKNESS = cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1


@dataclass(frozen=True)
class Comparison:
    """One input's pictures: ``panels`` (label, H×W×3 uint8 RGB) — input, restoration, original if given — with the
    top-left corners (y, x) of its ``crop_size``-pixel crops, and its metrics when an original was given."""

    panels: tuple[tuple[str, np.ndarray], ...]
    corners: tuple[tuple[int, int], ...]
    crop_size: int
    metrics: Metrics | None


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """uint8 as is; uint16 rounded to 8 bits (``round(v / 257)``: 65535 → 255). Shape kept."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype != np.uint16:
        raise ValueError(f"expected a uint8 or uint16 image, got {pixels.dtype}")
    return np.rint(pixels / 257.0).astype(np.uint8)


def to_display(pixels: np.ndarray) -> np.ndarray:
    """An image of :mod:`runtime.io`'s contract → H×W×3 uint8 RGB (gray repeated on three channels)."""
    eight = to_8bit(pixels)
    return np.repeat(eight[..., None], 3, axis=2) if eight.ndim == 2 else eight


def measure(jpeg: np.ndarray, restored: np.ndarray, reference: np.ndarray) -> Metrics:
    """PSNR / SSIM / PSNR-B (:mod:`common.metrics`) of ``jpeg`` and of ``restored`` against ``reference``, on 8 bits.

    All three of one height and width. A gray input against an RGB reference is measured on the reference's MATLAB
    Y; an RGB input against a gray reference raises ValueError, as do other shape mismatches.
    """
    jpeg8, restored8, reference8 = to_8bit(jpeg), to_8bit(restored), to_8bit(reference)
    channels = "RGB" if jpeg8.ndim == 3 else "Y" if reference8.ndim == 3 else "gray"
    if channels == "Y":
        reference8 = rgb_to_y(reference8)
    if jpeg8.shape != restored8.shape:
        raise ValueError(f"restored image {restored8.shape} differs from the input {jpeg8.shape}")
    if jpeg8.shape != reference8.shape:
        raise ValueError(f"reference of shape {reference8.shape} does not match the input's {jpeg8.shape}")
    return Metrics(_scores(jpeg8, reference8), _scores(restored8, reference8), channels)


def _scores(image: np.ndarray, reference: np.ndarray) -> Scores:
    fits = min(image.shape[:2]) >= 11
    return Scores(psnr(image, reference), ssim(image, reference) if fits else None, psnr_b(image, reference))


def change_map(jpeg: np.ndarray, restored: np.ndarray) -> np.ndarray:
    """H×W float32: how much the restoration changed each pixel, ``|restored − jpeg|`` summed over channels."""
    diff = cv2.absdiff(jpeg, restored).astype(np.float32)
    return diff if diff.ndim == 2 else diff.sum(axis=2)


def pick_crops(change: np.ndarray, size: int, count: int) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of up to ``count`` non-overlapping ``size``×``size`` windows inside ``change``
    (H×W, H and W ≥ size), greedily by the largest sum of ``change``: the regions a restoration changed most.
    Fewer come back when no more fit without overlapping."""
    h, w = change.shape
    if size > min(h, w):
        raise ValueError(f"crop size {size} exceeds the image ({h}×{w})")
    integral = cv2.integral(change, sdepth=cv2.CV_64F)
    scores = integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    corners: list[tuple[int, int]] = []
    for _ in range(count):
        y, x = np.unravel_index(int(np.argmax(scores)), scores.shape)
        if scores[y, x] == -np.inf:
            break
        corners.append((int(y), int(x)))
        # windows starting within `size` of this one would overlap it
        scores[max(y - size + 1, 0) : y + size, max(x - size + 1, 0) : x + size] = -np.inf
    return corners


def compare_images(
    jpeg: np.ndarray,
    restored: np.ndarray,
    reference: np.ndarray | None = None,
    jpeg_label: str = "JPEG",
    settings: CompareSettings | None = None,
) -> Comparison:
    """The :class:`Comparison` of an input and its restoration (and the original, ``reference``): crops where the
    restoration changed most, metrics when ``reference`` is given. Raises ValueError when the shapes disagree."""
    settings = settings or CompareSettings()
    if jpeg.shape != restored.shape:
        raise ValueError(f"restored image {restored.shape} differs from the input {jpeg.shape}")
    metrics = None if reference is None else measure(jpeg, restored, reference)
    panels = [(jpeg_label, to_display(jpeg)), ("restored", to_display(restored))]
    if reference is not None:
        panels.append(("original", to_display(reference)))
    size = min(settings.crop_size, *jpeg.shape[:2])
    corners = pick_crops(change_map(panels[0][1], panels[1][1]), size, settings.crops)
    return Comparison(tuple(panels), tuple(corners), size, metrics)


@dataclass(frozen=True)
class Layout:
    """Where things are in a picture of :func:`render`: columns (one per panel) of ``column_width`` separated by
    :data:`GAP`, each headed by a :data:`LABEL_HEIGHT` label bar; below it the full image (``full``), then the crops,
    each zoomed to ``crop_size * zoom`` pixels, side by side as many as fit the column's width, in rows."""

    columns: int
    image_size: tuple[int, int]  # height, width of the panels
    crop_size: int
    zoom: int
    crops: int
    full: bool

    @property
    def column_width(self) -> int:
        return max(self.image_size[1] if self.full else 0, self.crop_size * self.zoom, MIN_COLUMN)

    @property
    def width(self) -> int:
        return self.columns * self.column_width + (self.columns + 1) * GAP

    @property
    def crops_per_row(self) -> int:
        return max(1, (self.column_width + GAP) // (self.crop_size * self.zoom + GAP))

    @property
    def height(self) -> int:
        rows = -(-self.crops // self.crops_per_row)
        return self.crop_origin(rows * self.crops_per_row, 0)[0]

    def column_x(self, column: int) -> int:
        return GAP + column * (self.column_width + GAP)

    def label_box(self, column: int) -> tuple[slice, slice]:
        """The label bar of ``column`` as (rows, columns) slices."""
        x = self.column_x(column)
        return slice(GAP, GAP + LABEL_HEIGHT), slice(x, x + self.column_width)

    def image_origin(self, column: int) -> tuple[int, int]:
        return GAP + LABEL_HEIGHT + GAP, self.column_x(column)

    def crop_origin(self, number: int, column: int) -> tuple[int, int]:
        """The top-left corner of crop ``number`` (0-based) in ``column``."""
        top = self.image_origin(0)[0] + (self.image_size[0] + GAP if self.full else 0)
        row, place = divmod(number, self.crops_per_row)
        step = self.crop_size * self.zoom + GAP
        return top + row * step, self.column_x(column) + place * step


def layout_of(comparison: Comparison, settings: CompareSettings, full: bool = True) -> Layout:
    """The :class:`Layout` :func:`render` uses for ``comparison``."""
    h, w = comparison.panels[0][1].shape[:2]
    return Layout(len(comparison.panels), (h, w), comparison.crop_size, settings.zoom, len(comparison.corners), full)


def render(comparison: Comparison, settings: CompareSettings | None = None, full: bool = True) -> np.ndarray:
    """The side-by-side picture (H×W×3 uint8 RGB, geometry :func:`layout_of`): labelled columns, the full images with
    each crop outlined in its colour and numbered (``full``; without it only the zoomed crops), and the crops zoomed
    by nearest neighbour, framed in the same colours."""
    settings = settings or CompareSettings()
    layout = layout_of(comparison, settings, full)
    canvas = np.empty((layout.height, layout.width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    size, zoom = comparison.crop_size, settings.zoom
    for column, (label, image) in enumerate(comparison.panels):
        rows, cols = layout.label_box(column)
        _put_label(canvas, label, cols.start + 6, rows.stop - 9, cols.stop)
        if full:
            y, x = layout.image_origin(column)
            panel = canvas[y : y + image.shape[0], x : x + image.shape[1]]
            panel[:] = image
            for number, (cy, cx) in enumerate(comparison.corners):
                _outline(panel, cy, cx, size, size, CROP_COLOURS[number], str(number + 1))
        for number, (cy, cx) in enumerate(comparison.corners):
            y, x = layout.crop_origin(number, column)
            zoomed = np.repeat(np.repeat(image[cy : cy + size, cx : cx + size], zoom, axis=0), zoom, axis=1)
            target = canvas[y : y + size * zoom, x : x + size * zoom]
            target[:] = zoomed
            _outline(target, 0, 0, size * zoom, size * zoom, CROP_COLOURS[number], str(number + 1))
    return canvas


def _put_label(canvas: np.ndarray, text: str, x: int, baseline: int, right: int) -> None:
    """``text`` (ASCII: Hershey fonts have no other glyphs) drawn from ``x``, clipped at column ``right``."""
    region = canvas[:, :right]  # a view: cv2 draws into it and clips at its edge
    ascii_text = text.encode("ascii", "replace").decode()
    cv2.putText(region, ascii_text, (x, baseline), _FONT, _FONT_SCALE, TEXT, _FONT_THICKNESS, cv2.LINE_AA)


def _outline(image: np.ndarray, y: int, x: int, h: int, w: int, colour: tuple[int, int, int], tag: str) -> None:
    """A 2-pixel frame inside the box (y, x, h, w) of ``image`` and a small numbered tag at its top-left."""
    for inset in (0, 1):  # two 1-pixel frames: cv2's thickness 2 would spill a pixel outside the box
        cv2.rectangle(image, (x + inset, y + inset), (x + w - 1 - inset, y + h - 1 - inset), colour, 1)
    (tw, th), _ = cv2.getTextSize(tag, _FONT, 0.45, 1)
    cv2.rectangle(image, (x, y), (x + tw + 5, y + th + 6), colour, -1)
    cv2.putText(image, tag, (x + 3, y + th + 3), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)


def find_reference(folder: Path, src: Path) -> Path | None:
    """The original of ``src`` in ``folder``: the image there with ``src``'s stem (lossless formats preferred, then
    :data:`common.files.IMAGE_SUFFIXES` order), never ``src`` itself; None when there is none."""
    source = src.resolve()
    preferred = sorted(IMAGE_SUFFIXES, key=lambda s: s in (".jpg", ".jpeg", ".jpe", ".jfif", ".webp"))
    for suffix in preferred:
        for candidate in (folder / (src.stem + suffix), folder / (src.stem + suffix.upper())):
            if candidate.is_file() and candidate.resolve() != source:
                return candidate
    return None


def picture_paths(folder: Path, sources: Iterable[Path]) -> list[Path]:
    """The picture of each of ``sources`` in ``folder``: ``<stem>_compare.png``, numbered ``<stem>_compare-2.png``,
    … when another source has the stem; stems cut to fit :data:`common.files.NAME_MAX` bytes (names are bytes on
    POSIX, not always UTF-8)."""
    taken: set[str] = set()
    return [folder / _free_name(src, taken) for src in sources]


def _free_name(src: Path, taken: set[str], avoid: Iterable[Path] = ()) -> str:
    """The first of ``<stem>_compare.png``, ``<stem>_compare-2.png``, … not in ``taken`` nor among ``avoid``
    (folder-free names); added to ``taken``."""
    room = NAME_MAX - len((PICTURE_SUFFIX + "-999999").encode())
    stem = src.stem
    while len(os.fsencode(stem)) > room:  # by characters: a cut never splits a UTF-8 sequence
        stem = stem[:-1]
    avoided = {p.name for p in avoid}
    name, number = stem + PICTURE_SUFFIX, 1
    while name in taken or name in avoided:
        number += 1
        name = f"{stem}{PICTURE_SUFFIX[:-4]}-{number}.png"
    taken.add(name)
    return name


def display_name(path: Path) -> str:
    """``path`` as text to show: a name that is not UTF-8 (bytes on POSIX) gets U+FFFD for its undecodable bytes."""
    return os.fsencode(path).decode("utf-8", "replace")


def default_folder(first_output: Path) -> Path:
    """Where ``--compare`` without a folder writes: :data:`DEFAULT_FOLDER` beside the (first) output. A subfolder,
    so that a folder run's inputs never include earlier pictures."""
    return first_output.parent / DEFAULT_FOLDER


class CompareRun:
    """Writes the compare output of one run into ``folder``: ``<stem>_compare.png`` per input and
    :data:`REPORT_NAME`. ``reference_dir``: where the originals are (:func:`find_reference`), or None.

    Use as a context manager: :meth:`add` per restored file; a clean exit writes the report (atomically, like
    every picture); an exception (Ctrl-C included) leaves the pictures written so far and no report.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        reference_dir: str | os.PathLike | None = None,
        settings: CompareSettings | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        title: str = "WCDGAN restoration report",
    ) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"{self.folder}: exists and is not a folder")
        if reference_dir is not None and not Path(reference_dir).is_dir():
            raise ValueError(f"{reference_dir}: no such folder (the originals for --reference)")
        self.reference_dir = None if reference_dir is None else Path(reference_dir)
        self.settings = settings or CompareSettings()
        self.max_pixels = max_pixels
        self.folder.mkdir(parents=True, exist_ok=True)
        self.report = HtmlReport(self.folder, title, self.settings)
        self.seconds = 0.0  # spent comparing and writing the report: not part of the restoration's speed
        self._names: set[str] = set()

    @property
    def existing(self) -> int:
        """How many of the images added were existing outputs (:meth:`RunFacts.existing_output`)."""
        return sum(row.facts.existing for row in self.report.rows)

    def __enter__(self) -> CompareRun:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        start = time.perf_counter()
        try:
            if kind is None:
                self.report.write(self.folder / REPORT_NAME)
        finally:
            self.report.close()
            self.seconds += time.perf_counter() - start

    def add(self, src: Path, restored_path: Path, facts: RunFacts, picture: Path | None = None) -> Path:
        """Compare ``src`` with its restoration at ``restored_path`` (both read back as :func:`runtime.io.read_image`
        reads them, so the picture shows what was written), write its picture and add it to the report. Returns the
        picture's path: ``picture`` as planned by the caller (:func:`picture_paths`), else named here, never a file
        this call reads. Raises :class:`runtime.io.ImageError` (with the file's name) for this file only."""
        start = time.perf_counter()
        try:
            return self._add(Path(src), Path(restored_path), facts, picture)
        finally:
            self.seconds += time.perf_counter() - start

    def _add(self, src: Path, restored_path: Path, facts: RunFacts, picture: Path | None) -> Path:
        loaded = read_image(src, self.max_pixels)
        restored = read_image(restored_path, self.max_pixels).pixels
        reference_path = self.reference_dir and find_reference(self.reference_dir, src)
        if self.reference_dir is not None and reference_path is None:
            log.warning("%s: no original with that name in %s; shown without metrics", src, self.reference_dir)
        reference = None if reference_path is None else read_image(reference_path, self.max_pixels).pixels
        label = "JPEG " + _quality_label(loaded.jpeg_quality) if loaded.jpeg_quality else "input"
        try:
            comparison = compare_images(loaded.pixels, restored, reference, label, self.settings)
        except ValueError as e:
            raise ImageError(f"{src}: {e}") from None
        picture = picture or self._picture_path(src, {restored_path, reference_path})
        write_image(picture, render(comparison, self.settings))
        crops = render(comparison, self.settings, full=False) if comparison.corners else None
        before, after = comparison.panels[0][1], comparison.panels[1][1]
        size = comparison.crop_size
        marks = [(y, x, size, CROP_COLOURS[n]) for n, (y, x) in enumerate(comparison.corners)]
        self.report.add(display_name(src), facts, loaded.jpeg_quality, comparison.metrics, before, after, crops,
                        marks, display_name(Path(picture.name)))  # fmt: skip
        return picture

    def _picture_path(self, src: Path, avoid: set[Path | None]) -> Path:
        """``<stem>_compare.png`` in the folder, numbered when another input of this run has the stem; never a
        path this run reads from."""
        folder = self.folder.resolve()
        readers = [p.resolve() for p in (src, *avoid) if p is not None]
        return self.folder / _free_name(src, self._names, [p for p in readers if p.parent == folder])


def _quality_label(quality: JpegQuality) -> str:
    return f"q{quality.quality}" if quality.exact else f"q~{quality.quality}"
