"""A sweep of unusual and hostile inputs, as a new user would try them: every case must end with its expected exit
code, no traceback (an exception escaping ``main`` fails the case), no leftover temporary files, and its inputs
byte-for-byte unchanged. The table is the contract; add a row for every new way of breaking things."""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from torch import nn

from runtime import Restorer
from runtime.cache import main as cache_main
from runtime.infer import main as infer_main
from runtime.io import read_image
from runtime.model_files import ModelError
from tests.runtime_fixtures import export_onnx, local_net, png_declaring, write_jpeg

REPO = Path(__file__).resolve().parents[1]
RGB = data.astronaut()[:40, :56]
LONG = "L" * 240  # a legal name whose temporary (+14 bytes) used to be too long
TOO_LONG = "L" * 248  # its output name (+ "_wcdgan.png") exceeds 255 bytes


class _Shift(nn.Module):
    def forward(self, x):
        return torch.roll(x, 1, dims=3)


class _NanOnBlack(nn.Module):
    """Fine on the self-test's mid-grey image, NaN wherever a pixel is exactly 0."""

    def forward(self, x):
        return x + 0 * torch.log(x)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """Every input file and model the cases use, created once."""
    root = tmp_path_factory.mktemp("hostile")
    f = {"root": root}
    src = root / "src"
    src.mkdir()
    f["jpg"] = write_jpeg(src / "good.jpg", RGB, 10)
    f["gray_jpg"] = write_jpeg(src / "gray.jpg", data.camera()[:40, :56], 20)
    cv2.imwrite(str(src / "rgba.png"), np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 128, np.uint8)]))
    f["rgba"] = src / "rgba.png"
    cv2.imwrite(str(src / "deep.png"), (RGB.astype(np.uint16) * 257)[..., ::-1])
    f["deep"] = src / "deep.png"
    f["tiff16"] = src / "deep.tif"
    cv2.imwrite(str(f["tiff16"]), (RGB.astype(np.uint16) * 257)[..., ::-1])
    pil = Image.fromarray(RGB)
    for name, image, fmt in (("palette.png", pil.convert("P"), "PNG"), ("gray_alpha.png", pil.convert("LA"), "PNG"),
                             ("cmyk.jpg", pil.convert("CMYK"), "JPEG"), ("anim.gif", pil.convert("P"), "GIF"),
                             ("lossy.webp", pil, "WEBP"), ("plain.bmp", pil, "BMP")):  # fmt: skip
        image.save(src / name, fmt)
        f[name] = src / name
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    pil.save(rotated, "JPEG", quality=20, exif=exif.tobytes())
    f["rotated"] = src / "rotated.jpg"
    f["rotated"].write_bytes(rotated.getvalue())
    cv2.imwrite(str(src / "dot.png"), RGB[:1, :1])
    f["dot"] = src / "dot.png"
    cv2.imwrite(str(src / "strip.png"), np.repeat(RGB[:1], 3, axis=0)[:, :1][..., ::-1].repeat(700, axis=1))
    f["strip"] = src / "strip.png"
    full = f["jpg"].read_bytes()
    for name, content in (("truncated.jpg", full[: len(full) // 2]), ("empty.jpg", b""),
                          ("text.jpg", b"hello, not a JPEG"), ("noise.png", os.urandom(300)),
                          ("bomb.png", png_declaring(30000, 30000))):  # fmt: skip
        (src / name).write_bytes(content)
        f[name] = src / name
    for name in ("ünïcödé 名前.jpg", "with space.jpg", f"{LONG}.jpg", f"{TOO_LONG}.jpg"):
        write_jpeg(src / name, RGB, 30)
        f[name] = src / name
    (src / "link.jpg").symlink_to(f["jpg"])
    f["link"] = src / "link.jpg"
    (src / "folder.jpg").mkdir()
    f["dir_named_jpg"] = src / "folder.jpg"
    (root / "empty_dir").mkdir()
    f["empty_dir"] = root / "empty_dir"
    # models
    models = root / "models"
    models.mkdir()
    f["model"] = local_net(models / "good.onnx", onnx_sha256="")
    spec = json.loads((models / "good.json").read_text())
    (models / "broken.onnx").write_bytes(b"junk")
    (models / "broken.json").write_text("{ not json")
    f["hash_mismatch"] = models / "swapped.onnx"
    f["hash_mismatch"].write_bytes(f["model"].read_bytes())
    (models / "swapped.json").write_text(json.dumps({**spec, "name": "swapped", "onnx_sha256": "0" * 64}))
    f["shifted"] = export_onnx(_Shift(), root / "shifted.onnx", 3)
    f["nan_on_black"] = export_onnx(_NanOnBlack(), root / "nan.onnx", 3)
    f["no_models"] = root / "empty_dir"
    f["black"] = src / "black.png"
    cv2.imwrite(str(f["black"]), np.zeros((40, 56, 3), np.uint8))
    (root / "twin").mkdir()
    f["twin"] = write_jpeg(root / "twin" / "good.jpg", RGB, 50)  # same name as src/good.jpg
    f["blocker"] = root / "blocker"  # a file where an output folder would have to be
    f["blocker"].write_text("not a folder")
    (root / "big_originals").mkdir()  # an original for --compare larger than the image it is the original of
    (root / "big_originals" / "good.png").write_bytes(png_declaring(2000, 1000))
    f["big_originals"] = root / "big_originals"
    return f


def _snapshot(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# (case name, argv with {names} filled from the world and {out} = a fresh output folder, expected exit code,
#  text expected on stderr or None)
CASES = [
    ("good jpeg", ["{jpg}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("every odd format in a folder", ["{root}/src", "-o", "{out}", "--model", "{model}"], 1, "input(s) failed"),
    ("gray jpeg", ["{gray_jpg}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("rgba png", ["{rgba}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("16-bit png", ["{deep}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("16-bit tiff", ["{tiff16}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("palette png", ["{palette.png}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("gray+alpha png", ["{gray_alpha.png}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("cmyk jpeg", ["{cmyk.jpg}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("animated gif", ["{anim.gif}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("lossy webp", ["{lossy.webp}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("bmp", ["{plain.bmp}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("exif rotated", ["{rotated}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("1x1 image", ["{dot}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("3x700 strip", ["{strip}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("truncated jpeg", ["{truncated.jpg}", "-o", "{out}", "--model", "{model}"], 1, "truncated JPEG"),
    ("empty file", ["{empty.jpg}", "-o", "{out}", "--model", "{model}"], 1, "empty file"),
    ("text as jpeg", ["{text.jpg}", "-o", "{out}", "--model", "{model}"], 1, "can decode"),
    ("random bytes as png", ["{noise.png}", "-o", "{out}", "--model", "{model}"], 1, "decode"),
    ("decompression bomb", ["{bomb.png}", "-o", "{out}", "--model", "{model}"], 1, "over the limit of 200 MP"),
    (
        "bomb under a raised limit is still garbage",
        ["{bomb.png}", "-o", "{out}", "--model", "{model}", "--max-pixels", "1000"],
        1,
        "decode",
    ),
    (
        "--compare reads its original under --max-pixels too",
        ["{jpg}", "-o", "{out}", "--model", "{model}", "--max-pixels", "1", "--reference={big_originals}", "--compare"],
        1,
        "good.png: declares 2000×1000 = 2 MP, over the limit of 1 MP",
    ),
    ("tiny --max-pixels", ["{jpg}", "-o", "{out}", "--model", "{model}", "--max-pixels", "0.001"], 1, "over the limit"),
    ("negative --max-pixels", ["{jpg}", "--model", "{model}", "--max-pixels", "-1"], 2, "--max-pixels must"),
    ("--max-pixels inf", ["{jpg}", "--model", "{model}", "--max-pixels", "inf"], 2, "must be a finite number"),
    ("unicode name", ["{ünïcödé 名前.jpg}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("name with a space", ["{with space.jpg}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("240-char name", ["{" + LONG + ".jpg}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("symlinked input", ["{link}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("folder named like an image", ["{dir_named_jpg}", "-o", "{out}", "--model", "{model}"], 2, "holds no images"),
    ("missing input", ["{root}/nope.jpg", "--model", "{model}"], 2, "no such file"),
    ("two missing inputs", ["{root}/nope.jpg", "{root}/nope.png", "--model", "{model}"], 2, "no input images"),
    ("glob matching nothing", ["{root}/*.nothing", "--model", "{model}"], 2, "no such file"),
    ("empty folder", ["{empty_dir}", "--model", "{model}"], 2, "holds no images"),
    ("--tile 0", ["{jpg}", "--model", "{model}", "--tile", "0"], 2, "--tile"),
    ("--tile 100000", ["{jpg}", "--model", "{model}", "--tile", "100000"], 2, "--tile must"),
    ("--tile 16x0", ["{jpg}", "--model", "{model}", "--tile", "16x0"], 2, "--tile"),
    ("--tile abc", ["{jpg}", "--model", "{model}", "--tile", "abc"], 2, "--tile"),
    ("--overlap -1", ["{jpg}", "--model", "{model}", "--overlap", "-1"], 2, "--overlap must"),
    ("--overlap 100000", ["{jpg}", "--model", "{model}", "--overlap", "100000"], 2, "--overlap must"),
    ("--batch 0", ["{jpg}", "--model", "{model}", "--batch", "0"], 2, "--batch must"),
    ("--batch 100000", ["{jpg}", "--model", "{model}", "--batch", "100000"], 2, "--batch must"),
    ("huge tile x batch", ["{jpg}", "--model", "{model}", "--tile", "4096", "--batch", "64"], 2, "over 4 GiB"),
    ("--threads -3", ["{jpg}", "--model", "{model}", "--threads", "-3"], 2, "--threads must"),
    ("--threads 0", ["{jpg}", "--model", "{model}", "--threads", "0"], 2, "--threads must"),
    ("--device-id -1", ["{jpg}", "--model", "{model}", "--device-id", "-1"], 2, "--device-id must"),
    ("--quality 1000", ["{jpg}", "--model", "{model}", "--quality", "1000"], 2, "--quality"),
    ("--quality 0", ["{jpg}", "--model", "{model}", "--quality", "0"], 2, "--quality"),
    ("unknown backend", ["{jpg}", "--model", "{model}", "--backend", "cuda"], 2, "invalid choice"),
    ("unknown format", ["{jpg}", "--model", "{model}", "--format", "jpg"], 2, "invalid choice"),
    ("missing model", ["{jpg}", "--model", "{root}/none.onnx"], 2, "no such model"),
    ("model folder without models", ["{jpg}", "--model", "{no_models}"], 2, "holds no .onnx"),
    ("model with a broken sidecar", ["{jpg}", "--model", "{root}/models/broken.onnx"], 2, "unreadable sidecar"),
    ("good model beside a broken one", ["{jpg}", "-o", "{out}", "--model", "{model}"], 0, None),
    ("onnx that is not its sidecar's", ["{jpg}", "--model", "{hash_mismatch}"], 2, "onnx_sha256"),
    ("model shifting its output", ["{jpg}", "--model", "{shifted}"], 2, "displaced"),
    ("model giving NaN on black", ["{black}", "-o", "{out}", "--model", "{nan_on_black}"], 1, "NaN"),
    ("lossy -o file", ["{jpg}", "--model", "{model}", "-o", "{out}/restored.jpg"], 2, "is lossy"),
    ("-o gif file", ["{jpg}", "--model", "{model}", "-o", "{out}/restored.gif"], 2, ".gif is lossy"),
    ("-o file with two inputs", ["{jpg}", "{gray_jpg}", "--model", "{model}", "-o", "{out}/r.png"], 2, "give a folder"),
    ("-o tiff file", ["{jpg}", "--model", "{model}", "-o", "{out}/r.tiff"], 0, None),
    ("-o under a file", ["{jpg}", "--model", "{model}", "-o", "{blocker}/sub/r.png"], 1, "cannot write"),
    ("-o is the input", ["{dot}", "--model", "{model}", "-o", "{dot}"], 1, "refusing to overwrite"),
    ("two inputs, one output name", ["{jpg}", "{twin}", "--model", "{model}", "-o", "{out}"], 1, "same name"),
]


@pytest.mark.parametrize(("name", "argv", "code", "message"), CASES, ids=[c[0] for c in CASES])
def test_hostile_cli_input(world, tmp_path, capsys, name, argv, code, message):
    out = tmp_path / "out"
    fill = {k: str(v) for k, v in world.items()} | {"out": str(out)}
    args = [re.sub(r"\{([^{}]+)\}", lambda m: fill[m.group(1)], a) for a in argv]
    before = _snapshot(world["root"])
    try:
        got = infer_main([*args, "-q"])
    except SystemExit as e:  # argparse's usage errors
        got = e.code
    err = capsys.readouterr().err
    assert got == code, err
    if message:
        assert message in err, err
    assert _snapshot(world["root"]) == before  # no input changed, nothing written among the inputs
    leftovers = [p for p in (out.rglob(".*.tmp*") if out.exists() else [])]
    assert not leftovers


# (command, its arguments with {tmp} the current folder's absolute path, exit code, its error line): each names an
# input or its own other output by another spelling (relative, absolute, through ..), refused before any work
OVER_INPUT = "{0}: output {1} is an input; refusing to overwrite it"  # {0}: the input, {1}: its output
SPELLINGS = [
    ("infer", ["in/a.png", "-o", "sub/../in/a.png"], 1, OVER_INPUT.replace("{1}", "{2}")),
    ("infer", ["{tmp}/in/a.png", "-o", "in/a.png"], 1, OVER_INPUT.replace("{1}", "{2}")),
    ("batch", ["in/a.png", "sub/../in/a.png"], 1, OVER_INPUT),
    ("batch", ["in/a.png", "{tmp}/in/"], 1, "{0}: output {1}a.png is an input; refusing to overwrite it"),
    ("video", ["in/c.avi", "sub/../in/c.avi"], 2, "{1}: is the input; refusing to overwrite an input"),
    ("video", ["in/c.avi", "out.mkv", "--compare={tmp}/out.mkv"], 2,
     "--compare {tmp}/out.mkv: is OUT; the side-by-side clip needs a file of its own"),
    ("video", ["in/c.avi", "out.mkv", "--compare=sub/../in/c.avi"], 2,
     "sub/../in/c.avi: is the input; refusing to overwrite an input"),
]  # fmt: skip


@pytest.mark.parametrize(("command", "argv", "code", "error"), SPELLINGS, ids=[" ".join(c[1]) for c in SPELLINGS])
def test_no_command_writes_over_a_path_spelled_differently(world, tmp_path, monkeypatch, capsys, command, argv, code,
                                                           error):  # fmt: skip
    """Every command compares paths as the files they are: an output naming an input (or OUT, for --compare) by
    another spelling is refused when the run is planned, even with -f, with one error line; the input is unchanged
    and no output written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "sub").mkdir()
    if command == "video":
        pytest.importorskip("av", reason="PyAV is not installed (the [video] extra)")
        from runtime.video.cli import main
        from tests.video_fixtures import make_mjpeg

        make_mjpeg(tmp_path / "in" / "c.avi", [10], audio=False)
    else:
        if command == "batch":
            pytest.importorskip("ray.data", reason="runtime.batch needs Ray Data")
        main = importlib.import_module(f"runtime.{command}").main
        shutil.copy(world["dot"], tmp_path / "in" / "a.png")
    before = _snapshot(tmp_path)
    args = [a.format(tmp=tmp_path) for a in argv]
    assert main([*args, "--model", str(world["model"]), "-f", "-q"]) == code
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert errors == ["error: " + error.format(*args, tmp=tmp_path)]
    after = _snapshot(tmp_path)
    after.pop("in/wcdgan-manifest.jsonl", None)  # batch's record of the refusal, in DST
    assert after == before


def test_every_lossless_suffix_names_the_output_file(world, tmp_path, capsys):
    """-o FILE with each lossless suffix --format offers (.bmp too), in either case, writes that one file, in the
    format its suffix names, holding the restoration's pixels."""
    names = ["r.png", "r.tif", "r.tiff", "r.webp", "r.bmp", "R.PNG", "R.TIFF", "R.WEBP", "R.BMP"]
    for name in names:
        argv = [str(world["jpg"]), "--model", str(world["model"]), "-o", str(tmp_path / name), "-q"]
        assert infer_main(argv) == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    restored = read_image(tmp_path / "r.png").pixels
    magic = {".png": b"\x89PNG", ".tif": b"II*\0", ".tiff": b"II*\0", ".webp": b"RIFF", ".bmp": b"BM"}
    for name in names:
        assert np.array_equal(read_image(tmp_path / name).pixels, restored), name
        assert (tmp_path / name).read_bytes().startswith(magic[Path(name).suffix.lower()]), name


def test_too_long_output_name_fails_alone(world, tmp_path, capsys):
    """The output of a 248-character name (+ "_wcdgan.png") exceeds 255 bytes: that file fails, the others run."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in (f"{TOO_LONG}.jpg", "good.jpg"):
        (folder / name).write_bytes(world["jpg"].read_bytes())
    assert infer_main([str(folder), "--model", str(world["model"]), "-q"]) == 1
    assert "longer than 255 bytes" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{TOO_LONG}.jpg", "good.jpg", "good_wcdgan.png"])


def test_gray_alpha_comes_back_gray(world, tmp_path):
    assert infer_main([str(world["gray_alpha.png"]), "-o", str(tmp_path / "o.png"), "--model",
                       str(world["model"]), "-q"]) == 0  # fmt: skip
    out = cv2.imread(str(tmp_path / "o.png"), cv2.IMREAD_UNCHANGED)
    assert out.ndim == 3 and out.shape[2] == 4
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])  # no tint


def test_api_validates_like_the_cli(world):
    for kwargs, message in (({"tile": 0}, "tile must"), ({"tile": -5}, "tile must"), ({"tile": 1.5}, "tile must"),
                            ({"tile": (16, 0)}, "tile must"), ({"overlap": -1}, "overlap must"),
                            ({"batch": 0}, "batch must"), ({"threads": -3}, "threads must"),
                            ({"device_id": -1}, "device_id must"), ({"max_pixels": 0}, "max_pixels must")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            Restorer(world["model"], **kwargs)
    restorer = Restorer(world["model"], tile=32)
    with pytest.raises(ValueError, match=r"1\.\.100"):
        restorer(RGB, quality=1000)
    with pytest.raises(ModelError, match="displaced"):
        Restorer(world["shifted"])
    with pytest.raises(ValueError, match="over the limit"):
        read_image(world["bomb.png"])


def test_cache_cli_never_tracebacks_or_deletes_foreign_files(tmp_path, capsys):
    cache = tmp_path / "cache"
    (cache / "timing").mkdir(parents=True)
    (cache / "a.json").write_text(json.dumps({"format": "wcdgan-engine", "key": "x"}))
    (cache / "a.plan").write_bytes(b"ours? no: its record is broken")
    (cache / "notes.plan").write_text("a user's own file")
    (cache / "config.json").write_text('{"mine": true}')
    (cache / "timing" / "my.cache").write_text("a user's own file")
    assert cache_main(["list", "--cache-dir", str(cache)]) == 0
    assert "incomplete engine record" in capsys.readouterr().out
    before = _snapshot(cache)
    assert cache_main(["clear", "--cache-dir", str(cache)]) == 0
    assert _snapshot(cache) == before  # nothing here is provably the cache's own
    assert cache_main(["list", "--cache-dir", str(tmp_path / "nope")]) == 2


def test_stale_temporaries_of_a_killed_run_are_swept(world, tmp_path):
    """A temporary whose writer died goes at once, however new; one whose writer lives (it holds the flock) stays."""
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".good.abcd1234.tmp.png"
    live = out / ".good.wxyz9876.tmp.png"
    stale.write_bytes(b"left by a SIGKILLed run a moment ago")
    live.write_bytes(b"another process is writing right now")
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as its writer does until the rename
        assert infer_main([str(world["jpg"]), "-o", str(out), "--model", str(world["model"]), "-q"]) == 0
    assert not stale.exists() and live.exists() and (out / "good.png").is_file()


@pytest.mark.cli
def test_sigterm_leaves_nothing_partial(tmp_path):
    big = write_jpeg(tmp_path / "big.jpg", cv2.resize(data.astronaut(), (4000, 4000)), 30)
    model = local_net(tmp_path / "m.onnx")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.infer", str(big), "-o", str(out), "--model", str(model), "--tile", "64"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    while "backend:" not in proc.stderr.readline():  # the model is loaded; restoring takes seconds from here
        assert proc.poll() is None
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=60)
    err = rest
    assert proc.returncode == 143, err
    assert "interrupted" in err and "Traceback" not in err
    assert not (out.exists() and any(out.iterdir()))  # no partial output, no temporary


@pytest.mark.cli
def test_cpu_install_output_is_quiet_and_free_of_progress_bars(world, tmp_path):
    """On a machine without TensorRT or onnxruntime-gpu the skip reasons are noise (shown with -v only), and a log
    file (not a terminal) gets no progress bars."""
    cmd = [sys.executable, "-m", "runtime.infer", str(world["jpg"]), str(world["gray_jpg"]), "-o", str(tmp_path),
           "--model", str(world["model"])]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    quiet = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    # text mode reads a bar's \r as \n; its rate stays: "file/s]" (the bar over files), "tile/s]" (over tiles)
    assert quiet.returncode == 0 and not re.search(r"(file|tile)/s\]", quiet.stderr), quiet.stderr
    if "backend: ort-cpu" in quiet.stderr:  # a CPU-only install
        assert "unavailable" not in quiet.stderr
        verbose = subprocess.run([*cmd, "-v", "-f"], cwd=REPO, capture_output=True, text=True, env=env)
        assert "tensorrt unavailable" in verbose.stderr


@pytest.mark.parametrize(
    ("module", "extra", "missing"),
    [
        ("train", "train", "torch"),
        ("export.build", "export", "torch"),
        ("benchmarks.runtime", "bench", "torch"),
        ("runtime.video", "video", "av"),
    ],
)
def test_missing_extra_is_one_line_not_a_traceback(module, extra, missing):
    code = (  # the extra's module made unimportable, as on a machine with only the runtime installed
        f"import sys, runpy; sys.modules[{missing!r}] = None; sys.argv = ['x', '--help']; "
        f"runpy.run_module({module!r}, run_name='__main__')"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f'pip install -e ".[{extra}]"' in r.stderr  # from the clone's root: the package is on no index


def test_install_hints_work_from_a_clone(tmp_path, monkeypatch):
    """No package index serves wcdgan-toolkit: the hint is an editable install of this clone, from anywhere."""
    from common.cli import pip_install

    monkeypatch.chdir(REPO)
    assert pip_install("cpu,video") == 'pip install -e ".[cpu,video]"'
    monkeypatch.chdir(tmp_path)
    assert pip_install("trt") == f'pip install -e "{REPO}[trt]"'
