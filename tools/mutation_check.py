"""How strong is the test suite? Apply realistic one-line bugs one at a time, run the tests of that area, count caught.

The project's mutation tool is mutmut (docs/mutation.md), for the modules its configuration in pyproject.toml lists
(video, compare/report, settings, strength, io, the CLI, the FP16 and INT8 checks): it makes every mutant of a module
and picks each one's tests by coverage. This hand-written list stays a regression set of the bugs earlier reviews
planted in the modules outside that configuration (tiling, backends, engine cache, training, ...); a module moving
into the mutmut configuration leaves this list.

    python tools/mutation_check.py            # every mutant; prints a table and the score
    python tools/mutation_check.py -k tiling  # mutants whose name contains "tiling"
    python tools/mutation_check.py --path runtime/backends/ train/loop.py  # mutants of these files/folders

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
    Mutant("tiling: default grid 16 → 8", "common/tiling.py", "ALIGN = 16  # window-start grid",
           "ALIGN = 8  # window-start grid", ("tests/test_tiling.py", "tests/test_independent_guards.py")),
    Mutant("restorer: default grid 16 → 8", "runtime/restorer.py", "align: int = ALIGN,", "align: int = 8,",
           (*RUNTIME, "tests/test_settings.py")),
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
    Mutant("select: auto tries the CPU first", "runtime/backends/catalogue.py",
           'BACKENDS = ("tensorrt", "ort-cuda", "ort-cpu", "openvino")',
           'BACKENDS = ("ort-cpu", "tensorrt", "ort-cuda", "openvino")',
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
           "overlap = align_up(effective, ALIGN)",
           "overlap = effective // ALIGN * ALIGN", ("tests/test_export.py", "tests/test_hostile_export.py")),
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

# Issue 28: the bugs the second wave's review planted, then new ones per module changed in that wave.
FP16 = ("tests/test_fp16_check.py",)
CACHE = ("tests/test_engine_cache.py",)
TRITON_B = ("tests/test_triton_backend.py",)
BATCH = ("tests/test_batch.py", "-k", "not killed_jobs")
LOOP = ("tests/test_train.py", "-k", "lr_schedules or budget or time_limit")
PACK = ("tests/test_pack.py",)
CAMPAIGN = ("tests/test_campaign.py", "-m", "not slow")
TRITON_X = ("tests/test_triton.py",)
LOG = ("tests/test_log.py",)
MODELS = ("tests/test_restorer.py", "-k", "precision or missing_default or named_file")
GPU = ("tests/test_backend_choice.py",)
TRT = ("tests/test_gpu_backends.py", "tests/test_independent_guards.py", "-k", "tensorrt or engine or plan")
OV = ("tests/test_openvino.py",)
ISSUE28 = [
    Mutant("build: FP16 arithmetic check not run", "export/build.py",
           "    fp16_check.check(fp16_path.name, numbers, thresholds.fp16_min_psnr)\n", "", FP16),
    Mutant("model files: CPU prefers FP16 over FP32", "runtime/model_files.py",
           '"cpu": ("int8", "fp32", "fp16")', '"cpu": ("int8", "fp16", "fp32")', MODELS),
    Mutant("model files: GPU prefers INT8 over FP32", "runtime/model_files.py",
           '"gpu": ("fp16", "fp32", "int8")', '"gpu": ("fp16", "int8", "fp32")', MODELS),
    Mutant("model files: siblings of another checkpoint grouped", "runtime/model_files.py",
           "if f is not None and _key(f) == _key(chosen)]", "if f is not None]", MODELS),
    Mutant("model files: last file wins a precision", "runtime/model_files.py",
           "model.files.setdefault(f.spec.precision, f)", "model.files[f.spec.precision] = f", MODELS),
    Mutant("model files: unknown quality takes the specialist", "runtime/model_files.py",
           "key=lambda m: (-len(m.qualities), min(m.qualities, default=0), m.name))",
           "key=lambda m: (len(m.qualities), min(m.qualities, default=0), m.name))", MODELS),
    Mutant("model files: quality tie goes to the blind model", "runtime/model_files.py",
           "return min(abs(quality - q) for q in m.qualities), len(m.qualities), m.name",
           "return min(abs(quality - q) for q in m.qualities), -len(m.qualities), m.name", MODELS),
    Mutant("engine cache: slot ignores the ONNX hash", "runtime/engine_cache.py", 'if k != "trt_version"}',
           'if k not in ("trt_version", "onnx_sha256")}', CACHE),
    Mutant("engine cache: plan hash not checked", "runtime/engine_cache.py",
           'if hashlib.sha256(plan).hexdigest() != record.get("plan_sha256"):', "if False:", CACHE),
    Mutant("engine cache: no re-check after the lock", "runtime/engine_cache.py",
           "            if engine is not None:\n                return engine\n            if problem",
           "            if problem", CACHE),
    Mutant("engine cache: foreign JSON listed", "runtime/engine_cache.py",
           'if str(e) == "not an engine record" or not os.path.lexists(sidecar.with_suffix(".plan")):',
           'if not os.path.lexists(sidecar.with_suffix(".plan")):', CACHE),
    Mutant("engine cache: record of another slot accepted", "runtime/engine_cache.py", "    if slot != sidecar.stem:",
           "    if False:", CACHE),
    Mutant("engine cache: OpenVINO blobs of any name cleared", "runtime/engine_cache.py",
           'name.endswith(".blob") and name[:-5].isdigit())', 'name.endswith(".blob"))', CACHE),
    Mutant("triton backend: refuses a batch of exactly max_batch", "runtime/backends/triton.py",
           "if batch.shape[0] > self.max_batch or", "if batch.shape[0] >= self.max_batch or", TRITON_B),
    Mutant("triton backend: window shape not checked per run", "runtime/backends/triton.py",
           " or tuple(batch.shape[2:]) != self.tile_hw:", ":", TRITON_B),
    Mutant("triton backend: metadata dtype not compared", "runtime/backends/triton.py",
           "if shape != want or datatype != _DTYPES[dtype][0]:", "if shape != want:", TRITON_B),
    Mutant("triton backend: one client shared by all threads", "runtime/backends/triton.py",
           "self._local = threading.local()  # the HTTP client",
           "self._local = type('Shared', (), {})()  # the HTTP client", TRITON_B),
    Mutant("triton backend: HTTP concurrency 1", "runtime/backends/triton.py", "concurrency=self.max_batch,",
           "concurrency=1,", TRITON_B),
    Mutant("triton backend: default scheme grpc", "runtime/backends/triton.py", 'protocol = protocol or "http"',
           'protocol = protocol or "grpc"', TRITON_B),
    Mutant("select: openvino ahead of ort-cpu", "runtime/backends/catalogue.py",
           'BACKENDS = ("tensorrt", "ort-cuda", "ort-cpu", "openvino")',
           'BACKENDS = ("tensorrt", "ort-cuda", "openvino", "ort-cpu")', GPU),
    Mutant("select: CPU batch default 4", "runtime/backends/catalogue.py", '"ort-cpu": 1,', '"ort-cpu": 4,', GPU),
    Mutant("select: INT8 core 512", "runtime/backends/catalogue.py", '"int8": 1024}', '"int8": 512}', GPU),
    Mutant("select: a GPU backend's file chosen for the CPU", "runtime/backends/select.py",
           'return model.choose_file(precision, "gpu" if kind in GPU_BACKENDS else "cpu")',
           'return model.choose_file(precision, "gpu")', GPU),
    Mutant("select: missing library reported as news", "runtime/backends/select.py",
           "skipped.append(Skip(candidate, str(e), not isinstance(e, BackendNotInstalled)))",
           "skipped.append(Skip(candidate, str(e), True))", GPU),
    Mutant("ort: CPU window must equal the tile", "runtime/backends/onnxruntime.py",
           'self.any_window = device == "cpu"', "self.any_window = False", GPU),
    Mutant("ort: memory pattern left on for the CPU", "runtime/backends/onnxruntime.py",
           "[_CPU_EP], spin=self.spin, plan_memory=False)", "[_CPU_EP], spin=self.spin, plan_memory=True)", GPU),
    Mutant("ort: spinning when busy", "runtime/backends/onnxruntime.py",
           "return os.getloadavg()[0] < (os.cpu_count() or 1) / 2", "return True", GPU),
    Mutant("ort: I/O names not checked", "runtime/backends/onnxruntime.py",
           "if self.input_name != spec.input_name or self.output_name != spec.output_name:", "if False:", GPU),
    Mutant("base: OOM messages not recognised", "runtime/backends/base.py",
           'r"out of (?:gpu |device )?memory|failed to allocate', 'r"out of gpu memory|failed to allocate', GPU),
    Mutant("openvino: batch above max accepted", "runtime/backends/openvino.py",
           "or not 1 <= shape[0] <= self.max_batch", "or not 1 <= shape[0]", OV),
    Mutant("openvino: channels not checked", "runtime/backends/openvino.py",
           "            or shape[1] != self.spec.channels\n", "", OV),
    Mutant("tensorrt: profile batch not checked", "runtime/backends/tensorrt.py",
           "if hi[0] < max_batch or hi[2:] != tuple(tile_hw):", "if hi[2:] != tuple(tile_hw):", TRT),
    Mutant("tensorrt: key hashes the sidecar's name", "runtime/backends/tensorrt.py",
           "onnx_sha256=sha256_file(onnx_path),", "onnx_sha256=spec.onnx_sha256,", TRT),
    Mutant("batch: unreadable manifest ignored", "runtime/batch.py",
           'errors.append(f"{path}: cannot read the manifest ({e})")', "pass", BATCH),
    Mutant("batch: manifest comments read as paths", "runtime/batch.py",
           'names = [name for name in names if name and not name.startswith("#")]',
           "names = [name for name in names if name]", BATCH),
    Mutant("batch: manifest paths relative to the cwd", "runtime/batch.py",
           "return [path.parent / name for name in names]", "return [Path(name) for name in names]", BATCH),
    Mutant("batch: --gpus-per-actor above 1 accepted", "runtime/batch.py", "if not 0 <= args.gpus_per_actor <= 1:",
           "if not 0 <= args.gpus_per_actor:", BATCH),
    Mutant("batch: more actors than CPUs accepted", "runtime/batch.py", "    if args.actors > fit:", "    if False:",
           BATCH),
    Mutant("batch: a setup failure is an error row", "runtime/batch.py",
           "            return row(plan, SETUP_FAILED, error=self.setup_error)",
           '            return row(plan, "error", error=self.setup_error)', BATCH),
    Mutant("loop: cosine not clamped at the budget's end", "train/loop.py",
           "t = min(max(elapsed_s / budget, 0.0), 1.0)", "t = max(elapsed_s / budget, 0.0)", LOOP),
    Mutant("loop: no warm-up", "train/loop.py", "warm = min(1.0, (t + 1e-9) / WARMUP_FRACTION)", "warm = 1.0", LOOP),
    Mutant("loop: step schedule halves one step late", "train/loop.py", "base * 0.5 ** (iteration // halve)",
           "base * 0.5 ** ((iteration - 1) // halve)", LOOP),
    Mutant("loop: budgeted run ignores its budget", "train/loop.py",
           "if self.cfg.time_budget_s is not None and self.wall_time >= self.cfg.time_budget_s:", "if False:", LOOP),
    Mutant("loop: no final validation", "train/loop.py",
           'if self.val is not None and self.last_val.get("val_iter") != self.iteration:', "if False:", LOOP),
    Mutant("pack: empty first shard", "train/pack.py", "        if shard and size + item[0].size > limit:",
           "        if size + item[0].size > limit:", PACK),
    Mutant("pack: interleave by count, not bytes", "train/pack.py", "packed[name] += item[0].size", "packed[name] += 1",
           PACK),
    Mutant("pack: hold-out may empty a source", "train/pack.py", "if len(picks) < n and left[k] > 1:",
           "if len(picks) < n and left[k] > 0:", PACK),
    Mutant("pack: hold-out equal to all images accepted", "train/pack.py", "    if holdout >= total:",
           "    if holdout > total:", PACK),
    Mutant("pack: unseeded shuffle", "train/pack.py", "rng = np.random.default_rng(seed)",
           "rng = np.random.default_rng()", PACK),
    Mutant("campaign: workers not capped at 8", "train/campaign.py",
           "return max(1, min(8, ((os.cpu_count() or 2) - len(self.runs)) // len(self.runs)))",
           "return max(1, ((os.cpu_count() or 2) - len(self.runs)) // len(self.runs))", CAMPAIGN),
    Mutant("campaign: bare number read as seconds", "train/campaign.py", '{"s": 1, "m": 60, "h": 3600, "": 60}',
           '{"s": 1, "m": 60, "h": 3600, "": 1}', CAMPAIGN),
    Mutant("campaign: zero duration accepted", "train/campaign.py", "if not m or float(m.group(1)) <= 0:", "if not m:",
           CAMPAIGN),
    Mutant("campaign: duplicate run names accepted", "train/campaign.py",
           "if not names or len(set(names)) != len(names):", "if not names:", CAMPAIGN),
    Mutant("campaign: rehearsal keeps --init", "train/campaign.py", '        if args[i] == "--init":',
           '        if args[i] == "--no-such-flag":', CAMPAIGN),
    Mutant("campaign: status rate from iterations only", "train/campaign.py",
           'rate = train["iter"] / train["time_s"] if train.get("time_s") else 0.0', 'rate = float(train["iter"])',
           CAMPAIGN),
    Mutant("export triton: preferred batch above max kept", "export/triton.py",
           "preferred_batch_size=[b for b in opts.preferred_batches if b <= opts.max_batch],",
           "preferred_batch_size=list(opts.preferred_batches),", TRITON_X),
    Mutant("export triton: CPU entry on GPU instances", "export/triton.py",
           "kind=pb.ModelInstanceGroup.KIND_GPU if opts.gpu else pb.ModelInstanceGroup.KIND_CPU,",
           "kind=pb.ModelInstanceGroup.KIND_GPU,", TRITON_X),
    Mutant("export triton: FP32 graph for a GPU server", "export/triton.py",
           'file = model.file("auto", "gpu" if opts.gpu else "cpu")', 'file = model.file("fp32")', TRITON_X),
    Mutant("export triton: window without the overlap", "export/triton.py",
           "window = window_grid(opts.tile, spec.recommended_overlap, opts.overlap).window",
           "window = (opts.tile, opts.tile)", TRITON_X),
    Mutant("export triton: --max-batch 0 accepted", "export/triton.py", '("--max-batch", a.max_batch, 1, MAX_BATCH)',
           '("--max-batch", a.max_batch, 0, MAX_BATCH)', (*TRITON_X, "tests/test_hostile_export.py")),
    Mutant("log: -q shows INFO", "common/log.py", "level = logging.ERROR if quiet else logging.DEBUG",
           "level = logging.DEBUG", LOG),
    Mutant("log: loggers' levels not restored", "common/log.py", "            logger.setLevel(previous)\n", "", LOG),
    Mutant("log: handler left attached", "common/log.py", "            logger.removeHandler(handler)\n", "", LOG),
    Mutant("log: runtime's records not shown", "common/log.py",
           'PACKAGES = ("common", "models", "train", "export", "runtime", "benchmarks")',
           'PACKAGES = ("common", "models", "train", "export", "benchmarks")', LOG),
    Mutant("log: stderr captured at start", "common/log.py", "tqdm.write(self.format(record), file=sys.stderr)",
           "tqdm.write(self.format(record), file=sys.__stderr__)", LOG),
]  # fmt: skip
MUTANTS += ISSUE28


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
    p.add_argument("--path", nargs="+", default=[""], help="only mutants of files whose path starts with one of these")
    p.add_argument("--timeout", type=float, default=600, help="seconds per mutant's test run (default 600)")
    args = p.parse_args(argv)
    results = []
    for mutant in [m for m in MUTANTS if args.k in m.name and m.path.startswith(tuple(args.path))]:
        outcome, seconds = run(mutant, args.timeout)
        results.append((mutant, outcome))
        print(f"{outcome:>8}  {seconds:6.1f} s  {mutant.name}", flush=True)
    print("\n| file | mutants | caught |\n|---|---|---|")
    for path in sorted({m.path for m, o in results if o != "stale"}):
        outcomes = [o for m, o in results if m.path == path and o != "stale"]
        print(f"| {path} | {len(outcomes)} | {outcomes.count('caught')} |")
    applicable = [o for _, o in results if o != "stale"]
    caught = applicable.count("caught")
    print(f"\n{caught}/{len(applicable)} mutants caught ({100 * caught / max(len(applicable), 1):.0f} %)"
          + (f", {len(results) - len(applicable)} stale" if len(applicable) < len(results) else ""))  # fmt: skip
    return 0 if caught == len(applicable) else 1


if __name__ == "__main__":
    sys.exit(main())
