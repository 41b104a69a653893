"""Which ONNX model restores an image: the bundled default, ``--model FILE|DIR``, per-quality choice.

A *model* is one trained network; it may be exported at several precisions (FP32, FP16 and INT8 ONNX files,
each with its :class:`~runtime.spec.ModelSpec` sidecar). Files belong to the same model when their sidecars
carry the same ``checkpoint_sha256`` (or, without one, the same name, :func:`runtime.spec.base_name`).
Unless a precision is asked for, GPU backends take FP16 > FP32, CPU backends INT8 > FP32 (the
INT8 graph passed its quality gate at export, :mod:`export.int8`; FP16 is slower than FP32 on CPUs).

With several models (a directory), the one whose trained ``jpeg_qualities`` include the quality nearest to
the input's estimated quality is used (ties: the model trained on fewer qualities, the specialist); for
inputs of unknown quality (PNG, …) the model trained on the most qualities (a blind model), ties broken by
its lowest quality (the strongest restoration).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from common.files import sha256_file
from runtime.spec import PRECISIONS, ModelSpec, SpecError, base_name, sidecar_path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = WEIGHTS_DIR / "default.onnx"
PREFERENCE = {"gpu": ("fp16", "fp32", "int8"), "cpu": ("int8", "fp32", "fp16")}  # precision "auto", by device


class ModelError(ValueError):
    """No usable model at the given place; the message says why, for the user."""


@dataclass(frozen=True)
class ModelFile:
    """One ONNX file and its sidecar."""

    onnx: Path
    spec: ModelSpec


@dataclass
class Model:
    """One trained network and its exported precisions (``{"fp32": ModelFile, "int8": ModelFile, ...}``)."""

    key: str
    files: dict[str, ModelFile] = field(default_factory=dict)

    @property
    def spec(self) -> ModelSpec:
        """The sidecar describing the network (FP32's when present; fields other than precision agree)."""
        return self.file("fp32" if "fp32" in self.files else "auto").spec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def qualities(self) -> list[int]:
        return sorted(self.spec.jpeg_qualities)

    def file(self, precision: str = "auto", device: str = "cpu") -> ModelFile:
        """The file of ``precision`` ("fp32", "fp16", "int8"), or for "auto" the first present in
        :data:`PREFERENCE` [``device``] ("cpu" or "gpu"). Raises :class:`ModelError` for a precision not exported."""
        return self.choose_file(precision, device)[0]

    def choose_file(self, precision: str = "auto", device: str = "cpu") -> tuple[ModelFile, str]:
        """:meth:`file` and, for the user, why that file: asked for, or the preference order among those exported."""
        exported = ", ".join(p for p in PRECISIONS if p in self.files)
        reason = f"asked for (exported: {exported})"
        if precision == "auto":
            precision = next(p for p in PREFERENCE[device] if p in self.files)
            reason = f"auto on a {device.upper()} prefers {' > '.join(PREFERENCE[device])}; exported: {exported}"
        if precision not in self.files:
            raise ModelError(
                f"model {self.name} has no {precision} file (exported: {', '.join(sorted(self.files))}); "
                "export it with python -m export.build (--fp16 / --int8)"
            )
        return self.files[precision], reason


@dataclass
class ModelSet:
    """The models a run may use, and the rule choosing one per input."""

    models: list[Model]

    def for_quality(self, quality: int | None) -> Model:
        """The model for an input of estimated JPEG ``quality`` (None: unknown); see module docstring."""
        return self.choose(quality)[0]

    def choose(self, quality: int | None) -> tuple[Model, str]:
        """:meth:`for_quality` and, for the user, why that model (the rule of the module docstring that decided)."""
        if len(self.models) == 1:
            return self.models[0], "the only model"
        trained = [m for m in self.models if m.qualities]
        if quality is None or not trained:
            model = min(self.models, key=lambda m: (-len(m.qualities), min(m.qualities, default=0), m.name))
            why = "JPEG quality unknown" if quality is None else "no model records its training qualities"
            return model, f"{why}: of {len(self.models)} models, the one trained on the most qualities"

        def nearest(m: Model) -> tuple:
            return min(abs(quality - q) for q in m.qualities), len(m.qualities), m.name

        model = min(trained, key=nearest)
        closest = min(model.qualities, key=lambda q: abs(quality - q))
        return model, f"trained on q{closest}, the nearest to q{quality} among {len(self.models)} models"


def resolve_models(model: str | os.PathLike | None = None) -> ModelSet:
    """Models from an ``.onnx`` file (plus its other-precision siblings), a directory, or the bundled default."""
    if model is None:
        if not DEFAULT_MODEL.is_file():
            raise ModelError(
                f"the bundled default model is missing ({DEFAULT_MODEL}); this installation has no weights: "
                "pass --model PATH (an exported .onnx with its .json sidecar, or a folder of them)"
            )
        model = DEFAULT_MODEL
    path = Path(model)
    if path.is_dir():
        files = [_load(p) for p in sorted(path.glob("*.onnx"))]
        if not files:
            raise ModelError(f"{path}: folder holds no .onnx models")
    elif path.is_file():
        if path.suffix.lower() != ".onnx":
            raise ModelError(f"{path}: expected an .onnx model (with its .json sidecar) or a folder of them")
        chosen = _load(path)
        siblings = [_try_load(p) for p in sorted(path.parent.glob("*.onnx")) if p != path]
        files = [chosen] + [f for f in siblings if f is not None and _key(f) == _key(chosen)]
    else:
        raise ModelError(f"{path}: no such model file or folder")
    return ModelSet(_group(files))


def _load(onnx_path: Path) -> ModelFile:
    """The file and its sidecar; ModelError when the sidecar is unusable or its ``onnx_sha256`` (when recorded)
    does not match the file: a replaced graph, or a sidecar copied from another model."""
    try:
        spec = ModelSpec.load(sidecar_path(onnx_path))
    except SpecError as e:
        raise ModelError(str(e)) from None
    if spec.onnx_sha256 and sha256_file(onnx_path) != spec.onnx_sha256:
        raise ModelError(
            f"{onnx_path}: does not match its sidecar's onnx_sha256 (the .onnx was replaced, or the .json belongs "
            "to another model); re-export it with python -m export.build"
        )
    return ModelFile(onnx_path, spec)


def _try_load(onnx_path: Path) -> ModelFile | None:
    """A sibling of the model asked for: one with no usable sidecar is someone else's file, not an error."""
    try:
        return _load(onnx_path)
    except ModelError:
        return None


def _key(f: ModelFile) -> str:
    return f.spec.checkpoint_sha256 or base_name(f.onnx.stem)


def _group(files: list[ModelFile]) -> list[Model]:
    models: dict[str, Model] = {}
    for f in files:
        if f.spec.precision not in PRECISIONS:
            raise ModelError(f"{f.onnx}: unknown precision '{f.spec.precision}' in its sidecar")
        if f.spec.channels not in (1, 3) or f.spec.layout != "NCHW" or tuple(f.spec.value_range) != (0.0, 1.0):
            raise ModelError(
                f"{f.onnx}: unsupported model I/O ({f.spec.channels} channels, {f.spec.layout}, "
                f"range {f.spec.value_range}); expected 1 or 3 channels, NCHW, [0, 1]"
            )
        model = models.setdefault(_key(f), Model(_key(f)))
        model.files.setdefault(f.spec.precision, f)  # the explicitly named file wins (it is listed first)
    return list(models.values())
