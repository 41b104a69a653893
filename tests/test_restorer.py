"""The Python API: dtype/shape contract, colour adapters, model resolution, backend choice, OOM fallback."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from skimage import data

import runtime.model_files
import runtime.restorer
from common.metrics import psnr
from runtime import Restorer
from runtime import jpeg_consistency as jc
from runtime.backends.base import BackendUnavailable
from runtime.backends.select import tile_grid
from runtime.io import read_image, write_image
from runtime.model_files import PRECISIONS, PREFERENCE, Model, ModelError, ModelFile, ModelSet, resolve_models
from runtime.spec import ModelSpec
from tests.runtime_fixtures import export_onnx, local_net, tiny_wcdgan, write_jpeg

RGB = data.astronaut()[:70, :90]
GRAY = data.camera()[:70, :90]


@pytest.fixture(scope="module")
def rgb_model(tmp_path_factory):
    return tiny_wcdgan(tmp_path_factory.mktemp("rgb") / "tiny.onnx", recommended_overlap=16)


@pytest.fixture(scope="module")
def y_model(tmp_path_factory):
    return local_net(tmp_path_factory.mktemp("y") / "y.onnx", channels=1)


def test_shapes_and_dtypes_are_preserved(rgb_model):
    restorer = Restorer(rgb_model, backend="ort-cpu", tile=32, batch=2)
    assert restorer.backend_name == "ort-cpu"
    for image in (RGB, GRAY, RGB.astype(np.uint16) * 257, np.zeros((1, 1, 3), np.uint8)):
        out = restorer(image)
        assert out.shape == image.shape and out.dtype == image.dtype
    with pytest.raises(ValueError):
        restorer(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(TypeError):
        restorer(np.zeros((4, 4), np.float32))


def test_out_views_of_a_bgr_buffer_give_the_same_pixels(rgb_model):
    """What the C++ embedding does: RGB views of BGR buffers in and out, no copies."""
    restorer = Restorer(rgb_model, tile=32)
    bgr_in, bgr_out = np.ascontiguousarray(RGB[..., ::-1]), np.zeros_like(RGB)
    assert restorer(bgr_in[..., ::-1], out=bgr_out[..., ::-1]).base is bgr_out
    assert np.array_equal(bgr_out[..., ::-1], restorer(RGB))
    for bad in (np.zeros((70, 90), np.uint8), np.zeros_like(RGB, np.uint16), np.zeros_like(RGB)[::-1].copy()[::2]):
        with pytest.raises(ValueError, match="out must be"):
            restorer(RGB, out=bad)
    with pytest.raises(ValueError, match="overlap"):
        restorer(bgr_in, out=bgr_in)
    readonly = np.zeros_like(RGB)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        restorer(RGB, out=readonly)


def test_gray_image_with_rgb_model_equals_luma_of_rgb_result(rgb_model):
    restorer = Restorer(rgb_model, tile=32)
    gray_out = restorer(GRAY).astype(np.float64)
    rgb_out = restorer(np.repeat(GRAY[..., None], 3, axis=2)).astype(np.float64)
    luma = rgb_out @ np.array([0.299, 0.587, 0.114])
    assert np.abs(gray_out - luma).max() <= 1.5  # both rounded to 8 bit once more


def test_rgb_image_with_y_model_keeps_chroma(y_model):
    out = Restorer(y_model, tile=32)(RGB)
    from common.color import rgb_to_ycbcr

    before, after = rgb_to_ycbcr(RGB), rgb_to_ycbcr(out)
    assert np.abs(after[..., 1:] - before[..., 1:]).mean() < 1.0  # chroma kept (up to RGB rounding)
    assert np.abs(after[..., 0] - before[..., 0]).mean() > 0.05  # luma changed by the model
    with pytest.raises(ValueError, match="8-bit"):
        Restorer(y_model, tile=32)(RGB.astype(np.uint16))


def test_a_16_bit_gray_png_is_restored_by_a_y_model_and_16_bit_colour_refused(y_model, tmp_path):
    """A Y-channel model restores a 16-bit gray PNG into a 16-bit gray PNG; 16-bit colour stays refused (documented:
    a Y model restores 8-bit colour only), with its one line, writing nothing."""
    deep_gray, deep_rgb = tmp_path / "gray.png", tmp_path / "rgb.png"
    write_image(deep_gray, GRAY.astype(np.uint16) * 257)
    write_image(deep_rgb, RGB.astype(np.uint16) * 257)
    with Restorer(y_model, tile=32, threads=1) as restorer:
        restorer.restore_file(deep_gray, tmp_path / "gray_out.png")
        with pytest.raises(ValueError) as caught:
            restorer.restore_file(deep_rgb, tmp_path / "rgb_out.png")
    written = read_image(tmp_path / "gray_out.png").pixels
    assert written.dtype == np.uint16 and written.shape == GRAY.shape
    assert np.abs(written.astype(np.float64) / 257 - GRAY).mean() < 20  # a restoration of this image, not noise
    assert str(caught.value) == "a Y-channel model restores 8-bit colour images only (this one is 16-bit)"
    assert not (tmp_path / "rgb_out.png").exists()


def test_an_output_name_of_255_bytes_is_written_and_256_refused(rgb_model, tmp_path):
    """NAME_MAX (255 bytes) is the longest output file name: it is written; one byte more is refused up front."""
    src = write_jpeg(tmp_path / "a.jpg", RGB, 20)
    longest, over = tmp_path / ("n" * 251 + ".png"), tmp_path / ("n" * 252 + ".png")
    with Restorer(rgb_model, tile=32, threads=1) as restorer:
        assert restorer.restore_file(src, longest, quality=20).output == longest
        with pytest.raises(ValueError) as caught:
            restorer.restore_file(src, over, quality=20)
    assert read_image(longest).pixels.shape == RGB.shape
    assert str(caught.value) == f"{over.name[:40]}…: output file name longer than 255 bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.jpg", longest.name])


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: a read-only one of its own, or (root may write into any mode)
    one on a read-only file system; skips where there is none."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, Path("/proc/sys")):
        if candidate.is_dir() and not os.access(candidate, os.W_OK):
            return candidate
    pytest.skip("no folder this user cannot write into (root, and /proc/sys writable)")


def test_an_unwritable_output_folder_is_refused_before_the_model_runs(rgb_model, tmp_path, monkeypatch):
    """-o into a folder the user cannot write into: one line naming the folder, up front (the model never runs)."""
    src = write_jpeg(tmp_path / "a.jpg", RGB, 20)
    folder = _unwritable_folder(tmp_path)
    out = folder / "a_wcdgan.png"
    with Restorer(rgb_model, tile=32, threads=1) as restorer:
        monkeypatch.setattr(restorer, "_restore", lambda *a: pytest.fail("the model ran before the check"))
        with pytest.raises(ValueError) as caught:
            restorer.restore_file(src, out)
    assert str(caught.value) == f"{out}: cannot write into {folder} (not a writable folder)"
    assert not out.exists()


def test_a_jpeg_decoding_to_16_bit_is_restored_unprojected_and_says_16_bit(rgb_model, tmp_path, monkeypatch):
    """An OpenCV whose libjpeg decodes 12-bit JPEGs gives 16-bit samples: the default mode restores the file without
    the projection, and the result (the command's line: ``not projected: 16-bit``) says why in a word."""
    src = write_jpeg(tmp_path / "a.jpg", RGB, 20)
    decoded = read_image(src)
    deep = dataclasses.replace(decoded, pixels=decoded.pixels.astype(np.uint16) * 257)
    monkeypatch.setattr(runtime.restorer, "read_image", lambda *a: deep)
    with Restorer(rgb_model, tile=32, threads=1) as restorer:
        result = restorer.restore_file(src, tmp_path / "a.png")
    assert (result.unprojected, result.consistent) == ("16-bit", None)
    assert read_image(tmp_path / "a.png").pixels.dtype == np.uint16


def test_missing_default_model_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(runtime.model_files, "DEFAULT_MODEL", tmp_path / "weights" / "default.onnx")
    with pytest.raises(ModelError, match="bundled default model is missing"):
        Restorer()
    with pytest.raises(ModelError, match="no such model"):
        Restorer(tmp_path / "nope.onnx")
    (tmp_path / "lonely.onnx").write_bytes(b"x")
    with pytest.raises(ModelError, match="sidecar not found"):
        Restorer(tmp_path / "lonely.onnx")


def test_per_quality_choice_and_precision_variants(tmp_path):
    local_net(tmp_path / "q10.onnx", jpeg_qualities=[10], seed=1)
    local_net(tmp_path / "q40.onnx", jpeg_qualities=[40], seed=2)
    local_net(tmp_path / "blind.onnx", seed=3, jpeg_qualities=[10, 20, 30, 40, 50], checkpoint_sha256="abc")
    blind = {"jpeg_qualities": [10, 20, 30, 40, 50], "checkpoint_sha256": "abc"}
    local_net(tmp_path / "blind_fp16.onnx", precision="fp16", **blind)
    local_net(tmp_path / "blind_int8.onnx", precision="int8", **blind)
    models = resolve_models(tmp_path)
    assert sorted(m.name for m in models.models) == ["blind", "q10", "q40"]
    assert models.for_quality(12).name == "q10"  # tie with the blind model's 10: the specialist wins
    assert models.for_quality(33).name == "blind" and models.for_quality(41).name == "q40"
    assert models.for_quality(None).name == "blind"  # unknown quality: the blind model
    blind = models.for_quality(None)
    assert blind.file("auto", "gpu").onnx.name == "blind_fp16.onnx"
    assert blind.file("auto", "cpu").onnx.name == "blind_int8.onnx"
    assert blind.file("fp32").onnx.name == "blind.onnx" and blind.name == "blind"
    with pytest.raises(ModelError, match="no int8 file"):
        models.for_quality(12).file("int8")
    assert len(resolve_models(tmp_path / "blind.onnx").models[0].files) == 3  # sibling precisions found

    restorer = Restorer(ModelSet([m for m in models.models if m.name != "blind"]), tile=32)
    path = write_jpeg(tmp_path / "in.jpg", RGB, 12)
    result = restorer.restore_file(path, tmp_path / "out.png")
    assert result.model == "q10" and result.jpeg_quality.quality == 12 and result.backend == restorer.backend_name
    assert restorer.restore_file(path, tmp_path / "o2.png", quality=45).model == "q40"
    with pytest.raises(ValueError, match="refusing to overwrite"):
        restorer.restore_file(path, path)


def test_jpeg_quality_1_to_100_is_accepted_and_chooses_the_nearest_model(tmp_path):
    """quality is 1..100 at both ends, as JPEG's own scale: 100 (a camera's "best") and 1 restore, each with the
    nearest per-quality model, by call, by restore_frames and by restore_file; 0, 101, a bool or a float raise
    ValueError naming the value."""
    local_net(tmp_path / "q10.onnx", jpeg_qualities=[10], seed=1)
    local_net(tmp_path / "q90.onnx", jpeg_qualities=[90], seed=2)
    restorer = Restorer(tmp_path, backend="ort-cpu", tile=32, threads=1)
    best, worst = restorer(RGB, quality=90), restorer(RGB, quality=10)
    assert not np.array_equal(best, worst)
    np.testing.assert_array_equal(restorer(RGB, quality=100), best)
    np.testing.assert_array_equal(restorer(RGB, quality=np.int64(100)), best)
    np.testing.assert_array_equal(restorer(RGB, quality=1), worst)
    for got, expected in zip(restorer.restore_frames([RGB, RGB], [100, 1]), (best, worst), strict=True):
        np.testing.assert_array_equal(got, expected)
    path = write_jpeg(tmp_path / "in.jpg", RGB, 100)
    assert restorer.restore_file(path, tmp_path / "out.png", quality=100).model == "q90"
    assert restorer.restore_file(path, tmp_path / "o1.png", quality=1).model == "q10"
    for bad in (0, 101, -1, True, 100.0):
        message = f"^JPEG quality must be an integer in 1\\.\\.100, got {re.escape(repr(bad))}$"
        with pytest.raises(ValueError, match=message):
            restorer(RGB, quality=bad)
        with pytest.raises(ValueError, match=message):
            restorer.restore_file(path, tmp_path / "x.png", bad)
    assert not (tmp_path / "x.png").exists()


def test_auto_precision_falls_back_to_fp32_before_the_other_device_s_precision(tmp_path):
    """CPU: INT8 > FP32 > FP16 (FP16 is slower than FP32 on CPUs); GPU: FP16 > FP32 > INT8."""
    for other in ("fp16", "int8"):
        folder = tmp_path / other
        folder.mkdir()
        local_net(folder / "m.onnx", checkpoint_sha256="s")
        local_net(folder / f"m_{other}.onnx", precision=other, checkpoint_sha256="s")
        model = resolve_models(folder).models[0]
        chosen = {device: model.file("auto", device).spec.precision for device in ("cpu", "gpu")}
        assert chosen == ({"cpu": "fp32", "gpu": "fp16"} if other == "fp16" else {"cpu": "int8", "gpu": "fp32"})
    assert list(PREFERENCE) == ["gpu", "cpu"] and all(sorted(p) == sorted(PRECISIONS) for p in PREFERENCE.values())


def test_a_named_file_wins_over_its_siblings_and_others_stay_out(tmp_path):
    """Two FP32 exports of one checkpoint: the file asked for is used; another checkpoint's file is not a sibling."""
    local_net(tmp_path / "m.onnx", checkpoint_sha256="s")
    local_net(tmp_path / "m_copy.onnx", checkpoint_sha256="s", seed=1)
    local_net(tmp_path / "other.onnx", checkpoint_sha256="t", seed=2)
    for name in ("m.onnx", "m_copy.onnx"):
        models = resolve_models(tmp_path / name).models
        assert len(models) == 1 and models[0].file("fp32").onnx.name == name


def test_auto_reports_why_gpu_backends_were_skipped(rgb_model):
    restorer = Restorer(rgb_model, tile=32)
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has the CUDA EP")
    assert restorer.backend_name == "ort-cpu"
    assert any(s.startswith("ort-cuda unavailable") for s in restorer.skipped_backends)
    assert any(s.startswith("tensorrt unavailable") for s in restorer.skipped_backends)
    with pytest.raises(BackendUnavailable, match="CUDA"):
        Restorer(rgb_model, backend="ort-cuda", tile=32)


class _FakeBackend:
    """Identity model that runs out of memory like a small GPU: above a batch size or window size while running,
    and above a larger window size already while being built (TensorRT allocates at build and context creation)."""

    name, note, any_window = "fake-gpu", "", False
    live: ClassVar[list] = []  # open backends: the restorer must close one before building the next

    def __init__(self, tile_hw, max_batch, log, max_ok_batch, max_ok_window, max_build_window):
        if tile_hw[0] > max_build_window:
            raise BackendUnavailable("TensorRT could not create an execution context: out of GPU memory")
        assert not _FakeBackend.live, "the previous backend was not closed before building a new one"
        self.tile_hw, self.max_batch, self.log = tile_hw, max_batch, log
        self.max_ok_batch, self.max_ok_window = max_ok_batch, max_ok_window
        _FakeBackend.live.append(self)

    def run(self, batch):
        assert self in _FakeBackend.live
        self.log.append((batch.shape[0], self.tile_hw))
        if batch.shape[0] > self.max_ok_batch:
            raise MemoryError("fake: batch too large")
        if self.tile_hw[0] > self.max_ok_window:
            raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUDNN_STATUS_ALLOC_FAILED")
        return batch.copy()

    def close(self):
        _FakeBackend.live.remove(self)


def test_out_of_memory_shrinks_batch_then_tile_rebuilding_the_backend(monkeypatch):
    calls: list = []
    built: list = []

    def fake_select(kind, model, core, max_batch, settings):
        tile_hw = tile_grid(kind, model, settings, core).window
        built.append((tile_hw, max_batch))
        return _FakeBackend(tile_hw, max_batch, calls, max_ok_batch=1, max_ok_window=100, max_build_window=150), []

    monkeypatch.setattr(runtime.restorer, "select_backend", fake_select)
    monkeypatch.setattr(_FakeBackend, "live", [])
    spec = ModelSpec(name="fake", channels=3, color="rgb", precision="fp32", recommended_overlap=16)
    models = ModelSet([Model("fake", {"fp32": ModelFile(None, spec)})])
    restorer = Restorer(models, tile=112, batch=4, verify=False)  # window 144: builds, but runs out while running
    image = data.astronaut()[:300, :260]
    out = restorer(image)
    np.testing.assert_array_equal(out, image)  # identity model: exact result despite the retries
    assert built[:3] == [((144, 144), 4), ((144, 144), 2), ((144, 144), 1)]  # batch halved, backend rebuilt
    assert [b for b, _ in calls[:3]] == [4, 2, 1]
    assert built[-1][0][0] <= 100 and built[-1][1] == 1  # then the tile core, until the window fits
    assert len(_FakeBackend.live) == 1

    with pytest.raises(BackendUnavailable, match="out of GPU memory"):
        Restorer(models, tile=256, batch=1, verify=False)  # the first build fails: nothing smaller was asked for


def test_out_of_memory_while_building_keeps_shrinking(monkeypatch):
    built: list = []

    def fake_select(kind, model, core, max_batch, settings):
        tile_hw = tile_grid(kind, model, settings, core).window
        built.append(tile_hw[0])
        return _FakeBackend(tile_hw, max_batch, [], max_ok_batch=8, max_ok_window=100, max_build_window=150), []

    monkeypatch.setattr(runtime.restorer, "select_backend", fake_select)
    monkeypatch.setattr(_FakeBackend, "live", [])
    spec = ModelSpec(name="fake", channels=3, color="rgb", precision="fp32", recommended_overlap=16)
    model = Model("fake", {"fp32": ModelFile(None, spec)})
    restorer = Restorer(ModelSet([model]), tile=64, batch=1)  # the self-test runs one window: it fits
    engine = restorer._shrink(model, (256, 256), 1, RuntimeError("CUDA out of memory"))
    assert built == [96, 160, 96] and engine.core == (64, 64)  # core 128 (window 160) fails to build: next step
    with pytest.raises(runtime.restorer.OutOfMemory, match="even with one 64×64 tile"):
        restorer._shrink(model, (64, 64), 1, RuntimeError("CUDA out of memory"))


def test_fp16_graph_with_fp16_io_runs_on_cpu(tmp_path):
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    fp32 = local_net(tmp_path / "m.onnx", checkpoint_sha256="same")
    fp16 = tmp_path / "m_fp16.onnx"
    onnx.save(convert_float_to_float16(onnx.load(fp32), keep_io_types=False), fp16)
    ModelSpec(name="m", channels=3, color="rgb", precision="fp16", input_dtype="float16", output_dtype="float16",
              checkpoint_sha256="same").save(tmp_path / "m_fp16.json")  # fmt: skip
    only_fp16 = ModelSet([Model("m", {"fp16": ModelFile(fp16, ModelSpec.load(tmp_path / "m_fp16.json"))})])
    out16 = Restorer(only_fp16, tile=32)(RGB).astype(int)
    out32 = Restorer(fp32, tile=32)(RGB).astype(int)  # the fp16 sibling exists; CPU still takes FP32
    assert Restorer(fp32, tile=32).models.models[0].files.keys() == {"fp32", "fp16"}
    assert np.abs(out16 - out32).max() <= 2 and np.abs(out16 - RGB).max() > 0


def test_spinning_follows_the_option_and_the_machine_load(rgb_model, monkeypatch):
    from runtime.backends import onnxruntime as ort_backend

    def spins(restorer: Restorer) -> bool:
        options = next(iter(restorer._engines.values())).backend.session.get_session_options()
        return options.get_session_config_entry("session.intra_op.allow_spinning") == "1"

    assert not spins(Restorer(rgb_model, backend="ort-cpu", spin=False))
    monkeypatch.setattr(ort_backend.os, "getloadavg", lambda: (64.0, 1.0, 1.0))  # a busy machine
    assert not ort_backend.spin_default() and not spins(Restorer(rgb_model, backend="ort-cpu"))
    assert spins(Restorer(rgb_model, backend="ort-cpu", spin=True))
    monkeypatch.setattr(ort_backend.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert ort_backend.spin_default() and spins(Restorer(rgb_model, backend="ort-cpu"))
    with pytest.raises(ValueError, match="spin must be"):
        Restorer(rgb_model, spin="yes")


def test_default_cpu_core_follows_the_graph_precision_and_the_self_test_stays_small(monkeypatch, tmp_path):
    """The bundled model on the CPU: its INT8 graph gets the larger default core (a quarter of FP32's activation
    bytes), FP32 the smaller; fixed-window backends keep the engines' 256. The load-time self-test runs one small
    window whatever the core, and the CPU session runs without ONNX Runtime's memory pattern."""
    from runtime.backends.select import CPU_CORE, default_tile

    windows = []
    real_self_test = runtime.restorer.self_test
    monkeypatch.setattr(
        runtime.restorer,
        "self_test",
        lambda model, backend, window: (windows.append(window), real_self_test(model, backend, window))[1],
    )
    int8 = Restorer(backend="ort-cpu", cache_dir=tmp_path)  # an empty cache: no record of an earlier self-test
    fp32 = Restorer(backend="ort-cpu", precision="fp32", cache_dir=tmp_path)
    (int8_engine,), (fp32_engine,) = int8._engines.values(), fp32._engines.values()
    assert int8_engine.backend.spec.precision == "int8" and int8_engine.core == (CPU_CORE["int8"],) * 2 == (1024, 1024)
    assert fp32_engine.backend.spec.precision == "fp32" and fp32_engine.core == (512, 512)
    assert windows == [(runtime.restorer.SELF_TEST_WINDOW,) * 2] * 2
    assert not int8_engine.backend.session.get_session_options().enable_mem_pattern
    model = int8.models.for_quality(None)
    assert default_tile("tensorrt", model) == default_tile("triton", model, "int8") == 256
    assert Restorer(backend="ort-cpu", tile=300)._engines.popitem()[1].core == (304, 304)  # asked for: rounded up


def test_restore_frames_batches_tiles_across_frames_bit_identically(rgb_model, tmp_path):
    """A window of frames: the results of per-frame calls, bit for bit, in fewer (fuller) backend calls."""
    frames = [np.ascontiguousarray(np.roll(RGB, 7 * i, axis=1)) for i in range(3)]
    with Restorer(rgb_model, backend="ort-cpu", tile=32, batch=4, threads=1) as restorer:
        backend = next(iter(restorer._engines.values())).backend
        run, calls = backend.run, []
        backend.run = lambda batch: (calls.append(len(batch)), run(batch))[1]
        expected = [restorer(frame) for frame in frames]
        per_frame, calls[:] = list(calls), []
        got = restorer.restore_frames(frames)
        assert sum(calls) == sum(per_frame) == 27 and calls == [4] * 6 + [3]  # 9 tiles a frame: 4+4+1 each alone
        for out, want in zip(got, expected, strict=True):
            np.testing.assert_array_equal(out, want)
        deep = [frame.astype(np.uint16) * 257 for frame in frames[:2]]
        for out, frame in zip(restorer.restore_frames(deep), deep, strict=True):
            np.testing.assert_array_equal(out, restorer(frame))
        assert restorer.restore_frames([]) == []
        with pytest.raises(ValueError, match="differ in shape"):
            restorer.restore_frames([RGB, GRAY])
        with pytest.raises(ValueError, match="2 frames and 1 qualities"):
            restorer.restore_frames(frames[:2], [10])
    folder = tmp_path / "models"  # per-quality models: each frame gets its own, the lighter strength applies to all
    folder.mkdir()
    local_net(folder / "q10.onnx", seed=0, jpeg_qualities=[10])
    local_net(folder / "q40.onnx", seed=1, jpeg_qualities=[40])
    qualities = [10, 40, None]
    with Restorer(folder, tile=32, batch=2, threads=1, strength=0.6) as restorer:
        got = restorer.restore_frames(frames, qualities)
        for out, frame, quality in zip(got, frames, qualities, strict=True):
            np.testing.assert_array_equal(out, restorer(frame, quality))
        assert not np.array_equal(got[0], restorer(frames[0], 40))  # the models differ: the choice is visible


def test_strength_blends_the_restoration_with_the_input_and_zero_is_refused(rgb_model, tmp_path):
    """``Restorer(strength=0.5)(jpeg)`` is half-way, per pixel, between the decoded JPEG and the full restoration
    (rounded half to even); a strength outside (0, 1] is refused when the Restorer is built, naming the field."""
    jpeg = read_image(write_jpeg(tmp_path / "a.jpg", RGB, 10)).pixels
    with Restorer(rgb_model, tile=32, threads=1) as restorer:
        full = restorer(jpeg)
    with Restorer(rgb_model, tile=32, threads=1, strength=0.5) as restorer:
        half = restorer(jpeg)
        deep = restorer(jpeg.astype(np.uint16) * 257)
    np.testing.assert_array_equal(half, np.rint((jpeg.astype(np.float64) + full) / 2))
    assert not np.array_equal(half, full) and not np.array_equal(half, jpeg)
    assert np.abs(deep.astype(np.float64) / 257 - half).max() <= 1  # 16-bit inputs get the same touch
    for strength in (0, -0.5, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match=r"^strength must be a number in \(0, 1\], got "):
            Restorer(rgb_model, tile=32, strength=strength)


def test_a_passed_self_test_is_recorded_per_graph_bytes_and_machine(tmp_path, monkeypatch):
    """The load-time self-test runs once per model file on a machine (issue 34: a one-image process should not pay
    for it every time): a second Restorer with the same cache skips it; the same file name with other bytes (a
    retrained model) is tested again, and so is every load from another cache; a failed test is never recorded."""
    model = local_net(tmp_path / "net.onnx")
    calls = []
    real_self_test = runtime.restorer.self_test
    monkeypatch.setattr(runtime.restorer, "self_test", lambda *a: (calls.append(a[2]), real_self_test(*a))[1])
    cache = tmp_path / "cache"
    Restorer(model, backend="ort-cpu", tile=32, cache_dir=cache)
    Restorer(model, backend="ort-cpu", tile=32, cache_dir=cache)
    assert len(calls) == 1
    local_net(model, seed=1)  # the same name, other weights
    Restorer(model, backend="ort-cpu", tile=32, cache_dir=cache)
    Restorer(model, backend="ort-cpu", tile=32, cache_dir=cache)
    assert len(calls) == 2
    Restorer(model, backend="ort-cpu", tile=32, cache_dir=tmp_path / "other")
    assert len(calls) == 3

    def failing(*args):
        calls.append("failed")
        raise ModelError("fails its self-test (planted)")

    monkeypatch.setattr(runtime.restorer, "self_test", failing)
    for _ in range(2):
        with pytest.raises(ModelError, match="planted"):
            Restorer(model, backend="ort-cpu", tile=32, cache_dir=tmp_path / "third")
    assert calls[3:] == ["failed", "failed"]


def test_a_strength_just_below_one_is_a_blend_not_the_full_restoration(rgb_model, tmp_path):
    """``strength=0.995`` on a 16-bit PNG (where 0.5 % of a restoration's change is whole levels): the file written
    is 0.995 · restored + 0.005 · input per sample, rounded — not the full restoration's file."""
    deep = read_image(write_jpeg(tmp_path / "a.jpg", RGB, 10)).pixels.astype(np.uint16) * 257
    write_image(tmp_path / "a.png", deep)
    with Restorer(rgb_model, tile=32, threads=1) as restorer:
        restorer.restore_file(tmp_path / "a.png", tmp_path / "full.png")
    with Restorer(rgb_model, tile=32, threads=1, strength=0.995) as restorer:
        restorer.restore_file(tmp_path / "a.png", tmp_path / "light.png")
    full, light = (read_image(tmp_path / name).pixels for name in ("full.png", "light.png"))
    assert light.dtype == np.uint16 and not np.array_equal(light, full)
    assert np.abs(light - (0.995 * full.astype(np.float64) + 0.005 * deep)).max() <= 0.5 + 1e-6  # rounding


class _NonFiniteOnWhiteAndBlack(torch.nn.Module):
    """The identity, nudged, but NaN where a sample is white (the root of a negative) and -Inf where it is black
    (log 0): the load-time self-test's smooth image (0.2-0.8) comes out finite, a photo's highlights do not."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1e-3 * (torch.sqrt(0.98 - x) + torch.log(x))


@pytest.mark.parametrize("patch", [255, 0], ids=["NaN", "Inf"])
def test_a_model_giving_nan_or_inf_in_part_of_a_tile_is_refused_and_nothing_is_written(tmp_path, patch):
    """A model whose output is not finite in a 4×4 patch, part of a tile (the rest finite, other tiles batched with
    it), raises ModelError naming the model and 'produced NaN/Inf', from the call and from restore_file, which
    writes no output and leaves no temporary."""
    (tmp_path / "model").mkdir()
    model = export_onnx(_NonFiniteOnWhiteAndBlack(), tmp_path / "model" / "wild.onnx", 3)
    image = np.clip(RGB, 1, 254)  # finite everywhere but the patch
    image[40:44, 50:54] = patch
    write_image(tmp_path / "in.png", image)
    message = r"^model wild produced NaN/Inf on this image \(ort-cpu\)$"
    with Restorer(model, backend="ort-cpu", tile=32, batch=2, cache_dir=tmp_path / "cache") as restorer:
        assert restorer(np.clip(RGB, 1, 254)).shape == RGB.shape  # without the patch: restored
        with pytest.raises(ModelError, match=message):
            restorer(image)
        with pytest.raises(ModelError, match=message):
            restorer.restore_file(tmp_path / "in.png", tmp_path / "out.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "in.png", "model"]


def _exif_jpeg(path: Path, stored: np.ndarray, orientation: int | None, quality: int = 20) -> Path:
    """A JPEG of ``stored`` (the pixels as the camera stored them) whose EXIF says to show it at ``orientation``
    (None: no EXIF); the same coefficients whatever the orientation."""
    exif = Image.new("RGB", (1, 1)).getexif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.fromarray(stored).save(path, quality=quality, exif=exif.tobytes())
    return path


@pytest.mark.parametrize(("orientation", "turns"), [(3, 2), (6, -1), (8, 1)])  # np.rot90 turns that show it upright
def test_consistent_mode_writes_a_rotated_jpeg_upright_and_true_to_the_file_s_own_blocks(
    rgb_model, tmp_path, orientation, turns
):
    """The default (JPEG-consistent) restore_file of a JPEG with EXIF orientation 3, 6 or 8 writes the upright
    image, and that image, turned back as the file stores it, quantises to the file's own DCT coefficients (read
    without the EXIF turn), as the restoration without the projection does not; the share it reports is that one."""
    path = _exif_jpeg(tmp_path / "turned.jpg", RGB, orientation)
    upright = read_image(path).pixels
    as_stored = read_image(_exif_jpeg(tmp_path / "plain.jpg", RGB, None)).pixels  # the same file without the tag
    np.testing.assert_array_equal(upright, np.rot90(as_stored, turns))
    file_blocks = jc.read_coefficients(path)  # orientation 1: the blocks as the file stores them

    def share_as_stored(out: Path) -> float:
        written = read_image(out).pixels
        assert written.shape == upright.shape  # upright: 90×70 for orientations 6 and 8
        return jc.consistent_share(np.ascontiguousarray(np.rot90(written, -turns)), file_blocks)

    with Restorer(rgb_model, tile=32, threads=1) as restorer:
        result = restorer.restore_file(path, tmp_path / "consistent.png")
    with Restorer(rgb_model, tile=32, threads=1, consistent=False) as restorer:
        restorer.restore_file(path, tmp_path / "free.png")
    share = share_as_stored(tmp_path / "consistent.png")
    assert share >= 0.999 > share_as_stored(tmp_path / "free.png")  # the projection did it, not the model
    assert result.consistent == pytest.approx(share)
    assert psnr(read_image(tmp_path / "consistent.png").pixels, upright) > 30  # the picture, not a scramble of it


class _Nudged(torch.nn.Module):
    """The identity plus a constant: ``levels`` levels of a ``scale``-level image (a fraction of one, say)."""

    def __init__(self, levels: float, scale: int) -> None:
        super().__init__()
        self.shift = levels / scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shift


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize(("levels", "rounded"), [(0, 0), (0.7, 1), (-0.3, 0), (0.4, 0), (-0.6, -1)])
def test_the_model_output_is_rounded_to_the_nearest_level(tmp_path, dtype, levels, rounded):
    """A model returning its input plus ``levels`` of a level writes, for 8- and 16-bit PNGs (colour and gray,
    every level from black to white), each sample moved to the nearest level (clipped at black and white): the
    identity gives the input back exactly; +0.7 of a level one level up, -0.3 none (not one darker)."""
    top = np.iinfo(dtype).max
    model = export_onnx(_Nudged(levels, top), tmp_path / "nudged.onnx", 3)
    rng = np.random.default_rng(5)
    colour = rng.integers(0, top, (40, 50, 3), dtype=dtype, endpoint=True)
    colour[0, :2] = [[0, 0, 0], [top, top, top]]  # black and white, whatever the draw
    with Restorer(model, backend="ort-cpu", tile=32, threads=1, consistent=False, verify=False) as restorer:
        for name, image in {"colour": colour, "gray": colour[..., 1]}.items():
            write_image(tmp_path / f"{name}.png", image)
            restorer.restore_file(tmp_path / f"{name}.png", tmp_path / f"{name}_out.png")
            written = read_image(tmp_path / f"{name}_out.png").pixels
            expected = np.clip(image.astype(np.int64) + rounded, 0, top).astype(dtype)
            np.testing.assert_array_equal(written, expected, err_msg=name)
