"""How a :class:`~runtime.restorer.Restorer` runs: one frozen, validated, picklable record of its settings, built by
the Python API (``Restorer(...)``'s keyword arguments) and by the commands (:func:`runtime.cli.settings_from_args`).

Each field has the command-line option that sets it (:data:`OPTIONS`): a :class:`SettingError` names the field for
API callers (``str(error)``) and the option for command-line users (:meth:`SettingError.for_cli`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from common.cli import OptionError
from common.lazy import importable
from common.tiling import ALIGN, MAX_OVERLAP, MAX_TILE
from runtime.backends.catalogue import BACKENDS, CPU_CORE, REMOTE_BACKENDS
from runtime.formats import DEFAULT_MAX_PIXELS
from runtime.model_files import PRECISIONS
from runtime.strength import check_strength

CONSISTENT_INSTALL_HINT = "pip install jpeglib"  # the reader of JPEG coefficients (a base dependency)
MAX_BATCH = 256
MAX_BUFFER_BYTES = 4 << 30  # one batch of float32 windows: beyond this a setting is a typo, not a plan
# field → the command-line option that sets it (align, progress and verify have none: API only)
OPTIONS = {
    "backend": "--backend", "tile": "--tile", "overlap": "--overlap", "batch": "--batch", "precision": "--precision",
    "device_id": "--device-id", "threads": "--threads", "spin": "--spin", "cache_dir": "--cache-dir",
    "max_pixels": "--max-pixels", "server": "--url", "remote_model": "--remote-model", "strength": "--strength",
    "consistent": "--consistent",
}  # fmt: skip


class SettingError(OptionError):
    """An invalid setting. ``str()`` names the field (``tile must ...``), :meth:`for_cli` its option (``--tile``)."""

    OPTIONS = OPTIONS


@dataclass(frozen=True)
class RestoreSettings:
    """The Restorer's settings (see :class:`runtime.restorer.Restorer` for each one's meaning), validated once on
    construction (:class:`SettingError`). ``tile`` is stored as (height, width) or None (the backend's default)."""

    backend: str = "auto"
    tile: int | tuple[int, int] | None = None
    overlap: int | None = None
    batch: int | None = None
    precision: str = "auto"
    device_id: int = 0
    threads: int | None = None
    spin: bool | None = None
    cache_dir: str | os.PathLike | None = None
    align: int = ALIGN
    progress: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    verify: bool = True
    server: str | None = None
    remote_model: str | None = None
    strength: float = 1.0
    consistent: bool | None = None  # None: JPEG inputs are projected, others not; True: others refused; False: off

    def __post_init__(self) -> None:
        if self.backend not in ("auto", *BACKENDS, *REMOTE_BACKENDS):
            choices = ", ".join(("auto", *BACKENDS, *REMOTE_BACKENDS))
            raise SettingError("backend", f"must be one of {choices}; got {self.backend!r}")
        if self.backend == "triton" and not self.server:
            raise SettingError("server", "is required: the triton backend needs a server address (HOST:PORT)")
        if self.precision not in ("auto", *PRECISIONS):
            raise SettingError("precision", f"must be one of auto, {', '.join(PRECISIONS)}; got {self.precision!r}")
        if self.spin not in (None, True, False):
            raise SettingError("spin", f"must be True, False or None, got {self.spin!r}")
        try:
            check_strength(self.strength)
        except ValueError:
            raise SettingError("strength", f"must be a number in (0, 1], got {self.strength!r}") from None
        if self.consistent not in (None, True, False):
            raise SettingError("consistent", f"must be True, False or None, got {self.consistent!r}")
        if self.consistent and not importable("jpeglib"):
            raise SettingError("consistent", f"needs the jpeglib package: {CONSISTENT_INSTALL_HINT}")
        object.__setattr__(self, "tile", _tile_pair(self.tile))
        sides = self.tile or (max(CPU_CORE.values()),) * 2  # the buffer check below, at the largest default
        for field, value, lo, hi in (
            ("tile", min(sides), 1, MAX_TILE), ("tile", max(sides), 1, MAX_TILE),
            ("overlap", self.overlap, 0, MAX_OVERLAP), ("batch", self.batch, 1, MAX_BATCH),
            ("device_id", self.device_id, 0, 1023), ("threads", self.threads, 1, 4096),
            ("max_pixels", self.max_pixels, 1, 1 << 40),
        ):  # fmt: skip
            if value is not None and (not _is_int(value) or not lo <= value <= hi):
                raise SettingError(field, f"must be an integer in {lo}..{hi}, got {value!r}")
            if value is not None and field != "tile":  # _tile_pair made the tile ints; a numpy integer stored
                object.__setattr__(self, field, int(value))  # as such would wrap around in the product below
        window = [s + 2 * (self.overlap or 0) for s in sides]
        if (self.batch or 1) * 3 * window[0] * window[1] * 4 > MAX_BUFFER_BYTES:
            if self.tile:
                raise SettingError(
                    "tile", f"{sides} with overlap {self.overlap} and batch {self.batch} needs over 4 GiB per batch"
                )
            raise SettingError(  # named by what the user set: the default tile is no mistake of theirs
                "batch" if self.batch else "overlap",
                f"{self.batch or self.overlap} with overlap {self.overlap} and the default tile {sides} needs over "
                "4 GiB per batch",
            )


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _tile_pair(tile: object) -> tuple[int, int] | None:
    """``tile`` as (height, width); SettingError unless it is None, an int or a pair of ints."""
    if tile is None:
        return None
    sides = (tile, tile) if _is_int(tile) else tile
    if not isinstance(sides, tuple | list) or len(sides) != 2 or not all(_is_int(v) for v in sides):
        raise SettingError("tile", f"must be an int or a pair of ints (height, width), got {tile!r}")
    return int(sides[0]), int(sides[1])
