"""INT8 export for CPUs: static QDQ quantisation calibrated on training JPEGs, with a quality gate.

Recipe (each choice measured on the bundled model; the numbers: ``benchmarks/results/README.md``, "Measurements
behind the code"):

* QDQ format, **unsigned 8-bit activations, signed 8-bit per-channel weights** (U8S8: the x86 VNNI/AVX2 path of
  ONNX Runtime's QLinearConv; S8S8 and dynamic quantisation were slower than FP32).
* Calibration: MinMax ranges over random windows of libjpeg round trips (quality 5–30) of **training** images.
  Evaluation sets are refused (:func:`common.datasets.is_eval_set`).
* Only the trunk's blocks run in INT8 (:func:`excluded_nodes`). FP32 stay: the input end (padding, colour
  conversion, space-to-depth, up to the first convolution with a spatial kernel), the output end (from the last one:
  depth-to-space, colour conversion, the residual Add, crops), the generator's feature extraction and reconstruction
  head, and the skip Add joining them; and FP32 nodes read FP32 tensors as they are, not the 8-bit copy the blocks
  read (:func:`read_floats_in_fp32`). These carry image values, the residual or the features the skip hands straight
  to the head, where an 8-bit step lands in the output. Half-resolution trunk, 50 validation images, INT8 − FP32 at
  q30 / q50, mean (worst image): with only its reading and writing nodes FP32 −0.086 / −0.103 dB (−0.33 / −0.42);
  with the ends to the first and last spatial convolutions, the head and the skip −0.045 / −0.045 (−0.17 / −0.19;
  LIVE1's worst image at q50 −0.151, over the gate); with all of this −0.023 / −0.022 (−0.10 / −0.13). 1080p INT8
  time, one busy run: 1.23 s/MP for the second, 1.41 for the last, 1.39 for the previous full-resolution default;
  quiet machine, the last against that default: 1.30 against 1.15 s/MP.
* Each Concat's inputs and output share one range (the union of their calibrated ranges,
  :func:`concat_groups`): ONNX Runtime then copies bytes instead of requantising every input (faster, and no
  quality lost).

Gate: the INT8 graph and the FP32 graph restore the gate images (ground truth + its libjpeg round trip) at every
quality the model serves (:func:`served_qualities`: INT8 loss grows with quality); per quality the mean and the
worst image's PSNR change against the ground truth, and the PSNR of the INT8 output against the FP32 output (8-bit),
are recorded in the sidecar, and the build fails when, at any quality, the mean loss exceeds ``max_loss_db`` or the
worst image's ``max_worst_loss_db``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import onnx

from common.color import rgb_to_y
from common.datasets import is_eval_set
from common.files import list_images
from common.jpeg import jpeg_roundtrip
from common.metrics import psnr_capped, to_uint8
from common.tiling import ALIGN
from export.onnx_check import remove_unread_nodes
from export.validate import ValidationError, to_nchw

BLIND_GATE_QUALITIES = (10, 20, 30)
FLOAT = onnx.TensorProto.FLOAT
FP32_MODULES = ("/shallow/", "/reconstruct/")  # the generator's feature extraction and reconstruction, as exported


class CalibrationError(ValueError):
    """The calibration or gate images cannot be used (missing, empty, an evaluation set); the message says why."""


@dataclass
class Int8Options:
    """How the INT8 graph is calibrated and gated (recorded in its sidecar)."""

    calibration: list[Path] = field(default_factory=list)  # training image folders
    windows: int = 24  # calibration windows
    window: int = 160  # their side, pixels
    qualities: tuple[int, ...] = (5, 10, 20, 30)  # libjpeg qualities of the calibration windows
    seed: int = 0
    gate_data: Path | None = None  # ground-truth images (LIVE1 by default)
    gate_qualities: tuple[int, ...] = ()  # () = the qualities the model serves (:func:`served_qualities`)
    max_loss_db: float = 0.05  # largest allowed drop of mean PSNR vs ground truth, INT8 vs FP32, at each quality
    max_worst_loss_db: float = 0.15  # the same for the worst image at each quality


def calibration_windows(opts: Int8Options, channels: int) -> list[np.ndarray]:
    """``opts.windows`` random 1×C×S×S float32 windows in [0, 1] of JPEG round trips of the calibration images.

    Raises :class:`CalibrationError` for a missing/empty folder or an evaluation set."""
    files = []
    for folder in opts.calibration:
        if not Path(folder).is_dir():
            raise CalibrationError(f"{folder}: no such calibration folder")
        if is_eval_set(folder):
            raise CalibrationError(f"{folder}: refusing to calibrate on an evaluation set (LIVE1/Classic5)")
        files += list_images(folder)
    if not files:
        raise CalibrationError(f"no images in the calibration folders {[str(f) for f in opts.calibration]}")
    rng = np.random.default_rng(opts.seed)
    windows = []
    for index in rng.choice(len(files), opts.windows, replace=len(files) < opts.windows):
        image = _read(files[index], channels)
        crop = _random_crop(image, opts.window, rng)
        jpeg = jpeg_roundtrip(crop, int(rng.choice(opts.qualities)))
        windows.append(to_nchw(jpeg))
    return windows


def gate_images(folder: Path, channels: int) -> list[np.ndarray]:
    """The ground-truth uint8 images of ``folder`` (Y models: MATLAB-Y planes)."""
    if not folder.is_dir() or not (files := list_images(folder)):
        raise CalibrationError(f"{folder}: no gate images (a folder of ground-truth images, e.g. LIVE1)")
    return [_read(path, channels) for path in files]


def served_qualities(trained: list[int]) -> tuple[int, ...]:
    """The JPEG qualities to gate: a model trained on one quality serves that one; a blind model (several or
    unknown) every trained quality and at least 10, 20 and 30 (INT8 loss grows with quality)."""
    if len(trained) == 1:
        return (int(trained[0]),)
    return tuple(sorted({*map(int, trained), *BLIND_GATE_QUALITIES}))


def excluded_nodes(model: onnx.ModelProto) -> list[str]:
    """The nodes kept in FP32 (see module docstring): the input end (every node from the graph input up to and
    including the first convolution with a spatial kernel on each path), the output end (every node from the last
    such convolution on each path to the output) and the generator's feature extraction and reconstruction head
    (the nodes of its ``shallow`` and ``reconstruct`` modules, named ``/shallow/...`` and ``/reconstruct/...`` by the
    ONNX export) with the skip Add feeding the head: only the trunk's blocks run in INT8. Only nodes that compute
    float tensors are named (constants and shape arithmetic are never quantised)."""
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def spatial(node: onnx.NodeProto) -> bool:
        kernel = weights.get(node.input[1]) if node.op_type == "Conv" else None
        return kernel is not None and any(d > 1 for d in kernel.dims[2:])

    def walk(start: list[str], neighbours, onward) -> set[str]:  # reached from ``start`` before a spatial conv
        kept: set[str] = set()
        todo = list(start)
        while todo:
            for node in neighbours(todo.pop()):
                if node.name not in kept:
                    kept.add(node.name)
                    todo += [] if spatial(node) else list(onward(node))
        return kept

    head = {node.name: node for node in graph.node if node.name.startswith(FP32_MODULES)}
    skip = [producer[i] for node in head.values() for i in node.input if i in producer]
    head.update({node.name: node for node in skip if node.op_type == "Add"})
    writers = {name: [node] for name, node in producer.items()}
    from_input = walk([i.name for i in graph.input], lambda t: readers.get(t, []), lambda node: node.output)
    to_output = walk([o.name for o in graph.output], lambda t: writers.get(t, []), lambda node: node.input)
    typed = onnx.shape_inference.infer_shapes(model).graph
    floats = {v.name for v in [*typed.value_info, *typed.output] if v.type.tensor_type.elem_type == FLOAT}
    kept = from_input | to_output | head.keys()
    computed = [node for node in graph.node if node.op_type != "Constant" and floats.intersection(node.output)]
    return sorted(node.name for node in computed if node.name in kept)


def concat_groups(model: onnx.ModelProto) -> list[set[str]]:
    """Sets of tensors that must share one quantisation: every Concat's inputs with its output (sets that share a
    tensor merged). With one scale and zero point on both sides, ONNX Runtime's QLinearConcat copies bytes instead
    of requantising each input through a lookup table (it halved the Concat time, see module docstring)."""
    groups: list[set[str]] = []
    for node in model.graph.node:
        if node.op_type != "Concat":
            continue
        group = {*node.input, *node.output}
        for other in [g for g in groups if g & group]:
            groups.remove(other)
            group |= other
        groups.append(group)
    return groups


def shared_ranges(groups: list[set[str]], ranges: dict[str, tuple[float, float]]) -> dict[str, list[dict]]:
    """``TensorQuantOverrides`` giving every tensor of a group the union of the group's calibrated ranges."""
    overrides = {}
    for group in groups:
        if not group <= ranges.keys():  # a Concat of integers (shape arithmetic) is not quantised
            continue
        lo = min(ranges[t][0] for t in group)
        hi = max(ranges[t][1] for t in group)
        overrides.update({t: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for t in group})
    return overrides


def quantize(fp32_path: Path, int8_path: Path, windows: list[np.ndarray]) -> list[str]:
    """Write the U8S8 per-channel QDQ graph of ``fp32_path`` to ``int8_path``; return the nodes kept FP32."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import create_calibrator
    from onnxruntime.quantization.shape_inference import quant_pre_process

    input_name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name

    class Windows(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter({input_name: w} for w in windows)

        def get_next(self) -> dict | None:
            return next(self._feeds, None)

    with tempfile.TemporaryDirectory(dir=int8_path.parent) as tmp:
        prepared = Path(tmp) / "prepared.onnx"  # shapes inferred, folded: what the quantiser expects
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        keep = excluded_nodes(model)
        # MinMax ranges first (quantize_static's own calibration gives the same), so that Concat sides can share one
        calibrator = create_calibrator(str(prepared), augmented_model_path=str(Path(tmp) / "augmented.onnx"))
        calibrator.collect_data(Windows())
        ranges = {
            name: tuple(float(np.ravel(v)[0]) for v in t.range_value) for name, t in calibrator.compute_data().items()
        }
        quantize_static(
            str(prepared),
            str(int8_path),
            Windows(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=keep,
            extra_options={"TensorQuantOverrides": shared_ranges(concat_groups(model), ranges)},
        )
    quantised = onnx.load(str(int8_path))
    read_floats_in_fp32(quantised, set(keep))
    onnx.save(quantised, str(int8_path))
    return keep


def read_floats_in_fp32(model: onnx.ModelProto, fp32_nodes: set[str]) -> None:
    """Let FP32 nodes read a tensor computed in FP32 (by an FP32 node or the graph input) as it is, not the 8-bit
    round trip ``DequantizeLinear(QuantizeLinear(t))`` the quantiser shares among all its readers: the skip from the
    feature extraction to the head stays exact while the blocks read it in 8 bit. Quantise/dequantise pairs left
    unread are removed."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    computed_in_fp32 = {i.name for i in graph.input} | {o for n in graph.node if n.name in fp32_nodes for o in n.output}
    for node in graph.node:
        if node.name not in fp32_nodes:
            continue
        for k, name in enumerate(node.input):
            dq = producer.get(name)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear" and q.input[0] in computed_in_fp32:
                node.input[k] = q.input[0]
    remove_unread_nodes(graph, ("QuantizeLinear", "DequantizeLinear"))


def gate(
    fp32_path: Path, int8_path: Path, truths: list[np.ndarray], qualities: tuple[int, ...], opts: Int8Options
) -> dict:
    """Restore each ground truth's JPEG round trip at each quality with both graphs (ONNX Runtime CPU, whole
    images); the numbers for the sidecar, per quality and over all of them."""
    import onnxruntime as ort

    fp32, int8 = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (fp32_path, int8_path))
    name = fp32.get_inputs()[0].name
    per_quality = {}
    for quality in qualities:
        fp32_db, int8_db, vs_fp32 = [], [], []
        for truth in truths:
            x = to_nchw(jpeg_roundtrip(truth, quality))
            a, b = (_to_image(s.run(None, {name: x})[0], truth.ndim) for s in (fp32, int8))
            fp32_db.append(psnr_capped(truth, a))
            int8_db.append(psnr_capped(truth, b))
            vs_fp32.append(psnr_capped(a, b))
        per_quality[str(quality)] = {
            "fp32_psnr_db": float(np.mean(fp32_db)),
            "int8_psnr_db": float(np.mean(int8_db)),
            "delta_db": float(np.mean(int8_db) - np.mean(fp32_db)),
            "worst_image_delta_db": float(min(np.subtract(int8_db, fp32_db))),
            "int8_vs_fp32_min_psnr_uint8_db": float(min(vs_fp32)),
            "int8_vs_fp32_mean_psnr_uint8_db": float(np.mean(vs_fp32)),
        }
    return {
        "gate_data": Path(opts.gate_data).name,  # the folder's name: sidecars travel, absolute paths don't
        "gate_images": len(truths),
        "gate_qualities": list(qualities),
        "max_loss_db": opts.max_loss_db,
        "max_worst_loss_db": opts.max_worst_loss_db,
        "per_quality": per_quality,
        "delta_db": min(q["delta_db"] for q in per_quality.values()),  # the worst quality's
        "worst_image_delta_db": min(q["worst_image_delta_db"] for q in per_quality.values()),
    }


def check_gate(name: str, numbers: dict) -> None:
    """Raise :class:`ValidationError` when, at any gated quality, the INT8 graph lost more than ``max_loss_db``
    (mean) or ``max_worst_loss_db`` (worst image) against FP32."""
    failed = [
        f"q{quality}: mean {q['int8_psnr_db']:.3f} dB vs FP32 {q['fp32_psnr_db']:.3f} dB ({q['delta_db']:+.3f} dB), "
        f"worst image {q['worst_image_delta_db']:+.3f} dB"
        for quality, q in numbers["per_quality"].items()
        if not (q["delta_db"] >= -numbers["max_loss_db"] and q["worst_image_delta_db"] >= -numbers["max_worst_loss_db"])
    ]
    if failed:
        raise ValidationError(
            f"{name} failed the INT8 quality gate (allowed −{numbers['max_loss_db']:g} dB mean, "
            f"−{numbers['max_worst_loss_db']:g} dB worst image, at each quality) on {numbers['gate_images']} images "
            f"of {numbers['gate_data']}: {'; '.join(failed)}"
        )


def _read(path: Path, channels: int) -> np.ndarray:
    bgr = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise CalibrationError(f"{path}: cannot be decoded as an image")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return rgb_to_y(rgb) if channels == 1 else rgb


def _random_crop(image: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    """A ``side``-square crop (the whole image when smaller) whose origin is on the tiles' JPEG MCU grid (ALIGN)."""
    h, w = image.shape[:2]
    top = ALIGN * int(rng.integers(0, max(h - side, 0) // ALIGN + 1))
    left = ALIGN * int(rng.integers(0, max(w - side, 0) // ALIGN + 1))
    return np.ascontiguousarray(image[top : top + side, left : left + side])


def _to_image(output: np.ndarray, ndim: int) -> np.ndarray:
    """1×C×H×W model output → uint8 H×W (ndim 2) or H×W×C, rounded as the runtime does."""
    out = to_uint8(output[0])
    return out[0] if ndim == 2 else out.transpose(1, 2, 0)
