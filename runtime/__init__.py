"""Torch-free runtime: tiled WCDGAN inference on ONNX Runtime or TensorRT, and the ``python -m runtime.infer`` CLI.

``from runtime import Restorer``; see :class:`runtime.restorer.Restorer` for the contract (and
:class:`runtime.settings.RestoreSettings` for its settings as one record).
"""

from runtime.restorer import Restorer
from runtime.settings import RestoreSettings

__all__ = ["RestoreSettings", "Restorer"]
