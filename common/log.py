"""The toolkit's one reporting path.

* Library code reports through ``logging.getLogger(__name__)`` (modules that run as ``python -m`` use
  ``__spec__.name``: their ``__name__`` is then "__main__", outside the loggers below): progress and what was done
  at INFO, what went wrong but was handled (a rebuilt cache entry, a fallback) at WARNING. It never prints and
  never uses ``warnings`` for run-time events, so an embedding application routes everything with its own logging
  setup.
* A command wraps its work in :func:`cli_logging`: the toolkit's records go to stderr as plain lines (through
  ``tqdm.write``, so progress bars stay intact), INFO and up by default, errors only with ``-q``.
* What a command *returns* to its user (result tables and paths on stdout, its final ``error: ...`` line and the
  exit code) is printed by its ``main``, not logged: results stay machine-readable and apart from messages.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import TextIO

# The toolkit's installed packages (pyproject's packages.find; tests/test_layering checks both lists agree): the
# loggers a command shows.
PACKAGES = ("common", "models", "train", "export", "runtime", "benchmarks")


class _TqdmStderr(logging.Handler):
    """Writes each record as one line to the *current* ``sys.stderr`` (looked up per record, so a swapped stream
    is followed), between tqdm's progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_line(self.format(record), sys.stderr)
        except Exception:
            self.handleError(record)


def write_line(line: str, stream: TextIO) -> None:
    """Write ``line`` to ``stream`` between tqdm's progress bars (``tqdm.write``). Without tqdm imported there is no
    bar to keep intact: a plain line, and a one-image command never pays for importing tqdm (issue 34)."""
    tqdm = sys.modules.get("tqdm")
    if tqdm is None:
        stream.write(line + "\n")
    else:
        tqdm.tqdm.write(line, file=stream)


@contextlib.contextmanager
def cli_logging(quiet: bool = False, verbose: bool = False) -> Iterator[None]:
    """Show the toolkit's log records on stderr while the block runs (INFO and up; ERROR and up when ``quiet``;
    DEBUG and up when ``verbose``: why the library chose what it did), then put the loggers back as they were.
    Other libraries' loggers keep Python's defaults."""
    handler = _TqdmStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO
    loggers = [logging.getLogger(name) for name in PACKAGES]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger, previous in zip(loggers, saved, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(previous)
