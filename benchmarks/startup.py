"""What a one-image ``runtime.infer`` process spends before it restores: CPU seconds of imports, model load and
self-test, against the CPU of restoring the image itself (issue 34, item 4: start-up should cost no more than
restoring a 0.25 MP photo).

Each row is a fresh interpreter (``resource.getrusage`` of the finished child: user + system CPU), median of
``--repeats``; ``--root`` measures another checkout's code, and ``--before ROOT`` measures ROOT's code too, row by
row alternating with ``--root``'s (same machine state), as a before/after pair. The children get a throw-away engine
cache (``WCDGAN_CACHE_DIR``): the "recorded" rows find the self-test's record of an earlier run there (what every
run after the first on a machine does), the "first run" rows start from an empty one each time.

    python -m benchmarks.startup --repeats 5 --before /work/main   # → out/benchmarks/startup.{json,md}
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2

from benchmarks.common import (
    REPO_ROOT,
    RESULTS_DIR,
    Contention,
    add_output_options,
    busy_warning,
    contention_cell,
    library_versions,
    machine_info,
    markdown_table,
    print_report,
    shared_dir,
    write_results,
)

SIDE = 500  # a 0.25 MP photo
# In one process: load (imports done first), restore once (warm-up), restore again: the steady restore's CPU.
_IN_PROCESS = """
import os, sys, time
def cpu(): t = os.times(); return t.user + t.system
from runtime import Restorer
c0 = cpu()
restorer = Restorer(threads=1, verify={verify})
c1 = cpu()
restorer.restore_file(sys.argv[1], sys.argv[2]); c2 = cpu()
restorer.restore_file(sys.argv[1], sys.argv[2]); c3 = cpu()
print(c1 - c0, c2 - c1, c3 - c2)
"""
PROCESS_STEP = f"python -m runtime.infer, one {SIDE}×{SIDE} JPEG (self-test recorded by an earlier run)"
STEADY_STEP = f"steady restore_file, {SIDE}×{SIDE} (in process)"


def child_cpu(argv: list[str], root: Path, cache: Path) -> tuple[float, str]:
    """CPU seconds (user + system) of running ``argv`` in a fresh process from ``root`` with the engine cache
    ``cache``, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "WCDGAN_CACHE_DIR": str(cache)}
    proc = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=300, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc.stdout


def _steps(image: Path) -> dict[str, tuple[list[str], bool]]:
    """Step name → (argv, whether each repeat starts from an empty engine cache)."""
    out, py = str(image.with_suffix(".png")), sys.executable
    one_image = [py, "-m", "runtime.infer", str(image), "-o", out, "-f", "-q", "--threads", "1"]
    return {
        "interpreter (python -c pass)": ([py, "-c", "pass"], False),
        "import runtime.spec (export's door)": ([py, "-c", "import runtime.spec"], False),
        "import runtime": ([py, "-c", "import runtime"], False),
        "import runtime.infer": ([py, "-c", "import runtime.infer"], False),
        "python -m runtime.infer --help": ([py, "-m", "runtime.infer", "--help"], False),
        PROCESS_STEP: (one_image, False),
        f"python -m runtime.infer, one {SIDE}×{SIDE} JPEG, first run on this machine (self-test runs)":
            (one_image, True),
        "Restorer() with the self-test, first run (in process)": (_in_process(True, image), True),
        "Restorer() with the self-test recorded (in process)": (_in_process(True, image), False),
        "Restorer() without the self-test (in process)": (_in_process(False, image), False),
    }  # fmt: skip


def _in_process(verify: bool, image: Path) -> list[str]:
    return [sys.executable, "-c", _IN_PROCESS.format(verify=verify), str(image), str(image.with_suffix(".png"))]


def rows(roots: dict[str, Path], image: Path, repeats: int) -> list[dict[str, Any]]:
    """Median CPU seconds per step and root (``roots``: column → checkout), the roots alternating within each step
    (see the module docstring); the in-process steps add the first and the steady ``restore_file`` rows."""
    found = []
    with tempfile.TemporaryDirectory() as tmp:
        recorded = {column: Path(tmp) / column for column in roots}
        for column, root in roots.items():  # the run that records the self-test for the "recorded" rows
            child_cpu(_steps(image)[PROCESS_STEP][0], root, recorded[column])
        for name, (argv, fresh) in _steps(image).items():
            runs: dict[str, list[tuple[float, str]]] = {column: [] for column in roots}
            with Contention() as machine:
                for i in range(repeats):
                    for column, root in roots.items():
                        cache = Path(tmp) / f"fresh-{column}-{name[:8]}-{i}" if fresh else recorded[column]
                        runs[column].append(child_cpu(argv, root, cache))
            facts = machine.as_dict()
            in_process = "(in process)" in name
            found.append({"step": name, **_medians(runs, 0 if in_process else None), **facts})
            if name.startswith("Restorer() with the self-test recorded"):
                found.append({"step": "first restore_file (in process)", **_medians(runs, 1), **facts})
                found.append({"step": STEADY_STEP, **_medians(runs, 2), **facts})
    return found


def _medians(runs: dict[str, list[tuple[float, str]]], field: int | None) -> dict[str, float]:
    """``{column: median}`` of each column's runs: of the process's CPU for ``field`` None, else of the
    ``field``-th number an in-process step prints."""
    return {
        column: statistics.median(r[0] if field is None else float(r[1].split()[field]) for r in results)
        for column, results in runs.items()
    }


def startup_cpu(found: list[dict[str, Any]], column: str) -> tuple[float, float]:
    """(start-up, steady restore) CPU seconds of ``column``: the one-image process minus its steady restore."""
    total = next(r[column] for r in found if r["step"] == PROCESS_STEP)
    steady = next(r[column] for r in found if r["step"] == STEADY_STEP)
    return total - steady, steady


def to_markdown(payload: dict[str, Any]) -> str:
    m, found, columns = payload["machine"], payload["rows"], list(payload["roots"])
    lines = []
    for column in columns:
        startup, steady = startup_cpu(found, column)
        lines.append(f"{column} (`{payload['roots'][column]}`): **start-up {startup:.2f} s CPU** against "
                     f"{steady:.2f} s for restoring the {SIDE}×{SIDE} image")  # fmt: skip
    if len(columns) == 2:
        before, after = (startup_cpu(found, c)[0] for c in columns)
        lines.append(f"start-up after / before: **{after / before:.2f}**")
    head = (
        f"# Start-up of a one-image runtime.infer process ({m['date_utc']})\n\n"
        f"Machine: {m['cpu']}, {m['cpu_count']} logical CPUs; bundled model, ort-cpu, 1 thread; CPU seconds (user + "
        f"system) of fresh processes, median of {payload['repeats']}. Start-up = the one-image process (self-test "
        "recorded by an earlier run) − its steady restore.\n\n" + "".join(f"- {line}\n" for line in lines) + "\n"
    ) + busy_warning(found)
    table = markdown_table(
        ["step", *(f"{c} CPU s" for c in columns), "others' CPU"],
        [[r["step"], *(f"{r[c]:.3f}" for c in columns), contention_cell(r)] for r in found],
    )
    return head + table


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.split("\n\n")[0])
    add_output_options(p, "--update-results", RESULTS_DIR)
    p.add_argument("--repeats", type=int, default=3, help="fresh processes per row (default 3; the median counts)")
    p.add_argument("--root", type=Path, default=REPO_ROOT, help="the checkout whose code runs (default: this one)")
    p.add_argument("--before", type=Path, metavar="ROOT",
                   help="also measure this checkout's code (e.g. the main branch), as the 'before' column")  # fmt: skip
    p.add_argument("--name", default="startup", help="result file stem (default startup)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    roots = {"before": args.before.resolve()} if args.before else {}
    roots["after" if args.before else "this"] = args.root.resolve()
    photo = cv2.imread(str(shared_dir() / "data" / "eval" / "LIVE1" / "bikes.png"))[:SIDE, :SIDE]
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "photo.jpg"
        cv2.imwrite(str(image), photo, [cv2.IMWRITE_JPEG_QUALITY, 30])
        found = rows(roots, image, args.repeats)
    payload = {
        "machine": machine_info() | {"libraries": library_versions(("onnxruntime", "numpy", "cv2", "jpeglib"))},
        "roots": {column: str(root) for column, root in roots.items()}, "repeats": args.repeats, "rows": found,
    }  # fmt: skip
    markdown = to_markdown(payload)
    print_report(markdown, write_results(args.output, args.name, payload, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
