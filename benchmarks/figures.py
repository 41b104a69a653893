"""The README's pictures, from measured data: a before/after figure and the gain over JPEG against JPEG quality.

- ``hero.png``: crops of test images (LIVE1, Classic5: public test sets that may be shown) compressed with the
  project's libjpeg round trip (:func:`common.jpeg.jpeg_roundtrip`) and restored by the bundled default model through
  the torch-free :class:`runtime.Restorer`: JPEG | restored | original, zoomed with nearest-neighbour sampling. Each
  crop is the window where the restoration reduced the squared error the most (stated in ``figures.md``).
- ``gain.png``: PSNR gain over JPEG (LIVE1, RGB protocol ``jpeg-rgb-420`` of :mod:`train.evaluate`) against JPEG
  quality for the bundled model (FP32 and INT8 graphs, ONNX Runtime CPU), the official AR-CNN and DnCNN-3 (restoring
  Y, keeping chroma, as in :mod:`benchmarks.quality`), ``--ckpt`` checkpoints, and the full-size model's GPU-window-1
  record (measured on the H200 with the same protocol; not re-measured here: it costs 12× the bundled model).
- ``figures.json`` / ``figures.md``: every number, the machine, and how busy the rest of the machine was.

Rerun whenever the default model changes::

    python -m benchmarks.figures --update-docs           # full LIVE1, q 5-40 -> docs/images/ (tracked)
    python -m benchmarks.figures -o out/figures          # the same anywhere else
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from common.cli import exit_missing_extra

try:
    import matplotlib  # noqa: F401 (the plot; checked here for a one-line error)
    import torch  # noqa: F401 (train.evaluate and the peers)
except ModuleNotFoundError as e:  # a missing extra: one line, not a traceback
    exit_missing_extra(e, __name__, "bench")

from benchmarks.common import (
    REPO_ROOT,
    RESULTS_DIR,
    Contention,
    add_output_options,
    machine_info,
    markdown_table,
    print_report,
    shared_dir,
    write_results,
)
from common.files import atomic_path
from common.jpeg import jpeg_roundtrip
from common.metrics import psnr

DOCS_IMAGES = REPO_ROOT / "docs" / "images"
QUALITIES = (5, 10, 20, 30, 40)
HERO = ("LIVE1/parrots", "Classic5/barbara")
GPU_WINDOW_RECORD = RESULTS_DIR / "gpu_window_1" / "campaign.json"
FULL_SIZE_LABEL = "WCDGAN full size (H200 record)"

RestoreFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class HeroSettings:
    """``quality``: JPEG quality of the crops; ``crop``: side in source pixels; ``zoom``: nearest-neighbour factor."""

    quality: int = 10
    crop: int = 96
    zoom: int = 3
    precision: str = "int8"  # what the CPU runs by default (--precision auto)


# -- measurement ---------------------------------------------------------------------------------------------------


def restorer_fn(restorer: Any) -> RestoreFn:
    """A :class:`runtime.Restorer` as a ``train.evaluate`` restore function (H×W×3 float [0, 1] on the 1/255 grid)."""

    def restore(x: np.ndarray) -> np.ndarray:
        return restorer(np.round(x * 255).astype(np.uint8)).astype(np.float32) / 255.0

    restore.in_channels = 3  # type: ignore[attr-defined]
    return restore


def bundled_methods(stack: contextlib.ExitStack) -> dict[str, RestoreFn]:
    """The bundled default model's FP32 and INT8 graphs on ONNX Runtime CPU; their Restorers close with ``stack``."""
    from runtime import Restorer

    return {
        f"WCDGAN default {p.upper()}": restorer_fn(stack.enter_context(Restorer(backend="ort-cpu", precision=p)))
        for p in ("fp32", "int8")
    }


def measure_gains(
    data_dir: Path,
    qualities: Sequence[int],
    weights_dir: Path | None,
    checkpoints: Sequence[Path] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """PSNR of every method and JPEG per quality on ``data_dir`` (RGB protocol); ``weights_dir`` None: no peers.

    Returns {``images``, ``methods``: {name: {str(q): {psnr, ssim, psnr_b, gain_db}}}}, JPEG included (gain 0).
    """
    from benchmarks.quality import peer_methods
    from models.checkpoint import load_generator
    from train.evaluate import BASELINE_NAME, evaluate_methods, generator_restore_fn

    with contextlib.ExitStack() as stack:
        fixed: dict[str, RestoreFn] = bundled_methods(stack)
        fixed |= {p.stem: generator_restore_fn(load_generator(p)[0]) for p in checkpoints}
        methods: dict[str, dict[str, dict[str, float]]] = {}
        images: list[str] = []
        for q in qualities:  # one pass per quality: AR-CNN's model depends on it
            run: dict[str, RestoreFn | None] = {BASELINE_NAME: None}
            run |= {} if weights_dir is None else peer_methods(weights_dir, "rgb", q)
            run |= fixed
            res = evaluate_methods(run, data_dir, [q], "rgb", progress=progress)
            images = res["images"]
            jpeg = res["methods"][BASELINE_NAME][str(q)]["psnr"]
            for name, by_q in res["methods"].items():
                m = by_q[str(q)]
                methods.setdefault(name, {})[str(q)] = {
                    "psnr": m["psnr"], "ssim": m["ssim"], "psnr_b": m["psnr_b"], "gain_db": m["psnr"] - jpeg
                }  # fmt: skip
    return {"images": images, "methods": methods}


def full_size_record(path: Path = GPU_WINDOW_RECORD) -> dict[str, dict[str, float]]:
    """The full-size RGB model's LIVE1 gains from GPU window 1's record: {str(q): {psnr, gain_db}} (empty if absent)."""
    if not path.is_file():
        return {}
    for evaluation in json.loads(path.read_text())["runs"].get("rgb_blind", {}).get("evaluations", []):
        if evaluation["data"] == "LIVE1" and evaluation["channel"] == "rgb":
            return {q: {"psnr": v["psnr"], "gain_db": v["gain_db"]} for q, v in evaluation["qualities"].items()}
    return {}


def subset_folder(data_dir: Path, count: int | None, scratch: Path) -> Path:
    """``data_dir`` itself, or a folder in ``scratch`` with copies of its first ``count`` images (sorted by name)."""
    from train.evaluate import GROUND_TRUTH_SUFFIXES

    if count is None:
        return data_dir
    paths = sorted(p for p in data_dir.iterdir() if p.suffix.lower() in GROUND_TRUTH_SUFFIXES and p.is_file())
    subset = scratch / data_dir.name
    subset.mkdir()
    for p in paths[:count]:
        shutil.copyfile(p, subset / p.name)
    return subset


# -- pictures ------------------------------------------------------------------------------------------------------


def best_crop(jpeg: np.ndarray, restored: np.ndarray, original: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left (y, x) of the side×side window where restoring reduced the summed squared error the most."""
    err = lambda a: ((a.astype(np.float32) - original.astype(np.float32)) ** 2).reshape(*a.shape[:2], -1).sum(-1)  # noqa: E731
    gain = err(jpeg) - err(restored)
    box = cv2.integral(gain.astype(np.float64))
    sums = box[side:, side:] - box[:-side, side:] - box[side:, :-side] + box[:-side, :-side]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(y), int(x)


def labelled_panel(rgb: np.ndarray, label: str, zoom: int) -> np.ndarray:
    """A nearest-neighbour zoom of ``rgb`` (uint8 H×W×3) under a dark strip carrying ``label``."""
    big = cv2.resize(rgb, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    strip = np.full((26, big.shape[1], 3), 32, np.uint8)
    cv2.putText(strip, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([strip, big])


def hero_figure(
    originals: Sequence[tuple[str, np.ndarray]], restore: Callable[[np.ndarray], np.ndarray], hero: HeroSettings
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One row per (name, H×W×3 uint8 RGB original): JPEG | restored | original crops. Returns (RGB image, facts)."""
    rows, facts, gap = [], [], 6
    for name, original in originals:
        jpeg = jpeg_roundtrip(original, hero.quality)
        restored = restore(jpeg)
        y, x = best_crop(jpeg, restored, original, hero.crop)
        window = np.s_[y : y + hero.crop, x : x + hero.crop]
        crop_psnr = {"jpeg": psnr(jpeg[window], original[window]), "restored": psnr(restored[window], original[window])}
        image_psnr = {"jpeg": psnr(jpeg, original), "restored": psnr(restored, original)}
        panels = [
            labelled_panel(jpeg[window], f"JPEG q{hero.quality}  {crop_psnr['jpeg']:.1f} dB", hero.zoom),
            labelled_panel(restored[window], f"WCDGAN {hero.precision}  {crop_psnr['restored']:.1f} dB", hero.zoom),
            labelled_panel(original[window], f"original ({name})", hero.zoom),
        ]
        spacer = np.full((panels[0].shape[0], gap, 3), 255, np.uint8)
        rows.append(np.hstack([panels[0], spacer, panels[1], spacer, panels[2]]))
        facts.append({"image": name, "crop_yx": [y, x], "crop_psnr": crop_psnr, "image_psnr": image_psnr})
    spacer = np.full((gap, rows[0].shape[1], 3), 255, np.uint8)
    return np.vstack([r for row in rows for r in (row, spacer)][:-1]), facts


def read_rgb(path: Path) -> np.ndarray:
    """An 8-bit test image as H×W×3 RGB (grayscale files repeated into three channels)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # BGR; grayscale files come back with three equal channels
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def find_image(data_root: Path, ref: str) -> Path:
    """``SET/NAME`` (no suffix) → the lossless file under ``data_root``."""
    from train.evaluate import GROUND_TRUTH_SUFFIXES

    for suffix in GROUND_TRUTH_SUFFIXES:
        if (path := data_root / f"{ref}{suffix}").is_file():
            return path
    raise FileNotFoundError(f"{data_root / ref}: no such test image ({', '.join(GROUND_TRUTH_SUFFIXES)})")


def plot_gains(methods: dict[str, dict[str, dict[str, float]]], title: str, path: Path) -> None:
    """PNG: gain over JPEG (dB) against JPEG quality, one line per method (JPEG itself left out; the GPU-window record
    dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, by_q in methods.items():
        if name == "JPEG":
            continue
        qs = sorted(int(q) for q in by_q)
        style = "--" if name == FULL_SIZE_LABEL else "-"
        ax.plot(qs, [by_q[str(q)]["gain_db"] for q in qs], style, marker="o", markersize=4, label=name)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xticks(sorted({int(q) for by_q in methods.values() for q in by_q}))
    ax.set_xlabel("JPEG quality")
    ax.set_ylabel("PSNR gain over JPEG (dB)")
    ax.set_title(f"{title}, colour JPEG 4:2:0, PSNR over RGB", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_title(payload: dict[str, Any]) -> str:
    """``LIVE1 (29 images)``, or ``LIVE1 (first 10 images: a subset)``."""
    count = len(payload["gains"]["images"])
    return (
        f"{payload['dataset']} (first {count} images: a subset)"
        if payload["subset"]
        else f"{payload['dataset']} ({count} images)"
    )


def write_png(path: Path, rgb: np.ndarray) -> None:
    """``rgb`` (H×W×3 uint8) as a PNG, atomically."""
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
            raise OSError(f"{path}: cannot write")


# -- report --------------------------------------------------------------------------------------------------------


def to_markdown(payload: dict[str, Any]) -> str:
    """The numbers behind both figures, the machine, and the command that reproduces them."""
    gains, m = payload["gains"], payload["machine"]
    qualities = payload["qualities"]
    rows = [
        [name] + [None if str(q) not in by_q else f"{by_q[str(q)]['gain_db']:+.2f}" for q in qualities]
        for name, by_q in gains["methods"].items()
        if name != "JPEG"
    ]
    jpeg = gains["methods"].get("JPEG", {})
    rows.insert(0, ["JPEG PSNR (dB)"] + [f"{jpeg[str(q)]['psnr']:.2f}" if str(q) in jpeg else None for q in qualities])
    record = payload.get("full_size_record") or {}
    if record:
        label = FULL_SIZE_LABEL + (", all 29 images" if payload["subset"] else "")  # a subset: another image set
        rows.append([label] + [f"{record[str(q)]['gain_db']:+.2f}" if str(q) in record else None for q in qualities])
    c = payload["contention"]
    shared = c["foreign_cores"] is not None and c["foreign_cores"] > 0.25
    hero = payload["hero"]
    lines = [
        "# Figures: measured data\n\n",
        f"`{payload['command']}` on {m['cpu']} ({m['cpu_count']} cores), {m['date_utc']}.\n",
        f"Other processes used {c['foreign_cores']:.2f} cores on average during the run (load average "
        f"{c['load_before']:.1f} → {c['load_after']:.1f})"
        + (
            ": **the CPU was shared with other jobs** (that changes times, not these numbers).\n\n"
            if shared
            else ".\n\n"
        ),
        f"## gain.png: PSNR gain over JPEG, {payload['dataset']} ({len(gains['images'])} images"
        + (f", the first {len(gains['images'])} by name: a subset" if payload["subset"] else "")
        + ")\n\n",
        "Protocol `jpeg-rgb-420` of `train.evaluate` (colour libjpeg JPEG 4:2:0, outputs clipped and rounded to uint8, "
        'PSNR over RGB per image, averaged). Bundled model: `runtime.Restorer(backend="ort-cpu", precision=…)` with '
        "its default tiling. AR-CNN (released model of the nearest quality; q5 uses q10) and DnCNN-3 (blind): official "
        "weights, restoring the MATLAB-Y of the JPEG and keeping its chroma. "
        f"'{FULL_SIZE_LABEL}': `models/pretrained/wcdgan_rgb_blind.pt` as measured by GPU window 1 "
        "(`benchmarks/results/gpu_window_1/campaign.json`, same protocol, all 29 LIVE1 images, q 5–20), not "
        "re-measured here (12× the bundled model's computation)"
        + (
            "; this run measured a subset, so the record is its own row and is not drawn.\n\n"
            if payload["subset"]
            else ".\n\n"
        ),
        markdown_table(["gain over JPEG (dB)"] + [f"q{q}" for q in qualities], rows),
        f"\n## hero.png: JPEG q{hero['settings']['quality']} | WCDGAN default "
        f"{hero['settings']['precision'].upper()} | original\n\n",
        f"{hero['settings']['crop']}-px crops shown {hero['settings']['zoom']}× (nearest neighbour), each where the "
        "restoration reduced the squared error the most (the best case of the image, by construction); labels give "
        "the crop's PSNR.\n\n",
        markdown_table(
            ["image", "crop (y, x)", "crop PSNR JPEG → restored", "whole image PSNR JPEG → restored"],
            [
                [
                    f["image"],
                    f"{f['crop_yx'][0]}, {f['crop_yx'][1]}",
                    f"{f['crop_psnr']['jpeg']:.2f} → {f['crop_psnr']['restored']:.2f}",
                    f"{f['image_psnr']['jpeg']:.2f} → {f['image_psnr']['restored']:.2f}",
                ]
                for f in hero["crops"]
            ],
        ),
    ]
    return "".join(lines)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    shared = shared_dir()
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.figures",
        description="Draw the README's figures from measurements: hero.png (JPEG | restored | original crops) and "
        "gain.png (PSNR gain over JPEG against JPEG quality for the bundled model and the official peers), with "
        "figures.json and figures.md. Rerun after the default model changes (--update-docs).",
    )
    p.add_argument("--data-root", type=Path, default=shared / "data" / "eval", help="folder holding LIVE1/, Classic5/")
    p.add_argument("--dataset", default="LIVE1", help="test set of the gain plot (default: LIVE1)")
    p.add_argument("--images", type=int, help="only the first N images of the test set (a subset; default: all)")
    p.add_argument("--qualities", type=int, nargs="+", default=list(QUALITIES), help="JPEG qualities of the plot")
    p.add_argument("--hero", nargs="+", default=list(HERO), help=f"SET/NAME test images (default: {' '.join(HERO)})")
    p.add_argument("--hero-quality", type=int, default=HeroSettings.quality, help="JPEG quality of the hero crops")
    p.add_argument("--weights", type=Path, default=shared / "weights" / "peers", help="folder with arcnn/, dncnn3/")
    p.add_argument("--no-peers", action="store_true", help="skip AR-CNN and DnCNN-3")
    p.add_argument("--ckpt", type=Path, nargs="*", default=[], help="RGB WCDGAN checkpoints to measure as well")
    add_output_options(p, "--update-docs", DOCS_IMAGES)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, no table on stdout")
    args = p.parse_args(argv)
    if not all(1 <= q <= 100 for q in [*args.qualities, args.hero_quality]):
        p.error("JPEG qualities must be in 1..100")
    if args.images is not None and args.images < 1:
        p.error("--images must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    from models.checkpoint import CheckpointError
    from models.peers import PeerWeightsError
    from runtime import Restorer
    from runtime.model_files import ModelError

    hero = HeroSettings(quality=args.hero_quality)
    weights = None if args.no_peers else args.weights
    try:
        if weights is not None and not weights.is_dir():
            raise FileNotFoundError(f"{weights}: peer weights folder not found (use --weights DIR or --no-peers)")
        originals = [(ref.split("/")[-1], read_rgb(find_image(args.data_root, ref))) for ref in args.hero]
        with (
            Contention() as contention,
            tempfile.TemporaryDirectory(prefix="wcdgan-figures-") as scratch,
            Restorer(backend="ort-cpu", precision=hero.precision) as restorer,
        ):
            hero_rgb, crops = hero_figure(originals, restorer, hero)
            data_dir = subset_folder(args.data_root / args.dataset, args.images, Path(scratch))
            gains = measure_gains(data_dir, args.qualities, weights, args.ckpt, progress=not args.quiet)
        record = full_size_record() if args.dataset == "LIVE1" else {}
        payload = {
            "command": "python -m benchmarks.figures " + " ".join(sys.argv[1:] if argv is None else argv),
            "machine": machine_info(),
            "contention": contention.as_dict(),
            "dataset": args.dataset,
            "subset": args.images is not None,
            "qualities": list(args.qualities),
            "gains": gains,
            "full_size_record": record,
            "hero": {"settings": vars(hero), "crops": crops},
        }
        args.output.mkdir(parents=True, exist_ok=True)
        write_png(args.output / "hero.png", hero_rgb)
        drawn = gains["methods"] | ({FULL_SIZE_LABEL: record} if record and args.images is None else {})
        plot_gains(drawn, plot_title(payload), args.output / "gain.png")
        md = to_markdown(payload)
        paths = write_results(args.output, "figures", payload, md)
    except (OSError, ValueError, KeyError, CheckpointError, PeerWeightsError, ModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print_report(md, [args.output / "hero.png", args.output / "gain.png", *paths])
    return 0


if __name__ == "__main__":
    sys.exit(main())
