"""What a one-image ``runtime.infer`` process spends before it restores: CPU seconds of imports, model load and
self-test, against the CPU of restoring the image itself (issue 34, item 4: start-up should cost no more than
restoring a 0.25 MP photo).

Each row is a fresh interpreter (``resource.getrusage`` of the finished child: user + system CPU), median of
``--repeats``; ``--root`` measures another checkout's code (e.g. the main branch, for before/after).

    python -m benchmarks.startup --repeats 5   # → out/benchmarks/startup.{json,md}
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


def child_cpu(argv: list[str], root: Path) -> tuple[float, str]:
    """CPU seconds (user + system) of running ``argv`` in a fresh process from ``root``, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=300, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc.stdout


def rows(root: Path, image: Path, repeats: int) -> list[dict[str, Any]]:
    """Median CPU seconds per step (see the module docstring)."""
    out = str(image.with_suffix(".png"))
    py = sys.executable
    steps = {
        "interpreter (python -c pass)": [py, "-c", "pass"],
        "import runtime.spec (export's door)": [py, "-c", "import runtime.spec"],
        "import runtime": [py, "-c", "import runtime"],
        "import runtime.infer": [py, "-c", "import runtime.infer"],
        f"python -m runtime.infer, one {SIDE}×{SIDE} JPEG": [py, "-m", "runtime.infer", str(image), "-o", out, "-f",
                                                             "-q", "--threads", "1"],
    }  # fmt: skip
    found = []
    for name, argv in steps.items():
        with Contention() as machine:
            cpu = statistics.median(child_cpu(argv, root)[0] for _ in range(repeats))
        found.append({"step": name, "cpu_s": cpu, **machine.as_dict()})
    for verify in (True, False):
        with Contention() as machine:
            runs = [child_cpu([py, "-c", _IN_PROCESS.format(verify=verify), str(image), out], root)[1]
                    for _ in range(repeats)]  # fmt: skip
        load, first, steady = (statistics.median(float(r.split()[i]) for r in runs) for i in range(3))
        facts = machine.as_dict()
        found.append({"step": f"Restorer() {'with' if verify else 'without'} the self-test (in process)",
                      "cpu_s": load, **facts})  # fmt: skip
        if verify:
            found.append({"step": "first restore_file (in process)", "cpu_s": first, **facts})
            found.append({"step": f"steady restore_file, {SIDE}×{SIDE} (in process)", "cpu_s": steady, **facts})
    return found


def to_markdown(payload: dict[str, Any]) -> str:
    m, found = payload["machine"], payload["rows"]
    total = next(r["cpu_s"] for r in found if r["step"].startswith("python -m runtime.infer"))
    steady = next(r["cpu_s"] for r in found if r["step"].startswith("steady"))
    head = (
        f"# Start-up of a one-image runtime.infer process ({m['date_utc']})\n\n"
        f"Code: `{payload['root']}`; machine: {m['cpu']}, {m['cpu_count']} logical CPUs; bundled model, ort-cpu, "
        f"1 thread; CPU seconds (user + system) of fresh processes, median of {payload['repeats']}. "
        f"**Start-up = the one-image process − its steady restore: {total - steady:.2f} s CPU against "
        f"{steady:.2f} s for restoring the {SIDE}×{SIDE} image.**\n\n"
    ) + busy_warning(found)
    table = markdown_table(
        ["step", "CPU s", "others' CPU"], [[r["step"], f"{r['cpu_s']:.3f}", contention_cell(r)] for r in found]
    )
    return head + table


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.split("\n\n")[0])
    add_output_options(p, "--update-results", RESULTS_DIR)
    p.add_argument("--repeats", type=int, default=3, help="fresh processes per row (default 3; the median counts)")
    p.add_argument("--root", type=Path, default=REPO_ROOT, help="the checkout whose code runs (default: this one)")
    p.add_argument("--name", default="startup", help="result file stem (default startup)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    photo = cv2.imread(str(shared_dir() / "data" / "eval" / "LIVE1" / "bikes.png"))[:SIDE, :SIDE]
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "photo.jpg"
        cv2.imwrite(str(image), photo, [cv2.IMWRITE_JPEG_QUALITY, 30])
        found = rows(args.root.resolve(), image, args.repeats)
    payload = {
        "machine": machine_info() | {"libraries": library_versions(("onnxruntime", "numpy", "cv2"))},
        "root": str(args.root.resolve()), "repeats": args.repeats, "rows": found,
    }  # fmt: skip
    markdown = to_markdown(payload)
    print_report(markdown, write_results(args.output, args.name, payload, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
