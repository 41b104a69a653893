"""The contract every inference backend implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class BackendUnavailable(RuntimeError):
    """This backend cannot run here (library missing, no GPU, provider failed to load); the reason is the message."""


class Backend(Protocol):
    """Runs one model on batches of tiles of one fixed shape.

    Constructed once per (model, tile shape, max batch); ``run`` may then be called many times.
    Input and output: N×C×H×W float32 in [0, 1] with N ≤ ``max_batch`` and (H, W) the tile shape the backend
    was built for. Implementations convert to the graph's I/O dtype themselves. Not thread-safe.
    """

    name: str  # "tensorrt", "ort-cuda" or "ort-cpu": what actually runs, not what was asked for
    max_batch: int

    def run(self, batch: np.ndarray) -> np.ndarray: ...
