"""One reporting path (common/log.py): library code logs, commands show the records, nothing else prints."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

from common.log import PACKAGES, cli_logging

REPO = Path(__file__).resolve().parents[1]
# Command helpers that print for their commands: the missing-extra error line, a benchmark's result table, the
# "interrupted" line of a signal while a command's libraries load (no logging is set up yet).
PRINTING_HELPERS = {"common/cli.py", "benchmarks/common.py", "common/interrupts.py"}


def test_cli_logging_shows_info_by_default_errors_only_when_quiet_and_restores(capsys, caplog) -> None:
    log = logging.getLogger("runtime.some_module")
    before = [logging.getLogger(name).level for name in PACKAGES]
    with cli_logging(quiet=False):
        log.info("wrote out.png")
        log.debug("detail")
    assert capsys.readouterr().err == "wrote out.png\n"
    with cli_logging(quiet=True):
        log.warning("cache entry rebuilt")
        log.error("error: bad.jpg: not an image")
    assert capsys.readouterr().err == "error: bad.jpg: not an image\n"
    assert [logging.getLogger(name).level for name in PACKAGES] == before
    assert not any(logging.getLogger(name).handlers for name in PACKAGES)
    log.info("after the command")  # no handler of ours left: nothing on stderr
    assert capsys.readouterr().err == ""
    assert "wrote out.png" in caplog.text  # records also reach the application's (here pytest's) handlers


def _calls(tree: ast.AST, dotted: str) -> list[int]:
    """Line numbers of calls to ``dotted`` ("print" or "warnings.warn")."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name == dotted:
                lines.append(node.lineno)
    return lines


def test_library_modules_log_instead_of_printing_or_warning() -> None:
    """print() belongs to commands (modules with a ``__main__`` entry: results and their final error line);
    ``warnings.warn`` is not used for run-time events anywhere."""
    offenders = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text)
            rel = path.relative_to(REPO)
            offenders += [f"{rel}:{n} warnings.warn" for n in _calls(tree, "warnings.warn")]
            is_command = (
                'if __name__ == "__main__":' in text or path.name == "__main__.py" or str(rel) in PRINTING_HELPERS
            )
            if not is_command:
                offenders += [f"{rel}:{n} print" for n in _calls(tree, "print")]
    assert not offenders, "\n".join(offenders)
