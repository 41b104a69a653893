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

import importlib

from common.interrupts import exit_quietly_while_a_command_starts

exit_quietly_while_a_command_starts()

_EXPORTS = {"restorer": ("Restorer",), "settings": ("RestoreSettings",)}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
