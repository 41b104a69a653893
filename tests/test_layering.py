"""The package layering of docs/architecture.md's layout table, checked on every import statement in the source tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from common.log import PACKAGES
from tests.conftest import TORCH_SIDE, assert_imports_without

REPO = Path(__file__).resolve().parents[1]
PROJECT = (*PACKAGES, "tools")  # tools/ (scripts, not installed) sits on top
# Which project packages each one may import: data flows one way, model → train → export → runtime, with common/ under
# all of them; benchmarks and tools sit on top and may use everything.
ALLOWED = {
    "common": {"common"},
    "models": {"common", "models"},
    "train": {"common", "models", "train"},
    "export": {"common", "models", "runtime", "export"},
    "runtime": {"common", "runtime"},
    "benchmarks": set(PROJECT) - {"tools"},
    "tools": set(PROJECT),
}
FORBIDDEN_THIRD_PARTY = {"common": {"torch"}, "runtime": {"torch", "torchvision"}}
# The door from export into the runtime: the sidecar contract, model-file resolution, the backend error types and the
# TensorRT prebuild (an engine export builds must be the one the runtime asks its cache for). Nothing else.
EXPORT_MAY_IMPORT = {"runtime.spec", "runtime.model_files", "runtime.backends.base", "runtime.backends.tensorrt"}


def _imports(path: Path) -> set[str]:
    """Top-level module names imported anywhere in ``path`` (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _runtime_modules(path: Path) -> set[str]:
    """The ``runtime`` modules ``path`` imports (``from runtime.x import y`` names ``runtime.x`` — or
    ``runtime.x.y`` when ``y`` is itself a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {f"{node.module}.{alias.name}" if _is_module(f"{node.module}.{alias.name}") else node.module
                      for alias in node.names}  # fmt: skip
    return {name for name in names if name.split(".")[0] == "runtime"}


def _is_module(name: str) -> bool:
    parts = REPO.joinpath(*name.split("."))
    return parts.with_suffix(".py").is_file() or (parts / "__init__.py").is_file()


def test_export_uses_only_the_runtime_modules_it_may():
    found = {}
    for path in sorted((REPO / "export").rglob("*.py")):
        for name in _runtime_modules(path) - EXPORT_MAY_IMPORT:
            found.setdefault(name, []).append(str(path.relative_to(REPO)))
    assert not found, f"export imports runtime modules outside EXPORT_MAY_IMPORT: {found}"
    assert all(_is_module(name) for name in EXPORT_MAY_IMPORT)  # the door names modules that exist


def test_every_import_follows_the_layering():
    violations = []
    for package, allowed in ALLOWED.items():
        for path in sorted((REPO / package).rglob("*.py")):
            imported = _imports(path)
            wrong = (imported & set(PROJECT)) - allowed
            wrong |= imported & FORBIDDEN_THIRD_PARTY.get(package, set())
            violations += [f"{path.relative_to(REPO)} imports {name}" for name in sorted(wrong)]
    assert not violations, "\n".join(violations)


def test_pyproject_installs_the_packages_common_log_names():
    tomllib = pytest.importorskip("tomllib", reason="Python < 3.11 has no tomllib")
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert config["tool"]["setuptools"]["packages"]["find"]["include"] == [f"{p}*" for p in PACKAGES]


def test_the_documented_layout_table_names_every_package():
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = page[page.index("# Architecture") : page.index("## Logging")]
    for package in PROJECT:
        assert f"`{package}/`" in table, package


def test_importing_the_sidecar_contract_loads_no_restorer_nor_its_libraries():
    """``import runtime.spec`` (export's door) and ``import runtime`` stay light: no restorer, settings or backends,
    no OpenCV, ONNX Runtime or tqdm (they are blocked: a machine without them imports the contract too), and a
    library import installs no signal handler (only ``python -m runtime.<command>`` does, tests/test_interrupts.py);
    ``from runtime import Restorer`` still works where they are."""
    assert_imports_without(
        """
        import signal, sys
        handlers = lambda: (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
        before = handlers()  # not always Python's defaults: a shell's background job starts with SIGINT ignored
        import runtime, runtime.spec, runtime.model_files
        assert handlers() == before, (before, handlers())
        """,
        blocked=("runtime.restorer", "runtime.settings", "runtime.backends.select", "cv2", "onnxruntime", "tqdm"),
    )
    assert_imports_without("from runtime import Restorer, RestoreSettings", blocked=TORCH_SIDE)


KNOWN_CIRCLES: list[set[str]] = []  # import circles inside runtime/ still to remove; nothing may be added here


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan), i.e. the import circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while (member := stack.pop()) != node:
                component.add(member)
            if component:
                circles.append({node, *component})

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_no_import_circle_inside_the_runtime():
    """Every import counts, also those inside functions and under ``if TYPE_CHECKING``: a module that needs another
    one's types needs that module (the backend catalogue is the leaf that settings and backend selection share)."""
    graph = {_module_name(path): _runtime_modules(path) for path in sorted((REPO / "runtime").rglob("*.py"))}
    assert "runtime.backends.catalogue" in graph and not graph["runtime.backends.catalogue"] - {"runtime.model_files"}
    assert [c for c in _circles(graph) if c not in KNOWN_CIRCLES] == []
