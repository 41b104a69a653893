"""The check a command runs on an exported graph before it copies or rewrites it: the file is a valid ONNX model
whose one input and one output are the sidecar's (names, dtypes, NCHW with the sidecar's channel count); and the
clean-up after a rewrite (:func:`remove_unread_nodes`). Torch-free (onnx only)."""

from __future__ import annotations

import os

import onnx
from google.protobuf.message import DecodeError
from onnx.external_data_helper import uses_external_data

from runtime.backends.base import first_line
from runtime.model_files import ModelError
from runtime.spec import ModelSpec

ONNX_TYPES = {"float32": onnx.TensorProto.FLOAT, "float16": onnx.TensorProto.FLOAT16}


def load_checked(onnx_path: str | os.PathLike, spec: ModelSpec) -> onnx.ModelProto:
    """``onnx_path`` parsed and checked by ``onnx.checker``, matching ``spec``; raises :class:`ModelError` with the
    reason otherwise (unparsable file, external data, other tensor names, dtypes or channel count)."""
    for what, dtype in (("input_dtype", spec.input_dtype), ("output_dtype", spec.output_dtype)):
        if dtype not in ONNX_TYPES:
            raise ModelError(f"{onnx_path}: sidecar {what} {dtype!r:.40} is not one of {', '.join(ONNX_TYPES)}")
    try:
        model = onnx.load(os.fspath(onnx_path), load_external_data=False)
        onnx.checker.check_model(model)
    except (OSError, ValueError, DecodeError, onnx.checker.ValidationError) as e:
        raise ModelError(f"{onnx_path}: not a valid ONNX model ({first_line(e)[:200]})") from None
    if any(uses_external_data(t) for t in model.graph.initializer):
        raise ModelError(f"{onnx_path}: keeps its weights in external data files; export a self-contained .onnx")
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    expected = [(spec.input_name, spec.input_dtype, inputs), (spec.output_name, spec.output_dtype, graph.output)]
    for name, dtype, values in expected:
        if [v.name for v in values] != [name]:
            raise ModelError(f"{onnx_path}: graph tensors {[v.name for v in values]} are not its sidecar's ['{name}']")
        tensor = values[0].type.tensor_type
        dims = tensor.shape.dim
        if tensor.elem_type != ONNX_TYPES[dtype] or len(dims) != 4:
            raise ModelError(f"{onnx_path}: '{name}' is not a rank-4 {dtype} tensor as its sidecar says")
        if dims[1].dim_value not in (0, spec.channels):  # 0: symbolic
            raise ModelError(f"{onnx_path}: '{name}' has {dims[1].dim_value} channels, its sidecar {spec.channels}")
    return model


def remove_unread_nodes(graph: onnx.GraphProto, op_types: tuple[str, ...] | None = None) -> None:
    """Remove, repeatedly, the nodes (of ``op_types`` only, if given) none of whose outputs a node or the graph
    output reads: what a rewrite left without a reader."""
    outputs = {o.name for o in graph.output}
    while True:
        read = outputs.union(*(n.input for n in graph.node))
        unread = [
            n for n in graph.node if (op_types is None or n.op_type in op_types) and not read.intersection(n.output)
        ]
        if not unread:
            return
        for node in unread:
            graph.node.remove(node)
