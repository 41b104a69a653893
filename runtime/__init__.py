"""Torch-free runtime: tiled WCDGAN inference on ONNX Runtime or TensorRT, and the ``python -m runtime.infer`` CLI.

``from runtime import Restorer``; see :class:`runtime.restorer.Restorer` for the contract (and
:class:`runtime.settings.RestoreSettings` for its settings as one record).
"""

import sys

if sys.argv[:1] == ["-m"]:  # python -m runtime.<command>, while it is located: before the seconds of imports below
    from common.interrupts import exit_quietly_while_starting

    exit_quietly_while_starting()

from runtime.restorer import Restorer
from runtime.settings import RestoreSettings

__all__ = ["RestoreSettings", "Restorer"]
