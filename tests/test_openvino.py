"""The OpenVINO CPU backend against ONNX Runtime's CPU EP on the bundled model, and its contract at the edges."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.backends.base import BackendNotInstalled, BackendUnavailable
from runtime.backends.openvino import OpenVinoBackend, import_openvino
from runtime.engine_cache import ENV_VAR
from runtime.spec import ModelSpec

ov = pytest.importorskip("openvino", reason="openvino is not installed: pip install -e '.[openvino]'")

REPO = Path(__file__).resolve().parents[1]
ONNX = REPO / "runtime" / "weights" / "default.onnx"
SPEC = ModelSpec.load(ONNX.with_suffix(".json"))
TILE = (64, 96)
# Measured on the bundled model (AVX2 CPU, OpenVINO 2026.4 vs ONNX Runtime 1.32, 17² to 576² windows): max |OpenVINO −
# ORT| = 1.2e-7 to 2.4e-7, float32 rounding. 1e-5 leaves room for other CPUs' kernels yet fails on any real difference:
# merely rounding the weights to FP16 (default_fp16.onnx, computed in f32) already moves outputs by 5e-5, and bf16 or
# f16 arithmetic (8- or 11-bit mantissas) far more.
ATOL = 1e-5


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """The example JPEG (q10) as 1×3×H×W float32 RGB in [0, 1]."""
    bgr = cv2.imread(str(REPO / "examples" / "astronaut_q10.jpg"), cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    return rgb.transpose(2, 0, 1)[None]


@pytest.fixture(scope="module")
def backend(tmp_path_factory) -> Iterator[OpenVinoBackend]:
    b = OpenVinoBackend(ONNX, SPEC, TILE, max_batch=2, threads=1, cache_dir=tmp_path_factory.mktemp("cache"))
    yield b
    b.close()


def _crop(image: np.ndarray, top: int, left: int, h: int, w: int) -> np.ndarray:
    return np.ascontiguousarray(image[:, :, top : top + h, left : left + w])


@pytest.mark.parametrize("hw", [TILE, (64, 64), (48, 80), (23, 37)])
def test_matches_onnxruntime_cpu_on_every_window_up_to_the_tile(backend, image, hw):
    pytest.importorskip("onnxruntime")
    from runtime.backends.onnxruntime import OrtBackend

    x = _crop(image, 150, 120, *hw)
    out = backend.run(x)
    reference = OrtBackend(ONNX, SPEC, hw, 1, "cpu", threads=1).run(x)
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, reference, rtol=0, atol=ATOL)
    assert np.abs(out - x).max() > 1e-2  # the model did something: not an identity or a copy of the input


def test_a_batch_matches_its_images_run_one_by_one_and_results_are_not_overwritten(backend, image):
    a, b = _crop(image, 0, 0, 40, 56), _crop(image, 200, 250, 40, 56)
    out = backend.run(np.concatenate([a, b]))
    first = backend.run(a)
    backend.run(b)  # a later call must not write into an earlier result
    np.testing.assert_allclose(out[:1], first, rtol=0, atol=ATOL)
    np.testing.assert_allclose(out[1:], backend.run(b), rtol=0, atol=ATOL)
    np.testing.assert_array_equal(first, backend.run(a))


def test_it_computes_in_float32_unpinned_on_the_threads_asked_for(backend):
    compiled = backend._request.get_compiled_model()  # bf16/f16 or pinning would only show on other CPUs or loads
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    assert compiled.get_property("ENABLE_CPU_PINNING") is False
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1


@pytest.mark.parametrize(
    "shape",
    [(1, 3, TILE[0] + 1, TILE[1]), (1, 3, TILE[0], TILE[1] + 1), (3, 3, 16, 16), (0, 3, 16, 16), (1, 1, 16, 16)],
    ids=["too-high", "too-wide", "batch-over-max", "empty-batch", "wrong-channels"],
)
def test_shapes_outside_the_contract_raise_value_error(backend, shape):
    with pytest.raises(ValueError, match="does not fit"):
        backend.run(np.zeros(shape, np.float32))


def test_the_cache_folder_gets_the_compiled_model(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "default"))
    OpenVinoBackend(ONNX, SPEC, (32, 32), 1, threads=1).close()  # default: <toolkit cache>/openvino
    assert list((tmp_path / "default" / "openvino").iterdir())
    OpenVinoBackend(ONNX, SPEC, (32, 32), 1, threads=1, cache_dir=tmp_path / "mine").close()
    assert list((tmp_path / "mine" / "openvino").iterdir())


def test_a_cache_folder_that_cannot_be_made_only_disables_caching(tmp_path, image):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    b = OpenVinoBackend(ONNX, SPEC, (32, 32), 1, threads=1, cache_dir=blocker)
    assert "cache disabled" in b.note
    assert b.run(_crop(image, 0, 0, 32, 32)).shape == (1, 3, 32, 32)
    b.close()


@pytest.mark.parametrize("field", ["input_name", "output_name"])
def test_io_names_that_differ_from_the_sidecar_make_it_unavailable(field):
    spec = dataclasses.replace(SPEC, **{field: "renamed"})
    with pytest.raises(BackendUnavailable, match="does not match its sidecar"):
        OpenVinoBackend(ONNX, spec, (32, 32), 1, threads=1)


@pytest.mark.parametrize("content", [b"", ONNX.read_bytes()[:3000]], ids=["empty", "truncated"])
def test_a_corrupt_onnx_file_makes_it_unavailable(tmp_path, content):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(content)
    with pytest.raises(BackendUnavailable, match="OpenVINO cannot read"):
        OpenVinoBackend(bad, SPEC, (32, 32), 1, threads=1, cache_dir=tmp_path)


def test_a_closed_backend_refuses_to_run(image):
    b = OpenVinoBackend(ONNX, SPEC, (32, 32), 1, threads=1)
    b.close()
    with pytest.raises(RuntimeError, match="closed"):
        b.run(_crop(image, 0, 0, 32, 32))


def test_without_openvino_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` raise ImportError
    with pytest.raises(BackendNotInstalled, match=r'pip install -e "[^"]*\[openvino\]"'):
        import_openvino()
