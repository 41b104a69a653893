"""Compare output (runtime.compare, runtime.report_html) and --strength (runtime.strength)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import html
import html.parser
import json
import logging
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from common.color import rgb_to_y
from common.metrics import psnr, psnr_b, ssim
from runtime import report_html
from runtime.compare import (
    BACKGROUND,
    GAP,
    LABEL_HEIGHT,
    REPORT_NAME,
    CompareRun,
    CompareSettings,
    RunFacts,
    compare_images,
    find_reference,
    layout_of,
    measure,
    pick_crops,
    render,
)
from runtime.io import ImageError, read_image, write_image
from runtime.jpeg_quality import ijg_table
from runtime.report_types import CROP_COLOURS
from runtime.strength import blend, check_strength
from tests.conftest import assert_imports_without_torch
from tests.runtime_fixtures import write_jpeg

RGB = data.astronaut()[100:196, 150:278]  # 96×128, texture and edges
FACTS = RunFacts("default", "int8", "ort-cpu", 1.25)
CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = "<img src=x onerror=alert(1)>&\"'"


def _restoration(jpeg: np.ndarray) -> np.ndarray:
    """A stand-in for the model: any smoothing changes the JPEG where its blocks are."""
    return cv2.bilateralFilter(jpeg, 7, 40, 4)


def _files(folder: Path, name: str = "photo", quality: int = 15) -> tuple[Path, Path, Path]:
    """(input JPEG, its 'restoration' PNG, the original PNG in folder/ref) of :data:`RGB`."""
    (folder / "ref").mkdir(parents=True, exist_ok=True)
    original = folder / "ref" / f"{name}.png"
    write_image(original, RGB)
    src = write_jpeg(folder / f"{name}.jpg", RGB, quality)
    restored = folder / f"{name}_wcdgan.png"
    write_image(restored, _restoration(read_image(src).pixels))
    return src, restored, original


# -- pictures ----------------------------------------------------------------------------------------------------


def test_side_by_side_geometry_images_and_labels():
    jpeg = RGB
    restored, reference = _restoration(jpeg), np.ascontiguousarray(RGB[::-1])
    settings = CompareSettings(crops=2, crop_size=24, zoom=3)
    comparison = compare_images(jpeg, restored, reference, "JPEG q15", settings)
    picture = render(comparison, settings)
    layout = layout_of(comparison, settings)
    assert picture.dtype == np.uint8 and picture.shape == (layout.height, layout.width, 3)
    column = max(128, 24 * 3, 120)
    assert layout.width == 3 * column + 4 * GAP
    assert layout.crops_per_row == 1  # a 72-px crop and a gap fit once in a 128-px column
    assert layout.height == GAP + LABEL_HEIGHT + GAP + 96 + GAP + 2 * (24 * 3 + GAP)
    wide = dataclasses.replace(layout, image_size=(96, 400))  # 400-px columns hold 5 crops of 72 px side by side
    assert wide.crops_per_row == 5 and wide.crop_origin(1, 0) == (wide.crop_origin(0, 0)[0], wide.column_x(0) + 80)
    assert wide.height == GAP + LABEL_HEIGHT + GAP + 96 + GAP + 72 + GAP
    labels = []
    for col, image in enumerate((jpeg, restored, reference)):
        y, x = layout.image_origin(col)
        shown = picture[y : y + 96, x : x + 128]
        outlined = np.zeros((96, 128), bool)  # the crop frames and their number tags are drawn over the image
        for cy, cx in comparison.corners:
            outlined[cy : cy + 24, cx : cx + 24] = True
            outlined[cy + 2 : cy + 22, cx + 2 : cx + 22] = False
            outlined[cy : cy + 19, cx : cx + 15] = True  # the number tag: 9×12 px of text and margins
        np.testing.assert_array_equal(shown[~outlined], image[~outlined])
        for row, (cy, cx) in enumerate(comparison.corners):
            y, x = layout.crop_origin(row, col)
            zoomed = picture[y : y + 72, x : x + 72]
            expected = np.repeat(np.repeat(image[cy : cy + 24, cx : cx + 24], 3, axis=0), 3, axis=1)
            np.testing.assert_array_equal(zoomed[24:-2, 24:-2], expected[24:-2, 24:-2])  # inside frame and tag
        rows, cols = layout.label_box(col)
        label = picture[rows, cols]
        assert (label.max(axis=2) > 200).sum() > 40, "no text in the label bar"
        labels.append(label)
        gap = picture[rows, cols.stop : cols.stop + GAP]
        assert (gap == BACKGROUND).all()
    assert not np.array_equal(labels[0], labels[1]) and not np.array_equal(labels[1], labels[2])


@pytest.mark.parametrize("chroma_step, label", [(0, "JPEG q15"), (1, "JPEG q~15")], ids=["libjpeg", "custom"])
def test_the_input_label_says_whether_its_quality_is_exact(tmp_path, chroma_step, label):
    """The input column is labelled 'JPEG q15' for libjpeg's q15 tables, 'JPEG q~15' (an estimate) for tables one
    step off them."""
    chroma = ijg_table(15, chroma=True)
    chroma[0] += chroma_step
    src, restored = tmp_path / "photo.jpg", tmp_path / "photo_wcdgan.png"
    Image.fromarray(RGB).save(src, qtables=[list(ijg_table(15)), list(chroma)])
    jpeg = read_image(src).pixels
    write_image(restored, _restoration(jpeg))
    with CompareRun(tmp_path / "cmp") as run:
        picture = read_image(run.add(src, restored, FACTS)).pixels
    settings = CompareSettings()
    expected = render(compare_images(jpeg, _restoration(jpeg), None, label, settings), settings)
    np.testing.assert_array_equal(picture, expected)


def test_crops_land_where_the_restoration_changed_most():
    rng = np.random.default_rng(1)
    jpeg = rng.integers(0, 200, (120, 160, 3), dtype=np.uint8)
    restored = jpeg.copy()
    planted = {(70, 100): 50, (8, 12): 35, (80, 20): 20}  # top-left corner: added value, strongest first
    for (y, x), amount in planted.items():
        restored[y : y + 16, x : x + 16] += np.uint8(amount)
    restored[:, 150:] += np.uint8(3)  # a weak change everywhere in a strip, smaller than every planted one
    comparison = compare_images(jpeg, restored, settings=CompareSettings(crops=3, crop_size=16, zoom=2))
    assert list(comparison.corners) == list(planted)


def test_crops_never_overlap_and_stop_when_none_fit():
    change = np.zeros((64, 64), np.float32)
    change[10:30, 10:30] = 1.0  # one changed square, larger than a crop
    corners = pick_crops(change, 16, 6)
    assert corners[0] == (10, 10) and 1 < len(corners) <= 6
    for i, (ay, ax) in enumerate(corners):
        for by, bx in corners[i + 1 :]:
            assert abs(ay - by) >= 16 or abs(ax - bx) >= 16, corners
    assert len(pick_crops(np.zeros((20, 20), np.float32), 16, 3)) == 1  # a second 16-px window cannot fit


@pytest.mark.parametrize("shape", [(200, 40), (40, 200)])
def test_an_image_narrower_or_lower_than_a_crop_is_compared(tmp_path, shape):
    """A strip 40 px across (the default crops are 64 px) gets its picture, with crops as wide as the strip, and its
    entry in the report."""
    src = write_jpeg(tmp_path / "strip.jpg", cv2.resize(RGB, shape[::-1]), 15)
    restored = tmp_path / "strip_wcdgan.png"
    write_image(restored, _restoration(read_image(src).pixels))
    with CompareRun(tmp_path / "cmp") as run:
        picture = run.add(src, restored, FACTS)
    assert picture == tmp_path / "cmp" / "strip_compare.png"
    crops = CompareSettings().crops
    zoomed = 40 * CompareSettings().zoom  # each crop 40 px, zoomed, in a row of its own below the labelled image
    assert read_image(picture).pixels.shape[0] == GAP + LABEL_HEIGHT + GAP + shape[0] + crops * (GAP + zoomed) + GAP
    text = (tmp_path / "cmp" / REPORT_NAME).read_text(encoding="utf-8")
    assert text.count('<section class="image"') == 1 and text.count("<img ") == 3  # before, after, crops


def test_imports_without_torch():
    assert_imports_without_torch("import runtime.compare, runtime.report_html, runtime.strength")


def test_settings_are_validated():
    for bad in ({"crops": 7}, {"crop_size": 4}, {"zoom": 0}, {"zoom": True}, {"slider_side": 10.5}, {"embedded": -1}):
        with pytest.raises(ValueError):
            CompareSettings(**bad)


# -- metrics -----------------------------------------------------------------------------------------------------


def test_measure_is_common_metrics_and_gray_inputs_use_the_y_protocol():
    jpeg = cv2.blur(RGB, (3, 3))
    restored = _restoration(jpeg)
    m = measure(jpeg, restored, RGB)
    assert (m.jpeg.psnr, m.jpeg.ssim, m.jpeg.psnr_b) == (psnr(jpeg, RGB), ssim(jpeg, RGB), psnr_b(jpeg, RGB))
    assert m.restored.psnr_b == psnr_b(restored, RGB)
    y = rgb_to_y(RGB)
    gray = measure(rgb_to_y(jpeg), rgb_to_y(restored), RGB)
    assert gray.jpeg.psnr == psnr(rgb_to_y(jpeg), y) and gray.restored.ssim == ssim(rgb_to_y(restored), y)
    sixteen = measure(jpeg.astype(np.uint16) * 257, restored.astype(np.uint16) * 257, RGB)
    assert sixteen == m  # 16-bit images are measured on 8 bits
    with pytest.raises(ValueError, match="reference"):
        measure(jpeg, restored, RGB[:-1])


def _report_metrics(text: str) -> list[list[str]]:
    """The three metric cells of each summary row (and the mean row) of a report."""
    cell = r'<td class="n[^"]*"[^>]*>([^<]*)</td>'
    return [list(r) for r in re.findall(cell * 3, text)]


def _cell(jpeg: float, restored: float, digits: int) -> str:
    return f"{jpeg:.{digits}f} → {restored:.{digits}f}" + (" ▼" if restored < jpeg else "")


def test_report_metrics_equal_common_metrics(tmp_path):
    first = _files(tmp_path, "a", 15)
    second = _files(tmp_path, "b", 30)
    with CompareRun(tmp_path / "cmp", tmp_path / "ref") as run:
        for src, restored, _ in (first, second):
            run.add(src, restored, FACTS)
    text = (tmp_path / "cmp" / REPORT_NAME).read_text(encoding="utf-8")
    expected, values = [], []
    for src, restored, original in (first, second):
        j, r, o = (read_image(p).pixels for p in (src, restored, original))
        triple = [(psnr(j, o), psnr(r, o)), (ssim(j, o), ssim(r, o)), (psnr_b(j, o), psnr_b(r, o))]
        values.append(triple)
        expected.append([_cell(a, b, d) for (a, b), d in zip(triple, (2, 4, 2), strict=True)])
    means = [np.mean([v[k] for v in values], axis=0) for k in range(3)]
    expected.append([_cell(a, b, d) for (a, b), d in zip(means, (2, 4, 2), strict=True)])
    assert _report_metrics(text) == expected
    assert "JPEG q15" in text and "JPEG q30" in text and "int8" in text and "ort-cpu" in text and "1.25" in text


def test_report_names_the_channels_and_flags_worse_metrics(tmp_path):
    src, _, original = _files(tmp_path)
    jpeg = read_image(src).pixels
    noisy = np.clip(jpeg + np.random.default_rng(3).normal(0, 25, jpeg.shape), 0, 255).astype(np.uint8)
    write_image(tmp_path / "worse.png", noisy)  # further from the original than the JPEG, on every metric
    write_image(tmp_path / "gray.png", rgb_to_y(jpeg))
    write_image(tmp_path / "gray_out.png", rgb_to_y(RGB))  # better: the original's Y itself
    with CompareRun(tmp_path / "cmp", tmp_path / "ref") as run:
        run.add(src, original, FACTS)  # the original itself: better
        run.add(src, tmp_path / "worse.png", FACTS)
        shutil.copy(original, tmp_path / "ref" / "gray.png")
        run.add(tmp_path / "gray.png", tmp_path / "gray_out.png", FACTS)
    text = (tmp_path / "cmp" / REPORT_NAME).read_text(encoding="utf-8")
    better, worse, gray, _ = _report_metrics(text)
    assert [c.endswith("▼") for c in better + worse + gray] == [False] * 3 + [True] * 3 + [False] * 3
    rows = text.split("<tfoot>")[0]  # the mean row's flags depend on all three
    assert rows.count('<td class="n worse" title="the restoration scores below the input JPEG">') == 3
    assert re.findall(r"<td>(RGB|Y|gray)</td><td class=\"n", text) == ["RGB", "RGB", "Y"]
    assert text.count("(RGB; JPEG → restored)") == 2 and text.count("(Y; JPEG → restored)") == 1
    assert "RGB: all three" in text and "▼: the restoration scores below the input" in text


def test_a_large_report_embeds_the_first_images_and_lists_the_rest(tmp_path):
    src, restored, _ = _files(tmp_path)
    with CompareRun(tmp_path / "cmp", tmp_path / "ref", CompareSettings(embedded=1)) as run:
        run.add(src, restored, FACTS)
        run.add(src, restored, FACTS)  # the same stem again: photo_compare-2.png
    text = (tmp_path / "cmp" / REPORT_NAME).read_text(encoding="utf-8")
    assert text.count('<section class="image"') == 2 and text.count('<div class="ba"') == 1
    assert text.count("<img ") == 3  # before, after and crops of the first image only
    assert len(_report_metrics(text)) == 3  # both listed with their metrics, and the mean
    assert "the other 1 are listed with their facts, their side-by-side pictures beside this report" in text
    assert "Not embedded (the report embeds its first 1 images): its side-by-side picture photo_compare-2.png" in text
    assert (tmp_path / "cmp" / "photo_compare-2.png").is_file()
    assert CompareSettings().embedded == 200


def test_missing_reference_and_mismatched_reference(tmp_path, expect_warning):
    src, restored, _ = _files(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    write_image(other / "photo.png", RGB[:50])
    with CompareRun(tmp_path / "cmp", other) as run, pytest.raises(ImageError, match=r"photo\.jpg.*reference"):
        run.add(src, restored, FACTS)
    (other / "photo.png").unlink()
    with expect_warning("no original"), CompareRun(tmp_path / "cmp", other) as run:
        run.add(src, restored, FACTS)
    assert not _report_metrics((tmp_path / "cmp" / REPORT_NAME).read_text(encoding="utf-8"))


def test_a_run_without_originals_warns_of_none_missing(tmp_path, caplog):
    """``--compare`` without ``--reference``: no image is 'missing' its original, so stderr gets no warning."""
    src, restored, _ = _files(tmp_path)
    with caplog.at_level(logging.WARNING), CompareRun(tmp_path / "cmp") as run:
        run.add(src, restored, FACTS)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert (tmp_path / "cmp" / REPORT_NAME).is_file()


@pytest.mark.parametrize("reference", ["photo.jpg", "missing"])
def test_the_originals_must_be_a_folder(tmp_path, reference):
    """An originals folder that is a file, or is not there, is refused before anything is written (else every image
    would be shown without metrics, a warning each)."""
    _files(tmp_path)
    with pytest.raises(ValueError) as caught:
        CompareRun(tmp_path / "cmp", tmp_path / reference)
    assert str(caught.value) == f"{tmp_path / reference}: no such folder (the originals for --reference)"
    assert not (tmp_path / "cmp").exists()


def test_sixteen_bit_gray_and_alpha_inputs_are_shown_on_8_bits(tmp_path):
    gray16 = rgb_to_y(RGB).astype(np.uint16) * 257
    alpha = np.full(gray16.shape, 7, np.uint16)
    write_image(tmp_path / "g.png", gray16, alpha)
    write_image(tmp_path / "g_out.png", gray16 // 2, alpha)
    (tmp_path / "ref").mkdir()
    write_image(tmp_path / "ref" / "g.png", RGB)  # a colour original of a gray input: its Y is measured
    with CompareRun(tmp_path / "cmp", tmp_path / "ref") as run:
        picture = read_image(run.add(tmp_path / "g.png", tmp_path / "g_out.png", FACTS)).pixels
    assert picture.dtype == np.uint8 and picture.ndim == 3
    y = rgb_to_y(RGB)
    expected = f"∞ → {psnr(y // 2, y):.2f} ▼"  # the input equals the original's Y: PSNR infinite, worse after
    assert _report_metrics((tmp_path / "cmp" / REPORT_NAME).read_text(encoding="utf-8"))[0][0] == expected


def test_sixteen_bit_samples_are_shown_and_measured_on_their_nearest_8_bit_level(tmp_path):
    """A 16-bit input's samples a little below or above an 8-bit level (33100 is 128.8: shown as 129) land on that
    level: its picture is the one of those 8-bit images, and it equals its 8-bit original exactly (PSNR ∞)."""
    eight = np.clip(RGB, 1, 254)
    wide = np.int32  # room for 257 × a level
    near = np.where(np.indices(eight.shape).sum(axis=0) % 2, -100, 100)  # ±0.39 of a level, alternating
    restored = np.clip(_restoration(eight), 1, 254)
    write_image(tmp_path / "photo.png", (eight.astype(wide) * 257 + near).astype(np.uint16))
    write_image(tmp_path / "photo_out.png", (restored.astype(wide) * 257 + near).astype(np.uint16))
    (tmp_path / "ref").mkdir()
    write_image(tmp_path / "ref" / "photo.png", eight)
    settings = CompareSettings()
    with CompareRun(tmp_path / "cmp", tmp_path / "ref", settings) as run:
        picture = read_image(run.add(tmp_path / "photo.png", tmp_path / "photo_out.png", FACTS)).pixels
    expected = render(compare_images(eight, restored, eight, "input", settings), settings)
    np.testing.assert_array_equal(picture, expected)
    psnr_cell = _report_metrics((tmp_path / "cmp" / REPORT_NAME).read_text(encoding="utf-8"))[0][0]
    assert psnr_cell == f"∞ → {psnr(restored, eight):.2f} ▼"


def test_find_reference_prefers_lossless_and_never_the_input(tmp_path):
    for name in ("x.jpg", "x.png", "y.jpg"):
        (tmp_path / name).write_bytes(b"")
    assert find_reference(tmp_path, tmp_path / "x.jpg") == tmp_path / "x.png"
    assert find_reference(tmp_path, tmp_path / "y.jpg") is None  # only the input itself has that name
    assert find_reference(tmp_path, Path("elsewhere/y.jpeg")) == tmp_path / "y.jpg"
    assert find_reference(tmp_path, Path("elsewhere/x.jpg")) == tmp_path / "x.png"  # lossless before the JPEG


def test_an_original_with_an_upper_case_suffix_is_measured(tmp_path, caplog):
    """--reference with the original named photo.PNG (as cameras and Windows tools write): the report shows the
    metrics it shows for photo.png, and nothing is warned."""
    src, restored, original = _files(tmp_path)
    with CompareRun(tmp_path / "lower", tmp_path / "ref") as run:
        run.add(src, restored, FACTS)
    original.rename(original.with_suffix(".PNG"))
    with caplog.at_level(logging.WARNING), CompareRun(tmp_path / "upper", tmp_path / "ref") as run:
        run.add(src, restored, FACTS)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    expected = _report_metrics((tmp_path / "lower" / REPORT_NAME).read_text(encoding="utf-8"))
    assert expected and _report_metrics((tmp_path / "upper" / REPORT_NAME).read_text(encoding="utf-8")) == expected


@pytest.mark.parametrize("reference, source", [("in", "{tmp}/in/a.png"), ("{tmp}/in", "in/a.png"),
                                               ("in/../in", "in/a.png")])  # fmt: skip
def test_the_input_is_never_its_own_reference_however_spelled(tmp_path, monkeypatch, expect_warning, reference,
                                                               source):  # fmt: skip
    """--reference naming the inputs' folder by another spelling than the input's: a PNG input is not measured
    against itself (PSNR ∞): it has no original there, and is shown without metrics."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.png", RGB)
    write_image(tmp_path / "a_out.png", _restoration(RGB))
    reference, source = (Path(p.format(tmp=tmp_path)) for p in (reference, source))
    with expect_warning("no original"), CompareRun(tmp_path / "cmp", reference) as run:
        run.add(source, tmp_path / "a_out.png", FACTS)
    assert not _report_metrics((tmp_path / "cmp" / REPORT_NAME).read_text(encoding="utf-8"))


# -- report: escaping, atomicity ---------------------------------------------------------------------------------


def test_report_escapes_hostile_names_and_names_nothing_outside(tmp_path):
    src, restored, _ = _files(tmp_path)
    hostile = tmp_path / f"{HOSTILE}.jpg"
    src.rename(hostile)
    facts = RunFacts(f"model{HOSTILE}", f"int8{HOSTILE}", f"cpu{HOSTILE}", 0.5)
    with CompareRun(tmp_path / "cmp") as run:
        picture = run.add(hostile, restored, facts)
    assert picture == tmp_path / "cmp" / f"{HOSTILE}_compare.png" and picture.is_file()
    text = (tmp_path / "cmp" / REPORT_NAME).read_text(encoding="utf-8")
    assert "<img src=x" not in text and "onerror=alert(1)>" not in text
    assert html.escape(f"{hostile}") in text and html.escape(f"model{HOSTILE}") in text
    assert text.count("<img ") == 3  # before, after, crops: nothing the names brought in
    assert re.findall(r'(?:src|href)="(?!data:image/png;base64,|#img-)', text) == []
    assert not re.search(r"https?:|//[a-z]", re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]*", "", text))


def test_a_hostile_name_past_the_embedded_limit_is_escaped(tmp_path):
    """An image listed but not embedded: its picture's name is in the note as text, never as markup."""
    src, restored, _ = _files(tmp_path)
    hostile = tmp_path / f"{HOSTILE}.jpg"
    hostile.write_bytes(src.read_bytes())
    with CompareRun(tmp_path / "cmp", settings=CompareSettings(embedded=1)) as run:
        run.add(src, restored, FACTS)
        run.add(hostile, restored, FACTS)
    text = (tmp_path / "cmp" / REPORT_NAME).read_text(encoding="utf-8")
    assert f"its side-by-side picture {html.escape(HOSTILE)}_compare.png is beside this report" in text
    assert "<img src=x" not in text and text.count("<img ") == 3  # the first image's three, nothing from the name


def test_report_policy_allows_only_its_own_script(tmp_path):
    src, restored, _ = _files(tmp_path)
    with CompareRun(tmp_path / "cmp") as run:
        run.add(src, restored, FACTS)
    text = (tmp_path / "cmp" / REPORT_NAME).read_text(encoding="utf-8")
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', text).group(1)
    scripts = re.findall(r"<script>(.*?)</script>", text, re.S)
    assert len(scripts) == 1 and "on" not in re.findall(r"<[^>]* (on)[a-z]+=", text)  # no inline event handlers
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy and policy.count("unsafe-inline") == 1  # styles only
    assert "style-src 'unsafe-inline'" in policy


def test_outputs_are_atomic_and_an_interrupted_run_writes_no_report(tmp_path, monkeypatch):
    src, restored, _ = _files(tmp_path)
    folder = tmp_path / "cmp"
    with CompareRun(folder) as run:
        run.add(src, restored, FACTS)
        run.add(src, restored, FACTS)  # the same stem again: a second, numbered picture
    assert sorted(p.name for p in folder.iterdir()) == ["photo_compare-2.png", "photo_compare.png", REPORT_NAME]
    old = (folder / REPORT_NAME).read_bytes()
    with pytest.raises(KeyboardInterrupt), CompareRun(folder) as run:
        run.add(src, restored, FACTS)
        raise KeyboardInterrupt
    assert (folder / REPORT_NAME).read_bytes() == old  # no report for an interrupted run
    monkeypatch.setattr(report_html.shutil, "copyfileobj", _fail)
    with pytest.raises(OSError, match="disk full"), CompareRun(folder) as run:
        run.add(src, restored, FACTS)
    assert (folder / REPORT_NAME).read_bytes() == old  # a failing write leaves the old report whole
    assert sorted(p.name for p in folder.iterdir()) == ["photo_compare-2.png", "photo_compare.png", REPORT_NAME]


def test_a_long_name_leaves_room_for_its_number(tmp_path):
    """Two inputs of one 250-byte stem (the longest names keep their suffix within 255 bytes): both pictures are
    written, the second numbered, each name cut to fit."""
    stem = "é" * 125  # 250 bytes of UTF-8
    restored = write_jpeg(tmp_path / "restored.jpg", RGB, 90)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    sources = [write_jpeg(tmp_path / name / f"{stem}.jpg", RGB, 15) for name in ("a", "b")]
    with CompareRun(tmp_path / "cmp") as run:
        pictures = [run.add(src, restored, FACTS) for src in sources]
    assert [p.is_file() for p in pictures] == [True, True]
    assert pictures[1].name.endswith("_compare-2.png") and pictures[1].name.startswith("é" * 100)
    assert all(len(os.fsencode(p.name)) <= 255 for p in pictures)


def _fail(*args: object) -> None:
    raise OSError(28, "disk full")


def test_a_picture_never_replaces_an_input(tmp_path):
    src, restored, _ = _files(tmp_path)
    clash = tmp_path / "photo_compare.png"
    shutil.copy(restored, clash)
    with CompareRun(tmp_path) as run:  # the compare folder is the input folder
        picture = run.add(clash, restored, FACTS)
    assert picture == tmp_path / "photo_compare_compare.png"
    with CompareRun(tmp_path) as run:
        assert run.add(src, clash, FACTS) == tmp_path / "photo_compare-2.png"  # the restoration it reads is kept


def test_a_long_utf_8_name_gets_a_picture_name_the_file_system_takes(tmp_path):
    """A 250-byte stem of 125 two-byte characters (its JPEG's name: 254 bytes): the picture's name is cut to fit 255
    bytes, whole characters kept, and the picture is written."""
    src = write_jpeg(tmp_path / ("é" * 125 + ".jpg"), RGB, 15)
    write_image(tmp_path / "out.png", _restoration(read_image(src).pixels))
    with CompareRun(tmp_path / "cmp") as run:
        picture = run.add(src, tmp_path / "out.png", FACTS)
    assert picture.is_file() and picture.name.endswith("_compare.png") and set(picture.name[:-12]) == {"é"}
    assert len(os.fsencode(picture.name)) <= 255


# -- --strength --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("strength", [0.01, 0.3, 0.5, 0.995, 1.0])
def test_blend_is_the_rounded_linear_mix(dtype, strength):
    """blend's contract at every strength (1: the restoration's values; 0.995 still a blend): a new array without
    ``out``, else ``out`` filled and returned — a caller's buffer or ``restored`` itself; the inputs are never written
    otherwise."""
    rng = np.random.default_rng(2)
    top = np.iinfo(dtype).max
    jpeg = rng.integers(0, top, (300, 700, 3), dtype=dtype, endpoint=True)  # several bands of rows
    restored = rng.integers(0, top, jpeg.shape, dtype=dtype, endpoint=True)
    expected = np.rint(jpeg + strength * (restored.astype(np.float64) - jpeg)).astype(dtype)
    out = blend(jpeg, restored, strength)
    assert out.dtype == dtype and out.shape == jpeg.shape
    np.testing.assert_array_equal(out, expected)
    assert strength == 1 or not np.array_equal(out, restored)  # every lighter touch shows where the images differ
    assert ((out >= np.minimum(jpeg, restored)) & (out <= np.maximum(jpeg, restored))).all()
    assert not np.shares_memory(out, restored) and not np.shares_memory(out, jpeg)  # a new array, as documented
    buffer = np.zeros_like(restored)  # a caller's own array: filled, returned, the inputs left as they were
    inputs = jpeg.copy(), restored.copy()
    assert blend(jpeg, restored, strength, out=buffer) is buffer
    np.testing.assert_array_equal(buffer, expected)
    np.testing.assert_array_equal(jpeg, inputs[0])
    np.testing.assert_array_equal(restored, inputs[1])
    in_place = restored.copy()
    assert blend(jpeg, in_place, strength, out=in_place) is in_place
    np.testing.assert_array_equal(in_place, expected)


def test_blend_keeps_gray_and_checks_its_arguments():
    gray = np.array([[0, 100], [200, 255]], np.uint8)
    np.testing.assert_array_equal(blend(gray, np.full_like(gray, 100), 0.5), [[50, 100], [150, 178]])  # 177.5 → even
    for bad in (0, -0.1, 1.01, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match="strength"):
            check_strength(bad)
    with pytest.raises(ValueError, match="uint8 or uint16"):
        blend(gray, gray.astype(np.uint16), 0.5)
    for out in (np.empty((2, 2), np.uint16), np.empty((2, 3), np.uint8)):  # a wrong dtype or a wrong shape
        with pytest.raises(ValueError) as caught:
            blend(gray, gray, 0.5, out=out)
        assert str(caught.value) == f"out must be a uint8 array of shape (2, 2), got {out.dtype} {out.shape}"


@pytest.mark.parametrize("strength", [0, 0.0, -0.5, 1.5, 2, float("nan"), float("inf"), True, "0.5", None])
def test_blend_refuses_a_strength_outside_0_to_1_and_leaves_out_as_it_was(strength):
    """runtime.strength.blend is public: a strength of 0 (no restoration), past 1 (extrapolated, wrapping uint8), NaN,
    a bool or a non-number raises ValueError naming it, and an ``out`` given (here the restoration, blended in place)
    is not written."""
    gray = np.array([[0, 100], [200, 255]], np.uint8)
    restored = np.array([[10, 120], [190, 250]], np.uint8)
    with pytest.raises(ValueError) as caught:
        blend(gray, restored, strength, out=restored)
    assert str(caught.value) == f"strength must be a number in (0, 1], got {strength!r}"
    np.testing.assert_array_equal(restored, [[10, 120], [190, 250]])


@pytest.mark.parametrize("strength", [np.float32(0.5), np.float64(0.5), np.float16(0.5), 1, np.int64(1)])
def test_a_numpy_or_integer_strength_is_a_number(strength):
    """A strength read from an array (np.float32(0.5)) blends like 0.5, the integer 1 like 1.0 (the full
    restoration), and both are accepted by the settings."""
    from runtime.settings import RestoreSettings

    gray = np.array([[0, 100], [200, 255]], np.uint8)
    restored = np.full_like(gray, 100)
    np.testing.assert_array_equal(blend(gray, restored, strength), blend(gray, restored, float(strength)))
    assert RestoreSettings(strength=strength).strength == float(strength)


def test_blend_covers_every_row_of_a_tall_image():
    """600,000 × 1 gray: more rows than one band holds (4 MiB of float64 per band); every row is blended."""
    jpeg = np.arange(600_000, dtype=np.uint32).astype(np.uint8).reshape(-1, 1)
    restored = np.full_like(jpeg, 200)
    np.testing.assert_array_equal(blend(jpeg, restored, 0.5), np.rint((jpeg + restored.astype(float)) / 2))


def test_blend_works_on_an_image_wider_than_one_band():
    """1 × 200,000 RGB: one row alone is over a band's 4 MiB of float64; the image is blended, not refused."""
    jpeg = np.arange(200_000 * 3, dtype=np.uint32).astype(np.uint8).reshape(1, 200_000, 3)
    restored = np.full_like(jpeg, 200)
    np.testing.assert_array_equal(blend(jpeg, restored, 0.5), np.rint((jpeg + restored.astype(float)) / 2))


def test_restorer_strength_blends_every_result(tmp_path):
    """Restorer(strength=S): the call, restoring into ``out`` and restore_file all give blend(input, full, S)."""
    from runtime.restorer import Restorer
    from tests.runtime_fixtures import local_net

    model = local_net(tmp_path / "local.onnx")
    jpeg = read_image(write_jpeg(tmp_path / "a.jpg", RGB, 10)).pixels
    with Restorer(model, tile=32) as full_restorer, Restorer(model, tile=32, strength=0.4, consistent=False) as light:
        full = full_restorer(jpeg)
        expected = blend(jpeg, full, 0.4)
        assert not np.array_equal(expected, full) and light.settings.strength == 0.4
        np.testing.assert_array_equal(light(jpeg), expected)
        strided = np.zeros((jpeg.shape[0], jpeg.shape[1] * 2, 3), np.uint8)[:, ::2]  # a view, as C++ passes
        assert light(jpeg, out=strided) is strided
        np.testing.assert_array_equal(strided, expected)
        light.restore_file(tmp_path / "a.jpg", tmp_path / "a.png")
        np.testing.assert_array_equal(read_image(tmp_path / "a.png").pixels, expected)
    with pytest.raises(ValueError, match=re.escape("strength must be a number in (0, 1], got 0")):
        Restorer(model, strength=0)


# -- a real browser --------------------------------------------------------------------------------------------

BROWSER_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing can reach the network, whatever asks
    "--hide-scrollbars", "--force-device-scale-factor=1",
]  # fmt: skip
BLUE, YELLOW = (0, 0, 255), (255, 255, 0)
SPLIT = 20  # percent: where the test moves the slider
# Appended by the test after the report's own script: moves every slider as a user would and, once the page has
# loaded, records each image's decoded width (0 = not rendered) for --dump-dom.
PROBE = f"""<script>
for (const r of document.querySelectorAll("input.split")) {{ r.value = {SPLIT}; r.dispatchEvent(new Event("input")); }}
addEventListener("load", () => {{
  document.body.dataset.widths = [...document.images].map(i => i.complete ? i.naturalWidth : 0).join(",");
  const figures = [...document.querySelectorAll(".ba")], box = figures[0].getBoundingClientRect();
  document.body.dataset.hit = document.elementFromPoint(box.left + box.width / 3, box.top + box.height / 2).className;
  document.body.dataset.marks = [...figures[1].querySelectorAll(".mark")].map(m => {{
    const r = m.getBoundingClientRect(), f = figures[1].getBoundingClientRect();
    return [r.top - f.top, r.left - f.left, r.width, r.height].map(Math.round).join(" ");
  }}).join(",");
  document.querySelector(`[data-figure="${{figures[1].id}}"] button[data-zoom="2"]`).click();
  document.body.dataset.zoomed = figures[1].getBoundingClientRect().width;
}});
</script>"""


# What an injection would add to a report: an inline script and an event handler; the policy's hash stops both.
INJECTED = """<script>document.body.dataset.injected = 1;</script>
<img src="data:," onerror="document.body.dataset.handler = 1" alt="">"""


def _browse(page: Path, profile: Path, *extra: str, timeout: float = 90) -> tuple[str, list[dict]]:
    """Open ``page`` in headless chromium with ``extra`` flags → (the DOM after scripts ran, the URL requests the
    page itself started, from the browser's own net log). The whole process group is killed on every exit path."""
    net_log = profile.with_suffix(".netlog.json")
    command = [str(CHROMIUM), *BROWSER_FLAGS, f"--user-data-dir={profile}", f"--log-net-log={net_log}", *extra,
               "--dump-dom", page.as_uri()]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        dom, _ = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0, f"chromium exited with {proc.returncode}"
    return dom.decode(), _page_requests(net_log)


def _page_requests(net_log: Path) -> list[dict]:
    """URL requests in a chromium net log that a page started (the browser's own service requests have no
    initiator: "not an origin")."""
    log = json.loads(net_log.read_text(encoding="utf-8"))
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"] for e in log["events"]
        if e["type"] == start_job and "url" in e.get("params", {}) and e["params"].get("initiator") != "not an origin"
    ]  # fmt: skip


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's chromium, skipping when it is absent or cannot run (e.g. Ubuntu's snap stub outside snapd)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (Debian's chromium package; .ci/run installs it)")
    try:
        proc = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"{CHROMIUM} --version cannot run: {e}")
    if proc.returncode != 0:
        pytest.skip(f"{CHROMIUM} --version failed: {(proc.stderr or proc.stdout).strip()[:200]}")
    return CHROMIUM


@pytest.mark.slow
def test_report_renders_in_a_headless_browser_without_requests(chromium, tmp_path):
    # Flat colours make the slider measurable in the screenshot: input blue, restoration yellow.
    jpeg_rgb, restored_rgb = np.zeros((90, 300, 3), np.uint8), np.zeros((90, 300, 3), np.uint8)
    jpeg_rgb[:] = BLUE
    restored_rgb[:] = YELLOW
    src, restored = tmp_path / f"{HOSTILE}.png", tmp_path / "restored.png"
    write_image(src, jpeg_rgb)
    write_image(restored, restored_rgb)
    photo_src, photo_restored, _ = _files(tmp_path, "photo")
    with CompareRun(tmp_path / "cmp", tmp_path / "ref", CompareSettings(crops=2, crop_size=16)) as run:
        run.add(src, restored, FACTS)
        run.add(photo_src, photo_restored, FACTS)
    report = tmp_path / "cmp" / REPORT_NAME
    probed = tmp_path / "probed.html"
    text = report.read_text(encoding="utf-8").replace("</body>", PROBE + "\n" + INJECTED + "\n</body>")
    probe_hash = base64.b64encode(hashlib.sha256(PROBE.removeprefix("<script>").removesuffix("</script>").encode())
                                  .digest()).decode()  # fmt: skip
    allowed = f"script-src '{report_html.SCRIPT_HASH}'"
    assert text.count(allowed) == 1  # the report's own script only; the probe's is allowed for this test alone
    probed.write_text(text.replace(allowed, f"{allowed} 'sha256-{probe_hash}'"), encoding="utf-8")
    shot = tmp_path / "shot.png"
    dom, requests = _browse(probed, tmp_path / "profile", f"--screenshot={shot}", "--window-size=800,1400")
    assert requests == []
    assert "data-injected" not in dom and "data-handler" not in dom  # scripts the policy does not name never ran
    # scripts ran: the report's own set the split it was moved to; every image decoded at its width
    assert dom.count(f'data-split="{SPLIT}"') == 2
    assert dom.count(f"clip-path: inset(0px {100 - SPLIT}% 0px 0px)") == 2
    widths = re.search(r'data-widths="([0-9,]*)"', dom).group(1).split(",")
    crops = [str(len(c) * 120 + (len(c) + 1) * GAP) for c in ((1, 2), (1, 2, 3))]  # 2 and 3 columns of ≥ 120 px
    assert widths[:6] == ["300", "300", crops[0], "128", "128", crops[1]]  # the 7th: the injected image
    assert f"<h2>{html.escape(str(src), quote=False)}</h2>" in dom  # the name is text: document.images has only 6
    assert 'data-hit="split"' in dom  # a press on the picture lands on the slider: it drags there
    settings = CompareSettings(crops=2, crop_size=16)
    photo = compare_images(read_image(photo_src).pixels, read_image(photo_restored).pixels, settings=settings)
    marks = re.search(r'data-marks="([0-9 ,]*)"', dom).group(1)  # the crops outlined where they are, at 1:1
    assert marks == ",".join(f"{y} {x} 16 16" for y, x in photo.corners) and len(photo.corners) == 2
    assert 'data-zoomed="256"' in dom  # the 128-px picture at 2×
    # the screenshot shows the first slider split at SPLIT %: restoration (yellow) left, input (blue) right
    image = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB)
    yellow, blue = (np.abs(image.astype(int) - c).sum(axis=2) < 30 for c in (YELLOW, BLUE))
    row = int(np.argmax(yellow.any(axis=1))) + 60  # the slider comes first; its labels are in the top 30 px
    left, right = int(yellow[row].sum()), int(blue[row].sum())
    assert left + right >= 290, f"slider image not rendered (row {row}: {left} yellow, {right} blue px)"
    assert abs(left - 300 * SPLIT / 100) <= 3, (left, right)
    assert (yellow[row].nonzero()[0] < blue[row].nonzero()[0].min()).all()
    assert (np.abs(image.astype(int) - BACKGROUND).sum(axis=2) < 10).sum() > 10_000, "crops picture not rendered"
    # the control: the same net-log count sees requests that a page with external URLs makes
    control = tmp_path / "control.html"
    control.write_text('<img src="http://example.invalid/a.png"><img src="https://example.invalid/b.png">')
    _, requests = _browse(control, tmp_path / "profile-control")
    assert sorted(r["url"] for r in requests) == ["http://example.invalid/a.png", "https://example.invalid/b.png"]


# -- issue 38 ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("side, has_ssim", [(11, True), (10, False)])
def test_ssim_is_measured_on_images_as_small_as_its_window(side, has_ssim):
    """SSIM's Gaussian window is 11×11: an 11-px image has an SSIM (the same as common.metrics'), a 10-px one none."""
    reference = RGB[:side, :side]
    jpeg = np.clip(reference.astype(int) + 9, 0, 255).astype(np.uint8)
    metrics = measure(jpeg, reference, reference)
    if has_ssim:
        assert metrics.jpeg.ssim == pytest.approx(ssim(jpeg, reference)) and metrics.restored.ssim == pytest.approx(1)
    else:
        assert metrics.jpeg.ssim is None and metrics.restored.ssim is None
    assert metrics.jpeg.psnr == pytest.approx(psnr(jpeg, reference))


class _Attributes(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attributes += attrs


def test_a_file_name_cannot_add_an_attribute(tmp_path):
    """A name with quotes stays inside its attribute (the slider's label): no event handler can come from it."""
    src, restored, _ = _files(tmp_path)
    name = 'x" onfocus="alert(1)" autofocus=" \'.jpg'
    hostile = tmp_path / name
    src.rename(hostile)
    with CompareRun(tmp_path / "cmp") as run:
        run.add(hostile, restored, FACTS)
    parser = _Attributes()
    parser.feed((tmp_path / "cmp" / REPORT_NAME).read_text(encoding="utf-8"))
    names = {attribute for attribute, _ in parser.attributes}
    assert not {n for n in names if n.startswith("on")} and "autofocus" not in names
    labels = [value for attribute, value in parser.attributes if attribute == "aria-label"]
    assert labels == [f"split between restored and input: {hostile}"]


def test_crops_weigh_the_change_of_every_channel():
    """A region changed by 10 in each of R, G and B (30 in all) ranks above one changed by 20 in red only."""
    jpeg = np.full((64, 96, 3), 100, np.uint8)
    restored = jpeg.copy()
    restored[8:24, 8:24] += np.uint8(10)  # all three channels
    restored[40:56, 60:76, 0] += np.uint8(20)  # red only
    comparison = compare_images(jpeg, restored, settings=CompareSettings(crops=2, crop_size=16, zoom=2))
    assert list(comparison.corners) == [(8, 8), (40, 60)]


def _report_text(tmp_path: Path, facts: list[RunFacts], measured: list[bool], embedded: int = 200) -> str:
    """The report of one image added once per ``facts`` (with its original where ``measured``)."""
    src, restored, _ = _files(tmp_path)
    bare = tmp_path / "bare"
    bare.mkdir()
    unmeasured = shutil.copy(src, bare / "no_original.jpg")  # no ref/no_original.*
    with CompareRun(tmp_path / "cmp", tmp_path / "ref", CompareSettings(embedded=embedded)) as run:
        for f, with_original in zip(facts, measured, strict=True):
            run.add(src if with_original else unmeasured, restored, f)
    return (tmp_path / "cmp" / REPORT_NAME).read_text(encoding="utf-8")


def test_consistency_share_is_floored_so_100_means_all(tmp_path):
    facts = dataclasses.replace(FACTS, consistent=0.99996)  # 99.996 %: not every coefficient
    text = _report_text(tmp_path, [facts], [True])
    assert "consistent with the JPEG: 99.99 % of luma coefficients" in text and "100.00 %" not in text


def test_a_consistent_share_of_none_is_still_a_fact(tmp_path):
    """A projected image none of whose luma coefficients quantise back (share 0.0) says so on its facts line; an
    image not projected (share None) has no such fact."""
    facts = [dataclasses.replace(FACTS, consistent=0.0), FACTS]
    text = _report_text(tmp_path, facts, [True, True])
    lines = re.findall(r'<p class="facts">(.*?)</p>', text)
    base = "JPEG q15 · model default · int8 · ort-cpu · 1.25 s"
    assert lines == [html.escape(f"{base} · consistent with the JPEG: 0.00 % of luma coefficients"), html.escape(base)]


def test_no_note_when_the_report_embeds_every_image(tmp_path):
    text = _report_text(tmp_path, [FACTS, FACTS], [True, True], embedded=2)
    assert "images are embedded" not in text and "Not embedded" not in text


def test_the_mean_row_and_the_note_count_the_measured_images_only(tmp_path):
    text = _report_text(tmp_path, [FACTS, FACTS], [True, False])
    assert '<td colspan="7">mean of 1</td>' in text
    assert '<p class="note">2 image(s), 1 with an original; written ' in text


def test_a_restoration_equal_to_the_input_is_not_flagged_worse(tmp_path):
    src, _, _ = _files(tmp_path)
    same = tmp_path / "same.png"
    write_image(same, read_image(src).pixels)  # scores exactly as the JPEG does
    with CompareRun(tmp_path / "cmp", tmp_path / "ref") as run:
        run.add(src, same, FACTS)
    text = (tmp_path / "cmp" / REPORT_NAME).read_text(encoding="utf-8")
    rows = _report_metrics(text)
    assert rows[0] == rows[1] and rows[0][0].split(" → ")[0] == rows[0][0].split(" → ")[1]  # equal scores
    assert "worse" not in re.search(r"<tbody>.*</table>", text, re.S).group(0)  # no cell marked


def test_the_slider_shrinks_the_long_side_and_numbers_its_boxes_as_the_crops(tmp_path):
    """A 96×128 image with slider_side 64: shown 48×64 (the long side at the limit, the aspect kept); its boxes are
    numbered 1, 2, 3 in the colours of the crops the picture numbers so (box 1 outlines crop 1)."""
    src, restored, _ = _files(tmp_path)
    settings = CompareSettings(slider_side=64, crops=3, crop_size=16)
    with CompareRun(tmp_path / "cmp", tmp_path / "ref", settings) as run:
        run.add(src, restored, FACTS)
    text = (tmp_path / "cmp" / REPORT_NAME).read_text(encoding="utf-8")
    assert re.findall(r'<img class="before" src="[^"]*" width="(\d+)" height="(\d+)"', text) == [("64", "48")]
    boxes = re.findall(r'<div class="mark" [^>]*><span style="background: rgb\((\d+), (\d+), (\d+)\)">(\d+)</span>',
                       text)  # fmt: skip
    assert boxes == [(*map(str, CROP_COLOURS[n]), str(n + 1)) for n in range(3)]


def test_the_mean_ssim_is_over_the_images_that_have_one(tmp_path):
    """An 8-px image has no SSIM (its window is 11 px): the mean SSIM is the other image's, not half of it."""
    src, restored, _ = _files(tmp_path)
    tiny = RGB[:8, :8]
    write_image(tmp_path / "ref" / "tiny.png", tiny)
    tiny_src = write_jpeg(tmp_path / "tiny.jpg", tiny, 15)
    with CompareRun(tmp_path / "cmp", tmp_path / "ref") as run:
        run.add(src, restored, FACTS)
        run.add(tiny_src, tiny_src, FACTS)
    rows = _report_metrics((tmp_path / "cmp" / REPORT_NAME).read_text(encoding="utf-8"))
    assert len(rows) == 3 and rows[1][1].startswith("–") and rows[2][1] == rows[0][1]  # SSIM: tiny none, mean = first


def test_crops_fill_the_column_exactly():
    """A 136-px column holds two 64-px zoomed crops and the 8-px gap between them: one row, not two."""
    jpeg = np.zeros((40, 136, 3), np.uint8)
    restored = jpeg.copy()
    restored[4:36, 4:36] = 50
    restored[4:36, 90:122] = 40
    comparison = compare_images(jpeg, restored, settings=CompareSettings(crops=2, crop_size=32, zoom=2))
    layout = layout_of(comparison, CompareSettings(crops=2, crop_size=32, zoom=2))
    assert layout.column_width == 136 and layout.crops_per_row == 2
    picture = render(comparison, CompareSettings(crops=2, crop_size=32, zoom=2))
    assert picture.shape[0] == GAP + LABEL_HEIGHT + GAP + 40 + GAP + 64 + GAP  # label, image, one row of crops


def test_the_report_shows_seconds_to_the_hundredth(tmp_path):
    text = _report_text(tmp_path, [FACTS], [True])  # FACTS: 1.25 s
    assert "<td>1.25</td>" in text and "· 1.25 s</p>" in text


def test_the_facts_line_shows_every_strength_but_the_full_one(tmp_path):
    """``--strength 0.5`` (or any touch lighter than the full restoration, 0.995 included) is named on the image's
    facts line; the full restoration (strength 1, the default) is not."""
    strengths = [0.5, 0.01, 0.995, 1.0]
    text = _report_text(tmp_path, [dataclasses.replace(FACTS, strength=s) for s in strengths], [True] * 4)
    base = "JPEG q15 · model default · int8 · ort-cpu · 1.25 s"
    expected = [f"{base} · strength 0.5", f"{base} · strength 0.01", f"{base} · strength 0.995", base]
    assert re.findall(r'<p class="facts">(.*?)</p>', text) == [html.escape(line) for line in expected]


def test_a_name_shows_as_utf_8():
    from runtime.compare import display_name

    assert display_name(Path("café/b\u00e9b\u00e9.jpg")) == "café/bébé.jpg"
    assert display_name(Path(os.fsdecode(b"x\xff.jpg"))) == "x\ufffd.jpg"  # not UTF-8: one replacement character


def test_one_existing_output_is_noted(tmp_path):
    text = _report_text(tmp_path, [RunFacts.existing_output()], [True])
    assert f"1 of the images: {report_html.EXISTING_NOTE}." in text
    facts = f"JPEG q15 · {report_html.EXISTING_NOTE}"  # its quality and the note, no model or time it cannot know
    assert re.findall(r'<p class="facts">(.*?)</p>', text) == [html.escape(facts)]


class _SummaryTable(html.parser.HTMLParser):
    """The report's summary table as rows of cell texts, one entry per column a cell spans (head, body, mean)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._inside = False
        self._cell: list[str] | None = None
        self._span = 1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("class", "summary") in attrs:
            self._inside = True
        elif self._inside and tag == "tr":
            self.rows.append([])
        elif self._inside and tag in ("td", "th"):
            self._cell, self._span = [], int(dict(attrs).get("colspan") or 1)

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._inside = False
        elif self._cell is not None and tag in ("td", "th"):
            self.rows[-1] += ["".join(self._cell)] * self._span
            self._cell = None


@pytest.mark.parametrize("measured", [[True, False], [False, True], [True, False, True]])
def test_a_row_without_an_original_keeps_the_summary_columns(tmp_path, measured):
    """A --reference run where one input has no original: every row of the summary table spans the header's columns,
    and the unmeasured row's channel and metric columns are there, empty, while a measured row's hold its numbers."""
    text = _report_text(tmp_path, [FACTS] * len(measured), measured)
    parser = _SummaryTable()
    parser.feed(text)
    head, *body, mean = parser.rows
    assert head == ["image", "JPEG", "model", "precision", "backend", "time (s)", "on", "PSNR (dB)", "SSIM",
                    "PSNR-B (dB)"]  # fmt: skip
    assert [len(row) for row in [*body, mean]] == [len(head)] * (len(measured) + 1)
    for row, with_original in zip(body, measured, strict=True):
        assert Path(row[0]).name == ("photo.jpg" if with_original else "no_original.jpg")
        assert row[1:6] == ["JPEG q15", "default", "int8", "ort-cpu", "1.25"]
        if with_original:
            assert row[6] == "RGB" and all(" → " in cell for cell in row[7:])
        else:
            assert row[6:] == ["", "", "", ""]
    assert mean[:7] == [f"mean of {sum(measured)}"] * 7 and all(" → " in cell for cell in mean[7:])
