"""Where a colour model's gain goes: luma vs chroma PSNR gains and the mean colour shift, through the runtime.

For each model (a model file or folder, run by :class:`runtime.Restorer` exactly as ``runtime.infer`` runs it) and
each JPEG quality, on the colour ground truths of a data set (default LIVE1, colour JPEG 4:2:0 by libjpeg):

- RGB PSNR of the JPEG and of the restoration (the protocol of ``../shared/docs/EVALUATION.md``);
- the gain split into luma (Y) and chroma (Cb and Cr together), in the full-range BT.601 YCbCr a JPEG codes;
- the mean colour shift per RGB channel, in 8-bit levels: mean(restored − original) over all pixels of all images
  (a model bias shows as the same sign on every image);
- seconds per megapixel (the model's call only; one image at a time).

``--files`` restores JPEG files with ``Restorer.restore_file``, as ``runtime.infer`` does — with the projection onto
the file's quantisation constraint, on by default (``runtime.jpeg_consistency``) — instead of decoded arrays (the
network alone); its s/MP then includes reading, projecting and writing the files.

    python -m benchmarks.colour_split                                   # the bundled default (INT8 on a CPU)
    python -m benchmarks.colour_split --model new=runs/half/export --quality 5 10 20 30 40 --images 8
    python -m benchmarks.colour_split --files                           # what runtime.infer gives for JPEG files
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.common import (
    RESULTS_DIR,
    add_output_options,
    machine_info,
    markdown_table,
    print_report,
    shared_dir,
    write_results,
)
from common.cli import UsageError, run_cli
from common.color import rgb_to_ycbcr_jfif
from common.jpeg import jpeg_encode, jpeg_roundtrip
from common.metrics import psnr
from runtime import Restorer


def _psnr_float(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def split_scores(restored: np.ndarray, original: np.ndarray) -> dict[str, Any]:
    """RGB, Y and CbCr PSNR (dB) and the summed per-channel difference (levels) of one restored image."""
    yr, yo = rgb_to_ycbcr_jfif(restored), rgb_to_ycbcr_jfif(original)
    return {
        "rgb": psnr(restored, original),
        "y": _psnr_float(yr[..., 0], yo[..., 0]),
        "cbcr": _psnr_float(yr[..., 1:], yo[..., 1:]),
        "shift_sum": (restored.astype(np.float64) - original).sum(axis=(0, 1)),
        "pixels": original.shape[0] * original.shape[1],
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over images of the PSNRs; the colour shift weighted by pixels."""
    pixels = sum(r["pixels"] for r in rows)
    shift = sum(r["shift_sum"] for r in rows) / pixels
    return {k: float(np.mean([r[k] for r in rows])) for k in ("rgb", "y", "cbcr")} | {
        "shift_rgb": [round(float(s), 3) for s in shift]
    }


def load_colour_images(folder: Path, limit: int | None) -> list[tuple[str, np.ndarray]]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".bmp", ".tif", ".tiff"))[:limit]
    images = []
    for path in files:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is not None:
            images.append((path.stem, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    if not images:
        raise UsageError(f"{folder}: no colour images")
    return images


def restore_as_file(restorer: Restorer, original: np.ndarray, quality: int, folder: Path) -> np.ndarray:
    """RGB uint8 restoration of ``original``'s libjpeg JPEG at ``quality``, as ``runtime.infer`` restores the file."""
    source, target = folder / "in.jpg", folder / "out.png"
    source.write_bytes(jpeg_encode(original, quality))
    restorer.restore_file(source, target)
    return cv2.cvtColor(cv2.imread(str(target), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def measure_model(
    restorer: Restorer | None, images: list[tuple[str, np.ndarray]], quality: int, files: Path | None = None
) -> dict[str, Any]:
    """Scores of ``restorer`` (None: the JPEG itself) at ``quality`` over ``images``; s/MP of the restores.
    ``files``: a scratch folder; the restorer then restores JPEG files (:func:`restore_as_file`), not arrays."""
    rows, seconds, pixels = [], 0.0, 0
    for _, original in images:
        jpeg = jpeg_roundtrip(original, quality)
        t0 = time.perf_counter()
        if restorer is None:
            restored = jpeg
        elif files is not None:
            restored = restore_as_file(restorer, original, quality, files)
        else:
            restored = restorer(jpeg, quality=quality)
        seconds += time.perf_counter() - t0
        pixels += original.shape[0] * original.shape[1]
        rows.append(split_scores(restored, original))
    return summarise(rows) | ({"s_per_mp": seconds / (pixels / 1e6)} if restorer is not None else {})


def to_markdown(results: dict[str, Any]) -> str:
    headers = ["q", "model", "RGB dB (gain)", "Y gain", "CbCr gain", "mean shift R/G/B (levels)", "s/MP"]
    rows = []
    for q, block in results.items():
        jpeg = block["JPEG"]
        for name, r in block.items():
            gain = "" if name == "JPEG" else f" ({r['rgb'] - jpeg['rgb']:+.2f})"
            rows.append([
                q, name, f"{r['rgb']:.2f}{gain}",
                "" if name == "JPEG" else f"{r['y'] - jpeg['y']:+.2f}",
                "" if name == "JPEG" else f"{r['cbcr'] - jpeg['cbcr']:+.2f}",
                " / ".join(f"{s:+.2f}" for s in r["shift_rgb"]),
                f"{r['s_per_mp']:.2f}" if "s_per_mp" in r else "",
            ])  # fmt: skip
    return markdown_table(headers, rows)


def _model_arg(text: str) -> tuple[str, str | None]:
    name, sep, path = text.partition("=")
    return (name, path) if sep else (text, text)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.colour_split", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model", nargs="+", type=_model_arg, default=[("default", None)], metavar="[NAME=]PATH",
        help="model files or folders (default: the bundled default)",
    )  # fmt: skip
    p.add_argument("--data", type=Path, help="folder of colour ground truths (default: ../shared LIVE1)")
    p.add_argument("--quality", nargs="+", type=int, default=[10, 40], metavar="Q")
    p.add_argument("--images", type=int, help="use the first N images only")
    p.add_argument("--precision", default="auto", help="as runtime.infer's --precision (auto: INT8 on a CPU)")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads")
    p.add_argument(
        "--files", action="store_true", help="restore JPEG files as runtime.infer does (projection included)"
    )
    add_output_options(p, "--update-results", RESULTS_DIR)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, _parse_args(argv))


def run(args: argparse.Namespace) -> int:
    data = args.data or shared_dir() / "data" / "eval" / "LIVE1"
    if not data.is_dir():
        raise UsageError(f"{data}: no such folder (pass --data)")
    images = load_colour_images(data, args.images)
    results: dict[str, Any] = {}
    for q in args.quality:
        results[q] = {"JPEG": measure_model(None, images, q)}
    for name, path in args.model:
        with (
            Restorer(path, precision=args.precision, threads=args.threads) as restorer,
            tempfile.TemporaryDirectory() as scratch,
        ):
            ran = f"{restorer.backend_name}" + (", files" if args.files else "")
            for q in args.quality:
                files = Path(scratch) if args.files else None
                results[q][f"{name} [{ran}]"] = measure_model(restorer, images, q, files)
    how = "JPEG files restored as runtime.infer does" if args.files else "decoded arrays (the network alone)"
    markdown = f"Data: {data.name}, {len(images)} images, {how}; machine: {machine_info()['cpu']}\n\n" + to_markdown(
        results
    )
    payload = {
        "machine": machine_info(), "data": str(data.name), "images": [n for n, _ in images], "files": args.files,
        "results": results,
    }  # fmt: skip
    print_report(markdown, write_results(args.output, "colour_split", payload, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
