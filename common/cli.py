"""What every command-line entry point shares: one wrapper for how a command ends (:func:`run_cli`: exit codes,
one-line errors, signals), turning a missing optional dependency into a one-line error, and the help formatter."""

from __future__ import annotations

import argparse
import contextlib
import re
import shlex
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from common.interrupts import INTERRUPTED, acknowledge, interrupts
from common.log import cli_logging


class UsageError(Exception):
    """The user asked for something impossible (bad option, missing input or model): exit 2 with this message."""


class CommandFailed(Exception):
    """The command's work failed (a check, a build, a write): exit 1 with this message."""


class OptionError(ValueError):
    """An invalid field of an options record that validates itself on construction, for the Python API and the
    command line alike: ``str()`` names fields as the API does (``tile must ...``), :meth:`for_cli` by the options
    that set them (``--tile must ...``; a command turns it into a usage error). ``problem`` may name other fields as
    ``{field}``. Subclasses set :attr:`OPTIONS`."""

    OPTIONS: ClassVar[Mapping[str, str]] = {}  # field → the command-line option that sets it

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field} {self._naming(problem, str)}")

    def for_cli(self) -> str:
        option = self.OPTIONS.get
        return f"{option(self.field, self.field)} {self._naming(self.problem, lambda f: option(f, f))}"

    def _naming(self, problem: str, name: Callable[[str], str]) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: name(m[1]) if m[1] in self.OPTIONS else m[0], problem)


def run_cli(run_fn: Callable[[Any], int], args: Any, interrupted: str = INTERRUPTED) -> int:
    """A command's ``run_fn(args)`` as every toolkit command behaves: the toolkit's log records on stderr (errors
    only with ``args.quiet``, the DEBUG reasons too with ``args.verbose``), Ctrl-C, SIGTERM and SIGHUP raise
    KeyboardInterrupt (:func:`common.interrupts.interrupts`: outputs are atomic, so nothing partial remains; a signal
    whose exception a library swallowed still ends the run), :class:`UsageError` → one ``error:`` line and exit 2,
    interruption → the line ``interrupted`` and exit 128 + signal (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP);
    :class:`CommandFailed` → one ``error:`` line and exit 1. ``args``: the parsed options (any object; ``quiet`` and
    ``verbose`` are read when present). ``run_fn`` returns the exit code: 0 done, 1 some input failed."""
    with interrupts() as pending:
        try:
            with cli_logging(getattr(args, "quiet", False), getattr(args, "verbose", False)):
                with _names_as_bytes(sys.stdout):
                    code = run_fn(args)
                if pending:  # its KeyboardInterrupt was swallowed, and the run went on to the end
                    raise KeyboardInterrupt(pending[0])
            return code
        except (UsageError, CommandFailed) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2 if isinstance(e, UsageError) else 1
        except KeyboardInterrupt as e:
            signum = acknowledge()
            print(interrupted, file=sys.stderr, flush=True)
            return 128 + (signum or (e.args[0] if e.args and isinstance(e.args[0], int) else signal.SIGINT))


@contextlib.contextmanager
def _names_as_bytes(stream: Any) -> Iterator[None]:
    """Results name files; a POSIX file name is bytes, not always UTF-8 (Python holds the rest as surrogates): print
    those bytes as they are, the name ``ls`` shows, instead of failing (stderr already escapes them)."""
    errors = getattr(stream, "errors", None)
    if errors != "strict" or not hasattr(stream, "reconfigure"):
        yield
        return
    stream.reconfigure(errors="surrogateescape")
    try:
        yield
    finally:
        stream.reconfigure(errors=errors)


_ROOT = Path(__file__).resolve().parents[1]


def pip_install(extras: str) -> str:
    """The command that adds ``extras`` (e.g. ``"cpu"``, ``"cpu,video"``) to this toolkit. The package is on no index:
    from a clone (this code's folder holds pyproject.toml) ``pip install -e ".[extras]"``, with the clone's path
    instead of ``.`` when the working directory is elsewhere."""
    if not (_ROOT / "pyproject.toml").is_file():  # installed from a wheel: the user knows where it came from
        return f'pip install "WHEEL_OR_CLONE[{extras}]" (wcdgan-toolkit is on no package index)'
    try:
        here = "." if Path.cwd().resolve() == _ROOT else str(_ROOT)
    except OSError:  # the working directory was removed
        here = str(_ROOT)
    target = f"{here}[{extras}]"
    quoted = shlex.quote(target) if re.search(r'["$`!\\]', target) else f'"{target}"'  # as the README writes it
    return f"pip install -e {quoted}"


def onnxruntime_install() -> str:
    """How to install ONNX Runtime: exactly one of two extras (onnxruntime and onnxruntime-gpu are one module in two
    wheels)."""
    return f"{pip_install('cpu')} (or [gpu] for onnxruntime-gpu on an NVIDIA GPU; never both)"


def exit_missing_extra(error: ModuleNotFoundError, module_name: str, extra: str) -> None:
    """Re-raise ``error`` inside a library import; when the importing module runs as a command (``module_name`` is
    ``"__main__"``), exit with status 2 and the pip command that installs ``extra`` instead of a traceback.

    PyTorch gets its own hint: pip's default torch wheel is a multi-GB CUDA build (pytorch.org gives the right one).
    """
    if module_name != "__main__":
        raise error
    missing = error.name or "a dependency"
    hint = "; install PyTorch for this machine first (pytorch.org: e.g. the CPU build)" if missing == "torch" else ""
    print(f"error: this command needs {missing}: {pip_install(extra)}{hint}", file=sys.stderr)
    raise SystemExit(2)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """argparse's help, with "(default: X)" added only where it informs: not for None or False defaults, and not
    where the help text already states its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return text + " (default: %(default)s)"
