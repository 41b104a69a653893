"""Shared helpers and fixtures: the repository root and the team's ``../shared`` inputs (skipped cleanly when absent),
the tiny model most runtime tests restore with (:func:`tiny_model`), running a command as a user does
(:func:`run_module`), and import checks (:func:`assert_imports_without`).

Markers (pyproject.toml): ``cli`` (runs commands in subprocesses), ``video`` (PyAV), ``ray`` (starts Ray), ``slow``
(exports, trains, builds or runs the documented commands). ``pytest -m "not slow and not ray and not video"`` is the
inner loop."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from common.files import shared_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = shared_dir()

# Two cores are shared by torch, ORT and OpenCV in CI: one thread each avoids oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Engines built by a test run (on a GPU machine) go to a throw-away folder, never the user's engine cache.
os.environ["WCDGAN_CACHE_DIR"] = tempfile.mkdtemp(prefix="wcdgan-test-engines-")


def module_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a command run by a test: ``env`` (default: this process's, as it is now) with this checkout's
    code first on the path, whatever is installed. A mutation run (docs/mutation.md) chooses its mutant with
    ``MUTANT_UNDER_TEST``, which the command inherits and so runs that mutant too; in its "stats" pass (which tests call
    which function) the command records the functions it calls (tools/mutation_stats), and they count as the test's."""
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    if env.get("MUTANT_UNDER_TEST") == "stats":
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "tools" / "mutation_stats"), str(REPO_ROOT)])
        _COMMAND_CALLS.mkdir(exist_ok=True)
        env["MUTMUT_CALLS_DIR"] = str(_COMMAND_CALLS)
    return env


_COMMAND_CALLS = Path(tempfile.gettempdir()) / f"wcdgan-mutmut-calls-{os.getpid()}"  # made by a stats pass only


@pytest.hookimpl(tryfirst=True)  # before mutmut's own hook reads the test's calls
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """In a mutation run's stats pass: the functions the test's commands called count as called by the test."""
    if os.environ.get("MUTANT_UNDER_TEST") != "stats" or not _COMMAND_CALLS.is_dir():
        return
    from mutmut.state import state

    for calls in _COMMAND_CALLS.glob("*.txt"):
        state()._stats.update(calls.read_text().split())
        calls.unlink()


def pytest_sessionfinish(session: pytest.Session) -> None:
    shutil.rmtree(_COMMAND_CALLS, ignore_errors=True)


class _ModuleEnv(Mapping):
    """:func:`module_env` as it is when a command starts, not when the tests were imported (a mutation run sets the
    mutant per test run)."""

    def __getitem__(self, key: str) -> str:
        return module_env()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(module_env())

    def __len__(self) -> int:
        return len(module_env())


MODULE_ENV = _ModuleEnv()


def module_command(module: str, *args: object) -> list[str]:
    """``python -m module args...`` as an argument list (paths and numbers as strings)."""
    return [sys.executable, "-m", module, *map(str, args)]


def run_module(
    module: str,
    *args: object,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    **kwargs: Any,
) -> subprocess.CompletedProcess:
    """``python -m module args...`` run as a user runs it, from ``cwd`` (default: the repository root) with this
    checkout's code first on the path (``env`` default: this process's), output captured as text unless ``kwargs``
    say otherwise; a hang fails the test after ``timeout`` seconds."""
    env = module_env(env)
    options = {"capture_output": True, "text": True} | kwargs
    return subprocess.run(module_command(module, *args), env=env, cwd=cwd or REPO_ROOT, timeout=timeout, **options)


def tiny_model(
    folders: pytest.TempPathFactory, name: str = "local.onnx", net: Callable[..., Path] | None = None, **sidecar: Any
) -> Path:
    """A tiny ONNX model with its sidecar in a fresh folder, for a module-scoped ``model`` fixture: ``net`` (default
    :func:`tests.runtime_fixtures.local_net`: three convolutions, receptive-field radius 3) written as ``name``,
    ``sidecar`` overriding the sidecar's fields."""
    from tests.runtime_fixtures import local_net  # torch: imported by the tests that need a model, when they do

    return (net or local_net)(folders.mktemp("model") / name, **sidecar)


TORCH_SIDE = ("torch", "models", "train", "export")


def assert_imports_without(statements: str, blocked: tuple[str, ...], env: dict[str, str] | None = None) -> None:
    """Run ``statements`` in a fresh interpreter in which importing any module of ``blocked`` (a name covers its
    submodules: ``"runtime.restorer"``, ``"cv2"``) fails; they must succeed and leave every blocked module unloaded."""
    block = f"""
        import importlib.abc, sys
        BLOCKED = {tuple(blocked)!r}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                    raise ImportError(f"blocked: {{name}}")
        sys.meta_path.insert(0, Block())
    """
    check = "\nassert not [m for m in sys.modules if any(m == b or m.startswith(b + '.') for b in BLOCKED)]\n"
    code = textwrap.dedent(block) + textwrap.dedent(statements) + check + 'print("ok")\n'
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def assert_imports_without_torch(statements: str, env: dict[str, str] | None = None) -> None:
    """Run ``statements`` in a fresh interpreter in which importing torch, models, train or export fails; they must
    succeed and leave torch unloaded (the runtime's contract: no PyTorch needed, even transitively)."""
    assert_imports_without(statements, TORCH_SIDE, env)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (data, weights); skips the test when this checkout has none beside it."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not found: the team's shared data/weights are not beside this checkout")
    return SHARED


@pytest.fixture
def expect_warning(caplog) -> Callable[[str], contextlib.AbstractContextManager[None]]:
    """``with expect_warning(pattern):`` fails unless the block logs a WARNING (or worse) matching ``pattern``
    (the toolkit reports through logging, :mod:`common.log`)."""

    @contextlib.contextmanager
    def expect(pattern: str) -> Iterator[None]:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            yield
        messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert any(re.search(pattern, m) for m in messages), f"no warning matching {pattern!r} in {messages}"

    return expect
