"""The ONNX sidecar: the contract between ``export`` (writes it) and the runtime (reads it).

``model.onnx`` is accompanied by ``model.json`` holding a :class:`ModelSpec`. A C++ pipeline needs only
this file and the ONNX/engine to run the model: I/O names and dtypes, layout NCHW, value range [0, 1],
colour space, and the tile overlap that hides tile borders.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.files import atomic_write_text

FORMAT = "wcdgan-onnx"
VERSION = 1
PRECISIONS = ("fp32", "fp16", "int8")
_PRECISION_SUFFIX = re.compile(r"[_-](fp16|fp32|int8)$")


class SpecError(ValueError):
    """A sidecar is missing, unreadable or not a WCDGAN model description."""


@dataclass
class ModelSpec:
    """Self-description of one exported ONNX model (see module docstring)."""

    name: str
    channels: int  # 1 (grayscale / MATLAB-Y model) or 3 (RGB model)
    color: str  # "rgb" or "y"
    precision: str  # one of PRECISIONS: "fp32", "fp16" or "int8" (QDQ), the weights and compute inside the graph
    input_name: str = "input"
    output_name: str = "output"
    input_dtype: str = "float32"
    output_dtype: str = "float32"
    layout: str = "NCHW"
    value_range: tuple[float, float] = (0.0, 1.0)
    opset: int = 17
    onnx_sha256: str = ""
    checkpoint_sha256: str = ""
    model_config: dict[str, Any] = field(default_factory=dict)
    jpeg_qualities: list[int] = field(default_factory=list)  # qualities it was trained on; [] = unknown
    receptive_field_radius: int = 0  # measured, pixels
    recommended_overlap: int = 0  # pixels on each side of a tile
    fp32_nodes: list[str] = field(default_factory=list)  # nodes kept in FP32 in an FP16 or INT8 graph
    validation: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    version: int = VERSION

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically as JSON."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelSpec:
        """Read and validate a sidecar; raise :class:`SpecError` with the reason if it isn't one."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SpecError(f"{path}: sidecar not found (every model .onnx needs its .json beside it)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SpecError(f"{path}: unreadable sidecar ({e})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise SpecError(f"{path}: not a WCDGAN model sidecar (expected format '{FORMAT}')")
        if data.get("version", 0) > VERSION:
            raise SpecError(f"{path}: sidecar version {data['version']} is newer than supported ({VERSION})")
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            spec = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as e:
            raise SpecError(f"{path}: incomplete sidecar ({e})") from None
        spec.value_range = tuple(spec.value_range)
        return spec


def sidecar_path(onnx_path: str | os.PathLike) -> Path:
    """``model.onnx`` → ``model.json``."""
    return Path(onnx_path).with_suffix(".json")


def exported_name(name: str, precision: str) -> str:
    """The file stem and sidecar ``name`` of model ``name`` exported at ``precision``: ``NAME`` for FP32,
    ``NAME_fp16`` / ``NAME_int8`` otherwise."""
    return name if precision == "fp32" else f"{name}_{precision}"


def base_name(stem: str) -> str:
    """Inverse of :func:`exported_name`: the model's name with a ``_fp16``/``_int8`` (or ``-fp16``, ``_fp32`` …)
    suffix dropped."""
    return _PRECISION_SUFFIX.sub("", stem)
