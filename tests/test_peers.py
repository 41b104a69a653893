"""Peer architectures (AR-CNN, DnCNN-3, MemNet, MWCNN) and the conversion of the official MATLAB weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from common.color import rgb_to_y
from common.jpeg import jpeg_roundtrip
from common.metrics import psnr
from models.peers import (
    ARCNN,
    MWCNN,
    ARCNNConfig,
    DnCNN,
    MemNet,
    MemNetConfig,
    PeerWeightsError,
    haar_dwt,
    haar_iwt,
    load_arcnn,
    load_dncnn3,
    pad_to_multiple,
)
from models.wcdgan import count_parameters

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PEERS = SHARED / "weights" / "peers"


def _conv_params(layers: list[tuple[int, int, int]]) -> int:
    """Weights + biases of plain convs given as (k, cin, cout)."""
    return sum(k * k * cin * cout + cout for k, cin, cout in layers)


def _shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"../shared not found: {path} is absent")
    return path


def _crop_y(name: str = "barbara", dataset: str = "Classic5", size: int = 32) -> np.ndarray:
    import cv2

    image = cv2.imread(str(_shared(SHARED / "data" / "eval" / dataset / f"{name}.png")), cv2.IMREAD_COLOR)
    y = rgb_to_y(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return np.ascontiguousarray(y[200 : 200 + size, 200 : 200 + size])


# ---------------------------------------------------------------- architectures


def test_parameter_counts_match_the_published_layouts():
    # AR-CNN release: 9×9 1→64, 7×7 64→32, 1×1 32→16, 5×5 16→1 → 106,448 weights + 113 biases
    assert count_parameters(ARCNN()) == _conv_params([(9, 1, 64), (7, 64, 32), (1, 32, 16), (5, 16, 1)]) == 106_561
    # DnCNN-3 release (BN folded): 665,921 (shared README)
    assert count_parameters(DnCNN()) == 665_921
    # MemNet M6R6: the paper's 677 k are its conv weights; the unshared variant is WCDGAN Table 3's 2.9 M
    conv_weights = sum(m.weight.numel() for m in MemNet().modules() if isinstance(m, torch.nn.Conv2d))
    assert round(conv_weights / 1e3) == 677
    assert round(count_parameters(MemNet(MemNetConfig(share_recursion=False))) / 1e6, 1) == 2.9
    # MWCNN: 24 conv layers (the paper's depth), ≈ 25 M parameters
    mwcnn = MWCNN()
    assert sum(isinstance(m, torch.nn.Conv2d) for m in mwcnn.modules()) == 24
    assert 24.5e6 < count_parameters(mwcnn) < 25.2e6


def test_arcnn_pads_by_replication_like_matlab_imfilter():
    torch.manual_seed(0)
    replicate = ARCNN().eval()
    zeros = ARCNN(ARCNNConfig(padding_mode="zeros")).eval()
    zeros.load_state_dict(replicate.state_dict())
    x = torch.full((1, 1, 20, 20), 0.4)
    with torch.no_grad():
        flat, bordered = replicate(x), zeros(x)
    assert torch.allclose(flat, flat[0, 0, 0, 0].expand_as(flat), atol=1e-6)  # constant in → constant out
    assert torch.allclose(bordered[0, 0, 10, 10], flat[0, 0, 0, 0], atol=1e-6)  # same weights inside
    assert (bordered[0, 0, 0, 0] - bordered[0, 0, 10, 10]).abs() > 1e-4  # zero padding shows at the border


def test_dncnn_is_residual():
    model = DnCNN().eval()
    with torch.no_grad():
        model.convs()[-1].weight.zero_()
        model.convs()[-1].bias.zero_()
    x = torch.rand(1, 1, 16, 16)
    assert torch.equal(model(x), x)


def test_memnet_shapes_and_weight_sharing():
    shared, unshared = (
        MemNet(MemNetConfig(num_memblocks=2, num_recursions=3)),
        MemNet(MemNetConfig(num_memblocks=2, num_recursions=3, share_recursion=False)),
    )
    assert [len(b.units) for b in shared.blocks] == [1, 1]
    assert [len(b.units) for b in unshared.blocks] == [3, 3]
    # gate of block m sees R recursion outputs + m earlier states
    assert [b.gate[-1].in_channels for b in shared.blocks] == [(3 + 1) * 64, (3 + 2) * 64]
    x = torch.rand(2, 1, 12, 10)
    assert shared.eval()(x).shape == x.shape


def test_haar_dwt_is_orthonormal_and_invertible():
    x = torch.rand(2, 3, 8, 12, dtype=torch.float64)
    y = haar_dwt(x)
    assert y.shape == (2, 12, 4, 6)
    assert torch.allclose(haar_iwt(y), x)
    assert torch.allclose((y**2).sum(), (x**2).sum())  # energy preserved
    assert torch.allclose(y[:, :3], 2 * torch.nn.functional.avg_pool2d(x, 2))  # LL = 2 × block mean


def test_mwcnn_shapes_and_padding():
    model = MWCNN().eval()
    x = torch.rand(1, 1, 13, 21)
    padded, (h, w) = pad_to_multiple(x, 8)
    assert padded.shape[-2:] == (16, 24) and (h, w) == (13, 21)
    with torch.no_grad():
        assert model(padded).shape == padded.shape
    with pytest.raises(ValueError, match="divisible by 8"):
        model(x)


# ---------------------------------------------------------------- official weights


def _arcnn_numpy(mat: dict, y: np.ndarray) -> np.ndarray:
    """The release's MATLAB test loop, transcribed: imfilter(…, 'same', 'replicate') per channel pair."""
    x = [y]
    for name, relu in (("conv1", True), ("conv2", True), ("conv22", True), ("conv3", False)):
        w = np.asarray(mat[f"weights_{name}"], dtype=np.float64)
        b = np.asarray(mat[f"biases_{name}"], dtype=np.float64).ravel()
        if w.ndim == 2:
            w = w[:, :, None]
        k = int(np.sqrt(w.shape[1]))
        out = []
        for o in range(w.shape[2]):
            acc = sum(
                ndimage.correlate(x[i], w[i, :, o].reshape(k, k, order="F"), mode="nearest") for i in range(w.shape[0])
            )
            out.append(np.maximum(acc + b[o], 0) if relu else acc + b[o])
        x = out
    return x[0]


def test_arcnn_weights_reproduce_the_matlab_forward():
    import scipy.io

    path = _shared(PEERS / "arcnn" / "q10.mat")
    mat = scipy.io.loadmat(path)
    y = jpeg_roundtrip(_crop_y(size=24), 10).astype(np.float64) / 255
    ref = _arcnn_numpy(mat, y)
    model = load_arcnn(path)
    with torch.no_grad():
        out = model(torch.from_numpy(y).float()[None, None])[0, 0].numpy()
    assert np.abs(out - ref).max() < 1e-5
    assert np.abs(ref - y).max() > 1e-3  # the model does change the image


def test_dncnn3_weights_match_a_numpy_reference_for_the_first_layers():
    import h5py

    path = _shared(PEERS / "dncnn3" / "DnCNN3.mat")
    y = jpeg_roundtrip(_crop_y(size=20), 10).astype(np.float64) / 255
    with h5py.File(path, "r") as f:
        layers = [f[r] for r in f["net"]["layers"][()].ravel()]
        raw = [[np.asarray(f[r][()], np.float64) for r in g["weights"][()].ravel()] for g in layers[:3:2]]
    x = [y]
    for w, b in raw:  # w: (Cout, Cin, W, H) as h5py reads MATLAB's H×W×Cin×Cout
        x = [
            np.maximum(
                sum(ndimage.correlate(x[i], w[o, i].T, mode="constant") for i in range(w.shape[1])) + b.ravel()[o], 0
            )
            for o in range(w.shape[0])
        ]
    model = load_dncnn3(path)
    with torch.no_grad():
        out = model.body[:4](torch.from_numpy(y).float()[None, None])[0].numpy()
    assert np.abs(out - np.stack(x)).max() < 1e-4


def test_official_models_remove_jpeg_artifacts():
    y = _crop_y(size=64)
    decoded = jpeg_roundtrip(y, 10)
    x = torch.from_numpy(decoded.astype(np.float32) / 255)[None, None]
    for model in (load_arcnn(_shared(PEERS / "arcnn" / "q10.mat")), load_dncnn3(PEERS / "dncnn3" / "DnCNN3.mat")):
        with torch.no_grad():
            out = np.round(np.clip(model(x)[0, 0].numpy(), 0, 1) * 255).astype(np.uint8)
        assert psnr(out, y) > psnr(decoded, y) + 0.3, type(model).__name__


def test_loaders_refuse_missing_and_foreign_files(tmp_path):
    with pytest.raises(PeerWeightsError, match="not found"):
        load_arcnn(tmp_path / "q10.mat")
    bad = tmp_path / "bad.mat"
    bad.write_bytes(b"not a mat file")
    with pytest.raises(PeerWeightsError):
        load_arcnn(bad)
    with pytest.raises(PeerWeightsError):
        load_dncnn3(bad)
