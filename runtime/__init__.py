"""Torch-free runtime: tiled WCDGAN inference on ONNX Runtime or TensorRT, and the ``python -m runtime.infer`` CLI.

``from runtime import Restorer``; see :class:`runtime.restorer.Restorer` for the contract.
"""

from runtime.restorer import Restorer

__all__ = ["Restorer"]
