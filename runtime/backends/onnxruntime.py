"""ONNX Runtime backends: ``ort-cpu`` (CPU EP, INT8 graph when exported) and ``ort-cuda`` (CUDA EP, FP16 graph when
exported); otherwise the FP32 graph (:meth:`runtime.model_files.Model.file`).

ort-cuda, in order:

* ``onnxruntime.preload_dlls()`` first: where CUDA and cuDNN come from pip ``nvidia-*`` wheels (no system CUDA,
  no torch imported before), the CUDA EP cannot find them otherwise and ONNX Runtime quietly runs on the CPU.
* A **CUDA-only session with** ``session.disable_cpu_ep_fallback=1``: it loads only if every node runs on the
  GPU. If ONNX Runtime refuses (a node without a CUDA kernel), the session is made again with the CPU EP as a
  per-node fallback and :attr:`OrtBackend.note` says which nodes and why — never silently.
* ``cudnn_conv_algo_search="HEURISTIC"``: the default EXHAUSTIVE search re-runs for every new input shape.
* The session's providers are checked: a CUDA EP that failed to load makes this backend unavailable instead
  of running on the CPU under a GPU name.
* IOBinding with **device buffers allocated once** for the fixed ``max_batch × window`` shape and bound once:
  a call copies the host batch into the input buffer, runs, and copies the output back — no per-call
  allocation. A short last batch runs padded to ``max_batch`` (one shape, one cuDNN plan).
"""

from __future__ import annotations

import os

import numpy as np

from common.cli import onnxruntime_install, pip_install
from runtime.backends.base import (
    BackendNotInstalled,
    BackendUnavailable,
    Closing,
    first_line,
    import_library,
    io_mismatch,
)
from runtime.model_files import ModelError
from runtime.spec import ModelSpec

_CUDA_EP, _CPU_EP = "CUDAExecutionProvider", "CPUExecutionProvider"


def import_onnxruntime():
    """The ``onnxruntime`` module, or :class:`BackendNotInstalled` naming the extra to install."""
    return import_library("onnxruntime", onnxruntime_install())


class OrtBackend(Closing):
    """Runs N×C×H×W float32 tile batches (N ≤ ``max_batch``; (H, W) = ``tile_hw``, on the CPU any size up to it)
    with ONNX Runtime.

    ``device``: "cpu" or "cuda". ``threads``: intra-op threads of the CPU EP (None: ONNX Runtime's default,
    one per physical core). ``spin``: whether idle CPU intra-op threads busy-wait for work (None:
    :func:`spin_default`). Raises :class:`BackendUnavailable` when ONNX Runtime, the CUDA EP or the model
    cannot be loaded. ``note``: what the user should know about how it runs ("" when nothing). Not thread-safe.
    """

    def __init__(
        self,
        onnx_path: str | os.PathLike,
        spec: ModelSpec,
        tile_hw: tuple[int, int],
        max_batch: int,
        device: str = "cpu",
        device_id: int = 0,
        threads: int | None = None,
        spin: bool | None = None,
    ) -> None:
        ort = import_onnxruntime()
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        self.name, self.note = f"ort-{device}", ""
        self.any_window = device == "cpu"  # the CUDA EP runs on buffers bound for one shape
        self.max_batch, self.tile_hw, self.spec = int(max_batch), tuple(tile_hw), spec
        self.device_id = device_id
        self._binding = None
        if device == "cuda":
            self.session = self._cuda_session(ort, onnx_path, threads)
        else:
            self.spin = spin_default() if spin is None else spin
            try:
                self.session = self._create(ort, onnx_path, threads, [_CPU_EP], spin=self.spin, plan_memory=False)
            except Exception as e:  # the CPU EP loads every valid graph: a failure is the file's (junk, truncated,
                # external data outside the model's folder)
                raise ModelError(f"{onnx_path}: not a model ONNX Runtime can load ({first_line(e)})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        check_input_shape(onnx_path, inputs[0].shape, spec)
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        if self.input_name != spec.input_name or self.output_name != spec.output_name:
            raise io_mismatch(onnx_path, (self.input_name, self.output_name), (spec.input_name, spec.output_name))
        self.input_dtype = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
        self.output_dtype = np.float16 if outputs[0].type == "tensor(float16)" else np.float32
        if device == "cuda":
            self._bind_device_buffers(ort, "cuda")

    def _create(
        self, ort, onnx_path, threads: int | None, providers: list, strict: bool = False, spin: bool = True,
        plan_memory: bool = True,
    ):  # fmt: skip
        """The session. ``plan_memory`` False turns off ONNX Runtime's memory pattern (one pre-planned block per
        run): on the CPU it cost no speed and cut peak RSS nearly in half at large INT8 windows (measured:
        ``benchmarks/results/README.md``, "Measurements behind the code")."""
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_mem_pattern = plan_memory
        options.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
        if threads:
            options.intra_op_num_threads = int(threads)
        if strict:
            options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        return ort.InferenceSession(os.fspath(onnx_path), options, providers=providers)

    def _cuda_session(self, ort, onnx_path, threads: int | None):
        preload = getattr(ort, "preload_dlls", None)  # ONNX Runtime ≥ 1.21
        if preload is not None:
            try:
                preload(cuda=True, cudnn=True, msvc=False)
            except Exception as e:  # a missing wheel is not fatal: the system libraries may serve
                self.note = f"preloading CUDA/cuDNN libraries failed ({e}); "
        if _CUDA_EP not in ort.get_available_providers():
            raise BackendNotInstalled(
                "onnxruntime has no CUDA execution provider here (the CPU wheel is installed): "
                f"pip uninstall onnxruntime && {pip_install('gpu')}"
            )
        cuda = (_CUDA_EP, {"device_id": self.device_id, "cudnn_conv_algo_search": "HEURISTIC"})
        try:
            session = self._create(ort, onnx_path, threads, [cuda], strict=True)
        except Exception as strict_error:  # some node has no CUDA kernel (or the EP failed): say which
            try:
                session = self._create(ort, onnx_path, threads, [cuda, _CPU_EP])
            except Exception as e:
                raise BackendUnavailable(f"ONNX Runtime cannot load {onnx_path} on CUDA: {e}") from None
            self.note += f"some nodes run on the CPU ({first_line(strict_error)})"
        if session.get_providers()[0] != _CUDA_EP:
            raise BackendUnavailable(
                "the CUDA execution provider failed to load (ONNX Runtime fell back to CPU); "
                "check that CUDA 12/13 and cuDNN 9 libraries are installed (pip's nvidia-* wheels are preloaded)"
            )
        return session

    def _bind_device_buffers(self, ort, device_type: str) -> None:
        """Allocate the fixed-shape input/output on ``device_type`` ("cuda") once and bind them for every run."""
        shape = [self.max_batch, self.spec.channels, *self.tile_hw]
        make = ort.OrtValue.ortvalue_from_shape_and_type
        self._d_in = make(shape, self.input_dtype, device_type, self.device_id)
        self._d_out = make(shape, self.output_dtype, device_type, self.device_id)
        self._host_in = np.zeros(shape, dtype=self.input_dtype)
        self._binding = self.session.io_binding()
        self._binding.bind_ortvalue_input(self.input_name, self._d_in)
        self._binding.bind_ortvalue_output(self.output_name, self._d_out)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """N×C×H×W float32 in [0, 1] → N×C×H×W float32 (unclipped)."""
        if self.session is None:
            raise RuntimeError("backend is closed")
        n, (h, w) = batch.shape[0], batch.shape[2:]
        fits = h <= self.tile_hw[0] and w <= self.tile_hw[1] if self.any_window else (h, w) == self.tile_hw
        if n > self.max_batch or not fits:
            raise ValueError(f"batch {batch.shape} does not fit this backend ({self.max_batch}×C×{self.tile_hw})")
        if self._binding is None:
            out = self.session.run([self.output_name], {self.input_name: np.asarray(batch, self.input_dtype)})[0]
            return out.astype(np.float32, copy=False)
        self._host_in[:n] = batch  # rows ≥ n keep older data: computed and discarded, one shape for the GPU
        self._d_in.update_inplace(self._host_in)
        self.session.run_with_iobinding(self._binding)
        return self._d_out.numpy()[:n].astype(np.float32, copy=False)

    def close(self) -> None:
        """Release the session and its device buffers now (rather than at garbage collection)."""
        self._binding = self._d_in = self._d_out = None
        self.session = None


def check_input_shape(onnx_path: object, shape: list, spec: ModelSpec) -> None:
    """Raise ModelError unless the graph's input is N×C×H×W with C the sidecar's channels (or symbolic) and H, W
    symbolic: the runtime feeds windows of any size."""
    if len(shape) != 4:
        raise ModelError(f"{onnx_path}: the graph's input has {len(shape)} dimensions; expected N×C×H×W")
    if isinstance(shape[1], int) and shape[1] != spec.channels:
        raise ModelError(f"{onnx_path}: the graph takes {shape[1]} channels, its sidecar says {spec.channels}")
    if any(isinstance(side, int) for side in shape[2:]):
        raise ModelError(
            f"{onnx_path}: a fixed-shape graph (input {shape}); the runtime needs dynamic height and width: "
            "re-export it with python -m export.build"
        )


def spin_default() -> bool:
    """Spin unless the machine is already busy: the 1-minute load average (other processes: this one has not
    started computing yet) below half the logical CPUs.

    Spinning was faster when the machine is quiet or one other process runs, and slower when others keep every
    core busy (its busy-waiting threads then compete with them for the cores); the numbers:
    ``benchmarks/results/README.md``, "Measurements behind the code"."""
    if not hasattr(os, "getloadavg"):
        return True
    return os.getloadavg()[0] < (os.cpu_count() or 1) / 2
