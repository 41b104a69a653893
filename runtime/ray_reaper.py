"""The private local Ray of a ``runtime.batch`` job belongs to the job: this watchdog ends it however the driver ends.

``python -m runtime.ray_reaper RAY_TEMP_DIR`` runs in a session of its own (a Ctrl-C or a kill of the driver's
process group does not reach it) and reads its stdin, a pipe whose other end only the driver holds. When the pipe
closes — the driver returned, was interrupted, or was SIGKILLed — every process that names ``RAY_TEMP_DIR`` (the
unique root the driver gave ``ray.init``) in its command line or holds a file under it open (Ray's processes log
there; agents and workers rename their command line to ``ray::…``) gets SIGTERM, then SIGKILL after
:data:`GRACE_S`, and the folder is removed. Ray ties only its raylet and
GCS to the driver (Linux ``PR_SET_PDEATHSIG``); its agents outlive a SIGKILLed driver without this.

Linux only (it reads ``/proc``); stdlib only, so that it starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path

GRACE_S = 3.0
MARKER = "WCDGAN_RAY_ROOT"  # set to the root in the driver's environment before ray.init: every Ray process inherits it


def processes_naming(root: str, spare: frozenset[int] = frozenset()) -> list[int]:
    """Pids (but this one and ``spare``) whose command line contains ``root``, whose environment has :data:`MARKER`
    set to it, or that hold a file under it open."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in {os.getpid(), *spare} and _names(entry, root):
            found.append(int(entry.name))
    return found


def _names(proc: Path, root: str) -> bool:
    try:
        if os.fsencode(root) in (proc / "cmdline").read_bytes():
            return True
        if b"\0" + os.fsencode(f"{MARKER}={root}") + b"\0" in b"\0" + (proc / "environ").read_bytes():
            return True  # a worker that has not opened its log yet, or has closed it
        for fd in (proc / "fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd).startswith(root + os.sep):
                    return True
    except OSError:  # gone meanwhile, or not ours to read
        pass
    return False


def end_processes(root: str, spare: frozenset[int] = frozenset(), grace_s: float = GRACE_S) -> None:
    """SIGTERM every process naming ``root`` (but ``spare``), then SIGKILL those still there after ``grace_s``, and
    wait (``grace_s`` at most) until they are gone: a killed process takes a moment to exit, and the driver returns
    only after this, so nothing of its Ray outlives the command."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = processes_naming(root, spare)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                continue
        deadline = time.monotonic() + grace_s
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = processes_naming(root, spare)


def main(argv: list[str]) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # its job is to outlive the driver's signals
    temp_dir, driver = argv[0], os.getppid()  # the driver, alive when it closed the pipe itself, is spared
    sys.stdin.buffer.read()  # until the driver's end closes
    end_processes(temp_dir, frozenset({driver}))
    shutil.rmtree(temp_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
