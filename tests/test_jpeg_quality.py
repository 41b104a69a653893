"""IJG quality estimation from DQT markers."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data

from runtime.jpeg_quality import estimate_quality, ijg_table, read_jpeg_quality, read_quant_tables
from tests.runtime_fixtures import write_jpeg


@pytest.mark.parametrize("quality", [5, 10, 20, 50, 90])
@pytest.mark.parametrize("gray", [False, True])
def test_opencv_jpegs_recover_quality_exactly(tmp_path, quality, gray):
    image = data.camera()[:64, :80] if gray else data.astronaut()[:64, :80]
    q = read_jpeg_quality(write_jpeg(tmp_path / "x.jpg", image, quality))
    assert q is not None and q.quality == quality and q.exact


def test_pillow_jpeg_and_tables_in_natural_order(tmp_path):
    path = tmp_path / "p.jpg"
    Image.fromarray(data.astronaut()[:64, :64]).save(path, quality=37)
    with open(path, "rb") as f:
        tables = read_quant_tables(f)
    np.testing.assert_array_equal(tables[0], ijg_table(37))  # zigzag → natural order is undone correctly
    np.testing.assert_array_equal(tables[1], ijg_table(37, chroma=True))
    assert read_jpeg_quality(path).quality == 37


def test_non_ijg_tables_give_nearest_inexact(tmp_path):
    table = (ijg_table(30) + 1).tolist()  # close to q30, but not libjpeg's
    path = tmp_path / "custom.jpg"
    Image.fromarray(data.camera()[:64, :64]).save(path, qtables=[table])
    q = read_jpeg_quality(path)
    assert q is not None and not q.exact and abs(q.quality - 30) <= 2
    assert "≈" in str(q)


def test_non_jpeg_and_broken_headers_give_none(tmp_path):
    png = tmp_path / "x.png"
    Image.fromarray(data.camera()[:16, :16]).save(png)
    text = tmp_path / "text.jpg"
    text.write_text("not a jpeg")
    truncated = tmp_path / "t.jpg"
    truncated.write_bytes(write_jpeg(tmp_path / "full.jpg", data.camera()[:16, :16], 50).read_bytes()[:40])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    for path in (png, text, truncated, empty, tmp_path / "missing.jpg"):
        assert read_jpeg_quality(path) is None
    assert estimate_quality({}) is None
    assert read_quant_tables(io.BytesIO(b"GIF89a")) is None
