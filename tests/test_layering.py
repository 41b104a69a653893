"""The package layering of docs/architecture.md's layout table, checked on every import statement in the source tree."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("common", "models", "train", "export", "runtime", "benchmarks", "tools")
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


def _imports(path: Path) -> set[str]:
    """Top-level module names imported anywhere in ``path`` (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_import_follows_the_layering():
    violations = []
    for package, allowed in ALLOWED.items():
        for path in sorted((REPO / package).rglob("*.py")):
            imported = _imports(path)
            wrong = (imported & set(PROJECT)) - allowed
            wrong |= imported & FORBIDDEN_THIRD_PARTY.get(package, set())
            violations += [f"{path.relative_to(REPO)} imports {name}" for name in sorted(wrong)]
    assert not violations, "\n".join(violations)


def test_the_documented_layout_table_names_every_package():
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = page[page.index("# Architecture") : page.index("## Logging")]
    for package in PROJECT:
        assert f"`{package}/`" in table, package
