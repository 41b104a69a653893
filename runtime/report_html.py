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
import html
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from common.files import atomic_path

if TYPE_CHECKING:
    from runtime.compare import CompareSettings, Metrics, RunFacts, Scores
    from runtime.jpeg_quality import JpegQuality

# Nothing but inline style/script and data: images; no fetch, font, frame or navigation target.
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
_PNG_COMPRESSION = 6  # zlib level of the embedded PNGs: about a third smaller than OpenCV's default 1

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 24px; color: #1b1b1b; background: #fafafa; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 0 0 4px; word-break: break-all; }
.note, .facts, .metrics { color: #555; margin: 2px 0; }
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
input.split { display: block; width: 100%; margin: 6px 0 10px; }
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
"""


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
    :class:`runtime.compare.CompareSettings` that made the pictures (the report states them).
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
    ) -> None:
        """One image: ``name`` as shown (any text; escaped), the input ``before`` and restoration ``after`` (H×W×3
        uint8 RGB, one shape) for the slider, and the zoomed ``crops`` picture (H×W×3 uint8 RGB) or None."""
        if before.shape != after.shape or before.ndim != 3 or before.dtype != np.uint8:
            raise ValueError(f"expected two H×W×3 uint8 images of one shape, got {before.shape} and {after.shape}")
        row = _Row(f"img-{len(self.rows) + 1}", name, quality, facts, metrics)
        before, after = _shrink(before, self.settings.slider_side), _shrink(after, self.settings.slider_side)
        self._spool.write(_entry(row, before, after, crops).encode())
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
        if measured:
            note += " Metrics against the original: PSNR, SSIM (Gaussian 11×11) and PSNR-B, input JPEG → restored."
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{e(self.title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f'<h1>{e(self.title)}</h1>\n<p class="note">{e(note)}</p>\n{self._summary(measured)}'
        )

    def _summary(self, measured: list[_Row]) -> str:
        e = html.escape
        metric_heads = "<th>PSNR (dB)</th><th>SSIM</th><th>PSNR-B (dB)</th>" if measured else ""
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
                e(f.precision), e(f.backend), f"{f.seconds:.2f}",
            ]  # fmt: skip
            metric_cells = "".join(f'<td class="n">{c}</td>' for c in _metric_cells(row.metrics)) if measured else ""
            lines.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + metric_cells + "</tr>")
        lines.append("</tbody>")
        if measured:
            means = _mean_metrics([row.metrics for row in measured if row.metrics])
            label = f"mean of {len(measured)}"
            cells = "".join(f'<td class="n">{c}</td>' for c in means)
            lines.append(f'<tfoot><tr><td colspan="6">{label}</td>{cells}</tr></tfoot>')
        lines.append("</table></div>\n")
        return "\n".join(lines)


def _entry(row: _Row, before: np.ndarray, after: np.ndarray, crops: np.ndarray | None) -> str:
    """One image's section: heading, facts, metrics, slider and crops."""
    e = html.escape
    f = row.facts
    facts = [_quality_text(row.quality), f"model {f.model}", f.precision, f.backend, f"{f.seconds:.2f} s"]
    if f.strength != 1:
        facts.append(f"strength {f.strength:g}")
    if f.consistent is not None:
        share = math.floor(f.consistent * 1e4) / 100  # floor: 100 % means all
        facts.append(f"consistent with the JPEG: {share:.2f} % of luma coefficients")
    h, w = before.shape[:2]
    figure = f"{row.anchor}-figure"
    parts = [
        f'<section class="image" id="{row.anchor}">',
        f"<h2>{e(row.name)}</h2>",
        f'<p class="facts">{e(" · ".join(facts))}</p>',
    ]
    if row.metrics:
        psnr, ssim, psnr_b = _metric_cells(row.metrics)
        parts.append(f'<p class="metrics">PSNR {psnr} dB · SSIM {ssim} · PSNR-B {psnr_b} dB (JPEG → restored)</p>')
    parts += [
        f'<div class="ba" id="{figure}" style="max-width: {w}px">',
        f'<img class="before" src="{_png_uri(before)}" width="{w}" height="{h}" alt="input">',
        f'<img class="after" src="{_png_uri(after)}" width="{w}" height="{h}" alt="restored" '
        'style="clip-path: inset(0 50% 0 0)">',
        '<div class="divider" style="left: 50%"></div>',
        '<span class="tag left">restored</span><span class="tag right">input</span>',
        "</div>",
        f'<input type="range" class="split" min="0" max="100" step="0.5" value="50" data-figure="{figure}" '
        f'style="max-width: {w}px" aria-label="{e("split between restored and input: " + row.name)}">',
    ]
    if crops is not None:
        ch, cw = crops.shape[:2]
        parts.append(f'<img class="crops" src="{_png_uri(crops)}" width="{cw}" height="{ch}" alt="zoomed crops">')
    parts.append("</section>\n")
    return "\n".join(parts)


def _quality_text(quality: JpegQuality | None) -> str:
    return f"JPEG {quality}" if quality else "not a JPEG"


_DIGITS = {"psnr": 2, "ssim": 4, "psnr_b": 2}  # decimals shown per metric


def _metric_cells(metrics: Metrics | None) -> list[str]:
    """PSNR, SSIM and PSNR-B as ``JPEG → restored`` texts (empty without metrics)."""
    if metrics is None:
        return ["", "", ""]
    j, r = metrics.jpeg, metrics.restored
    return [f"{_number(getattr(j, k), d)} → {_number(getattr(r, k), d)}" for k, d in _DIGITS.items()]


def _mean_metrics(all_metrics: list[Metrics]) -> list[str]:
    """Per-image metrics averaged (the protocol's mean: per image, then over images), as :func:`_metric_cells`."""

    def mean(scores: list[Scores], field: str) -> float | None:
        values = [getattr(s, field) for s in scores if getattr(s, field) is not None]
        return sum(values) / len(values) if values else None

    jpeg, restored = [m.jpeg for m in all_metrics], [m.restored for m in all_metrics]
    return [f"{_number(mean(jpeg, k), d)} → {_number(mean(restored, k), d)}" for k, d in _DIGITS.items()]


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
