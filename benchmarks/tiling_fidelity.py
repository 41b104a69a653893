"""How much does tiling change a model's output? Tiled vs whole-image PSNR on LIVE1 JPEGs.

WCDGAN's channel attention averages over whatever it is given: a tile never sees the whole image's
statistics, so tiled and whole-image outputs differ slightly even with a large overlap. For each tile
core / overlap setting this restores LIVE1 compressed at quality q both ways and reports PSNR(tiled, whole)
(the runtime's target: ≥ 45 dB) and each one's PSNR against the ground truth (does tiling cost quality?).
"Whole image" is one window covering the image, reflect-padded like tiles are.

    python -m benchmarks.tiling_fidelity --model runtime/weights/default.onnx --tiles 128 256 384 \
        --overlaps 16 32 64 --quality 10 -o out/tiling   # → out/tiling/tiling_fidelity.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from benchmarks.common import RESULTS_DIR, add_output_options
from common.cli import UsageError, run_cli
from common.color import rgb_to_y
from common.files import atomic_write_text, shared_dir
from common.jpeg import jpeg_roundtrip
from common.metrics import psnr_capped
from common.tiling import align_up
from runtime import Restorer
from runtime.model_files import ModelError, resolve_models

SHARED = shared_dir()


@dataclasses.dataclass
class Row:
    tile: int
    overlap: int
    psnr_vs_whole_mean: float
    psnr_vs_whole_min: float
    psnr_gt_tiled: float
    psnr_gt_whole: float
    seconds: float


def load_set(folder: Path, quality: int, y_model: bool, limit: int | None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, ground truth, JPEG-decoded input) per image: colour JPEG for RGB models, MATLAB-Y JPEG for Y models."""
    items = []
    for path in sorted(folder.glob("*.png"))[:limit]:
        rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        gt = rgb_to_y(rgb) if y_model else rgb
        items.append((path.stem, gt, jpeg_roundtrip(gt, quality)))
    return items


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help=".onnx model with its .json sidecar")
    p.add_argument("--data", type=Path, default=SHARED / "data" / "eval" / "LIVE1", help="folder of PNG ground truths")
    p.add_argument("--quality", type=int, default=10)
    p.add_argument("--tiles", type=int, nargs="+", default=[128, 256, 384], help="tile core sizes")
    p.add_argument("--overlaps", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--backend", default="auto")
    p.add_argument("--batch", type=int, help="tiles per call (default: 4 on GPU backends, 1 on the CPU)")
    p.add_argument("--limit", type=int, help="use only the first N images")
    add_output_options(p, "--update-results", RESULTS_DIR)
    p.add_argument("-q", "--quiet", action="store_true")
    return run_cli(run, p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    if not args.data.is_dir():
        raise UsageError(f"{args.data}: not found (LIVE1 lives in ../shared/data/eval/LIVE1)")
    try:
        models = resolve_models(args.model)
    except ModelError as e:
        raise UsageError(str(e)) from None
    y_model = models.for_quality(args.quality).spec.channels == 1
    images = load_set(args.data, args.quality, y_model, args.limit)
    ref_overlap = max(args.overlaps)

    def restorer(tile, overlap):
        return Restorer(models, backend=args.backend, tile=tile, overlap=overlap, batch=args.batch)

    whole = {}
    for name, _, jpeg in tqdm(images, desc="whole images", disable=args.quiet):
        h, w = jpeg.shape[:2]
        with restorer((align_up(h, 16), align_up(w, 16)), ref_overlap) as one_tile:
            whole[name] = one_tile(jpeg, args.quality)
    rows = []
    for tile in args.tiles:
        for overlap in args.overlaps:
            with restorer(tile, overlap) as r:
                start, vs_whole, gt_tiled, gt_whole = time.perf_counter(), [], [], []
                for name, gt, jpeg in tqdm(images, desc=f"tile {tile} overlap {overlap}", disable=args.quiet):
                    tiled = r(jpeg, args.quality)
                    vs_whole.append(psnr_capped(tiled, whole[name]))
                    gt_tiled.append(psnr_capped(tiled, gt))
                    gt_whole.append(psnr_capped(whole[name], gt))
                seconds = time.perf_counter() - start
                rows.append(Row(tile, overlap, float(np.mean(vs_whole)), float(np.min(vs_whole)),
                                float(np.mean(gt_tiled)), float(np.mean(gt_whole)), seconds))  # fmt: skip
    print(f"model {args.model} ({r.backend_name}), {len(images)} images of {args.data.name}, JPEG q{args.quality}")
    print(f"{'tile':>5} {'overlap':>7} {'vs whole mean':>13} {'min':>7} {'GT tiled':>9} {'GT whole':>9} {'s':>7}")
    for row in rows:
        print(f"{row.tile:>5} {row.overlap:>7} {row.psnr_vs_whole_mean:>13.2f} {row.psnr_vs_whole_min:>7.2f} "
              f"{row.psnr_gt_tiled:>9.3f} {row.psnr_gt_whole:>9.3f} {row.seconds:>7.1f}")  # fmt: skip
    report = {
        "model": str(args.model), "backend": r.backend_name, "dataset": str(args.data), "quality": args.quality,
        "images": len(images), "reference_overlap": ref_overlap, "rows": [dataclasses.asdict(x) for x in rows],
    }  # fmt: skip
    path = args.output / "tiling_fidelity.json"
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
