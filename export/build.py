"""``python -m export.build``: checkpoint → validated ONNX (FP32, optionally FP16 and INT8) + JSON sidecars (+ engines).

Steps: load the checkpoint; export FP32 ONNX with dynamic batch/height/width; check it against PyTorch on real
JPEG images; optionally convert to FP16 and check it against FP32, computed in FP16 (:mod:`export.fp16_check`, on
any CPU); optionally quantise to INT8 for CPUs and
gate it on its quality loss (:mod:`export.int8`); measure the receptive field; write each
``NAME[_fp16|_int8].onnx`` with its ``.json`` sidecar (:class:`runtime.spec.ModelSpec`); with ``--opencv`` also
``NAME_opencv.onnx`` for OpenCV's DNN module (:mod:`export.opencv_compat`); prebuild TensorRT engines
into the engine cache when TensorRT and a GPU are present. Graphs are staged in a temporary folder and moved
into place only after they pass validation, so a failed build leaves no half-valid model behind.

Exit codes: 0 success, 1 validation failed / engine required but impossible, 2 bad arguments or checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common.cli import CommandFailed, OptionError, UsageError, exit_missing_extra, onnxruntime_install, run_cli
from common.datasets import shared_eval_dir, shared_train_dirs

try:
    import torch  # noqa: F401 (checked here: the export modules need it)
except ModuleNotFoundError as e:  # a missing extra: one line, not a traceback
    exit_missing_extra(e, __name__, "export")

from common.files import check_plain_name, sha256_file
from common.tiling import DEFAULT_CORE, ENGINE_BATCH
from export import fp16_check, int8, validate
from export.fp16 import NodePatternError, convert_fp16
from export.int8 import CalibrationError, Int8Options
from export.onnx_export import ExportError, export_onnx, graph_opset
from export.opencv_compat import CompatError, write_opencv_variant
from export.receptive_field import ReceptiveField, measure
from export.validate import Thresholds, ValidationError
from models.checkpoint import CheckpointError, load_generator
from runtime.backends.base import BackendUnavailable
from runtime.spec import ModelSpec, exported_name, sidecar_path

log = logging.getLogger(__spec__.name)


# BuildOptions field → the command-line option that sets it (for BuildOptionError.for_cli)
OPTIONS = {
    "ckpt": "--ckpt", "output": "-o", "name": "--name", "opset": "--opset", "fp16": "--fp16", "fp16_io": "--fp16-io",
    "fp32_nodes": "--fp32-nodes", "engine": "--engine", "tiles": "--tile", "max_batch": "--max-batch",
    "int8": "--int8", "calibration": "--calib", "windows": "--calib-windows", "gate_data": "--gate-data",
    "gate_qualities": "--gate-quality", "max_loss_db": "--max-int8-loss", "max_worst_loss_db": "--max-int8-worst-loss",
}  # fmt: skip
OPSETS = range(13, 21)
MIN_TILE = 16  # an engine's tile core: smaller is a typo, not a plan


class BuildOptionError(OptionError):
    """An invalid :class:`BuildOptions` field (``str()`` names the field, :meth:`for_cli` its option)."""

    OPTIONS = OPTIONS


@dataclasses.dataclass
class BuildOptions:
    """What the command line controls (the thresholds are also recorded in each sidecar), validated on construction
    from Python and from the command line alike (:class:`BuildOptionError`)."""

    ckpt: Path
    output: Path
    name: str
    opset: int = 17
    fp16: bool = False
    fp16_io: bool = False
    fp32_nodes: list[str] = dataclasses.field(default_factory=list)
    thresholds: Thresholds = dataclasses.field(default_factory=Thresholds)
    engine: str = "auto"  # auto | require | skip
    tiles: list[int] = dataclasses.field(default_factory=lambda: [DEFAULT_CORE])
    max_batch: int = ENGINE_BATCH
    cache_dir: Path | None = None
    quiet: bool = False
    opencv: bool = False
    int8: Int8Options | None = None  # None: no INT8 graph

    def __post_init__(self) -> None:
        if self.opset not in OPSETS:
            raise BuildOptionError("opset", f"{self.opset}: supported range is {OPSETS[0]}..{OPSETS[-1]}")
        if self.max_batch < 1:
            raise BuildOptionError("max_batch", f"must be ≥ 1, got {self.max_batch}")
        if not self.tiles or min(self.tiles) < MIN_TILE:
            raise BuildOptionError("tiles", f"sizes must be ≥ {MIN_TILE}, got {self.tiles}")
        if self.engine not in ("auto", "require", "skip"):
            raise BuildOptionError("engine", f"must be auto, require or skip, got {self.engine!r}")
        if (self.fp16_io or self.fp32_nodes) and not self.fp16:
            raise BuildOptionError("fp16_io", "and {fp32_nodes} need {fp16}")
        if self.output.exists() and not self.output.is_dir():
            raise BuildOptionError("output", f"{self.output}: exists and is not a folder")
        try:
            check_plain_name(self.name)
        except ValueError as e:
            raise BuildOptionError("name", str(e).removeprefix("name ")) from None
        if self.int8 is not None:
            _check_int8(self.int8)


def _check_int8(i8: Int8Options) -> None:
    """BuildOptionError unless ``i8`` can calibrate and gate an INT8 graph."""
    if i8.windows < 1:
        raise BuildOptionError("windows", f"must be ≥ 1, got {i8.windows}")
    for field in ("max_loss_db", "max_worst_loss_db"):
        if getattr(i8, field) < 0:
            raise BuildOptionError(field, f"must be ≥ 0, got {getattr(i8, field)}")
    if not all(1 <= q <= 100 for q in i8.gate_qualities):
        raise BuildOptionError("gate_qualities", f"{list(i8.gate_qualities)}: JPEG qualities are 1..100")
    if not i8.calibration or i8.gate_data is None or not Path(i8.gate_data).is_dir():
        raise BuildOptionError(
            "int8", "needs training images ({calibration} DIR...) and ground-truth gate images ({gate_data} DIR)"
        )


def _add_checkpoint_options(p: argparse.ArgumentParser) -> None:
    """Input checkpoint, output folder and names, ONNX opset."""
    p.add_argument("--ckpt", required=True, type=Path, help="generator checkpoint (models.checkpoint format)")
    p.add_argument("-o", "--output", type=Path, help="output folder (default: the checkpoint's folder)")
    p.add_argument("--name", help="model name = file stem (default: the checkpoint's stem)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 13–20 (default 17)")


def _add_fp16_options(p: argparse.ArgumentParser) -> None:
    """The FP16 graph: whether, its I/O dtype, the nodes kept FP32."""
    p.add_argument("--fp16", action="store_true", help="also write NAME_fp16.onnx (FP16 weights and compute)")
    p.add_argument("--fp16-io", action="store_true", help="FP16 graph takes/returns float16 (default: float32 I/O)")
    p.add_argument(
        "--fp32-nodes",
        nargs="+",
        default=[],
        metavar="PATTERN",
        help="keep nodes whose name matches these shell patterns in FP32 in the FP16 graph, "
        "e.g. '*/attention/channel/*' (node names are module paths)",
    )


def _add_validation_options(p: argparse.ArgumentParser) -> None:
    """The FP32 and FP16 graphs' pass thresholds (:class:`export.validate.Thresholds`)."""
    t = Thresholds()
    p.add_argument(
        "--max-abs-error",
        type=float,
        default=t.fp32_max_abs,
        help=f"validation: largest allowed |ORT FP32 − PyTorch| (default {t.fp32_max_abs:g})",
    )
    p.add_argument(
        "--min-fp16-psnr",
        type=float,
        default=t.fp16_min_psnr,
        help=f"validation: smallest allowed 8-bit PSNR, FP16 vs FP32 (default {t.fp16_min_psnr:g} dB)",
    )


def _add_int8_options(p: argparse.ArgumentParser) -> None:
    """The INT8 graph: whether, its calibration data and its quality gate (:class:`export.int8.Int8Options`)."""
    i = Int8Options()
    p.add_argument(
        "--int8",
        action="store_true",
        help="also write NAME_int8.onnx for CPUs (U8S8 per-channel QDQ), calibrated on training JPEGs and gated: "
        "the build fails if it loses more than --max-int8-loss dB against FP32 on --gate-data",
    )
    p.add_argument(
        "--calib",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="INT8 calibration image folders, never evaluation sets (default: ../shared/data/train/*)",
    )
    p.add_argument(
        "--calib-windows", type=int, default=i.windows, help=f"INT8 calibration windows (default {i.windows})"
    )
    p.add_argument(
        "--gate-data",
        type=Path,
        metavar="DIR",
        help="INT8 gate: ground-truth images restored from their JPEG round trips (default: ../shared/data/eval/LIVE1)",
    )
    p.add_argument(
        "--gate-quality",
        type=int,
        nargs="+",
        metavar="Q",
        help="INT8 gate: JPEG qualities, each gated (default: the qualities the model serves: its training "
        f"qualities, for a blind model at least {', '.join(map(str, int8.BLIND_GATE_QUALITIES))})",
    )
    p.add_argument(
        "--max-int8-loss",
        type=float,
        default=i.max_loss_db,
        help=f"INT8 gate: largest allowed mean PSNR loss vs FP32 at each quality (default {i.max_loss_db:g} dB)",
    )
    p.add_argument(
        "--max-int8-worst-loss",
        type=float,
        default=i.max_worst_loss_db,
        help="INT8 gate: largest allowed PSNR loss of the worst image at each quality "
        f"(default {i.max_worst_loss_db:g} dB)",
    )


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    """Whether to prebuild TensorRT engines, and for which tile cores and batch (as the runtime will ask)."""
    p.add_argument(
        "--engine",
        choices=("auto", "require", "skip"),
        default="auto",
        help="prebuild TensorRT engines: auto = if TensorRT and a GPU are present, require = fail otherwise",
    )
    p.add_argument(
        "--tile",
        type=int,
        nargs="+",
        default=[DEFAULT_CORE],
        metavar="CORE",
        help="tile core sizes the runtime will use, as its --tile (engine shape = core + 2×overlap on the 16-px grid; "
        f"default {DEFAULT_CORE})",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=ENGINE_BATCH,
        help=f"tiles per engine call, as the runtime's --batch (default {ENGINE_BATCH})",
    )


def parse_args(argv: list[str] | None = None) -> BuildOptions:
    p = argparse.ArgumentParser(
        prog="python -m export.build",
        description="Export a WCDGAN generator checkpoint to validated ONNX (FP32, optionally FP16 and INT8) with JSON "
        "sidecars, and prebuild TensorRT engines when TensorRT and a GPU are available.",
    )
    _add_checkpoint_options(p)
    _add_fp16_options(p)
    _add_validation_options(p)
    _add_int8_options(p)
    _add_engine_options(p)
    p.add_argument(
        "--opencv",
        action="store_true",
        help="also write NAME_opencv.onnx: the FP32 graph without the broadcasts OpenCV 4.6's DNN importer rejects "
        "(for examples/cpp; checked equal with ONNX Runtime)",
    )
    p.add_argument("--cache-dir", type=Path, help="engine cache folder (default: $WCDGAN_CACHE_DIR or the user cache)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    a = p.parse_args(argv)
    int8_only = {"--calib": a.calib, "--gate-data": a.gate_data, "--gate-quality": a.gate_quality}
    if any(int8_only.values()) and not a.int8:
        p.error(f"{', '.join(int8_only)} need --int8")
    try:
        return _options(a)
    except BuildOptionError as e:
        p.error(e.for_cli())


def _options(a: argparse.Namespace) -> BuildOptions:
    """The parsed command line as :class:`BuildOptions` (which validates it), with the defaults that depend on other
    options or on the machine: the checkpoint's folder and stem, the team's shared calibration and gate data."""
    return BuildOptions(
        ckpt=a.ckpt,
        output=a.output or a.ckpt.parent,
        name=a.name or a.ckpt.stem,
        opset=a.opset,
        fp16=a.fp16,
        fp16_io=a.fp16_io,
        fp32_nodes=a.fp32_nodes,
        thresholds=Thresholds(fp32_max_abs=a.max_abs_error, fp16_min_psnr=a.min_fp16_psnr),
        engine=a.engine,
        tiles=a.tile,
        max_batch=a.max_batch,
        cache_dir=a.cache_dir,
        quiet=a.quiet,
        opencv=a.opencv,
        int8=Int8Options(
            a.calib or shared_train_dirs(),
            a.calib_windows,
            gate_data=a.gate_data or shared_eval_dir() / "LIVE1",
            gate_qualities=tuple(sorted(set(a.gate_quality or []))),
            max_loss_db=a.max_int8_loss,
            max_worst_loss_db=a.max_int8_worst_loss,
        )
        if a.int8
        else None,
    )


def build(opts: BuildOptions) -> list[Path]:
    """Run the whole build; return the written ONNX paths (FP32, [FP16], [INT8], [OpenCV variant]).

    Raises CheckpointError/ExportError/ValidationError/CompatError, OSError (e.g. a target that is a folder)."""
    check_targets(opts)  # before minutes of work
    model, meta = load_generator(opts.ckpt)
    cfg = model.cfg
    opts.output.mkdir(parents=True, exist_ok=True)
    images = validate.validation_images(cfg.in_channels)
    staged: list[tuple[Path, ModelSpec]] = []
    with tempfile.TemporaryDirectory(dir=opts.output, prefix=f".{opts.name}.build.") as tmp:
        t0 = time.perf_counter()
        fp32_path = Path(tmp) / f"{opts.name}.onnx"
        proto = export_onnx(model, fp32_path, cfg.in_channels, opts.opset)
        log.info(f"exported {fp32_path.name} ({len(proto.graph.node)} nodes, {time.perf_counter() - t0:.1f} s)")

        reference = validate.torch_outputs(model, images)
        paths = [fp32_path]
        if opts.fp16:
            fp16_path = Path(tmp) / f"{exported_name(opts.name, 'fp16')}.onnx"
            fp32_kept = convert_fp16(proto, fp16_path, keep_io_types=not opts.fp16_io, fp32_patterns=opts.fp32_nodes)
            paths.append(fp16_path)
        outputs = validate.run_onnx(paths, images)
        fp32_numbers = validate.compare_fp32(reference, outputs[0])
        log.info(f"validate FP32 ONNX vs PyTorch: {validate.format_numbers(fp32_numbers)}")
        fp16_numbers = validate.compare_fp16(outputs[0], outputs[1]) if opts.fp16 else {}
        if opts.fp16:
            log.info(f"validate FP16 ONNX vs FP32 ONNX: {validate.format_numbers(fp16_numbers)}")
        validate.check(fp32_path.name, fp32_numbers, opts.thresholds)
        if opts.fp16:
            validate.check(fp16_path.name, fp16_numbers, opts.thresholds)
            fp16_arithmetic = _fp16_arithmetic(fp32_path, fp16_path, images, opts.thresholds)

        t0 = time.perf_counter()
        rf = measure(model)
        log.info(
            f"receptive field: radius {rf.radius} px by relative threshold, {rf.mass_radius} px by influence mass "
            f"(hard bound {rf.theoretical_radius}); blocks pass {rf.block_pass_through} of a local change; "
            f"recommended overlap {rf.recommended_overlap} px "
            f"({time.perf_counter() - t0:.1f} s)"
        )
        common = _common_fields(opts, cfg, meta, rf, graph_opset(proto), fp32_numbers)
        staged.append((fp32_path, ModelSpec(name=opts.name, precision="fp32", **common)))
        if opts.fp16:
            io = "float16" if opts.fp16_io else "float32"
            spec16 = ModelSpec(
                name=exported_name(opts.name, "fp16"),
                precision="fp16",
                input_dtype=io,
                output_dtype=io,
                fp32_nodes=fp32_kept,
                **common,
            )
            spec16.validation = {
                **spec16.validation,
                "fp16_vs_fp32": {**fp16_numbers, "kind": "onnx runtime cpu (computes in fp32: weight rounding only)"},
                "fp16_arithmetic": fp16_arithmetic,
            }
            staged.append((fp16_path, spec16))
        if opts.int8:
            staged.append(_int8_graph(fp32_path, opts, common))
        check_targets(opts)  # all of them, before the first is published
        published = [_publish(path, spec, opts) for path, spec in staged]
    if opts.opencv:  # from the published FP32 graph: its sidecar now holds the final hash
        published.append(write_opencv_variant(published[0]))
    return published


def _fp16_arithmetic(fp32_path: Path, fp16_path: Path, images: list, thresholds: Thresholds) -> dict[str, Any]:
    """The FP16 graph computed in FP16 (:mod:`export.fp16_check`): its numbers for the sidecar, or ValidationError."""
    t0 = time.perf_counter()
    numbers = fp16_check.check_numbers(fp32_path, fp16_path, images)
    log.info(f"FP16 arithmetic, {numbers.kind}: {fp16_check.summary(numbers)} ({time.perf_counter() - t0:.1f} s)")
    fp16_check.check(fp16_path.name, numbers, thresholds.fp16_min_psnr)
    return dataclasses.asdict(numbers)


def _int8_graph(fp32_path: Path, opts: BuildOptions, common: dict[str, Any]) -> tuple[Path, ModelSpec]:
    """Quantise the validated FP32 graph and gate it (:mod:`export.int8`); the staged file and its sidecar."""
    i8 = opts.int8
    channels = common["channels"]
    t0 = time.perf_counter()
    windows = int8.calibration_windows(i8, channels)
    int8_path = fp32_path.with_name(f"{exported_name(opts.name, 'int8')}.onnx")
    kept = int8.quantize(fp32_path, int8_path, windows)
    log.info(f"quantised {int8_path.name}: {len(windows)} calibration windows, FP32 kept for {', '.join(kept)}")
    truths = int8.gate_images(i8.gate_data, channels)
    qualities = i8.gate_qualities or int8.served_qualities(common["jpeg_qualities"])
    numbers = int8.gate(fp32_path, int8_path, truths, qualities, i8)
    for quality, q in numbers["per_quality"].items():
        log.info(
            f"INT8 gate on {len(truths)} images of {i8.gate_data} at q{quality}: {q['int8_psnr_db']:.3f} dB vs FP32 "
            f"{q['fp32_psnr_db']:.3f} dB ({q['delta_db']:+.4f} dB, allowed −{i8.max_loss_db:g}; worst image "
            f"{q['worst_image_delta_db']:+.4f} dB, allowed −{i8.max_worst_loss_db:g}); INT8 vs FP32 output ≥ "
            f"{q['int8_vs_fp32_min_psnr_uint8_db']:.1f} dB"
        )
    log.info(f"INT8 quantisation and gate: {time.perf_counter() - t0:.1f} s")
    int8.check_gate(int8_path.name, numbers)
    spec = ModelSpec(name=exported_name(opts.name, "int8"), precision="int8", fp32_nodes=kept, **common)
    calibration = {
        "folders": [Path(f).name for f in i8.calibration],
        "windows": i8.windows,
        "window": i8.window,
        "qualities": list(i8.qualities),
        "seed": i8.seed,
        "recipe": "QDQ, QUInt8 activations (MinMax, one range per Concat), QInt8 per-channel weights; ends kept FP32",
    }
    spec.validation = {**spec.validation, "int8": {**numbers, "calibration": calibration}}
    return int8_path, spec


def _common_fields(
    opts: BuildOptions, cfg: Any, meta: dict[str, Any], rf: ReceptiveField, opset: int, numbers: dict
) -> dict[str, Any]:
    """ModelSpec fields shared by every sidecar of the build (FP32, FP16, INT8)."""
    config = dataclasses.asdict(cfg)
    training = {k: v for k, v in meta.items() if k not in ("jpeg_qualities", "qualities")}
    return {
        "channels": cfg.in_channels,
        "color": "y" if cfg.in_channels == 1 else "rgb",
        "opset": opset,
        "checkpoint_sha256": sha256_file(opts.ckpt),
        "model_config": {**config, "dilations": list(config["dilations"])},
        "jpeg_qualities": [int(q) for q in meta.get("jpeg_qualities", meta.get("qualities", []))],
        "receptive_field_radius": rf.effective_radius,
        "recommended_overlap": rf.recommended_overlap,
        "validation": {
            "images": validate.describe_images(),
            "thresholds": dataclasses.asdict(opts.thresholds),
            "onnx_fp32_vs_torch": numbers,
            "receptive_field": dataclasses.asdict(rf),
        },
        "training": json.loads(json.dumps(training, default=str)),  # free-form meta: keep it JSON-safe
    }


def targets(opts: BuildOptions) -> list[Path]:
    """Every file the build publishes: each graph and its sidecar."""
    suffixes = ["", *(["_fp16"] if opts.fp16 else []), *(["_int8"] if opts.int8 else []),
                *(["_opencv"] if opts.opencv else [])]  # fmt: skip
    graphs = [opts.output / f"{opts.name}{suffix}.onnx" for suffix in suffixes]
    return [path for graph in graphs for path in (graph, sidecar_path(graph))]


def check_targets(opts: BuildOptions) -> None:
    """IsADirectoryError unless every target can be replaced by a file (missing, a file or a link): the build
    publishes all of its graphs with their sidecars or none."""
    for path in targets(opts):
        if path.is_dir() and not path.is_symlink():
            raise IsADirectoryError(errno.EISDIR, "a folder is in the way of an output file", str(path))


def _publish(staged: Path, spec: ModelSpec, opts: BuildOptions) -> Path:
    """Move a validated graph into the output folder and write its sidecar (each step atomic)."""
    final = opts.output / staged.name
    spec.onnx_sha256 = sha256_file(staged)
    os.replace(staged, final)  # same folder tree → atomic rename
    spec.save(sidecar_path(final))
    return final


def prebuild_engines(onnx_path: Path, opts: BuildOptions) -> bool:
    """Build TensorRT engines for the runtime's tile windows; False (with the reason said) when impossible."""
    from common.tiling import window_grid
    from runtime.backends.tensorrt import prebuild

    spec = ModelSpec.load(sidecar_path(onnx_path))
    windows = sorted({window_grid(core, spec.recommended_overlap).window for core in opts.tiles})
    try:
        for window in windows:
            prebuild(onnx_path, spec, window, opts.max_batch, cache_dir=opts.cache_dir, progress=not opts.quiet)
            log.info(
                f"TensorRT engine for {onnx_path.name} at {window[0]}×{window[1]} (batch ≤ {opts.max_batch}) is cached"
            )
    except BackendUnavailable as e:
        if opts.engine == "require":
            raise
        log.info(f"ONNX artifacts are ready; no TensorRT engine was built: {e}")
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, parse_args(argv))


def run(opts: BuildOptions) -> int:
    """The build as a command: the files written on stdout, messages logged; UsageError (bad input) or
    CommandFailed (the build failed) for :func:`common.cli.run_cli`."""
    try:
        import onnxruntime  # noqa: F401 (validation, the FP16 converter and the INT8 gate need it; say so first)
    except ImportError as e:
        raise UsageError(f"onnxruntime is not installed ({e}): {onnxruntime_install()}") from None
    try:
        paths = build(opts)
    except (CheckpointError, NodePatternError, CalibrationError) as e:
        raise UsageError(str(e)) from None
    except (ExportError, ValidationError, CompatError) as e:
        raise CommandFailed(str(e)) from None
    except OSError as e:  # unwritable output folder, full disk
        raise CommandFailed(f"cannot write the artifacts: {e}") from None
    if not opts.quiet:
        for path in paths:
            print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB) and {sidecar_path(path).name}")
    if opts.engine != "skip":
        fp16_path = opts.output / f"{exported_name(opts.name, 'fp16')}.onnx"
        engine_path = fp16_path if fp16_path in paths else paths[0]  # FP16 when there is one: what TensorRT runs
        try:
            prebuild_engines(engine_path, opts)
        except BackendUnavailable as e:
            raise CommandFailed(f"--engine require, but no TensorRT engine can be built: {e}") from None
        except RuntimeError as e:  # TensorRT parse/build failures; the ONNX artifacts stay valid
            raise CommandFailed(f"TensorRT engine build failed for {engine_path.name}: {e}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
