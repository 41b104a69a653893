"""What every benchmark shares: the model line-up, where ``../shared`` is, machine facts, result writing."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.files import atomic_write_text, shared_dir  # noqa: F401 (shared_dir: the benchmarks' import point)

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
DEFAULT_OUTPUT = Path("out") / "benchmarks"
"""Where results go without ``-o``: relative to the working directory (in a checkout, the git-ignored ``out/``)."""


@dataclass(frozen=True)
class ModelEntry:
    """One architecture of the WCDGAN paper's Table 3, as benchmarked here.

    ``build`` returns the model with random weights (sizes and speed don't depend on the values); ``multiple``:
    input sides must divide it. ``paper_params_m`` / ``paper_runtime_s``: Table 3 (GTX 1080Ti; the paper does not
    state the image size), ``None`` where the paper has no entry for this variant.
    """

    key: str  # CLI-friendly name
    name: str
    build: Callable[[], Any]
    channels: int
    paper_params_m: float | None
    paper_runtime_s: float | None
    note: str = ""
    multiple: int = 1


def model_entries() -> list[ModelEntry]:
    """The line-up, Table 3's order (AR-CNN, DnCNN, MemNet, MWCNN, WCDGAN), plus variants worth a row."""
    from models.peers import ARCNN, MWCNN, DnCNN, MemNet, MemNetConfig
    from models.wcdgan import GeneratorConfig, WCDGANGenerator

    return [
        ModelEntry("arcnn", "AR-CNN", ARCNN, 1, 0.1, 0.5722, "official MATLAB release layout"),
        ModelEntry("dncnn3", "DnCNN-3", DnCNN, 1, 0.6, 0.8071, "BN folded, as released"),
        ModelEntry("memnet", "MemNet M6R6", MemNet, 1, None, None, "paper's shared recursion (677 k conv weights)"),
        ModelEntry(
            "memnet-unshared",
            "MemNet M6R6 unshared",
            lambda: MemNet(MemNetConfig(share_recursion=False)),
            1,
            2.9,
            1.6937,
            "6 distinct residual blocks per memory block: the count in WCDGAN's Table 3",
        ),
        ModelEntry("mwcnn", "MWCNN", MWCNN, 1, 25.1, 1.4814, "authors' PyTorch release layout", multiple=8),
        ModelEntry("wcdgan-rgb", "WCDGAN (RGB)", WCDGANGenerator, 3, 1.7, 1.4606, "the paper's RGB generator"),
        ModelEntry("wcdgan-y", "WCDGAN (Y)", lambda: WCDGANGenerator(GeneratorConfig(in_channels=1)), 1, None, None),
    ]


def library_versions(names: Sequence[str] = ("numpy", "torch", "onnxruntime", "onnx", "cv2", "tensorrt")) -> dict:
    """``{package: version or None}`` for the packages that shape the numbers (absent ones are ``None``)."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = getattr(importlib.import_module(name), "__version__", "unknown")
        except Exception:  # absent or broken install: report, don't fail
            versions[name] = None
    return versions


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    """Name of CUDA device 0, ``None`` without CUDA."""
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:
        return None


def host_kind() -> str:
    """``"cuda"`` when PyTorch sees a GPU, else ``"cpu"``: part of every result file name."""
    return "cpu" if gpu_name() is None else "cuda"


def machine_info() -> dict[str, Any]:
    """Facts a reader needs to interpret timings: CPU, cores, threads, GPU, library versions, UTC date."""
    import torch

    return {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        # other users' work on a shared machine slows every row: record how busy it was
        "load_average_1_5_15min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "gpu": gpu_name(),
        "libraries": library_versions(),
    }


BUSY_FOREIGN_CORES = 0.25  # other processes' CPU use during a timed row above this: the row is flagged busy


class Contention:
    """What the rest of the machine did while a block ran: a context manager for timed rows (Linux).

    ``foreign_cores``: CPU-seconds spent by every other process (kernel included) per wall second — read from
    ``/proc/stat`` minus this process's own time, so the benchmark's own threads never count against it; a load
    average cannot tell them apart. ``steal_cores``: time the hypervisor gave to other guests. ``load_before`` /
    ``load_after``: 1-minute load averages, for the record. :meth:`as_dict` holds them and ``busy``.
    """

    def __enter__(self) -> Contention:
        self.load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        self._start = (_proc_stat(), _own_cpu_s(), time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        (busy0, steal0), own0, t0 = self._start
        (busy1, steal1), own1 = _proc_stat(), _own_cpu_s()
        wall = max(time.perf_counter() - t0, 1e-9)
        known = busy0 is not None and busy1 is not None
        self.foreign_cores = max((busy1 - busy0) - (own1 - own0), 0.0) / wall if known else None
        self.steal_cores = (steal1 - steal0) / wall if known else None
        self.load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    @property
    def busy(self) -> bool:
        return bool(self.foreign_cores and self.foreign_cores > BUSY_FOREIGN_CORES)

    def as_dict(self) -> dict[str, Any]:
        return {
            "foreign_cores": self.foreign_cores,
            "steal_cores": self.steal_cores,
            "load_before": self.load_before,
            "load_after": self.load_after,
            "busy": self.busy,
        }


def contention_cell(row: dict[str, Any]) -> str | None:
    """Other processes' CPU use during a row, in cores; "BUSY" marks a row that the machine's load distorted."""
    cores = row.get("foreign_cores")
    return None if cores is None else f"{'**BUSY** ' if row.get('busy') else ''}{cores:.2f}"


def busy_warning(rows: Sequence[dict[str, Any]]) -> str:
    """A loud paragraph when any row ran while other processes used the CPU (empty otherwise)."""
    busy = [r for r in rows if r.get("busy")]
    if not busy:
        return ""
    return (
        f"**Warning: {len(busy)} of {len(rows)} rows ran while other processes used more than "
        f"{BUSY_FOREIGN_CORES} core(s) (column 'others' CPU'); their times are too slow. Rerun them on a quiet "
        "machine before comparing.**\n\n"
    )


def _proc_stat() -> tuple[float | None, float | None]:
    """(busy CPU-seconds of the whole machine, stolen CPU-seconds) since boot; (None, None) off Linux."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None, None
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / tick, steal / tick


def _own_cpu_s() -> float:
    """CPU-seconds of this process and its finished children (threads included)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; cells are ``str()``-ed, ``None`` shows as '–'."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join("–" if c is None else str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def add_output_options(parser: argparse.ArgumentParser, update_flag: str, tracked_dir: Path) -> None:
    """``-o/--output DIR`` (default :data:`DEFAULT_OUTPUT`) or ``update_flag``: write into ``tracked_dir`` instead.

    Committed results are only ever refreshed on request: both set ``args.output``, and they exclude each other.
    """
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-o", "--output", type=Path, default=DEFAULT_OUTPUT, help=f"output folder (default: {DEFAULT_OUTPUT}/)"
    )
    group.add_argument(
        update_flag,
        dest="output",
        action="store_const",
        const=tracked_dir,
        help=f"write into {tracked_dir.relative_to(REPO_ROOT)}/ of this checkout (refreshes the committed results)",
    )


def write_results(out_dir: Path, stem: str, payload: dict[str, Any], markdown: str) -> list[Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` atomically into ``out_dir``; return the paths."""
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    atomic_write_text(json_path, json.dumps(payload, indent=1, default=str) + "\n")
    atomic_write_text(md_path, markdown)
    return [json_path, md_path]


def print_report(markdown: str, paths: Sequence[Path]) -> None:
    """Print a benchmark's markdown table to stdout and the files it wrote to stderr."""
    print(markdown, end="")
    print("wrote " + ", ".join(map(str, paths)), file=sys.stderr)
