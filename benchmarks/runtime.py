"""Inference speed of WCDGAN and its peers on every backend this machine has, with a roofline view.

Every model gets the same inputs (a deterministic JPEG-decoded image at each size; speed does not depend on
content). A row = (model, backend, size, scope): ``model`` scope times one forward pass on a preloaded
1×C×H×W tensor; ``end-to-end`` scope times JPEG bytes → decode → tiled restore (``runtime.Restorer``) →
PNG encode. Each row: warm-up runs, then timed runs until ``repeats`` or the per-row time budget is reached
(at least one), CUDA-synchronised; median, IQR and min/max in ms, megapixels/s and achieved TFLOP/s against
the device's measured peak (FLOPs/MP from :mod:`benchmarks.model_size`: conv/matmul, 1 MAC = 2 FLOPs).

Backends: ``torch-fp32`` (eager, CPU or CUDA; on CUDA true FP32: TF32 off), on CUDA also ``torch-tf32`` (cuDNN
and matmul TF32 on, PyTorch's default for convolutions), ``torch-bf16`` / ``torch-fp16`` (weights and activations
cast), ``torch-fp16-cl`` (channels_last), ``torch-fp16-graph`` (CUDA graph replay) and ``torch-fp16-compile``
(``torch.compile``, default mode; compilation happens before the warm-up and is not timed); ``ort-cpu`` /
``ort-cuda`` (ONNX Runtime through ``runtime.backends.onnxruntime``), ``ort-cpu-int8`` (the INT8 QDQ graph of
:mod:`export.int8`, calibrated here on windows of the sample image: speed does not depend on the values),
``openvino`` / ``openvino-int8`` (``runtime.backends.openvino``) and ``tensorrt-fp16``
(``runtime.backends.tensorrt``). A backend that is not usable here is listed as a skipped row with the reason.

Every timed row records what the rest of the machine did meanwhile (:class:`benchmarks.common.Contention`):
other processes' CPU use and the load average before and after; rows where others used more than a quarter
core are flagged busy in the table, and a warning heads it.

    python -m benchmarks.runtime                 # the default plan for this host → out/benchmarks/
    python -m benchmarks.runtime --update-results   # the same → benchmarks/results/ (committed)
    python -m benchmarks.runtime --tiny -o /tmp/rt --models arcnn --backends torch-fp32
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.cli import CommandFailed, UsageError, exit_missing_extra, pip_install, run_cli

try:
    import torch
except ModuleNotFoundError as e:  # a missing extra: one line, not a traceback
    exit_missing_extra(e, __name__, "bench")

import cv2
import numpy as np
from tqdm import tqdm

from benchmarks.common import (
    RESULTS_DIR,
    Contention,
    ModelEntry,
    add_output_options,
    busy_warning,
    contention_cell,
    host_kind,
    machine_info,
    markdown_table,
    model_entries,
    print_report,
)
from benchmarks.common import write_results as _write_results
from benchmarks.model_size import flops_per_megapixel
from common.color import rgb_to_y
from common.jpeg import jpeg_roundtrip

SIZES = {  # label (W×H, as typed on the command line) → (height, width)
    "256x256": (256, 256),
    "512x512": (512, 512),
    "768x512": (512, 768),  # the LIVE1 size
    "1024x1024": (1024, 1024),  # ~1 MP, divisible by MWCNN's 8
    "720p": (720, 1280),
    "1080p": (1080, 1920),
    "1440p": (1440, 2560),
    "4k": (2160, 3840),
}
TINY_SIZES = {"32x32": (32, 32), "64x64": (64, 64)}
BACKENDS = (
    "torch-fp32", "torch-tf32", "torch-bf16", "torch-fp16", "torch-fp16-cl", "torch-fp16-graph", "torch-fp16-compile",
    "ort-cpu", "ort-cpu-int8", "openvino", "openvino-int8", "ort-cuda", "ort-cuda-fp16", "tensorrt-fp16",
)  # fmt: skip
TORCH_DTYPES = {
    "torch-fp32": torch.float32, "torch-tf32": torch.float32, "torch-bf16": torch.bfloat16,
    "torch-fp16": torch.float16, "torch-fp16-cl": torch.float16, "torch-fp16-graph": torch.float16,
    "torch-fp16-compile": torch.float16,
}  # fmt: skip
RUNTIME_BACKEND = {
    "ort-cpu": "ort-cpu",
    "ort-cpu-int8": "ort-cpu",
    "openvino": "openvino",
    "openvino-int8": "openvino",
    "ort-cuda": "ort-cuda",
    "ort-cuda-fp16": "ort-cuda",
    "tensorrt-fp16": "tensorrt",
}
SWEEP_MODEL = "wcdgan-rgb"
E2E_MODEL = "wcdgan-rgb"
# Same FLOPs and speed as "memnet-unshared" (the Table 3 variant, which is timed), so timed once only.
LONG_RUN_S = 10.0  # see time_runs
PEAK_METHOD = (
    "best time of a 2048² fp32 matmul (torch.mm, TF32 off, and on CPU numpy) and of 8192² TF32 and fp16 torch.mm "
    "(CUDA), 2n³ FLOPs per product"
)
RUNTIME_SKIP = {"memnet": "same architecture and FLOPs as memnet-unshared (only weight sharing differs)"}


class Skip(Exception):
    """This row cannot run here; the message says why."""


@dataclass
class Plan:
    """What to time: every model × ``backends`` × ``sizes``; ``SWEEP_MODEL`` also × ``sweep_backends`` ×
    ``sweep_sizes``; ``E2E_MODEL`` end to end × the ONNX ones of ``backends`` × ``e2e_sizes``."""

    models: list[str]
    backends: list[str]
    sizes: list[str]
    sweep_sizes: list[str]
    e2e_sizes: list[str]
    warmup: int = 1
    repeats: int = 3
    budget_s: float = 20.0  # per row, after warm-up; at least one timed run
    sweep_backends: list[str] = field(default_factory=lambda: ["torch-fp32"])
    e2e_tile: int | None = None  # Restorer core tile; None: the runtime's default
    notes: list[str] = field(default_factory=list)


def default_plan(kind: str, tiny: bool) -> Plan:
    """The plan for this host: everything on a GPU host; on a CPU host the sizes that finish in minutes."""
    models = [e.key for e in model_entries()]
    if tiny:
        return Plan(models, ["torch-fp32", "ort-cpu"], ["64x64"], ["32x32", "64x64"], ["64x64"], 0, 1, e2e_tile=32)
    if kind == "cuda":
        sizes = ["768x512", "1080p", "4k"]
        return Plan(models, list(BACKENDS), sizes, list(SIZES), sizes[::2], sweep_backends=list(BACKENDS))
    return Plan(
        models,
        list(BACKENDS),  # the GPU ones become skipped rows with the reason
        ["768x512"],
        ["256x256", "512x512", "768x512", "1080p"],
        ["768x512"],
        notes=[
            "CPU host: every model at 768×512 only (1080p/4K rows not run: one 4K WCDGAN pass takes minutes on a "
            "2-core CPU); the WCDGAN size sweep runs eager PyTorch only and stops at 1080p."
        ],
    )


# ---------------------------------------------------------------- timing


def time_runs(
    fn: Callable[[], Any],
    sync: Callable[[], None],
    warmup: int,
    repeats: int,
    budget_s: float,
    long_run_s: float = LONG_RUN_S,
) -> dict:
    """Run ``fn`` ``warmup`` times, then time it up to ``repeats`` times within ``budget_s`` (≥ 1 run).

    A warm-up run lasting ``long_run_s`` or more ends the warm-up and counts as the first timed run: one-time
    costs (allocation, kernel selection) are well under 1 % of such a run, and slow CPU rows would otherwise
    double in cost. ``sync`` is called before reading the clock (``torch.cuda.synchronize`` on CUDA). Returns
    milliseconds: median, q1, q3, min, max, the run count, every run, and whether a warm-up was counted.
    """
    runs: list[float] = []
    for _ in range(warmup):
        t0 = time.perf_counter()
        fn()
        sync()
        if time.perf_counter() - t0 >= long_run_s:
            runs.append((time.perf_counter() - t0) * 1e3)
            break
    counted = bool(runs)
    start = time.perf_counter() - sum(runs) / 1e3  # a counted warm-up spends budget too
    while len(runs) < max(repeats, 1) and not (runs and time.perf_counter() - start > budget_s):
        t0 = time.perf_counter()
        fn()
        sync()
        runs.append((time.perf_counter() - t0) * 1e3)
    q = statistics.quantiles(runs, n=4, method="inclusive") if len(runs) > 1 else [runs[0]] * 3
    return {
        "median_ms": statistics.median(runs),
        "q1_ms": q[0],
        "q3_ms": q[2],
        "min_ms": min(runs),
        "max_ms": max(runs),
        "n": len(runs),
        "runs_ms": runs,
        "warmup_counted": counted,
    }


def _no_sync() -> None:
    pass


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 for cuDNN convolutions and CUDA matmuls on or off for the block (PyTorch's defaults restored after)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _cuda_sync() -> None:
    torch.cuda.synchronize()


# ---------------------------------------------------------------- peaks


def measure_peak_tflops(device: str, dtype: torch.dtype = torch.float32, n: int = 2048, seconds: float = 2.0) -> float:
    """Matmul ceiling of ``device`` in TFLOP/s (2n³ FLOPs per n×n product), best of repeated products.

    On the CPU the better of PyTorch (oneDNN/MKL) and NumPy (its BLAS) counts. Best-of, not median: on a shared
    machine the ceiling is what the hardware reaches when it is not interrupted.
    """
    a = torch.rand(n, n, device=device, dtype=dtype)
    b = torch.rand(n, n, device=device, dtype=dtype)
    sync = _cuda_sync if device.startswith("cuda") else _no_sync
    candidates: list[Callable[[], Any]] = [lambda: torch.mm(a, b)]
    if device == "cpu":
        an, bn = a.numpy(), b.numpy()
        candidates.append(lambda: an @ bn)
    best = float("inf")
    for product in candidates:
        product()
        sync()
        end = time.perf_counter() + seconds / len(candidates)
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            product()
            sync()
            best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e12


# ---------------------------------------------------------------- inputs


def sample_image(height: int, width: int, channels: int, quality: int = 10) -> np.ndarray:
    """Deterministic smooth image with JPEG artifacts: H×W (channels 1, MATLAB Y) or H×W×3 RGB uint8."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (max(height // 16, 2), max(width // 16, 2), 3), dtype=np.uint8)
    rgb = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return jpeg_roundtrip(rgb if channels == 3 else rgb_to_y(rgb), quality)


def sample_tensor(height: int, width: int, channels: int) -> torch.Tensor:
    """:func:`sample_image` as a 1×C×H×W float32 tensor in [0, 1]."""
    image = sample_image(height, width, channels)
    image = image[..., None] if image.ndim == 2 else image
    return torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]


# ---------------------------------------------------------------- runners: each returns (fn, sync)


def unavailable_reason(backend: str) -> str | None:
    """Why ``backend`` cannot run on this machine (cheap checks, before any export), or None."""
    if backend != "torch-fp32" and backend.startswith("torch") and not torch.cuda.is_available():
        return "needs CUDA (no GPU visible to PyTorch)"
    if backend.startswith("ort-cuda"):
        try:
            import onnxruntime as ort
        except ImportError:
            return "onnxruntime is not installed"
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return "this onnxruntime build has no CUDA execution provider (install onnxruntime-gpu)"
    if backend.startswith("tensorrt") and importlib.util.find_spec("tensorrt") is None:
        return "TensorRT (the tensorrt Python package) is not installed"
    if backend.startswith("openvino") and importlib.util.find_spec("openvino") is None:
        return f"OpenVINO is not installed ({pip_install('openvino')})"
    return None


def precision_of(backend: str) -> str:
    """The exported graph a backend row runs: "fp16", "int8" or "fp32"."""
    return "fp16" if backend.endswith("fp16") else "int8" if backend.endswith("int8") else "fp32"


def _torch_runner(model: torch.nn.Module, x: torch.Tensor, backend: str) -> tuple[Callable[[], Any], Callable]:
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    sync = _cuda_sync if cuda else _no_sync
    dtype = TORCH_DTYPES[backend]
    fmt = torch.channels_last if backend in ("torch-fp16-cl", "torch-fp16-graph") else torch.contiguous_format
    model = model.to(device=device, dtype=dtype, memory_format=fmt).eval()
    x = x.to(device=device, dtype=dtype).contiguous(memory_format=fmt)
    if backend == "torch-fp16-compile":
        compiled = torch.compile(model)
        with torch.inference_mode():
            compiled(x)  # compiles here, outside the timed runs
        model = compiled
    if backend != "torch-fp16-graph":

        @torch.inference_mode()
        def run() -> Any:
            return model(x)

        return run, sync
    with torch.inference_mode():
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm up outside the graph (cuDNN algorithm choice, allocations)
            for _ in range(2):
                model(x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            model(x)
    return graph.replay, sync


def _onnx_backend_runner(folder: Path, x: torch.Tensor, backend: str) -> tuple[Callable[[], Any], Callable]:
    """Run through the runtime's own backend (``runtime.backends.select.create_backend``) on one fixed tile shape."""
    from runtime.backends.base import BackendUnavailable
    from runtime.backends.select import create_backend
    from runtime.model_files import resolve_models
    from runtime.settings import RestoreSettings

    batch = x.numpy()
    try:
        runner = create_backend(
            RUNTIME_BACKEND[backend], resolve_models(folder).for_quality(None), batch.shape[-2:], 1, RestoreSettings()
        )
    except BackendUnavailable as e:
        raise Skip(str(e)) from None
    return (lambda: runner.run(batch)), _no_sync


def _export(entry: ModelEntry, model: torch.nn.Module, root: Path, precision: str) -> Path:
    """A folder holding the model as ONNX + sidecar at ``precision`` (FP16 with FP32 I/O; INT8 calibrated on
    windows of the sample image); cached per model and precision."""
    from export.onnx_export import export_onnx
    from runtime.spec import ModelSpec

    folder = root / entry.key / precision
    path = folder / "model.onnx"
    if path.exists():
        return folder
    folder.mkdir(parents=True)
    with warnings.catch_warnings():  # tracer chatter about shape-dependent Python branches (MWCNN's size check)
        warnings.simplefilter("ignore")
        proto = export_onnx(model, path, entry.channels)
    if precision == "fp16":
        from export.fp16 import convert_fp16

        convert_fp16(proto, path)
    elif precision == "int8":
        from export.int8 import quantize

        fp32_path = folder / "fp32.onnx"
        path.rename(fp32_path)
        windows = [sample_tensor(128, 128, entry.channels).numpy()]
        quantize(fp32_path, path, windows)
        fp32_path.unlink()
    ModelSpec(
        name=entry.key, channels=entry.channels, color="rgb" if entry.channels == 3 else "y",
        precision=precision, recommended_overlap=32,
    ).save(folder / "model.json")  # fmt: skip
    return folder


# ---------------------------------------------------------------- rows


def model_row(entry: ModelEntry, backend: str, label: str, plan: Plan, ctx: dict) -> dict[str, Any]:
    """Time one (model, backend, size) forward pass; a :class:`Skip` becomes a skipped row."""
    height, width = (SIZES | TINY_SIZES)[label]
    row = _row_head(entry, backend, label, height, width, "model")
    try:
        if reason := unavailable_reason(backend):
            raise Skip(reason)
        if height % entry.multiple or width % entry.multiple:
            raise Skip(f"{entry.name} needs sides divisible by {entry.multiple}")
        torch.manual_seed(0)
        model = entry.build().eval()
        x = sample_tensor(height, width, entry.channels)
        with tf32(backend == "torch-tf32"):
            if backend.startswith("torch"):
                fn, sync = _torch_runner(model, x, backend)
            else:
                folder = _export(entry, model, ctx["onnx_dir"], precision_of(backend))
                fn, sync = _onnx_backend_runner(folder, x, backend)
            with Contention() as machine:
                row.update(time_runs(fn, sync, plan.warmup, plan.repeats, plan.budget_s))
            row.update(machine.as_dict())
    except Skip as e:
        return row | {"status": "skipped", "reason": str(e)}
    except torch.OutOfMemoryError:
        return row | {"status": "skipped", "reason": "out of memory at this size"}
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return _add_rates(row, ctx)


def end_to_end_row(entry: ModelEntry, backend: str, label: str, plan: Plan, ctx: dict) -> dict[str, Any]:
    """Time JPEG bytes → decode → tiled restore (``runtime.Restorer``) → PNG bytes."""
    height, width = (SIZES | TINY_SIZES)[label]
    row = _row_head(entry, backend, label, height, width, "end-to-end")
    try:
        if reason := unavailable_reason(backend):
            raise Skip(reason)
        try:
            from runtime import Restorer
        except ImportError as e:
            raise Skip(f"runtime.Restorer not importable ({e})") from None
        folder = _export(entry, entry.build().eval(), ctx["onnx_dir"], precision_of(backend))
        tile = {} if plan.e2e_tile is None else {"tile": plan.e2e_tile}
        with Restorer(folder, backend=RUNTIME_BACKEND[backend], verify=False, **tile) as restorer:  # random weights
            tile = list(restorer.tile) if restorer.tile else "backend default"
            row.update({"tile": tile, "batch": restorer.batch, "runtime_backend": restorer.backend_name})
            image = sample_image(height, width, 3)
            _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 10])

            def run() -> bytes:
                decoded = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                restored = restorer(decoded)
                return cv2.imencode(".png", cv2.cvtColor(restored, cv2.COLOR_RGB2BGR))[1].tobytes()

            with Contention() as machine:
                row.update(time_runs(run, _no_sync, plan.warmup, plan.repeats, plan.budget_s))
            row.update(machine.as_dict())
    except Skip as e:
        return row | {"status": "skipped", "reason": str(e)}
    except Exception as e:  # the runtime is another team's moving target: report, don't abort the benchmark
        return row | {"status": "skipped", "reason": f"runtime failed: {type(e).__name__}: {e}"}
    return _add_rates(row, ctx)


def _row_head(entry: ModelEntry, backend: str, label: str, height: int, width: int, scope: str) -> dict[str, Any]:
    return {
        "model": entry.name,
        "key": entry.key,
        "backend": backend,
        "scope": scope,
        "size": label,
        "height": height,
        "width": width,
        "megapixels": height * width / 1e6,
        "status": "ok",
        "reason": "",
    }


def peak_key(backend: str) -> str:
    """Which measured matmul ceiling a backend's arithmetic is compared with: fp16 (also bf16), tf32 or fp32."""
    return "fp16" if "fp16" in backend or "bf16" in backend else "tf32" if "tf32" in backend else "fp32"


def _add_rates(row: dict[str, Any], ctx: dict) -> dict[str, Any]:
    seconds = row["median_ms"] / 1e3
    row["mp_per_s"] = row["megapixels"] / seconds
    row["tflops"] = ctx["gflop_per_mp"][row["key"]] / 1e3 * row["mp_per_s"]
    peak = ctx["peak_tflops"].get(peak_key(row["backend"]))
    row["pct_of_peak"] = 100 * row["tflops"] / peak if peak else None
    return row


# ---------------------------------------------------------------- report


def run_plan(
    plan: Plan,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Time everything in ``plan``; returns the JSON payload (machine, plan, peaks, rows, complete).

    ``on_row`` gets the partial payload (``complete`` False) after every row, so a long run can be saved as it goes.
    ``deadline`` (``time.time()`` value): rows not started by then become skipped rows (a short GPU window).
    """
    entries = _plan_entries(plan)
    peaks = _peak_tflops()
    with tempfile.TemporaryDirectory(prefix="wcdgan-bench-") as tmp:
        ctx = {
            "onnx_dir": Path(tmp),
            "peak_tflops": peaks,
            "gflop_per_mp": {k: flops_per_megapixel(entries[k]) / 1e9 for k in plan.models},
        }
        rows: list[dict[str, Any]] = []
        payload = {
            "machine": machine_info(),
            "plan": asdict(plan),
            "peak_tflops": peaks,
            "peak_method": PEAK_METHOD,
            "gflop_per_mp": ctx["gflop_per_mp"],
            "rows": rows,
            "complete": False,
        }
        for fn, entry, backend, label in tqdm(_jobs(plan, entries), desc="runtime", unit="row", disable=not progress):
            if reason := _skip_reason(entry, deadline):
                rows.append(_row_head(entry, backend, label, *(SIZES | TINY_SIZES)[label], "model"))
                rows[-1] |= {"status": "skipped", "reason": reason}
            else:
                rows.append(fn(entry, backend, label, plan, ctx))
            if on_row is not None:
                on_row(payload)
    payload["complete"] = True
    return payload


def _plan_entries(plan: Plan) -> dict[str, ModelEntry]:
    """Every known model by key; ValueError naming the plan's unknown ones."""
    entries = {e.key: e for e in model_entries()}
    unknown = [m for m in plan.models if m not in entries]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {sorted(entries)}")
    return entries


def _peak_tflops() -> dict[str, float]:
    """Measured peak TFLOP/s (:data:`PEAK_METHOD`): FP32 with TF32 off, and on CUDA also TF32 and FP16."""
    cuda = torch.cuda.is_available()
    with tf32(False):
        peaks = {"fp32": measure_peak_tflops("cuda" if cuda else "cpu")}
    if cuda:
        with tf32(True):
            peaks["tf32"] = measure_peak_tflops("cuda", n=8192)
        peaks["fp16"] = measure_peak_tflops("cuda", torch.float16, n=8192)
    return peaks


def _jobs(plan: Plan, entries: dict[str, ModelEntry]) -> list[tuple[Callable, ModelEntry, str, str]]:
    """``(row function, model, backend, size label)`` in run order: the common sizes first, then end to end, then
    the sweep — an interrupted run keeps the essentials."""
    jobs: list[tuple[Callable, ModelEntry, str, str]] = [
        (model_row, entries[key], b, s) for key in plan.models for s in plan.sizes for b in plan.backends
    ]
    if E2E_MODEL in plan.models:
        onnx_backends = [b for b in plan.backends if b in RUNTIME_BACKEND]
        jobs += [(end_to_end_row, entries[E2E_MODEL], b, s) for s in plan.e2e_sizes for b in onnx_backends]
    if SWEEP_MODEL in plan.models:
        sweep = [(s, b) for s in plan.sweep_sizes for b in plan.sweep_backends]
        extra = [(s, b) for s, b in sweep if s not in plan.sizes or b not in plan.backends]
        jobs += [(model_row, entries[SWEEP_MODEL], b, s) for s, b in extra]
    return jobs


def _skip_reason(entry: ModelEntry, deadline: float | None) -> str | None:
    """Why a row is not timed: its model cannot run here, or the run's deadline has passed (None: time it)."""
    if deadline is not None and time.time() > deadline:
        return "the run's --deadline had passed"
    return RUNTIME_SKIP.get(entry.key)


def to_markdown(payload: dict[str, Any]) -> str:
    m = payload["machine"]
    ok = [r for r in payload["rows"] if r["status"] == "ok"]
    skipped = [r for r in payload["rows"] if r["status"] != "ok"]
    peaks = ", ".join(f"{k} {v:.3f} TFLOP/s" for k, v in payload["peak_tflops"].items())
    head = (
        f"# Runtime ({m['date_utc']})\n\n"
        + ("" if payload["complete"] else "**Incomplete run: rows so far only.**\n\n")
        + f"Machine: {m['cpu']} ({m['cpu_count']} logical CPUs, torch threads {m['torch_threads']}), "
        f"GPU: {m['gpu'] or 'none'}; torch {m['libraries']['torch']}, onnxruntime {m['libraries']['onnxruntime']}, "
        f"tensorrt {m['libraries']['tensorrt'] or 'absent'}; load average at start (1/5/15 min): "
        f"{m['load_average_1_5_15min']}.\n"
        f"Measured peak ({payload['peak_method']}): {peaks}.\n"
        f"Timing: {payload['plan']['warmup']} warm-up run(s), then up to {payload['plan']['repeats']} timed runs "
        f"within {payload['plan']['budget_s']} s per row (a warm-up run of ≥ {LONG_RUN_S:.0f} s counts as the "
        "first timed run); median and IQR [q1–q3] in ms; TFLOP/s from conv/matmul FLOPs (1 MAC = 2 FLOPs).\n\n"
        + "".join(f"Note: {n}\n\n" for n in payload["plan"]["notes"])
        + busy_warning(ok)
    )
    table = markdown_table(
        ["model", "backend", "scope", "size", "median ms", "IQR ms", "min–max ms", "n", "MP/s", "TFLOP/s", "% peak",
         "others' CPU"],
        [
            [
                r["model"], r["backend"], r["scope"], r["size"], f"{r['median_ms']:.1f}",
                f"{r['q1_ms']:.1f}–{r['q3_ms']:.1f}", f"{r['min_ms']:.1f}–{r['max_ms']:.1f}", r["n"],
                f"{r['mp_per_s']:.3f}", f"{r['tflops']:.3f}",
                None if r["pct_of_peak"] is None else f"{r['pct_of_peak']:.0f}", contention_cell(r),
            ]
            for r in ok
        ],
    )  # fmt: skip
    skip_table = markdown_table(
        ["model", "backend", "scope", "size", "reason"],
        [[r["model"], r["backend"], r["scope"], r["size"], r["reason"]] for r in skipped],
    )
    return head + table + (f"\n## Skipped ({len(skipped)})\n\n" + skip_table if skipped else "")


def plot(payload: dict[str, Any], path: Path) -> None:
    """PNG: left, the sweep model's MP/s vs image size per backend; right, every model's TFLOP/s at one size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.files import atomic_path

    ok = [r for r in payload["rows"] if r["status"] == "ok" and r["scope"] == "model"]
    first = payload["plan"]["sizes"][0]
    at = [r for r in ok if r["size"] == first]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, max(4.5, 0.22 * len(at) + 1)))
    for backend in dict.fromkeys(r["backend"] for r in ok):
        sweep = [r for r in ok if r["key"] == SWEEP_MODEL and r["backend"] == backend]
        pts = sorted((r["megapixels"], r["mp_per_s"]) for r in sweep)
        if pts:
            left.plot(*zip(*pts, strict=True), marker="o", label=backend)
    left.set(xscale="log", xlabel="image size (megapixels)", ylabel="megapixels / s", title=f"{SWEEP_MODEL} size sweep")
    if left.lines:
        left.legend()
    labels = [f"{r['model']} · {r['backend']}" for r in at]
    right.barh(labels, [r["tflops"] for r in at])
    peak = payload["peak_tflops"]["fp32"]
    right.axvline(peak, color="k", linestyle="--", label=f"fp32 matmul peak {peak:.2f}")
    right.set(xlabel="achieved TFLOP/s", title=f"all models at {first}")
    right.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.runtime",
        description="Time WCDGAN and its peers (model only, and end to end through the tiled runtime) on every "
        "backend available here. Writes runtime_<host>.json/.md/.png (host: cpu or cuda). Unavailable backends "
        "become skipped rows with the reason.",
    )
    add_output_options(p, "--update-results", RESULTS_DIR)
    p.add_argument("--tiny", "--quick", action="store_true", help="CI smoke mode: tiny inputs, one run, no warm-up")
    keys = ", ".join(e.key for e in model_entries())
    p.add_argument("--models", nargs="+", help=f"model keys (default: all): {keys}")
    p.add_argument("--backends", nargs="+", choices=BACKENDS, help="backends (default: the host's plan)")
    p.add_argument("--sizes", nargs="+", help=f"sizes for every model (default: the host's plan): {', '.join(SIZES)}")
    p.add_argument("--sweep-sizes", nargs="*", help="sizes for the WCDGAN sweep (default: the host's plan)")
    p.add_argument("--e2e-sizes", nargs="*", help="sizes for the end-to-end rows (default: the host's plan)")
    p.add_argument("--sweep-backends", nargs="*", choices=BACKENDS, help="backends for the WCDGAN sweep")
    p.add_argument("--warmup", type=int, help="untimed runs per row before timing (default 1; 0 with --tiny)")
    p.add_argument("--repeats", type=int, help="timed runs per row (default 3; 1 with --tiny)")
    p.add_argument(
        "--deadline", type=float, metavar="SECONDS", help="rows not started this long after launch are skipped"
    )
    p.add_argument("--budget", type=float, help="seconds of timed runs per row before stopping early (default 30)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no table on stdout")
    args = p.parse_args(argv)
    for s in (args.sizes or []) + (args.sweep_sizes or []) + (args.e2e_sizes or []):
        if s not in SIZES | TINY_SIZES:
            p.error(f"unknown size {s!r}; choose from {', '.join(SIZES | TINY_SIZES)}")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.warmup is not None and args.warmup < 0:
        p.error("--warmup must be at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, _parse_args(argv))


def run(args: argparse.Namespace) -> int:
    kind = host_kind()
    plan = default_plan(kind, args.tiny)
    for name in ("models", "backends", "sizes", "sweep_sizes", "e2e_sizes"):
        if getattr(args, name) is not None:
            setattr(plan, name, list(getattr(args, name)))
    if args.backends is not None:
        plan.sweep_backends = list(args.backends)
    if args.sweep_backends is not None:
        plan.sweep_backends = list(args.sweep_backends)
    if args.warmup is not None:
        plan.warmup = args.warmup
    if args.repeats is not None:
        plan.repeats = args.repeats
    if args.budget is not None:
        plan.budget_s = args.budget
    if args.sizes is not None:  # explicit sizes: no implicit extra rows at the plan's own sizes
        plan.sweep_sizes = plan.sweep_sizes if args.sweep_sizes is not None else []
        plan.e2e_sizes = plan.e2e_sizes if args.e2e_sizes is not None else plan.sizes[:1]
    try:
        stem = f"runtime_{kind}" + ("_tiny" if args.tiny else "")

        def save_partial(partial: dict[str, Any]) -> None:
            _write_results(args.output, stem, partial, to_markdown(partial))

        deadline = None if args.deadline is None else time.time() + args.deadline
        payload = run_plan(plan, progress=not args.quiet, on_row=save_partial, deadline=deadline)
        md = to_markdown(payload)
        paths = _write_results(args.output, stem, payload, md)
        if not args.no_plot:
            plot(payload, args.output / f"{stem}.png")
            paths.append(args.output / f"{stem}.png")
    except ValueError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise CommandFailed(f"cannot write results: {e}") from None
    if not args.quiet:
        print_report(md, paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
