"""Tiny ONNX models + sidecars for the runtime tests (torch is used here, never by ``runtime/``), and image files
and checks on them."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.wcdgan import GeneratorConfig, WCDGANGenerator
from runtime import jpeg_consistency as jc
from runtime.spec import ModelSpec, sidecar_path

TINY = {"features": 16, "num_blocks": 1, "branch_channels": 8}


def export_onnx(model: nn.Module, path: Path, channels: int, **spec_fields) -> Path:
    """Export ``model`` (N×C×H×W dynamic) to ``path`` with a :class:`ModelSpec` sidecar; returns ``path``."""
    model.eval()
    x = torch.rand(1, channels, 32, 32)
    axes = {0: "n", 2: "h", 3: "w"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is enough for these graphs
        torch.onnx.export(
            model, (x,), str(path), input_names=["input"], output_names=["output"],
            dynamic_axes={"input": axes, "output": axes}, opset_version=17, dynamo=False,
        )  # fmt: skip
    fields = {"name": path.stem, "channels": channels, "color": "rgb" if channels == 3 else "y", "precision": "fp32"}
    ModelSpec(**{**fields, **spec_fields}).save(sidecar_path(path))
    return path


def tiny_wcdgan(path: Path, channels: int = 3, seed: int = 0, **spec_fields) -> Path:
    """A random-init tiny WCDGAN generator (its channel attention pools globally: tiling changes it a little)."""
    torch.manual_seed(seed)
    cfg = GeneratorConfig(in_channels=channels, global_residual=True, **TINY)
    return export_onnx(WCDGANGenerator(cfg), path, channels, model_config=TINY, **spec_fields)


class LocalNet(nn.Module):
    """Three 3×3 convs plus a residual: receptive-field radius 3, no global pooling."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(8, 8, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(8, channels, 3, padding=1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * self.body(x)


def local_net(path: Path, channels: int = 3, seed: int = 0, **spec_fields) -> Path:
    torch.manual_seed(seed)
    return export_onnx(LocalNet(channels), path, channels, receptive_field_radius=3, **spec_fields)


def write_jpeg(path: Path, rgb, quality: int) -> Path:
    """Encode an RGB (or gray) uint8 array with libjpeg at ``quality``."""
    import cv2

    image = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def write_pngs(folder: Path, images: dict) -> Path:
    """Write RGB uint8 ``images`` (name → H×W×3) as lossless PNGs into ``folder`` (created); returns it."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for name, rgb in images.items():
        cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder


def calibration_folders(tmp: Path) -> tuple[Path, Path]:
    """INT8 calibration photos (training-like) and gate photos (ground truths) for tiny export tests."""
    import skimage.data

    calib = write_pngs(tmp / "train", {"rocket": skimage.data.rocket()[:192, :256], "coffee": skimage.data.coffee()})
    gate = write_pngs(tmp / "gate", {"astronaut": skimage.data.astronaut()[64:192, 96:256]})
    return calib, gate


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width × height (a decompression bomb; its data is garbage)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def coded_share(image: np.ndarray, jpeg: jc.JpegCoefficients, k: int) -> float:
    """The share of component ``k``'s coefficients of ``image`` that quantise to the file's, computed here from
    the encoder's definition (JFIF YCbCr, box-downsampled to the coded sampling, 8×8 DCT), blocks inside only."""
    ycc = image.astype(np.float64) if image.ndim == 2 else image.astype(np.float64) @ jc._RGB_TO_YCC.T.astype(float)
    plane = (ycc if image.ndim == 2 else ycc[..., k]) - (128 if k == 0 else 0)
    component = jpeg.components[k]
    fv, fh = component.factor
    rows, cols = plane.shape[0] // (8 * fv), plane.shape[1] // (8 * fh)
    coded = plane[: rows * 8 * fv, : cols * 8 * fh].reshape(rows * 8, fv, cols * 8, fh).mean(axis=(1, 3))
    blocks = coded.reshape(rows, 8, cols, 8).transpose(0, 2, 1, 3)
    dct = jc._DCT.astype(np.float64)
    quantised = np.rint(dct @ blocks @ dct.T / component.table)
    return float(np.mean(quantised == component.coefficients[:rows, :cols]))
