"""How a command ends on a signal (Ctrl-C, SIGTERM, SIGHUP: a closed terminal): the one ``interrupted`` line and exit
code 128 + signal, at any moment of the run, never a traceback and never lost.

Two phases. While a command's libraries load (seconds: ONNX Runtime, Ray) nothing has been written, so
:func:`exit_quietly_while_starting`'s handler prints the line and ends the process at once. While it works,
:func:`interrupts` turns each signal into ``KeyboardInterrupt(signum)``, so that every ``with``/``finally`` removes its
temporaries on the way up. A library can swallow that exception (a C extension's import, a ``__del__``): the signal is
remembered and raised again every :data:`REPEAT_S` until the command's wrapper acknowledges it (:func:`acknowledge`).

Imports nothing but the standard library's basics: ``runtime`` installs the first phase before its heavy imports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator

INTERRUPTED = "interrupted: outputs written so far are complete; nothing partial was left"
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
REPEAT_S = 0.2  # a swallowed interrupt is raised again this often
_REPEATS = hasattr(signal, "setitimer")  # POSIX; elsewhere a swallowed signal is still noticed at the end
_pending: list[int] = []  # the first signal of this run whose KeyboardInterrupt is not yet acknowledged
_alarm_before: list = []  # SIGALRM's handler while the repeats hold it (taken at the first signal only)


def exit_quietly_while_starting() -> None:
    """Until :func:`interrupts` takes over, end the process on any of :data:`SIGNALS` with the line
    :data:`INTERRUPTED` and exit code 128 + signal, instead of a traceback from inside whichever library was being
    imported. Nothing has been written yet, so there is nothing to clean up."""
    for sig in SIGNALS:
        signal.signal(sig, _exit_while_starting)


def exit_quietly_while_a_command_starts() -> None:
    """:func:`exit_quietly_while_starting` when this process is ``python -m <package>.<command>`` being located: a
    package's ``__init__`` calls this first, before its seconds of imports. Nothing for a library import."""
    if sys.argv[:1] == ["-m"]:
        exit_quietly_while_starting()


def _exit_while_starting(signum: int, frame: object) -> None:
    print(INTERRUPTED, file=sys.stderr, flush=True)
    os._exit(128 + signum)


def interrupt_on_signal(signum: int, frame: object) -> None:
    """The handler of :func:`interrupts`: raise ``KeyboardInterrupt(signum)``, and again every :data:`REPEAT_S` until
    acknowledged, should something swallow it."""
    if not _pending:
        _pending.append(signum)
    _repeat()
    raise KeyboardInterrupt(_pending[0])


def _raise_again(signum: int, frame: object) -> None:
    if not _pending:
        return
    _repeat()
    if isinstance(sys.exc_info()[1], KeyboardInterrupt):
        return  # still on its way up through the cleanups: interrupting those could leave a temporary
    raise KeyboardInterrupt(_pending[0])


def _repeat() -> None:
    if not _REPEATS:
        return
    if not _alarm_before:
        _alarm_before.append(signal.signal(signal.SIGALRM, _raise_again))
    signal.setitimer(signal.ITIMER_REAL, REPEAT_S)


def _stop_repeating() -> None:
    if _alarm_before:  # the timer and SIGALRM are ours only from the first signal on
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, _alarm_before.pop())


def acknowledge() -> int | None:
    """Stop raising the pending interrupt, and ignore further signals (the command is ending); returns its signal
    (None: none came)."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    _stop_repeating()
    return _pending.pop() if _pending else None


@contextlib.contextmanager
def interrupts() -> Iterator[list[int]]:
    """In the block, :data:`SIGNALS` raise ``KeyboardInterrupt(signum)`` (see :func:`interrupt_on_signal`); yields the
    pending signal (a list of at most one: non-empty when a signal came, even if its exception was swallowed). The
    earlier handlers are restored at the end."""
    _pending.clear()
    previous = {sig: signal.signal(sig, interrupt_on_signal) for sig in SIGNALS}
    try:
        yield _pending
    finally:
        _stop_repeating()
        _pending.clear()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
