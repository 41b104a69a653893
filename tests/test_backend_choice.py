"""Backend choice without a GPU: ``auto``'s order, each backend's file, batch and tile defaults, ONNX Runtime's CPU
session settings, and which errors mean "out of memory"."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from common.tiling import DEFAULT_CORE
from runtime.backends import onnxruntime as ort_backend
from runtime.backends import select
from runtime.backends.base import BackendNotInstalled, BackendUnavailable, is_out_of_memory
from runtime.model_files import resolve_models
from runtime.settings import RestoreSettings
from tests.runtime_fixtures import local_net


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """One model exported at all three precisions (the graphs are the same FP32 net; the sidecars say which)."""
    folder = tmp_path_factory.mktemp("m")
    for suffix, precision in (("", "fp32"), ("_fp16", "fp16"), ("_int8", "int8")):
        local_net(folder / f"m{suffix}.onnx", precision=precision, checkpoint_sha256="s")
    return resolve_models(folder).models[0]


class _Recorded:
    """Stands in for a backend class: records what it was built with."""

    def __init__(self, onnx_path, spec, tile_hw, max_batch, *args, **kwargs) -> None:
        self.onnx, self.spec, self.tile_hw, self.max_batch, self.args = Path(onnx_path), spec, tile_hw, max_batch, args


def test_auto_takes_onnx_runtime_before_openvino_and_says_why_it_skipped_the_gpu(model, monkeypatch) -> None:
    tried = []

    def create(kind, *args, **kwargs):
        tried.append(kind)
        if kind in select.GPU_BACKENDS:
            raise (BackendNotInstalled if kind == "tensorrt" else BackendUnavailable)(f"{kind}: no GPU")
        return kind

    monkeypatch.setattr(select, "create_backend", create)
    backend, skipped = select.select_backend("auto", model, (64, 64), None, RestoreSettings())
    assert backend == "ort-cpu" and tried == ["tensorrt", "ort-cuda", "ort-cpu"]
    assert [(s.name, s.installed) for s in skipped] == [("tensorrt", False), ("ort-cuda", True)]
    assert str(skipped[1]) == "ort-cuda unavailable: ort-cuda: no GPU"

    def unavailable(kind, *args, **kwargs):
        raise BackendUnavailable(kind)

    monkeypatch.setattr(select, "create_backend", unavailable)
    with pytest.raises(BackendUnavailable, match=r"tensorrt unavailable: tensorrt; .*openvino unavailable: openvino"):
        select.select_backend("auto", model, (64, 64), None, RestoreSettings())


@pytest.mark.parametrize(
    ("kind", "device", "precision", "batch"), [("ort-cpu", "cpu", "int8", 1), ("ort-cuda", "cuda", "fp16", 4)]
)
def test_each_backend_gets_its_device_s_file_and_batch(model, monkeypatch, kind, device, precision, batch) -> None:
    monkeypatch.setattr(ort_backend, "OrtBackend", _Recorded)
    backend = select.create_backend(kind, model, (80, 96), None, RestoreSettings())
    assert backend.spec.precision == precision and backend.max_batch == batch and backend.args[0] == device
    assert backend.onnx.name == model.files[precision].onnx.name
    assert select.create_backend(kind, model, (80, 96), 3, RestoreSettings(precision="fp32")).onnx.name == "m.onnx"


def test_default_tiles_by_backend_and_precision(model) -> None:
    assert select.default_tile("ort-cpu", model) == 1024  # INT8 activations take a quarter of FP32's bytes
    assert select.default_tile("ort-cpu", model, "fp32") == select.default_tile("openvino", model, "fp16") == 512
    assert select.default_tile("tensorrt", model) == select.default_tile("triton", model) == DEFAULT_CORE


def test_cpu_session_takes_any_window_up_to_the_tile_without_a_memory_pattern(model) -> None:
    backend = ort_backend.OrtBackend(model.files["fp32"].onnx, model.spec, (48, 40), 2, spin=False)
    assert backend.any_window and not backend.session.get_session_options().enable_mem_pattern
    out = backend.run(np.full((2, 3, 24, 40), 0.5, np.float32))
    assert out.shape == (2, 3, 24, 40) and out.dtype == np.float32
    for shape in ((3, 3, 24, 40), (1, 3, 56, 40)):
        with pytest.raises(ValueError, match="does not fit"):
            backend.run(np.zeros(shape, np.float32))
    backend.close()
    with pytest.raises(RuntimeError, match="closed"):
        backend.run(np.zeros((1, 3, 8, 8), np.float32))


def test_graph_names_must_match_the_sidecar(model) -> None:
    spec = dataclasses.replace(model.spec, input_name="x")
    with pytest.raises(
        BackendUnavailable, match=r"graph I/O \(input, output\) does not match its sidecar \(x, output\)"
    ):
        ort_backend.OrtBackend(model.files["fp32"].onnx, spec, (32, 32), 1)


def test_spinning_only_on_a_quiet_machine(monkeypatch) -> None:
    monkeypatch.setattr(ort_backend.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(ort_backend.os, "getloadavg", lambda: (1.9, 0, 0))
    assert ort_backend.spin_default()
    monkeypatch.setattr(ort_backend.os, "getloadavg", lambda: (2.0, 0, 0))
    assert not ort_backend.spin_default()


@pytest.mark.parametrize(
    ("message", "oom"),
    [
        ("CUDA out of memory. Tried to allocate 2.00 GiB", True),
        ("[ONNXRuntimeError] : 6 : Failed to allocate memory for requested buffer of size 123", True),
        ("cudaErrorMemoryAllocation: out of device memory", True),
        ("CUDNN_STATUS_ALLOC_FAILED", True),
        ("Requested amount of GPU memory (1 bytes) could not be allocated", True),
        ("invalid argument: input shape mismatch", False),
    ],
)
def test_out_of_memory_messages(message: str, oom: bool) -> None:
    assert is_out_of_memory(RuntimeError(message)) is oom
    assert is_out_of_memory(MemoryError())
