"""TensorRT backend. Runs fully only where tensorrt, cuda-python and a CUDA GPU exist (users' machines)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from runtime.backends.base import BackendUnavailable
from runtime.backends.tensorrt import TensorRTBackend
from runtime.engine_cache import list_entries
from runtime.spec import ModelSpec, sidecar_path

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
TRT_SKIP = (
    "tensorrt not importable (not installable on the team's machines, see ../shared/docs/PLATFORM.md; elsewhere: "
    "pip install -e '.[trt]')"
)


def _has_gpu() -> bool:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        return False
    err, count = cudart.cudaGetDeviceCount()
    return int(err) == 0 and count > 0


_SKIP_REASON = TRT_SKIP if not HAS_TRT else None if _has_gpu() else "no CUDA GPU"
needs_trt_gpu = pytest.mark.skipif(_SKIP_REASON is not None, reason=_SKIP_REASON or "")


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is importable: the missing-library path cannot be exercised")
def test_missing_tensorrt_is_reported_as_unavailable(tmp_path: Path) -> None:
    spec = ModelSpec(name="m", channels=3, color="rgb", precision="fp16")
    with pytest.raises(BackendUnavailable, match="tensorrt is not importable") as raised:
        TensorRTBackend(tmp_path / "m.onnx", spec, (64, 64), 2, cache_dir=tmp_path)
    assert "needs an NVIDIA GPU" in str(raised.value) and '[trt]"' in str(raised.value)


@pytest.fixture(scope="module")
def fp16_model(tmp_path_factory) -> Path:
    """A tiny FP16 ONNX + sidecar built by ``export.build`` (needs torch, like the export tests)."""
    pytest.importorskip("torch")
    import torch

    from export import build
    from models import GeneratorConfig, WCDGANGenerator, save_generator

    tmp = tmp_path_factory.mktemp("trt")
    torch.manual_seed(0)
    save_generator(tmp / "tiny.pt", WCDGANGenerator(GeneratorConfig(features=16, num_blocks=1, branch_channels=8)))
    assert build.main(["--ckpt", str(tmp / "tiny.pt"), "--fp16", "--engine", "skip", "-q"]) == 0
    return tmp / "tiny_fp16.onnx"


@needs_trt_gpu
def test_engine_matches_onnxruntime_and_is_cached(fp16_model: Path, tmp_path: Path, expect_warning) -> None:
    import onnxruntime as ort

    from common.metrics import psnr_capped, to_uint8
    from export.validate import validation_images

    spec = ModelSpec.load(sidecar_path(fp16_model))
    crop = validation_images(3)[0][:, :, :64, :64]
    batch = np.concatenate([crop, crop[:, :, ::-1, :]])
    want = ort.InferenceSession(str(fp16_model.with_name("tiny.onnx")), providers=["CPUExecutionProvider"]).run(
        None, {"input": np.ascontiguousarray(batch)}
    )[0]
    backend = TensorRTBackend(fp16_model, spec, (64, 64), 2, cache_dir=tmp_path, progress=False)
    got = backend.run(batch)
    assert got.dtype == np.float32 and got.shape == batch.shape and np.isfinite(got).all()
    assert psnr_capped(to_uint8(got), to_uint8(want)) > 40
    assert np.allclose(backend.run(batch[:1]), got[:1], atol=1e-3)  # smaller batch, same engine
    backend.close()
    [entry] = list_entries(tmp_path)
    assert entry["key"]["precision"] == "fp16" and entry["key"]["profiles"][0][3] == [2, 3, 64, 64]

    plan = Path(entry["path"])
    plan.write_bytes(plan.read_bytes()[: plan.stat().st_size // 2])
    with expect_warning("corrupt"):
        again = TensorRTBackend(fp16_model, spec, (64, 64), 2, cache_dir=tmp_path, progress=False)
    assert np.allclose(again.run(batch), got, atol=1e-3)
