"""benchmarks.figures: the README's pictures from measurements (tiny synthetic test set, bundled model, no peers)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from benchmarks import figures
from benchmarks.common import DEFAULT_OUTPUT

pytestmark = pytest.mark.slow  # exports, trains, builds or runs commands: not in the inner loop


def _tiny_eval_root(root):
    """``root/LIVE1`` with two 128² colour PNGs with edges and texture (JPEG q10 damages them visibly)."""
    rng = np.random.default_rng(0)
    folder = root / "LIVE1"
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:128, 0:128]
    for i, name in enumerate(("a", "b")):
        stripes = ((np.sin(xx / (2.0 + i)) + np.cos(yy / 5.0)) * 60 + 128)[..., None]
        rgb = np.clip(stripes + rng.normal(0, 8, (128, 128, 3)) + [[[40 * i, 0, -30]]], 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"{name}.png"), rgb[..., ::-1])
    return root


def test_best_crop_finds_the_window_where_restoration_helped_most():
    original = np.zeros((64, 80, 3), np.uint8)
    jpeg = original + 20
    restored = jpeg.copy()
    restored[30:46, 50:66] = 0  # perfectly restored only here
    assert figures.best_crop(jpeg, restored, original, 16) == (30, 50)


def test_figures_cli_writes_pictures_and_numbers(tmp_path):
    root = _tiny_eval_root(tmp_path / "eval")
    out = tmp_path / "out"
    argv = ["--data-root", str(root), "--qualities", "10", "20", "--hero", "LIVE1/a", "LIVE1/b", "--no-peers"]
    assert figures.main([*argv, "-o", str(out), "-q"]) == 0
    payload = json.loads((out / "figures.json").read_text())
    methods = payload["gains"]["methods"]
    assert payload["gains"]["images"] == ["a", "b"] and not payload["subset"]
    for name in ("WCDGAN default FP32", "WCDGAN default INT8"):
        for q in ("10", "20"):
            m = methods[name][q]
            assert m["gain_db"] == pytest.approx(m["psnr"] - methods["JPEG"][q]["psnr"])
    assert payload["full_size_record"]["10"]["gain_db"] > 0  # the GPU-window record: LIVE1 by name, all images
    assert f"| {figures.FULL_SIZE_LABEL} |" in (out / "figures.md").read_text()
    hero = cv2.imread(str(out / "hero.png"))
    crop, zoom = figures.HeroSettings.crop, figures.HeroSettings.zoom
    assert hero.shape[1] == 3 * crop * zoom + 2 * 6 and hero.shape[0] == 2 * (crop * zoom + 26) + 6
    assert cv2.imread(str(out / "gain.png")) is not None
    md = (out / "figures.md").read_text()
    assert "| WCDGAN default INT8 |" in md and "a subset" not in md
    for crop_facts in payload["hero"]["crops"]:
        assert all(0 <= v <= 128 - crop for v in crop_facts["crop_yx"])
        assert set(crop_facts["crop_psnr"]) == set(crop_facts["image_psnr"]) == {"jpeg", "restored"}


def test_figures_subset_says_so_and_leaves_out_the_full_set_record(tmp_path):
    root = _tiny_eval_root(tmp_path / "eval")
    argv = ["--data-root", str(root), "--images", "1", "--qualities", "10", "--hero", "LIVE1/a", "--no-peers"]
    assert figures.main([*argv, "-o", str(tmp_path / "out"), "-q"]) == 0
    payload = json.loads((tmp_path / "out" / "figures.json").read_text())
    assert payload["subset"] and payload["gains"]["images"] == ["a"]
    md = (tmp_path / "out" / "figures.md").read_text()
    assert "the first 1 by name: a subset" in md and "is not drawn" in md
    assert f"| {figures.FULL_SIZE_LABEL}, all 29 images |" in md


def test_figures_writes_into_the_checkout_only_when_asked(tmp_path, monkeypatch, capsys):
    assert figures._parse_args([]).output == DEFAULT_OUTPUT
    assert figures._parse_args(["--update-docs"]).output == figures.DOCS_IMAGES
    with pytest.raises(SystemExit):
        figures._parse_args(["--update-docs", "-o", str(tmp_path)])
    capsys.readouterr()
    assert figures.main(["--data-root", str(tmp_path / "nowhere"), "--no-peers", "-o", str(tmp_path), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no such test image" in err and len(err.splitlines()) == 1
