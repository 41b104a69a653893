"""Torch-free runtime: tiled WCDGAN inference on ONNX Runtime or TensorRT, and the ``python -m runtime.infer`` CLI.

``from runtime import Restorer``; see :class:`runtime.restorer.Restorer` for the contract (and
:class:`runtime.settings.RestoreSettings` for its settings as one record).

The names below are imported on first use, so that importing a leaf (``runtime.spec``, export's door) does not load
the restorer, OpenCV, ONNX Runtime or tqdm.
"""

import importlib

from common.interrupts import exit_quietly_while_a_command_starts

exit_quietly_while_a_command_starts()  # python -m runtime.<command>: before the seconds of imports below

_MODULE_OF = {"Restorer": "restorer", "RestoreSettings": "settings"}
__all__ = ["RestoreSettings", "Restorer"]


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
