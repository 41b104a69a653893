"""TensorRT backend: builds (once, through :class:`runtime.engine_cache.EngineCache`) and runs engines.

Written against TensorRT 10.x and 11.x and cuda-python (``cuda.bindings.runtime``); both are imported lazily so
this module imports anywhere, and :class:`BackendUnavailable` says what is missing.

* Network: strongly typed from the ONNX: an FP16 graph carries its own precision, including the nodes kept in
  FP32. TRT 11 removed ``BuilderFlag.FP16``; it is looked up with ``getattr`` and set only for a TensorRT
  without strong typing (the flag-based, weakly typed path of TRT < 10.12).
* One optimisation profile per backend: spatial size fixed to the tile window, batch 1..``max_batch``
  (opt = ``max_batch``), so nothing is rebuilt when images change size.
* A persistent timing cache per TensorRT version + GPU speeds up rebuilds (it only merges within one version).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.files import atomic_write_bytes, safe_name, sha256_file
from runtime.backends.base import BackendNotInstalled, BackendUnavailable, Closing, is_out_of_memory
from runtime.backends.catalogue import tensorrt_install_hint
from runtime.engine_cache import EngineCache, EngineKey, cache_root
from runtime.spec import ModelSpec

log = logging.getLogger(__name__)

_NP_DTYPES = {"float32": np.float32, "float16": np.float16}


@dataclass(frozen=True)
class BuilderOptions:
    """TensorRT builder settings that change the engine, recorded in the cache key. One fixed set (:data:`BUILDER`):
    an engine prebuilt by ``export.build`` must be the one the runtime later asks the cache for."""

    optimization_level: int = 3  # 0..5; higher searches more tactics (slower build, maybe faster engine)
    hardware_compatibility: str = "none"  # "none" or "ampere_plus" (portable across Ampere+ GPUs, slower)
    workspace_mib: int = 0  # 0 = TensorRT's default (all device memory)


BUILDER = BuilderOptions()


install_hint = tensorrt_install_hint  # how to get this backend (the catalogue's: select says it without importing us)


def _import_trt() -> tuple[Any, Any]:
    """``(tensorrt, cuda.bindings.runtime)`` or :class:`BackendUnavailable` with the reason."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise BackendNotInstalled(f"tensorrt is not importable ({e}); {install_hint()}") from None
    try:
        from cuda.bindings import runtime as cudart
    except ImportError as e:
        raise BackendNotInstalled(f"cuda-python is not importable ({e}); {install_hint()}") from None
    return trt, cudart


def _cuda(result: tuple) -> Any:
    """Unwrap a cuda-python ``(error, *values)`` tuple, raising on error."""
    err, *values = result
    if int(err) != 0:
        raise RuntimeError(f"CUDA runtime error {err}")
    return values[0] if len(values) == 1 else tuple(values)


def gpu_identity(cudart: Any, device: int = 0) -> tuple[str, str]:
    """``(name, "major.minor")`` of CUDA device ``device``; :class:`BackendUnavailable` when there is none."""
    try:
        count = _cuda(cudart.cudaGetDeviceCount())
    except RuntimeError as e:
        raise BackendUnavailable(f"no CUDA GPU ({e})") from None
    if count <= device:
        raise BackendUnavailable(f"no CUDA GPU (found {count} device(s), need index {device})")
    props = _cuda(cudart.cudaGetDeviceProperties(device))
    name = props.name.decode(errors="replace").rstrip("\0") if isinstance(props.name, bytes) else str(props.name)
    return name, f"{props.major}.{props.minor}"


def engine_key(
    trt: Any,
    cudart: Any,
    onnx_path: str | os.PathLike,
    spec: ModelSpec,
    tile_hw: tuple[int, int],
    max_batch: int,
    device: int = 0,
) -> EngineKey:
    """The cache key of an engine for ``onnx_path`` at ``tile_hw`` windows, batch 1..``max_batch``.

    The ONNX file itself is hashed (not the sidecar's ``onnx_sha256``), so a replaced graph never reuses an
    engine built from its predecessor.
    """
    gpu, cc = gpu_identity(cudart, device)
    h, w = tile_hw
    shape = lambda n: (n, spec.channels, h, w)  # noqa: E731
    return EngineKey(
        model_name=spec.name,
        onnx_sha256=sha256_file(onnx_path),
        precision=spec.precision,
        input_dtype=spec.input_dtype,
        output_dtype=spec.output_dtype,
        profiles=((spec.input_name, shape(1), shape(max_batch), shape(max_batch)),),
        trt_version=trt.__version__,
        gpu_name=gpu,
        compute_capability=cc,
        builder_options=dataclasses.asdict(BUILDER),
    )


class _Progress:
    """tqdm bars (stderr) for TensorRT's build phases, via ``trt.IProgressMonitor`` (TensorRT ≥ 10)."""

    @staticmethod
    def attach(trt: Any, config: Any, label: str) -> None:
        if not hasattr(trt, "IProgressMonitor"):
            log.info("building TensorRT engine for %s (may take minutes) ...", label)
            return
        from tqdm import tqdm

        class Monitor(trt.IProgressMonitor):
            def __init__(self) -> None:
                trt.IProgressMonitor.__init__(self)
                self.bars: dict[str, tqdm] = {}

            def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
                depth = len(self.bars)
                self.bars[phase_name] = tqdm(
                    total=num_steps, desc=f"{label}: {phase_name}", position=depth, leave=depth == 0, file=sys.stderr
                )

            def step_complete(self, phase_name: str, step: int) -> bool:
                bar = self.bars.get(phase_name)
                if bar is not None:
                    bar.update(step + 1 - bar.n)
                return True  # False would cancel the build

            def phase_finish(self, phase_name: str) -> None:
                bar = self.bars.pop(phase_name, None)
                if bar is not None:
                    bar.close()

        config.progress_monitor = Monitor()


class _TimingCache:
    """A timing cache file per TensorRT version and GPU under ``<cache>/timing/``, updated under a lock."""

    def __init__(self, root: Path, key: EngineKey) -> None:
        self.path = (
            root / "timing" / f"{safe_name(f'trt{key.trt_version}-{key.gpu_name}-sm{key.compute_capability}')}.cache"
        )

    def load(self, config: Any) -> None:
        """Attach the stored timing cache (or an empty one) to the builder ``config``."""
        data = self.path.read_bytes() if self.path.exists() else b""
        cache = config.create_timing_cache(data)
        if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
            cache = config.create_timing_cache(b"")  # unreadable/mismatched file: start afresh
            config.set_timing_cache(cache, ignore_mismatch=False)

    def save(self, config: Any) -> None:
        """Merge what this build learnt into the file (another process may have saved meanwhile)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cache = config.get_timing_cache()
        import filelock  # only a build needs it: not imported with the module (start-up, issue 34)

        with filelock.FileLock(str(self.path.with_suffix(".lock"))):
            if self.path.exists():
                previous = config.create_timing_cache(self.path.read_bytes())
                if previous is not None:
                    cache.combine(previous, ignore_mismatch=True)
            atomic_write_bytes(self.path, bytes(cache.serialize()))


def make_build_fn(trt: Any, logger: Any, root: Path, progress: bool) -> Callable[[Path, EngineKey], bytes]:
    """``build_fn(onnx_path, key) -> bytes`` for :class:`EngineCache`: parse, configure, build, serialize."""

    def build(onnx_path: Path, key: EngineKey) -> bytes:
        builder = trt.Builder(logger)
        # Strongly typed: the FP16 ONNX fixes every layer's precision, so --fp32-nodes are honoured (a weakly
        # typed network with the FP16 flag may run them in FP16 anyway). TensorRT 11 accepts only this.
        strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        flags = 0 if strongly_typed is None else 1 << int(strongly_typed)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        fp16_flag = getattr(trt.BuilderFlag, "FP16", None)  # removed in TensorRT 11
        if strongly_typed is None and fp16_flag is not None and key.precision == "fp16":
            config.set_flag(fp16_flag)  # only pre-10 TensorRT without strong typing gets here
        config.builder_optimization_level = BUILDER.optimization_level
        if BUILDER.hardware_compatibility == "ampere_plus":
            config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
        if BUILDER.workspace_mib:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, BUILDER.workspace_mib << 20)
        profile = builder.create_optimization_profile()
        for name, lo, opt, hi in key.profiles:
            profile.set_shape(name, tuple(lo), tuple(opt), tuple(hi))
        config.add_optimization_profile(profile)
        timing = _TimingCache(root, key)
        timing.load(config)
        if progress:
            _Progress.attach(trt, config, f"{key.model_name} {key.profiles[0][3][2]}×{key.profiles[0][3][3]}")
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
        timing.save(config)
        return bytes(plan)

    return build


def make_logger(trt: Any) -> Any:
    """A TensorRT logger that passes warnings and errors to this module's logger and keeps the errors
    (``.errors``), so that a failure TensorRT only logs (an engine that did not load for lack of memory) can be
    told apart."""

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            level = int(severity)
            if level <= int(trt.ILogger.Severity.ERROR):
                self.errors.append(msg)
            if level <= int(trt.ILogger.Severity.WARNING):
                log.warning("TensorRT: %s", msg)

    return Logger()


def deserialize(runtime: Any, logger: Any, plan: bytes) -> Any:
    """The engine; None for a plan this TensorRT/GPU cannot use (the cache then rebuilds it). Running out of GPU
    memory raises instead: rebuilding a valid plan for minutes would not help."""
    logger.errors.clear()
    try:
        engine = runtime.deserialize_cuda_engine(plan)
    except (RuntimeError, TypeError, ValueError):  # some versions raise on garbage instead of returning None
        engine = None
    if engine is None and any(is_out_of_memory(RuntimeError(m)) for m in logger.errors):
        raise RuntimeError(f"out of GPU memory while loading the engine ({logger.errors[-1]})")
    return engine


def check_engine_io(trt: Any, engine: Any, spec: ModelSpec, tile_hw: tuple[int, int], max_batch: int) -> None:
    """Raise :class:`BackendUnavailable` unless the engine's own I/O is what the sidecar promises: one input and one
    output with the sidecar's names and dtypes, its channel count, the tile window, batch up to ``max_batch``."""
    dtypes = {"float32": trt.DataType.FLOAT, "float16": trt.DataType.HALF}
    want = {
        spec.input_name: (trt.TensorIOMode.INPUT, dtypes.get(spec.input_dtype)),
        spec.output_name: (trt.TensorIOMode.OUTPUT, dtypes.get(spec.output_dtype)),
    }
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    problems = [] if sorted(names) == sorted(want) else [f"tensors {names}, sidecar {sorted(want)}"]
    for name in set(names) & set(want):
        mode, dtype = want[name]
        if engine.get_tensor_mode(name) != mode or engine.get_tensor_dtype(name) != dtype:
            problems.append(f"{name}: {engine.get_tensor_mode(name)} {engine.get_tensor_dtype(name)}")
        shape = tuple(engine.get_tensor_shape(name))
        expected = (-1, spec.channels, *tile_hw)
        if len(shape) != 4 or any(d not in (-1, e) for d, e in zip(shape[1:], expected[1:], strict=True)):
            problems.append(f"{name}: shape {shape}, expected (N, {spec.channels}, {tile_hw[0]}, {tile_hw[1]})")
    if spec.input_name in names:
        hi = tuple(engine.get_tensor_profile_shape(spec.input_name, 0)[2])
        if hi[0] < max_batch or hi[2:] != tuple(tile_hw):
            problems.append(f"profile max {hi}, need ({max_batch}, {spec.channels}, {tile_hw[0]}, {tile_hw[1]})")
    if problems:
        raise BackendUnavailable(f"the TensorRT engine does not match its model's sidecar: {'; '.join(problems)}")


def _host_array(ptr: int, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """A numpy array over ``shape`` × ``dtype`` of host memory at ``ptr`` (pinned memory from cudaMallocHost)."""
    nbytes = int(np.prod(shape)) * np.dtype(_NP_DTYPES[dtype]).itemsize
    return np.frombuffer((ctypes.c_byte * nbytes).from_address(ptr), dtype=_NP_DTYPES[dtype]).reshape(shape)


class TensorRTBackend(Closing):
    """Runs an ONNX model with TensorRT on fixed-shape tile batches (see :class:`runtime.backends.base.Backend`).

    The engine comes from the engine cache (built on first use, with a progress display when ``progress``) and is
    checked against the sidecar. Device buffers, pinned host staging buffers and the stream are allocated once.
    Any failure to set up (no GPU, CUDA error, parse or build error, no memory for the execution context) raises
    :class:`BackendUnavailable` with the reason, so that ``--backend auto`` moves on to the next backend.
    """

    name = "tensorrt"
    note = ""
    any_window = False  # the engine profile fixes the window

    def __init__(
        self,
        onnx_path: str | os.PathLike,
        spec: ModelSpec,
        tile_hw: tuple[int, int],
        max_batch: int,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
        device: int = 0,
    ) -> None:
        trt, cudart = _import_trt()
        self._trt, self._cudart = trt, cudart
        self.max_batch, self.tile_hw, self.spec = max_batch, tuple(tile_hw), spec
        self._allocations: list[tuple[Callable, int]] = []  # (free function, pointer), freed by close()
        self._stream = self._context = self._engine = self._runtime = None
        try:
            self._load(Path(onnx_path), cache_dir, progress, device)
        except BackendUnavailable:
            self.close()
            raise
        except Exception as e:  # CUDA errors, TensorRT parse/build/load failures: reasons for auto to move on
            self.close()
            raise BackendUnavailable(f"TensorRT cannot run {Path(onnx_path).name}: {e}") from e

    def _load(self, onnx_path: Path, cache_dir, progress: bool, device: int) -> None:
        trt, cudart, spec = self._trt, self._cudart, self.spec
        key = engine_key(trt, cudart, onnx_path, spec, self.tile_hw, self.max_batch, device)  # checks the GPU
        _cuda(cudart.cudaSetDevice(device))
        self._logger = make_logger(trt)
        self._runtime = trt.Runtime(self._logger)  # engines must not outlive their runtime
        root = cache_root(cache_dir)
        build = make_build_fn(trt, self._logger, root, progress)
        cache = EngineCache(build, lambda plan: deserialize(self._runtime, self._logger, plan), root)
        self._engine = cache.get(onnx_path, key)
        check_engine_io(trt, self._engine, spec, self.tile_hw, self.max_batch)
        self._context = self._engine.create_execution_context()
        if self._context is None:  # TensorRT's way of saying it could not allocate the context's memory
            detail = "; ".join(self._logger.errors[-1:]) or "no detail logged"
            raise BackendUnavailable(f"TensorRT could not create an execution context: out of GPU memory ({detail})")
        self._stream = _cuda(cudart.cudaStreamCreate())
        shape = (self.max_batch, spec.channels, *self.tile_hw)
        nbytes = {
            d: int(np.prod(shape)) * np.dtype(_NP_DTYPES[d]).itemsize for d in (spec.input_dtype, spec.output_dtype)
        }
        self._d_in = self._alloc(cudart.cudaMalloc, cudart.cudaFree, nbytes[spec.input_dtype])
        self._d_out = self._alloc(cudart.cudaMalloc, cudart.cudaFree, nbytes[spec.output_dtype])
        # Pinned host staging buffers: page-locked memory lets the copies run asynchronously on the stream.
        pinned_in = self._alloc(cudart.cudaMallocHost, cudart.cudaFreeHost, nbytes[spec.input_dtype])
        pinned_out = self._alloc(cudart.cudaMallocHost, cudart.cudaFreeHost, nbytes[spec.output_dtype])
        self._h_in = _host_array(pinned_in, shape, spec.input_dtype)
        self._h_out = _host_array(pinned_out, shape, spec.output_dtype)
        self._context.set_tensor_address(spec.input_name, self._d_in)
        self._context.set_tensor_address(spec.output_name, self._d_out)

    def _alloc(self, malloc: Callable, free: Callable, nbytes: int) -> int:
        """A pointer from ``malloc(nbytes)`` (cuda-python style), remembered for :meth:`close`."""
        ptr = int(_cuda(malloc(nbytes)))
        self._allocations.append((free, ptr))
        return ptr

    def run(self, batch: np.ndarray) -> np.ndarray:
        """N×C×H×W float32 [0, 1] (N ≤ max_batch, H×W = the tile shape) → same shape float32 (a new array)."""
        if self._context is None:
            raise RuntimeError("backend is closed")
        n, c, h, w = batch.shape
        if n > self.max_batch or (h, w) != self.tile_hw or c != self.spec.channels:
            raise ValueError(
                f"batch {batch.shape} does not fit the engine (≤{self.max_batch}×{self.spec.channels}×{self.tile_hw})"
            )
        cudart = self._cudart
        host_in, host_out = self._h_in[:n], self._h_out[:n]
        host_in[...] = batch  # into pinned memory: the copy to the GPU can then run asynchronously
        if not self._context.set_input_shape(self.spec.input_name, host_in.shape):
            raise RuntimeError(f"TensorRT rejected input shape {host_in.shape}")
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _cuda(cudart.cudaMemcpyAsync(self._d_in, host_in.ctypes.data, host_in.nbytes, h2d, self._stream))
        if not self._context.execute_async_v3(int(self._stream)):
            raise RuntimeError(f"TensorRT execution failed ({'; '.join(self._logger.errors[-2:])})")
        _cuda(cudart.cudaMemcpyAsync(host_out.ctypes.data, self._d_out, host_out.nbytes, d2h, self._stream))
        _cuda(cudart.cudaStreamSynchronize(self._stream))
        return host_out.astype(np.float32)  # a copy: the pinned buffer is reused by the next call

    def close(self) -> None:
        """Free the execution context, engine, device and pinned buffers and the stream (idempotent; also on
        garbage collection). A restorer calls it before building a smaller backend after running out of memory."""
        cudart = getattr(self, "_cudart", None)
        self._context = self._engine = None  # the context before the engine, the engine before its runtime
        self._runtime = None
        self._h_in = self._h_out = None  # views into pinned memory: drop before freeing it
        for free, ptr in reversed(getattr(self, "_allocations", [])):
            with contextlib.suppress(Exception):
                free(ptr)
        self._allocations = []
        if cudart is not None and getattr(self, "_stream", None) is not None:
            with contextlib.suppress(Exception):
                cudart.cudaStreamDestroy(self._stream)
        self._stream = None

    def __del__(self) -> None:
        self.close()


def prebuild(
    onnx_path: str | os.PathLike,
    spec: ModelSpec,
    tile_hw: tuple[int, int],
    max_batch: int,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> None:
    """Make sure the engine for these settings is in the cache (what ``python -m export.build`` calls)."""
    TensorRTBackend(onnx_path, spec, tile_hw, max_batch, cache_dir, progress).close()
