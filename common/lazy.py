"""Packages whose public names load on first use (PEP 562), so that importing a package or one of its leaves stays
cheap: ``runtime`` (the restorer loads OpenCV, ONNX Runtime, tqdm) and ``runtime.video`` (PyAV); and whether an
optional package is there, without importing it."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping


def lazy_exports(
    package: str, exports: Mapping[str, tuple[str, ...]]
) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package`` whose names live in its submodules: ``exports`` maps a
    submodule (relative name) to the names it defines. A name is imported from its submodule when first read."""
    module_of = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> object:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *module_of})

    return sorted(module_of), __getattr__, __dir__


def importable(name: str) -> bool:
    """Whether the top-level package ``name`` can be imported, without importing it. One already imported counts,
    also without a ``__spec__`` (which :func:`importlib.util.find_spec` refuses with a ValueError); one blocked with
    ``sys.modules[name] = None`` does not."""
    if name in sys.modules:
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None
