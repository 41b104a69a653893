"""Evaluate JPEG-artifact removers with the field's exact protocol (``docs/EVALUATION.md`` in ``../shared``).

Protocols (``channel``):

- ``"y"``: colour ground truths → MATLAB BT.601 luma (:func:`common.color.rgb_to_y`); grayscale ones as is.
  The Y image is compressed as a *grayscale* JPEG and the method restores that single channel.
- ``"rgb"``: colour JPEG with libjpeg defaults (4:2:0), restored in RGB. Grayscale images are refused.

A method gets the decoded JPEG as H×W×C float32 in [0, 1]; its output is clipped to [0, 1], ×255 and
rounded to uint8. PSNR, SSIM and PSNR-B (:mod:`common.metrics`; LPIPS optional) are computed per image
on uint8 values without border crop and then averaged. The JPEG baseline reproduces the published rows
(``benchmarks/results/quality.md``).

CLI::

    python -m train.evaluate --data ../shared/data/eval/LIVE1 --quality 10 20 --ckpt g.pt -o live1.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from common.cli import UsageError, exit_missing_extra, run_cli

try:
    import torch
except ModuleNotFoundError as e:  # a missing extra: one line, not a traceback
    exit_missing_extra(e, __name__, "train")

import cv2
import numpy as np
from tqdm import tqdm

from common.color import rgb_to_y
from common.files import atomic_write_text
from common.jpeg import jpeg_roundtrip
from common.metrics import psnr, psnr_b, ssim
from common.tiling import DEFAULT_OVERLAP, TileGrid, crop_slices, extract_window
from models.checkpoint import load_generator
from models.wcdgan import WCDGANGenerator
from train.lpips import LPIPS

RestoreFn = Callable[[np.ndarray], np.ndarray]
"""H×W×C float32 in [0, 1] (C = 1 for "y", 3 for "rgb") → same shape, float (unclipped is fine).

A function may carry an ``in_channels`` attribute (as :func:`generator_restore_fn`'s do); evaluation
then refuses a mismatching protocol before any work.
"""

PROTOCOLS = {
    "y": {
        "name": "jpeg-gray-y-bt601",
        "description": "MATLAB BT.601 Y (grayscale images as is), grayscale libjpeg JPEG; output clipped, rounded "
        "to uint8; per-image PSNR / Gaussian SSIM (11x11, sigma 1.5, valid) / PSNR-B, no border crop, averaged",
    },
    "rgb": {
        "name": "jpeg-rgb-420",
        "description": "RGB, colour libjpeg JPEG with 4:2:0 chroma; output clipped, rounded to uint8; per-image PSNR "
        "over RGB / mean per-channel Gaussian SSIM / mean per-channel PSNR-B, no border crop, averaged",
    },
}
BASELINE_NAME = "JPEG"
GROUND_TRUTH_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")  # lossless 8-bit formats only


def load_eval_images(data_dir: str | os.PathLike, channel: str) -> list[tuple[str, np.ndarray]]:
    """Ground truths of a test set: ``[(file stem, uint8 image)]`` sorted by name.

    ``channel="y"``: H×W (luma of colour files, grayscale files unchanged). ``channel="rgb"``: H×W×3 RGB;
    grayscale files raise ``ValueError``. A colour file whose three channels are identical is grayscale
    data and is treated as such (so Classic5 stored as RGB still gives the published numbers). Only
    lossless 8-bit files (``GROUND_TRUTH_SUFFIXES``) are read; an opaque alpha channel is dropped.
    """
    _check_channel(channel)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: no such folder")
    paths = sorted(p for p in data_dir.iterdir() if p.suffix.lower() in GROUND_TRUTH_SUFFIXES and p.is_file())
    if not paths:
        raise ValueError(f"{data_dir}: no images ({', '.join(GROUND_TRUTH_SUFFIXES)})")
    if len({p.stem for p in paths}) != len(paths):
        raise ValueError(f"{data_dir}: several images share a name (stem); results are keyed by name")
    images = []
    for path in paths:
        image = _read_image(path)
        if image.ndim == 2:
            if channel == "rgb":
                raise ValueError(
                    f"{path}: grayscale image; the RGB protocol needs colour images (evaluate with channel 'y')"
                )
        elif channel == "y":
            image = rgb_to_y(image)
        images.append((path.stem, image))
    return images


def evaluate_methods(
    methods: Mapping[str, RestoreFn | None],
    data_dir: str | os.PathLike,
    qualities: Sequence[int],
    channel: str = "y",
    lpips: LPIPS | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every method on every image at every JPEG quality; ``None`` is the JPEG baseline itself.

    Returns a JSON-serialisable dict: ``protocol`` {name, description}, ``dataset``, ``data_dir``,
    ``channel``, ``qualities``, ``images`` (names), ``metrics``, and ``methods[name][str(q)]`` =
    {``psnr``, ``ssim``, ``psnr_b``[, ``lpips``]: mean, ``per_image``: {image name: {metric: value}}}.
    """
    _check_channel(channel)
    qualities = [int(q) for q in qualities]
    if not qualities or not all(1 <= q <= 100 for q in qualities):
        raise ValueError(f"JPEG qualities must be in 1..100, got {qualities}")
    want = 1 if channel == "y" else 3
    for name, fn in methods.items():
        have = getattr(fn, "in_channels", want)
        if have != want:
            raise ValueError(_channel_mismatch(name, have, want))
    images = load_eval_images(data_dir, channel)
    metric_names = ["psnr", "ssim", "psnr_b"] + (["lpips"] if lpips is not None else [])
    per_image: dict[str, dict[int, dict[str, dict[str, float]]]] = {m: {q: {} for q in qualities} for m in methods}
    with tqdm(total=len(images) * len(qualities), desc="evaluate", unit="img", disable=not progress) as bar:
        for image_name, target in images:
            for q in qualities:
                decoded = jpeg_roundtrip(target, q)
                for method, fn in methods.items():
                    restored = decoded if fn is None else restore_uint8(method, fn, decoded)
                    per_image[method][q][image_name] = _measure(restored, target, lpips)
                bar.update()
    return {
        "protocol": dict(PROTOCOLS[channel]),
        "dataset": Path(data_dir).resolve().name,
        "data_dir": str(data_dir),
        "channel": channel,
        "qualities": qualities,
        "images": [name for name, _ in images],
        "metrics": metric_names,
        "methods": {
            method: {str(q): _summarise(per_image[method][q], metric_names) for q in qualities} for method in methods
        },
    }


def format_markdown(results: Mapping[str, Any]) -> str:
    """A markdown table of :func:`evaluate_methods` results: one row per method, one column per quality."""
    metrics = results["metrics"]
    qualities = results["qualities"]
    header = " / ".join(_METRIC_LABELS[m] for m in metrics)
    lines = [
        f"{results['dataset']} ({len(results['images'])} images), channel {results['channel']}, "
        f"protocol {results['protocol']['name']}; cells: {header}",
        "",
        "| method | " + " | ".join(f"q={q}" for q in qualities) + " |",
        "|---|" + "---|" * len(qualities),
    ]
    for method, by_q in results["methods"].items():
        cells = [" / ".join(_METRIC_FORMATS[m].format(by_q[str(q)][m]) for m in metrics) for q in qualities]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def generator_restore_fn(model: WCDGANGenerator, device: str = "cpu", tile: int | None = None) -> RestoreFn:
    """Wrap a generator as a :data:`RestoreFn` (moves ``model`` to ``device``, eval mode; no grad, float32).

    The returned function carries ``in_channels = model.cfg.in_channels`` and raises ``ValueError`` when
    given another channel count (a 3-channel model cannot be evaluated with the "y" protocol, nor a
    1-channel model with "rgb"). ``tile``: restore in tile×tile pieces that overlap by
    :data:`common.tiling.DEFAULT_OVERLAP` px on each side, to bound memory; outputs then differ slightly from
    whole-image inference near tile seams. ``None``: whole image at once.
    """
    if tile is not None and tile < 1:
        raise ValueError(f"tile must be positive, got {tile}")
    model = model.to(device).eval()
    in_channels = model.cfg.in_channels

    @torch.no_grad()
    def run(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32))[None].to(device)
        return model(t)[0].float().cpu().numpy().transpose(1, 2, 0)

    def restore(x: np.ndarray) -> np.ndarray:
        if x.ndim != 3 or x.shape[2] != in_channels:
            raise ValueError(_channel_mismatch("generator", in_channels, x.shape[2] if x.ndim == 3 else 0))
        return run(x) if tile is None else _tiled(run, x, tile, DEFAULT_OVERLAP)

    restore.in_channels = in_channels  # type: ignore[attr-defined]
    return restore


def _tiled(run: RestoreFn, x: np.ndarray, tile: int, overlap: int) -> np.ndarray:
    """Apply ``run`` window by window on the runtime's tile grid (:mod:`common.tiling`) and stitch the crops."""
    grid = TileGrid.create(x.shape[0], x.shape[1], tile, overlap)
    out = np.empty(x.shape, dtype=np.float32)
    for t in grid:
        image_region, window_region = crop_slices(t)
        out[image_region] = run(extract_window(x, t, grid.window))[window_region]
    return out


_METRIC_LABELS = {"psnr": "PSNR dB", "ssim": "SSIM", "psnr_b": "PSNR-B dB", "lpips": "LPIPS"}
_METRIC_FORMATS = {"psnr": "{:.2f}", "ssim": "{:.4f}", "psnr_b": "{:.2f}", "lpips": "{:.3f}"}


def _check_channel(channel: str) -> None:
    if channel not in PROTOCOLS:
        raise ValueError(f"channel must be one of {sorted(PROTOCOLS)}, got {channel!r}")


def _channel_mismatch(name: str, model_channels: int, given_channels: int) -> str:
    return (
        f"{name}: the model takes {model_channels}-channel images but was given {given_channels}-channel ones; "
        f"evaluate it with channel '{'y' if model_channels == 1 else 'rgb'}'"
    )


def _read_image(path: Path) -> np.ndarray:
    """8-bit file → H×W (grayscale) or H×W×3 RGB uint8."""
    image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    if image.dtype != np.uint8:
        raise ValueError(f"{path}: {image.dtype} image; the protocol is defined on 8-bit images")
    if image.ndim == 3 and image.shape[2] == 4:
        if (image[..., 3] != 255).any():
            raise ValueError(f"{path}: image has transparency; the protocol needs opaque images")
        image = image[..., :3]
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 3:
        if (image[..., :1] == image).all():  # grayscale data stored as colour
            return np.ascontiguousarray(image[..., 0])
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def restore_uint8(name: str, fn: RestoreFn, decoded: np.ndarray) -> np.ndarray:
    """Feed ``decoded`` (uint8 H×W or H×W×3) to ``fn`` as float [0, 1] H×W×C; clip, ×255, round → uint8."""
    x = (decoded[..., None] if decoded.ndim == 2 else decoded).astype(np.float32) / 255.0
    y = np.asarray(fn(x))
    if y.shape != x.shape:
        raise ValueError(f"{name}: returned shape {y.shape} for input {x.shape}")
    out = np.round(np.clip(y.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    return out.reshape(decoded.shape)


def _measure(restored: np.ndarray, target: np.ndarray, lpips: LPIPS | None) -> dict[str, float]:
    values = {"psnr": psnr(restored, target), "ssim": ssim(restored, target), "psnr_b": psnr_b(restored, target)}
    if lpips is not None:
        values["lpips"] = lpips(restored, target)
    return values


def _summarise(per_image: dict[str, dict[str, float]], metrics: list[str]) -> dict[str, Any]:
    means = {m: float(np.mean([v[m] for v in per_image.values()])) for m in metrics}
    return {**means, "per_image": per_image}


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m train.evaluate",
        description="Measure PSNR / SSIM / PSNR-B (and LPIPS) of the JPEG baseline and of WCDGAN checkpoints on a "
        "test set with the published JPEG-artifact-removal protocol. Prints a markdown table (JPEG first, then "
        "one row per checkpoint); writes the full per-image results as JSON only when -o is given.",
    )
    p.add_argument("--data", required=True, type=Path, help="folder of ground-truth images (e.g. LIVE1)")
    p.add_argument("--quality", required=True, type=int, nargs="+", help="JPEG qualities (1-100), e.g. 10 20 30 40")
    p.add_argument("--ckpt", type=Path, nargs="*", default=[], help="generator checkpoints (models.checkpoint format)")
    p.add_argument(
        "--channel",
        choices=sorted(PROTOCOLS),
        default="y",
        help="'y': MATLAB luma, grayscale JPEG (paper Table 1, default); 'rgb': colour JPEG 4:2:0 (Table 2)",
    )
    p.add_argument("--lpips-dir", type=Path, help="folder with the LPIPS AlexNet weights (adds an LPIPS column)")
    p.add_argument("--device", default="cpu", help="torch device for the checkpoints (default: cpu)")
    p.add_argument(
        "--tile", type=int, help=f"restore in tiles of this size (+{DEFAULT_OVERLAP} px context), saves memory"
    )
    p.add_argument("-o", "--output", type=Path, help="write the results JSON here (atomically)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if bad := [q for q in args.quality if not 1 <= q <= 100]:
        p.error(f"--quality must be in 1..100, got {bad}")
    if args.tile is not None and args.tile < 1:
        p.error("--tile must be positive")
    return args


def _check_device(device: str) -> None:
    try:
        kind = torch.device(device).type
    except RuntimeError as e:
        raise ValueError(f"--device: {e}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available to this PyTorch")
    if kind == "cuda":  # measure the network in full FP32, as on a CPU (PyTorch allows TF32 convolutions)
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False


def _load_methods(args: argparse.Namespace) -> dict[str, RestoreFn | None]:
    methods: dict[str, RestoreFn | None] = {BASELINE_NAME: None}
    for path in args.ckpt:
        model, _ = load_generator(path)
        name = path.stem if path.stem not in methods else str(path)
        methods[name] = generator_restore_fn(model, device=args.device, tile=args.tile)
    return methods


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code (0 ok, 2 bad input)."""
    return run_cli(run, _parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the table (stdout); UsageError for bad input."""
    try:
        _check_device(args.device)
        methods = _load_methods(args)  # CheckpointError is a ValueError
        lpips = None if args.lpips_dir is None else LPIPS.from_dir(args.lpips_dir, device=args.device)
        results = evaluate_methods(methods, args.data, args.quality, args.channel, lpips, progress=not args.quiet)
        print(format_markdown(results), end="")
        if args.output is not None:
            atomic_write_text(args.output, json.dumps(results, indent=1) + "\n")
    except (OSError, ValueError) as e:
        raise UsageError(str(e)) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
