"""Backend choice: ``auto`` takes the fastest backend that actually loads (tensorrt > ort-cuda > ort-cpu > openvino).

OpenVINO comes after ONNX Runtime's CPU backend because it was slower end to end on the team's CPU with the
model's INT8 graph (AMD EPYC, AVX2 without VNNI; ``benchmarks/results/cpu_paths.md``): ``auto`` reaches it only
where ONNX Runtime is not installed; ``--backend openvino`` asks for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.tiling import DEFAULT_CORE, ENGINE_BATCH
from runtime.backends.base import Backend, BackendNotInstalled, BackendUnavailable
from runtime.model_files import Model

if TYPE_CHECKING:  # runtime.settings imports this module's backend names
    from runtime.settings import RestoreSettings

BACKENDS = ("tensorrt", "ort-cuda", "ort-cpu", "openvino")  # what auto tries, in order (see module docstring)
REMOTE_BACKENDS = ("triton",)  # need a server address; auto never picks them
GPU_BACKENDS = frozenset({"tensorrt", "ort-cuda"})
# Tiles per call when none is asked for: batching fills a GPU; on a CPU it saves nothing and each tile in
# flight costs ONNX Runtime its activations.
# triton: windows in flight per call.
DEFAULT_BATCH = {"tensorrt": ENGINE_BATCH, "ort-cuda": ENGINE_BATCH, "ort-cpu": 1, "openvino": 1, "triton": 8}
# Largest tile core when none is asked for. Fixed-window backends (engines, bound GPU buffers, a server's
# configured shape) use the engines' prebuilt 256. CPU backends fit a core ≤ CPU_CORE[precision] to each image
# (common.tiling.TileGrid.fitted): a larger core recomputes less overlap but holds more activations, and INT8
# activations take a quarter of FP32's bytes (measured s/MP and peak RSS per core: benchmarks/results/cpu_paths.md).
CPU_BACKENDS = frozenset(BACKENDS) - GPU_BACKENDS  # local backends that take any window
CPU_CORE = {"fp32": 512, "fp16": 512, "int8": 1024}


def default_tile(kind: str, model: Model, precision: str = "auto") -> int:
    """The largest tile core backend ``kind`` uses for ``model`` at ``precision`` when no tile is asked for."""
    if kind not in CPU_BACKENDS:
        return DEFAULT_CORE
    return CPU_CORE[model.file(precision, "cpu").spec.precision]


def create_backend(
    kind: str, model: Model, tile_hw: tuple[int, int], max_batch: int | None, settings: RestoreSettings
) -> Backend:
    """Load ``model`` on backend ``kind`` (one of :data:`BACKENDS` or :data:`REMOTE_BACKENDS`) for windows of
    ``tile_hw``, from its file of ``settings.precision`` ("auto": GPU backends FP16 > FP32, CPU backends INT8 > FP32,
    :meth:`Model.file`), with the device, threads, cache and server of ``settings``; ``triton`` sends the tiles to
    ``settings.server``.

    ``max_batch`` None takes the backend's :data:`DEFAULT_BATCH`.

    Raises :class:`BackendUnavailable` with the reason when that backend cannot run here.
    """
    if kind not in (*BACKENDS, *REMOTE_BACKENDS):
        raise ValueError(f"unknown backend {kind!r} (choose from auto, {', '.join((*BACKENDS, *REMOTE_BACKENDS))})")
    s = settings
    file = model.file(s.precision, "gpu" if kind in GPU_BACKENDS else "cpu")
    max_batch = max_batch or DEFAULT_BATCH[kind]
    if kind == "triton":
        from runtime.backends.triton import TritonBackend

        return TritonBackend(s.server, model.spec, tile_hw, max_batch, s.remote_model)
    if kind == "tensorrt":
        try:
            from runtime.backends.tensorrt import TensorRTBackend
        except ImportError as e:
            raise BackendNotInstalled(f"TensorRT support cannot be imported ({e})") from None
        return TensorRTBackend(
            file.onnx, file.spec, tile_hw, max_batch, cache_dir=s.cache_dir, progress=s.progress, device=s.device_id
        )
    if kind == "openvino":
        from runtime.backends.openvino import OpenVinoBackend

        return OpenVinoBackend(file.onnx, file.spec, tile_hw, max_batch, s.threads, s.cache_dir)
    from runtime.backends.onnxruntime import OrtBackend

    device = "cuda" if kind == "ort-cuda" else "cpu"
    return OrtBackend(file.onnx, file.spec, tile_hw, max_batch, device, s.device_id, s.threads, s.spin)


@dataclass(frozen=True)
class Skip:
    """A backend that ``auto`` passed over; ``installed``: its library is there, so the failure is news."""

    name: str
    reason: str
    installed: bool

    def __str__(self) -> str:
        return f"{self.name} unavailable: {self.reason}"


def select_backend(
    kind: str,
    model: Model,
    window_for: Callable[[str], tuple[int, int]],
    max_batch: int | None,
    settings: RestoreSettings,
) -> tuple[Backend, list[Skip]]:
    """``kind`` or, for "auto", the first of :data:`BACKENDS` that loads, built for the (largest) window
    ``window_for(candidate)`` with ``settings`` (:func:`create_backend`).

    Returns the backend and, for "auto", one :class:`Skip` per backend passed over.
    Raises :class:`BackendUnavailable` (all reasons in its message) when nothing loads.
    """
    candidates = BACKENDS if kind == "auto" else (kind,)
    skipped: list[Skip] = []
    for candidate in candidates:
        try:
            return create_backend(candidate, model, window_for(candidate), max_batch, settings), skipped
        except BackendUnavailable as e:
            skipped.append(Skip(candidate, str(e), not isinstance(e, BackendNotInstalled)))
    raise BackendUnavailable("; ".join(map(str, skipped)))
