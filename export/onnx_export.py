"""PyTorch generator → ONNX with dynamic batch, height and width.

Exporter choice (measured with torch 2.13 on the full generator): the TorchScript exporter (``dynamo=False``) and
the torch.export-based one produce the same 319-node graph (Conv, LeakyRelu, Concat, Add, Mul, Sigmoid, global
pooling; nothing for a simplifier to remove). The TorchScript one is used because it is an order of magnitude
faster (``benchmarks/results/README.md``, "Measurements behind the code"), honours opsets below 18 (the dynamo
exporter emits at least 18), names nodes by module path (``/blocks/blocks.0/attention/channel/channel.6/Sigmoid``,
which ``--fp32-nodes`` patterns match) and embeds no source paths or stack traces, so the file's sha256 depends only
on weights, config and opset.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from common.files import atomic_path

INPUT_NAME = "input"
OUTPUT_NAME = "output"
_DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}


class ExportError(RuntimeError):
    """The exported graph failed the ONNX checker or shape inference."""


def export_onnx(model: nn.Module, path: str | os.PathLike, in_channels: int, opset: int = 17) -> onnx.ModelProto:
    """Export ``model`` (N×C×H×W float32 [0, 1] → same shape) to ``path`` atomically and return the checked model.

    Batch, height and width are dynamic (``batch``/``height``/``width``); the trace uses a 1×C×64×64 input.
    """
    model = model.eval()
    dummy = torch.rand(1, in_channels, 64, 64)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            model,
            (dummy,),
            str(tmp),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_axes={INPUT_NAME: _DYNAMIC_AXES, OUTPUT_NAME: _DYNAMIC_AXES},
            do_constant_folding=True,
        )
        proto = check_onnx(tmp)
    return proto


def check_onnx(path: str | os.PathLike) -> onnx.ModelProto:
    """Run the full ONNX checker and strict shape inference; return the shape-inferred model."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
        return onnx.shape_inference.infer_shapes(onnx.load(str(path)), check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"{Path(path).name}: invalid ONNX graph ({e})") from None


def graph_opset(proto: onnx.ModelProto) -> int:
    """The default-domain opset the graph declares."""
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
