"""Per-module results of the last ``mutmut run`` (docs/mutation.md) into benchmarks/results/mutation.{json,md}.

    python tools/mutation_report.py --label after     # reads mutants/**/*.meta; adds/replaces the run "after"

Each run (``--label``) is kept beside the others in the JSON (before/after a change), with the machine, the date, the
command and, per mutated module, how many mutants mutmut killed, how many survived, timed out, had no test calling
their function ("no tests": reached only through commands the tests run in subprocesses, or not at all) and were not
run. The score is killed (timeouts included, as mutmut counts them) over the mutants that ran.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
STATUSES = ("killed", "survived", "timeout", "no tests", "not checked", "other")


def module_counts(mutants: Path) -> dict[str, dict[str, int]]:
    """Mutated module (``runtime/settings.py``) → status → mutants, from mutmut's ``*.py.meta`` files."""
    from mutmut.stats import status_by_exit_code  # the [dev] extra; only this command needs it

    counts: dict[str, dict[str, int]] = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        statuses = collections.Counter(status_by_exit_code[code] for code in codes.values())
        row = {s: statuses.pop(s, 0) for s in STATUSES[:-1]}
        row["other"] = sum(statuses.values())  # suspicious, segfault, interrupted
        counts[str(meta.relative_to(mutants))[: -len(".meta")]] = row
    return counts


def score(row: dict[str, int]) -> float | None:
    """Killed (timeouts included) over the mutants that ran; None when none ran."""
    ran = row["killed"] + row["survived"] + row["timeout"]
    return None if not ran else (row["killed"] + row["timeout"]) / ran


def markdown(runs: dict[str, dict]) -> str:
    head = "| module | killed | survived | timeout | no tests | not run | score |\n|---|---|---|---|---|---|---|"
    lines = ["# Mutation testing (mutmut)", "", "Written by `python tools/mutation_report.py` (docs/mutation.md).", ""]
    for label, run in runs.items():
        lines += [f"## {label}", "", f"{run['when']} on {run['machine']}: `{run['command']}`", ""]
        if run.get("note"):
            lines += [run["note"], ""]
        lines.append(head)
        for module, row in run["modules"].items():
            ran = score(row)
            cells = [row["killed"], row["survived"], row["timeout"], row["no tests"], row["not checked"]]
            shown = "—" if ran is None else f"{ran:.0%}"
            lines.append(f"| {module} | " + " | ".join(map(str, cells)) + f" | {shown} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--label", required=True, help="the run's name in the results (e.g. before, after)")
    p.add_argument("--command", default="python -m mutmut run --max-children 2", help="the command that ran")
    p.add_argument("--note", default="", help="one line on what this run covers")
    p.add_argument("--mutants", type=Path, default=REPO / "mutants", help="mutmut's folder (default: ./mutants)")
    args = p.parse_args(argv)
    if not args.mutants.is_dir():
        print(f"error: {args.mutants}: no such folder (run mutmut first)", file=sys.stderr)
        return 2
    path = RESULTS / "mutation.json"
    runs = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    runs[args.label] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "command": args.command,
        "note": args.note,
        "modules": module_counts(args.mutants),
    }
    path.write_text(json.dumps(runs, indent=1) + "\n", encoding="utf-8")
    (RESULTS / "mutation.md").write_text(markdown(runs), encoding="utf-8")
    print(markdown({args.label: runs[args.label]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
