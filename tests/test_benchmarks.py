"""The benchmark CLIs (tiny modes) and their building blocks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from benchmarks import model_size, quality, runtime
from benchmarks.common import DEFAULT_OUTPUT, RESULTS_DIR, Contention, markdown_table, model_entries
from common.color import rgb_to_y
from models.wcdgan import count_parameters
from runtime.spec import ModelSpec
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow  # exports, trains, builds or runs commands: not in the inner loop

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _entry(key: str):
    return next(e for e in model_entries() if e.key == key)


# ---------------------------------------------------------------- model size


def test_flops_equal_twice_the_conv_weights_for_full_resolution_networks():
    # AR-CNN and DnCNN run every conv at full resolution with stride 1: MACs per pixel = conv weights
    for key in ("arcnn", "dncnn3"):
        model = _entry(key).build()
        weights = sum(m.weight.numel() for m in model.modules() if hasattr(m, "weight") and m.weight.dim() == 4)
        assert model_size.flops_per_megapixel(_entry(key)) == pytest.approx(2 * weights * 1e6)


def test_flops_scale_with_pixels():
    entry = _entry("mwcnn")  # three wavelet levels: per-pixel cost must still be size-independent
    assert model_size.flops_per_megapixel(entry, 64) == pytest.approx(model_size.flops_per_megapixel(entry, 128))


def test_model_size_cli(tmp_path):
    assert model_size.main(["-o", str(tmp_path), "-q"]) == 0
    rows = {r["model"]: r for r in json.loads((tmp_path / "model_size.json").read_text())["rows"]}
    wcdgan = rows["WCDGAN (RGB)"]
    assert wcdgan["params"] == count_parameters(_entry("wcdgan-rgb").build())
    assert wcdgan["mb_fp32"] == pytest.approx(wcdgan["params"] * 4 / 1e6)
    assert "DISAGREES" in rows["MWCNN"]["note"]  # 24.9 M vs the paper's 25.1 M
    assert "DISAGREES" not in rows["DnCNN-3"]["note"]
    md = (tmp_path / "model_size.md").read_text()
    assert "1 MAC = 2 FLOPs" in md and "| AR-CNN |" in md


def test_benchmarks_write_into_the_checkout_only_when_asked(tmp_path, monkeypatch):
    committed = (RESULTS_DIR / "model_size.json").read_bytes()
    monkeypatch.chdir(tmp_path)
    assert model_size.main(["-q"]) == 0
    assert (tmp_path / DEFAULT_OUTPUT / "model_size.json").is_file()
    assert (RESULTS_DIR / "model_size.json").read_bytes() == committed
    for module in (model_size, quality, runtime):
        assert module._parse_args(["--update-results"]).output == RESULTS_DIR
        with pytest.raises(SystemExit):
            module._parse_args(["--update-results", "-o", str(tmp_path)])


# ---------------------------------------------------------------- runtime


def test_time_runs_counts_repeats_and_respects_the_budget():
    calls = []
    stats = runtime.time_runs(lambda: calls.append(time.sleep(0.01)), lambda: None, warmup=2, repeats=3, budget_s=10)
    assert len(calls) == 5 and stats["n"] == 3
    assert 9 < stats["min_ms"] <= stats["q1_ms"] <= stats["median_ms"] <= stats["q3_ms"] <= stats["max_ms"]
    calls.clear()
    stats = runtime.time_runs(lambda: calls.append(time.sleep(0.02)), lambda: None, warmup=0, repeats=50, budget_s=0.05)
    assert 1 <= stats["n"] < 10
    calls.clear()  # a long warm-up run is kept as the first timed run
    stats = runtime.time_runs(lambda: calls.append(time.sleep(0.03)), lambda: None, 2, 3, budget_s=10, long_run_s=0.02)
    assert len(calls) == 3 and stats["n"] == 3 and stats["warmup_counted"]


def test_runtime_cli_tiny(tmp_path):
    argv = [
        "--tiny",
        "-o",
        str(tmp_path),
        "-q",
        "--models",
        "arcnn",
        "--backends",
        "torch-fp32",
        "ort-cpu",
        "ort-cpu-int8",
        "torch-fp16",
    ]
    assert runtime.main(argv) == 0
    kind = runtime.host_kind()
    payload = json.loads((tmp_path / f"runtime_{kind}_tiny.json").read_text())
    rows = payload["rows"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert {r["backend"] for r in ok} >= {"torch-fp32", "ort-cpu", "ort-cpu-int8"}
    for r in ok:
        assert r["foreign_cores"] is not None and r["load_before"] is not None and isinstance(r["busy"], bool)
        assert r["median_ms"] > 0 and r["mp_per_s"] == pytest.approx(r["megapixels"] / (r["median_ms"] / 1e3))
        assert r["tflops"] == pytest.approx(payload["gflop_per_mp"]["arcnn"] / 1e3 * r["mp_per_s"])
    if kind == "cpu":
        fp16 = next(r for r in rows if r["backend"] == "torch-fp16")
        assert fp16["status"] == "skipped" and "CUDA" in fp16["reason"]
    assert payload["machine"]["cpu"] and payload["peak_tflops"]["fp32"] > 0
    assert (tmp_path / f"runtime_{kind}_tiny.png").stat().st_size > 1000
    assert "| AR-CNN | ort-cpu | model | 64x64 |" in (tmp_path / f"runtime_{kind}_tiny.md").read_text()


def test_contention_counts_other_processes_not_our_own_work():
    busy_loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it start
        with Contention() as machine:
            time.sleep(1.0)
    finally:
        busy_loop.kill()
        busy_loop.wait()
    assert machine.foreign_cores > 0.5 and machine.busy
    assert "BUSY" in runtime.contention_cell(machine.as_dict() | {"status": "ok"})
    assert "Warning: 1 of 2 rows" in runtime.busy_warning([machine.as_dict(), {"busy": False}])


def test_runtime_end_to_end_through_the_tiled_runtime(tmp_path):
    plan = runtime.Plan(["wcdgan-rgb"], ["ort-cpu"], [], [], ["32x32"], warmup=0, repeats=1, e2e_tile=32)
    rows = runtime.run_plan(plan, progress=False)["rows"]
    assert len(rows) == 1 and rows[0]["scope"] == "end-to-end"
    assert rows[0]["status"] == "ok", rows[0]["reason"]
    assert rows[0]["runtime_backend"] == "ort-cpu" and rows[0]["tile"] == [32, 32]


def test_runtime_cli_rejects_unknown_sizes(capsys):
    with pytest.raises(SystemExit) as e:
        runtime.main(["--sizes", "8k"])
    assert e.value.code == 2 and "unknown size" in capsys.readouterr().err


def test_sample_image_is_deterministic_and_jpeg_like():
    a, b = runtime.sample_image(48, 64, 3), runtime.sample_image(48, 64, 3)
    assert a.shape == (48, 64, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert runtime.sample_image(48, 64, 1).shape == (48, 64)


# ---------------------------------------------------------------- quality


def test_arcnn_model_choice_per_quality():
    assert [quality.arcnn_weights_for(q) for q in (5, 10, 20, 25, 35, 90)] == [10, 10, 20, 20, 30, 40]


def test_y_model_on_rgb_keeps_chroma_and_restores_luma():
    rgb = data.astronaut()[:40, :48]
    x = rgb.astype(np.float32) / 255
    same = quality.y_model_on_rgb(lambda y: y)(x)
    assert np.abs(same * 255 - rgb).max() <= 1.5  # Y'CbCr round trip with rounded Y: within about 1 level
    brighter = quality.y_model_on_rgb(lambda y: y + 10 / 255)(x)
    gain = rgb_to_y(np.round(brighter * 255).astype(np.uint8)).astype(int) - rgb_to_y(rgb).astype(int)
    assert 8 <= np.median(gain) <= 11


def _tiny_eval_set(root: Path) -> Path:
    (root / "LIVE1").mkdir(parents=True)
    for name, image in (("astronaut", data.astronaut()), ("coffee", data.coffee())):
        cv2.imwrite(str(root / "LIVE1" / f"{name}.png"), cv2.cvtColor(image[100:148, 100:164], cv2.COLOR_RGB2BGR))
    return root


def test_quality_cli_jpeg_only(tmp_path):
    root = _tiny_eval_set(tmp_path / "eval")
    argv = [
        "--data-root",
        str(root),
        "--datasets",
        "LIVE1",
        "--qualities",
        "10",
        "--no-peers",
        "-o",
        str(tmp_path),
        "-q",
    ]
    assert quality.main(argv) == 0
    blocks = json.loads((tmp_path / "quality.json").read_text())["tables"]
    assert [(b["table"], b["channel"]) for b in blocks] == [(1, "y"), (2, "rgb")]
    assert blocks[0]["results"]["methods"]["JPEG"]["10"]["psnr"] > 20
    md = (tmp_path / "quality.md").read_text()
    assert "| JPEG | 10 |" in md and "| WCDGAN (paper) | 10 | – | 29.56 / 0.8238 |" in md


def test_quality_runs_split_by_quality_merge_into_one_table(tmp_path):
    root = _tiny_eval_set(tmp_path / "eval")
    base = ["--data-root", str(root), "--tables", "1", "--datasets", "LIVE1", "--no-peers", "-q"]
    for q in (20, 10):
        assert quality.main([*base, "--qualities", str(q), "-o", str(tmp_path / f"q{q}")]) == 0
    parts = [str(tmp_path / f"q{q}" / "quality.json") for q in (20, 10)]
    assert quality.main(["--merge", *parts, "-o", str(tmp_path), "-q"]) == 0
    (block,) = json.loads((tmp_path / "quality.json").read_text())["tables"]
    assert block["results"]["qualities"] == [10, 20]
    jpeg = block["results"]["methods"]["JPEG"]
    assert jpeg["20"]["psnr"] > jpeg["10"]["psnr"]  # a higher quality JPEG is closer to the original


def test_quality_cli_with_official_peers(tmp_path):
    if not (SHARED / "weights" / "peers").is_dir():
        pytest.skip("../shared not found: no peer weights")
    root = _tiny_eval_set(tmp_path / "eval")
    argv = ["--data-root", str(root), "--tables", "1", "--qualities", "10", "--datasets", "LIVE1", "-o", str(tmp_path)]
    assert quality.main([*argv, "-q"]) == 0
    by_method = json.loads((tmp_path / "quality.json").read_text())["tables"][0]["results"]["methods"]
    for peer in ("AR-CNN", "DnCNN-3"):
        assert by_method[peer]["10"]["psnr"] > by_method["JPEG"]["10"]["psnr"]


def test_quality_cli_reports_missing_data(tmp_path, capsys):
    assert quality.main(["--data-root", str(tmp_path / "nowhere"), "--no-peers", "-o", str(tmp_path), "-q"]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_markdown_table():
    assert markdown_table(["a", "b"], [[1, None]]) == "| a | b |\n|---|---|\n| 1 | – |\n"


def test_runtime_rows_after_the_deadline_are_skipped_with_the_reason():
    plan = runtime.Plan(["arcnn"], ["torch-fp32"], ["32x32", "64x64"], [], [], warmup=0, repeats=1)
    rows = runtime.run_plan(plan, progress=False, deadline=time.time() - 1)["rows"]
    assert [r["status"] for r in rows] == ["skipped", "skipped"] and "deadline" in rows[0]["reason"]


def test_gpu_precisions_compare_with_their_own_ceiling():
    assert [runtime.peak_key(b) for b in ("torch-fp32", "torch-tf32", "torch-bf16", "torch-fp16-graph")] == [
        "fp32", "tf32", "fp16", "fp16",
    ]  # fmt: skip
    for backend in ("torch-tf32", "torch-bf16", "torch-fp16-compile"):
        assert runtime.unavailable_reason(backend) == (None if runtime.host_kind() == "cuda" else
                                                       "needs CUDA (no GPU visible to PyTorch)")  # fmt: skip
    with runtime.tf32(True):
        import torch

        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    assert runtime.SIZES["1024x1024"] == (1024, 1024)


def test_cpu_paths_runs_each_setting_in_its_own_process(tmp_path):
    from benchmarks import cpu_paths

    argv = ["--sizes", "tiny", "--rounds", "2", "--settings", "fp32-fixed256", "int8-fit512", "--allow-busy", "-q"]
    assert cpu_paths.main([*argv, "-o", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "cpu_paths.json").read_text())
    fixed, fitted = payload["rows"]
    assert fixed["status"] == fitted["status"] == "ok", (fixed["reason"], fitted["reason"])
    assert (fixed["file"], fitted["file"]) == ("default.onnx", "default_int8.onnx")
    # 200×344 at a fixed 256 core: 1×2 windows of (256 + 2·overlap)²; fitted ≤ 512: one 208×352 core, its window
    # 2·overlap larger per side (overlap: the bundled model's recommended one, from its sidecar)
    o = ModelSpec.load(REPO_ROOT / "runtime" / "weights" / "default.json").recommended_overlap
    assert fixed["computed_per_output_pixel"] == pytest.approx(2 * (256 + 2 * o) ** 2 / (200 * 344))
    assert fitted["computed_per_output_pixel"] == pytest.approx((208 + 2 * o) * (352 + 2 * o) / (200 * 344))
    for row in (fixed, fitted):
        assert row["peak_rss_mb"] > 50 and len(row["passes_s"]) == 2 and row["foreign_cores"] is not None
        assert row["s_per_mp_min"] <= row["s_per_mp_median"] <= row["s_per_mp_max"]
    table = (tmp_path / "cpu_paths.md").read_text()
    assert "| fp32-fixed256 | default.onnx |" in table and "1.00×" in table


def test_consistency_benchmark_one_image(tmp_path, shared_dir):
    pytest.importorskip("jpeglib", reason="--consistent's reader (a dependency)")
    from benchmarks import consistency

    assert consistency._parse_args(["--update-results"]).output == RESULTS_DIR
    assert consistency.main(["--images", "1", "--qualities", "40", "-o", str(tmp_path)]) == 0
    (row,) = json.loads((tmp_path / "consistency.json").read_text())["summary"]
    assert row["quality"] == 40 and row["images"] == 1
    assert row["share_projected"] >= 0.999 and row["share_restored"] < row["share_projected"] - 0.005  # it leaves them
    assert row["psnr_projected"] >= row["psnr_restored"] - 0.02
    assert "| 40 |" in (tmp_path / "consistency.md").read_text()


def test_startup_benchmark_splits_a_one_image_process(tmp_path, shared_dir):
    from benchmarks import startup

    assert startup._parse_args(["--update-results"]).output == RESULTS_DIR
    assert startup.main(["--repeats", "1", "-o", str(tmp_path)]) == 0
    cpu = {r["step"]: r["this"] for r in json.loads((tmp_path / "startup.json").read_text())["rows"]}
    assert cpu["import runtime"] < cpu["import runtime.infer"]  # the façade loads nothing heavy
    first = cpu["Restorer() with the self-test, first run (in process)"]
    assert cpu["Restorer() with the self-test recorded (in process)"] < first  # the record saves the test
    assert cpu["Restorer() without the self-test (in process)"] < first
    assert (
        "Start-up = the one-image process (self-test recorded by an earlier run) − its steady restore"
        in (tmp_path / "startup.md").read_text()
    )


def test_colour_split_measures_luma_chroma_and_the_colour_shift(tmp_path):
    """The split is right on a planted change (a red cast: shift +4 on R only; a luma-free change: Y untouched), and
    the command measures the bundled model on a small folder through the runtime (the JPEG row has no time)."""
    from benchmarks import colour_split

    rng = np.random.default_rng(0)
    original = rng.integers(40, 200, (32, 48, 3), dtype=np.uint8)
    red = original.copy()
    red[..., 0] += 4
    scores = colour_split.summarise([colour_split.split_scores(red, original)])
    assert scores["shift_rgb"] == [4.0, 0.0, 0.0] and scores["cbcr"] < 60 and scores["y"] < 60
    cb_axis = np.array([0.0, -0.344136, 1.772]) * 6  # +6 in Cb, luma unchanged
    moved = np.clip(np.round(original + cb_axis), 0, 255).astype(np.uint8)
    moved_scores = colour_split.split_scores(moved, original)
    assert moved_scores["y"] > 50 > moved_scores["cbcr"]  # only rounding reaches luma

    folder = tmp_path / "photos"
    folder.mkdir()
    for name, rgb in (("astronaut", data.astronaut()[:96, :128]), ("coffee", data.coffee()[:96, :128])):
        cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert (
        colour_split.main(["--data", str(folder), "--quality", "10", "-o", str(tmp_path / "out"), "--threads", "1"])
        == 0
    )
    results = json.loads((tmp_path / "out" / "colour_split.json").read_text())["results"]["10"]
    (name,) = [n for n in results if n != "JPEG"]
    assert name.startswith("default [") and "s_per_mp" not in results["JPEG"] and results[name]["s_per_mp"] > 0
    assert results[name]["rgb"] > results["JPEG"]["rgb"]  # the bundled model gains on q10
    assert len(results[name]["shift_rgb"]) == 3

    # --files: restored as runtime.infer restores JPEG files, projected onto each file's constraint, which at q40
    # can only bring the restoration closer to the original than the network's output alone
    scores = {}
    for how in ("arrays", "files"):
        argv = ["--data", str(folder), "--quality", "40", "-o", str(tmp_path / how), "--threads", "1"]
        assert colour_split.main(argv + (["--files"] if how == "files" else [])) == 0
        (scores[how],) = [r for n, r in _colour_rows(tmp_path / how, "40") if n != "JPEG"]
    assert scores["files"]["rgb"] > scores["arrays"]["rgb"] + 0.05


def _colour_rows(folder: Path, quality: str) -> list[tuple[str, dict]]:
    return list(json.loads((folder / "colour_split.json").read_text())["results"][quality].items())
