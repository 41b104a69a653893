"""FP16 arithmetic checked on a CPU: the FP16 graph run with FP16 tensors, the FP32 graph's ranges against FP16 limits.

ONNX Runtime's CPU provider computes an FP16 graph in FP32 (its optimised graph holds FLOAT initialisers only), so
comparing its output with FP32 measures only the rounding of the weights. Here the FP16 graph runs in ONNX's
reference evaluator, which keeps every tensor in its declared dtype: each activation is stored as float16 (beyond
65504 it becomes ±inf, below 2⁻²⁴ it flushes to zero); inside Conv and GlobalAveragePool the FP16 operands are
accumulated in FP32 and the result rounded to FP16, as GPU FP16 kernels with FP32 accumulators do (numpy's float16
matmul accumulates in FP32 too; :class:`Conv` computes the same tap by tap, without the reference's dense dilated
kernels).

Alongside, the FP32 graph (ONNX Runtime) exposes every node output: per tensor the largest magnitude (against
65504) and the smallest non-zero magnitude (against FP16's normal range, 2⁻¹⁴), with the attention's global
averages reported apart (a channel mean of small activations is where underflow would show first).

The check fails on a non-finite value in any FP16 tensor, on an FP32 activation beyond 65504 in a tensor the FP16
graph stores as float16, and on an 8-bit output PSNR below the threshold.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator
from onnx.reference.ops import op_conv

from common.metrics import psnr_capped, to_uint8
from export.validate import ValidationError

FP16_MAX = 65504.0
FP16_MIN_NORMAL = 2.0**-14  # 6.1e-5: below it FP16 keeps fewer significant bits
FP16_MIN_SUBNORMAL = 2.0**-24  # 6.0e-8: below half of it a value flushes to zero
KIND = "emulated fp16 on cpu (onnx reference evaluator: fp16 tensors, fp32 accumulation in Conv/GlobalAveragePool)"


class Conv(op_conv.Conv):  # the evaluator replaces ops by class name
    """2-D Conv with FP16 operands, FP32 accumulation and an FP16 result, one matrix product per kernel tap.

    The reference implementation computes the same (numpy's float16 matmul accumulates in FP32) but spreads a
    dilated kernel into a mostly-zero dense one (17×17 taps for 3×3 at dilation 8). Other dtypes, groups,
    strides and automatic padding go to the reference implementation."""

    def _run(self, X, W, B=None, **attributes):
        simple = attributes.get("group") in (None, 1) and attributes.get("auto_pad") in (None, "NOTSET")
        simple &= X.dtype == np.float16 and X.ndim == 4 and all(s == 1 for s in attributes.get("strides") or [1])
        if not simple:
            return super()._run(X, W, B, **attributes)
        (top, left, bottom, right) = attributes.get("pads") or (0, 0, 0, 0)
        dy, dx = attributes.get("dilations") or (1, 1)
        x = np.pad(X.astype(np.float32), ((0, 0), (0, 0), (top, bottom), (left, right)))
        w = W.astype(np.float32)
        kh, kw = w.shape[2:]
        h, wd = x.shape[2] - dy * (kh - 1), x.shape[3] - dx * (kw - 1)
        out = np.zeros((X.shape[0], w.shape[0], h, wd), np.float32)
        for i in range(kh):
            for j in range(kw):
                out += np.einsum("oc,nchw->nohw", w[:, :, i, j], x[:, :, i * dy : i * dy + h, j * dx : j * dx + wd])
        if B is not None:
            out += B.astype(np.float32)[None, :, None, None]
        return (out.astype(np.float16),)


def node_outputs(path: str | os.PathLike) -> onnx.ModelProto:
    """The graph at ``path`` with every node output exposed as a graph output (graph outputs first, in order)."""
    model = onnx.load(str(path))
    listed = {o.name for o in model.graph.output}
    extra = [o for n in model.graph.node for o in n.output if o and o not in listed]
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in extra)
    return model


@dataclass
class Fp16Numbers:
    """What :func:`check_numbers` measured; :func:`dataclasses.asdict` of it is the sidecar's
    ``validation.fp16_arithmetic``. The defaults describe a check that found nothing."""

    kind: str = KIND  # how FP16 was computed
    min_psnr_uint8_db: float = 100.0  # FP16 vs FP32 output, 8-bit, worst image
    mean_psnr_uint8_db: float = 100.0
    max_abs_error: float = 0.0
    nonfinite_tensors: list[str] = field(default_factory=list)  # FP16 tensors holding NaN/Inf
    overflow_tensors: list[str] = field(default_factory=list)  # FP32 tensors beyond FP16_MAX that FP16 stores
    fp32_max_abs: float = 0.0  # largest |x| of a tensor the FP16 graph stores as float16
    fp32_max_abs_tensor: str | None = None
    fp16_headroom: float = float("inf")  # FP16_MAX / fp32_max_abs
    fp32_min_nonzero_abs: float = float("inf")
    share_subnormal_in_fp16: float = 0.0  # of the non-zero values FP16 stores: below its normal range
    share_flushed_to_zero_in_fp16: float = 0.0  # ... and flushed to zero
    attention_average_abs_range: list[float] = field(default_factory=lambda: [0.0, 0.0])
    fp32_ranges: dict[str, list[float]] = field(default_factory=dict)  # tensor → [largest |x|, smallest non-zero]


Tensors = Callable[[np.ndarray], dict[str, np.ndarray]]


def fp16_evaluator(fp16_path: str | os.PathLike) -> Tensors:
    """A function of one 1×C×H×W float32 image returning every tensor of the FP16 graph, computed in FP16 (see module
    docstring); the graph is loaded once."""
    model = onnx.load(str(fp16_path))
    evaluator = ReferenceEvaluator(model, new_ops=[Conv])
    names = [o for n in model.graph.node for o in n.output if o]
    feed_type = model.graph.input[0].type.tensor_type.elem_type
    feed_name, feed_dtype = model.graph.input[0].name, onnx.helper.tensor_dtype_to_np_dtype(feed_type)

    def run(image: np.ndarray) -> dict[str, np.ndarray]:
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is a finding, reported by check_numbers
            return dict(zip(names, evaluator.run(names, {feed_name: image.astype(feed_dtype)}), strict=True))

    return run


def fp16_tensors(fp16_path: str | os.PathLike, image: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of the FP16 graph for one 1×C×H×W float32 image, computed in FP16 (see module docstring)."""
    return fp16_evaluator(fp16_path)(image)


def fp32_session(fp32_path: str | os.PathLike) -> Tensors:
    """A function of one image returning every node output of the FP32 graph (ONNX Runtime CPU; one session)."""
    import onnxruntime as ort

    model = node_outputs(fp32_path)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names, feed_name = [o.name for o in model.graph.output], model.graph.input[0].name
    return lambda image: dict(zip(names, session.run(names, {feed_name: image}), strict=True))


def fp32_tensors(fp32_path: str | os.PathLike, image: np.ndarray) -> dict[str, np.ndarray]:
    """Every node output of the FP32 graph (ONNX Runtime CPU) for one image."""
    return fp32_session(fp32_path)(image)


def check_numbers(fp32_path: str | os.PathLike, fp16_path: str | os.PathLike, images: list[np.ndarray]) -> Fp16Numbers:
    """Run both graphs on ``images``; the numbers for the sidecar (``fp32_ranges`` maps each FP32 tensor to
    [largest |x|, smallest non-zero |x|] over the images)."""
    graph = onnx.load(str(fp32_path), load_external_data=False).graph
    tally = _Tally(output=graph.output[0].name)
    run_fp32, run_fp16 = fp32_session(fp32_path), fp16_evaluator(fp16_path)
    for image in images:
        tally.add(run_fp32(image), run_fp16(image))
    return tally.numbers(ops={o: n.op_type for n in graph.node for o in n.output})


class _Tally:
    """:func:`check_numbers`' running numbers, image by image."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.ranges: dict[str, list[float]] = {}  # FP32 tensor → [largest |x|, smallest non-zero |x|]
        self.counts = np.zeros(3, np.int64)  # non-zero values; of them below FP16's normal range; flushed in FP16
        self.nonfinite: set[str] = set()
        self.stored_fp16: set[str] = set()
        self.psnrs: list[float] = []
        self.max_abs = 0.0

    def add(self, fp32: dict[str, np.ndarray], fp16: dict[str, np.ndarray]) -> None:
        """One image's tensors of both graphs."""
        output = self.output
        self.nonfinite |= {name for name, t in fp16.items() if t.dtype.kind == "f" and not np.isfinite(t).all()}
        self.stored_fp16 |= {name for name, t in fp16.items() if t.dtype == np.float16}
        for name, t in fp32.items():
            if t.dtype.kind == "f":  # not shape arithmetic (the half trunk's padding): integers, no FP16 limits
                self._add_range(name, t)
        a, b = fp32[output].astype(np.float64), fp16[output].astype(np.float64)
        finite = bool(np.isfinite(b).all())  # else the check fails on the non-finite tensors
        self.psnrs.append(psnr_capped(to_uint8(a), to_uint8(b)) if finite else 0.0)
        self.max_abs = max(self.max_abs, float(np.abs(a - b).max()) if finite else float("inf"))

    def _add_range(self, name: str, t: np.ndarray) -> None:
        magnitude = np.abs(t[np.isfinite(t)])
        nonzero = magnitude[magnitude > 0]
        top, low = self.ranges.get(name, [0.0, float("inf")])
        self.ranges[name] = [max(top, float(magnitude.max(initial=0))), min(low, float(nonzero.min(initial=np.inf)))]
        if name in self.stored_fp16:
            self.counts += [nonzero.size, (nonzero < FP16_MIN_NORMAL).sum(), (nonzero < FP16_MIN_SUBNORMAL / 2).sum()]

    def numbers(self, ops: dict[str, str]) -> Fp16Numbers:
        """The totals; ``ops``: each tensor's producing op type (the attention's averages are reported apart)."""
        ranges, counts = self.ranges, self.counts
        checked = {name: r for name, r in ranges.items() if name in self.stored_fp16}  # FP32-kept nodes can't overflow
        largest = max(checked, key=lambda name: checked[name][0], default=None)
        largest_abs = checked[largest][0] if largest else 0.0
        averages = [r for name, r in ranges.items() if ops.get(name) == "GlobalAveragePool"]
        return Fp16Numbers(
            min_psnr_uint8_db=min(self.psnrs),
            mean_psnr_uint8_db=float(np.mean(self.psnrs)),
            max_abs_error=self.max_abs,
            nonfinite_tensors=sorted(self.nonfinite),
            overflow_tensors=sorted(name for name, (top, _) in checked.items() if top > FP16_MAX),
            fp32_max_abs=largest_abs,
            fp32_max_abs_tensor=largest,
            fp16_headroom=FP16_MAX / largest_abs if largest_abs else float("inf"),
            fp32_min_nonzero_abs=min((low for _, low in checked.values()), default=float("inf")),
            share_subnormal_in_fp16=float(counts[1] / max(counts[0], 1)),
            share_flushed_to_zero_in_fp16=float(counts[2] / max(counts[0], 1)),
            attention_average_abs_range=[
                min((low for _, low in averages), default=0.0),
                max((top for top, _ in averages), default=0.0),
            ],
            fp32_ranges={name: [float(f"{top:.4g}"), float(f"{low:.4g}")] for name, (top, low) in ranges.items()},
        )


def check(name: str, numbers: Fp16Numbers, min_psnr: float) -> None:
    """Raise :class:`ValidationError` on a non-finite FP16 tensor, an FP16 overflow or too low an output PSNR."""
    problems = []
    if numbers.nonfinite_tensors:
        first = numbers.nonfinite_tensors[0]
        problems.append(f"NaN/Inf in {len(numbers.nonfinite_tensors)} FP16 tensors (first: {first})")
    if numbers.overflow_tensors:
        problems.append(
            f"overflow: {len(numbers.overflow_tensors)} tensors exceed the FP16 maximum {FP16_MAX:g} "
            f"(largest |x| = {numbers.fp32_max_abs:.4g} in {numbers.fp32_max_abs_tensor})"
        )
    if not numbers.min_psnr_uint8_db >= min_psnr:
        problems.append(f"output PSNR {numbers.min_psnr_uint8_db:.2f} dB < {min_psnr:g} dB")
    if problems:
        raise ValidationError(f"{name} failed the FP16 arithmetic check ({KIND}): {'; '.join(problems)}")


def summary(numbers: Fp16Numbers) -> str:
    """One log line of the numbers."""
    n = numbers
    return (
        f"min PSNR {n.min_psnr_uint8_db:.2f} dB, max abs {n.max_abs_error:.3g}, "
        f"{len(n.nonfinite_tensors)} non-finite and {len(n.overflow_tensors)} overflowing tensors, "
        f"largest |x| {n.fp32_max_abs:.4g} ({n.fp16_headroom:.3g}× headroom), smallest non-zero "
        f"|x| {n.fp32_min_nonzero_abs:.3g}, attention averages |x| in "
        f"[{n.attention_average_abs_range[0]:.3g}, {n.attention_average_abs_range[1]:.3g}]"
    )
