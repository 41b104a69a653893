"""Signals end a command at any moment with the one ``interrupted`` line and exit 128 + signal (common/interrupts.py,
common/cli.py's run_cli): also when a library swallows the KeyboardInterrupt, and from the command's first module on.
runtime.video's temporaries under SIGHUP: tests/test_video.py::test_interrupt_leaves_nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from common.cli import run_cli
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="POSIX signals")


def swallowing(tmp_path, then_s: float):
    """A command whose first step swallows the SIGTERM sent to it (as a C extension's import can), then works
    ``then_s`` more seconds and writes ``done``."""

    def run(args) -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)  # the handler runs here
        except KeyboardInterrupt:
            pass  # swallowed
        deadline = time.monotonic() + then_s
        while time.monotonic() < deadline:
            time.sleep(0.01)
        (tmp_path / "done").write_text("all of it")
        return 0

    return run


@pytest.mark.parametrize("then_s", [2.0, 0.0])
def test_a_swallowed_signal_still_ends_the_run(tmp_path, capsys, then_s):
    started = time.monotonic()
    code = run_cli(swallowing(tmp_path, then_s), SimpleNamespace(quiet=False))
    assert code == 143 and capsys.readouterr().err.strip().splitlines()[-1].startswith("interrupted")
    if then_s:  # raised again soon: the rest of the work did not happen
        assert not (tmp_path / "done").exists() and time.monotonic() - started < 1.5
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN  # the earlier handlers are back


@pytest.mark.parametrize("command", ["runtime.infer", "export.build", "train.evaluate"])
def test_handlers_are_in_place_before_the_heavy_imports(command):
    """``python -m <package>.<command>``: a Ctrl-C while the libraries load gives the one line, not a traceback, as
    soon as the package starts: no library (the logging setup, numpy, OpenCV, torch …) loads before the handlers."""
    code = (
        "import signal, sys\n"
        "sys.argv[:1] = ['-m']  # as while python -m locates the command\n"
        "early, light = [], ('common', 'common.interrupts')\n"
        "heavy = ('numpy', 'cv2', 'tqdm', 'onnxruntime', 'torch', 'onnx', 'common')\n"
        "def hook(event, args):\n"
        "    if event == 'import' and args[0].split('.')[0] in heavy and args[0] not in light:\n"
        "        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:\n"
        "            early.append(args[0])\n"
        "sys.addaudithook(hook)\n"
        f"import {command}\n"
        "print(early)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_a_run_without_signals_leaves_the_alarm_alone(tmp_path):
    """The repeats take SIGALRM and the real-time timer only once a signal came: others' alarms keep running."""
    before = signal.signal(signal.SIGALRM, lambda *_: None)
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        assert run_cli(lambda args: 0, SimpleNamespace(quiet=True)) == 0
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0  # still armed
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)
