"""ONNX Runtime backends: ``ort-cpu`` (CPU EP, FP32 graph) and ``ort-cuda`` (CUDA EP, FP16 graph when exported).

The CUDA EP is configured with ``cudnn_conv_algo_search="HEURISTIC"`` (the default EXHAUSTIVE search re-runs
for every new input shape; tiles have one shape, but a short last batch is a new shape too) and runs through
IOBinding with the output left on the GPU until it is copied back once. ONNX Runtime silently falls back to
the CPU when the CUDA EP cannot load; this backend checks ``session.get_providers()`` and refuses instead,
so the name it reports is what actually runs.
"""

from __future__ import annotations

import os

import numpy as np

from runtime.backends.base import BackendUnavailable
from runtime.spec import ModelSpec

_CUDA_EP, _CPU_EP = "CUDAExecutionProvider", "CPUExecutionProvider"


class OrtBackend:
    """Runs N×C×H×W float32 tile batches (N ≤ ``max_batch``, (H, W) = ``tile_hw``) with ONNX Runtime.

    ``device``: "cpu" or "cuda". ``threads``: intra-op threads of the CPU EP (None: ONNX Runtime's default,
    one per physical core). Raises :class:`BackendUnavailable` when ONNX Runtime, the CUDA EP or the model
    cannot be loaded. Not thread-safe.
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
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendUnavailable(f"onnxruntime is not installed ({e})") from None
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        self.name = f"ort-{device}"
        self.max_batch = int(max_batch)
        self.tile_hw = tuple(tile_hw)
        self.device_id = device_id
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
        if threads:
            options.intra_op_num_threads = int(threads)
        if device == "cuda":
            if _CUDA_EP not in ort.get_available_providers():
                raise BackendUnavailable("onnxruntime has no CUDA execution provider here (needs onnxruntime-gpu)")
            cuda_options = {"device_id": device_id, "cudnn_conv_algo_search": "HEURISTIC"}
            providers: list = [(_CUDA_EP, cuda_options), _CPU_EP]
        else:
            providers = [_CPU_EP]
        try:
            self.session = ort.InferenceSession(os.fspath(onnx_path), options, providers=providers)
        except Exception as e:  # ORT raises its own exception types for unreadable or invalid models
            raise BackendUnavailable(f"ONNX Runtime cannot load {onnx_path}: {e}") from None
        if device == "cuda" and self.session.get_providers()[0] != _CUDA_EP:
            raise BackendUnavailable("the CUDA execution provider failed to load (ONNX Runtime fell back to CPU)")
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        if self.input_name != spec.input_name or self.output_name != spec.output_name:
            raise BackendUnavailable(
                f"{onnx_path}: graph I/O ({self.input_name}, {self.output_name}) does not match its sidecar "
                f"({spec.input_name}, {spec.output_name})"
            )
        self.input_dtype = np.float16 if inputs[0].type == "tensor(float16)" else np.float32

    def run(self, batch: np.ndarray) -> np.ndarray:
        """N×C×H×W float32 in [0, 1] → N×C×H×W float32 (unclipped)."""
        if batch.shape[0] > self.max_batch or tuple(batch.shape[2:]) != self.tile_hw:
            raise ValueError(f"batch {batch.shape} does not fit this backend ({self.max_batch}×C×{self.tile_hw})")
        batch = np.ascontiguousarray(batch, dtype=self.input_dtype)
        if self.name == "ort-cpu":
            out = self.session.run([self.output_name], {self.input_name: batch})[0]
        else:
            binding = self.session.io_binding()
            binding.bind_cpu_input(self.input_name, batch)
            binding.bind_output(self.output_name, "cuda", self.device_id)
            self.session.run_with_iobinding(binding)
            out = binding.copy_outputs_to_cpu()[0]
        return out.astype(np.float32, copy=False)
