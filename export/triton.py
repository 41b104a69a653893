"""``python -m export.triton``: an exported model as a Triton Inference Server model repository.

Writes ``REPO/NAME/1/model.onnx`` (or ``model.plan``, a TensorRT engine from the engine cache),
``REPO/NAME/config.pbtxt`` and ``REPO/NAME/model.json`` (the sidecar: what a client needs to tile and
colour-convert). The model takes the runtime's fixed window, ``C × (core + 2·overlap)²`` per item, with Triton's
batch dimension in front: every image becomes a stream of windows of one shape, which the server's dynamic batcher
merges across requests and clients.

The configuration is built as Triton's own ``ModelConfig`` protobuf message (the schema ``tritonclient`` ships), so a
field name or enum Triton would reject fails here, not in the server's log.

    python -m export.triton --model runtime/weights/default.onnx -o model_repository/
    docker run --rm -p8000:8000 -p8001:8001 -v $PWD/model_repository:/models nvcr.io/nvidia/tritonserver:<tag>-py3 \\
        tritonserver --model-repository=/models
    python -m runtime.infer photo.jpg --backend triton --url localhost:8000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common.cli import CommandFailed, UsageError, exit_missing_extra, run_cli

try:
    import onnx  # noqa: F401 (checked here: export.onnx_check needs it)
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb
except ModuleNotFoundError as e:  # a missing extra: one line, not a traceback
    exit_missing_extra(e, __name__, "triton")

from common.files import check_plain_name
from common.tiling import DEFAULT_CORE, MAX_OVERLAP, MAX_TILE, window_grid
from export.onnx_check import load_checked
from runtime.model_files import ModelError, resolve_models
from runtime.spec import ModelSpec

_TYPES = {"float32": pb.TYPE_FP32, "float16": pb.TYPE_FP16}
# Option ranges: beyond them a value is a typo (or overflows the config's integer fields), not a deployment.
MAX_BATCH, MAX_INSTANCES, MAX_QUEUE_DELAY_US = 4096, 256, 60_000_000


class TargetExists(FileExistsError):
    """The repository entry exists and overwriting was not asked for."""


@dataclass
class RepositoryOptions:
    """What the repository entry serves: window geometry, batching and instances (see ``--help``)."""

    tile: int = DEFAULT_CORE
    overlap: int | None = None
    max_batch: int = 16
    preferred_batches: tuple[int, ...] = (4, 8, 16)
    queue_delay_us: int = 2000
    instances: int = 1
    gpu: bool = True
    trt_fp16_accelerator: bool = False
    plan: Path | None = None  # a TensorRT engine to serve instead of the ONNX


def model_config(spec: ModelSpec, name: str, window: tuple[int, int], opts: RepositoryOptions) -> pb.ModelConfig:
    """Triton's ``ModelConfig`` for ``spec`` served as ``name`` on ``window``-shaped tiles."""
    dims = [spec.channels, *window]
    config = pb.ModelConfig(
        name=name,
        platform="tensorrt_plan" if opts.plan else "onnxruntime_onnx",
        max_batch_size=opts.max_batch,
        input=[pb.ModelInput(name=spec.input_name, data_type=_TYPES[spec.input_dtype], dims=dims)],
        output=[pb.ModelOutput(name=spec.output_name, data_type=_TYPES[spec.output_dtype], dims=dims)],
        dynamic_batching=pb.ModelDynamicBatching(
            preferred_batch_size=[b for b in opts.preferred_batches if b <= opts.max_batch],
            max_queue_delay_microseconds=opts.queue_delay_us,
        ),
        instance_group=[
            pb.ModelInstanceGroup(
                count=opts.instances,
                kind=pb.ModelInstanceGroup.KIND_GPU if opts.gpu else pb.ModelInstanceGroup.KIND_CPU,
            )
        ],
    )
    if opts.trt_fp16_accelerator and not opts.plan:  # ONNX Runtime's TensorRT execution provider, in FP16
        accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
        accelerator.parameters["precision_mode"] = "FP16"
    return config


def write_repository(
    onnx_path: Path, repo: Path, name: str | None, opts: RepositoryOptions, overwrite: bool = False
) -> Path:
    """Write the repository entry for the model at ``onnx_path``; returns ``repo/NAME``.

    Everything is checked before anything is written: the name (one plain folder name, :func:`check_plain_name`),
    the graph against its sidecar (:func:`export.onnx_check.load_checked`) and the configuration against Triton's
    schema. The entry is staged in a hidden folder of ``repo`` and renamed into place whole; an existing entry is
    replaced only with ``overwrite``. Raises ModelError (bad model or name), TargetExists, OSError."""
    model = resolve_models(onnx_path).models[0]
    file = model.file("auto", "gpu" if opts.gpu else "cpu")  # FP16 for a GPU server, INT8 for a CPU one, if exported
    spec = file.spec
    try:
        name = check_plain_name(name, "--name") if name is not None else check_plain_name(model.name, "sidecar name")
    except ValueError as e:  # the model's name, whichever precision is served
        raise ModelError(str(e)) from None
    if not opts.plan:
        load_checked(file.onnx, spec)
    window = window_grid(opts.tile, spec.recommended_overlap, opts.overlap).window
    text = text_format.MessageToString(model_config(spec, name, window, opts))
    text_format.Parse(text, pb.ModelConfig())  # the schema check: what Triton itself parses
    entry = repo / name
    if os.path.lexists(entry) and not overwrite:
        raise TargetExists(f"{entry} exists (use -f/--overwrite to replace it)")
    repo.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=repo))
    try:
        source, target = (opts.plan, "model.plan") if opts.plan else (file.onnx, "model.onnx")
        (staged / "1").mkdir()
        shutil.copyfile(source, staged / "1" / target)
        (staged / "config.pbtxt").write_text(text, encoding="utf-8")
        (staged / "model.json").write_text(spec.to_json(), encoding="utf-8")
        _replace_entry(staged, entry)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return entry


def _replace_entry(staged: Path, entry: Path) -> None:
    """Rename ``staged`` to ``entry``; an existing entry is moved aside first and deleted after (a link or file
    there is removed itself, never followed)."""
    old = None
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISDIR(os.lstat(entry).st_mode):
            old = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".old", dir=entry.parent))
            os.replace(entry, old / entry.name)
        else:
            entry.unlink()
    os.replace(staged, entry)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, RepositoryOptions]:
    p = argparse.ArgumentParser(
        prog="python -m export.triton",
        description="Write an exported WCDGAN model (.onnx + sidecar, or a TensorRT engine with --plan) as a Triton "
        "Inference Server model repository entry: NAME/1/model.onnx|plan, config.pbtxt (checked against Triton's "
        "ModelConfig schema), model.json. Clients: python -m runtime.infer --backend triton --url HOST:PORT.",
    )
    p.add_argument("--model", type=Path, required=True, help="exported .onnx (with its .json sidecar)")
    p.add_argument("-o", "--output", type=Path, required=True, help="model repository folder (created)")
    p.add_argument("--name", help="model name on the server, a plain folder name (default: the sidecar's name)")
    p.add_argument("-f", "--overwrite", action="store_true", help="replace an existing entry of that name")
    p.add_argument(
        "--tile",
        type=int,
        default=DEFAULT_CORE,
        help=f"tile core of the clients, as runtime --tile (default {DEFAULT_CORE})",
    )
    p.add_argument("--overlap", type=int, help="context per side, as runtime --overlap (default: the sidecar's)")
    p.add_argument("--max-batch", type=int, default=16, help=f"windows per server batch, 1..{MAX_BATCH} (default 16)")
    p.add_argument("--queue-delay-us", type=int, default=2000,
                   help=f"dynamic batcher wait, 0..{MAX_QUEUE_DELAY_US} µs (default 2000)")  # fmt: skip
    p.add_argument("--instances", type=int, default=1,
                   help=f"model instances per device, 1..{MAX_INSTANCES} (default 1)")  # fmt: skip
    p.add_argument("--cpu", action="store_true", help="CPU instances (default: GPU) and the INT8 graph if exported")
    p.add_argument("--trt-fp16", action="store_true", help="ONNX: run through ONNX Runtime's TensorRT EP in FP16")
    p.add_argument("--plan", type=Path, help="serve this TensorRT engine (runtime.cache list shows them) instead")
    a = p.parse_args(argv)
    ranges = (
        ("--max-batch", a.max_batch, 1, MAX_BATCH), ("--instances", a.instances, 1, MAX_INSTANCES),
        ("--queue-delay-us", a.queue_delay_us, 0, MAX_QUEUE_DELAY_US), ("--tile", a.tile, 16, MAX_TILE),
        ("--overlap", a.overlap, 0, MAX_OVERLAP),
    )  # fmt: skip
    for option, value, lo, hi in ranges:
        if value is not None and not lo <= value <= hi:
            p.error(f"{option} must be in {lo}..{hi}, got {value}")
    if a.output.exists() and not a.output.is_dir():
        p.error(f"-o {a.output}: exists and is not a folder")
    if a.name is not None:
        try:
            check_plain_name(a.name, "--name")
        except ValueError as e:
            p.error(str(e))
    opts = RepositoryOptions(
        tile=a.tile, overlap=a.overlap, max_batch=a.max_batch, queue_delay_us=a.queue_delay_us,
        instances=a.instances, gpu=not a.cpu, trt_fp16_accelerator=a.trt_fp16, plan=a.plan,
    )  # fmt: skip
    return a, opts


def main(argv: list[str] | None = None) -> int:
    args, opts = _parse_args(argv)
    return run_cli(lambda a: run(a, opts), args)


def run(args: argparse.Namespace, opts: RepositoryOptions) -> int:
    """Write the repository entry and print where (stdout); UsageError / CommandFailed for :func:`run_cli`."""
    if opts.plan is not None and not opts.plan.is_file():
        raise UsageError(f"--plan {opts.plan}: no such file")
    try:
        entry = write_repository(args.model, args.output, args.name, opts, args.overwrite)
    except (ModelError, TargetExists) as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise CommandFailed(f"cannot write the repository: {e}") from None
    print(f"wrote {entry}: serve with tritonserver --model-repository={args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
