"""The GPU backends' logic on a CPU: TensorRT through stub modules (tests/gpu_stubs.py), ONNX Runtime's CUDA
path through its CPU provider and fakes. What these cannot show — real kernels, real memory, real speed — is
left to tools/gpu_check.sh on a GPU machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.backends import onnxruntime as ort_backend
from runtime.backends.base import BackendUnavailable, is_out_of_memory
from runtime.backends.select import select_backend
from runtime.engine_cache import list_entries
from runtime.model_files import resolve_models
from runtime.settings import RestoreSettings
from runtime.spec import ModelSpec, sidecar_path
from tests import gpu_stubs
from tests.runtime_fixtures import tiny_wcdgan

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fp16_model(tmp_path_factory) -> Path:
    """A tiny exported model: FP32 and FP16 (FP32 I/O) ONNX with sidecars, as ``export.build`` writes them."""
    from export import build
    from models import GeneratorConfig, WCDGANGenerator, save_generator

    tmp = tmp_path_factory.mktemp("gpu")
    cfg = GeneratorConfig(features=16, num_blocks=1, branch_channels=8, global_residual=True)  # near identity
    save_generator(tmp / "tiny.pt", WCDGANGenerator(cfg))
    assert build.main(["--ckpt", str(tmp / "tiny.pt"), "--fp16", "--engine", "skip", "-q"]) == 0
    return tmp / "tiny_fp16.onnx"


@pytest.fixture
def stubs(monkeypatch):
    gpu_stubs.install(monkeypatch)
    yield gpu_stubs
    gpu_stubs.reset()


def _trt(fp16_model: Path, cache: Path, **kw):
    from runtime.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(fp16_model, ModelSpec.load(sidecar_path(fp16_model)), (64, 64), 4, cache, False, **kw)


# ---------------------------------------------------------------- TensorRT


def test_tensorrt_runs_from_pinned_buffers_and_caches_the_engine(stubs, fp16_model, tmp_path):
    backend = _trt(fp16_model, tmp_path)
    x = np.random.default_rng(0).random((3, 3, 64, 64), dtype=np.float32)  # a short batch of a max-4 engine
    out = backend.run(x)
    np.testing.assert_allclose(out, x * 0.5 + 0.25, atol=1e-6)
    assert out.dtype == np.float32 and not np.shares_memory(out, backend._h_out)  # a copy, not the pinned buffer
    np.testing.assert_allclose(backend.run(x[:1]), out[:1], atol=1e-6)
    assert len(stubs.LIVE) == 4  # two device buffers + two pinned host buffers, allocated once
    backend.close()
    backend.close()
    assert stubs.LIVE == {} and backend._context is None
    with pytest.raises(RuntimeError, match="closed"):
        backend.run(x)
    again = _trt(fp16_model, tmp_path)  # from the cache: no second build
    assert stubs.STATS["builds"] == 1 and len(list_entries(tmp_path)) == 1
    again.close()


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"device_count_error": 100}, "no CUDA GPU"),  # cudaErrorNoDevice: no usable driver
        ({"device_count": 0}, "no CUDA GPU"),
        ({"set_device_error": 46}, "CUDA runtime error 46"),  # cudaErrorDevicesUnavailable
        ({"parse_error": True}, "could not parse"),
        ({"build_fails": True}, "failed to build"),
        ({"context_none": True}, "out of GPU memory"),
        ({"engine_io": {"output": "logits"}}, "does not match its model's sidecar"),
        ({"engine_io": {"dtype": "float16"}}, "does not match its model's sidecar"),
        ({"engine_io": {"max_shape": [2, 3, 64, 64]}}, r"profile max \(2, 3, 64, 64\), need \(4, 3, 64, 64\)"),
    ],
)
def test_every_tensorrt_setup_failure_is_unavailable_with_its_reason(stubs, fp16_model, tmp_path, fault, message):
    stubs.FAULTS.update(fault)
    with pytest.raises(BackendUnavailable, match=message) as info:
        _trt(fp16_model, tmp_path)
    assert stubs.LIVE == {}  # nothing left allocated
    assert is_out_of_memory(info.value) == (message == "out of GPU memory")


def test_tensorrt_with_block_frees_everything_also_on_an_exception(stubs, fp16_model, tmp_path):
    x = np.zeros((1, 3, 64, 64), np.float32)
    with _trt(fp16_model, tmp_path) as backend:
        backend.run(x)
        assert len(stubs.LIVE) == 4
    assert stubs.LIVE == {} and backend._context is None
    with pytest.raises(KeyError), _trt(fp16_model, tmp_path) as failing:
        assert len(stubs.LIVE) == 4
        raise KeyError("the embedding application fails")
    assert stubs.LIVE == {} and failing._context is None
    failing.close()  # idempotent after the block


def test_out_of_memory_while_loading_a_plan_is_not_taken_for_corruption(stubs, fp16_model, tmp_path, caplog):
    _trt(fp16_model, tmp_path).close()
    stubs.FAULTS["deserialize_oom"] = True
    with pytest.raises(BackendUnavailable, match="out of GPU memory while loading") as info:
        _trt(fp16_model, tmp_path)
    assert is_out_of_memory(info.value) and stubs.STATS["builds"] == 1  # the valid plan was kept
    assert "rebuilding" not in caplog.text


def test_a_foreign_plan_is_rebuilt_with_a_warning(stubs, fp16_model, tmp_path, expect_warning):
    _trt(fp16_model, tmp_path).close()
    [entry] = list_entries(tmp_path)
    plan = Path(entry["path"])
    plan.write_bytes(b"not a plan")
    import hashlib
    import json

    sidecar = plan.with_suffix(".json")
    record = json.loads(sidecar.read_text())
    record["plan_sha256"] = hashlib.sha256(b"not a plan").hexdigest()  # intact file, but TensorRT rejects it
    sidecar.write_text(json.dumps(record))
    with expect_warning("incompatible"):
        _trt(fp16_model, tmp_path).close()
    assert stubs.STATS["builds"] == 2


def test_auto_moves_on_to_onnx_runtime_with_the_reason(stubs, fp16_model, tmp_path):
    stubs.FAULTS["device_count_error"] = 100
    settings = RestoreSettings(cache_dir=tmp_path)
    backend, skipped = select_backend("auto", resolve_models(fp16_model).for_quality(None), (64, 64), 2,
                                      settings)  # fmt: skip
    assert backend.name == "ort-cpu"
    assert str(skipped[0]).startswith("tensorrt unavailable: no CUDA GPU") and skipped[0].installed  # news: said
    assert str(skipped[1]).startswith("ort-cuda unavailable") and not skipped[1].installed  # CPU wheel: quiet


def _stubbed_cli(module: str, argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``module``'s ``main(argv)`` in a fresh interpreter with the stubs installed and a broken CUDA stack."""
    code = (
        "import sys, pytest\n"
        "from tests import gpu_stubs\n"
        "gpu_stubs.install(pytest.MonkeyPatch())\n"
        "gpu_stubs.FAULTS['device_count_error'] = 100\n"
        f"from {module} import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.cli
def test_cli_with_a_broken_gpu_stack_ends_on_the_cpu_saying_why(tmp_path, fp16_model):
    from tests.runtime_fixtures import write_jpeg

    image = write_jpeg(tmp_path / "in.jpg", np.random.default_rng(0).integers(0, 255, (40, 48, 3), np.uint8), 10)
    r = _stubbed_cli("runtime.infer", [str(image), "--model", str(fp16_model), "-o", str(tmp_path / "o.png")])
    assert r.returncode == 0, r.stderr
    assert "backend: ort-cpu" in r.stderr and "tensorrt unavailable: no CUDA GPU" in r.stderr
    assert "Traceback" not in r.stderr and (tmp_path / "o.png").is_file()


@pytest.mark.slow
@pytest.mark.cli
def test_export_engine_auto_with_a_broken_gpu_stack_keeps_the_onnx(tmp_path, fp16_model):
    ckpt = fp16_model.with_name("tiny.pt")
    for engine, code, message in (("auto", 0, "no TensorRT engine was built: no CUDA GPU"),
                                  ("require", 1, "no TensorRT engine can be built")):  # fmt: skip
        out = tmp_path / engine
        r = _stubbed_cli("export.build", ["--ckpt", str(ckpt), "-o", str(out), "--engine", engine])
        assert r.returncode == code, r.stderr
        assert message in r.stdout + r.stderr and "Traceback" not in r.stderr
        assert (out / "tiny.onnx").is_file()


# ---------------------------------------------------------------- ONNX Runtime


def test_bound_device_buffers_give_the_plain_results(tmp_path):
    """The ort-cuda run path (buffers allocated and bound once, short batches padded) on CPU OrtValues."""
    import onnxruntime as ort

    model = resolve_models(tiny_wcdgan(tmp_path / "m.onnx")).for_quality(None)
    plain = ort_backend.OrtBackend(model.file("fp32").onnx, model.spec, (32, 32), 3)
    bound = ort_backend.OrtBackend(model.file("fp32").onnx, model.spec, (32, 32), 3)
    bound._bind_device_buffers(ort, "cpu")
    x = np.random.default_rng(1).random((3, 3, 32, 32), dtype=np.float32)
    for batch in (x, x[:2], x[:1], x):
        np.testing.assert_allclose(bound.run(batch), plain.run(batch), atol=1e-6)
    bound.close()
    with pytest.raises(RuntimeError, match="closed"):
        bound.run(x)


class _FakeOrt:
    """Enough of ``onnxruntime`` to drive OrtBackend's CUDA set-up: records calls, fails on request."""

    def __init__(self, real, strict_fails: bool = False, providers_after: str = "CUDAExecutionProvider") -> None:
        self.real, self.calls = real, []
        self.strict_fails, self.providers_after = strict_fails, providers_after
        self.SessionOptions, self.GraphOptimizationLevel = real.SessionOptions, real.GraphOptimizationLevel
        self.OrtValue = real.OrtValue

    def preload_dlls(self, **kw):
        self.calls.append("preload")

    def get_available_providers(self):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def InferenceSession(self, path, options, providers):
        try:
            strict = options.get_session_config_entry("session.disable_cpu_ep_fallback") == "1"
        except RuntimeError:  # ONNX Runtime raises for a key that was never set
            strict = False
        self.calls.append(("strict" if strict else "fallback", [p if isinstance(p, str) else p[0] for p in providers]))
        if strict and self.strict_fails:
            raise RuntimeError("This session contains graph nodes that are assigned to the default CPU EP, but "
                               "fallback to CPU EP has been explicitly disabled by the user.")  # fmt: skip
        session = self.real.InferenceSession(path, providers=["CPUExecutionProvider"])
        return _ProvidersAs(session, [self.providers_after])


class _ProvidersAs:
    def __init__(self, session, providers) -> None:
        self._session, self._providers = session, providers

    def get_providers(self):
        return self._providers

    def __getattr__(self, name):
        return getattr(self._session, name)


def _cuda_backend(monkeypatch, tmp_path, fake):
    monkeypatch.setattr(ort_backend, "import_onnxruntime", lambda: fake)
    monkeypatch.setattr(ort_backend.OrtBackend, "_bind_device_buffers", lambda self, ort, device: None)
    model = resolve_models(tiny_wcdgan(tmp_path / "m.onnx")).for_quality(None)
    return ort_backend.OrtBackend(model.file("auto", "gpu").onnx, model.spec, (32, 32), 2, device="cuda")


def test_ort_cuda_preloads_libraries_and_proves_every_node_on_the_gpu(monkeypatch, tmp_path):
    import onnxruntime as ort

    fake = _FakeOrt(ort)
    backend = _cuda_backend(monkeypatch, tmp_path, fake)
    assert fake.calls == ["preload", ("strict", ["CUDAExecutionProvider"])]  # CUDA only: the CPU EP is not offered
    assert backend.name == "ort-cuda" and backend.note == ""


def test_ort_cuda_reports_nodes_that_fall_back_to_the_cpu(monkeypatch, tmp_path):
    import onnxruntime as ort

    fake = _FakeOrt(ort, strict_fails=True)
    backend = _cuda_backend(monkeypatch, tmp_path, fake)
    assert fake.calls[1:] == [("strict", ["CUDAExecutionProvider"]),
                              ("fallback", ["CUDAExecutionProvider", "CPUExecutionProvider"])]  # fmt: skip
    assert backend.note.startswith("some nodes run on the CPU (This session contains graph nodes")


def test_ort_cuda_that_silently_became_cpu_is_unavailable(monkeypatch, tmp_path):
    import onnxruntime as ort

    with pytest.raises(BackendUnavailable, match="fell back to CPU"):
        _cuda_backend(monkeypatch, tmp_path, _FakeOrt(ort, providers_after="CPUExecutionProvider"))


def test_missing_onnxruntime_names_the_extra_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails, as when neither wheel is installed
    spec = ModelSpec(name="m", channels=3, color="rgb", precision="fp32")
    with pytest.raises(BackendUnavailable, match=r'pip install -e "[^"]*\[cpu\]"'):
        ort_backend.OrtBackend(tmp_path / "m.onnx", spec, (32, 32), 1)


@pytest.mark.slow
def test_gpu_check_script_rehearses_on_cpu(tmp_path):
    """tools/gpu_check.sh's `run` step minus the wheel: the check runs and reports the missing CUDA provider."""
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    r = subprocess.run(["bash", "tools/gpu_check.sh", "dry"], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "reported the missing CUDA provider" in r.stdout, r.stdout + r.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["checks"]["ort_cuda"]["torch_loaded"] is False
    assert report["checks"]["restorer"]["auto_backend"] in ("ort-cpu", "ort-cuda", "tensorrt")
