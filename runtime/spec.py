"""The ONNX sidecar: the contract between ``export`` (writes it) and the runtime (reads it).

``model.onnx`` is accompanied by ``model.json`` holding a :class:`ModelSpec`. A C++ pipeline needs only
this file and the ONNX/engine to run the model: I/O names and dtypes, layout NCHW, value range [0, 1],
colour space, and the tile overlap that hides tile borders.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.files import atomic_write_text
from common.tiling import MAX_OVERLAP

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
        except RecursionError:  # nested thousands deep: no sidecar looks like that
            raise SpecError(f"{path}: unreadable sidecar (JSON nested too deeply)") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise SpecError(f"{path}: not a WCDGAN model sidecar (expected format '{FORMAT}')")
        if data.get("version", 0) > VERSION:
            raise SpecError(f"{path}: sidecar version {data['version']} is newer than supported ({VERSION})")
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            spec = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as e:
            raise SpecError(f"{path}: incomplete sidecar ({e})") from None
        problem = _invalid_field(spec)
        if problem:
            raise SpecError(f"{path}: invalid sidecar: {problem}")
        spec.value_range = tuple(spec.value_range)
        return spec


def _invalid_field(spec: ModelSpec) -> str | None:
    """What is wrong with a loaded sidecar's field types and ranges (a hand-edited or hostile file), or None."""

    def is_int(value: object, lo: int, hi: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi

    def is_number(value: object) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

    checks = (
        ("name", isinstance(spec.name, str) and 0 < len(spec.name) <= 200, "a name of 1-200 characters"),
        ("channels", is_int(spec.channels, 1, 4), "an integer"),
        ("color", isinstance(spec.color, str), "a string"),
        ("precision", isinstance(spec.precision, str), "a string"),
        ("input_name", isinstance(spec.input_name, str), "a string"),
        ("output_name", isinstance(spec.output_name, str), "a string"),
        ("layout", isinstance(spec.layout, str), "a string"),
        ("value_range", isinstance(spec.value_range, list | tuple) and len(spec.value_range) == 2
         and all(is_number(v) for v in spec.value_range), "two numbers"),
        ("opset", is_int(spec.opset, 1, 1000), "an integer"),
        ("jpeg_qualities", isinstance(spec.jpeg_qualities, list)
         and all(is_int(q, 1, 100) for q in spec.jpeg_qualities), "a list of integers in 1..100"),
        ("receptive_field_radius", is_int(spec.receptive_field_radius, 0, 1 << 20), "an integer >= 0"),
        ("recommended_overlap", is_int(spec.recommended_overlap, 0, MAX_OVERLAP), f"an integer in 0..{MAX_OVERLAP}"),
        ("fp32_nodes", isinstance(spec.fp32_nodes, list), "a list"),
        ("model_config", isinstance(spec.model_config, dict), "an object"),
    )  # fmt: skip
    for name, ok, expected in checks:
        if not ok:
            return f"{name} must be {expected}, got {getattr(spec, name)!r:.60}"
    return None


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
