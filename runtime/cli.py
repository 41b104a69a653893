"""What the restoring commands share: their restore options and the :class:`~runtime.settings.RestoreSettings` read
from them (``runtime.infer``, ``runtime.batch``, ``runtime.video``); for the image commands also listing inputs, naming
and planning outputs, restoring one file and the ``--compare`` report; and the console lines — results (one line per
restored file, the run's summary) on stdout, logs, progress, warnings and errors on stderr."""

from __future__ import annotations

import argparse
import dataclasses
import glob
import logging
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from common.cli import UsageError
from common.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from common.log import write_line
from common.tiling import DEFAULT_CORE
from runtime.backends.base import BackendUnavailable
from runtime.backends.catalogue import BACKENDS, CPU_CORE, REMOTE_BACKENDS
from runtime.formats import DEFAULT_MAX_PIXELS, LOSSLESS_SUFFIXES, ImageError
from runtime.model_files import PRECISIONS, ModelError
from runtime.report_types import DEFAULT_FOLDER, REPORT_NAME, RunFacts, floor_percent
from runtime.settings import RestoreSettings, SettingError

# The restorer (OpenCV, tqdm) and the compare output (its drawing and HTML) are imported where they are first used:
# ``--help`` and the argument checks run without them, and a run without --compare never loads the latter (issue 34).
if TYPE_CHECKING:
    from runtime.compare import CompareRun
    from runtime.restorer import FileResult, Restorer

log = logging.getLogger(__name__)

DEFAULT_SUFFIX = "_wcdgan"


def tile_arg(text: str) -> tuple[int, int]:
    """``256`` or ``256x384`` (height × width) → (h, w)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}") from None
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected N or HxW with positive sizes, got {text!r}")
    return (parts[0], parts[-1])


def add_restore_options(p: argparse.ArgumentParser, image_output: bool = True) -> None:
    """The options that the restoring commands share: overwriting, model, backend, tiling, quality, engine cache,
    size limit, strength and -q; with ``image_output`` (``runtime.infer``, ``runtime.batch``; not ``runtime.video``)
    also the output image format and the compare output (--compare, --reference: :func:`compare_folder`). Read back
    by :func:`settings_from_args`."""
    if image_output:
        p.add_argument("--format", default="png", choices=["png", "tiff", "webp", "bmp"],
                       help="output format (lossless)")  # fmt: skip
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
    p.add_argument("--cache-dir", type=Path,
                   help="cache folder: TensorRT engines, and records of the model self-tests passed on this machine "
                   "(a model file is tested once; default: per-user cache)")  # fmt: skip
    p.add_argument("--max-pixels", type=float, default=DEFAULT_MAX_PIXELS / 1e6, metavar="MP",
                   help=f"refuse larger images, checked before decoding (default {DEFAULT_MAX_PIXELS / 1e6:.0f}; "
                   "input and output are held in memory, ~6 bytes per pixel)")  # fmt: skip
    p.add_argument("--strength", type=float, default=1.0, metavar="S",
                   help="apply this fraction of the restoration, 0 < S <= 1: output = input + S x (restored - input), "
                   "rounded; below 1 for a lighter touch (default 1: the full restoration)")  # fmt: skip
    if image_output:
        p.add_argument("--compare", nargs="?", const="", metavar="DIR",
                       help="also write, per input, a side-by-side PNG (input | restored, | original with "
                       "--reference) with zoomed crops where the restoration changed most, and one self-contained "
                       f"HTML report ({REPORT_NAME}: a before/after slider per image, model, precision, backend, "
                       f"time; no network access) into DIR (default: a folder '{DEFAULT_FOLDER}' beside the outputs); "
                       "its path is printed. Skipped inputs are compared with their existing outputs; an earlier "
                       "run's report and pictures there are kept unless -f. Put it after the inputs, or write "
                       "--compare=DIR")  # fmt: skip
        p.add_argument("--reference", type=Path, metavar="DIR",
                       help="with --compare: the originals (same names as the inputs, any image format); the report "
                       "adds PSNR / SSIM / PSNR-B of input and restoration per image and their means")  # fmt: skip
    what = "JPEG input" if image_output else "Motion-JPEG frame"
    p.add_argument("--consistent", action=argparse.BooleanOptionalAction, default=None,
                   help=f"project each restored {what} onto what its own DCT coefficients allow (it re-encodes to "
                   "the same coefficients: it may fill in what quantisation lost, never contradict the file) and "
                   "print the share of luma coefficients that do. Default: on for "
                   f"{'8-bit JPEG inputs; other inputs are restored as they are' if image_output else 'Motion JPEG'}"
                   " and the result line says so; --consistent refuses "
                   f"{'other inputs' if image_output else 'other codecs'}; --no-consistent: off (measured: "
                   "benchmarks/results/consistency.md)")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bars, per-file lines or summary; errors only")  # fmt: skip


def max_pixels_of(args: argparse.Namespace) -> int:
    """``--max-pixels`` (megapixels) as the pixel count the commands refuse more than: rounded, so that an image or
    frame exactly at the limit passes (0.004056 × 1e6 is 4055.999… in floating point)."""
    return round(args.max_pixels * 1e6)


def settings_from_args(args: argparse.Namespace, **fields: object) -> RestoreSettings:
    """The settings given by the options of :func:`add_restore_options` and ``--threads`` (plus ``fields``, e.g.
    ``device_id``), validated with ``--quality`` before any model is loaded; UsageError names the bad option."""
    from runtime.restorer import check_quality

    try:
        check_quality(args.quality)
    except ValueError as e:
        raise UsageError(f"--quality: {e}") from None
    if not math.isfinite(args.max_pixels):
        raise UsageError(f"--max-pixels must be a finite number of megapixels, got {args.max_pixels}")
    try:
        return RestoreSettings(
            backend=args.backend, tile=args.tile, overlap=args.overlap, batch=args.batch, precision=args.precision,
            threads=args.threads, spin={"auto": None, "on": True, "off": False}[args.spin], cache_dir=args.cache_dir,
            max_pixels=max_pixels_of(args), server=args.url, remote_model=args.remote_model,
            strength=args.strength, consistent=args.consistent, **fields,
        )  # fmt: skip
    except SettingError as e:
        raise UsageError(e.for_cli()) from None


def open_restorer(model: str | None, settings: RestoreSettings) -> Restorer:
    """``Restorer.from_settings``; a model or backend that cannot load is a UsageError (one line, exit 2)."""
    from runtime.restorer import Restorer

    try:
        return Restorer.from_settings(settings, model)
    except SettingError as e:
        raise UsageError(e.for_cli()) from None
    except (ModelError, BackendUnavailable, ValueError, TypeError) as e:
        raise UsageError(str(e)) from None


def log_backend(restorer: Restorer, verbose: bool) -> None:
    """Log which backend runs and why the others were skipped (all of them when ``verbose``, else those worth telling:
    their library is installed)."""
    reasons = restorer.skipped_backends if verbose else restorer.notable_skips
    log.info("backend: %s%s", restorer.backend_name, "".join(f"\n  ({s})" for s in reasons))


def collect_inputs(patterns: list[str], skip_suffix: str = "") -> tuple[list[Path], list[str]]:
    """Expand files, folders and globs (in order, without duplicates) → (image paths, error messages).

    Folder images whose name ends with ``skip_suffix`` are earlier outputs and are left out.
    """
    found: dict[Path, None] = {}  # ordered, and a set: folders of a million files stay linear
    errors: list[str] = []
    for pattern in patterns:
        path = Path(pattern)
        problem = path_problem(path)
        if problem:
            errors.append(f"{pattern}: {problem}")
            continue
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
        videos = [p for p in matches if p.suffix.lower() in VIDEO_SUFFIXES]
        errors.extend(
            f"{p}: a video: restore it with python -m runtime.video {shlex.quote(str(p))} OUTPUT" for p in videos
        )
        found.update(dict.fromkeys(p for p in matches if p not in videos))
    return list(found), errors


def output_paths(inputs: list[Path], args: argparse.Namespace) -> list[Path]:
    """Where each input's restoration goes (``--help`` of runtime.infer): ``args.output``, ``.format``, ``.suffix``."""
    ext = "." + args.format
    out = args.output
    _check_output_names(out, args.suffix)
    tag = strength_tag(args.strength)
    if getattr(args, "output_is_folder", False):  # -o new.png/: a folder, whatever its name looks like
        return [out / (p.stem + tag + ext) for p in inputs]
    if out is None:  # the tag before the suffix: a folder run still knows these as earlier outputs
        return [p.with_name(p.stem + tag + args.suffix + ext) for p in inputs]
    if _output_is_one_file(out, len(inputs)):
        return [out]
    return [out / (p.stem + tag + ext) for p in inputs]


def _check_output_names(out: Path | None, suffix: str) -> None:
    """UsageError when the file system refuses ``-o`` as a name, or ``--suffix`` is not a plain file-name part."""
    if out is not None and (problem := path_problem(out)):
        raise UsageError(f"-o {out}: {problem}")
    if out is None and (Path(suffix).name != suffix or "\0" in suffix):
        raise UsageError(f"--suffix {suffix!r}: must be a plain file-name part (no folder separators)")


def _output_is_one_file(out: Path, count: int) -> bool:
    """Whether ``-o out`` names the output file of the single input (else it is the outputs' folder); UsageError
    when it names a lossy image file, one file for ``count`` > 1 inputs, or an existing file that is no folder."""
    named_file = not out.is_dir() and out.suffix.lower() in (*IMAGE_SUFFIXES, ".gif")
    if named_file and out.suffix.lower() not in LOSSLESS_SUFFIXES:
        raise UsageError(f"-o {out}: {out.suffix} is lossy; outputs are lossless: {', '.join(LOSSLESS_SUFFIXES)}")
    if named_file and count > 1:
        raise UsageError(f"-o {out} names one file but there are {count} inputs: give a folder")
    if count == 1 and not out.is_dir() and out.suffix:
        return True
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder (several inputs need an output folder)")
    return False


def strength_tag(strength: float) -> str:
    """What the names :func:`output_paths` derives carry for ``--strength`` below 1 (``_strength0.6``; "" at full
    strength), so that runs at different strengths into one folder each keep their own files."""
    return "" if strength >= 1 else f"_strength{strength:g}"


@dataclass(frozen=True)
class FilePlan:
    """One input and its output; ``error`` (it cannot be restored) or ``skip`` (its output exists) say why not;
    ``picture``: its ``--compare`` picture (:func:`plan_compare`)."""

    src: Path
    dst: Path
    error: str | None = None
    skip: str | None = None
    picture: Path | None = None


def plan_files(inputs: list[Path], outputs: list[Path], overwrite: bool) -> list[FilePlan]:
    """Pair inputs with outputs, refusing outputs that are inputs or another input's output, and skipping existing
    outputs unless ``overwrite``."""
    resolved_inputs = {resolved_path(p) for p in inputs}
    seen: set[Path] = set()
    plans = []
    for src, dst in zip(inputs, outputs, strict=True):
        target = resolved_path(dst)
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


def plan_compare(
    folder: Path | None, plans: list[FilePlan], args: argparse.Namespace, manifest: Path | None = None
) -> list[FilePlan]:
    """``plans`` with the ``--compare`` picture of each input to compare (restored, or skipped: its existing output
    is compared) in ``folder`` (None: no --compare, ``plans`` as they are). UsageError, before any work, when a
    compare file (a picture, the report) or the folder would be, or be under, an input, an output, an original of
    ``--reference`` or the ``manifest`` (runtime.batch), or when a compare file exists and ``-f`` is not given: an
    earlier run's report and pictures are kept."""
    if folder is None:
        return plans
    from runtime.compare import picture_paths

    compared = [plan for plan in plans if not plan.error]
    taken = _paths_of_run(plans, compared, args.reference, manifest)
    _check_compare_folder(folder, taken)
    pictures = picture_paths(folder, [plan.src for plan in compared])
    _check_compare_files(folder, pictures, taken)
    _check_no_earlier_compare(folder, pictures, args.overwrite)
    by_src = dict(zip((plan.src for plan in compared), pictures, strict=True))
    return [dataclasses.replace(plan, picture=by_src.get(plan.src)) for plan in plans]


def _paths_of_run(
    plans: list[FilePlan], compared: list[FilePlan], reference: Path | None, manifest: Path | None
) -> dict[Path, str]:
    """Every resolved path the run reads or writes → what it is to the run ("an input", "an output", ...): the
    ``manifest``, the inputs, the ``--reference`` originals of the ``compared`` plans and the outputs."""
    from runtime.compare import find_reference

    references = [find_reference(reference, plan.src) for plan in compared] if reference else []
    taken = {resolved_path(manifest): "the manifest"} if manifest else {}
    taken |= {resolved_path(plan.src): "an input" for plan in plans}
    taken |= {resolved_path(p): "an original of --reference" for p in references if p is not None}
    taken |= {resolved_path(plan.dst): "an output" for plan in plans}
    return taken


def _check_compare_folder(folder: Path, taken: dict[Path, str]) -> None:
    """UsageError when the compare ``folder`` is, or is under, a path the run reads or writes (``taken``)."""
    where = resolved_path(folder)
    for path in (where, *where.parents):
        if path in taken:
            raise UsageError(f"--compare {folder}: {path} is {taken[path]} of this run, not a folder for the report")


def _check_compare_files(folder: Path, pictures: list[Path], taken: dict[Path, str]) -> None:
    """UsageError when a compare picture or the report would replace a path the run reads or writes (``taken``)."""
    for path in (*pictures, folder / REPORT_NAME):
        what = taken.get(resolved_path(path))
        if what:
            raise UsageError(f"--compare {folder}: {path.name} would replace {what} of this run; choose another DIR")


def _check_no_earlier_compare(folder: Path, pictures: list[Path], overwrite: bool) -> None:
    """UsageError when the report or a compare picture exists and ``overwrite`` (-f) is not given."""
    existing = [path for path in (folder / REPORT_NAME, *pictures) if _exists(path)]
    if existing and not overwrite:
        raise UsageError(f"--compare {folder}: {existing[0].name} exists ({len(existing)} compare file(s) of an "
                         "earlier run): -f replaces them, or choose another DIR")  # fmt: skip


def resolved_path(path: Path) -> Path:
    """``path.resolve()``, or its absolute form when the file system refuses the name (too long, a link loop)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # Python < 3.13 raises RuntimeError for a symbolic link loop
        return path.absolute()


def path_problem(path: Path) -> str | None:
    """Why the file system refuses ``path`` as a name (too long, a symbolic link loop, …), or None: it exists, or
    it does not and could be created."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None  # a file where a folder is expected: the caller's checks say so
    except OSError as e:
        return e.strerror or str(e)
    return None


class OutputAction(argparse.Action):
    """Stores an output path as a Path and remembers whether it was written with a trailing separator
    (``-o new.png/``: a folder), which Path drops."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: object,
                 option_string: str | None = None) -> None:  # fmt: skip
        setattr(namespace, self.dest, Path(value))
        namespace.output_is_folder = str(value).endswith(("/", os.sep))


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False  # a name the file system refuses: restore_one reports it


def restore_one(
    restorer: Restorer, plan: FilePlan, quality: int | None, quiet: bool, compare: CompareRun | None = None
) -> FileResult | None:
    """Restore one file, print its result line on stdout (not when ``quiet``) and add it to ``compare`` (as
    ``plan.picture``); log its error (one line, no traceback) and return None when it (or its comparison) fails."""
    start = time.perf_counter()
    try:
        result = restorer.restore_file(plan.src, plan.dst, quality)
    except Exception as e:  # a bad file or a backend failing on one image must not stop a folder run
        log.error("error: %s", failure_message(plan.src, e))
        return None
    seconds = time.perf_counter() - start
    if not quiet:
        print_result(result_line(plan.src, result, seconds, restorer.settings.strength))
    facts = RunFacts(result.model, result.precision, result.backend, seconds, restorer.settings.strength,
                     result.consistent)  # fmt: skip
    return result if compare is None or compare_one(compare, plan, facts) else None


def compare_folder(args: argparse.Namespace, outputs: list[Path]) -> Path | None:
    """Where ``--compare`` writes (its DIR, or :func:`runtime.compare.default_folder` of the first output); None
    without it. UsageError, before any work, for --reference without --compare or not a folder, and a DIR that is
    a file."""
    if args.reference is not None and args.compare is None:
        raise UsageError("--reference needs --compare (the metrics are part of the compare report)")
    if args.reference is not None and not args.reference.is_dir():
        raise UsageError(f"--reference {args.reference}: no such folder")
    if args.compare is None:
        return None
    from runtime.compare import default_folder

    folder = default_folder(outputs[0]) if args.compare == "" else Path(args.compare)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--compare {folder}: not a folder (--compare takes an optional DIR: put it after the "
                         "inputs, or write --compare=DIR)")  # fmt: skip
    return folder


def open_compare(folder: Path | None, args: argparse.Namespace) -> CompareRun | None:
    """The run's :class:`~runtime.compare.CompareRun` in ``folder`` (None: no --compare), with --reference and
    --max-pixels; a folder that cannot be made is a UsageError."""
    if folder is None:
        return None
    from runtime.compare import CompareRun

    try:
        return CompareRun(folder, args.reference, max_pixels=max_pixels_of(args))
    except (ValueError, OSError) as e:
        raise UsageError(f"--compare {folder}: {e}") from None


def compare_one(compare: CompareRun, plan: FilePlan, facts: RunFacts) -> bool:
    """Add a written restoration (``plan.dst``) to the compare output as ``plan.picture``; log its error (one
    line) and return whether that worked."""
    try:
        compare.add(plan.src, plan.dst, facts, plan.picture)
    except Exception as e:  # the restoration is written; only its comparison failed (e.g. a reference's size)
        log.error("error: %s (compare)", failure_message(plan.src, e))
        return False
    return True


def print_report(compare: CompareRun | None, quiet: bool) -> None:
    """The compare report's path, a result line on stdout (after the run: the report is written on closing)."""
    if compare is not None and not quiet:
        print_result(f"compare report: {compare.folder / REPORT_NAME}")
    if compare is not None and (existing := compare.existing):
        log.info("the report shows %d existing output(s) as they are (their inputs were skipped; -f restores them "
                 "again)", existing)  # fmt: skip


def result_line(src: Path, result: FileResult, seconds: float, strength: float = 1.0) -> str:
    """``SRC (JPEG q10) → DST  [default int8, 4 tiles, 1.2 s]``: what was restored, into what, by which model (with
    ``, strength 0.6`` below full strength, and ``, consistent 99.98 %`` where the projection ran: the share of luma
    coefficients true to the file; else ``, not projected: not a JPEG`` (why not))."""
    quality = f"JPEG {result.jpeg_quality}" if result.jpeg_quality else "not a JPEG"
    tiles = f"{result.tiles} tile{'' if result.tiles == 1 else 's'}"
    ran = f"{result.model} {result.precision}, {tiles}, {seconds:.1f} s"
    if strength < 1:
        ran += f", strength {strength:g}"
    if result.consistent is not None:
        ran += f", consistent {floor_percent(result.consistent)}"
    elif result.unprojected:
        ran += f", not projected: {result.unprojected}"
    return f"{src} ({quality}) → {result.output}  [{ran}]"


def not_jpeg_note(sources: list[Path]) -> str:
    """The note for restored inputs that are not JPEG files ("" when none): the model removes JPEG artifacts, so an
    image never JPEG-compressed has none to remove and only loses detail; one JPEG-compressed earlier and saved
    losslessly (a screenshot of a JPEG, a JPEG converted to PNG) still gains. Restored anyway: the file cannot tell."""
    if not sources:
        return ""
    which = f"{sources[0]} is" if len(sources) == 1 else f"{len(sources)} inputs ({sources[0]}, ...) are"
    return (
        f"note: {which} not JPEG: no JPEG artifacts to remove unless JPEG-compressed before (a JPEG saved as PNG); "
        "on a clean image the restoration only smooths detail (--strength below 1: a lighter touch)"
    )


def print_result(line: str) -> None:
    """One result line on stdout, between the progress bars on stderr."""
    write_line(line, sys.stdout)


def failure_message(src: Path, error: Exception) -> str:
    """One line naming ``src`` and why restoring it failed: the message of the runtime's own errors (bad image,
    out of memory, bad model), else the exception's type and message."""
    from runtime.restorer import OutOfMemory

    if isinstance(error, ImageError | OutOfMemory | ModelError):
        return str(error) if str(src) in str(error) else f"{src}: {error}"
    return f"{src}: restoration failed ({type(error).__name__}: {error})"


@dataclass
class Summary:
    """Counts of a run and its summary line (a result: stdout)."""

    restored: int = 0
    skipped: int = 0
    failed: int = 0
    megapixels: float = 0.0
    start: float = field(default_factory=time.perf_counter)

    def line(self, excluded: float = 0.0) -> str:
        """``3 restored, 1 skipped, 0 failed in 4.2 s: 1.23 MP, 3.41 s/MP``; ``excluded``: seconds of the run spent
        on ``--compare``, left out of the time and the rate and named after them (``; --compare 0.8 s``)."""
        seconds = time.perf_counter() - self.start - excluded
        rate = f"{seconds / self.megapixels:.2f} s/MP" if self.megapixels else "no pixels restored"
        compare = f"; --compare {excluded:.1f} s" if excluded else ""
        return (f"{self.restored} restored, {self.skipped} skipped, {self.failed} failed in {seconds:.1f} s: "
                f"{self.megapixels:.2f} MP, {rate}{compare}")  # fmt: skip
