"""Mutation testing with mutmut, module group by module group, into benchmarks/results/mutation.{json,md}.

    python tools/mutation.py settings io --label after --timeout 1800   # these groups; see GROUPS
    python tools/mutation.py all --label after                          # every group (hours on two cores)
    python tools/mutation.py settings --label before --tests-from main  # the tests of another commit
    python tools/mutation.py video --only runtime/video/raw.py --label raw-before   # part of one group
    python tools/mutation.py video --only runtime/video/cli.py::_restore_raw --label f  # one function's mutants

mutmut (configured in pyproject.toml's [tool.mutmut]) picks each mutant's tests by coverage: the tests that call the
mutated function. A function such as RestoreSettings' validation runs in almost every test, so with the whole suite
each of its mutants would run hundreds of tests. Each group here therefore runs in its own copy of the checkout
(``.mutation/LABEL/GROUP/``, reused by a later run with the same label, which retries only undecided mutants) whose
mutmut configuration mutates the group's modules and selects among the group's test files only (:data:`GROUPS`).
``--timeout`` bounds each group; the mutants it did not reach are reported as not run. ``--only`` mutates only the
modules of one group that match its patterns, or only some functions (recorded with the run). The report (killed,
survived, timeout, no tests, not run per module) is added to benchmarks/results/mutation.json under ``--label``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: mutmut reads its configuration with toml there
    import toml as tomllib

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".mutation"
RESULTS = REPO / "benchmarks" / "results"
STATUSES = ("killed", "survived", "timeout", "no tests", "not checked", "other")

# group → (modules it mutates, the test files that may test them)
GROUPS = {
    "settings": (["runtime/settings.py", "runtime/strength.py"], ["tests/test_settings.py", "tests/test_compare.py"]),
    "fp16_check": (["export/fp16_check.py"], ["tests/test_fp16_check.py"]),
    "int8": (["export/int8.py"], ["tests/test_int8.py"]),
    "io": (["runtime/io.py", "runtime/file_headers.py"], ["tests/test_io.py", "tests/test_hostile_inputs.py"]),
    "compare": (["runtime/compare.py", "runtime/report_html.py"], ["tests/test_compare.py"]),
    "cli": (
        ["runtime/cli.py"],
        ["tests/test_infer.py", "tests/test_hostile_inputs.py", "tests/test_settings.py", "tests/test_compare.py"],
    ),
    "video": (["runtime/video/*.py"], ["tests/test_video.py"]),
}
_SKIP = shutil.ignore_patterns(
    ".git", ".mutation", "mutants", "__pycache__", ".venv", "venv", "out", "runs", "*.egg-info"
)


def prepare(group: str, label: str, tests_from: str | None, modules: list[str]) -> Path:
    """The group's copy of the checkout (made once per label) with a mutmut configuration that mutates ``modules``."""
    copy = WORK / label / group
    if not copy.is_dir():
        shutil.copytree(REPO, copy, ignore=_SKIP)
        if tests_from:  # another commit's tests, with this checkout's helpers (tests/conftest.py: module_env)
            shutil.rmtree(copy / "tests")
            archive = subprocess.run(["git", "archive", tests_from, "tests"], cwd=REPO, capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(copy)], input=archive.stdout, check=True)
            shutil.copy2(REPO / "tests" / "conftest.py", copy / "tests" / "conftest.py")
    tests = GROUPS[group][1]
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    config = tomllib.loads(text)["tool"]["mutmut"] | {
        "only_mutate": modules,
        "pytest_add_cli_args_test_selection": tests,
    }
    head, _, rest = text.partition("[tool.mutmut]")
    assert "\n[" not in rest, "[tool.mutmut] must be pyproject.toml's last section"
    lines = [f"{key} = {json.dumps(value)}" for key, value in config.items()]
    (copy / "pyproject.toml").write_text(head + "[tool.mutmut]\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return copy


def run_group(copy: Path, timeout: float, children: int, names: list[str]) -> bool:
    """``mutmut run`` in ``copy`` (of the mutants whose names match ``names``, all of them again; none given: every
    undecided mutant); False when ``timeout`` seconds ended it (its decided mutants are kept)."""
    log = (copy / "mutmut.log").open("ab")
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *names]
    process = subprocess.Popen(command, cwd=copy, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        process.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 15)  # mutmut and the workers it forked
        process.wait()
        return False
    finally:
        log.close()


def restricted(group: str, items: list[str]) -> tuple[list[str], list[str]]:
    """``--only``'s items → (the module globs to mutate, mutmut's name patterns of the mutants to run: none for all).
    An item is a glob of module files, matching at least one module of ``group`` and none outside it as mutmut
    matches them (fnmatch: ``*`` spans folders), or ``FILE::FUNCTION`` (``Class.method``: a method) for the mutants
    of one function; ValueError otherwise."""
    import ast
    import fnmatch

    sources = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]["source_paths"]
    modules = [str(f.relative_to(REPO)) for source in sources for f in (REPO / source).rglob("*.py")]
    globs, names = [], []
    for item in items:
        pattern, _, function = item.partition("::")
        files = fnmatch.filter(modules, pattern)
        if not files or not all(any(fnmatch.fnmatch(f, m) for m in GROUPS[group][0]) for f in files):
            within = ", ".join(GROUPS[group][0])
            raise ValueError(f"--only {item}: must match modules of the {group} group ({within}) and no others")
        globs.append(pattern)
        dotted = pattern.removesuffix(".py").replace("/", ".")
        if not function:
            names.append(f"{dotted}.*")
            continue
        tree = ast.parse((REPO / files[0]).read_text(encoding="utf-8"))
        defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        owner, _, name = function.rpartition(".")
        if files != [pattern] or name not in defined:
            raise ValueError(f"--only {item}: FILE::FUNCTION names a function (or Class.method) of one module")
        names.append(f"{dotted}.{f'xǁ{owner}ǁ{name}' if owner else f'x_{name}'}__mutmut_*")  # mutmut's mangling
    return globs, names if any("::" in item for item in items) else []


def module_counts(mutants: Path, modules: list[str], names: list[str]) -> dict[str, dict[str, int]]:
    """Mutated module (``runtime/settings.py``) → status → mutants (those matching ``names``, if any), from mutmut's
    ``*.py.meta`` files."""
    import fnmatch

    from mutmut.stats import status_by_exit_code  # the [dev] extra

    counts = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        module = str(meta.relative_to(mutants))[: -len(".meta")]
        if not any(fnmatch.fnmatch(module, pattern) for pattern in modules):
            continue
        codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        codes = {k: c for k, c in codes.items() if not names or any(fnmatch.fnmatch(k, n) for n in names)}
        statuses = collections.Counter(status_by_exit_code[code] for code in codes.values())
        row = {s: statuses.pop(s, 0) for s in STATUSES[:-1]}
        row["other"] = sum(statuses.values())  # suspicious, segfault, interrupted
        counts[module] = row
    return counts


def mutant_statuses(mutants: Path, modules: list[str]) -> dict[str, str]:
    """Every mutant of ``modules`` in mutmut's folder ``mutants`` → its status (killed, survived, ...)."""
    import fnmatch

    from mutmut.stats import status_by_exit_code

    found = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        if any(fnmatch.fnmatch(str(meta.relative_to(mutants))[: -len(".meta")], m) for m in modules):
            codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
            found |= {name: status_by_exit_code[code] for name, code in codes.items()}
    return found


def paired(before: str, after: str) -> list[str]:
    """Markdown rows: per module, the mutants both runs decided and how many each killed (timeouts count as killed)."""
    rows = []
    for group, (modules, _) in GROUPS.items():
        runs = [WORK / label / group / "mutants" for label in (before, after)]
        if not all(r.is_dir() for r in runs):
            continue
        old, new = (mutant_statuses(r, modules) for r in runs)
        decided = ("killed", "survived", "timeout")
        both = [m for m in old if old[m] in decided and new.get(m) in decided]
        for module in sorted({m.split(".x")[0] for m in both}):
            names = [m for m in both if m.split(".x")[0] == module]
            killed = [sum(s[m] != "survived" for m in names) for s in (old, new)]
            rows.append(f"| {module} | {len(names)} | {killed[0]} ({killed[0] / len(names):.0%}) | "
                        f"{killed[1]} ({killed[1] / len(names):.0%}) |")  # fmt: skip
    return rows


def score(row: dict[str, int]) -> float | None:
    """Killed (timeouts included, as mutmut counts them) over the mutants that ran; None when none ran."""
    ran = row["killed"] + row["survived"] + row["timeout"]
    return None if not ran else (row["killed"] + row["timeout"]) / ran


def markdown(runs: dict[str, dict]) -> str:
    head = "| module | tests from | killed | survived | timeout | no tests | not run | score |\n" + "|---" * 8 + "|"
    lines = ["# Mutation testing (mutmut)", "", "Written by `python tools/mutation.py` (docs/mutation.md).", ""]
    for label, run in runs.items():
        lines += [f"## {label}", "", f"{run['when']}, {run['machine']}: `{run['command']}`", ""]
        if run.get("note"):
            lines += [run["note"], ""]
        if run.get("only"):
            lines += ["Mutated only " + ", ".join(f"`{m}`" for m in run["only"]) + " of its group.", ""]
        lines.append(head)
        for module, row in run["modules"].items():
            ran = score(row)
            cells = [row["killed"], row["survived"], row["timeout"], row["no tests"], row["not checked"]]
            shown = "—" if ran is None else f"{ran:.0%}"
            tests = ", ".join(Path(t).name for t in row.get("tests", []))
            lines.append(f"| {module} | {tests} | " + " | ".join(map(str, cells)) + f" | {shown} |")
        lines.append("")
    for label, run in runs.items():  # kept in the JSON: the copies the pairs were read from may be gone
        if pair := run.get("paired"):
            lines += [f"## {pair['with']} → {label}, on the mutants both runs decided", ""]
            lines += [f"| module | mutants | killed by {pair['with']} | killed by {label} |", "|---|---|---|---|"]
            lines += [*pair["rows"], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("groups", nargs="+", choices=[*GROUPS, "all"], help="module groups to mutate")
    p.add_argument("--label", required=True, help="the run's name in the results (e.g. before, after)")
    p.add_argument("--tests-from", metavar="REF", help="run the tests of this git commit (e.g. main)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per group (default 3600)")
    p.add_argument("--children", type=int, default=2, help="mutants run at once (default 2)")
    p.add_argument("--note", default="", help="one line on what this run covers")
    p.add_argument("--only", nargs="+", metavar="GLOB", help="mutate only these modules of the (one) group, or "
                   "only FILE::FUNCTION (those mutants are all run again when the label's copy is reused)")  # fmt: skip
    p.add_argument("--report-only", action="store_true", help="only (re)write the report from the copies' results")
    p.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="add the two labels' paired scores")
    args = p.parse_args(argv)
    groups = list(GROUPS) if "all" in args.groups else args.groups
    if args.only and len(groups) > 1:
        p.error("--only restricts one group; name one")
    try:
        only, names = restricted(groups[0], args.only) if args.only else ([], [])
    except ValueError as e:
        p.error(str(e))
    path = RESULTS / "mutation.json"
    run: dict = {"modules": {}}
    for group in groups:
        modules, tests = only or GROUPS[group][0], GROUPS[group][1]
        copy = prepare(group, args.label, args.tests_from, modules)
        if not args.report_only:
            finished = run_group(copy, args.timeout, args.children, names)
            print(f"{group}: {'done' if finished else f'stopped after {args.timeout:g} s'}", file=sys.stderr)
        for module, row in module_counts(copy / "mutants", modules, names).items():
            run["modules"][module] = row | {"tests": tests}
    runs = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}  # read now: runs may overlap
    run = runs.setdefault(args.label, {"modules": {}}) | {
        "modules": runs.get(args.label, {}).get("modules", {}) | run["modules"]
    }
    runs[args.label] = run
    run |= {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), Python {platform.python_version()}",
        "command": "python tools/mutation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "note": args.note or run.get("note", ""),
    }
    if only:
        run["only"] = args.only
    if args.compare and (rows := paired(*args.compare)):
        runs[args.compare[1]]["paired"] = {"with": args.compare[0], "rows": rows}
    path.write_text(json.dumps(runs, indent=1) + "\n", encoding="utf-8")
    (RESULTS / "mutation.md").write_text(markdown(runs), encoding="utf-8")
    print(markdown({args.label: run}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
