"""GPU check of the runtime's ONNX Runtime CUDA path (``bash tools/gpu_check.sh``; see tools/GPU_WINDOW.md).

Verifies on a GPU machine what the CPU tests can only stub (tests/test_gpu_backends.py), writes every measurement
to a JSON file and ends with a table. Torch is not imported until the last step: the CUDA provider must load
through ``onnxruntime.preload_dlls()`` alone, as in a user's torch-free runtime install.

1. the CUDA EP loads in a torch-free process, in the strict all-nodes-on-GPU session (no fallback note);
2. FP16 on CUDA vs FP32 on the CPU EP on real JPEG windows: 8-bit PSNR, NaN/Inf; a short batch through the
   bound, padded device buffers equals the same rows of a full batch;
3. ``Restorer(backend="auto")`` picks ort-cuda (saying why TensorRT was skipped) and restores the example
   image like the CPU does;
4. speed per batch size for the fixed 320² window (bundled model, then the full-size model exported here):
   the data for a measured default GPU batch.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common.cli import run_cli
from common.metrics import psnr_capped, to_uint8

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "astronaut_q10.jpg"
FULL_CKPT = REPO / "models" / "pretrained" / "wcdgan_rgb_blind.pt"


def windows(channels: int, size: int, n: int) -> np.ndarray:
    """``n`` size² windows of the example JPEG (reflected as the runtime does), N×C×H×W float32 [0, 1]."""
    from common.tiling import TileGrid, extract_window
    from runtime.io import read_image

    image = read_image(EXAMPLE).pixels
    grid = TileGrid.create(*image.shape[:2], size // 2, size // 4)
    tiles = [extract_window(image, t, grid.window) for t in list(grid)[:n]]
    batch = np.stack([t.transpose(2, 0, 1) for t in tiles]).astype(np.float32) / 255
    return batch[:, :channels]


def check_ort_cuda(model_path: Path, report: dict) -> None:
    import onnxruntime as ort

    from runtime.backends.onnxruntime import OrtBackend
    from runtime.model_files import resolve_models

    report["onnxruntime"] = {"version": ort.__version__, "providers": ort.get_available_providers()}
    report["torch_loaded"] = "torch" in sys.modules  # must stay False: the libraries come from preload_dlls
    model = resolve_models(model_path).for_quality(None)
    t0 = time.perf_counter()
    cuda = OrtBackend(model.file("auto", "gpu").onnx, model.spec, (320, 320), 4, device="cuda")
    report["session_s"] = time.perf_counter() - t0
    report["strict_all_nodes_on_cuda"] = cuda.note == ""
    report["note"] = cuda.note
    cpu = OrtBackend(model.file("fp32").onnx, model.spec, (320, 320), 4, device="cpu")
    x = windows(model.spec.channels, 320, 4)
    got, want = cuda.run(x), cpu.run(x)
    report["fp16_cuda_vs_fp32_cpu_psnr_db"] = min(
        psnr_capped(to_uint8(g), to_uint8(w)) for g, w in zip(got, want, strict=True)
    )
    report["finite"] = bool(np.isfinite(got).all())
    report["short_batch_equal"] = bool(np.allclose(cuda.run(x[:3]), got[:3], atol=1e-3))
    cuda.close()


def check_restorer(model_path: Path, report: dict) -> None:
    from runtime import Restorer
    from runtime.io import read_image

    image = read_image(EXAMPLE).pixels
    gpu = Restorer(model_path, backend="auto")
    report["auto_backend"] = gpu.backend_name
    report["auto_skipped"] = gpu.skipped_backends
    cpu = Restorer(model_path, backend="ort-cpu")
    report["restored_cuda_vs_cpu_psnr_db"] = psnr_capped(gpu(image), cpu(image))


def time_batches(model_path: Path, batches: list[int], repeats: int = 20) -> list[dict]:
    """Median ms per call and tiles/s of ort-cuda for each batch size (320² windows), after 3 warm-up calls."""
    from runtime.backends.onnxruntime import OrtBackend
    from runtime.model_files import resolve_models

    model = resolve_models(model_path).for_quality(None)
    rows = []
    for batch in batches:
        backend = OrtBackend(model.file("auto", "gpu").onnx, model.spec, (320, 320), batch, device="cuda")
        x = np.repeat(windows(model.spec.channels, 320, 1), batch, axis=0)
        for _ in range(3):
            backend.run(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            backend.run(x)
            times.append(time.perf_counter() - t0)
        ms = 1e3 * float(np.median(times))
        rows.append({"model": model.name, "batch": batch, "median_ms": ms, "tiles_per_s": 1e3 * batch / ms})
        backend.close()
    return rows


def export_full_model(out: Path) -> Path | None:
    """The window-1 full-size RGB model as ONNX (export.build in a subprocess: this one stays torch-free)."""
    r = subprocess.run(
        [sys.executable, "-m", "export.build", "--ckpt", str(FULL_CKPT), "--fp16", "-o", str(out), "--engine", "skip",
         "-q"], cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    return out / "wcdgan_rgb_blind.onnx" if r.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tools/gpu_check.py", description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", type=Path, required=True, help="results JSON")
    p.add_argument("--model", type=Path, default=REPO / "runtime" / "weights" / "default.onnx")
    return run_cli(run, p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    report: dict = {"checks": {}, "timings": []}
    steps = [("ort_cuda", check_ort_cuda), ("restorer", check_restorer)]
    for name, step in steps:
        result = report["checks"].setdefault(name, {})
        try:
            step(args.model, result)
        except Exception as e:  # a failed check is a result, and the next one still runs
            result["error"] = f"{type(e).__name__}: {e}"
    if "error" not in report["checks"]["ort_cuda"]:
        report["timings"] += time_batches(args.model, [1, 4, 8, 16, 32])
        with tempfile.TemporaryDirectory() as tmp:
            full = export_full_model(Path(tmp))
            if full is not None:
                report["timings"] += time_batches(full, [1, 4, 8, 16])
    args.output.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(json.dumps(report["checks"], indent=1, default=str))
    for r in report["timings"]:
        print(f"{r['model']:>20} batch {r['batch']:>3}: {r['median_ms']:8.2f} ms {r['tiles_per_s']:8.1f} tiles/s")
    return 0 if all("error" not in c for c in report["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
