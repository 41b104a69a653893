"""How strong is the test suite? Apply realistic one-line bugs one at a time, run the tests of that area, count caught.

    python tools/mutation_check.py            # every mutant; prints a table and the score
    python tools/mutation_check.py -k tiling  # mutants whose name contains "tiling"

Each mutant is a real edit of one line (the bug a tired developer would make: an off-by-one grid, a weight reversed,
a guard deleted), applied to the working tree, tested with the test files of its area (a subset of the suite: a
mutant counted "survived" here might still be caught by the full suite, so the score is a lower bound), and undone.
A mutant whose text is not found is reported as stale (the code moved on: update the list).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


RUNTIME = ("tests/test_restorer.py", "tests/test_hostile_inputs.py", "tests/test_independent_guards.py")
MUTANTS = [
    Mutant("tiling: default grid 16 → 8", "common/tiling.py", "overlap: int, align: int = 16) -> TileGrid:",
           "overlap: int, align: int = 8) -> TileGrid:", ("tests/test_tiling.py", "tests/test_independent_guards.py")),
    Mutant("restorer: default grid 16 → 8", "runtime/restorer.py", "align: int = 16,", "align: int = 8,", RUNTIME),
    Mutant("engine cache: GPU left out of the slot", "runtime/engine_cache.py", 'if k != "trt_version"}',
           'if k not in ("trt_version", "gpu_name")}',
           ("tests/test_engine_cache.py", "tests/test_independent_guards.py")),
    Mutant("tensorrt: empty GPU name in the key", "runtime/backends/tensorrt.py", "gpu_name=gpu,", 'gpu_name="",',
           ("tests/test_independent_guards.py", "tests/test_gpu_backends.py")),
    Mutant("engine cache: plan written in place", "runtime/engine_cache.py", "atomic_write_bytes(plan_path, plan)",
           "plan_path.write_bytes(plan)", ("tests/test_engine_cache.py", "tests/test_independent_guards.py")),
    Mutant("validate: FP16 gate on the best image", "export/validate.py", '"min_psnr_uint8_db": min(psnrs)',
           '"min_psnr_uint8_db": max(psnrs)', ("tests/test_export.py", "tests/test_independent_guards.py")),
    Mutant("validate: FP16 gate disabled", "export/validate.py",
           'failed = numbers["nonfinite_values"] > 0 or not numbers["min_psnr_uint8_db"] >= thresholds.fp16_min_psnr',
           'failed = numbers["nonfinite_values"] > 0', ("tests/test_export.py", "tests/test_independent_guards.py")),
    Mutant("jpeg quality: chroma table ignored", "runtime/jpeg_quality.py", "        if 1 in tables:",
           "        if False:", ("tests/test_jpeg_quality.py", "tests/test_independent_guards.py")),
    Mutant("jpeg quality: IJG scale", "runtime/jpeg_quality.py", "else 200 - 2 * q", "else 200 - q",
           ("tests/test_jpeg_quality.py", "tests/test_io.py")),
    Mutant("colour: BT.601 coefficient", "common/color.py", "[[65.481, 128.553, 24.966]",
           "[[65.481, 128.553, 25.966]", ("tests/test_metrics.py", "tests/test_independent_guards.py")),
    Mutant("colour: YCbCr → RGB floors", "common/color.py", "return np.clip(np.round(rgb), 0, 255)",
           "return np.clip(np.floor(rgb), 0, 255)", ("tests/test_metrics.py", *RUNTIME)),
    Mutant("io: alpha dropped on write", "runtime/io.py", "    if alpha is not None:\n        gray",
           "    if False:\n        gray", ("tests/test_io.py", *RUNTIME)),
    Mutant("io: decompression-bomb limit skipped", "runtime/io.py",
           "if size is not None and size[0] * size[1] > max_pixels:", "if False:", RUNTIME),
    Mutant("restorer: uint16 scaled by 255", "runtime/restorer.py", "self.scale = float(np.iinfo(image.dtype).max)",
           "self.scale = 255.0", RUNTIME),
    Mutant("restorer: luma weights reversed", "runtime/restorer.py", "_LUMA = np.array([0.299, 0.587, 0.114]",
           "_LUMA = np.array([0.114, 0.587, 0.299]", RUNTIME),
    Mutant("restorer: self-test disabled", "runtime/restorer.py", "        if psnr < 20:", "        if psnr < 0:",
           RUNTIME),
    Mutant("restorer: NaN output accepted", "runtime/restorer.py", "if not np.isfinite(result).all():",
           "if False:", RUNTIME),
    Mutant("restorer: OOM shrinks batch by one", "runtime/restorer.py", "batch //= 2", "batch -= 1", RUNTIME),
    Mutant("models: sidecar hash not checked", "runtime/model_files.py",
           "if spec.onnx_sha256 and sha256_file(onnx_path) != spec.onnx_sha256:", "if False:", RUNTIME),
    Mutant("select: auto tries the CPU first", "runtime/backends/select.py",
           'BACKENDS = ("tensorrt", "ort-cuda", "ort-cpu")', 'BACKENDS = ("ort-cpu", "tensorrt", "ort-cuda")',
           ("tests/test_gpu_backends.py", "tests/test_restorer.py")),
    Mutant("metrics: PSNR with 20·log10", "common/metrics.py", "10.0 * math.log10(_PEAK**2 / mse)",
           "20.0 * math.log10(_PEAK**2 / mse)", ("tests/test_metrics.py",)),
    Mutant("metrics: SSIM C1", "common/metrics.py", "_SSIM_C1 = (0.01 * _PEAK) ** 2", "_SSIM_C1 = (0.02 * _PEAK) ** 2",
           ("tests/test_metrics.py",)),
    Mutant("tiling: reflection repeats the edge", "common/tiling.py",
           "return np.where(idx < length, idx, period - idx)",
           "return np.where(idx < length, idx, period - idx - 1)", ("tests/test_tiling.py",)),
    Mutant("tiling: crop boundary off by one", "common/tiling.py", "[(a + b + size) // 2 for a, b",
           "[(a + b + size) // 2 + 1 for a, b", ("tests/test_tiling.py",)),
    Mutant("files: live temporaries swept", "common/files.py", "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)",
           "fcntl.LOCK_NB", ("tests/test_hostile_inputs.py",)),
    Mutant("engine cache: clear deletes unproven entries", "runtime/engine_cache.py",
           "        except ValueError:\n            continue\n        victims",
           "        except ValueError:\n            pass\n        victims", ("tests/test_engine_cache.py", *RUNTIME)),
    Mutant("receptive field: overlap rounded down", "export/receptive_field.py",
           "overlap = math.ceil(effective / JPEG_BLOCK) * JPEG_BLOCK",
           "overlap = math.floor(effective / JPEG_BLOCK) * JPEG_BLOCK", ("tests/test_export.py",)),
    Mutant("wcdgan: attention reduction 4 → 2", "models/wcdgan.py", "attention_reduction: int = 4",
           "attention_reduction: int = 2", ("tests/test_models.py", "tests/test_independent_guards.py")),
    Mutant("wcdgan: last dilation 8 → 4", "models/wcdgan.py", "dilations: tuple[int, ...] = (1, 2, 4, 8)",
           "dilations: tuple[int, ...] = (1, 2, 4, 4)", ("tests/test_models.py",)),
    Mutant("wcdgan: global residual ignored", "models/wcdgan.py", "return y + x if self.cfg.global_residual else y",
           "return y", ("tests/test_models.py", "tests/test_train.py")),
    Mutant("data: quality weights ignored", "train/data.py",
           "p = None if self.weights is None else np.asarray(self.weights, float) / float(np.sum(self.weights))",
           "p = None", ("tests/test_train.py", "tests/test_independent_guards.py")),
    Mutant("data: colour crops on the 8-px grid", "train/data.py", 'return 16 if channel == "rgb" else 8', "return 8",
           ("tests/test_train.py",)),
    Mutant("loop: cosine over half the budget", "train/loop.py", "math.cos(math.pi * t)", "math.cos(math.pi * t / 2)",
           ("tests/test_train.py",)),
]  # fmt: skip


def run(mutant: Mutant, timeout: float) -> tuple[str, float]:
    """ "caught", "survived" or "stale", and the seconds it took."""
    path = REPO / mutant.path
    original = path.read_text(encoding="utf-8")
    if original.count(mutant.old) != 1:
        return "stale", 0.0
    start = time.perf_counter()
    try:
        path.write_text(original.replace(mutant.old, mutant.new), encoding="utf-8")
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *mutant.tests]
        try:
            result = subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=timeout)
            outcome = "survived" if result.returncode == 0 else "caught"
        except subprocess.TimeoutExpired:
            outcome = "caught"  # a hang is a failure too
    finally:
        path.write_text(original, encoding="utf-8")
    return outcome, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-k", default="", help="only mutants whose name contains this")
    p.add_argument("--timeout", type=float, default=600, help="seconds per mutant's test run (default 600)")
    args = p.parse_args(argv)
    results = []
    for mutant in [m for m in MUTANTS if args.k in m.name]:
        outcome, seconds = run(mutant, args.timeout)
        results.append((mutant, outcome))
        print(f"{outcome:>8}  {seconds:6.1f} s  {mutant.name}", flush=True)
    applicable = [o for _, o in results if o != "stale"]
    caught = applicable.count("caught")
    print(f"\n{caught}/{len(applicable)} mutants caught ({100 * caught / max(len(applicable), 1):.0f} %)"
          + (f", {len(results) - len(applicable)} stale" if len(applicable) < len(results) else ""))  # fmt: skip
    return 0 if caught == len(applicable) else 1


if __name__ == "__main__":
    sys.exit(main())
