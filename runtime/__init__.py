"""Torch-free runtime: tiled WCDGAN inference on ONNX Runtime, TensorRT, OpenVINO or a Triton server, and the
commands ``python -m runtime.infer`` (images), ``runtime.batch`` (Ray), ``runtime.video`` and ``runtime.cache``.

``from runtime import Restorer``; see :class:`runtime.restorer.Restorer` for the contract (and
:class:`runtime.settings.RestoreSettings` for its settings as one record).

The names below are imported on first use: importing this package (which ``import runtime.spec``, export's door to
the sidecar, does first) loads neither the restorer nor OpenCV, ONNX Runtime or tqdm. Its one side effect is for
``python -m runtime.<command>`` only: the start-up signal handlers, before the command's seconds of imports
(:func:`common.interrupts.exit_quietly_while_a_command_starts`; nothing for a library import).
"""

from __future__ import annotations

from common.interrupts import exit_quietly_while_a_command_starts

exit_quietly_while_a_command_starts()

from common.lazy import lazy_exports  # noqa: E402 (after the handlers: nothing may load before them)

_EXPORTS = {"restorer": ("Restorer",), "settings": ("RestoreSettings",)}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
