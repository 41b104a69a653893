"""Command line: restore JPEG-compressed images.  ``python -m runtime.infer INPUT... [-o OUT] [options]``

Exit codes: 0 every input restored (or skipped because its output exists), 1 at least one input failed (the
others were still processed), 2 usage error (bad option, no inputs, model or backend unavailable), 130/143
interrupted (Ctrl-C / SIGTERM; nothing partial is left behind).
"""

from __future__ import annotations

import argparse
import glob
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from common.log import cli_logging
from common.tiling import DEFAULT_CORE
from runtime.backends.base import BackendUnavailable
from runtime.backends.select import BACKENDS, CPU_CORE, REMOTE_BACKENDS
from runtime.io import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, LOSSLESS_SUFFIXES, ImageError
from runtime.model_files import PRECISIONS, ModelError
from runtime.restorer import OutOfMemory, Restorer, check_quality, check_settings

log = logging.getLogger(__spec__.name)

DESCRIPTION = """\
Remove JPEG compression artifacts with WCDGAN. Inputs are files, folders (their images, not recursive) or
glob patterns; any format OpenCV reads (JPEG, PNG, WebP, BMP, TIFF; a GIF named explicitly: its first frame).
EXIF orientation is applied, alpha is kept, 16-bit images stay 16-bit. Outputs are lossless PNG named
<name><suffix>.png next to each input, or in -o DIR (named <name>.png), or -o FILE (.png, .tiff, .webp, .bmp)
for a single input. Inputs are never overwritten; existing outputs are skipped unless --overwrite; a killed run
leaves no partial file. Which backend runs is printed; -v also says why the others were skipped. The
estimated JPEG quality of each input is printed and, with a folder of per-quality models (--model DIR),
picks the model trained on the nearest quality.
"""


DEFAULT_SUFFIX = "_wcdgan"


class UsageError(Exception):
    """Exit 2 with this message."""


def tile_arg(text: str) -> tuple[int, int]:
    """``256`` or ``256x384`` (height × width) → (h, w)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}") from None
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected N or HxW with positive sizes, got {text!r}")
    return (parts[0], parts[-1])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runtime.infer", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("-o", "--output", type=Path, help="output folder, or output file for a single input")
    p.add_argument("--suffix", default=DEFAULT_SUFFIX,
                   help="added to the names of outputs written next to inputs; folder images ending with it "
                   f"are skipped as earlier outputs (default {DEFAULT_SUFFIX})")  # fmt: skip
    add_restore_options(p)
    p.add_argument("--threads", type=int, help="CPU threads for ort-cpu (default: one per core)")
    p.add_argument("--device-id", type=int, default=0, help="GPU ordinal (default 0)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also say why backends that are not installed were skipped")  # fmt: skip
    return p


def add_restore_options(p: argparse.ArgumentParser) -> None:
    """The options that ``runtime.infer`` and ``runtime.batch`` share: output format, overwriting, model, backend,
    tiling, quality, engine cache, size limit and -q. Read back by :func:`restorer_options`."""
    p.add_argument("--format", default="png", choices=["png", "tiff", "webp", "bmp"], help="output format (lossless)")
    p.add_argument("-f", "--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    p.add_argument("--model", help="an .onnx model (with its .json sidecar) or a folder of models; default: bundled")
    p.add_argument(
        "--backend", default="auto", choices=["auto", *BACKENDS, *REMOTE_BACKENDS],
        help="auto: the fastest that loads, tensorrt > ort-cuda > ort-cpu > openvino; triton: a Triton server (--url)",
    )  # fmt: skip
    p.add_argument("--url", help="--backend triton: the server, HOST:PORT (HTTP) or grpc://HOST:PORT")
    p.add_argument("--remote-model", help="--backend triton: the model's name on the server (default: the model's)")
    p.add_argument("--tile", type=tile_arg,
                   help=f"tile core size N or HxW, rounded up to 16; on the CPU the largest, fitted to each image "
                   f"(default on the CPU {CPU_CORE['int8']} for INT8 graphs, {CPU_CORE['fp32']} for FP32; "
                   f"{DEFAULT_CORE} on GPU backends and Triton)")  # fmt: skip
    p.add_argument("--precision", default="auto", choices=["auto", *PRECISIONS],
                   help="which exported graph runs: auto = INT8 > FP32 on the CPU, FP16 > FP32 on GPUs")  # fmt: skip
    p.add_argument("--overlap", type=int, help="context pixels per tile side (default: the model's recommendation)")
    p.add_argument("--batch", type=int, help="tiles per call (default: 4 on GPU backends, 1 on the CPU)")
    p.add_argument("--spin", choices=["auto", "on", "off"], default="auto",
                   help="ONNX Runtime CPU threads busy-wait between tasks: faster on a quiet machine, slower on a busy "
                   "one (auto: on unless the load average at start is above half the CPUs)")  # fmt: skip
    p.add_argument("--quality", type=int, help="JPEG quality to assume for choosing a model (default: estimated)")
    p.add_argument("--cache-dir", type=Path, help="TensorRT engine cache folder (default: per-user cache)")
    p.add_argument("--max-pixels", type=float, default=DEFAULT_MAX_PIXELS / 1e6, metavar="MP",
                   help=f"refuse larger images, checked before decoding (default {DEFAULT_MAX_PIXELS / 1e6:.0f}; "
                   "input and output are held in memory, ~6 bytes per pixel)")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or per-file lines; errors only")


def restorer_options(args: argparse.Namespace) -> dict[str, Any]:
    """:class:`Restorer` keyword arguments from the options of :func:`add_restore_options` and ``--threads``."""
    return {
        "model": args.model, "backend": args.backend, "tile": args.tile, "overlap": args.overlap,
        "batch": args.batch, "precision": args.precision, "threads": args.threads, "cache_dir": args.cache_dir,
        "spin": {"auto": None, "on": True, "off": False}[args.spin],
        "max_pixels": round(args.max_pixels * 1e6), "server": args.url, "remote_model": args.remote_model,
    }  # fmt: skip


def collect_inputs(patterns: list[str], skip_suffix: str = "") -> tuple[list[Path], list[str]]:
    """Expand files, folders and globs (in order, without duplicates) → (image paths, error messages).

    Folder images whose name ends with ``skip_suffix`` are earlier outputs and are left out.
    """
    found: dict[Path, None] = {}  # ordered, and a set: folders of a million files stay linear
    errors: list[str] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            matches = [p for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
            matches = [p for p in matches if not (skip_suffix and p.stem.endswith(skip_suffix))]
            if not matches:
                errors.append(f"{path}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        elif path.is_file():
            matches = [path]
        else:
            matches = [Path(m) for m in sorted(glob.glob(pattern)) if Path(m).is_file()]
            if not matches:
                errors.append(f"{pattern}: no such file, folder or matching files")
        found.update(dict.fromkeys(matches))
    return list(found), errors


def output_paths(inputs: list[Path], args: argparse.Namespace) -> list[Path]:
    """Where each input's restoration goes (see --help)."""
    ext = "." + args.format
    out = args.output
    named_file = out is not None and not out.is_dir() and out.suffix.lower() in (*IMAGE_SUFFIXES, ".gif")
    if named_file and out.suffix.lower() not in LOSSLESS_SUFFIXES:
        raise UsageError(f"-o {out}: {out.suffix} is lossy; outputs are lossless: {', '.join(LOSSLESS_SUFFIXES)}")
    if named_file and len(inputs) > 1:
        raise UsageError(f"-o {out} names one file but there are {len(inputs)} inputs: give a folder")
    if out is not None and len(inputs) == 1 and not out.is_dir() and out.suffix:
        return [out]
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder (several inputs need an output folder)")
    if out is None:
        return [p.with_name(p.stem + args.suffix + ext) for p in inputs]
    return [out / (p.stem + ext) for p in inputs]


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, build_parser().parse_args(argv))


def run_cli(run_fn: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """A CLI's ``run_fn(args)`` as the toolkit's commands behave: logging by ``-q``, SIGTERM handled like Ctrl-C
    (outputs are atomic, so nothing partial remains), UsageError → exit 2, interruption → 128 + signal."""
    previous = signal.signal(signal.SIGTERM, interrupt_on_signal)
    try:
        with cli_logging(args.quiet):
            return run_fn(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print("interrupted: outputs written so far are complete; nothing partial was left", file=sys.stderr)
        return 128 + (e.args[0] if e.args else signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupt_on_signal(signum: int, frame: object) -> None:
    """A signal handler that turns SIGTERM into KeyboardInterrupt(signum): cleaned up like Ctrl-C."""
    raise KeyboardInterrupt(signum)


def run(args: argparse.Namespace) -> int:
    check_options(args)
    inputs, errors = collect_inputs(args.inputs, args.suffix)
    for message in errors:
        log.error("error: %s", message)
    if not inputs:
        raise UsageError("no input images")
    plans = plan_files(inputs, output_paths(inputs, args), args.overwrite)
    try:
        restorer = Restorer(**restorer_options(args), device_id=args.device_id, progress=not args.quiet)
    except (ModelError, BackendUnavailable, ValueError, TypeError) as e:
        raise UsageError(_option_names(str(e))) from None
    reasons = restorer.skipped_backends if args.verbose else restorer.notable_skips
    log.info("backend: %s%s", restorer.backend_name, "".join(f"\n  ({s})" for s in reasons))
    failed = len(errors)
    for plan in tqdm(plans, unit="file", disable=True if args.quiet or len(plans) < 2 else None):
        if plan.error:
            log.error("error: %s: %s", plan.src, plan.error)
            failed += 1
        elif plan.skip:
            log.info("skipped %s: %s", plan.src, plan.skip)
        else:
            failed += not restore_one(restorer, plan.src, plan.dst, args)
    if failed:
        print(f"{failed} input(s) failed", file=sys.stderr)
    return 1 if failed else 0


def check_options(args: argparse.Namespace) -> None:
    """Raise UsageError for an invalid --quality or Restorer setting, before any model is loaded."""
    try:
        check_quality(args.quality)
    except ValueError as e:
        raise UsageError(f"--quality: {e}") from None
    o = restorer_options(args)
    try:  # device 0: --device-id is checked by the Restorer
        check_settings(o["tile"], o["overlap"], o["batch"], 0, o["threads"], o["max_pixels"], o["precision"])
    except ValueError as e:
        raise UsageError(_option_names(str(e))) from None


@dataclass(frozen=True)
class FilePlan:
    """One input and its output; ``error`` (it cannot be restored) or ``skip`` (its output exists) say why not."""

    src: Path
    dst: Path
    error: str | None = None
    skip: str | None = None


def plan_files(inputs: list[Path], outputs: list[Path], overwrite: bool) -> list[FilePlan]:
    """Pair inputs with outputs, refusing outputs that are inputs or another input's output, and skipping existing
    outputs unless ``overwrite``."""
    resolved_inputs = {_resolved(p) for p in inputs}
    seen: set[Path] = set()
    plans = []
    for src, dst in zip(inputs, outputs, strict=True):
        target = _resolved(dst)
        if target in resolved_inputs:
            plans.append(FilePlan(src, dst, error=f"output {dst} is an input; refusing to overwrite it"))
        elif target in seen:
            plans.append(FilePlan(src, dst, error=f"output {dst} is also another input's output (same name)"))
        elif _exists(dst) and not overwrite:
            plans.append(FilePlan(src, dst, skip=f"{dst} exists (use --overwrite)"))
        else:
            plans.append(FilePlan(src, dst))
        seen.add(target)
    return plans


def _resolved(path: Path) -> Path:
    """``path.resolve()``, or its absolute form when the file system refuses the name (too long)."""
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False  # a name the file system refuses: restore_one reports it


def _option_names(message: str) -> str:
    """The Restorer's parameter names in a message, spelled as the CLI's options."""
    for name in ("tile", "overlap", "batch", "threads", "device_id", "max_pixels"):
        message = message.replace(f"{name} must", f"--{name.replace('_', '-')} must")
    return message


def restore_one(restorer: Restorer, src: Path, dst: Path, args: argparse.Namespace) -> bool:
    """Restore one file; log its error (one line, no traceback) and return whether it succeeded."""
    start = time.perf_counter()
    try:
        result = restorer.restore_file(src, dst, args.quality)
    except Exception as e:  # a bad file or a backend failing on one image must not stop a folder run
        log.error("error: %s", failure_message(src, e))
        return False
    quality = f"JPEG {result.jpeg_quality}" if result.jpeg_quality else "not a JPEG"
    seconds = time.perf_counter() - start
    log.info("%s (%s) → %s  [%s, %d tiles, %.1f s]", src, quality, dst, result.model, result.tiles, seconds)
    return True


def failure_message(src: Path, error: Exception) -> str:
    """One line naming ``src`` and why restoring it failed: the message of the runtime's own errors (bad image,
    out of memory, bad model), else the exception's type and message."""
    if isinstance(error, ImageError | OutOfMemory | ModelError):
        return str(error) if str(src) in str(error) else f"{src}: {error}"
    return f"{src}: restoration failed ({type(error).__name__}: {error})"


if __name__ == "__main__":
    sys.exit(main())
