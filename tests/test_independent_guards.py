"""Second, independent guards for facts a realistic one-line bug could break unnoticed (issue: test strength).

Each test checks a fact against a reference that is not the code under test: MATLAB's published conversion values,
JPEG files made by another encoder with chosen tables, arrays of known PSNR, files on disk after an injected failure,
exact identity models."""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import runtime.restorer
from common.color import rgb_to_y
from common.files import atomic_path, sha256_file
from common.tiling import TileGrid
from export import validate
from models.wcdgan import GeneratorConfig, WCDGANGenerator
from runtime import Restorer
from runtime.backends.select import tile_grid
from runtime.engine_cache import EngineCache, EngineKey
from runtime.jpeg_quality import estimate_quality, ijg_table, read_quant_tables
from tests.runtime_fixtures import export_onnx
from train.data import QualitySampler


def test_bt601_luma_matches_matlab_rgb2ycbcr():
    # MATLAB: rgb2ycbcr(uint8([255 0 0; 0 255 0; 0 0 255; 255 255 255; 0 0 0; 100 150 200])) → Y column
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0], [100, 150, 200]]], np.uint8)
    assert rgb_to_y(rgb).tolist() == [[81, 145, 41, 235, 16, 137]]


def test_tile_windows_start_on_the_jpeg_mcu_grid_by_default():
    grid = TileGrid.create(500, 700, 40, 10)
    assert grid.align == 16 and grid.core == (48, 48) and grid.overlap == 16 and grid.window == (80, 80)
    assert all(t.y.start % 16 == 0 and t.x.start % 16 == 0 for t in grid)


class _Recorder:
    name, note, max_batch, any_window = "recorder", "", 1, False

    def __init__(self, tile_hw):
        self.tile_hw = tile_hw

    def run(self, batch):
        return batch.copy()

    def close(self):
        pass


def test_restorer_default_grid_is_the_mcu_grid(monkeypatch, tmp_path):
    from runtime.model_files import Model, ModelFile, ModelSet
    from runtime.spec import ModelSpec

    seen = []
    monkeypatch.setattr(
        runtime.restorer,
        "select_backend",
        lambda kind, m, core, b, settings: (
            seen.append(hw := tile_grid(kind, m, settings, core).window) or _Recorder(hw),
            [],
        ),
    )
    spec = ModelSpec(name="m", channels=3, color="rgb", precision="fp32", recommended_overlap=10)
    Restorer(ModelSet([Model("m", {"fp32": ModelFile(None, spec)})]), tile=40, verify=False)
    assert seen == [(80, 80)]  # core 40 → 48 and overlap 10 → 16 on the 16-px grid


def _key(**changes) -> EngineKey:
    fields = dict(model_name="m", onnx_sha256="a" * 64, precision="fp16", input_dtype="float32",
                  output_dtype="float32", profiles=(("input", (1, 3, 64, 64), (4, 3, 64, 64), (4, 3, 64, 64)),),
                  trt_version="10.9", gpu_name="NVIDIA H100", compute_capability="9.0")  # fmt: skip
    return EngineKey(**(fields | changes))


def test_engine_cache_entries_are_per_gpu_but_shared_across_trt_versions():
    assert _key().slot() != _key(gpu_name="NVIDIA L4").slot()
    assert _key().slot() != _key(compute_capability="8.9").slot()
    assert _key().slot() == _key(trt_version="11.0").slot()  # same slot: a newer TensorRT replaces the old plan


def test_engine_key_records_the_gpu_tensorrt_and_compute_capability(monkeypatch, tmp_path):
    from runtime.backends import tensorrt as backend
    from runtime.spec import ModelSpec
    from tests import gpu_stubs

    gpu_stubs.install(monkeypatch)
    trt, cudart = backend._import_trt()
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"graph")
    spec = ModelSpec(name="m", channels=3, color="rgb", precision="fp16", onnx_sha256="recorded at export")
    key = backend.engine_key(trt, cudart, onnx, spec, (64, 64), 4)
    assert (key.gpu_name, key.compute_capability, key.trt_version) == ("Fake GPU", "9.0", "11.0.0-stub")
    assert key.profiles[0][3] == (4, 3, 64, 64)
    assert key.onnx_sha256 == sha256_file(onnx)  # the file itself: a replaced graph never reuses an engine


def test_a_plan_write_that_fails_midway_leaves_no_plan(monkeypatch, tmp_path):
    cache = EngineCache(lambda path, key: b"plan bytes", lambda plan: plan, tmp_path)

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        cache.get(tmp_path / "m.onnx", _key())
    assert not list(tmp_path.glob("*.plan")) and not list(tmp_path.glob(".*tmp*"))


def test_atomic_path_removes_the_temporary_on_failure(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.png") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_fp16_gate_judges_the_worst_image():
    rng = np.random.default_rng(0)
    clean = [rng.random((1, 3, 64, 64)) for _ in range(2)]
    # additive noise of std σ (in 8-bit units) → PSNR ≈ 20·log10(255/σ): 8 → ~30 dB, 0.25 → ~60 dB
    noisy = [c + rng.normal(0, s / 255, c.shape) for c, s in zip(clean, (8.0, 0.25), strict=True)]
    numbers = validate.compare_fp16(clean, noisy)
    assert 28 < numbers["min_psnr_uint8_db"] < 32 and numbers["mean_psnr_uint8_db"] > 40
    with pytest.raises(validate.ValidationError, match="min PSNR"):
        validate.check("fp16", numbers, validate.Thresholds())


def test_quality_estimate_needs_both_tables_to_match_for_exact():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", qtables=[list(ijg_table(50)), [7] * 64])  # libjpeg's q50 luma, a custom chroma
    buffer.seek(0)
    tables = read_quant_tables(buffer)
    np.testing.assert_array_equal(tables[0], ijg_table(50))
    assert not estimate_quality(tables).exact


def test_quality_sampling_follows_its_weights():
    rng = np.random.default_rng(0)
    draws = [QualitySampler([10, 20], weights=[3, 1])(rng) for _ in range(4000)]
    assert 0.72 < draws.count(10) / len(draws) < 0.78


def test_channel_attention_reduces_by_four():
    hidden = WCDGANGenerator(GeneratorConfig()).blocks[0].attention.channel[1]
    assert (hidden.in_channels, hidden.out_channels) == (64, 16)


class _Identity(nn.Module):
    def forward(self, x):
        return x * 1.0


class _ChannelConstants(nn.Module):
    """Ignores its input: channel c becomes the constant (0.2, 0.5, 0.8)[c]."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("values", torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1))

    def forward(self, x):
        return x * 0.0 + self.values


@pytest.fixture(scope="module")
def identity(tmp_path_factory) -> Path:
    return export_onnx(_Identity(), tmp_path_factory.mktemp("id") / "identity.onnx", 3)


def test_uint16_and_alpha_round_trip_exactly_through_an_identity_model(identity, tmp_path):
    restorer = Restorer(identity, backend="ort-cpu", tile=32)
    deep = np.random.default_rng(0).integers(0, 65536, (40, 56, 3)).astype(np.uint16)
    np.testing.assert_array_equal(restorer(deep), deep)  # scaled by 65535 both ways, not 255
    rgba = np.dstack([np.full((20, 30, 3), 90, np.uint8), np.arange(600, dtype=np.uint8).reshape(20, 30)])
    cv2.imwrite(str(tmp_path / "in.png"), rgba)
    restorer.restore_file(tmp_path / "in.png", tmp_path / "out.png")
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED), rgba)


def test_gray_input_to_an_rgb_model_takes_bt601_luma_of_the_output(tmp_path):
    model = export_onnx(_ChannelConstants(), tmp_path / "const.onnx", 3)
    out = Restorer(model, backend="ort-cpu", tile=32, verify=False)(np.zeros((20, 20), np.uint8))
    assert np.all(out == round(255 * (0.299 * 0.2 + 0.587 * 0.5 + 0.114 * 0.8)))  # 113; reversed weights give 142


def test_ycbcr_round_trip_is_exact_on_8_bit_rgb():
    from common.color import rgb_to_ycbcr, ycbcr_to_rgb

    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    np.testing.assert_array_equal(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb)  # rounding, not flooring, undoes the matrix


def test_self_test_rejects_a_model_that_ignores_its_input(tmp_path):
    from runtime.model_files import ModelError

    model = export_onnx(_ChannelConstants(), tmp_path / "const.onnx", 3)
    with pytest.raises(ModelError, match="far from its input"):
        Restorer(model, backend="ort-cpu", tile=32)
