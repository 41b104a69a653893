"""Command line: restore JPEG-compressed images.  ``python -m runtime.infer INPUT... [-o OUT] [options]``

Exit codes: 0 every input restored (or skipped because its output exists), 1 at least one input failed (the
others were still processed), 2 usage error (bad option, no inputs, model or backend unavailable), 130/143/129
interrupted (Ctrl-C / SIGTERM / SIGHUP; nothing partial is left behind).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from common.cli import UsageError, run_cli
from runtime.cli import (
    DEFAULT_SUFFIX,
    FilePlan,
    OutputAction,
    Summary,
    add_restore_options,
    collect_inputs,
    compare_folder,
    compare_one,
    log_backend,
    not_jpeg_note,
    open_compare,
    open_restorer,
    output_paths,
    plan_compare,
    plan_files,
    print_report,
    print_result,
    restore_one,
    settings_from_args,
)
from runtime.report_types import RunFacts

if TYPE_CHECKING:  # imported when a run needs them (runtime.cli): --help and argument errors load neither
    from runtime.compare import CompareRun
    from runtime.restorer import Restorer

log = logging.getLogger(__spec__.name)

DESCRIPTION = """\
Remove JPEG compression artifacts with WCDGAN. Inputs are files, folders (their images, not recursive) or glob
patterns; any format OpenCV reads (JPEG, PNG, WebP, BMP, TIFF; a GIF named explicitly: its first frame). EXIF
orientation is applied, alpha is kept, 16-bit images stay 16-bit. Outputs are lossless PNG named <name><suffix>.png
next to each input, or in -o DIR (named <name>.png), or -o FILE (.png, .tiff, .webp, .bmp) for a single input;
below full --strength the names carry it (<name>_strength0.6.png in -o DIR), so runs at different strengths keep
their own files. Inputs are never overwritten; existing outputs are skipped unless --overwrite; a killed run leaves
no partial file. Which backend runs is printed; -v also says why the others were skipped. The estimated JPEG
quality of each input is printed and, with a folder of per-quality models (--model DIR), picks the model trained on
the nearest quality.

Console: results on stdout (one line per restored file: input, JPEG quality, output, model, precision, tiles,
seconds, strength below 1, and the share of luma coefficients true to the JPEG where the projection ran
(--consistent: on for JPEG inputs by default) or why it did not; with several inputs a summary line; with --compare
the report's path), logs, progress bars, warnings and errors on stderr. -v also says why each backend, precision
and model was chosen; -q prints errors only.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runtime.infer", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("-o", "--output", action=OutputAction,
                   help="output folder, or output file for a single input (trailing /: a folder)")  # fmt: skip
    p.add_argument("--suffix", default=DEFAULT_SUFFIX,
                   help="added to the names of outputs written next to inputs; folder images ending with it "
                   f"are skipped as earlier outputs (default {DEFAULT_SUFFIX})")  # fmt: skip
    add_restore_options(p)
    p.add_argument("--threads", type=int, help="CPU threads for ort-cpu (default: one per core)")
    p.add_argument("--device-id", type=int, default=0, help="GPU ordinal (default 0)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also say why each backend, precision and model was chosen (and why other backends were "
                   "skipped)")  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, build_parser().parse_args(argv))


def collect_images(patterns: list[str], suffix: str) -> tuple[list[Path], list[str]]:
    """Expand the command line's inputs; return (images, errors), with every error already logged.

    Raises UsageError when nothing can run: the one reason for a single unusable input, else "no input images".
    """
    inputs, errors = collect_inputs(patterns, suffix)
    if not inputs and len(errors) == 1:  # one input, and the reason it cannot run: one line
        raise UsageError(errors[0])
    for message in errors:
        log.error("error: %s", message)
    if not inputs:
        raise UsageError("no input images")
    return inputs, errors


def process_plan(
    plan: FilePlan,
    restorer: Restorer,
    compare: CompareRun | None,
    args: argparse.Namespace,
    summary: Summary,
    not_jpeg: list[Path],
) -> None:
    """Handle one planned file: log its planning error, skip it (still comparing an existing output) or restore it.

    Counts the outcome in ``summary``; appends the input to ``not_jpeg`` when it was restored but is not a JPEG.
    """
    if plan.error:
        log.error("error: %s: %s", plan.src, plan.error)
        summary.failed += 1
    elif plan.skip:
        log.info("skipped %s: %s", plan.src, plan.skip)
        summary.skipped += 1
        if compare is not None and not compare_one(compare, plan, RunFacts.existing_output()):
            summary.failed += 1
    elif result := restore_one(restorer, plan, args.quality, args.quiet, compare):
        summary.restored += 1
        summary.megapixels += math.prod(result.size) / 1e6
        if result.jpeg_quality is None:
            not_jpeg.append(plan.src)
    else:
        summary.failed += 1


def finish(summary: Summary, compare: CompareRun | None, not_jpeg: list[Path], inputs_seen: int, quiet: bool) -> int:
    """Print the not-a-JPEG note, the summary line (several inputs, not quiet), the compare report and the
    failure count; return the exit code (1 if any input failed, else 0)."""
    if note := not_jpeg_note(not_jpeg):
        log.info("%s", note)
    if inputs_seen > 1 and not quiet:
        print_result(summary.line(excluded=compare.seconds if compare else 0.0))
    print_report(compare, quiet)
    if summary.failed:
        print(f"{summary.failed} input(s) failed", file=sys.stderr)
    return 1 if summary.failed else 0


def files_bar(plans: list[FilePlan], quiet: bool) -> Iterable[FilePlan]:
    """``plans``, behind a progress bar over files when there are several and not ``quiet`` (tqdm is imported only
    then: one image restores without it)."""
    if quiet or len(plans) < 2:
        return plans
    from tqdm import tqdm

    return tqdm(plans, unit="file", disable=None)  # None: no bar when stderr is not a terminal


def run(args: argparse.Namespace) -> int:
    """Restore every input the command line names; return the exit code (0 all done or skipped, 1 a failure)."""
    settings = settings_from_args(args, device_id=args.device_id, progress=not args.quiet)
    inputs, errors = collect_images(args.inputs, args.suffix)
    outputs = output_paths(inputs, args)
    folder = compare_folder(args, outputs)
    plans = plan_compare(folder, plan_files(inputs, outputs, args.overwrite), args)
    summary = Summary(failed=len(errors))
    not_jpeg: list[Path] = []
    with (
        open_restorer(args.model, settings) as restorer,
        open_compare(folder, args) or contextlib.nullcontext() as compare,
    ):
        log_backend(restorer, args.verbose)
        for plan in files_bar(plans, args.quiet):
            process_plan(plan, restorer, compare, args, summary, not_jpeg)
    return finish(summary, compare, not_jpeg, len(plans) + len(errors), args.quiet)


if __name__ == "__main__":
    sys.exit(main())
