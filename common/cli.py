"""What every command-line entry point shares: turning a missing optional dependency into a one-line error."""

from __future__ import annotations

import argparse
import sys

# ONNX Runtime comes from exactly one of two extras (onnxruntime and onnxruntime-gpu are one module in two wheels).
ONNXRUNTIME_INSTALL = "pip install 'wcdgan-toolkit[cpu]' (or '[gpu]' for onnxruntime-gpu; never both)"


def exit_missing_extra(error: ModuleNotFoundError, module_name: str, extra: str) -> None:
    """Re-raise ``error`` inside a library import; when the importing module runs as a command (``module_name`` is
    ``"__main__"``), exit with status 2 and the pip command that installs ``extra`` instead of a traceback.

    PyTorch gets its own hint: pip's default torch wheel is a multi-GB CUDA build (pytorch.org gives the right one).
    """
    if module_name != "__main__":
        raise error
    missing = error.name or "a dependency"
    hint = "; install PyTorch for this machine first (pytorch.org: e.g. the CPU build)" if missing == "torch" else ""
    print(f"error: this command needs {missing}: pip install 'wcdgan-toolkit[{extra}]'{hint}", file=sys.stderr)
    raise SystemExit(2)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """argparse's help, with "(default: X)" added only where it informs: not for None or False defaults, and not
    where the help text already states its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return text + " (default: %(default)s)"
