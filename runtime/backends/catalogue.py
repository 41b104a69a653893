"""The backend catalogue: which backends exist, the order ``auto`` tries them in, and each one's default batch and
tile core. A leaf (it imports no other runtime module at run time), so that :mod:`runtime.settings` validates
against it and :mod:`runtime.backends.select` builds from it without importing each other.

``auto`` takes the fastest backend that actually loads: tensorrt > ort-cuda > ort-cpu > openvino. OpenVINO comes
after ONNX Runtime's CPU backend because it was slower end to end on the team's CPU with the model's INT8 graph (AMD
EPYC, AVX2 without VNNI; ``benchmarks/results/cpu_paths.md``): ``auto`` reaches it only where ONNX Runtime is not
installed; ``--backend openvino`` asks for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.tiling import DEFAULT_CORE, ENGINE_BATCH

if TYPE_CHECKING:
    from runtime.model_files import Model

BACKENDS = ("tensorrt", "ort-cuda", "ort-cpu", "openvino")  # what auto tries, in order (see module docstring)
REMOTE_BACKENDS = ("triton",)  # need a server address; auto never picks them
GPU_BACKENDS = frozenset({"tensorrt", "ort-cuda"})
# Tiles per call when none is asked for: batching fills a GPU; on a CPU it saves nothing and each tile in
# flight costs ONNX Runtime its activations.
# triton: windows in flight per call.
DEFAULT_BATCH = {"tensorrt": ENGINE_BATCH, "ort-cuda": ENGINE_BATCH, "ort-cpu": 1, "openvino": 1, "triton": 8}
# Largest tile core when none is asked for. Fixed-window backends (engines, bound GPU buffers, a server's
# configured shape) use the engines' prebuilt 256. CPU backends fit a core ≤ CPU_CORE[precision] to each image
# (common.tiling.TileGrid.fitted): a larger core recomputes less overlap but holds more activations, and INT8
# activations take a quarter of FP32's bytes (measured s/MP and peak RSS per core: benchmarks/results/cpu_paths.md).
CPU_BACKENDS = frozenset(BACKENDS) - GPU_BACKENDS  # local backends that take any window
CPU_CORE = {"fp32": 512, "fp16": 512, "int8": 1024}


def tensorrt_install_hint() -> str:
    """How to get the tensorrt backend: the ``[trt]`` extra (TensorRT 10+ and cuda-python), on a machine with an
    NVIDIA GPU."""
    from common.cli import pip_install

    return f"TensorRT needs an NVIDIA GPU and its driver (CUDA 12 or 13); on such a machine: {pip_install('trt')}"


def default_tile(kind: str, model: Model, precision: str = "auto") -> int:
    """The largest tile core backend ``kind`` uses for ``model`` at ``precision`` when no tile is asked for."""
    if kind not in CPU_BACKENDS:
        return DEFAULT_CORE
    return CPU_CORE[model.file(precision, "cpu").spec.precision]
