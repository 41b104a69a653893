"""Stand-ins for ``tensorrt`` and ``cuda.bindings.runtime`` that run on a CPU, with fault injection.

They implement the slice of TensorRT 10/11's Python API and cuda-python's runtime API that
``runtime/backends/tensorrt.py`` uses, with the same call shapes (cuda-python's ``(error, *values)`` tuples,
TensorRT's ``None`` for failures it only logs). "Device" memory is host memory (ctypes buffers), so copies and
the fake engine's arithmetic (output = 0.5 · input + 0.25) really move data. ``FAULTS`` switches on the
failures seen on real machines: no usable driver, ``cudaSetDevice`` failing, an unparsable graph, a failed
build, no memory for an execution context or while loading a plan, an engine whose I/O disagrees with its
sidecar. :func:`install` puts both modules into ``sys.modules`` for a test.
"""

from __future__ import annotations

import ctypes
import enum
import json
import sys
import types

import numpy as np

FAULTS: dict = {}
STATS = {"builds": 0, "contexts": 0}
LIVE: dict[int, ctypes.Array] = {}  # fake device/pinned allocations by address


def reset() -> None:
    FAULTS.clear()
    STATS.update(builds=0, contexts=0)
    LIVE.clear()


# ---------------------------------------------------------------- cuda.bindings.runtime


def _cuda_module() -> types.ModuleType:
    rt = types.ModuleType("cuda.bindings.runtime")

    def get_device_count():
        return (FAULTS.get("device_count_error", 0), FAULTS.get("device_count", 1))

    def get_properties(device):
        return (0, types.SimpleNamespace(name=b"Fake GPU\0", major=9, minor=0))

    def set_device(device):  # a broken driver fails every call, this one first in the old code
        return (FAULTS.get("set_device_error", FAULTS.get("device_count_error", 0)),)

    def malloc(nbytes):
        buf = ctypes.create_string_buffer(nbytes)
        LIVE[ctypes.addressof(buf)] = buf
        return (0, ctypes.addressof(buf))

    def free(ptr):
        LIVE.pop(int(ptr), None)
        return (0,)

    def memcpy_async(dst, src, nbytes, kind, stream):
        ctypes.memmove(int(dst), int(src), int(nbytes))
        return (0,)

    rt.cudaGetDeviceCount = get_device_count
    rt.cudaGetDeviceProperties = get_properties
    rt.cudaSetDevice = set_device
    rt.cudaMalloc = rt.cudaMallocHost = malloc
    rt.cudaFree = rt.cudaFreeHost = free
    rt.cudaMemcpyAsync = memcpy_async
    rt.cudaStreamCreate = lambda: (0, 7)
    rt.cudaStreamDestroy = lambda stream: (0,)
    rt.cudaStreamSynchronize = lambda stream: (0,)
    rt.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
    return rt


# ---------------------------------------------------------------- tensorrt


class DataType(enum.Enum):
    FLOAT = "float32"
    HALF = "float16"


class TensorIOMode(enum.Enum):
    INPUT = 1
    OUTPUT = 2


class ILogger:
    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    def __init__(self) -> None:
        pass


class Logger(ILogger):
    WARNING = ILogger.Severity.WARNING

    def __init__(self, level=None) -> None:
        super().__init__()

    def log(self, severity, msg) -> None:
        pass


class _Network:
    def __init__(self) -> None:
        self.onnx = None


class _Parser:
    def __init__(self, network, logger) -> None:
        self.network = network
        self.num_errors = 0

    def parse_from_file(self, path: str) -> bool:
        if FAULTS.get("parse_error"):
            self.num_errors = 1
            return False
        self.network.onnx = path
        return True

    def get_error(self, i: int) -> str:
        return "In node 3 (Mul): unsupported broadcast"


class _TimingCache:
    def serialize(self) -> bytes:
        return b"timing"

    def combine(self, other, ignore_mismatch) -> bool:
        return True


class _Profile:
    def __init__(self) -> None:
        self.shapes: dict = {}

    def set_shape(self, name, lo, opt, hi) -> None:
        self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


class _Config:
    def __init__(self) -> None:
        self.profiles: list[_Profile] = []
        self.builder_optimization_level = 3

    def set_flag(self, flag) -> None:
        raise AssertionError("a strongly typed network takes no precision flags")

    def set_memory_pool_limit(self, pool, size) -> None:
        pass

    def add_optimization_profile(self, profile) -> None:
        self.profiles.append(profile)

    def create_timing_cache(self, data: bytes) -> _TimingCache:
        return _TimingCache()

    def set_timing_cache(self, cache, ignore_mismatch) -> bool:
        return True

    def get_timing_cache(self) -> _TimingCache:
        return _TimingCache()


class Builder:
    def __init__(self, logger) -> None:
        self.logger = logger

    def create_network(self, flags: int) -> _Network:
        assert flags == 1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED
        return _Network()

    def create_builder_config(self) -> _Config:
        return _Config()

    def create_optimization_profile(self) -> _Profile:
        return _Profile()

    def build_serialized_network(self, network, config) -> bytes | None:
        STATS["builds"] += 1
        if FAULTS.get("build_fails"):
            self.logger.log(ILogger.Severity.ERROR, "no implementation obeys the reformatting restrictions")
            return None
        import onnx  # the engine's I/O comes from the graph, as in TensorRT's parser

        graph = onnx.load(network.onnx).graph
        [(_, (_, _, hi))] = config.profiles[0].shapes.items()
        dtype = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16"}
        io = {"input": graph.input[0].name, "output": graph.output[0].name, "max_shape": list(hi)}
        io["dtype"] = dtype[graph.input[0].type.tensor_type.elem_type]
        io.update(FAULTS.get("engine_io", {}))
        return b"FAKEPLAN" + json.dumps(io).encode()


class _Engine:
    def __init__(self, io: dict) -> None:
        self.io = io
        self.num_io_tensors = 2

    def get_tensor_name(self, i: int) -> str:
        return (self.io["input"], self.io["output"])[i]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode.INPUT if name == self.io["input"] else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType(self.io["dtype"])

    def get_tensor_shape(self, name: str) -> tuple:
        return (-1, *self.io["max_shape"][1:])

    def get_tensor_profile_shape(self, name: str, profile: int) -> list:
        hi = self.io["max_shape"]
        return [[1, *hi[1:]], hi, hi]

    def create_execution_context(self):
        if FAULTS.get("context_none"):
            return None
        STATS["contexts"] += 1
        return _Context(self)


class _Context:
    def __init__(self, engine: _Engine) -> None:
        self.engine, self.addresses, self.shape = engine, {}, None

    def set_input_shape(self, name: str, shape) -> bool:
        hi = self.engine.io["max_shape"]
        self.shape = tuple(shape)
        return self.shape[0] <= hi[0] and self.shape[1:] == tuple(hi[1:])

    def set_tensor_address(self, name: str, ptr: int) -> None:
        self.addresses[name] = int(ptr)

    def execute_async_v3(self, stream: int) -> bool:
        dtype = np.dtype(self.engine.io["dtype"])
        n = int(np.prod(self.shape))
        view = lambda name: np.frombuffer(  # noqa: E731
            (ctypes.c_byte * (n * dtype.itemsize)).from_address(self.addresses[name]), dtype=dtype
        )
        view(self.engine.io["output"])[:] = view(self.engine.io["input"]) * 0.5 + 0.25
        return True


class Runtime:
    def __init__(self, logger) -> None:
        self.logger = logger

    def deserialize_cuda_engine(self, plan: bytes):
        if FAULTS.get("deserialize_oom"):
            self.logger.log(
                ILogger.Severity.ERROR, "Requested amount of GPU memory (8589934592 bytes) could not be allocated"
            )
            return None
        if not plan.startswith(b"FAKEPLAN"):
            self.logger.log(ILogger.Severity.ERROR, "Serialization assertion magicTagRead == kMAGIC_TAG failed")
            return None
        return _Engine(json.loads(plan[len(b"FAKEPLAN") :]))


class NetworkDefinitionCreationFlag:
    STRONGLY_TYPED = 0


def _trt_module() -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "11.0.0-stub"
    for obj in (DataType, TensorIOMode, ILogger, Logger, Builder, Runtime, NetworkDefinitionCreationFlag):
        setattr(trt, obj.__name__, obj)
    trt.OnnxParser = _Parser
    trt.BuilderFlag = types.SimpleNamespace()  # TensorRT 11: no FP16 flag
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE=0)
    trt.HardwareCompatibilityLevel = types.SimpleNamespace(AMPERE_PLUS=1)
    return trt


def install(monkeypatch) -> None:
    """Make ``import tensorrt`` and ``from cuda.bindings import runtime`` find the stubs (for one test)."""
    reset()
    rt = _cuda_module()
    cuda, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    cuda.bindings, bindings.runtime = bindings, rt
    for name, module in {"tensorrt": _trt_module(), "cuda": cuda, "cuda.bindings": bindings,
                         "cuda.bindings.runtime": rt}.items():  # fmt: skip
        monkeypatch.setitem(sys.modules, name, module)
