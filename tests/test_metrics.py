"""PSNR / SSIM / PSNR-B (common.metrics) against hand-computed values and scikit-image; LPIPS against its check pair."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.metrics import structural_similarity

from common.metrics import blocking_effect_factor, psnr, psnr_b, ssim


@pytest.fixture(scope="module")
def camera() -> np.ndarray:
    return data.camera()[100:228, 150:310]  # 128×160 uint8


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()[:96, 200:328]  # 96×128×3 uint8


def _noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(np.round(image + noise), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- PSNR


def test_psnr_of_a_constant_error():
    a = np.full((16, 24), 100, np.uint8)
    assert psnr(a, a + 5) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-12)  # 34.151 dB


def test_psnr_colour_averages_the_error_over_all_channels():
    a = np.full((8, 8, 3), 50, np.uint8)
    b = a.copy()
    b[..., 1] += 6  # squared error 36 on one channel of three
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 12), abs=1e-12)


def test_psnr_is_symmetric_and_infinite_for_identical_images(camera):
    noisy = _noisy(camera, 5)
    assert psnr(camera, noisy) == psnr(noisy, camera)
    assert psnr(camera, camera) == math.inf


@pytest.mark.parametrize("fn", [psnr, ssim, psnr_b])
def test_metrics_reject_bad_inputs(fn, camera):
    with pytest.raises(ValueError, match="shape"):
        fn(camera, camera[:-1])
    with pytest.raises(ValueError, match="uint8"):
        fn(camera.astype(np.float32), camera)


# ---------------------------------------------------------------- SSIM


def test_ssim_of_identical_images_is_one(camera, astronaut):
    assert ssim(camera, camera) == pytest.approx(1.0, abs=1e-12)
    assert ssim(astronaut, astronaut) == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_skimage_gaussian_ssim(camera):
    noisy = _noisy(camera, 12)
    # skimage filters the full image, then averages the map without its 5-px border: the same valid region.
    ref = structural_similarity(
        camera, noisy, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    value = ssim(camera, noisy)
    assert 0.3 < value < 0.95
    assert value == pytest.approx(ref, abs=1e-9)


def test_ssim_colour_is_the_mean_over_channels(astronaut):
    noisy = _noisy(astronaut, 10, seed=1)
    per_channel = [ssim(astronaut[..., c], noisy[..., c]) for c in range(3)]
    assert len(set(per_channel)) == 3
    assert ssim(astronaut, noisy) == pytest.approx(np.mean(per_channel), abs=1e-12)
    ref = structural_similarity(
        astronaut, noisy, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=2
    )
    assert ssim(astronaut, noisy) == pytest.approx(ref, abs=1e-9)


def test_ssim_needs_a_full_window():
    a = np.zeros((10, 30), np.uint8)
    with pytest.raises(ValueError, match="at least 11"):
        ssim(a, a)


# ---------------------------------------------------------------- PSNR-B


def test_bef_of_a_single_vertical_block_edge_by_hand():
    im = np.zeros((16, 16), np.uint8)
    im[:, 8:] = 10  # one jump of 10 across the column boundary 7|8, on 16 rows
    # boundary pairs counted: 16·(16//8 − 1) vertical + 16·(16//8 − 1) horizontal = 32; their sum 16·100
    # non-boundary pairs differ by 0; weight log2(8)/log2(16) = 3/4
    assert blocking_effect_factor(im) == pytest.approx(0.75 * 1600 / 32)
    assert psnr_b(im, im) == pytest.approx(10 * math.log10(255**2 / 37.5))


def test_bef_counts_boundaries_like_kair_when_the_width_is_not_a_multiple_of_8():
    im = np.zeros((16, 20), np.uint8)
    im[:, 16:] = 10  # jump across 15|16: a block boundary inside a 20-px-wide image
    # KAIR counts 16·(20//8 − 1) + 20·(16//8 − 1) = 36 boundary pairs although 16·2 + 20·1 = 52 exist
    assert blocking_effect_factor(im) == pytest.approx(0.75 * 1600 / 36)


def test_bef_is_zero_without_blocking_and_positive_for_blocks(camera):
    ramp = np.tile(np.arange(64, dtype=np.uint8) * 3, (64, 1))  # equal steps everywhere: no boundary excess
    assert blocking_effect_factor(ramp) == 0.0
    assert psnr_b(ramp, ramp) == math.inf
    noisy = _noisy(camera, 5)
    assert blocking_effect_factor(noisy) == 0.0  # no 8×8 structure
    assert psnr_b(noisy, camera) == pytest.approx(psnr(noisy, camera), abs=1e-12)
    # 8×8 block means: strong boundary steps, flat insides
    h, w = camera.shape
    blocky = cv2.resize(
        camera.reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3)).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST
    )
    assert blocking_effect_factor(blocky) > 10
    assert psnr_b(blocky, camera) < psnr(blocky, camera) - 0.5


def test_psnr_b_is_measured_on_the_restored_image(camera):
    h, w = camera.shape
    blocky = cv2.resize(camera[::8, ::8], (w, h), interpolation=cv2.INTER_NEAREST)
    smooth = _noisy(camera, 3)
    # BEF of the first argument only: swapping arguments changes PSNR-B, not the MSE
    assert psnr_b(blocky, smooth) < psnr_b(smooth, blocky)
    assert psnr_b(smooth, blocky) == pytest.approx(psnr(smooth, blocky), abs=1e-12)


def test_psnr_b_colour_is_the_mean_of_per_channel_values(astronaut):
    jpeg = cv2.imdecode(cv2.imencode(".jpg", astronaut, [cv2.IMWRITE_JPEG_QUALITY, 10])[1], cv2.IMREAD_UNCHANGED)
    per_channel = [psnr_b(jpeg[..., c], astronaut[..., c]) for c in range(3)]
    assert psnr_b(jpeg, astronaut) == pytest.approx(np.mean(per_channel), abs=1e-12)
    assert psnr_b(jpeg, astronaut) < psnr(jpeg, astronaut)


# ---------------------------------------------------------------- LPIPS


@pytest.fixture(scope="module")
def lpips_model(shared_dir):
    from train.lpips import LPIPS

    return LPIPS.from_dir(shared_dir / "weights")


def _read_rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_lpips_reproduces_the_official_example_pair(lpips_model, shared_dir):
    check = shared_dir / "weights" / "lpips_check"
    ref, p0, p1 = (_read_rgb(check / f"ex_{n}.png") for n in ("ref", "p0", "p1"))
    assert lpips_model(ref, p0) == pytest.approx(0.722, abs=5e-4)
    assert lpips_model(ref, p1) == pytest.approx(0.138, abs=5e-4)
    assert lpips_model(ref, ref) == 0.0


def test_lpips_repeats_luma_to_three_channels(lpips_model, camera):
    noisy = _noisy(camera, 20)
    as_rgb = lpips_model(np.repeat(camera[..., None], 3, 2), np.repeat(noisy[..., None], 3, 2))
    assert lpips_model(camera, noisy) == pytest.approx(as_rgb, abs=1e-7)
    assert lpips_model(camera, noisy) > lpips_model(camera, _noisy(camera, 2))
    with pytest.raises(ValueError, match="equal shape"):
        lpips_model(camera, noisy[:-1])


def test_lpips_missing_weights_are_named(tmp_path):
    from train.lpips import ALEXNET_FILE, LPIPS

    with pytest.raises(FileNotFoundError, match=ALEXNET_FILE):
        LPIPS.from_dir(tmp_path)
