"""ONNX export, FP16 conversion, validation, receptive field, sidecars and the ``export.build`` CLI."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from common.files import sha256_file
from export import build, opencv_compat, validate
from export.int8 import Int8Options
from export.onnx_export import export_onnx
from export.receptive_field import measure, theoretical_radius
from models import GeneratorConfig, WCDGANGenerator, load_generator, save_generator
from runtime.spec import ModelSpec, base_name, exported_name, sidecar_path

pytestmark = pytest.mark.slow  # exports, trains, builds or runs commands: not in the inner loop

ROOT = Path(__file__).resolve().parents[1]
TINY = {"features": 16, "num_blocks": 1, "branch_channels": 8}
NO_TRT = importlib.util.find_spec("tensorrt") is None


def _checkpoint(path: Path, seed: int = 0, meta: dict | None = None, **cfg) -> Path:
    torch.manual_seed(seed)
    save_generator(path, WCDGANGenerator(GeneratorConfig(**{**TINY, **cfg})), meta)
    return path


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny RGB checkpoint built with --fp16: (checkpoint, output folder)."""
    tmp = tmp_path_factory.mktemp("build")
    ckpt = _checkpoint(tmp / "g.pt", meta={"qualities": [10, 20, 30], "iterations": 7})
    out = tmp / "out"
    assert build.main(["--ckpt", str(ckpt), "--fp16", "-o", str(out), "--name", "tiny", "--engine", "skip", "-q"]) == 0
    return ckpt, out


def test_build_writes_checked_graphs_and_sidecars(built) -> None:
    ckpt, out = built
    assert sorted(p.name for p in out.iterdir()) == ["tiny.json", "tiny.onnx", "tiny_fp16.json", "tiny_fp16.onnx"]
    for name, precision in (("tiny", "fp32"), ("tiny_fp16", "fp16")):
        onnx_path = out / f"{name}.onnx"
        onnx.checker.check_model(str(onnx_path), full_check=True)
        spec = ModelSpec.load(sidecar_path(onnx_path))
        assert (spec.name, spec.precision, spec.channels, spec.color) == (name, precision, 3, "rgb")
        assert (spec.input_name, spec.output_name, spec.input_dtype, spec.output_dtype) == (
            "input", "output", "float32", "float32"
        )  # fmt: skip
        assert spec.onnx_sha256 == sha256_file(onnx_path) and spec.checkpoint_sha256 == sha256_file(ckpt)
        assert spec.opset == 17 and spec.model_config["features"] == 16 and spec.jpeg_qualities == [10, 20, 30]
        assert spec.training == {"iterations": 7}
        assert 0 < spec.receptive_field_radius <= spec.recommended_overlap and spec.recommended_overlap % 16 == 0
        fp32 = spec.validation["onnx_fp32_vs_torch"]
        assert fp32["max_abs_error"] <= spec.validation["thresholds"]["fp32_max_abs"]
    fp16 = ModelSpec.load(out / "tiny_fp16.json").validation["fp16_vs_fp32"]
    assert fp16["nonfinite_values"] == 0 and fp16["min_psnr_uint8_db"] >= 40
    graph = onnx.load(str(out / "tiny_fp16.onnx")).graph
    assert {t.data_type for t in graph.initializer} == {onnx.TensorProto.FLOAT16}


def test_dynamic_batch_and_size_match_pytorch(built) -> None:
    ckpt, out = built
    model, _ = load_generator(ckpt)
    session = _session(out / "tiny.onnx")
    for shape in ((1, 3, 40, 56), (2, 3, 72, 33)):
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        got = session.run(None, {"input": x})[0]
        with torch.inference_mode():
            want = model(torch.from_numpy(x)).numpy()
        assert got.shape == shape and np.abs(got - want).max() < 1e-5


def test_fp16_graph_is_close_to_fp32_on_real_jpegs(built) -> None:
    _, out = built
    images = validate.validation_images(3)
    fp32, fp16 = validate.run_onnx([out / "tiny.onnx", out / "tiny_fp16.onnx"], images)
    numbers = validate.compare_fp16(fp32, fp16)
    assert numbers["nonfinite_values"] == 0 and numbers["min_psnr_uint8_db"] > 40
    assert 0 < numbers["max_abs_error"] < 1e-2  # really FP16: not bit-identical, but close


def test_fp16_io_and_fp32_node_block_list(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "g.pt")
    pattern = "*/attention/channel/*"
    args = ["--ckpt", str(ckpt), "--fp16", "--fp16-io", "--fp32-nodes", pattern, "--engine", "skip", "-q"]
    assert build.main(args) == 0
    spec = ModelSpec.load(tmp_path / "g_fp16.json")
    assert spec.input_dtype == spec.output_dtype == "float16"
    assert spec.fp32_nodes and all("/attention/channel/" in n for n in spec.fp32_nodes)
    session = _session(tmp_path / "g_fp16.onnx")
    assert session.get_inputs()[0].type == session.get_outputs()[0].type == "tensor(float16)"
    graph = onnx.load(str(tmp_path / "g_fp16.onnx")).graph
    blocked = [n for n in graph.node if n.name in spec.fp32_nodes and n.op_type == "Conv"]
    fp32_weights = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    assert blocked and all(n.input[1] in fp32_weights for n in blocked)  # blocked convs keep FP32 weights


def test_grey_checkpoint_gives_y_model(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path / "grey.pt", in_channels=1)
    assert build.main(["--ckpt", str(ckpt), "--engine", "skip", "-q"]) == 0
    spec = ModelSpec.load(tmp_path / "grey.json")
    assert (spec.channels, spec.color, spec.jpeg_qualities) == (1, "y", [])
    out = _session(tmp_path / "grey.onnx").run(None, {"input": np.zeros((1, 1, 24, 40), np.float32)})[0]
    assert out.shape == (1, 1, 24, 40)


def test_opencv_variant_is_exact_and_has_no_channel_broadcast(tmp_path: Path, capsys) -> None:
    ckpt = _checkpoint(tmp_path / "g.pt", num_blocks=2)
    assert build.main(["--ckpt", str(ckpt), "--fp16", "--opencv", "--engine", "skip", "-q"]) == 0
    spec = ModelSpec.load(tmp_path / "g_opencv.json")
    check = spec.validation["opencv_compat"]
    assert check["expanded_nodes"] == [f"/blocks/blocks.{i}/attention/Mul_1" for i in range(2)]
    assert check["max_abs_error_vs_source"] == 0.0  # a 1×1 convolution of ones copies exactly
    assert check["source_onnx_sha256"] == ModelSpec.load(tmp_path / "g.json").onnx_sha256
    assert (spec.name, spec.precision) == ("g_opencv", "fp32")
    assert spec.onnx_sha256 == sha256_file(tmp_path / "g_opencv.onnx")
    assert opencv_compat.expand_channel_broadcasts(onnx.load(str(tmp_path / "g_opencv.onnx")))[1] == []
    x = np.random.default_rng(1).random((3, 3, 40, 56), dtype=np.float32)
    a, b = (_session(tmp_path / name).run(None, {"input": x})[0] for name in ("g.onnx", "g_opencv.onnx"))
    assert np.array_equal(a, b)
    # The CLI: the bundled default, and an FP16 graph (OpenCV's DNN module gets FP32) refused with exit 1.
    assert opencv_compat.main([str(ROOT / "runtime/weights/default.onnx"), "-o", str(tmp_path / "cv")]) == 0
    blocks = ModelSpec.load(ROOT / "runtime/weights/default.json").model_config["num_blocks"]  # one per block
    assert f"{blocks} broadcast(s) expanded, max |difference| vs default.onnx 0" in capsys.readouterr().out
    assert opencv_compat.main([str(tmp_path / "g_fp16.onnx")]) == 1
    assert "needs an FP32 graph" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-abs-error", "0"], "tiny.onnx failed validation"),
        (["--fp16", "--min-fp16-psnr", "120"], "tiny_fp16.onnx failed"),
    ],
)
def test_failed_validation_exits_1_and_publishes_nothing(tmp_path: Path, capsys, flags, message) -> None:
    ckpt = _checkpoint(tmp_path / "tiny.pt")
    out = tmp_path / "out"
    assert build.main(["--ckpt", str(ckpt), "-o", str(out), "--engine", "skip", *flags]) == 1
    err = capsys.readouterr().err
    assert message in err and "max_abs_error=" in err  # the numbers are printed
    assert list(out.iterdir()) == []  # nothing half-valid left behind


@pytest.mark.cli
def test_cli_user_errors_exit_2_without_traceback(tmp_path: Path, capsys) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    missing = [sys.executable, "-m", "export.build", "--ckpt", str(tmp_path / "missing.pt")]
    r = subprocess.run(missing, capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 2 and "no such checkpoint" in r.stderr and "Traceback" not in r.stderr, r.stderr

    not_ckpt = tmp_path / "notes.pt"
    not_ckpt.write_text("hello")
    ckpt = _checkpoint(tmp_path / "g.pt")
    assert build.main(["--ckpt", str(not_ckpt)]) == 2
    assert "not a readable PyTorch checkpoint" in capsys.readouterr().err
    assert build.main(["--ckpt", str(ckpt), "--fp16", "--fp32-nodes", "*NoSuchNode*", "--engine", "skip"]) == 2
    assert "match no node" in capsys.readouterr().err
    for args, message in ((["--fp16-io"], "need --fp16"), (["-o", str(not_ckpt)], "is not a folder")):
        with pytest.raises(SystemExit) as exc:
            build.main(["--ckpt", str(ckpt), *args])
        assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "g.onnx").exists()


@pytest.mark.parametrize(
    ("change", "api", "cli"),
    [
        ({"opset": 21}, "opset 21: supported range is 13..20", "--opset 21: supported range is 13..20"),
        ({"fp16_io": True}, "fp16_io and fp32_nodes need fp16", "--fp16-io and --fp32-nodes need --fp16"),
        ({"fp32_nodes": ["*"]}, "fp16_io and fp32_nodes need fp16", "--fp16-io and --fp32-nodes need --fp16"),
        ({"tiles": [8]}, "tiles sizes must be ≥ 16", "--tile sizes must be ≥ 16"),
        ({"max_batch": 0}, "max_batch must be ≥ 1", "--max-batch must be ≥ 1"),
        ({"engine": "always"}, "engine must be auto, require or skip", "--engine must be"),
        ({"name": "../g"}, "name '../g' is not a plain file name", "--name '../g' is not a plain file name"),
        (
            {"int8": Int8Options()},
            "int8 needs training images (calibration DIR",
            "--int8 needs training images (--calib",
        ),
        ({"int8": Int8Options(windows=0)}, "windows must be ≥ 1", "--calib-windows must be ≥ 1"),
    ],
)
def test_build_options_validate_themselves_from_python(tmp_path: Path, change, api, cli) -> None:
    """``build(BuildOptions(...))`` from Python gets the command line's checks: the error names the field, and the
    option when the command line reports it."""
    with pytest.raises(ValueError) as e:  # the message is checked below, against api
        build.BuildOptions(**{"ckpt": tmp_path / "g.pt", "output": tmp_path, "name": "g", **change})
    assert str(e.value).startswith(api), e.value
    assert e.value.for_cli().startswith(cli)
    (tmp_path / "file").write_text("a user's file")
    with pytest.raises(ValueError, match=r"output .*file: exists and is not a folder"):
        build.BuildOptions(ckpt=tmp_path / "g.pt", output=tmp_path / "file", name="g")


@pytest.mark.skipif(not NO_TRT, reason="tensorrt is importable here: the missing-TensorRT path cannot be exercised")
def test_engine_require_without_tensorrt_fails_clearly(tmp_path: Path, capsys) -> None:
    ckpt = _checkpoint(tmp_path / "g.pt")
    assert build.main(["--ckpt", str(ckpt), "--engine", "require", "-q"]) == 1
    assert "no TensorRT engine can be built: tensorrt is not importable" in capsys.readouterr().err
    assert (tmp_path / "g.onnx").exists()  # the ONNX artifacts stay valid
    assert build.main(["--ckpt", str(ckpt), "--engine", "auto"]) == 0
    assert "ONNX artifacts are ready; no TensorRT engine was built" in capsys.readouterr().err


def test_full_size_generator_exports_and_matches(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = WCDGANGenerator(GeneratorConfig()).eval()
    start = time.perf_counter()
    proto = export_onnx(model, tmp_path / "full.onnx", in_channels=3)
    assert time.perf_counter() - start < 30
    assert sum(n.op_type == "Conv" for n in proto.graph.node) == 148  # 2 + 8 × (4 × 3 + 1 + 5) + 2
    x = validate.validation_images(3)[2][:, :, :40, :48]
    got = _session(tmp_path / "full.onnx").run(None, {"input": x})[0]
    with torch.inference_mode():
        want = model(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() < 1e-4


def test_receptive_field_of_tiny_model() -> None:
    cfg = GeneratorConfig(**TINY)
    assert theoretical_radius(cfg) == 2 + 2 + (1 + 2 + 4 + 8 + 2) + 1 + 1
    assert theoretical_radius(GeneratorConfig()) == 142
    assert theoretical_radius(GeneratorConfig(**TINY, trunk="half")) == 2 * (2 + 2 + (1 + 2 + 4 + 8 + 2) + 1 + 1) + 1
    torch.manual_seed(0)
    rf = measure(WCDGANGenerator(cfg))
    r = [rf.radius[k] for k in ("1e-02", "1e-03", "1e-04")]
    assert 2 <= r[0] <= r[1] <= r[2] <= rf.input_size // 2  # lower thresholds reach farther
    assert r[2] <= rf.theoretical_radius  # with the pooled statistics fixed, nothing beyond the convolutions
    assert 2 <= rf.mass_radius <= rf.theoretical_radius and rf.effective_radius == max(r[1], rf.mass_radius)
    assert rf.global_pool_mass > 0  # every pixel of the crop still reaches the centre through the channel attention
    assert (
        rf.recommended_overlap % 16 == 0 and rf.recommended_overlap - 16 < rf.effective_radius <= rf.recommended_overlap
    )


def test_export_is_byte_reproducible(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = WCDGANGenerator(GeneratorConfig(**TINY))
    for name in ("a.onnx", "b.onnx"):
        export_onnx(model, tmp_path / name, in_channels=3)
    assert sha256_file(tmp_path / "a.onnx") == sha256_file(tmp_path / "b.onnx")  # sidecar hashes are stable


def test_model_file_names_follow_one_rule() -> None:
    assert [exported_name("m_q10", p) for p in ("fp32", "fp16", "int8")] == ["m_q10", "m_q10_fp16", "m_q10_int8"]
    assert {base_name(exported_name("m_q10", p)) for p in ("fp32", "fp16", "int8")} == {"m_q10"}
    assert base_name("m-fp16") == base_name("m_fp32") == "m" and base_name("m_fp16x") == "m_fp16x"


def test_missing_onnxruntime_is_one_error_line_and_exit_2(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what `import onnxruntime` meets without the wheel
    assert build.main(["--ckpt", str(tmp_path / "g.pt"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: onnxruntime is not installed") and '[cpu]" (or [gpu]' in err
    assert err.count("\n") == 1 and not list(tmp_path.iterdir())  # no traceback, nothing written
