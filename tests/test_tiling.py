"""Tile-grid math, and tiled inference against whole-image inference."""

from __future__ import annotations

import itertools
import math

import numpy as np
import onnxruntime as ort
import pytest
from skimage import data

from common.tiling import TileGrid, axis_tiles, crop_slices, extract_window, fitted_core, reflect_indices
from runtime import Restorer
from tests.runtime_fixtures import local_net, tiny_wcdgan

LENGTHS = [1, 2, 7, 31, 32, 33, 63, 64, 65, 255, 256, 257, 600, 1001, 20000]


@pytest.mark.parametrize("core,overlap,align", [(256, 32, 16), (64, 16, 16), (32, 0, 8), (48, 8, 8)])
@pytest.mark.parametrize("length", LENGTHS)
def test_axis_tiles_partition_with_full_context(length, core, overlap, align):
    tiles = axis_tiles(length, core, overlap, align)
    size = core + 2 * overlap
    assert len(tiles) == max(1, math.ceil(length / core))
    assert tiles[0].crop_start == 0 and tiles[-1].crop_end == length
    for a, b in itertools.pairwise(tiles):
        assert a.crop_end == b.crop_start and a.start < b.start  # contiguous, no pixel twice
    for t in tiles:
        assert t.start % align == 0  # on the JPEG block grid
        assert t.crop_start < t.crop_end
        assert t.crop_start - t.start >= overlap and t.start + size - t.crop_end >= overlap
    assert tiles[-1].start + size >= length + overlap


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (37, 91), (300, 17), (257, 513), (130, 130)])
def test_grid_covers_every_pixel_exactly_once(shape):
    grid = TileGrid.create(*shape, core=(64, 48), overlap=20, align=16)
    assert grid.core == (64, 48) and grid.overlap == 32 and grid.window == (128, 112)  # rounded up to the grid
    count = np.zeros(shape, dtype=np.int32)
    for tile in grid:
        image_region, window_region = crop_slices(tile)
        count[image_region] += 1
        assert window_region[0].stop <= grid.window[0] and window_region[1].stop <= grid.window[1]
    assert (count == 1).all()


def test_huge_width_grid_math_only():
    grid = TileGrid.create(1, 20000, core=256, overlap=32)
    assert len(grid) == 79 and grid.window == (320, 320)
    assert len(grid.rows) == 1 and grid.rows[0].start == -32
    assert sum(t.crop_end - t.crop_start for t in grid.cols) == 20000


@pytest.mark.parametrize("core_max", [32, 64, 256, 512])
@pytest.mark.parametrize("length", LENGTHS)
def test_fitted_core_keeps_the_tile_count_with_the_least_padding(length, core_max):
    core = fitted_core(length, core_max, 16)
    n = math.ceil(length / core_max)
    assert core % 16 == 0 and 32 <= core <= core_max
    assert math.ceil(length / core) == n  # no extra tile
    assert core == 32 or (core - 16) * n < length  # one grid step less would not cover the image


def test_fitted_grid_shrinks_windows_to_the_image():
    grid = TileGrid.fitted(1080, 1920, (512, 512), 32)
    assert grid.core == (368, 480) and len(grid) == 3 * 4
    assert len(grid) * grid.window[0] * grid.window[1] / (1080 * 1920) < 1.37  # vs 1.98 at a fixed 256 core
    count = np.zeros((1080, 1920), dtype=np.int32)
    for tile in grid:
        count[crop_slices(tile)[0]] += 1
    assert (count == 1).all()


def test_core_is_at_least_two_grid_cells():
    assert TileGrid.create(10, 10, core=1, overlap=0, align=8).core == (16, 16)
    with pytest.raises(ValueError):
        axis_tiles(10, 8, 0, 8)


def test_reflect_indices():
    np.testing.assert_array_equal(reflect_indices(-3, 10, 1), np.zeros(10))
    np.testing.assert_array_equal(reflect_indices(-3, 9, 2), [1, 0, 1, 0, 1, 0, 1, 0, 1])
    for length in (3, 17, 64):
        pad = length - 1  # numpy's reflect needs pad < length
        expected = np.pad(np.arange(length), pad, mode="reflect")
        np.testing.assert_array_equal(reflect_indices(-pad, length + 2 * pad, length), expected)


def test_extract_window_has_fixed_shape_for_tiny_images():
    image = np.arange(3, dtype=np.uint8).reshape(1, 3)
    grid = TileGrid.create(1, 3, core=32, overlap=16)
    (tile,) = list(grid)
    window = extract_window(image, tile, grid.window)
    assert window.shape == grid.window
    assert window[16, 16:19].tolist() == [0, 1, 2]  # the image sits at the overlap offset


def _whole_image_reference(onnx_path, image: np.ndarray, pad: int) -> np.ndarray:
    """The model on the whole image reflect-padded by ``pad`` (same borders as tiling), as float in [0, 1]."""
    h, w = image.shape[:2]
    padded = image[reflect_indices(-pad, h + 2 * pad, h)[:, None], reflect_indices(-pad, w + 2 * pad, w)[None, :]]
    x = (padded.transpose(2, 0, 1)[None] / np.float32(np.iinfo(image.dtype).max)).astype(np.float32)
    out = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    return out[0, :, pad : pad + h, pad : pad + w].transpose(1, 2, 0)


def test_tiled_equals_whole_image_for_a_local_model(tmp_path):
    onnx_path = local_net(tmp_path / "local.onnx")
    image = data.astronaut()[100:257, 50:253].astype(np.uint16) * 257  # 16 bit: 1 LSB ≈ 1.5e-5
    restorer = Restorer(onnx_path, backend="ort-cpu", tile=48, overlap=8, batch=3)
    tiled = restorer(image).astype(np.float64) / 65535
    whole = np.clip(_whole_image_reference(onnx_path, image, 16), 0, 1)
    assert len(TileGrid.create(157, 203, 48, 8)) > 9  # really tiled
    assert np.abs(tiled - whole).max() <= 0.5 / 65535 + 1e-6  # equal up to the final rounding


def test_cpu_backend_runs_windows_fitted_to_each_image(tmp_path):
    onnx_path = local_net(tmp_path / "local.onnx")
    restorer = Restorer(onnx_path, backend="ort-cpu", tile=256, overlap=16)
    backend = restorer._engines[next(iter(restorer._engines))].backend
    shapes, run = [], backend.run
    backend.run = lambda batch: shapes.append(batch.shape[2:]) or run(batch)
    image = data.astronaut()[:100, :300]
    out = restorer(image)
    assert set(shapes) == {(112 + 32, 160 + 32)} and len(shapes) == 2  # 1×2 tiles of 112×160, not 288² windows
    fixed = Restorer(onnx_path, backend="ort-cpu", tile=(112, 160), overlap=16)(image)
    np.testing.assert_array_equal(out, fixed)
    with pytest.raises(ValueError, match="does not fit"):
        backend.run(np.zeros((1, 3, 304, 288), np.float32))  # beyond the window it was built for


def test_tiled_close_to_whole_for_tiny_wcdgan(tmp_path):
    """Channel attention pools over the tile, not the image: tiling changes the result slightly."""
    onnx_path = tiny_wcdgan(tmp_path / "tiny.onnx")
    image = data.astronaut()[:200, :232]
    tiled = Restorer(onnx_path, backend="ort-cpu", tile=64, overlap=16)(image).astype(np.float64)
    whole = Restorer(onnx_path, backend="ort-cpu", tile=(208, 240), overlap=16)(image).astype(np.float64)
    psnr = 10 * np.log10(255**2 / max(np.mean((tiled - whole) ** 2), 1e-12))
    print(f"tiny random-init WCDGAN, 64-px tiles vs whole image: {psnr:.1f} dB")
    assert psnr > 45
