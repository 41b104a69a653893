"""The self-contained HTML report of a compare run: one file, no external requests, a before/after slider per image.

Every image is embedded as a ``data:`` URI, and a Content-Security-Policy in the page forbids everything else
(``default-src 'none'``), so the report opens offline, can be mailed as one file, and cannot reach the network. The
slider's images are lossless PNG (a lossy re-encoding would add artifacts of its own to what is being judged),
shrunk by area averaging to at most ``slider_side`` pixels on the long side; the zoomed crops below each slider come
from the full-resolution images. Entries are spooled to an anonymous temporary file as they are added, so a run of
thousands of images holds only its summary table in memory.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from common.files import atomic_path
from runtime.report_types import floor_percent

if TYPE_CHECKING:
    from runtime.jpeg_quality import JpegQuality
    from runtime.report_types import CompareSettings, Metrics, RunFacts, Scores

Mark = tuple[int, int, int, tuple[int, int, int]]  # a crop on the full image: top, left, side, outline colour (RGB)
# How an image whose output existed (its input skipped) is described: the report cannot say how it was made.
EXISTING_NOTE = "the output of an earlier run, shown as it is (its model, precision and time are not known)"
_PNG_COMPRESSION = 6  # zlib level of the embedded PNGs: about a third smaller than OpenCV's default 1

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 24px; color: #1b1b1b; background: #fafafa; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 0 0 4px; word-break: break-all; }
.note, .facts, .metrics { color: #555; margin: 2px 0; } .worse { color: #b00020; font-weight: 600; }
.table { overflow-x: auto; margin: 12px 0 24px; } table { border-collapse: collapse; }
td, th { padding: 3px 10px; border-bottom: 1px solid #ddd; white-space: nowrap; }
td:first-child { white-space: normal; word-break: break-all; min-width: 14em; }
th { text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; } tfoot td { font-weight: 600; }
section.image { margin: 28px 0; padding-top: 12px; border-top: 1px solid #ccc; }
.ba { position: relative; width: 100%; margin-top: 8px; line-height: 0; user-select: none; }
.ba img { display: block; width: 100%; height: auto; }
.ba .after { position: absolute; top: 0; left: 0; }
.ba .divider { position: absolute; top: 0; bottom: 0; width: 2px; margin-left: -1px; background: #fff;
  box-shadow: 0 0 0 1px rgba(0, 0, 0, .5); pointer-events: none; }
.ba .tag { position: absolute; top: 6px; padding: 2px 6px; font: 12px/1.3 system-ui, sans-serif; color: #fff;
  background: rgba(0, 0, 0, .6); pointer-events: none; }
.ba .tag.left { left: 6px; } .ba .tag.right { right: 6px; }
.ba .mark { position: absolute; box-sizing: border-box; border: 2px solid; pointer-events: none; }
.ba .mark span { position: absolute; top: 0; left: 0; padding: 0 3px; font: 11px/1.3 system-ui, sans-serif;
  color: #000; }
/* the range input lies over the picture, invisible: drag (or click, or use the arrow keys) on the picture itself */
.ba input.split { position: absolute; inset: 0; width: 100%; height: 100%; margin: 0; opacity: 0;
  cursor: ew-resize; -webkit-appearance: none; appearance: none; }
.ba input.split::-webkit-slider-thumb { -webkit-appearance: none; width: 1px; height: 100%; }
.ba input.split::-moz-range-thumb { width: 1px; height: 100%; border: 0; }
.ba input.split:focus-visible { opacity: .25; }
.ba.zoomed img { image-rendering: pixelated; }
.pan { overflow: auto; max-height: 90vh; margin-top: 8px; } .pan .ba { margin-top: 0; }
p.ba-help { color: #555; font-size: 13px; margin: 4px 0 10px; } p.ba-help button { font-size: 12px; }
img.crops { display: block; max-width: 100%; height: auto; image-rendering: pixelated; }
"""
# Moves each slider's split: the restoration is shown left of it, the input right of it.
_SCRIPT = """
for (const range of document.querySelectorAll("input.split")) {
  const figure = document.getElementById(range.dataset.figure);
  const after = figure.querySelector(".after"), divider = figure.querySelector(".divider");
  const show = () => {
    after.style.clipPath = "inset(0 " + (100 - range.value) + "% 0 0)";
    divider.style.left = range.value + "%";
    figure.dataset.split = range.value;
  };
  range.addEventListener("input", show);
  show();
}
// Zoom buttons: the slider's picture at 1×, 2× or 4× (nearest neighbour), scrolled inside its frame.
for (const button of document.querySelectorAll("button[data-zoom]")) {
  button.addEventListener("click", () => {
    const figure = document.getElementById(button.parentElement.dataset.figure);
    const width = Number(figure.querySelector(".before").getAttribute("width")), zoom = Number(button.dataset.zoom);
    figure.style.maxWidth = zoom > 1 ? "none" : width + "px";
    figure.style.width = zoom > 1 ? width * zoom + "px" : "";
    figure.classList.toggle("zoomed", zoom > 1);
    figure.dataset.zoom = zoom;
  });
}
"""

# Nothing but inline style, data: images and the one script above, allowed by its hash: a script or event handler
# that got into the page some other way does not run (escaping is not the only defence); no fetch, font, frame or
# navigation target.
SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode("ascii")
CONTENT_SECURITY_POLICY = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src '{SCRIPT_HASH}'"


@dataclass(frozen=True)
class _Row:
    """One image's line of the summary table."""

    anchor: str
    name: str
    quality: JpegQuality | None
    facts: RunFacts
    metrics: Metrics | None


class HtmlReport:
    """Collects a run's images (:meth:`add`) and writes the report (:meth:`write`); :meth:`close` frees the spool.

    ``folder``: where the spool lives (the report's own folder, which the user chose); ``settings``: the
    :class:`runtime.report_types.CompareSettings` that made the pictures (the report states them).
    """

    def __init__(self, folder: str | os.PathLike, title: str, settings: CompareSettings) -> None:
        self.title, self.settings = title, settings
        self.rows: list[_Row] = []
        # closed by close(); unlinked at once on POSIX, so not even a kill leaves it behind
        self._spool = tempfile.TemporaryFile(dir=folder, prefix=".report-spool-")  # noqa: SIM115

    def add(
        self,
        name: str,
        facts: RunFacts,
        quality: JpegQuality | None,
        metrics: Metrics | None,
        before: np.ndarray,
        after: np.ndarray,
        crops: np.ndarray | None,
        marks: Sequence[Mark] = (),
        picture: str = "",
    ) -> None:
        """One image: ``name`` as shown (any text; escaped), the input ``before`` and restoration ``after`` (H×W×3
        uint8 RGB, one shape) for the slider, the zoomed ``crops`` picture (H×W×3 uint8 RGB) or None, the crops'
        places (``marks``, in ``before``'s pixels) outlined on the slider, and the name of its side-by-side
        ``picture``, named instead of the images once :attr:`CompareSettings.embedded` images are embedded."""
        if before.shape != after.shape or before.ndim != 3 or before.dtype != np.uint8:
            raise ValueError(f"expected two H×W×3 uint8 images of one shape, got {before.shape} and {after.shape}")
        row = _Row(f"img-{len(self.rows) + 1}", name, quality, facts, metrics)
        if len(self.rows) < self.settings.embedded:
            boxes = _boxes(marks, *before.shape[:2])
            before, after = _shrink(before, self.settings.slider_side), _shrink(after, self.settings.slider_side)
            self._spool.write(_entry(row, _figure(row, before, after, boxes, crops)).encode())
        else:
            self._spool.write(_entry(row, _not_embedded(picture, self.settings.embedded)).encode())
        self.rows.append(row)

    def write(self, path: str | os.PathLike) -> Path:
        """Write the report to ``path`` atomically; returns ``path``."""
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as out:
            out.write(self._head().encode())
            self._spool.seek(0)
            shutil.copyfileobj(self._spool, out)
            out.write(f"<script>{_SCRIPT}</script>\n</body>\n</html>\n".encode())
        return path

    def close(self) -> None:
        self._spool.close()

    def _head(self) -> str:
        e = html.escape
        s = self.settings
        measured = [row for row in self.rows if row.metrics]
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        note = (
            f"{len(self.rows)} image(s), {len(measured)} with an original; written {when}. Slider: the restoration "
            f"left of the split, the input right of it; lossless PNG, long side at most {s.slider_side} px. Crops: "
            f"the {s.crop_size}-pixel regions the restoration changed most, ×{s.zoom} nearest neighbour."
        )
        if len(self.rows) > s.embedded:
            note += (
                f" The first {s.embedded} images are embedded; the other {len(self.rows) - s.embedded} are listed "
                "with their facts, their side-by-side pictures beside this report (each embedded image adds its "
                "pictures to this one file)."
            )
        existing = sum(row.facts.existing for row in self.rows)
        if existing:
            note += f" {existing} of the images: {EXISTING_NOTE}."
        if measured:
            note += (
                " Metrics against the original: PSNR, SSIM (Gaussian 11×11) and PSNR-B on the channels named (RGB: "
                "all three; Y: a gray input against the original's BT.601 Y), input JPEG → restored; "
                f"{WORSE}: the restoration scores below the input."
            )
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{e(self.title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f'<h1>{e(self.title)}</h1>\n<p class="note">{e(note)}</p>\n{self._summary(measured)}'
        )

    def _summary(self, measured: list[_Row]) -> str:
        e = html.escape
        metric_heads = "<th>on</th><th>PSNR (dB)</th><th>SSIM</th><th>PSNR-B (dB)</th>" if measured else ""
        lines = [
            '<div class="table"><table class="summary">',
            f"<thead><tr><th>image</th><th>JPEG</th><th>model</th><th>precision</th><th>backend</th>"
            f"<th>time (s)</th>{metric_heads}</tr></thead>",
            "<tbody>",
        ]
        for row in self.rows:
            f = row.facts
            cells = [
                f'<a href="#{row.anchor}">{e(row.name)}</a>', e(_quality_text(row.quality)), e(f.model),
                e(f.precision), e(f.backend), _seconds_text(f),
            ]  # fmt: skip
            metric_cells = _channels_td(row.metrics) + "".join(map(_metric_td, _metric_cells(row.metrics)))
            metric_cells = metric_cells if measured else ""
            lines.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + metric_cells + "</tr>")
        lines.append("</tbody>")
        if measured:
            means = _mean_metrics([row.metrics for row in measured if row.metrics])
            label = f"mean of {len(measured)}"
            cells = "".join(map(_metric_td, means))
            lines.append(f'<tfoot><tr><td colspan="7">{label}</td>{cells}</tr></tfoot>')
        lines.append("</table></div>\n")
        return "\n".join(lines)


def _entry(row: _Row, figure: str) -> str:
    """One image's section: heading, facts, metrics, and its ``figure`` (:func:`_figure`, :func:`_not_embedded`)."""
    e = html.escape
    f = row.facts
    facts = [_quality_text(row.quality), f"model {f.model}", f.precision, f.backend, f"{_seconds_text(f)} s"]
    if f.existing:
        facts[1:] = [EXISTING_NOTE]
    elif f.strength != 1:
        facts.append(f"strength {f.strength:g}")
    if f.consistent is not None:
        facts.append(f"consistent with the JPEG: {floor_percent(f.consistent)} of luma coefficients")
    parts = [
        f'<section class="image" id="{row.anchor}">',
        f"<h2>{e(row.name)}</h2>",
        f'<p class="facts">{e(" · ".join(facts))}</p>',
    ]
    if row.metrics:
        psnr, ssim, psnr_b = (_metric_span(cell) for cell in _metric_cells(row.metrics))
        parts.append(f'<p class="metrics">PSNR {psnr} dB · SSIM {ssim} · PSNR-B {psnr_b} dB '
                     f"({row.metrics.channels}; JPEG → restored)</p>")  # fmt: skip
    parts += [figure, "</section>\n"]
    return "\n".join(parts)


def _figure(row: _Row, before: np.ndarray, after: np.ndarray, boxes: list[str], crops: np.ndarray | None) -> str:
    """The slider (restoration left of the split, input right of it; the crops' ``boxes`` outlined) and the crops."""
    h, w = before.shape[:2]
    figure = f"{row.anchor}-figure"
    label = html.escape("split between restored and input: " + row.name)
    parts = [
        '<div class="pan">',
        f'<div class="ba" id="{figure}" style="max-width: {w}px">',
        f'<img class="before" src="{_png_uri(before)}" width="{w}" height="{h}" alt="input">',
        f'<img class="after" src="{_png_uri(after)}" width="{w}" height="{h}" alt="restored" '
        'style="clip-path: inset(0 50% 0 0)">',
        *boxes,
        '<div class="divider" style="left: 50%"></div>',
        '<span class="tag left">restored</span><span class="tag right">input</span>',
        f'<input type="range" class="split" min="0" max="100" step="0.5" value="50" data-figure="{figure}" '
        f'aria-label="{label}">',
        "</div>",
        "</div>",
        f'<p class="ba-help" data-figure="{figure}">Drag on the picture (or use the arrow keys) to move the split; '
        "the numbered boxes are the crops below. Zoom: "
        + " ".join(f'<button type="button" data-zoom="{z}">{z}×</button>' for z in (1, 2, 4))
        + "</p>",
    ]
    if crops is not None:
        ch, cw = crops.shape[:2]
        parts.append(f'<img class="crops" src="{_png_uri(crops)}" width="{cw}" height="{ch}" alt="zoomed crops">')
    return "\n".join(parts)


def _boxes(marks: Sequence[Mark], height: int, width: int) -> list[str]:
    """The crops' outlines on the slider, placed in percent of the image (the slider shows it shrunk)."""
    boxes = []
    for number, (y, x, size, (r, g, b)) in enumerate(marks, 1):
        place = (f"left: {100 * x / width:.3f}%; top: {100 * y / height:.3f}%; width: {100 * size / width:.3f}%; "
                 f"height: {100 * size / height:.3f}%")  # fmt: skip
        colour = f"rgb({r}, {g}, {b})"
        boxes.append(f'<div class="mark" style="{place}; border-color: {colour}">'
                     f'<span style="background: {colour}">{number}</span></div>')  # fmt: skip
    return boxes


def _not_embedded(picture: str, limit: int) -> str:
    where = f"its side-by-side picture {picture} is beside this report" if picture else "no picture is embedded"
    return f'<p class="note">Not embedded (the report embeds its first {limit} images): {html.escape(where)}.</p>'


def _metric_span(cell: tuple[str, bool]) -> str:
    text, worse = cell
    return f'<span class="worse" title="{WORSE_TITLE}">{text}</span>' if worse else text


def _channels_td(metrics: Metrics | None) -> str:
    return f"<td>{metrics.channels if metrics else ''}</td>"


def _seconds_text(facts: RunFacts) -> str:
    return "–" if facts.seconds is None else f"{facts.seconds:.2f}"


def _quality_text(quality: JpegQuality | None) -> str:
    return f"JPEG {quality}" if quality else "not a JPEG"


_DIGITS = {"psnr": 2, "ssim": 4, "psnr_b": 2}  # decimals shown per metric
WORSE = "▼"  # after a metric where the restoration scores below the input JPEG
WORSE_TITLE = "the restoration scores below the input JPEG"


def _metric_cells(metrics: Metrics | None) -> list[tuple[str, bool]]:
    """PSNR, SSIM and PSNR-B as (``JPEG → restored`` text, whether the restoration scores below the JPEG) (empty
    without metrics)."""
    if metrics is None:
        return [("", False)] * 3
    j, r = metrics.jpeg, metrics.restored
    return [_pair(getattr(j, k), getattr(r, k), d) for k, d in _DIGITS.items()]


def _mean_metrics(all_metrics: list[Metrics]) -> list[tuple[str, bool]]:
    """Per-image metrics averaged (the protocol's mean: per image, then over images), as :func:`_metric_cells`."""

    def mean(scores: list[Scores], field: str) -> float | None:
        values = [getattr(s, field) for s in scores if getattr(s, field) is not None]
        return sum(values) / len(values) if values else None

    jpeg, restored = [m.jpeg for m in all_metrics], [m.restored for m in all_metrics]
    return [_pair(mean(jpeg, k), mean(restored, k), d) for k, d in _DIGITS.items()]


def _pair(jpeg: float | None, restored: float | None, digits: int) -> tuple[str, bool]:
    """``JPEG → restored`` and whether the restoration is worse (all three metrics: higher is better), then marked
    with :data:`WORSE`."""
    worse = jpeg is not None and restored is not None and restored < jpeg
    return f"{_number(jpeg, digits)} → {_number(restored, digits)}{' ' + WORSE if worse else ''}", worse


def _metric_td(cell: tuple[str, bool]) -> str:
    text, worse = cell
    if worse:
        return f'<td class="n worse" title="{WORSE_TITLE}">{text}</td>'
    return f'<td class="n">{text}</td>'


def _number(value: float | None, digits: int) -> str:
    if value is None:
        return "–"
    return "∞" if math.isinf(value) else f"{value:.{digits}f}"


def _shrink(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` with its long side at most ``side`` pixels (area averaging); unchanged when it fits."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _png_uri(rgb: np.ndarray) -> str:
    ok, data = cv2.imencode(
        ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, _PNG_COMPRESSION]
    )
    if not ok:
        raise ValueError(f"cannot encode a {rgb.shape} image as PNG")
    return "data:image/png;base64," + base64.b64encode(data.tobytes()).decode("ascii")
