"""Gain over JPEG of generator checkpoints on a lineage's validation pairs: how lineages and candidates are compared.

    python tools/validation_gain.py CKPT... [--val runs/lineage_half/data/val] [--quality 5 10 20 30 40 50]

The pairs are those ``python -m train`` validates on (:func:`train.data.load_validation`: each image's centre crop,
compressed once per quality by libjpeg, colour 4:2:0), restored by PyTorch in FP32. Per checkpoint and quality it
prints the RGB, luma and chroma PSNR gains over the JPEG (dB, means over images; chroma over the colour images only:
a gray image's chroma is exact in its JPEG) and the mean colour shift per RGB channel (levels). Never LIVE1/Classic5:
this is how candidates are chosen, and LIVE1 only confirms.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.colour_split import split_scores, summarise
from models import load_generator
from models.checkpoint import CheckpointError
from train.data import DataError, ValidationSet, load_validation
from train.evaluate import RestoreFn, generator_restore_fn, restore_uint8


def gains(name: str, restore: RestoreFn, val: ValidationSet, quality: int) -> dict[str, float | list[float]]:
    """RGB / Y / CbCr gains (dB) and colour shift (levels) of one generator at one quality of ``val``."""
    restored, jpeg = [], []
    for j, c, q in zip(val.jpeg, val.clean, val.qualities, strict=True):
        if q != quality:
            continue
        restored.append(split_scores(restore_uint8(name, restore, j), c))
        jpeg.append(split_scores(j, c))
    colour = [i for i, r in enumerate(jpeg) if np.isfinite(r["cbcr"])]
    mine, base = summarise(restored), summarise(jpeg)
    return {
        "rgb": mine["rgb"] - base["rgb"],
        "y": mine["y"] - base["y"],
        "cbcr": float(np.mean([restored[i]["cbcr"] - jpeg[i]["cbcr"] for i in colour])) if colour else float("nan"),
        "shift": mine["shift_rgb"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ckpt", nargs="+", help="generator checkpoints (RGB)")
    p.add_argument("--val", default="runs/lineage_half/data/val", help="validation folder (tools/cpu_lineage.sh's)")
    p.add_argument("--quality", nargs="+", type=int, default=[5, 10, 20, 30, 40, 50])
    p.add_argument("--crop", type=int, default=256, help="centre crop, as train's --val-crop")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        val = load_validation(args.val, "rgb", args.quality, args.crop, 1000)
        models = {ckpt: generator_restore_fn(load_generator(ckpt)[0]) for ckpt in args.ckpt}
    except (CheckpointError, DataError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(val.clean) // len(args.quality)} images of {args.val}, {args.crop}-px centre crops, PyTorch FP32")
    print("| checkpoint | q | RGB gain | Y gain | CbCr gain | colour shift R / G / B |")
    print("|---|---|---|---|---|---|")
    for ckpt, restore in models.items():
        for q in args.quality:
            r = gains(ckpt, restore, val, q)
            shift = " / ".join(f"{s:+.2f}" for s in r["shift"])
            print(f"| {ckpt} | {q} | {r['rgb']:+.3f} | {r['y']:+.3f} | {r['cbcr']:+.3f} | {shift} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
