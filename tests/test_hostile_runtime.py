"""Hostile inputs, round 2 (issue 29): sizes read wherever each format keeps them, models refused at load, names the
file system refuses, non-UTF-8 names, full disks and API arguments that are bools. Each case once broke a promise:
a traceback, a decode of gigabytes, a write where none belongs."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from skimage import data

from runtime import Restorer
from runtime.infer import main as infer_main
from runtime.io import ImageError, read_image
from runtime.model_files import ModelError
from runtime.spec import sidecar_path
from tests.conftest import MODULE_ENV, REPO_ROOT, tiny_model
from tests.runtime_fixtures import LocalNet, write_jpeg

RGB = data.astronaut()[:40, :56]
ENV = MODULE_ENV


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory, "good.onnx", onnx_sha256="")


@pytest.fixture
def jpg(tmp_path) -> Path:
    return write_jpeg(tmp_path / "a.jpg", RGB, 20)


def _noise(h: int, w: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


# -- item 5: the size limit holds for every format ----------------------------------------------------------------


def test_tiff_whose_ifd_is_at_the_end_is_measured(tmp_path):
    path = tmp_path / "end.tif"
    cv2.imwrite(str(path), _noise(300, 300))  # libtiff writes the strips first, the IFD last
    assert struct.unpack("<I", path.read_bytes()[4:8])[0] > 65536
    with pytest.raises(ImageError, match=r"300×300 = 0\.09 MP, over the limit"):
        read_image(path, max_pixels=1000)


def test_jpeg_whose_sof_follows_70kb_of_app_data_is_measured(tmp_path):
    jpeg = cv2.imencode(".jpg", _noise(64, 80))[1].tobytes()
    app = b"\xff\xef" + struct.pack(">H", 35002) + bytes(35000)  # APP15, twice: SOF at ~70 KB
    path = tmp_path / "late_sof.jpg"
    path.write_bytes(jpeg[:2] + app + app + jpeg[2:])
    with pytest.raises(ImageError, match=r"80×64 = 0\.00512 MP, over the limit"):
        read_image(path, max_pixels=1000)
    assert read_image(path).pixels.shape == (64, 80, 3)


def test_jpeg_2000_is_measured(tmp_path):
    path = tmp_path / "a.jp2"
    if not cv2.imwrite(str(path), _noise(64, 64)):
        pytest.skip("this OpenCV build writes no JPEG 2000")
    with pytest.raises(ImageError, match=r"64×64 = 0\.0041 MP, over the limit"):
        read_image(path, max_pixels=1000)


def test_formats_without_a_readable_size_are_refused_before_decoding(tmp_path):
    path = tmp_path / "a.hdr"
    cv2.imwrite(str(path), _noise(32, 32).astype(np.float32) / 255)  # Radiance HDR, RLE-compressed
    with pytest.raises(ImageError, match="size must be readable before decoding"):
        read_image(path)


def test_os2_bmp_is_read_at_its_size(tmp_path):
    """BITMAPCOREHEADER (12 bytes, 16-bit sides): once misread as 1,649,294 MP."""
    rows = _noise(16, 16)
    header = struct.pack("<IHHHH", 12, 16, 16, 1, 24)
    pixels = rows[::-1, :, ::-1].tobytes()  # bottom-up BGR, 48 bytes a row (already 4-aligned)
    path = tmp_path / "os2.bmp"
    path.write_bytes(b"BM" + struct.pack("<IHHI", 14 + 12 + len(pixels), 0, 0, 26) + header + pixels)
    image = read_image(path)
    assert image.pixels.shape == (16, 16, 3) and np.array_equal(image.pixels, rows)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_garbage_after_a_jpeg_is_never_read(tmp_path):
    path = write_jpeg(tmp_path / "tail.jpg", RGB, 30)
    with open(path, "r+b") as f:
        f.truncate(256 << 20)  # 256 MiB of trailing (sparse) garbage after EOI
    code = (
        "import resource, sys; from runtime.io import read_image; "
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; image = read_image(sys.argv[1]); "
        "print(image.pixels.shape, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)"
    )
    r = subprocess.run([sys.executable, "-c", code, str(path)], env=ENV, capture_output=True, text=True, check=True)
    shape, grown_kb = r.stdout.rsplit(")", 1)
    assert shape + ")" == "(40, 56, 3)" and int(grown_kb) < 32 << 10, r.stdout  # ru_maxrss is in KiB


# -- item 6: refused at load, one line, exit 2 --------------------------------------------------------------------


def _sidecar_beside(onnx_path: Path, source: Path, **changes) -> Path:
    spec = json.loads(sidecar_path(source).read_text())
    sidecar_path(onnx_path).write_text(json.dumps({**spec, "name": onnx_path.stem, "onnx_sha256": "", **changes}))
    return onnx_path


def _external_data_outside(model: Path, folder: Path) -> Path:
    """The model with its largest weight stored in ``folder/../secret.bin``."""
    graph = onnx.load(str(model))
    weight = max(graph.graph.initializer, key=lambda t: len(t.raw_data))
    raw = numpy_helper.to_array(weight).tobytes()
    (folder.parent / "secret.bin").write_bytes(raw)
    weight.ClearField("raw_data")
    weight.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "../secret.bin"), ("offset", "0"), ("length", str(len(raw)))):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(folder / "external.onnx"))
    return folder / "external.onnx"


def _fixed_shape(folder: Path) -> Path:
    path = folder / "fixed.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(LocalNet(3).eval(), (torch.rand(1, 3, 64, 64),), str(path), input_names=["input"],
                          output_names=["output"], opset_version=17, dynamo=False)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def bad_models(tmp_path_factory, model) -> dict[str, tuple[Path, str]]:
    """name → (a model that must be refused at load, text its error names)."""
    root = tmp_path_factory.mktemp("bad_models")
    folder = root / "models"
    folder.mkdir()
    good = model.read_bytes()
    cases = {}
    for name, content in (("junk", b"junk"), ("truncated", good[: len(good) // 2]), ("empty", b"")):
        (folder / f"{name}.onnx").write_bytes(content)
        cases[name] = (_sidecar_beside(folder / f"{name}.onnx", model), "not a model ONNX Runtime can load")
    gray = folder / "gray_sidecar.onnx"
    gray.write_bytes(good)
    cases["channels differ from the sidecar"] = (_sidecar_beside(gray, model, channels=1, color="y"), "1")
    cases["fixed-shape graph"] = (_sidecar_beside(_fixed_shape(folder), model), "fixed-shape graph")
    external = _external_data_outside(model, folder)
    cases["external data outside the folder"] = (_sidecar_beside(external, model), "escapes model directory")
    nested = folder / "nested.onnx"
    nested.write_bytes(good)
    sidecar_path(nested).write_text('{"format": "wcdgan-onnx", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    cases["deeply nested sidecar"] = (nested, "nested too deeply")
    for field, value in (("recommended_overlap", "abc"), ("recommended_overlap", 1e9),
                         ("recommended_overlap", 16.5), ("value_range", 5), ("jpeg_qualities", "abc")):  # fmt: skip
        path = folder / f"{field}_{value}.onnx"
        path.write_bytes(good)
        cases[f"{field} {value!r}"] = (_sidecar_beside(path, model, **{field: value}), f"invalid sidecar: {field}")
    return cases


BAD_MODELS = [
    "junk", "truncated", "empty", "channels differ from the sidecar", "fixed-shape graph",
    "external data outside the folder", "deeply nested sidecar", "recommended_overlap 'abc'",
    "recommended_overlap 1000000000.0", "recommended_overlap 16.5", "value_range 5", "jpeg_qualities 'abc'",
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_MODELS)
def test_bad_model_is_a_model_error_at_load(bad_models, case, jpg, tmp_path, capsys):
    path, message = bad_models[case]
    with pytest.raises(ModelError, match=message if message != "1" else "sidecar says 1"):
        Restorer(path)
    assert infer_main([str(jpg), "-o", str(tmp_path / "out"), "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()  # checked before any file


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-pixels", "nan"], "--max-pixels must be a finite number"),
        (["--max-pixels", "inf"], "--max-pixels must be a finite number"),
        (["--suffix", "/x"], "--suffix '/x': must be a plain file-name part"),
        (["--suffix", "a/b"], "must be a plain file-name part"),
        (["-o", "{long}.png"], "File name too long"),
        (["-o", "{deep}"], "File name too long"),
        (["-o", "{loop}"], "Too many levels of symbolic links"),
    ],
)
def test_bad_options_are_one_line_exit_2(jpg, model, tmp_path, capsys, argv, message):
    (tmp_path / "loop").symlink_to("loop")
    fill = {"long": str(tmp_path / ("L" * 300)), "deep": "L/" * 3000, "loop": str(tmp_path / "loop")}
    argv = [a.format(**fill) for a in argv]
    before = sorted(os.listdir(tmp_path))
    assert infer_main([str(jpg), "--model", str(model), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("name", ["{long}.jpg", "{deep}.jpg"])
def test_input_names_the_file_system_refuses(model, tmp_path, capsys, name):
    name = name.format(long="L" * 300, deep="L/" * 3000)
    assert infer_main([str(tmp_path / name), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert "File name too long" in err and err.count("\n") == 1 and "Traceback" not in err  # one input: its reason


def test_full_disk_is_reported_as_what_it_is(model, tmp_path):
    """A write the file system refuses (here the file-size limit; ENOSPC alike) names the OS's reason."""
    src = tmp_path / "noise.png"
    cv2.imwrite(str(src), _noise(64, 64))
    code = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)); from runtime.infer import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", code, str(src), "-o", str(out), "--model", str(model), "-q"],
                       env=ENV, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 1 and "cannot write (File too large)" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not list(out.iterdir())


# -- item 7: names are bytes ---------------------------------------------------------------------------------------


@pytest.mark.cli
def test_non_utf8_names_are_restored_by_the_cli_and_the_api(model, tmp_path):
    src = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.jpg")
    write_jpeg(Path(src), RGB, 20)
    r = subprocess.run([sys.executable, "-m", "runtime.infer", src, "--model", str(model)], cwd=REPO_ROOT,
                       env=ENV, capture_output=True)  # fmt: skip
    assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr
    assert b"caf\xe9_wcdgan.png" in r.stdout  # the name as it is on disk
    assert os.path.isfile(bytes(tmp_path) + b"/caf\xe9_wcdgan.png")
    with Restorer(model) as restorer:
        restorer.restore_file(src, os.fsdecode(bytes(tmp_path) + b"/\xff.png"))
    assert os.path.isfile(bytes(tmp_path) + b"/\xff.png")


# -- item 12 -------------------------------------------------------------------------------------------------------


def test_api_refuses_bools_for_integers(model, jpg, tmp_path):
    with pytest.raises(ValueError, match="overlap must"):
        Restorer(model, overlap=True)
    with Restorer(model) as restorer:
        with pytest.raises(ValueError, match=r"1\.\.100"):
            restorer(RGB, quality=True)
        with pytest.raises(ValueError, match=r"1\.\.100"):
            restorer.restore_file(jpg, tmp_path / "o.png", quality=True)


def test_output_with_a_trailing_slash_is_a_folder(model, jpg, tmp_path):
    assert infer_main([str(jpg), "--model", str(model), "-q", "-o", f"{tmp_path}/new.png/"]) == 0
    assert (tmp_path / "new.png" / "a.png").is_file()


# -- item 8: temporaries of killed writers --------------------------------------------------------------------------


def test_temporary_of_a_sigkilled_writer_goes_at_once_of_a_live_one_never(model, jpg, tmp_path):
    out = tmp_path / "out"
    writer = (
        "import os, signal, sys, time; from common.files import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'partial'); print(tmp, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL) if sys.argv[2] == 'die' else time.sleep(60)\n"
    )

    def start(mode: str) -> tuple[subprocess.Popen, Path]:
        proc = subprocess.Popen([sys.executable, "-c", writer, str(out / "a.png"), mode], env=ENV,
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        return proc, Path(proc.stdout.readline().strip())

    dead, dead_tmp = start("die")
    assert dead.wait(timeout=30) == -signal.SIGKILL and dead_tmp.exists()
    live, live_tmp = start("live")
    try:
        assert infer_main([str(jpg), "-o", str(out), "--model", str(model), "-q"]) == 0
        assert not dead_tmp.exists() and live_tmp.exists() and (out / "a.png").is_file()
    finally:
        live.kill()
        live.wait()


# -- item 6: Ctrl-C while the libraries load -----------------------------------------------------------------------


@pytest.mark.cli
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="waits on /proc/PID/maps (Linux)")
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_while_importing_is_one_line(model, jpg, sig, code):
    """Sent as soon as OpenCV's library is mapped: the runtime package is still importing (ONNX Runtime follows)."""
    proc = subprocess.Popen([sys.executable, "-m", "runtime.infer", str(jpg), "--model", str(model)], cwd=REPO_ROOT,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    maps = Path(f"/proc/{proc.pid}/maps")
    while proc.poll() is None and "cv2" not in maps.read_text(errors="replace"):
        time.sleep(0.002)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code and err.startswith("interrupted") and err.count("\n") == 1, err
    assert not (jpg.parent / "a_wcdgan.png").exists()
