"""WCDGAN losses: hand-computed values, LSGAN sign conventions, TV, and the VGG19 conv5_4 loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch

from train.losses import (
    CONV5_4,
    LOG_MSE_FLOOR,
    VGGPerceptual,
    l1_loss,
    load_vgg_perceptual,
    log_mse_loss,
    lsgan_d_loss,
    lsgan_g_loss,
    mse_loss,
    tv_loss,
    vgg19_features,
)

SHARED_VGG = Path(__file__).resolve().parents[2] / "shared" / "weights" / "vgg19_features_caffe_rgb_fp16.pth"


def test_l1_hand_computed():
    out = torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]])
    gt = torch.tensor([[[[0.5, 0.5], [0.0, 0.75]]]])
    assert l1_loss(out, gt).item() == pytest.approx((0.5 + 0 + 1.0 + 0.5) / 4)


def test_mse_and_log_mse_hand_computed():
    """MSE over every element; log-MSE is minus the mean per-sample PSNR (dB), so a sample at a quarter of another's
    error counts the same 6 dB whichever its quality."""
    gt = torch.zeros(2, 1, 2, 2)
    out = gt.clone()
    out[0] = 0.1  # sample 0: MSE 0.01 (20 dB); sample 1: one pixel off by 0.2, MSE 0.01 (20 dB)
    out[1, 0, 0, 0] = 0.2
    assert mse_loss(out, gt).item() == pytest.approx(0.01)
    assert log_mse_loss(out, gt).item() == pytest.approx(10 * np.log10(0.01 + LOG_MSE_FLOOR), rel=1e-6)
    better = out.clone()
    better[1] /= 2  # sample 1's error a quarter: 6.02 dB better, the mean 3.01 dB
    assert log_mse_loss(out, gt).item() - log_mse_loss(better, gt).item() == pytest.approx(3.01, abs=0.01)
    assert log_mse_loss(gt, gt).item() == pytest.approx(10 * np.log10(LOG_MSE_FLOOR))  # finite at a perfect output


def test_tv_hand_computed():
    img = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]])  # 1×1×2×3
    # x differences: |1|,|2|,|0|,|0| → mean 0.75; y differences: |2|,|1|,|-1| → mean 4/3
    assert tv_loss(img).item() == pytest.approx(0.75 + 4 / 3)
    assert tv_loss(torch.full((2, 3, 5, 5), 0.3)).item() == 0.0
    # Opposite x and y gradients must not cancel (anisotropic TV).
    assert tv_loss(torch.tensor([[[[0.0, 1.0], [-1.0, 0.0]]]])).item() > 0


def test_lsgan_conventions():
    ones, zeros = torch.ones(4, 1), torch.zeros(4, 1)
    # A perfect discriminator (real → 1, fake → 0) has zero loss; a fooled one (swapped) has loss 2.
    assert lsgan_d_loss(ones, zeros).item() == 0.0
    assert lsgan_d_loss(zeros, ones).item() == pytest.approx(2.0)
    assert lsgan_d_loss(torch.full((2, 1), 0.5), torch.full((2, 1), 0.5)).item() == pytest.approx(0.5)
    # The generator wins when D scores its output as real.
    assert lsgan_g_loss(ones).item() == 0.0
    assert lsgan_g_loss(zeros).item() == pytest.approx(1.0)
    assert lsgan_g_loss(torch.tensor([[3.0]])).item() == pytest.approx(4.0)
    # Gradient direction: raising D(out) towards 1 lowers the G loss.
    d = torch.tensor([[0.2]], requires_grad=True)
    lsgan_g_loss(d).backward()
    assert d.grad.item() < 0


def test_vgg19_layout_matches_torchvision_keys():
    feats = vgg19_features()
    assert len(feats) == CONV5_4 and isinstance(feats[-1], torch.nn.Conv2d)
    keys = set(feats.state_dict())
    conv_idx = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]  # torchvision vgg19 conv indices
    assert keys == {f"{i}.{p}" for i in conv_idx for p in ("weight", "bias")}


def test_missing_weights_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such VGG19"):
        load_vgg_perceptual(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"foo": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not a VGG19"):
        load_vgg_perceptual(bad)
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(FileNotFoundError, match="--vgg-weights"):
            load_vgg_perceptual(None)


@pytest.fixture(scope="module")
def vgg() -> VGGPerceptual:
    if not SHARED_VGG.is_file():
        pytest.skip(f"../shared not found: {SHARED_VGG}")
    return load_vgg_perceptual(SHARED_VGG)


def _image(crop: int = 96, dy: int = 0) -> torch.Tensor:
    img = skimage.data.astronaut()[100 + dy : 100 + dy + crop, 150 : 150 + crop]
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255


def test_vgg_shared_weights(vgg):
    x = _image()
    feats = vgg.embed(x)
    assert feats.shape == (1, 512, 6, 6)
    assert feats.min() < 0  # conv5_4 before its ReLU
    assert vgg(x, x).item() == 0.0
    shifted = vgg(_image(dy=4), x).item()
    assert shifted > 0.05 * feats.abs().mean().item()
    # Gradients reach the output image, never the frozen VGG weights.
    out = x.clone().requires_grad_(True)
    vgg(out, _image(dy=4)).backward()
    assert out.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in vgg.parameters())


def test_vgg_y_input_is_repeated(vgg):
    gray = _image().mean(1, keepdim=True)
    torch.testing.assert_close(vgg.embed(gray), vgg.embed(gray.expand(-1, 3, -1, -1)))
