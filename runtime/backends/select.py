"""Backend construction: :func:`create_backend` loads one backend of the catalogue (:mod:`runtime.backends.catalogue`:
the names, the order ``auto`` tries them in, the default batches and tiles), :func:`select_backend` the first of them
that loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.lazy import importable
from common.tiling import TileGrid, window_grid
from runtime.backends.base import Backend, BackendNotInstalled, BackendUnavailable
from runtime.backends.catalogue import (  # noqa: F401 (CPU_CORE, default_tile: re-exported for select's users)
    BACKENDS,
    CPU_CORE,
    DEFAULT_BATCH,
    GPU_BACKENDS,
    REMOTE_BACKENDS,
    default_tile,
    tensorrt_install_hint,
)
from runtime.model_files import Model, ModelFile

if TYPE_CHECKING:
    from runtime.settings import RestoreSettings


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
    file, _ = backend_file(kind, model, s.precision)
    max_batch = max_batch or DEFAULT_BATCH[kind]
    if kind == "triton":
        from runtime.backends.triton import TritonBackend

        return TritonBackend(s.server, model.spec, tile_hw, max_batch, s.remote_model)
    if kind == "tensorrt":
        if not importable("tensorrt"):  # not installed: said without importing the backend module
            # (ctypes, the engine cache: ~0.03 s CPU of every start-up on a machine without TensorRT, issue 34)
            raise BackendNotInstalled(f"tensorrt is not importable (not installed); {tensorrt_install_hint()}")
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


def backend_file(kind: str, model: Model, precision: str) -> tuple[ModelFile, str]:
    """The file of ``model`` that backend ``kind`` runs at ``precision`` ("auto": GPU backends FP16 > FP32, CPU
    backends INT8 > FP32) and, for the user, why (:meth:`Model.choose_file`)."""
    return model.choose_file(precision, "gpu" if kind in GPU_BACKENDS else "cpu")


def tile_grid(kind: str, model: Model, settings: RestoreSettings, core: tuple[int, int] | None = None) -> TileGrid:
    """The (largest) tile grid backend ``kind`` is built for: of ``core`` (a shrunk one), else the settings' tile,
    else the backend's :func:`default_tile`, with the model's overlap and the settings' overlap and grid."""
    largest = core or settings.tile or default_tile(kind, model, settings.precision)
    return window_grid(largest, model.spec.recommended_overlap, settings.overlap, settings.align)


def select_backend(
    kind: str, model: Model, core: tuple[int, int] | None, max_batch: int | None, settings: RestoreSettings
) -> tuple[Backend, list[Skip]]:
    """``kind`` or, for "auto", the first of :data:`BACKENDS` that loads, built for its :func:`tile_grid` window
    (of ``core``, None: the settings' or the backend's default) with ``settings`` (:func:`create_backend`).

    Returns the backend and, for "auto", one :class:`Skip` per backend passed over.
    Raises :class:`BackendUnavailable` (all reasons in its message) when nothing loads.
    """
    candidates = BACKENDS if kind == "auto" else (kind,)
    skipped: list[Skip] = []
    for candidate in candidates:
        try:
            window = tile_grid(candidate, model, settings, core).window
            return create_backend(candidate, model, window, max_batch, settings), skipped
        except BackendUnavailable as e:
            skipped.append(Skip(candidate, str(e), not isinstance(e, BackendNotInstalled)))
    raise BackendUnavailable("; ".join(map(str, skipped)))
