"""The half-resolution trunk through every consumer: export (FP32, FP16, INT8), the runtime CLI and its tiling.

The variant keeps the ONNX contract (RGB in [0, 1] in, same out, any size), so the consumers run it unchanged;
these tests prove it on a small half-trunk model whose residual is not zero (as after training).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import skimage.data
import torch

from export import build
from models import GeneratorConfig, WCDGANGenerator, load_generator, save_generator
from runtime.spec import ModelSpec
from tests.runtime_fixtures import calibration_folders, write_jpeg

pytestmark = pytest.mark.slow  # exports, trains, builds or runs commands: not in the inner loop

ROOT = Path(__file__).resolve().parents[1]
HALF = GeneratorConfig(features=16, num_blocks=2, branch_channels=8, trunk="half", skip_around_attention=True)


@pytest.fixture(scope="module")
def half_build(tmp_path_factory) -> dict[str, Path]:
    """A half-trunk checkpoint with a small non-zero residual, built to FP32, FP16 and INT8 graphs."""
    tmp = tmp_path_factory.mktemp("half")
    torch.manual_seed(0)
    g = WCDGANGenerator(HALF)
    torch.nn.init.normal_(g.reconstruct[-1].weight, std=0.01)
    ckpt = tmp / "half.pt"
    save_generator(ckpt, g, {"qualities": [10]})
    calib, gate = calibration_folders(tmp)
    out = tmp / "out"
    argv = ["--ckpt", str(ckpt), "-o", str(out), "--name", "half", "--engine", "skip", "-q", "--fp16", "--int8"]
    assert build.main([*argv, "--calib", str(calib), "--gate-data", str(gate), "--gate-quality", "10"]) == 0
    return {"tmp": tmp, "ckpt": ckpt, "out": out}


def test_every_precision_is_built_and_describes_the_trunk(half_build) -> None:
    out = half_build["out"]
    assert sorted(p.name for p in out.glob("*.onnx")) == ["half.onnx", "half_fp16.onnx", "half_int8.onnx"]
    for name in ("half", "half_fp16", "half_int8"):
        spec = ModelSpec.load(out / f"{name}.json")
        assert spec.model_config["trunk"] == "half" and spec.model_config["skip_around_attention"] is True
        assert spec.channels == 3 and spec.recommended_overlap % 16 == 0


@pytest.mark.parametrize("hw", [(48, 64), (33, 47), (1, 1)])
def test_graph_takes_any_size_and_matches_pytorch(half_build, hw) -> None:
    model, _ = load_generator(half_build["ckpt"])
    x = np.random.default_rng(1).random((2, 3, *hw), dtype=np.float32)
    session = ort.InferenceSession(str(half_build["out"] / "half.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x})[0]
    with torch.inference_mode():
        want = model(torch.from_numpy(x)).numpy()
    assert got.shape == x.shape and np.abs(got - want).max() < 1e-5


@pytest.mark.cli
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_runtime_cli_restores_a_jpeg_like_pytorch(half_build, precision) -> None:
    """``runtime.infer`` with small tiles (many windows, odd image size) gives PyTorch's whole-image result away from
    the image border (there the runtime reflects the image, PyTorch's convolutions pad zeros)."""
    tmp = half_build["tmp"]
    rgb = skimage.data.astronaut()[100:301, 150:373]  # 201 × 223: odd on both axes
    src = write_jpeg(tmp / f"in_{precision}.jpg", rgb, 10)
    dst = tmp / f"restored_{precision}.png"
    cmd = [sys.executable, "-m", "runtime.infer", str(src), "-o", str(dst), "--model", str(half_build["out"])]
    cmd += ["--backend", "ort-cpu", "--precision", precision, "--tile", "64", "--no-consistent"]  # the graph alone
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert precision in run.stdout
    restored = cv2.cvtColor(cv2.imread(str(dst)), cv2.COLOR_BGR2RGB).astype(np.float64)
    jpeg = cv2.cvtColor(cv2.imread(str(src)), cv2.COLOR_BGR2RGB)
    model, _ = load_generator(half_build["ckpt"])
    with torch.inference_mode():
        x = torch.from_numpy(jpeg).permute(2, 0, 1)[None].float() / 255
        want = (model(x)[0].permute(1, 2, 0).clamp(0, 1) * 255).round().numpy()
    inner = (slice(32, -32), slice(32, -32))
    diff = np.abs(restored - want)[inner]
    assert restored.shape == want.shape and diff.mean() < (0.01 if precision == "fp32" else 1.0), diff.mean()
    assert np.abs(want - jpeg)[inner].mean() > 3 * diff.mean()  # the model changes the image more than INT8 does
