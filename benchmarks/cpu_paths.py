"""End-to-end CPU paths of the runtime: precision × backend × tiling × threads, with peak memory and machine load.

Each setting restores the same JPEGs (q10 photos at 1080p and 4 MP) with ``runtime.Restorer.restore_file``
(decode → tiles → model → PNG) in a **fresh child process**, so that its peak RSS is its own and nothing is
cached between settings: one untimed warm-up pass, then ``repeats`` timed passes over all images. Settings run
**interleaved** over ``rounds`` rounds (order rotated each round), so that a shared host's slow drifts of speed
(measured here: 25 % between runs minutes apart) fall on every setting alike. Per setting:
seconds per output megapixel (min/median/max over all timed passes), model load time, peak RSS, the pixels the
network computed per output pixel (overlap and padding), and what the rest of the machine did meanwhile
(:class:`benchmarks.common.Contention`). Rows run while other processes used more than a quarter core are
flagged BUSY, and the run refuses to start on a busy machine unless ``--allow-busy``.

The first setting reproduces the runtime before per-image core fitting and INT8 (FP32, fixed 256-px cores,
spinning on): the baseline of the speed-up column. It runs with today's session options (ONNX Runtime's memory
pattern off: the same speed, less memory than that runtime had).

    python -m benchmarks.cpu_paths                         # → out/benchmarks/cpu_paths.{json,md}
    python -m benchmarks.cpu_paths --update-results        # → benchmarks/results/ (committed)
    python -m benchmarks.cpu_paths --sizes 1080p --rounds 1 --settings fp32-fixed256 int8-fit512 -o /tmp/cpu
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import (
    RESULTS_DIR,
    Contention,
    add_output_options,
    busy_warning,
    contention_cell,
    cpu_model,
    library_versions,
    machine_info,
    markdown_table,
    print_report,
    write_results,
)
from common.cli import CommandFailed, run_cli

SIZES = {"1080p": (1080, 1920), "4mp": (1600, 2560)}
TINY = {"tiny": (200, 344)}  # CI smoke runs


@dataclass(frozen=True)
class Setting:
    """One way to run the runtime on the CPU (the Restorer's keyword arguments, plus the pre-fitting grid)."""

    name: str
    precision: str = "fp32"
    backend: str = "ort-cpu"
    tile: int = 512
    fixed_grid: bool = False  # emulate the runtime before per-image fitting: every window core × core
    threads: int | None = None  # None: --threads
    spin: bool | None = None


SETTINGS = [
    Setting("fp32-fixed256", tile=256, fixed_grid=True, spin=True),
    Setting("fp32-fit512", tile=512),
    Setting("int8-fit384", "int8", tile=384),
    Setting("int8-fit512", "int8", tile=512),
    Setting("int8-fit768", "int8", tile=768),
    Setting("int8-fit1024", "int8", tile=1024),
    Setting("int8-fit512-1thread", "int8", tile=512, threads=1),
    Setting("openvino-fp32-fit512", "fp32", "openvino", 512),
    Setting("openvino-int8-fit1024", "int8", "openvino", 1024),
]


def write_images(folder: Path, sizes: list[str]) -> list[Path]:
    """Deterministic JPEG q10 photos (skimage's astronaut, resized) at each size; returns their paths."""
    import cv2
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    paths = []
    for label in sizes:
        h, w = (SIZES | TINY)[label]
        path = folder / f"{label}_q10.jpg"
        cv2.imwrite(str(path), cv2.resize(photo, (w, h), interpolation=cv2.INTER_CUBIC), [cv2.IMWRITE_JPEG_QUALITY, 10])
        paths.append(path)
    return paths


def run_child(setting: Setting, images: list[Path], repeats: int, threads: int, model: str | None) -> dict[str, Any]:
    """Time ``setting`` in this process (the child's side; see module docstring)."""
    import resource

    from common.tiling import TileGrid
    from runtime import Restorer
    from runtime.io import read_image

    t0 = time.perf_counter()
    with Restorer(
        model, backend=setting.backend, tile=setting.tile, precision=setting.precision,
        threads=setting.threads or threads, spin=setting.spin,
    ) as restorer:  # fmt: skip
        load_s = time.perf_counter() - t0
        engine = next(iter(restorer._engines.values()))
        if setting.fixed_grid:
            engine.backend.any_window = False  # the pre-fitting runtime: one core × core window for every image
        pixels = computed = 0
        for path in images:
            grid = restorer._grid(read_image(path).pixels, engine)  # the tiling restore_file will use
            pixels, computed = pixels + grid.height * grid.width, computed + len(grid) * grid.window[0] * grid.window[1]
        passes = []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(repeats + 1):
                t0 = time.perf_counter()
                for path in images:
                    restorer.restore_file(path, Path(tmp) / f"{path.stem}.png")
                if i:  # pass 0 is the warm-up
                    passes.append(time.perf_counter() - t0)
    return {
        "load_s": load_s,
        "passes_s": passes,
        "megapixels": pixels / 1e6,
        "computed_per_output_pixel": computed / pixels,
        "window": list(TileGrid.create(1, 1, engine.core, engine.overlap).window),
        "file": os.path.basename(engine.model.file(setting.precision).onnx),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_once(setting: Setting, images: list[Path], repeats: int, threads: int, model: str | None) -> dict[str, Any]:
    """One child process for ``setting``: its result (or ``error``) and what the machine did meanwhile."""
    child = ["--child", json.dumps(asdict(setting)), "--repeats", str(repeats), "--threads", str(threads)]
    args = [sys.executable, "-m", "benchmarks.cpu_paths", *child, *(["--model", model] if model else []), *images]
    with Contention() as machine:
        proc = subprocess.run(list(map(str, args)), capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {proc.returncode}", **machine.as_dict()}
    return json.loads(proc.stdout.strip().splitlines()[-1]) | machine.as_dict()


def summarise(setting: Setting, runs: list[dict[str, Any]], threads: int) -> dict[str, Any]:
    """One table row from a setting's child runs (all rounds): s/MP over every timed pass, the worst contention."""
    row: dict[str, Any] = {**asdict(setting), "threads": setting.threads or threads, "status": "ok", "reason": ""}
    if errors := [r["error"] for r in runs if "error" in r]:
        return row | {"status": "skipped", "reason": errors[0]}
    passes, mp = [p for r in runs for p in r["passes_s"]], runs[0]["megapixels"]
    foreign = [r["foreign_cores"] for r in runs if r["foreign_cores"] is not None]
    row.update({k: runs[0][k] for k in ("megapixels", "computed_per_output_pixel", "window", "file")})
    row.update(
        passes_s=passes, rounds=len(runs), load_s=statistics.median(r["load_s"] for r in runs),
        peak_rss_mb=max(r["peak_rss_mb"] for r in runs), foreign_cores=max(foreign) if foreign else None,
        busy=any(r["busy"] for r in runs), load_before=runs[0]["load_before"], load_after=runs[-1]["load_after"],
        s_per_mp_min=min(passes) / mp, s_per_mp_median=statistics.median(passes) / mp, s_per_mp_max=max(passes) / mp,
    )  # fmt: skip
    return row


def to_markdown(payload: dict[str, Any]) -> str:
    rows, m = payload["rows"], payload["machine"]
    ok = [r for r in rows if r["status"] == "ok"]
    base = next((r for r in ok if r["name"] == SETTINGS[0].name), None)
    head = (
        f"# CPU paths, end to end ({m['date_utc']})\n\n"
        f"Machine: {m['cpu']}, {m['cpu_count']} logical CPUs; onnxruntime {m['libraries']['onnxruntime']}, "
        f"openvino {m['libraries'].get('openvino') or 'absent'}. Model: {payload['model']}. Images: "
        f"{', '.join(payload['sizes'])} JPEG q10 ({payload['megapixels']:.2f} MP per pass); {payload['rounds']} "
        "rounds over all settings, interleaved; per round and setting a fresh process, one warm-up pass, "
        f"{payload['repeats']} timed. s/MP = seconds per output megapixel (decode, tiles, model, PNG encode); "
        "computed = network pixels per output pixel.\n\n"
    ) + busy_warning(ok)
    table = markdown_table(
        ["setting", "file", "threads", "window ≤", "computed", "s/MP median (min–max)", "speed-up", "load s",
         "peak RSS MB", "others' CPU", "load before→after"],
        [[r["name"], r["file"], r["threads"], "×".join(map(str, r["window"])), f"{r['computed_per_output_pixel']:.2f}×",
          f"{r['s_per_mp_median']:.2f} ({r['s_per_mp_min']:.2f}–{r['s_per_mp_max']:.2f})",
          f"{base['s_per_mp_median'] / r['s_per_mp_median']:.2f}×" if base else None, f"{r['load_s']:.2f}",
          f"{r['peak_rss_mb']:.0f}", contention_cell(r),
          f"{r['load_before']:.2f}→{r['load_after']:.2f}"] for r in ok],
    )  # fmt: skip
    skipped = [r for r in rows if r["status"] != "ok"]
    tail = markdown_table(["setting", "reason"], [[r["name"], r["reason"]] for r in skipped]) if skipped else ""
    return head + table + (f"\n## Skipped\n\n{tail}" if tail else "")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.cpu_paths",
        description="Time the runtime's CPU paths end to end (precision, backend, tile core, threads), one fresh "
        "process per setting, with peak RSS and the machine's load. Writes cpu_paths.json/.md.",
    )
    p.add_argument("images", nargs="*", type=Path, help=argparse.SUPPRESS)  # the child's inputs
    add_output_options(p, "--update-results", RESULTS_DIR)
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES | TINY),
                   help=f"image sizes (default: {' '.join(SIZES)})")  # fmt: skip
    p.add_argument("--settings", nargs="+", choices=[s.name for s in SETTINGS], help="settings (default all)")
    p.add_argument("--rounds", type=int, default=3, help="rounds over all settings, interleaved (default 3)")
    p.add_argument("--repeats", type=int, default=1, help="timed passes per setting and round (default 1)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="ORT/OpenVINO threads (default: all)")
    p.add_argument("--model", help="an .onnx model with its siblings (default: the bundled one)")
    p.add_argument("--allow-busy", action="store_true", help="run even when other processes keep the CPU busy")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("-q", "--quiet", action="store_true", help="no table on stdout")
    a = p.parse_args(argv)
    if a.repeats < 1 or a.threads < 1 or a.rounds < 1:
        p.error("--rounds, --repeats and --threads must be at least 1")
    return a


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, _parse_args(argv))


def run(args: argparse.Namespace) -> int:
    if args.child:
        print(json.dumps(run_child(Setting(**json.loads(args.child)), args.images, args.repeats, args.threads,
                                   args.model)))  # fmt: skip
        return 0
    with Contention() as machine:
        time.sleep(2.0)
    if machine.busy and not args.allow_busy:
        raise CommandFailed(f"other processes are using {machine.foreign_cores:.2f} CPU cores; rerun on a quiet "
                            "machine or pass --allow-busy (rows are then flagged)")  # fmt: skip
    settings = [s for s in SETTINGS if not args.settings or s.name in args.settings]
    with tempfile.TemporaryDirectory(prefix="wcdgan-cpu-") as tmp:
        images = write_images(Path(tmp), args.sizes)
        runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in settings}
        for round_ in range(args.rounds):  # interleaved, order rotated: slow drifts of a shared host hit all alike
            order = settings[round_ % len(settings) :] + settings[: round_ % len(settings)]
            for setting in order:
                runs[setting.name].append(run_once(setting, images, args.repeats, args.threads, args.model))
                if not args.quiet:
                    r = runs[setting.name][-1]
                    said = r.get("error") or f"{statistics.median(r['passes_s']) / r['megapixels']:.2f} s/MP"
                    print(f"round {round_ + 1}/{args.rounds} {setting.name}: {said}", file=sys.stderr)
        rows = [summarise(s, runs[s.name], args.threads) for s in settings]
    megapixels = sum(h * w for h, w in ((SIZES | TINY)[s] for s in args.sizes)) / 1e6
    payload = {
        "machine": machine_info() | {"cpu": cpu_model(), "libraries": library_versions(("onnxruntime", "openvino"))},
        "model": args.model or "bundled default",
        "sizes": args.sizes,
        "megapixels": megapixels,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "rows": rows,
    }
    try:
        paths = write_results(args.output, "cpu_paths", payload, to_markdown(payload))
    except OSError as e:
        raise CommandFailed(f"cannot write results: {e}") from None
    if not args.quiet:
        print_report(to_markdown(payload), paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
