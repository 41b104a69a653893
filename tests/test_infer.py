"""The CLI in a subprocess: outputs, exit codes, bad inputs without tracebacks, torch-free imports."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from runtime.infer import plan_files
from tests.conftest import REPO_ROOT, assert_imports_without_torch
from tests.runtime_fixtures import local_net, write_jpeg

RGB = data.astronaut()[:48, :72]


def cli(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "runtime.infer", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd or REPO_ROOT, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return local_net(tmp_path_factory.mktemp("model") / "local.onnx")


def _no_traceback(proc):
    assert "Traceback" not in proc.stderr, proc.stderr


def test_folder_run_continues_past_bad_files(tmp_path, model):
    src = tmp_path / "in"
    src.mkdir()
    write_jpeg(src / "good.jpg", RGB, 10)
    full = write_jpeg(tmp_path / "full.jpg", RGB, 90).read_bytes()
    (src / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (src / "empty.jpg").write_bytes(b"")
    (src / "text.jpg").write_text("hello, not a JPEG")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    proc = cli(src, "-o", tmp_path / "out", "--model", model, "--tile", "32")
    assert proc.returncode == 1
    _no_traceback(proc)
    for name in ("truncated.jpg", "empty.jpg", "text.jpg"):
        assert name in proc.stderr
    assert "3 input(s) failed" in proc.stderr
    assert re.search(r"backend: (ort-cpu|ort-cuda|tensorrt)\n", proc.stderr) and "JPEG q10" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # inputs untouched
    assert cv2.imread(str(tmp_path / "out" / "good.png")).shape == RGB.shape


def test_outputs_next_to_inputs_never_clobbered(tmp_path, model):
    src = write_jpeg(tmp_path / "photo.jpg", RGB, 20)
    proc = cli(src, "--model", model, "-q")
    assert proc.returncode == 0 and proc.stderr == ""  # -q: silent on success
    out = tmp_path / "photo_wcdgan.png"
    assert out.is_file()
    out.write_bytes(b"keep me")
    proc = cli(src, "--model", model)
    assert proc.returncode == 0 and "exists" in proc.stderr and out.read_bytes() == b"keep me"
    proc = cli(tmp_path, "--model", model)  # the folder: photo_wcdgan.png is an earlier output, not an input
    assert proc.returncode == 0 and "photo_wcdgan_wcdgan" not in proc.stderr
    assert not (tmp_path / "photo_wcdgan_wcdgan.png").exists()
    proc = cli(src, "--model", model, "--overwrite")
    assert proc.returncode == 0 and out.read_bytes() != b"keep me"
    png = tmp_path / "p.png"
    cv2.imwrite(str(png), RGB)
    before = png.read_bytes()
    proc = cli(png, "-o", png, "--model", model, "-f")  # output resolves to the input
    assert proc.returncode == 1 and "refusing to overwrite" in proc.stderr and png.read_bytes() == before
    _no_traceback(proc)


def test_overwrite_never_replaces_another_input_of_the_run(tmp_path, model):
    """photo.jpg's output photo.png is the run's other input: -f must refuse it like the input itself."""
    write_jpeg(tmp_path / "photo.jpg", RGB, 20)
    cv2.imwrite(str(tmp_path / "photo.png"), RGB[::-1])
    before = (tmp_path / "photo.png").read_bytes()
    proc = cli(tmp_path, "-o", tmp_path, "--model", model, "-f")
    assert proc.returncode == 1 and proc.stderr.count("is an input; refusing to overwrite it") == 2, proc.stderr
    assert (tmp_path / "photo.png").read_bytes() == before
    _no_traceback(proc)
    inputs = [tmp_path / "a.jpg", tmp_path / "b.png", tmp_path / "c.jpg"]
    plans = plan_files(inputs, [tmp_path / "b.png", tmp_path / "out" / "b.png", tmp_path / "out" / "b.png"], True)
    assert [bool(p.error) for p in plans] == [True, False, True] and "another input's output" in plans[2].error


def test_exif_alpha_gray_sixteen_bit_through_the_cli(tmp_path, model):
    exif_path = tmp_path / "exif.jpg"
    pil = Image.fromarray(RGB)
    exif = pil.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    pil.save(exif_path, exif=exif.tobytes(), quality=90)
    rgba = np.dstack([RGB, np.linspace(0, 255, 48 * 72).reshape(48, 72).astype(np.uint8)])
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba)
    write_jpeg(tmp_path / "gray.jpg", data.camera()[:40, :40], 10)
    cv2.imwrite(str(tmp_path / "deep.png"), (RGB.astype(np.uint16) * 257))
    proc = cli(*(tmp_path / n for n in ("exif.jpg", "alpha.png", "gray.jpg", "deep.png")), "-o", tmp_path / "o",
               "--model", model, "--tile", "32")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    o = tmp_path / "o"
    assert cv2.imread(str(o / "exif.png"), cv2.IMREAD_UNCHANGED).shape == (72, 48, 3)  # upright
    alpha_out = cv2.imread(str(o / "alpha.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(alpha_out[..., 3], rgba[..., 3])  # alpha untouched
    assert cv2.imread(str(o / "gray.png"), cv2.IMREAD_UNCHANGED).shape == (40, 40)
    assert cv2.imread(str(o / "deep.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_usage_and_setup_errors(tmp_path, model):
    src = write_jpeg(tmp_path / "a.jpg", RGB, 50)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        ((src, "--model", model, "-o", blocker / "out.png"), 1, "cannot write"),  # unwritable output
        ((src, "--model", tmp_path / "missing.onnx"), 2, "no such model"),
        ((tmp_path / "nothing*.jpg", "--model", model), 2, "no such file"),
        ((src, "--model", model, "--backend", "ort-cuda"), 2, "ort-cuda unavailable"),
        ((src, "--tile", "abc"), 2, "expected N or HxW"),
    ]
    for args, code, message in cases:
        proc = cli(*args)
        assert proc.returncode == code, (args, proc.stderr)
        assert message in proc.stderr
        _no_traceback(proc)


def test_runtime_imports_without_torch():
    assert_imports_without_torch(
        """
        import runtime, runtime.infer, runtime.restorer, common.tiling, runtime.io, runtime.model_files
        import runtime.jpeg_quality, runtime.backends.select, runtime.backends.onnxruntime
        import runtime.engine_cache, runtime.cache, runtime.backends.tensorrt
        from runtime import Restorer
        """
    )
