"""Load the authors' official MATLAB releases of AR-CNN and DnCNN-3 into the PyTorch modules.

Both releases filter by correlation (MATLAB ``imfilter`` / MatConvNet ``vl_nnconv``), like ``torch.nn.Conv2d``,
so kernels are copied without flipping; only the storage order differs:

- AR-CNN (``scipy.io.loadmat``, MATLAB v5): ``weights_convN`` is (Cin, k², Cout) — (k², Cout) or (Cin, k²) where
  MATLAB dropped a singleton — and each k² column is a column-major k×k kernel (row = y, column = x).
- DnCNN-3 (MATLAB v7.3 = HDF5): MatConvNet ``net.layers{i}.weights = {W, b}`` with W of MATLAB shape
  (H, W, Cin, Cout); HDF5 stores the reversed order, so h5py reads (Cout, Cin, W, H) — (Cin, W, H) when Cout = 1.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from models.peers.arcnn import ARCNN, ARCNNConfig
from models.peers.dncnn import DnCNN, DnCNNConfig

ARCNN_LAYERS = ("conv1", "conv2", "conv22", "conv3")


class PeerWeightsError(ValueError):
    """A peer-model weight file is missing or does not have the expected layout."""


def arcnn_kernels(mat: dict[str, np.ndarray], layer: str) -> tuple[np.ndarray, np.ndarray]:
    """One AR-CNN layer from a loaded .mat: (Cout, Cin, k, k) float32 correlation kernels and (Cout,) biases."""
    w = np.asarray(mat[f"weights_{layer}"], dtype=np.float64)
    b = np.asarray(mat[f"biases_{layer}"], dtype=np.float64).reshape(-1)
    cout = b.size
    if w.ndim == 2:  # MATLAB dropped a singleton: (k², Cout) for Cin = 1 or (Cin, k²) for Cout = 1
        w = w[None] if cout > 1 else w[:, :, None]
    cin, k2, _ = w.shape
    k = round(float(np.sqrt(k2)))
    if k * k != k2 or w.shape[2] != cout:
        raise PeerWeightsError(f"AR-CNN {layer}: unexpected weight shape {w.shape} for {cout} biases")
    # (Cin, k², Cout) → (Cout, Cin, k²); column-major index p = y + k·x, so a row-major reshape gives [x, y]
    kernels = w.transpose(2, 0, 1).reshape(cout, cin, k, k).swapaxes(2, 3)
    return kernels.astype(np.float32), b.astype(np.float32)


def load_arcnn(path: str | os.PathLike) -> ARCNN:
    """Build an :class:`ARCNN` (eval mode, CPU) holding the weights of one official ``q*.mat`` file."""
    path = Path(path)
    if not path.is_file():
        raise PeerWeightsError(f"{path}: AR-CNN weight file not found")
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        mat = scipy.io.loadmat(path)
        layers = [arcnn_kernels(mat, name) for name in ARCNN_LAYERS]
    except (KeyError, ValueError, OSError, MatReadError) as e:
        raise PeerWeightsError(f"{path}: not an AR-CNN release file ({e})") from None
    cfg = ARCNNConfig(
        in_channels=layers[0][0].shape[1],
        widths=tuple(w.shape[0] for w, _ in layers[:-1]),
        kernels=tuple(w.shape[-1] for w, _ in layers),
    )
    model = ARCNN(cfg)
    _copy_into(model.convs(), layers, path)
    return model.eval()


def dncnn_mat_layers(path: str | os.PathLike) -> list[tuple[np.ndarray, np.ndarray]]:
    """The conv layers of a MatConvNet DnCNN .mat (v7.3) in forward order: (Cout, Cin, 3, 3) float32 + (Cout,)."""
    import h5py

    layers = []
    with h5py.File(path, "r") as f:
        refs = f["net"]["layers"][()].reshape(-1)
        for ref in refs:
            group = f[ref]
            kind = "".join(map(chr, group["type"][()].reshape(-1)))
            if kind != "conv":
                continue
            w_ref, b_ref = group["weights"][()].reshape(-1)
            w = np.asarray(f[w_ref][()], dtype=np.float32)
            b = np.asarray(f[b_ref][()], dtype=np.float32).reshape(-1)
            if w.ndim == 3:  # MATLAB dropped the trailing Cout = 1
                w = w[None]
            layers.append((np.ascontiguousarray(w.swapaxes(2, 3)), b))  # (Cout, Cin, W, H) → (Cout, Cin, H, W)
    return layers


def load_dncnn3(path: str | os.PathLike) -> DnCNN:
    """Build a :class:`DnCNN` (BN folded, eval mode, CPU) holding the official ``DnCNN3.mat`` weights."""
    path = Path(path)
    if not path.is_file():
        raise PeerWeightsError(f"{path}: DnCNN weight file not found")
    try:
        layers = dncnn_mat_layers(path)
    except (KeyError, ValueError, OSError) as e:
        raise PeerWeightsError(f"{path}: not a MatConvNet DnCNN file ({e})") from None
    if not layers:
        raise PeerWeightsError(f"{path}: no convolution layers found")
    cfg = DnCNNConfig(in_channels=layers[0][0].shape[1], features=layers[0][0].shape[0], depth=len(layers))
    model = DnCNN(cfg)
    _copy_into(model.convs(), layers, path)
    return model.eval()


def _copy_into(convs: list[torch.nn.Conv2d], layers: list[tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    if len(convs) != len(layers):
        raise PeerWeightsError(f"{path}: {len(layers)} conv layers in the file, the model has {len(convs)}")
    with torch.no_grad():
        for i, (conv, (w, b)) in enumerate(zip(convs, layers, strict=True)):
            if tuple(conv.weight.shape) != w.shape or conv.bias is None or tuple(conv.bias.shape) != b.shape:
                raise PeerWeightsError(f"{path}: layer {i} has shape {w.shape}, expected {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(w))
            conv.bias.copy_(torch.from_numpy(b))
