"""train.evaluate: the JPEG protocol reproduces the published rows, restore-function handling, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from scipy.ndimage import uniform_filter
from skimage import data

from common.color import rgb_to_y
from common.jpeg import jpeg_roundtrip
from common.metrics import psnr
from models import GeneratorConfig, WCDGANGenerator, save_generator
from tests.conftest import REPO_ROOT
from train.evaluate import (
    BASELINE_NAME,
    _tiled,
    evaluate_methods,
    format_markdown,
    generator_restore_fn,
    load_eval_images,
    main,
)

pytestmark = pytest.mark.slow  # exports, trains, builds or runs commands: not in the inner loop

TINY_Y = GeneratorConfig(in_channels=1, features=16, num_blocks=1, branch_channels=8)
TINY_RGB = GeneratorConfig(in_channels=3, features=16, num_blocks=1, branch_channels=8)


def _write(path, rgb_or_gray: np.ndarray) -> None:
    image = rgb_or_gray if rgb_or_gray.ndim == 2 else cv2.cvtColor(rgb_or_gray, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), image)


@pytest.fixture(scope="module")
def colour_dir(tmp_path_factory):
    """Two small colour ground truths (skimage crops) and a non-image file that must be ignored."""
    d = tmp_path_factory.mktemp("colour")
    _write(d / "astronaut.png", data.astronaut()[:72, 180:276])
    _write(d / "chelsea.png", data.chelsea()[60:140, 100:196])
    (d / "notes.txt").write_text("not an image")
    return d


@pytest.fixture(scope="module")
def gray_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("gray")
    _write(d / "camera.png", data.camera()[200:264, 200:280])
    return d


# ---------------------------------------------------------------- loading


def test_load_eval_images_y_and_rgb(colour_dir):
    rgb = dict(load_eval_images(colour_dir, "rgb"))
    y = dict(load_eval_images(colour_dir, "y"))
    assert list(rgb) == ["astronaut", "chelsea"] == list(y)
    np.testing.assert_array_equal(rgb["astronaut"], data.astronaut()[:72, 180:276])
    np.testing.assert_array_equal(y["chelsea"], rgb_to_y(rgb["chelsea"]))
    assert y["chelsea"].shape == (80, 96) and y["chelsea"].dtype == np.uint8


def test_grayscale_images_are_used_as_is_for_y_and_refused_for_rgb(gray_dir, tmp_path):
    [(_, y)] = load_eval_images(gray_dir, "y")
    np.testing.assert_array_equal(y, data.camera()[200:264, 200:280])
    with pytest.raises(ValueError, match="grayscale"):
        load_eval_images(gray_dir, "rgb")
    # the same data stored as a 3-channel file is still grayscale data (not converted to studio-range luma)
    _write(tmp_path / "camera_rgb.png", np.repeat(y[..., None], 3, axis=2))
    [(_, y3)] = load_eval_images(tmp_path, "y")
    np.testing.assert_array_equal(y3, y)


def test_load_eval_images_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_eval_images(tmp_path / "missing", "y")
    with pytest.raises(ValueError, match="no images"):
        load_eval_images(tmp_path, "y")
    cv2.imwrite(str(tmp_path / "deep.png"), np.zeros((16, 16), np.uint16) + 1000)
    with pytest.raises(ValueError, match="8-bit"):
        load_eval_images(tmp_path, "y")
    with pytest.raises(ValueError, match="channel"):
        load_eval_images(tmp_path, "ycbcr")
    (tmp_path / "deep.png").unlink()
    _write(tmp_path / "a.png", data.camera()[:16, :16])
    _write(tmp_path / "a.bmp", data.camera()[:16, :16])
    with pytest.raises(ValueError, match="share a name"):
        load_eval_images(tmp_path, "y")


# ---------------------------------------------------------------- evaluate_methods


def test_identity_restore_equals_the_jpeg_baseline(colour_dir):
    res = evaluate_methods(
        {BASELINE_NAME: None, "identity": lambda x: x}, colour_dir, [10, 30], channel="rgb", progress=False
    )
    base, ident = res["methods"][BASELINE_NAME], res["methods"]["identity"]
    assert base == ident
    # the baseline really is the libjpeg round trip, scored per image
    gt = dict(load_eval_images(colour_dir, "rgb"))["chelsea"]
    assert base["10"]["per_image"]["chelsea"]["psnr"] == psnr(jpeg_roundtrip(gt, 10), gt)
    assert base["10"]["psnr"] < base["30"]["psnr"]
    assert json.loads(json.dumps(res)) == res


def test_outputs_are_clipped_rounded_and_shape_checked(colour_dir):
    seen = []

    def record(x):
        seen.append((x.shape, x.dtype, float(x.min()), float(x.max())))
        return x + 10.0  # far above 1: clips to white

    res = evaluate_methods({"white": record}, colour_dir, [10], channel="y", progress=False)
    assert seen and all(s[0][2] == 1 and s[1] == np.float32 and 0 <= s[2] <= s[3] <= 1 for s in seen)
    gt = dict(load_eval_images(colour_dir, "y"))["astronaut"]
    white = np.full_like(gt, 255)
    assert res["methods"]["white"]["10"]["per_image"]["astronaut"]["psnr"] == psnr(white, gt)
    with pytest.raises(ValueError, match="returned shape"):
        evaluate_methods({"bad": lambda x: x[:-1]}, colour_dir, [10], progress=False)
    with pytest.raises(ValueError, match=r"1\.\.100"):
        evaluate_methods({"jpeg": None}, colour_dir, [0], progress=False)


def test_generator_channels_must_match_the_protocol(colour_dir):
    rgb_fn = generator_restore_fn(WCDGANGenerator(TINY_RGB))
    with pytest.raises(ValueError, match="channel 'rgb'"):
        evaluate_methods({"rgb-model": rgb_fn}, colour_dir, [10], channel="y", progress=False)
    y_fn = generator_restore_fn(WCDGANGenerator(TINY_Y))
    with pytest.raises(ValueError, match="channel 'y'"):
        evaluate_methods({"y-model": y_fn}, colour_dir, [10], channel="rgb", progress=False)
    with pytest.raises(ValueError, match="3-channel"):
        y_fn(np.zeros((8, 8, 3), np.float32))


def test_generator_restore_fn_runs_the_model(colour_dir):
    torch.manual_seed(0)
    model = WCDGANGenerator(TINY_Y)
    fn = generator_restore_fn(model)
    x = np.random.default_rng(0).random((40, 56, 1), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x).permute(2, 0, 1)[None])[0, 0].numpy()
    out = fn(x)
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], ref, atol=1e-6)
    # tile=64 → one 128×128 window (64 + 2×32 overlap) starting at (-32, -32), reflect-padded as the runtime does
    padded = np.pad(x, ((32, 128 - 40 - 32), (32, 128 - 56 - 32), (0, 0)), mode="reflect")
    np.testing.assert_allclose(generator_restore_fn(model, tile=64)(x), fn(padded)[32:72, 32:88], atol=1e-6)
    res = evaluate_methods({"JPEG": None, "g": fn}, colour_dir, [20], progress=False)
    assert res["methods"]["g"]["20"]["psnr"] != res["methods"]["JPEG"]["20"]["psnr"]


def test_tiling_is_exact_for_operators_within_the_overlap():
    x = np.random.default_rng(1).random((50, 70, 3), dtype=np.float32)

    def box(a):  # 5×5 mean: reaches 2 px, well inside the 32-px overlap
        return uniform_filter(a, size=(5, 5, 1), mode="mirror")  # = numpy/runtime reflect

    np.testing.assert_allclose(_tiled(box, x, tile=16, overlap=32), box(x), atol=1e-6)
    assert not np.allclose(_tiled(box, x, tile=16, overlap=0), box(x), atol=1e-3)  # no context: seams


def test_format_markdown_lists_methods_in_order(colour_dir):
    res = evaluate_methods({"JPEG": None, "identity": lambda x: x}, colour_dir, [10, 20], progress=False)
    text = format_markdown(res)
    lines = text.splitlines()
    assert lines[2] == "| method | q=10 | q=20 |"
    m = res["methods"]["JPEG"]
    assert lines[4].startswith(f"| JPEG | {m['10']['psnr']:.2f} / {m['10']['ssim']:.4f} / {m['10']['psnr_b']:.2f} |")
    assert lines[5].startswith("| identity |")


def test_lpips_column(colour_dir, shared_dir):
    from train.lpips import LPIPS

    lpips = LPIPS.from_dir(shared_dir / "weights")
    res = evaluate_methods({"JPEG": None}, colour_dir, [10, 40], channel="rgb", lpips=lpips, progress=False)
    assert res["metrics"] == ["psnr", "ssim", "psnr_b", "lpips"]
    by_q = res["methods"]["JPEG"]
    assert 0 < by_q["40"]["lpips"] < by_q["10"]["lpips"] < 1  # stronger compression, larger distance
    row = format_markdown(res).splitlines()[4]
    assert row.count(" / ") == 6 and f"{by_q['10']['lpips']:.3f}" in row


# ---------------------------------------------------------------- the published JPEG rows (../shared)


@pytest.mark.parametrize(
    ("dataset", "channel", "expected"),
    [
        ("LIVE1", "y", (27.77, 0.7730, 25.33)),
        ("Classic5", "y", (27.82, 0.7595, 25.21)),
        ("LIVE1", "rgb", (25.69, None, None)),
    ],
)
def test_jpeg_q10_reproduces_the_published_row(shared_dir, dataset, channel, expected):
    res = evaluate_methods({"JPEG": None}, shared_dir / "data/eval" / dataset, [10], channel=channel, progress=False)
    row = res["methods"]["JPEG"]["10"]
    print(f"{dataset} {channel} q10: {row['psnr']:.4f} dB / {row['ssim']:.5f} / {row['psnr_b']:.4f} dB")
    assert res["dataset"] == dataset and len(res["images"]) == (29 if dataset == "LIVE1" else 5)
    psnr_ref, ssim_ref, psnr_b_ref = expected
    assert row["psnr"] == pytest.approx(psnr_ref, abs=0.005)
    if ssim_ref is not None:
        assert row["ssim"] == pytest.approx(ssim_ref, abs=5e-5)
        assert row["psnr_b"] == pytest.approx(psnr_b_ref, abs=0.005)


# ---------------------------------------------------------------- CLI


def test_cli_writes_table_and_json(colour_dir, tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny_y.pt"
    save_generator(ckpt, WCDGANGenerator(TINY_Y))
    out = tmp_path / "res" / "eval.json"
    assert main(["--data", str(colour_dir), "--quality", "10", "--ckpt", str(ckpt), "-o", str(out), "-q"]) == 0
    stdout = capsys.readouterr().out
    rows = [line for line in stdout.splitlines() if line.startswith("| ") and "method" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| JPEG", "| tiny_y"]
    res = json.loads(out.read_text())
    assert list(res["methods"]) == ["JPEG", "tiny_y"] and res["channel"] == "y"
    assert sorted(p.name for p in out.parent.iterdir()) == ["eval.json"]  # no temporary left behind


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "{missing}"], "no such folder"),
        (["--data", "{gray}", "--channel", "rgb"], "grayscale"),
        (["--data", "{colour}", "--ckpt", "{garbage}"], "not a readable PyTorch checkpoint"),
        (["--data", "{colour}", "--ckpt", "{absent}"], "no such checkpoint"),
        (["--data", "{colour}", "--ckpt", "{rgb_ckpt}"], "channel 'rgb'"),
        (["--data", "{colour}", "--lpips-dir", "{missing}"], "LPIPS weights not found"),
        (["--data", "{colour}", "--device", "warp9"], "--device"),
    ],
)
def test_cli_user_errors_exit_2_without_traceback(args, message, colour_dir, gray_dir, tmp_path, capsys):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    rgb_ckpt = tmp_path / "rgb.pt"
    save_generator(rgb_ckpt, WCDGANGenerator(TINY_RGB))
    paths = {
        "missing": tmp_path / "missing",
        "gray": gray_dir,
        "colour": colour_dir,
        "garbage": garbage,
        "absent": tmp_path / "absent.pt",
        "rgb_ckpt": rgb_ckpt,
    }
    argv = [a.format(**paths) for a in args] + ["--quality", "10", "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_bad_quality_is_an_argparse_error(colour_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--data", str(colour_dir), "--quality", "0"])
    assert exc.value.code == 2
    assert "1..100" in capsys.readouterr().err


@pytest.mark.cli
def test_cli_as_module_reports_a_bad_checkpoint_cleanly(colour_dir, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 10)
    proc = subprocess.run(
        [sys.executable, "-m", "train.evaluate", "--data", str(colour_dir), "--quality", "10", "--ckpt", str(bad)],
        cwd=REPO_ROOT,  # this checkout's code, whatever the caller's folder
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert proc.stdout == ""
