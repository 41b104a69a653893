"""What every benchmark shares: the model line-up, where ``../shared`` is, machine facts, result writing."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.files import atomic_write_text, shared_dir  # noqa: F401 (shared_dir: the benchmarks' import point)

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"


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


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; cells are ``str()``-ed, ``None`` shows as '–'."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join("–" if c is None else str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


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
