"""Does ``--consistent`` pay? Consistency share, RGB PSNR and cost of the projection onto the JPEG's coefficients.

For each quality, LIVE1's first images are compressed by OpenCV (libjpeg, colour 4:2:0) and restored once with
the runtime's :class:`~runtime.Restorer` (bundled model, default precision: INT8 on the CPU); the restoration is
then projected onto the file's coefficients exactly as ``restore_file`` does in consistent mode
(:func:`runtime.jpeg_consistency.project`, after the restoration). Per quality: the share of luma DCT coefficients
that quantise back to the file's values (8×8 blocks inside the image) for the original photo, the JPEG, the
restoration without and with the projection; RGB PSNR and SSIM (mean over R, G, B) of each against the original;
seconds per megapixel of the model and of the projection (reading the coefficients included).

    python -m benchmarks.consistency --images 10 --qualities 5 10 20 30 40 50 --threads 1   # → out/benchmarks/
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.common import (
    RESULTS_DIR,
    Contention,
    add_output_options,
    busy_warning,
    contention_cell,
    library_versions,
    machine_info,
    markdown_table,
    print_report,
    shared_dir,
    write_results,
)
from common.jpeg import jpeg_encode
from common.metrics import psnr, ssim

VERSIONS = ("onnxruntime", "numpy", "cv2", "jpeglib")


def image_rows(restorer: Any, originals: list[tuple[str, np.ndarray]], quality: int, folder: Path) -> list[dict]:
    """One row per image at ``quality``: shares, PSNRs and seconds (see the module docstring)."""
    from runtime.io import read_image
    from runtime.jpeg_consistency import consistent_share, project, read_coefficients

    rows = []
    for name, original in originals:
        path = folder / f"{name}_q{quality}.jpg"
        path.write_bytes(jpeg_encode(original, quality))
        decoded = read_image(path).pixels
        with Contention() as machine:
            t0 = time.perf_counter()
            restored = restorer(decoded, quality)
            t1 = time.perf_counter()
            jpeg = read_coefficients(path)
            projected = project(restored, jpeg)
            t2 = time.perf_counter()
        megapixels = original.shape[0] * original.shape[1] / 1e6
        rows.append({
            "image": name, "quality": quality, "megapixels": megapixels,
            "share_original": consistent_share(original, jpeg), "share_jpeg": consistent_share(decoded, jpeg),
            "share_restored": consistent_share(restored, jpeg), "share_projected": consistent_share(projected, jpeg),
            "psnr_jpeg": psnr(decoded, original), "psnr_restored": psnr(restored, original),
            "psnr_projected": psnr(projected, original), "ssim_jpeg": ssim(decoded, original),
            "ssim_restored": ssim(restored, original), "ssim_projected": ssim(projected, original),
            "model_s_per_mp": (t1 - t0) / megapixels, "projection_s_per_mp": (t2 - t1) / megapixels,
            **machine.as_dict(),
        })  # fmt: skip
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Per quality: the means of every number (worst share with the projection as well) and the busy flag."""
    out = []
    for quality in sorted({r["quality"] for r in rows}):
        group = [r for r in rows if r["quality"] == quality]
        keys = [k for k, v in group[0].items() if isinstance(v, float) and k not in ("load_before", "load_after")]
        mean = {k: float(np.mean([r[k] for r in group if r[k] is not None])) for k in keys}
        mean["foreign_cores"] = max((r["foreign_cores"] or 0.0) for r in group)
        worst = min(r["share_projected"] for r in group)
        psnr_worst = min(r["psnr_projected"] - r["psnr_restored"] for r in group)  # the image it hurt most (or helped
        ssim_worst = min(r["ssim_projected"] - r["ssim_restored"] for r in group)  # least): a mean can hide a loss
        out.append({"quality": quality, "images": len(group), **mean, "share_projected_min": worst,
                    "psnr_delta_min": psnr_worst, "ssim_delta_min": ssim_worst,
                    "busy": any(r["busy"] for r in group)})  # fmt: skip
    return out


def to_markdown(payload: dict[str, Any]) -> str:
    m, rows = payload["machine"], payload["summary"]
    head = (
        f"# JPEG consistency: --consistent vs without ({m['date_utc']})\n\n"
        f"LIVE1, first {payload['images']} images, colour JPEG 4:2:0 by OpenCV; bundled model via the Restorer API "
        f"({payload['precision']}, {payload['backend']}, {payload['threads']} thread(s)); machine: {m['cpu']}, "
        f"{m['cpu_count']} logical CPUs. Share = luma DCT coefficients (8×8 blocks inside the image) that quantise "
        "to the file's values, mean over the images (worst image with the projection in brackets); PSNR on RGB, "
        "mean over the images; SSIM on RGB (mean over the channels), mean over the images; s/MP of the model and of "
        "the projection (reading the coefficients included). "
        "'others' CPU': the most that other processes used during a row.\n\n"
    ) + busy_warning(rows)
    table = markdown_table(
        ["q", "share original", "share JPEG", "share restored", "share --consistent", "PSNR JPEG",
         "PSNR restored", "PSNR --consistent", "Δ dB (worst image)",
         "SSIM JPEG", "SSIM restored", "SSIM --consistent", "Δ SSIM (worst image)",
         "model s/MP", "projection s/MP", "others' CPU"],
        [[r["quality"], f"{r['share_original']:.2%}", f"{r['share_jpeg']:.2%}", f"{r['share_restored']:.2%}",
          f"{r['share_projected']:.2%} ({r['share_projected_min']:.2%})", f"{r['psnr_jpeg']:.3f}",
          f"{r['psnr_restored']:.3f}", f"{r['psnr_projected']:.3f}",
          f"{r['psnr_projected'] - r['psnr_restored']:+.3f} ({r['psnr_delta_min']:+.3f})",
          f"{r['ssim_jpeg']:.4f}", f"{r['ssim_restored']:.4f}",
          f"{r['ssim_projected']:.4f}", f"{r['ssim_projected'] - r['ssim_restored']:+.4f} ({r['ssim_delta_min']:+.4f})",
          f"{r['model_s_per_mp']:.2f}",
          f"{r['projection_s_per_mp']:.3f}", contention_cell(r)] for r in rows],
    )  # fmt: skip
    return head + table


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.consistency", description=__doc__.split("\n\n")[0])
    add_output_options(p, "--update-results", RESULTS_DIR)
    p.add_argument("--images", type=int, default=10, help="LIVE1's first N images, by name (default 10)")
    p.add_argument(
        "--qualities",
        type=int,
        nargs="+",
        default=[5, 10, 20, 30, 40, 50],
        help="JPEG qualities (default 5 10 20 30 40 50)",
    )
    p.add_argument("--threads", type=int, default=1, help="ORT threads (default 1: the machine is shared)")
    p.add_argument("--precision", default="auto", help="the Restorer's precision (default auto: INT8 on the CPU)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    cv2.setNumThreads(args.threads)
    from runtime import Restorer

    live1 = shared_dir() / "data" / "eval" / "LIVE1"
    files = sorted(live1.glob("*.png"))[: args.images]
    originals = [(f.stem, cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)) for f in files]
    rows: list[dict] = []
    with Restorer(threads=args.threads, precision=args.precision) as restorer, tempfile.TemporaryDirectory() as tmp:
        warm_up = Path(tmp) / "warm_up.jpg"
        cv2.imwrite(str(warm_up), cv2.cvtColor(originals[0][1], cv2.COLOR_RGB2BGR))
        ran = restorer.restore_file(warm_up, Path(tmp) / "warm_up.png")  # and what runs: backend, precision
        backend, precision = ran.backend, ran.precision
        for quality in args.qualities:
            rows += image_rows(restorer, originals, quality, Path(tmp))
            print(f"q{quality} done", file=sys.stderr)
    payload = {
        "machine": machine_info() | {"libraries": library_versions(VERSIONS)},
        "images": len(originals), "backend": backend, "precision": precision, "threads": args.threads,
        "summary": summary(rows), "rows": rows,
    }  # fmt: skip
    markdown = to_markdown(payload)
    print_report(markdown, write_results(args.output, "consistency", payload, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
