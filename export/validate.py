"""Numerical validation of exported graphs on real JPEG-compressed images.

Two checks, each with a threshold (:class:`Thresholds`):

* FP32 ONNX (ONNX Runtime, CPU) against the PyTorch model: maximum absolute error of the raw output.
* FP16 ONNX against the FP32 ONNX: PSNR of the 8-bit outputs (round + clip, as a user sees them), the worst
  image counting, and no NaN/Inf anywhere (restoration networks have produced NaN/black FP16 output in the wild).

The images are public ``skimage.data`` photographs (not the evaluation sets), compressed with libjpeg at
quality 10, cropped to deliberately different sizes (one not a multiple of 8) so that the dynamic height/width
axes are exercised too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
from polygraphy.comparator import Comparator
from polygraphy.logger import G_LOGGER
from torch import nn

from common.color import rgb_to_y
from common.jpeg import jpeg_roundtrip
from common.metrics import psnr_capped, to_uint8

# (skimage.data image, crop height, crop width): three sizes, the last one off the 8-pixel grid.
_VALIDATION_CROPS = (("astronaut", 96, 96), ("coffee", 80, 112), ("chelsea", 72, 60))
VALIDATION_QUALITY = 10


@dataclass
class Thresholds:
    """Pass criteria of the build's validation (the measured numbers are recorded in each sidecar's ``validation``)."""

    fp32_max_abs: float = 1e-4  # ORT FP32 vs PyTorch, output units ([0, 1] scale)
    fp16_min_psnr: float = 40.0  # dB, 8-bit FP16 output vs 8-bit FP32 output, worst image


class ValidationError(RuntimeError):
    """A graph's numbers are outside the thresholds; the message carries the numbers."""


def validation_images(channels: int, quality: int = VALIDATION_QUALITY) -> list[np.ndarray]:
    """JPEG-compressed crops as 1×C×H×W float32 in [0, 1] (C = 1: MATLAB-Y luma, the paper's grey protocol)."""
    from skimage import data  # dev/export dependency only; the runtime never validates

    images = []
    for name, h, w in _VALIDATION_CROPS:
        rgb = getattr(data, name)()
        top, left = (rgb.shape[0] - h) // 2, (rgb.shape[1] - w) // 2
        crop = np.ascontiguousarray(rgb[top : top + h, left : left + w])
        img = rgb_to_y(crop) if channels == 1 else crop
        images.append(to_nchw(jpeg_roundtrip(img, quality)))
    return images


def to_nchw(image: np.ndarray) -> np.ndarray:
    """H×W or H×W×C uint8 → 1×C×H×W float32 in [0, 1] (contiguous), the graphs' input."""
    chw = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    return np.ascontiguousarray(chw[None], dtype=np.float32) / np.float32(255)


def describe_images() -> str:
    """One line naming the validation inputs (recorded in sidecars)."""
    crops = ", ".join(f"{name} {h}x{w}" for name, h, w in _VALIDATION_CROPS)
    return f"skimage.data centre crops ({crops}), libjpeg quality {VALIDATION_QUALITY}"


def run_onnx(paths: list[str | os.PathLike], images: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Outputs of each ONNX model (ORT CPU, via Polygraphy's Comparator) on each image; inputs are cast to the
    graph's input dtype, outputs returned as stored (float16 graphs with FP16 I/O give float16)."""
    runners = [
        OnnxrtRunner(SessionFromOnnx(str(p), providers=["CPUExecutionProvider"]), name=f"onnx{i}")
        for i, p in enumerate(paths)
    ]
    outputs = []
    for runner, path in zip(runners, paths, strict=True):
        graph_input = onnx.load(str(path), load_external_data=False).graph.input[0]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(graph_input.type.tensor_type.elem_type)
        feeds = [{graph_input.name: img.astype(dtype)} for img in images]
        with G_LOGGER.verbosity(G_LOGGER.ERROR):  # keep the build's output to our own summary
            results = Comparator.run([runner], data_loader=feeds)
        outputs.append([next(iter(it.values())) for it in results[runner.name]])
    return outputs


def torch_outputs(model: nn.Module, images: list[np.ndarray]) -> list[np.ndarray]:
    """Reference outputs of the PyTorch model (float32, CPU)."""
    with torch.inference_mode():
        return [model(torch.from_numpy(img)).numpy() for img in images]


def compare_fp32(reference: list[np.ndarray], onnx_out: list[np.ndarray]) -> dict[str, float]:
    """ORT FP32 vs PyTorch: max/mean absolute error over all images, and the 8-bit PSNR of the worst image."""
    diffs = [np.abs(r.astype(np.float64) - o.astype(np.float64)) for r, o in zip(reference, onnx_out, strict=True)]
    return {
        "max_abs_error": float(max(d.max() for d in diffs)),
        "mean_abs_error": float(np.mean([d.mean() for d in diffs])),
        "min_psnr_uint8_db": min(
            psnr_capped(to_uint8(r), to_uint8(o)) for r, o in zip(reference, onnx_out, strict=True)
        ),
    }


def compare_fp16(fp32_out: list[np.ndarray], fp16_out: list[np.ndarray]) -> dict[str, float]:
    """FP16 vs FP32 graph: 8-bit PSNR (worst and mean image), max abs error, count of non-finite values."""
    nonfinite = int(sum(np.size(o) - np.isfinite(o).sum() for o in fp16_out))
    psnrs = [psnr_capped(to_uint8(a), to_uint8(b)) for a, b in zip(fp32_out, fp16_out, strict=True)]
    return {
        "min_psnr_uint8_db": min(psnrs),
        "mean_psnr_uint8_db": float(np.mean(psnrs)),
        "max_abs_error": float(
            max(
                np.abs(a.astype(np.float64) - b.astype(np.float64)).max()
                for a, b in zip(fp32_out, fp16_out, strict=True)
            )
        ),
        "nonfinite_values": nonfinite,
    }


def check(name: str, numbers: dict[str, float], thresholds: Thresholds) -> None:
    """Raise :class:`ValidationError` if ``numbers`` (from :func:`compare_fp32` / :func:`compare_fp16`) fail."""
    if "nonfinite_values" in numbers:
        failed = numbers["nonfinite_values"] > 0 or not numbers["min_psnr_uint8_db"] >= thresholds.fp16_min_psnr
        rule = f"min PSNR ≥ {thresholds.fp16_min_psnr} dB and no NaN/Inf"
    else:
        failed = not numbers["max_abs_error"] <= thresholds.fp32_max_abs
        rule = f"max abs error ≤ {thresholds.fp32_max_abs:g}"
    if failed:
        raise ValidationError(f"{name} failed validation ({rule}): {format_numbers(numbers)}")


def format_numbers(numbers: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in numbers.items())
