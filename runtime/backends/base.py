"""The contract every inference backend implements."""

from __future__ import annotations

import importlib
import re
from types import ModuleType
from typing import Protocol, TypeVar

import numpy as np

# Messages of CUDA, cuDNN, ONNX Runtime's CUDA EP and TensorRT that mean "not enough GPU memory".
_OOM = re.compile(
    r"out of (?:gpu |device )?memory|failed to allocate|memory allocation|could not be allocated"
    r"|cudaErrorMemoryAllocation|CUDNN_STATUS_ALLOC_FAILED|ALLOC_FAILED|OUT_OF_MEMORY",
    re.IGNORECASE,
)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether a backend error means "not enough (GPU) memory" (MemoryError or an allocator's message)."""
    return isinstance(error, MemoryError) or bool(_OOM.search(str(error)))


def first_line(error: BaseException) -> str:
    """The first line of a backend error's message (libraries append pages of detail), or its type's name."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class BackendUnavailable(RuntimeError):
    """This backend cannot run here (library missing, no GPU, provider failed to load); the reason is the message."""


class BackendNotInstalled(BackendUnavailable):
    """The backend's library is not installed: the normal state of a CPU-only install, not worth a warning."""


def import_library(module: str, install_hint: str) -> ModuleType:
    """``module`` imported, or :class:`BackendNotInstalled` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise BackendNotInstalled(f"{module} is not installed ({e}): {install_hint}") from None


def io_mismatch(onnx_path: object, found: tuple[str, str], expected: tuple[str, str]) -> BackendUnavailable:
    """The error for a graph whose (input, output) names differ from its sidecar's."""
    return BackendUnavailable(
        f"{onnx_path}: graph I/O ({found[0]}, {found[1]}) does not match its sidecar ({expected[0]}, {expected[1]})"
    )


_Closing = TypeVar("_Closing", bound="Closing")


class Closing:
    """Context-manager support for a backend (as Polygraphy's runners): ``with Backend(...) as b:`` calls
    ``b.close()`` on leaving the block, also on an exception. ``close`` is idempotent; ``run`` afterwards raises
    ``RuntimeError``."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Closing) -> _Closing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Backend(Protocol):
    """Runs one model on batches of tiles of one fixed shape.

    Constructed once per (model, tile shape, max batch); ``run`` may then be called many times.
    Input and output: N×C×H×W float32 in [0, 1] with N ≤ ``max_batch`` and (H, W) the tile shape the backend
    was built for — or, when ``any_window``, any (H, W) up to it. Implementations convert to the graph's I/O
    dtype themselves. Not thread-safe.
    """

    name: str  # "tensorrt", "ort-cuda", "ort-cpu", "openvino", "triton": what actually runs, not what was asked for
    max_batch: int
    any_window: bool  # run() takes windows smaller than the built shape (the CPU backends): tiles fit each image
    note: str  # how it runs, when the user should know (e.g. nodes that fell back to the CPU); "" otherwise

    def run(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None:
        """Free sessions, device memory and connections now (idempotent; ``run`` afterwards raises RuntimeError); a
        restorer closes a backend before building a smaller one after OOM, and all of them in its own ``close``."""

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: object) -> None: ...
