"""``python -m export.opencv_compat MODEL.onnx``: an exactly equivalent graph that OpenCV's DNN importer accepts.

OpenCV 4.6's ONNX importer (Debian bookworm's ``libopencv-dev``) rejects an element-wise node that broadcasts an
N×1×H×W map against N×C×H×W (``findBroadAxis`` assertion; WCDGAN's spatial-attention ``Mul``). The rewrite
expands the one-channel operand to C channels first with a 1×1 convolution whose C weights are 1.0 and which has
no bias: each output channel is ``1.0 * x``, exactly ``x``, so the graph computes bit for bit what the original
does (checked with ONNX Runtime at every rewrite). N×C×1×1 channel scaling is left alone (OpenCV handles it).
The importer also rejects shapes computed at run time (``Shape``), ``Squeeze`` with its axes as an input and
``DepthToSpace``, which the half-resolution trunk uses: it pads odd sizes to even and crops back, from its input's
shape, and rearranges luma with space-to-depth and depth-to-space. The variant drops that padding and crop
(identities for even sizes; the native C++ route's windows are multiples of 16) and computes both rearrangements as
(transposed) convolutions with one-hot kernels, exact as well; it is checked on an even size.

Writes ``NAME_opencv.onnx`` and its sidecar (the source's, with this file's hash and the check recorded under
``validation.opencv_compat``). Torch-free: needs onnx, onnxruntime, numpy. ``export.build --opencv`` calls
:func:`write_opencv_variant` on the FP32 graph it has just validated.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from common.cli import CommandFailed, run_cli
from common.files import atomic_path, check_plain_name, sha256_file
from export.onnx_check import load_checked, remove_unread_nodes
from runtime.model_files import ModelError
from runtime.spec import ModelSpec, SpecError, sidecar_path

_ELEMENTWISE = {"Mul", "Add", "Sub", "Div"}
MAX_ABS_ERROR = 1e-6  # the rewrite is exact; anything above this is a bug


class CompatError(RuntimeError):
    """The rewritten graph is not equivalent to its source, or the source is not a usable model."""


def _channels(info: dict[str, onnx.ValueInfoProto], name: str) -> int | None:
    """The static channel count of a rank-4 tensor, or None (unknown rank, symbolic channel, initializer)."""
    value = info.get(name)
    dims = value.type.tensor_type.shape.dim if value is not None else []
    return dims[1].dim_value or None if len(dims) == 4 else None


def expand_channel_broadcasts(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of ``model`` where each element-wise node broadcasting a 1-channel map against C channels gets an
    explicit 1→C expansion of that map; also returns the rewritten nodes' names."""
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = model.graph
    info = {v.name: v for v in [*graph.value_info, *graph.input, *graph.output]}
    nodes, rewritten = [], []
    for node in graph.node:
        channels = [_channels(info, name) for name in node.input]
        if node.op_type in _ELEMENTWISE and len(channels) == 2 and None not in channels and 1 in channels:
            wide = max(channels)
            if wide > 1:
                narrow = channels.index(1)
                ones = f"{node.name}/expand_ones"
                expanded = f"{node.name}/expand_output_0"
                graph.initializer.append(numpy_helper.from_array(np.ones((wide, 1, 1, 1), np.float32), ones))
                conv = helper.make_node("Conv", [node.input[narrow], ones], [expanded], f"{node.name}/expand")
                conv.attribute.append(helper.make_attribute("kernel_shape", [1, 1]))  # OpenCV requires it
                nodes.append(conv)
                node.input[narrow] = expanded
                rewritten.append(node.name)
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # stale for the rewritten nodes; readers infer shapes again
    onnx.checker.check_model(model, full_check=True)
    return model, rewritten


def drop_even_padding(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of ``model`` without the padding of the graph input to an even size and the crops writing the output
    (each made an Identity, the shape arithmetic feeding them removed); also returns the dropped nodes' names. The
    copy computes the same for even heights and widths."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    inputs = {i.name for i in graph.input}
    dropped = [node for node in graph.node if node.op_type == "Pad" and node.input[0] in inputs]
    name = graph.output[0].name
    while dropped and (node := producer.get(name)) is not None and node.op_type == "Slice":
        dropped.append(node)
        name = node.input[0]
    for node in dropped:
        del node.input[1:], node.attribute[:]
        node.op_type = "Identity"
    remove_unread_nodes(graph)
    return model, [node.name for node in dropped]


def rearrangements_as_convolutions(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of ``model`` where PyTorch's exported ``pixel_unshuffle(x, 2)`` of a one-channel map (Unsqueeze,
    Reshape ×2, Transpose, Reshape, Squeeze) becomes a stride-2 convolution, and each ``DepthToSpace`` (CRD) a
    grouped stride-b transposed convolution, all with one-hot kernels; also returns the replaced nodes' names."""
    model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    info = {v.name: v for v in [*graph.value_info, *graph.input, *graph.output]}
    producer = {out: node for node in graph.node for out in node.output}
    replaced, nodes = [], []
    for node in graph.node:
        if node.op_type == "Squeeze":
            chain, name = [node], node.input[0]
            while (up := producer.get(name)) is not None and up.op_type in ("Reshape", "Transpose", "Unsqueeze"):
                chain.append(up)
                name = up.input[0]
            if [n.op_type for n in chain] == ["Squeeze", "Reshape", "Transpose", "Reshape", "Reshape", "Unsqueeze"]:
                kernel = np.zeros((4, 1, 2, 2), np.float32)
                kernel[range(4), 0, [0, 0, 1, 1], [0, 1, 0, 1]] = 1.0
                node = _one_hot_conv("Conv", f"{node.name}/as_conv", name, node.output[0], kernel, 2, 1, graph)
                replaced += [n.name for n in chain]
        elif node.op_type == "DepthToSpace" and _mode(node) == "CRD" and (channels := _channels(info, node.input[0])):
            block = next(a.i for a in node.attribute if a.name == "blocksize")
            kernel = np.zeros((channels, 1, block, block), np.float32)
            for c in range(channels):
                kernel[c, 0, c % block**2 // block, c % block] = 1.0
            groups = channels // block**2
            node = _one_hot_conv("ConvTranspose", f"{node.name}/as_conv", node.input[0], node.output[0], kernel,
                                 block, groups, graph)  # fmt: skip
            replaced.append(node.name)
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    remove_unread_nodes(graph)
    return model, replaced


def _mode(node: onnx.NodeProto) -> str:
    """A DepthToSpace node's channel order: CRD (PyTorch's pixel_shuffle) or DCR (ONNX's default)."""
    return next((a.s.decode() for a in node.attribute if a.name == "mode"), "DCR")


def _one_hot_conv(
    op: str, name: str, x: str, y: str, kernel: np.ndarray, stride: int, groups: int, graph
) -> onnx.NodeProto:
    graph.initializer.append(numpy_helper.from_array(kernel, f"{name}/kernel"))
    k = list(kernel.shape[2:])
    return helper.make_node(op, [x, f"{name}/kernel"], [y], name, kernel_shape=k, strides=[stride] * 2, group=groups)


def max_abs_difference(a: str | os.PathLike, b: str | os.PathLike, channels: int, even: bool = False) -> float:
    """Largest |a − b| of two ONNX graphs' outputs (ONNX Runtime CPU) on a random 2×C×67×45 batch (68×46 with
    ``even``): an odd size and a batch of two exercise the broadcast shapes the rewrite touches."""
    import onnxruntime as ort

    x = np.random.default_rng(0).random((2, channels, 67 + even, 45 + even), dtype=np.float32)
    outs = [ort.InferenceSession(os.fspath(p), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
            for p in (a, b)]  # fmt: skip
    return float(np.max(np.abs(outs[0] - outs[1])))


def write_opencv_variant(onnx_path: str | os.PathLike, output_dir: str | os.PathLike | None = None) -> Path:
    """Write ``NAME_opencv.onnx`` + sidecar for ``onnx_path`` (an FP32 model with its sidecar) into
    ``output_dir`` (default: beside it); return the new ONNX path. The sidecar's name must be a plain file name
    and the result must not replace the source. Raises :class:`CompatError`."""
    src = Path(onnx_path)
    try:
        spec = ModelSpec.load(sidecar_path(src))
        name = check_plain_name(spec.name, "sidecar name")
        source = load_checked(src, spec)
    except (SpecError, ModelError) as e:
        raise CompatError(str(e)) from None
    except ValueError as e:
        raise CompatError(f"{sidecar_path(src)}: {e}") from None
    if spec.precision != "fp32" or spec.input_dtype != "float32":
        raise CompatError(f"{src}: OpenCV's DNN module needs an FP32 graph with float32 I/O (this is {spec.precision})")
    out_dir = Path(output_dir) if output_dir is not None else src.parent
    dst = out_dir / f"{name}_opencv.onnx"
    if dst.resolve() == src.resolve() or (dst.exists() and os.path.samefile(dst, src)):
        raise CompatError(f"{src}: its variant would be {dst.name}, the input itself; refusing to overwrite an input")
    try:
        model, dropped = drop_even_padding(source)
        model, rearranged = rearrangements_as_convolutions(model)
        model, rewritten = expand_channel_broadcasts(model)
    except (OSError, ValueError, onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise CompatError(f"{src}: cannot rewrite ({e})") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        onnx.save(model, os.fspath(tmp))
        error = max_abs_difference(src, tmp, spec.channels, even=bool(dropped))
        if not error <= MAX_ABS_ERROR:
            raise CompatError(f"{dst.name}: differs from {src.name} by {error:g} (> {MAX_ABS_ERROR:g})")
    variant = dataclasses.replace(spec, name=f"{spec.name}_opencv", onnx_sha256=sha256_file(dst))
    variant.validation = {
        **spec.validation,
        "opencv_compat": {"source_onnx_sha256": spec.onnx_sha256, "expanded_nodes": rewritten,
                          "dropped_nodes": dropped, "rearrangements_as_convolutions": rearranged,
                          "even_size_only": bool(dropped),
                          "max_abs_error_vs_source": error},
    }  # fmt: skip
    variant.save(sidecar_path(dst))
    return dst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m export.opencv_compat",
        description="Write NAME_opencv.onnx: the same network without the broadcasts OpenCV 4.6's DNN importer "
        "rejects (checked equal with ONNX Runtime), with its sidecar.",
    )
    p.add_argument("model", type=Path, help="an FP32 .onnx with its .json sidecar (e.g. runtime/weights/default.onnx)")
    p.add_argument("-o", "--output", type=Path, help="output folder (default: beside the model)")
    return run_cli(run, p.parse_args(argv))


def run(a: argparse.Namespace) -> int:
    """Write the variant and print where (stdout); CommandFailed for :func:`run_cli`."""
    try:
        dst = write_opencv_variant(a.model, a.output)
    except (CompatError, OSError) as e:
        raise CommandFailed(str(e)) from None
    spec = ModelSpec.load(sidecar_path(dst))
    check = spec.validation["opencv_compat"]
    print(
        f"wrote {dst}: {len(check['expanded_nodes'])} broadcast(s) expanded, "
        f"max |difference| vs {a.model.name} {check['max_abs_error_vs_source']:g} (ONNX Runtime)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
