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
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from common.cli import CommandFailed, UsageError, exit_missing_extra, run_cli

try:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb
except ModuleNotFoundError as e:  # a missing extra: one line, not a traceback
    exit_missing_extra(e, __name__, "triton")

from common.files import atomic_path, atomic_write_text
from common.tiling import DEFAULT_CORE, window_grid
from runtime.model_files import ModelError, resolve_models
from runtime.spec import ModelSpec

_TYPES = {"float32": pb.TYPE_FP32, "float16": pb.TYPE_FP16}


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


def write_repository(onnx_path: Path, repo: Path, name: str | None, opts: RepositoryOptions) -> Path:
    """Write the repository entry for the model at ``onnx_path``; returns ``repo/NAME``. Raises ModelError."""
    model = resolve_models(onnx_path).models[0]
    file = model.file("auto", "gpu" if opts.gpu else "cpu")  # FP16 for a GPU server, INT8 for a CPU one, if exported
    spec = file.spec
    name = name or model.name  # the model's name, whichever precision is served
    window = window_grid(opts.tile, spec.recommended_overlap, opts.overlap).window
    config = model_config(spec, name, window, opts)
    text = text_format.MessageToString(config)
    text_format.Parse(text, pb.ModelConfig())  # the schema check: what Triton itself parses
    entry = repo / name
    source, target = (opts.plan, "model.plan") if opts.plan else (file.onnx, "model.onnx")
    with atomic_path(entry / "1" / target) as tmp:
        shutil.copyfile(source, tmp)
    atomic_write_text(entry / "config.pbtxt", text)
    atomic_write_text(entry / "model.json", spec.to_json())
    return entry


def _parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, RepositoryOptions]:
    p = argparse.ArgumentParser(
        prog="python -m export.triton",
        description="Write an exported WCDGAN model (.onnx + sidecar, or a TensorRT engine with --plan) as a Triton "
        "Inference Server model repository entry: NAME/1/model.onnx|plan, config.pbtxt (checked against Triton's "
        "ModelConfig schema), model.json. Clients: python -m runtime.infer --backend triton --url HOST:PORT.",
    )
    p.add_argument("--model", type=Path, required=True, help="exported .onnx (with its .json sidecar)")
    p.add_argument("-o", "--output", type=Path, required=True, help="model repository folder (created)")
    p.add_argument("--name", help="model name on the server (default: the sidecar's name)")
    p.add_argument(
        "--tile",
        type=int,
        default=DEFAULT_CORE,
        help=f"tile core of the clients, as runtime --tile (default {DEFAULT_CORE})",
    )
    p.add_argument("--overlap", type=int, help="context per side, as runtime --overlap (default: the sidecar's)")
    p.add_argument("--max-batch", type=int, default=16, help="windows per server batch (default 16)")
    p.add_argument("--queue-delay-us", type=int, default=2000, help="dynamic batcher wait (default 2000 µs)")
    p.add_argument("--instances", type=int, default=1, help="model instances per device (default 1)")
    p.add_argument("--cpu", action="store_true", help="CPU instances (default: GPU) and the INT8 graph if exported")
    p.add_argument("--trt-fp16", action="store_true", help="ONNX: run through ONNX Runtime's TensorRT EP in FP16")
    p.add_argument("--plan", type=Path, help="serve this TensorRT engine (runtime.cache list shows them) instead")
    a = p.parse_args(argv)
    if a.max_batch < 1 or a.instances < 1 or a.tile < 16 or (a.overlap is not None and a.overlap < 0):
        p.error("--max-batch and --instances must be ≥ 1, --tile ≥ 16, --overlap ≥ 0")
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
        entry = write_repository(args.model, args.output, args.name, opts)
    except ModelError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise CommandFailed(f"cannot write the repository: {e}") from None
    print(f"wrote {entry}: serve with tritonserver --model-repository={args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
