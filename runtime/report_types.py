"""The records the compare output and its HTML report share: how pictures are made, what ran, what was measured.

A leaf: :mod:`runtime.compare` makes them, :mod:`runtime.report_html` shows them, and neither imports the other for
them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

REPORT_NAME = "report.html"
DEFAULT_FOLDER = "compare"  # --compare without a folder: this subfolder beside the outputs

# One outline colour per crop (RGB): the zoomed crop and its rectangle on the full image share it.
CROP_COLOURS = ((255, 64, 64), (255, 208, 0), (0, 200, 255), (140, 255, 80), (255, 96, 255), (255, 255, 255))


@dataclass(frozen=True)
class CompareSettings:
    """How the pictures are made. ``crops``: zoomed regions per image (0 to 6); ``crop_size``: their side in image
    pixels; ``zoom``: their magnification (nearest neighbour); ``slider_side``: the report's before/after images are
    shrunk (area average) to at most this many pixels on their long side; ``embedded``: the report embeds the
    images of this many inputs and lists the others with their facts and metrics (a report of thousands of images
    would be gigabytes)."""

    crops: int = 3
    crop_size: int = 64
    zoom: int = 3
    slider_side: int = 1024
    embedded: int = 200

    def __post_init__(self) -> None:
        for name, value, lo, hi in (
            ("crops", self.crops, 0, len(CROP_COLOURS)), ("crop_size", self.crop_size, 8, 1024),
            ("zoom", self.zoom, 1, 8), ("slider_side", self.slider_side, 64, 16384),
            ("embedded", self.embedded, 0, 1_000_000),
        ):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")


@dataclass(frozen=True)
class RunFacts:
    """What the command knows about one restoration: the model's name, the precision and backend that ran it, the
    seconds it took (reading and writing included, as the per-file line reports them; None: not restored by this
    run, see :meth:`existing_output`), the ``--strength`` and, with ``--consistent``, the share of luma coefficients
    true to the JPEG file (None: the mode did not run)."""

    model: str
    precision: str
    backend: str
    seconds: float | None
    strength: float = 1.0
    consistent: float | None = None

    @classmethod
    def existing_output(cls) -> RunFacts:
        """An output that existed before the run (its input was skipped): how it was made is not known."""
        return cls("–", "–", "–", None)

    @property
    def existing(self) -> bool:
        return self.seconds is None


@dataclass(frozen=True)
class Scores:
    """Full-reference metrics of one image against the original: PSNR and PSNR-B in dB, SSIM (None for images
    under 11×11 pixels, where the protocol's window does not fit)."""

    psnr: float
    ssim: float | None
    psnr_b: float


@dataclass(frozen=True)
class Metrics:
    """The input JPEG's and the restoration's :class:`Scores` against the same original, measured on ``channels``:
    "RGB" (all three), "Y" (a gray input against the original's BT.601 Y) or "gray"."""

    jpeg: Scores
    restored: Scores
    channels: str = "RGB"


def floor_percent(share: float) -> str:
    """``99.98 %``: a share rounded down, so that 100 % means all of them."""
    return f"{math.floor(share * 1e4) / 100:.2f} %"
