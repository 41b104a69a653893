"""The C++ samples (examples/cpp), built with CMake and compared with the Python ``Restorer`` on the same model.

Embedded route (the Python runtime inside a C++ process): bit-identical output. Native route (OpenCV DNN, no
Python): ≥ 50 dB PSNR. Both on the example JPEG and a 2-MP photo; bad inputs come back as errors, not crashes.
Skipped with the reason when CMake, a compiler, OpenCV's or Python's development files or pybind11 are absent
(``.ci/run`` installs them with apt-get). The build folder is kept between runs: an unchanged tree rebuilds in seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from benchmarks.cpp_routes import (
    CppBuildError,
    build_samples,
    embedded_disabled_reason,
    read_rgb,
    sample_photo,
    sample_seconds,
)
from common.metrics import psnr
from common.tiling import axis_tiles, fitted_core, reflect_indices
from export.opencv_compat import write_opencv_variant
from runtime import Restorer
from runtime.model_files import DEFAULT_MODEL
from tests.conftest import REPO_ROOT
from tests.runtime_fixtures import png_declaring

pytestmark = pytest.mark.slow  # exports, trains, builds or runs commands: not in the inner loop

BUILD = REPO_ROOT / "build" / "cpp-tests"
EXAMPLE = REPO_ROOT / "examples" / "astronaut_q10.jpg"
THREADS = "1"  # ONNX Runtime on one thread in Python and C++ alike: the same arithmetic, and the CI's 2 cores


@pytest.fixture(scope="module")
def build():
    """(build folder, why the embedded route is missing or None)."""
    try:
        log = build_samples(BUILD)
    except CppBuildError as e:
        if e.missing:
            pytest.skip(f"C++ samples not built: {e.missing} not found (.ci/run installs cmake g++ libopencv-dev "
                        "pybind11-dev with apt-get)")  # fmt: skip
        raise
    return BUILD, embedded_disabled_reason(log)


@pytest.fixture(scope="module")
def embedded(build):
    folder, reason = build
    if reason:
        pytest.skip(f"embedded C++ route not built: {reason}")
    return folder / "restore_embedded"


@pytest.fixture(scope="module")
def opencv_model(tmp_path_factory):
    """The OpenCV variant of the bundled model (what the native route runs)."""
    return write_opencv_variant(DEFAULT_MODEL, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(folder, {input: the Python Restorer's output}) for the example JPEG and the 2-MP photo, written as a
    lossless PNG so that every decoder reads the same pixels."""
    tmp = tmp_path_factory.mktemp("images")
    photo = tmp / "photo_q10.png"
    cv2.imwrite(str(photo), cv2.cvtColor(sample_photo(), cv2.COLOR_RGB2BGR))
    restorer = Restorer(backend="ort-cpu", threads=int(THREADS))
    return tmp, {path: restorer(read_rgb(path)) for path in (EXAMPLE, photo)}


@pytest.fixture(scope="module")
def reference_fp32(reference):
    """The FP32 graph's output (what the native route runs: OpenCV DNN has no INT8 QDQ path here)."""
    tmp, outputs = reference
    restorer = Restorer(backend="ort-cpu", precision="fp32", threads=int(THREADS))
    return tmp, {path: restorer(read_rgb(path)) for path in outputs}


def _run(args: list, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode >= 0, f"{args[0]} crashed (signal {-proc.returncode}):\n{proc.stderr}"
    return proc


@pytest.mark.slow
def test_embedded_route_is_bit_identical_to_python(embedded, reference):
    tmp, reference = reference
    outs = {path: tmp / f"embedded_{path.stem}.png" for path in reference}
    # Two worker threads, one Restorer each, restoring at the same time: the GIL is released between calls.
    pairs = [x for path, out in outs.items() for x in (path, out)]
    proc = _run([embedded, "--backend", "ort-cpu", "--precision", "auto", "--threads", THREADS, "--jobs", "2", *pairs])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("worker done (backend ort-cpu)") == 2
    for path, out in outs.items():
        assert np.array_equal(read_rgb(out), reference[path]), f"{path.name}: embedded output differs from Python"


@pytest.mark.slow
def test_native_route_matches_python_within_50db(build, opencv_model, reference_fp32):
    tmp, reference = reference_fp32
    outs = {path: tmp / f"native_{path.stem}.png" for path in reference}
    pairs = [x for path, out in outs.items() for x in (path, out)]
    proc = _run([build[0] / "restore_native", opencv_model, "--threads", "2", *pairs])
    assert proc.returncode == 0, proc.stderr
    assert len(sample_seconds(proc.stderr)) == 2
    for path, out in outs.items():
        value = psnr(read_rgb(out), reference[path])
        print(f"native vs Python on {path.name}: {value:.2f} dB")
        assert value >= 50, f"{path.name}: native output only {value:.2f} dB from Python's"


@pytest.mark.parametrize(("core", "overlap", "align"), [(256, 32, 16), (64, 16, 16), (48, 0, 8), (32, 48, 16)])
def test_cpp_tiling_is_common_tiling(build, core, overlap, align):
    """The C++ windows, crops, reflection and fitted cores equal common/tiling.py's, edge cases included."""
    lengths = [1, 2, 3, 7, 16, 17, core - 1, core, core + 1, 2 * core + 5, 1000, 1083, 1917, 4099]
    proc = _run([build[0] / "selftest", "--tiles", core, overlap, align, *lengths])
    assert proc.returncode == 0, proc.stderr
    for length, line in zip(lengths, proc.stdout.splitlines(), strict=True):
        tiles = "".join(f" {t.start} {t.crop_start} {t.crop_end};" for t in axis_tiles(length, core, overlap, align))
        reflected = " ".join(map(str, reflect_indices(-length - 3, 3 * length + 6, length)))
        assert line == f"{length}:{tiles} | {reflected} | {fitted_core(length, core, align)}"


def test_library_contracts(build, opencv_model, tmp_path):
    """Bad Mats, missing models and Python exceptions as C++ exceptions; ROIs, aliasing, two threads."""
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), cv2.imread(str(EXAMPLE))[:100, :120])
    proc = _run([build[0] / "selftest", opencv_model, small])
    print(proc.stdout)
    assert proc.returncode == 0 and "0 failure(s)" in proc.stdout, proc.stdout + proc.stderr
    assert ("embedded: two threads give the same pixels" in proc.stdout) == (build[1] is None)


def test_native_cli_errors(build, opencv_model, tmp_path):
    exe, model = build[0] / "restore_native", opencv_model
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    shutil.copy(model.with_suffix(".json"), garbage.with_suffix(".json"))
    bad_json = tmp_path / "bad_json.onnx"
    shutil.copy(model, bad_json)
    bad_json.with_suffix(".json").write_text('{"format": "wcdgan-onnx", ')
    for model_path, message in (
        (tmp_path / "missing.onnx", "sidecar not found"),
        (DEFAULT_MODEL, "export.opencv_compat"),  # the original graph: OpenCV 4.6 rejects it, the error says why
        (garbage, "OpenCV cannot load this ONNX"),
        (bad_json, "unreadable sidecar"),
    ):
        proc = _run([exe, model_path, EXAMPLE, tmp_path / "out.png"])
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    _corrupt_image_fails_alone([exe, model], tmp_path)


def test_samples_agree_by_default(build, embedded, opencv_model, tmp_path):
    """restore_embedded runs the FP32 graph by default, as restore_native must (OpenCV DNN has no INT8 QDQ path):
    the README's "try both" gives the same picture (the INT8 graph differs by up to 5 levels)."""
    native, default = tmp_path / "native.png", tmp_path / "embedded.png"
    assert _run([build[0] / "restore_native", opencv_model, EXAMPLE, native]).returncode == 0
    assert _run([embedded, EXAMPLE, default]).returncode == 0
    difference = np.abs(read_rgb(native).astype(int) - read_rgb(default)).max()
    print(f"restore_native vs restore_embedded, both by default, on {EXAMPLE.name}: max |difference| {difference}")
    assert difference <= 1


@pytest.mark.parametrize("route", ["native", "embedded"])
def test_cli_refuses_hostile_files(build, opencv_model, tmp_path, route):
    """OUT == IN (by path, through '..', as a hard link), a FIFO input, a pixel bomb and absurd --threads: one
    error line each, the input untouched, no crash, nothing blocking."""
    if route == "embedded" and build[1]:
        pytest.skip(f"embedded C++ route not built: {build[1]}")
    exe = [build[0] / "restore_native", opencv_model] if route == "native" else [build[0] / "restore_embedded"]
    small, link, fifo, bomb = (tmp_path / n for n in ("small.png", "hard.png", "fifo.png", "bomb.png"))
    cv2.imwrite(str(small), cv2.imread(str(EXAMPLE))[:40, :56])
    original = small.read_bytes()
    os.link(small, link)
    os.mkfifo(fifo)
    bomb.write_bytes(png_declaring(20000, 20000))  # 400 MP, over the default 200 MP
    sub = tmp_path / "sub"
    sub.mkdir()
    for pair, message in (
        ([small, small], "is the input"),
        ([small, sub / ".." / "small.png"], "is the input"),
        ([small, link], "is the input"),
        ([fifo, tmp_path / "f.png"], "not a regular file"),
        ([bomb, tmp_path / "b.png"], "declares more pixels than --max-pixels 200000000"),
    ):
        proc = _run([*exe, *pair], timeout=120)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert proc.returncode == 1 and len(errors) == 1 and message in errors[0], proc.stderr
    proc = _run([*exe, "--threads", "100000", small, tmp_path / "t.png"])
    assert proc.returncode == 2 and "--threads must be in 1.." in proc.stderr, proc.stderr
    assert small.read_bytes() == original and not list(tmp_path.glob("[fbt].png"))


def test_embedded_cli_errors(embedded, tmp_path):
    proc = _run([embedded, "--model", tmp_path / "missing.onnx", EXAMPLE, tmp_path / "out.png"])
    assert proc.returncode == 2 and "ModelError: " in proc.stderr and "no such model" in proc.stderr, proc.stderr
    _corrupt_image_fails_alone([embedded, "--backend", "ort-cpu", "--tile", "64"], tmp_path)


def _corrupt_image_fails_alone(command: list, tmp_path) -> None:
    """A corrupt input is reported and fails the run (exit 1) while the good one beside it is still written."""
    corrupt, small = tmp_path / "corrupt.jpg", tmp_path / "small.png"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    cv2.imwrite(str(small), cv2.imread(str(EXAMPLE))[:40, :56])
    proc = _run([*command, corrupt, tmp_path / "a.png", small, tmp_path / "b.png"])
    assert proc.returncode == 1 and "corrupt.jpg: cannot read image" in proc.stderr, proc.stderr
    assert not (tmp_path / "a.png").exists() and cv2.imread(str(tmp_path / "b.png")).shape == (40, 56, 3)
