"""``python -m runtime.cache list|clear``: inspect the TensorRT engine cache (and count OpenVINO's compiled models in
its ``openvino`` folder and the records of passed self-tests in ``self_test``), or empty it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from common.cli import UsageError, run_cli
from runtime.engine_cache import (
    ENV_VAR,
    OPENVINO_SUBDIR,
    cache_root,
    clear,
    default_cache_dir,
    list_entries,
    openvino_blobs,
    self_test_records,
)

_COLUMNS = ("key", "model", "precision", "shape", "TensorRT", "GPU", "size", "created")


def _row(entry: dict[str, Any]) -> tuple[str, ...]:
    if "error" in entry:
        return (entry["slot"], f"(unreadable sidecar: {entry['error']})", *[""] * (len(_COLUMNS) - 2))
    key = entry.get("key", {})
    profiles = key.get("profiles") or [["", [], [], []]]
    shape = "×".join(str(d) for d in profiles[0][3])  # the largest shape the engine accepts
    gpu = f"{key.get('gpu_name', '?')} (sm {key.get('compute_capability', '?')})"
    size = f"{entry.get('size', 0) / 2**20:.1f} MiB"
    return (entry["slot"], key.get("model_name", "?"), key.get("precision", "?"), shape, key.get("trt_version", "?"),
            gpu, size, entry.get("created", "?"))  # fmt: skip


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [_COLUMNS, *rows])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m runtime.cache",
        description="List cached TensorRT engines, or clear them together with OpenVINO's compiled models and the "
        "records of passed load-time self-tests. Engines are rebuilt automatically when missing, stale (other "
        "TensorRT version, GPU or builder options) or corrupt; a model file without a record is tested again.",
    )
    p.add_argument(
        "action",
        choices=("list", "clear"),
        help="list: show engines (and count OpenVINO's compiled models); clear: delete every cached file",
    )
    p.add_argument("--cache-dir", type=Path, help=f"cache folder (default: ${ENV_VAR} or {default_cache_dir()})")
    p.add_argument("-q", "--quiet", action="store_true", help="clear: print nothing")
    return run_cli(run, p.parse_args(argv))


def run(a: argparse.Namespace) -> int:
    """List or clear (results on stdout); UsageError for a missing --cache-dir."""
    root = cache_root(a.cache_dir)
    if a.cache_dir is not None and not root.is_dir():
        raise UsageError(f"{root}: no such cache folder")
    if a.action == "list":
        entries = list_entries(root)
        print(_table([_row(e) for e in entries]) if entries else f"no cached engines in {root}")
        if blobs := openvino_blobs(root):  # opaque files: OpenVINO keys them by a hash of model, device and options
            size = sum(p.lstat().st_size for p in blobs) / 2**20  # a link counts as itself
            print(f"OpenVINO: {len(blobs)} compiled model(s), {size:.1f} MiB in {root / OPENVINO_SUBDIR}")
        if records := self_test_records(root):
            print(f"self-tests passed: {len(records)} record(s) (model file, backend, library) in {records[0].parent}")
    else:
        removed = clear(root)
        if not a.quiet:
            print(f"removed {removed} file(s) from {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
