"""FP32 ONNX → FP16 ONNX (weights and compute in FP16), optionally keeping some nodes in FP32.

Uses ONNX Runtime's converter: unlike ``onnxconverter_common``'s default it clamps only beyond the FP16 range
(65504) and names its Cast nodes uniquely.
"""

from __future__ import annotations

import fnmatch
import os

import onnx

from common.files import atomic_path


class NodePatternError(ValueError):
    """An ``--fp32-nodes`` pattern matches no node."""


def matching_nodes(proto: onnx.ModelProto, patterns: list[str]) -> list[str]:
    """Names of the graph's nodes matching any shell-style ``patterns`` (e.g. ``*/attention/channel/*``)."""
    return [n.name for n in proto.graph.node if any(fnmatch.fnmatchcase(n.name, p) for p in patterns)]


def convert_fp16(
    src: onnx.ModelProto, dst: str | os.PathLike, keep_io_types: bool = True, fp32_patterns: list[str] | None = None
) -> list[str]:
    """Write the FP16 version of ``src`` to ``dst`` atomically; return the names of nodes kept in FP32.

    ``keep_io_types``: graph inputs/outputs stay float32 (a Cast at each end) so callers need not change.
    A pattern that matches no node is an error (a typo would otherwise silently keep everything FP16).
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16  # either ONNX Runtime wheel has it

    patterns = list(fp32_patterns or [])
    blocked = matching_nodes(src, patterns)
    unmatched = [p for p in patterns if not matching_nodes(src, [p])]
    if unmatched:
        raise NodePatternError(f"--fp32-nodes pattern(s) match no node of the graph: {', '.join(unmatched)}")
    fp16 = convert_float_to_float16(
        onnx.ModelProto.FromString(src.SerializeToString()),  # the converter edits its argument in place
        keep_io_types=keep_io_types,
        max_finite_val=65504.0,
        node_block_list=blocked,
    )
    _topological_sort(fp16.graph)
    with atomic_path(dst) as tmp:
        onnx.save(fp16, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
    return blocked


def _topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node follows its producers, in place.

    The converter appends its I/O Casts at the end; ONNX Runtime copes, but the ONNX checker and TensorRT's
    parser require topological order.
    """
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = [onnx.NodeProto.FromString(n.SerializeToString()) for n in graph.node]  # detached copies
    ordered: list[onnx.NodeProto] = []
    while pending:
        waiting = []
        for node in pending:
            if all(i in available for i in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                waiting.append(node)
        if len(waiting) == len(pending):
            raise ValueError("the FP16 graph has a cycle or an undefined input")
        pending = waiting
    del graph.node[:]
    graph.node.extend(ordered)
