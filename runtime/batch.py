"""Bulk restoration on Ray Data: ``python -m runtime.batch SRC... DST [options]`` (needs the ``[ray]`` extra).

Inputs are listed on the driver with the rules of ``runtime.infer`` (plus manifests of paths), paired with outputs
named as ``runtime.infer -o DST`` names them, and restored by a fixed pool of Ray actors that each hold one
:class:`Restorer`, built once. Each actor reads its inputs and writes its outputs itself (atomically, through
:meth:`Restorer.restore_file`), so SRC and DST must be visible at the same paths on every node of a cluster.

Exit codes: 0 every input restored or skipped (its output exists), 1 at least one input failed (the others were
still processed), 2 usage error (bad option, no inputs, bad model, Ray missing, another job on DST), 130/143
interrupted (Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock
import numpy as np

from common.cli import UsageError, exit_missing_extra, run_cli
from common.files import sweep_stale_temps
from common.interrupts import interrupt_on_signal
from runtime import ray_reaper
from runtime.backends.base import BackendUnavailable, first_line
from runtime.cli import (
    DEFAULT_SUFFIX,
    FilePlan,
    OutputAction,
    Summary,
    add_restore_options,
    collect_inputs,
    compare_folder,
    compare_one,
    failure_message,
    open_compare,
    output_paths,
    path_problem,
    plan_compare,
    plan_files,
    print_report,
    print_result,
    resolved_path,
    settings_from_args,
)
from runtime.compare import CompareRun, RunFacts
from runtime.io import ImageError
from runtime.model_files import ModelError
from runtime.report_types import floor_percent
from runtime.restorer import Restorer, check_writable
from runtime.settings import RestoreSettings

log = logging.getLogger(__spec__.name)

try:
    import ray
    import ray.data
except ModuleNotFoundError as e:  # a missing extra: one line, not a traceback
    exit_missing_extra(e, __name__, "ray")

DESCRIPTION = f"""\
Restore many JPEG-compressed images with a pool of Ray actors, on this machine or on a Ray cluster.

SRC: image files, folders (their images, not recursive; images named *{DEFAULT_SUFFIX}.* are left out as earlier
outputs), glob patterns, or manifests: a .txt file of paths (one a line, # comments; relative paths are relative to
the manifest's folder) or a .parquet file with a "path" column. DST: the output folder (outputs are <name>.png),
or an output file for a single input. Naming, skipping and refusals are those of python -m runtime.infer -o DST:
existing outputs are skipped unless --overwrite, so a rerun resumes; inputs are never overwritten.

Each actor builds one Restorer (the model is loaded once per actor) and restores one file at a time; outputs are
written atomically, and temporaries left by killed workers are removed when the next job on DST starts (one job
per DST at a time: a lock file in DST). A bad file is an error row in the manifest and never stops the job.

With --compare the driver reads back each restored file as its row arrives and adds it to the compare output
(pictures and report.html in DST/compare unless --compare=DIR); a skipped file is compared with its existing output.

The manifest (JSON lines, appended, one row per input of each run): input, output, status (ok, skipped or error),
jpeg_quality (estimated; null if not a JPEG), model, precision, backend, seconds, megapixels, error, consistent
(where the projection ran — --consistent, on for JPEG inputs by default: the share of luma DCT coefficients that
quantise to the file's values; else null).

Without --address Ray starts on this machine (all its cores; --actors x --threads CPUs are reserved). With
--address auto (a cluster started by `ray start` on this node) or ray://HEAD:10001 the job runs on the cluster:
every node needs this toolkit installed and SRC/DST at the same paths. GPU actors: --gpus-per-actor 1 (one actor
per GPU) or 0.5 (two per GPU); auto picks the GPU backends where a GPU is assigned.
"""
MANIFEST_NAME = "wcdgan-manifest.jsonl"
LOCK_NAME = ".wcdgan-batch.lock"
MAX_BLOCKS = 10_000  # rows are spread over this many blocks at most: small enough for the driver to track
SETUP_FAILED = "setup-failed"  # an actor's status for every row when its Restorer could not be built
FIELDS = (
    "input", "output", "status", "jpeg_quality", "model", "precision", "backend", "seconds", "megapixels", "error",
    "consistent",
)  # fmt: skip
FIELDS_BEFORE_CONSISTENT = set(FIELDS) - {"consistent"}  # manifests written before --consistent: resumed alike


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runtime.batch", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("sources", nargs="+", metavar="SRC", help="image files, folders, glob patterns or manifests")
    p.add_argument("output", action=OutputAction, metavar="DST",
                   help="output folder (or output file for a single input; trailing /: a folder)")  # fmt: skip
    p.add_argument("--manifest", type=Path,
                   help=f"per-file results, appended to a .jsonl file that is new, empty or a manifest of an earlier "
                   f"run (default: DST/{MANIFEST_NAME})")  # fmt: skip
    add_restore_options(p)
    p.add_argument("--actors", type=int, help="actors in the pool (default: all that fit the CPUs or GPUs)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads per actor for ort-cpu, and the CPUs each actor reserves (default 1)")  # fmt: skip
    p.add_argument("--gpus-per-actor", type=float, default=0.0, metavar="F",
                   help="GPUs each actor reserves: 1, or a fraction to share one (default 0: CPU actors)")  # fmt: skip
    p.add_argument("--address", help="Ray cluster to join: auto, or ray://HEAD:10001 (default: start Ray here)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also Ray's own notices and progress log, and why each backend, precision and model was "
                   "chosen")  # fmt: skip
    p.set_defaults(suffix=DEFAULT_SUFFIX)  # output_paths' rule for outputs next to inputs; DST is always given
    return p


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Plan on the driver, restore the remaining files on Ray, append the manifest and print the summary."""
    settings = check_batch_options(args)
    inputs, errors = list_or_refuse(args.sources)
    outputs = output_paths(inputs, args)
    folder = outputs[0].parent
    manifest_path = args.manifest or folder / MANIFEST_NAME
    check_manifest(manifest_path, inputs, args.sources)
    check_model(args.model, settings)  # a bad model is a usage error here, before any file, not in every actor
    pictures = compare_folder(args, outputs)
    tally = Tally(failed=len(errors))
    with job_lock(folder), contextlib.ExitStack() as stack:
        # planned under the lock (which outputs exist), before the manifest or the compare folder is created
        plans = plan_compare(pictures, plan_files(inputs, outputs, args.overwrite), args, manifest_path)
        manifest = stack.enter_context(Manifest(manifest_path))
        compare = stack.enter_context(open_compare(pictures, args) or contextlib.nullcontext())
        record_unrestored(plans, manifest, compare, tally)
        todo = [plan for plan in plans if not (plan.error or plan.skip)]
        restore_remaining(todo, args, settings, manifest, compare, tally)
    return finish(tally, compare, args.quiet)


def list_or_refuse(sources: list[str]) -> tuple[list[Path], list[str]]:
    """:func:`list_inputs`, with every error logged; UsageError "no input images" when none is left."""
    inputs, errors = list_inputs(sources)
    for message in errors:
        log.error("error: %s", message)
    if not inputs:
        raise UsageError("no input images")
    return inputs, errors


def record_unrestored(plans: list[FilePlan], manifest: Manifest, compare: CompareRun | None, tally: Tally) -> None:
    """Write the manifest row of each plan that is not restored (an error or a skip) and tally it; compare the
    existing output of each skipped plan (a failed comparison counts as failed)."""
    for plan in plans:
        if plan.error or plan.skip:
            error = plan.error and f"{plan.src}: {plan.error}"
            tally.add(manifest.write(row(plan, "error" if error else "skipped", error=error)))
        if plan.skip and compare is not None:  # its existing output is compared as it is
            tally.failed += not compare_one(compare, plan, RunFacts.existing_output())


def restore_remaining(
    todo: list[FilePlan],
    args: argparse.Namespace,
    settings: RestoreSettings,
    manifest: Manifest,
    compare: CompareRun | None,
    tally: Tally,
) -> None:
    """Restore ``todo`` on Ray, appending and tallying each row as it arrives and comparing each restored file;
    a Ray failure counts the files without a row as failed (logged: a rerun resumes). Temporaries of killed
    workers are swept before and after, whatever happens."""
    targets = [plan.dst for plan in todo]
    sweep_stale_temps(targets)  # left by killed workers
    done = 0
    try:
        if todo:
            by_input = {str(plan.src): plan for plan in todo}
            with ray_session(args) as actors:
                for result in restore_on_ray(todo, args, settings, actors):
                    tally.add(manifest.write(result))
                    done += 1
                    if compare is not None and result["status"] == "ok":
                        plan = by_input[result["input"]]
                        tally.failed += not compare_row(compare, plan, result, settings.strength)
    except ray.exceptions.RayError as e:  # the pool could not start, or Ray itself failed
        tally.failed += len(todo) - done
        log.error("error: the Ray job failed, rerun to resume (%s)", last_line(e))
    finally:  # interrupted: workers killed mid-write leave temporaries
        sweep_stale_temps(targets)


def finish(tally: Tally, compare: CompareRun | None, quiet: bool) -> int:
    """Print the summary line (not when ``quiet``), the compare report and the failure count; return the exit code
    (1 if any input failed, else 0)."""
    if not quiet:
        print_result(tally.summary())
    print_report(compare, quiet)
    if tally.failed:
        print(f"{tally.failed} input(s) failed", file=sys.stderr)
    return 1 if tally.failed else 0


@contextlib.contextmanager
def job_lock(folder: Path) -> Iterator[None]:
    """Hold DST's lock file (created with the folder if needed) and remove it at the end, with the folders it
    created if they are left empty (a job refused under the lock leaves nothing); raise UsageError if another job
    holds it or DST cannot be written."""
    lock = filelock.FileLock(str(folder / LOCK_NAME), timeout=0)
    created = [path for path in (folder, *folder.parents) if not os.path.lexists(path)]  # the deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except filelock.Timeout:
        raise UsageError(f"another runtime.batch job is writing to {folder} (lock {folder / LOCK_NAME})") from None
    except OSError as e:
        raise UsageError(f"{folder}: cannot write the outputs there ({e.strerror or e})") from None
    try:
        yield
    finally:
        # removed while held: a job that opened it meanwhile finds it unlinked once it holds it, and takes a new one
        (folder / LOCK_NAME).unlink(missing_ok=True)
        lock.release()
        with contextlib.suppress(OSError):  # stops at the first folder that holds something
            for path in created:
                path.rmdir()


def compare_row(compare: CompareRun, plan: FilePlan, result: dict[str, Any], strength: float) -> bool:
    """Add the restoration of ``plan``, an ``ok`` manifest row, to the compare output (on the driver, while the
    actors go on); False (logged) when its comparison failed."""
    facts = RunFacts(result["model"], result["precision"], result["backend"], result["seconds"], strength,
                     result.get("consistent"))  # fmt: skip
    return compare_one(compare, plan, facts)


def check_manifest(path: Path, inputs: list[Path], sources: list[str]) -> None:
    """UsageError unless rows may be appended to ``path``: a ``.jsonl`` file (so never an image or a list of
    paths), none of the inputs or sources, and new, empty or ours (its first line one of our rows)."""
    problem = path_problem(path)
    if problem:
        raise UsageError(f"--manifest {path}: {problem}")
    if path.suffix.lower() != ".jsonl" or path.is_dir():
        raise UsageError(f"--manifest {path}: must be a .jsonl file (rows are appended as JSON lines)")
    target = resolved_path(path)
    names = {path.name, target.name}  # compared by name first: folders of a million inputs
    if any(target == resolved_path(Path(p)) for p in [*inputs, *sources] if Path(p).name in names):
        raise UsageError(f"--manifest {path}: is an input; refusing to append to it")
    if path.exists() and not is_manifest(path):
        raise UsageError(f"--manifest {path}: exists and is not a manifest of runtime.batch; refusing to append to it")
    try:
        check_writable(path)  # before DST is created
    except ImageError as e:
        raise UsageError(f"--manifest {e}") from None


def is_manifest(path: Path) -> bool:
    """Whether ``path`` is empty (a job killed before its first row) or starts with a row of :data:`FIELDS`."""
    try:
        with open(path, "rb") as f:
            first = f.readline(1 << 20)
        return not first or set(json.loads(first)) in (set(FIELDS), FIELDS_BEFORE_CONSISTENT)
    except (OSError, ValueError, TypeError, RecursionError):
        return False


def check_model(model: str | None, settings: RestoreSettings) -> None:
    """Load the model here once on the CPU, as runtime.infer does (junk or truncated ONNX, a sidecar that does not
    match, a failed self-test: UsageError); skipped for Triton (the server holds the model) and when no CPU
    backend is installed here (the actors then check it)."""
    if settings.backend == "triton":
        return
    backend = settings.backend if settings.backend in ("ort-cpu", "openvino") else "ort-cpu"
    try:
        Restorer.from_settings(dataclasses.replace(settings, backend=backend, batch=None, threads=1), model).close()
    except BackendUnavailable as e:
        log.debug("model not checked on the driver (%s); each actor checks it", first_line(e))
    except (ModelError, ValueError, TypeError) as e:
        raise UsageError(str(e)) from None


def last_line(error: BaseException) -> str:
    """The last line of a Ray error: the original exception's type and message."""
    lines = str(error).strip().splitlines()
    return lines[-1] if lines else type(error).__name__


def check_batch_options(args: argparse.Namespace) -> RestoreSettings:
    """The actors' Restorer settings; UsageError for invalid options (those shared with runtime.infer, --threads
    included, by :func:`runtime.cli.settings_from_args`)."""
    settings = settings_from_args(args)
    if args.actors is not None and args.actors < 1:
        raise UsageError(f"--actors must be at least 1, got {args.actors}")
    if not args.address and (args.actors or 1) * args.threads > (os.cpu_count() or 1):
        raise UsageError(
            f"--actors {args.actors or 1} × --threads {args.threads} needs more CPUs than this machine has "
            f"({os.cpu_count()}); Ray here cannot hold the pool"
        )
    if not 0 <= args.gpus_per_actor <= 1:  # a Restorer uses one GPU
        raise UsageError(f"--gpus-per-actor must be in 0..1, got {args.gpus_per_actor:g}")
    if args.address:
        check_reachable(args.address)
    return settings


def list_inputs(sources: list[str]) -> tuple[list[Path], list[str]]:
    """Expand sources like :func:`runtime.cli.collect_inputs` (as ``runtime.infer`` does), reading ``.txt``/``.parquet``
    manifests of paths; returns (paths in order without duplicates, error messages). Paths in manifests are not
    checked here: a missing one is an error row of the job."""
    found: dict[Path, None] = {}
    errors: list[str] = []
    for source in sources:
        path = Path(source)
        if path.is_file() and path.suffix.lower() in (".txt", ".parquet"):
            try:
                found.update(dict.fromkeys(read_manifest(path)))
            except (OSError, ValueError, KeyError) as e:
                errors.append(f"{path}: cannot read the manifest ({e})")
        else:
            paths, problems = collect_inputs([source], DEFAULT_SUFFIX)
            found.update(dict.fromkeys(paths))
            errors += problems
    return list(found), errors


def read_manifest(path: Path) -> list[Path]:
    """The paths listed in a ``.txt`` (one a line, ``#`` comments) or ``.parquet`` (column ``path``) manifest,
    relative ones taken from the manifest's folder."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq  # comes with ray[data]

        names = [str(name) for name in pq.read_table(path, columns=["path"]).column("path").to_pylist()]
    else:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        names = [name for name in names if name and not name.startswith("#")]
    return [path.parent / name for name in names]  # an absolute name replaces the folder


def row(plan: FilePlan, status: str, **fields: Any) -> dict[str, Any]:
    """A manifest row (all of :data:`FIELDS`; those not given are null)."""
    return {**dict.fromkeys(FIELDS), "input": str(plan.src), "output": str(plan.dst), "status": status, **fields}


class RestoreActor:
    """The Ray Data callable class: one :class:`Restorer` per actor, built once; each call restores a batch of
    ``input``/``output`` rows and returns their manifest rows as JSON strings (column ``result``).

    An actor whose Restorer cannot be built (backend missing on that node, bad model) answers every row with status
    :data:`SETUP_FAILED` and the reason, rather than dying: the driver stops the job with one line, not Ray's
    tracebacks of actor restarts. The Restorer is closed when the actor ends (Ray Data deletes its callable as the
    pool shuts down, which calls ``__del__``), or by :meth:`close`.
    """

    def __init__(self, model: str | None, settings: RestoreSettings, quality: int | None) -> None:
        self.quality = quality
        self.restorer: Restorer | None = None
        try:
            self.restorer = Restorer.from_settings(settings, model)
        except (ModelError, BackendUnavailable, ValueError, TypeError) as e:
            self.setup_error = str(e)

    def close(self) -> None:
        """Release the Restorer's backends (sessions, GPU memory) now. Idempotent."""
        if getattr(self, "restorer", None) is not None:
            self.restorer.close()

    def __del__(self) -> None:
        self.close()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        plans = [FilePlan(Path(src), Path(dst)) for src, dst in zip(batch["input"], batch["output"], strict=True)]
        return {"result": [json.dumps(self.restore(plan)) for plan in plans]}

    def restore(self, plan: FilePlan) -> dict[str, Any]:
        if self.restorer is None:
            return row(plan, SETUP_FAILED, error=self.setup_error)
        start = time.perf_counter()
        try:
            result = self.restorer.restore_file(plan.src, plan.dst, self.quality)
        except Exception as e:  # a bad file, or a backend failing on one image, is one error row
            seconds = time.perf_counter() - start
            return row(plan, "error", backend=self.restorer.backend_name, seconds=seconds,
                       error=failure_message(plan.src, e))  # fmt: skip
        return row(
            plan, "ok", jpeg_quality=result.jpeg_quality and result.jpeg_quality.quality, model=result.model,
            precision=result.precision, backend=result.backend,
            seconds=time.perf_counter() - start, megapixels=math.prod(result.size) / 1e6, consistent=result.consistent,
        )  # fmt: skip


@contextlib.contextmanager
def ray_session(args: argparse.Namespace) -> Iterator[int]:
    """``ray.init`` here (``address="local"``, never a cluster named by RAY_ADDRESS, its processes ended with the job
    by :mod:`runtime.ray_reaper`) or on ``--address``, yield the pool size (--actors, or
    all that fit), and shut Ray down. Ray's own notices only with ``-v``. Raises UsageError when Ray runs here and
    cannot hold the pool."""
    start = time.perf_counter()
    notices = {} if args.verbose else {"logging_level": logging.ERROR, "log_to_driver": False}
    logging.getLogger("ray.data").setLevel(logging.INFO if args.verbose else logging.ERROR)
    with contextlib.ExitStack() as stack:
        if args.address:
            where = {"address": args.address}
        else:
            repo = str(Path(__file__).resolve().parents[1])  # workers import this checkout, installed or not
            path = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
            where = {"address": "local", "num_cpus": os.cpu_count() or 1, "include_dashboard": False,
                     "runtime_env": {"env_vars": {"PYTHONPATH": path}},
                     **stack.enter_context(private_ray_root())}  # fmt: skip
        try:
            with noticed_signals() as received:
                ray.init(**where, **notices)
        except SystemExit:  # Ray's own SIGTERM handler, installed during the start, exits: interrupted all the same
            raise KeyboardInterrupt(signal.SIGTERM) from None
        except ConnectionError as e:
            raise UsageError(f"--address {args.address}: cannot join Ray there ({last_line(e)})") from None
        signal.signal(signal.SIGTERM, interrupt_on_signal)  # again: ray.init installs its own handler
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                if sig in received:  # its exception was swallowed somewhere inside ray.init: interrupted all the same
                    raise KeyboardInterrupt(sig)
            actors = pool_size(args, ray.cluster_resources())
            gpus = f", {args.gpus_per_actor:g} GPU each" if args.gpus_per_actor else ""
            log.info("Ray on %s, started in %.1f s: %d actor(s) × %d thread(s)%s", args.address or "this machine",
                     time.perf_counter() - start, actors, args.threads, gpus)  # fmt: skip
            yield actors
        finally:
            ray.shutdown()


@contextlib.contextmanager
def private_ray_root() -> Iterator[dict[str, str]]:
    """``ray.init``'s arguments for a Ray that belongs to this job: a root folder of its own, watched by
    :mod:`runtime.ray_reaper`, which ends Ray's processes and removes the folder however the driver ends (a
    SIGKILL included). Linux only; elsewhere Ray's defaults."""
    if not sys.platform.startswith("linux"):
        yield {}
        return
    root = tempfile.mkdtemp(prefix="wcdgan-ray-")  # short: Ray's socket paths under it must fit 107 bytes
    reaper = subprocess.Popen([sys.executable, str(Path(__file__).with_name("ray_reaper.py")), root],
                              stdin=subprocess.PIPE, start_new_session=True)  # fmt: skip
    previous = os.environ.get(ray_reaper.MARKER)
    os.environ[ray_reaper.MARKER] = root  # inherited by every process Ray starts: how the reaper finds them all
    try:
        yield {"_temp_dir": root}
    finally:
        if previous is None:
            os.environ.pop(ray_reaper.MARKER, None)
        else:
            os.environ[ray_reaper.MARKER] = previous
        reaper.stdin.close()  # the reaper ends what ray.shutdown left
        with contextlib.suppress(subprocess.TimeoutExpired):
            reaper.wait(timeout=30)


@contextlib.contextmanager
def noticed_signals() -> Iterator[set[int]]:
    """The signals that arrive in the block (filled in at its end), whatever their handlers did with them: Python
    writes each one's number to the wakeup fd before running the handler."""
    received: set[int] = set()
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    try:
        yield received
    finally:
        signal.set_wakeup_fd(previous)
        with contextlib.suppress(BlockingIOError):
            received.update(os.read(read_end, 4096))
        os.close(read_end)
        os.close(write_end)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """UsageError unless ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``; ``auto`` is not checked) accepts a
    connection within ``timeout_s``: a wrong address fails in seconds, not after Ray's minutes of retries."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise UsageError(f"--address {address}: no Ray there ({e.strerror or e})") from None


def pool_size(args: argparse.Namespace, resources: dict[str, float]) -> int:
    """--actors, or as many as the cluster's CPUs (and GPUs) hold; UsageError if Ray runs here and cannot hold them
    (a cluster may scale up: a warning)."""
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    fit = int(min(cpus // args.threads, gpus // args.gpus_per_actor if args.gpus_per_actor else math.inf))
    if args.actors is None:
        return max(fit, 1)
    if args.actors > fit:
        message = (f"{args.actors} actor(s) need {args.actors * args.threads} CPUs and "
                   f"{args.actors * args.gpus_per_actor:g} GPUs; Ray has {cpus:g} and {gpus:g}")  # fmt: skip
        if not args.address:
            raise UsageError(message)
        log.warning("%s: waiting for the cluster to scale up", message)
    return args.actors


def restore_on_ray(
    todo: list[FilePlan], args: argparse.Namespace, settings: RestoreSettings, actors: int
) -> Iterator[dict[str, Any]]:
    """Restore ``todo`` on a fixed pool of ``actors`` :class:`RestoreActor` and yield each file's manifest row as
    it ends (in completion order)."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = not args.quiet and (args.verbose or sys.stderr.isatty())  # bars: terminals only
    context.print_on_execution_start = args.verbose
    items = [{"input": str(plan.src), "output": str(plan.dst)} for plan in todo]
    with warnings.catch_warnings():  # max_restarts has no named parameter (Ray 2.60 deprecates the catch-all)
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset = ray.data.from_items(items, override_num_blocks=min(len(items), MAX_BLOCKS)).map_batches(
            RestoreActor,
            fn_constructor_kwargs={"model": args.model, "settings": settings, "quality": args.quality},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=args.threads,
            num_gpus=args.gpus_per_actor or None,
            max_restarts=0,  # a crashed actor fails the job (rerun to resume): its constructor arguments would be
        )  # gone for a restart anyway (Ray says so on the console otherwise)
    for result in dataset.iter_rows():
        result = json.loads(result["result"])
        if result["status"] == SETUP_FAILED:
            raise UsageError(result["error"])
        yield result


class Manifest:
    """Appends rows as JSON lines, one ``write`` call per row, so a killed job leaves whole rows."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Manifest:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o666)
        except OSError as e:
            raise UsageError(f"--manifest {self.path}: cannot write it ({e.strerror or e})") from None
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def write(self, result: dict[str, Any]) -> dict[str, Any]:
        os.write(self.fd, (json.dumps(result, ensure_ascii=False) + "\n").encode())
        return result


class Tally(Summary):
    """The run's :class:`~runtime.cli.Summary`, counted from manifest rows (logging each error as it comes)."""

    def __init__(self, failed: int = 0) -> None:
        super().__init__(failed=failed)
        self.backends: set[str] = set()
        self.least_consistent: float | None = None  # the lowest share of the restored files that were projected
        self.projected = 0

    def add(self, result: dict[str, Any]) -> None:
        self.restored += result["status"] == "ok"
        self.skipped += result["status"] == "skipped"
        self.megapixels += result["megapixels"] or 0.0
        self.backends.add(result["backend"])
        if result.get("consistent") is not None:
            self.least_consistent = min(result["consistent"], self.least_consistent or 1.0)
            self.projected += 1
        if result["status"] == "error":
            self.failed += 1
            log.error("error: %s", result["error"])

    def summary(self) -> str:
        backends = ", ".join(sorted(filter(None, self.backends))) or "none"
        consistent = "; none projected onto its JPEG"
        if self.least_consistent is not None:
            consistent = f"; {self.projected} projected, consistent ≥ {floor_percent(self.least_consistent)}"
        return f"{self.line()} (Ray start included; backend: {backends}{consistent})"


if __name__ == "__main__":
    from runtime.batch import main as batch_main  # the module's own name, so that Ray ships RestoreActor by name

    sys.exit(batch_main())
