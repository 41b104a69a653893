"""Loaded as ``sitecustomize`` by the commands a test starts during a mutation run's stats pass (``tests/conftest.py``:
``module_env`` puts this folder first on their path): it records which mutated functions the command calls, one file
per process in ``MUTMUT_CALLS_DIR``, which the test's process adds to the test's own calls. So mutmut also selects
the tests that reach a function only through a command (``python -m runtime.infer`` in a subprocess)."""

import atexit
import contextlib
import os
from pathlib import Path


def _record_calls(folder: Path) -> None:
    from mutmut.mutation import trampoline  # the mutated code's trampolines call its record_trampoline_hit

    called: set[str] = set()
    trampoline.record_trampoline_hit = lambda name, caller=None: called.add(name)
    atexit.register(_write_calls, folder / f"{os.getpid()}.txt", called)


def _write_calls(record: Path, called: set[str]) -> None:
    if not called:
        return
    # A command a test runs out of disk on purpose (a file-size limit) cannot write it: its calls go unrecorded.
    with contextlib.suppress(OSError):
        record.write_text("\n".join(sorted(called)))


if os.environ.get("MUTMUT_CALLS_DIR") and os.environ.get("MUTANT_UNDER_TEST") == "stats":
    _record_calls(Path(os.environ["MUTMUT_CALLS_DIR"]))
