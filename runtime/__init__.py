"""Torch-free runtime: tiled WCDGAN inference on ONNX Runtime or TensorRT, and the ``python -m runtime.infer`` CLI.

``from runtime import Restorer``; see :class:`runtime.restorer.Restorer` for the contract (and
:class:`runtime.settings.RestoreSettings` for its settings as one record).
"""

from common.interrupts import exit_quietly_while_a_command_starts

exit_quietly_while_a_command_starts()  # python -m runtime.<command>: before the seconds of imports below

from runtime.restorer import Restorer  # noqa: E402 (after the handlers: these imports take seconds)
from runtime.settings import RestoreSettings  # noqa: E402

__all__ = ["RestoreSettings", "Restorer"]
