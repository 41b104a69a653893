"""``python -m train``: train a WCDGAN generator on folders of clean images.

Examples::

    python -m train --data ../shared/data/train/Urban100_x2HR --val VAL_DIR --out runs/psnr --quality 10
    python -m train --data DIR1 DIR2 --out runs/gan --preset gan --quality-range 5 40 --time-limit 120
    python -m train --out runs/gan --resume --iters 200000
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common.cli import DefaultsHelpFormatter, exit_missing_extra

try:
    import torch
except ModuleNotFoundError as e:  # a missing extra: one line, not a traceback
    exit_missing_extra(e, __name__, "train")

from common.cli import UsageError, run_cli
from common.files import shared_dir
from models.checkpoint import CheckpointError, load_generator
from models.wcdgan import TRUNKS, GeneratorConfig
from train import probe
from train.config import PRESETS, LossWeights, TrainConfig, preset_losses
from train.data import DataError, check_training_dir
from train.loop import ResumeError, Trainer, load_run_data, load_training_state, pick_device

log = logging.getLogger(__spec__.name)

DEFAULT_ITERS = 100_000
UNCAPPED_ITERS = 10**12  # with --time-budget and no --iters
MIN_BUDGET_S = 1.0  # what --end-at leaves a run whose start-up overran the deadline
SHARED_VGG = shared_dir() / "weights" / "vgg19_features_caffe_rgb_fp16.pth"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train",
        description="Train WCDGAN (JPEG artifact removal) on clean images compressed on the fly with libjpeg. "
        "Writes RUN_DIR/last.pt (full state for --resume), RUN_DIR/g.pt (generator checkpoint), "
        "RUN_DIR/best.pt (best validation PSNR) and RUN_DIR/log.jsonl.",
        formatter_class=DefaultsHelpFormatter,
    )
    io = p.add_argument_group("data and run folder")
    io.add_argument("--data", nargs="+", metavar="DIR", help="folders of clean training images (PNG/JPEG/BMP/TIFF)")
    io.add_argument("--val", metavar="DIR", help="folder of clean validation images (PSNR of JPEG vs restored)")
    io.add_argument("-o", "--out", required=True, metavar="RUN_DIR", help="run folder (created)")
    io.add_argument(
        "--resume",
        action="store_true",
        help="continue RUN_DIR/last.pt; its saved configuration is used "
        "(only --iters, --time-limit, --end-at, --threads, --workers, --device, -q apply, --data/--val "
        "to find the images in another place, and --w-*, --adam-beta1, --ema, --val-quality and --val-images to "
        "change a lineage's recipe, recorded in its checkpoints; validation on other images or qualities starts "
        "the best score again)",
    )
    d = p.add_argument_group("degradation")
    d.add_argument(
        "--channel", choices=("rgb", "y"), default="rgb", help="rgb: colour JPEG 4:2:0; y: grayscale JPEG of MATLAB Y"
    )
    q = d.add_mutually_exclusive_group()
    q.add_argument("--quality", nargs="+", type=int, default=[10], metavar="Q", help="JPEG qualities, drawn uniformly")
    q.add_argument(
        "--quality-range", nargs=2, type=int, metavar=("LO", "HI"), help="blind: uniform integer quality in [LO, HI]"
    )
    d.add_argument("--quality-weights", nargs="+", type=float, metavar="W", help="sampling weight per --quality value")
    t = p.add_argument_group("optimisation (paper defaults)")
    t.add_argument(
        "--preset",
        choices=PRESETS,
        default="psnr",
        help="psnr: L1 only, no discriminator; gan: L1 warm-up, "
        "then L1 + perceptual + LSGAN + TV (weights in train/config.py)",
    )
    t.add_argument("--iters", type=int, help="total iterations (default 100000; with --resume: the saved value)")
    t.add_argument(
        "--warmup",
        type=int,
        help="generator-only L1 iterations before the full loss (default: gan preset iters/5, psnr preset 0)",
    )
    t.add_argument(
        "--batch",
        type=_batch,
        default=16,
        help="patches per step, or 'auto': measure training speed at 32/64/128 patches "
        "for ~5 s and take the smallest batch within 10%% of the fastest, with --lr-g/--lr-d scaled by sqrt(batch/16) "
        "(train/probe.py)",
    )
    t.add_argument("--patch", type=int, default=80)
    t.add_argument("--stride", type=int, default=75, help="patch grid stride")
    t.add_argument("--lr-g", type=float, default=2e-4)
    t.add_argument("--lr-d", type=float, default=1e-4)
    t.add_argument("--lr-halve-every", type=int, default=20_000)
    t.add_argument(
        "--ema",
        type=float,
        metavar="DECAY",
        help="validate and save the exponential moving average of the generator's weights, e.g. 0.999 (default: "
        "off, as in the paper; last.pt keeps both). With --resume: a lineage's recipe change (the average starts "
        "at the current weights)",
    )
    t.add_argument(
        "--adam-beta1",
        type=float,
        help="Adam's first-moment decay (default: the paper's 0.5, a GAN setting; 0.9 is Adam's own default, which "
        "the half trunk needs: with 0.5 it stalls, models/pretrained/README.md). "
        "With --resume: a lineage's recipe change, recorded in its checkpoints",
    )
    t.add_argument("--w-l1", type=float, help="override the preset's L1 weight")
    t.add_argument(
        "--w-mse",
        type=float,
        help="weight of a mean-squared-error term (default 0; `--w-l1 0 --w-mse 1` trains on MSE alone, which the "
        "half trunk needs: with L1 alone it stays at a zero residual, models/pretrained/README.md)",
    )
    t.add_argument(
        "--w-log-mse",
        type=float,
        help="weight of each patch's 10·log10(MSE) in dB (default 0): mean PSNR's own loss, every JPEG quality "
        "weighs the same per dB (plain MSE favours the lowest qualities)",
    )
    t.add_argument("--w-perceptual", type=float, help="override the preset's perceptual weight")
    t.add_argument("--w-adv", type=float, help="override the preset's adversarial weight")
    t.add_argument("--w-tv", type=float, help="override the preset's TV weight")
    t.add_argument(
        "--vgg-weights",
        metavar="PATH",
        help=f"VGG19 features state dict, Caffe preprocessing (default: {SHARED_VGG} if present, else torchvision's)",
    )
    t.add_argument("--seed", type=int, default=0)
    m = p.add_argument_group("generator size (paper: 64 / 8 / 32)")
    m.add_argument("--features", type=int, default=64)
    m.add_argument("--blocks", type=int, default=8)
    m.add_argument("--branch", type=int, default=32, help="mixed-convolution branch width")
    m.add_argument("--global-residual", action="store_true", help="add the input to the output (not in the paper)")
    m.add_argument(
        "--trunk",
        choices=TRUNKS,
        default="full",
        help="full: the paper's full-resolution trunk; half: blocks at half resolution on the 4:2:0 chroma grid "
        "(luma space-to-depth, Cb/Cr at their coded resolution, residual output; not in the paper, "
        "models/half_resolution.py). Use a --stride that is a multiple of 16 so patches keep the JPEG grid's phase",
    )
    m.add_argument(
        "--skip-around-attention",
        action="store_true",
        help="each block's skip goes around its attention, x + MA(fuse), instead of the paper's MA(fuse + x)",
    )
    m.add_argument(
        "--gate-bias",
        type=float,
        metavar="B",
        help="initial bias before every attention sigmoid: 3 starts the gates at 0.95, so that the 8 chained blocks "
        "pass local detail from the first step (default init: gates 0.5, block 1 gets ~5e-4 of block 8's gradient)",
    )
    m.add_argument(
        "--init",
        metavar="CKPT",
        help="start from this generator checkpoint's weights (fresh optimiser and lr schedule); its architecture "
        "replaces --features/--blocks/--branch/--global-residual/--trunk/--skip-around-attention",
    )
    v = p.add_argument_group("validation and checkpoints")
    v.add_argument(
        "--val-quality",
        nargs="+",
        type=int,
        metavar="Q",
        help="JPEG qualities of the validation set (default 10); best.pt is the best mean PSNR over them, and the log "
        "records the gain at each. With --resume: a lineage's recipe change (the best score starts again)",
    )
    v.add_argument("--val-crop", type=int, default=256, help="centre crop per validation image (0: full image)")
    v.add_argument(
        "--val-images",
        type=int,
        help="use at most this many validation images (default 16). With --resume: a lineage's recipe change",
    )
    v.add_argument("--val-every", type=int, default=1000, help="iterations between validations")
    v.add_argument("--save-every", type=int, default=1000, help="iterations between checkpoints")
    r = p.add_argument_group("runtime")
    r.add_argument("--time-limit", type=float, metavar="MINUTES", help="stop cleanly (validate, save) after this long")
    r.add_argument(
        "--time-budget",
        type=float,
        metavar="MINUTES",
        help="train for this wall time: the lr warms up over its first 2%%, then follows a cosine down to 1%% over it "
        "(instead of the step schedule) and the run ends with it; --iters then only caps the count",
    )
    r.add_argument(
        "--end-at",
        type=float,
        metavar="UNIX_TIME",
        help="like --time-budget, with the budget set when training starts (after data loading and the batch "
        "probe) so that it ends at this wall-clock time: how train.campaign gives concurrent runs one deadline. "
        "With --resume the budget extends the run's training time so far (a lineage across sessions): the cosine "
        "is stretched to end at this time, so the lr rises again to where the longer cosine stands",
    )
    r.add_argument("--probe-seconds", type=float, default=1.2, help="--batch auto: seconds per probed candidate")
    r.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    r.add_argument("--threads", type=int, help="torch CPU threads")
    r.add_argument("--workers", type=int, default=-1, help="DataLoader workers (-1: 2 on CUDA, 0 on CPU)")
    r.add_argument(
        "--no-amp", action="store_true", help="disable bf16 autocast (on CUDA, and on CPUs with native bf16)"
    )
    r.add_argument("--channels-last", action="store_true")
    r.add_argument(
        "--compile",
        nargs="?",
        const="inductor",
        metavar="BACKEND",
        help="torch.compile the generator's training step (default backend inductor; compiling takes the first "
        "step, about a minute; if it fails the run continues eagerly)",
    )
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages, only errors")
    return p


def _batch(text: str) -> int:
    """``--batch``: a positive integer, or ``auto`` (returned as 0, resolved by the probe)."""
    if text == "auto":
        return 0
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}")
    return int(text)


def override_loss_weights(loss: LossWeights, args: argparse.Namespace) -> bool:
    """Apply the ``--w-*`` flags the user gave to ``loss``; True if any was given."""
    given = {
        "l1": args.w_l1,
        "mse": args.w_mse,
        "log_mse": args.w_log_mse,
        "perceptual": args.w_perceptual,
        "adversarial": args.w_adv,
        "tv": args.w_tv,
    }
    given = {name: value for name, value in given.items() if value is not None}
    for name, value in given.items():
        setattr(loss, name, value)
    return bool(given)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A fresh run's TrainConfig from the command line (raises DataError/ValueError on bad input)."""
    if not args.data:
        raise DataError("--data is required (folders of clean training images)")
    data_dirs = [str(check_training_dir(d)) for d in args.data]
    loss = preset_losses(args.preset)
    override_loss_weights(loss, args)
    vgg = args.vgg_weights or (str(SHARED_VGG) if loss.perceptual > 0 and SHARED_VGG.is_file() else None)
    budgeted = args.time_budget or args.end_at
    iters = args.iters if args.iters is not None else (UNCAPPED_ITERS if budgeted else DEFAULT_ITERS)
    batch = args.batch or probe.PAPER_BATCH  # auto: replaced by the probe's choice in make_trainer
    warmup = args.warmup if args.warmup is not None else (iters // 5 if args.preset == "gan" else 0)
    return TrainConfig(
        data_dirs=data_dirs,
        val_dir=args.val,
        channel=args.channel,
        qualities=[] if args.quality_range else list(args.quality),
        quality_weights=args.quality_weights,
        quality_range=tuple(args.quality_range) if args.quality_range else None,
        patch_size=args.patch,
        patch_stride=args.stride,
        batch_size=batch,
        patches_per_crop=4 if batch % 4 == 0 else 1,
        iterations=iters,
        lr_g=args.lr_g,
        lr_d=args.lr_d,
        lr_halve_every=args.lr_halve_every,
        betas=(args.adam_beta1 if args.adam_beta1 is not None else TrainConfig.betas[0], TrainConfig.betas[1]),
        ema_decay=args.ema or 0.0,
        time_budget_s=args.time_budget * 60 if args.time_budget else None,
        warmup_iters=warmup,
        loss=loss,
        vgg_weights=vgg,
        seed=args.seed,
        generator=generator_config(args),
        val_qualities=args.val_quality or [10],
        val_crop=args.val_crop,
        val_max_images=16 if args.val_images is None else args.val_images,
        val_every=args.val_every,
        save_every=args.save_every,
        num_workers=args.workers,
        amp=not args.no_amp,
        channels_last=args.channels_last,
        compile=args.compile,
        init_from=str(Path(args.init).resolve()) if args.init else None,
        gate_bias=args.gate_bias,
        preset=args.preset,
    )


def generator_config(args: argparse.Namespace) -> GeneratorConfig:
    """The generator of a fresh run: the size flags, or with ``--init`` the checkpoint's own architecture."""
    channels = 3 if args.channel == "rgb" else 1
    if not args.init:
        return GeneratorConfig(
            channels,
            args.features,
            args.blocks,
            args.branch,
            global_residual=args.global_residual,
            trunk=args.trunk,
            skip_around_attention=args.skip_around_attention,
        )
    cfg = load_generator(args.init)[0].cfg
    if cfg.in_channels != channels:
        raise ValueError(
            f"--init {args.init}: a {cfg.in_channels}-channel model cannot start a --channel {args.channel} run"
        )
    return cfg


def make_trainer(args: argparse.Namespace) -> Trainer:
    out = Path(args.out)
    if args.resume:
        state = load_training_state(out / "last.pt")
        cfg = TrainConfig.from_dict(state["config"])
        if args.iters is not None:
            cfg.iterations = args.iters
        if args.data:  # the same images in another place (a lineage continued on another machine)
            cfg.data_dirs = [str(check_training_dir(d)) for d in args.data]
        if args.val:
            cfg.val_dir = args.val
        networks = (cfg.loss.perceptual > 0, cfg.loss.uses_discriminator)
        if override_loss_weights(cfg.loss, args):  # a lineage's recipe change: Adam's state carries over
            if (cfg.loss.perceptual > 0, cfg.loss.uses_discriminator) != networks:
                raise ValueError("--resume cannot switch the perceptual or adversarial loss on or off")
            log.info("loss weights from now on: %s", cfg.loss)
        if args.adam_beta1 is not None:
            cfg.betas = (args.adam_beta1, cfg.betas[1])
            log.info("Adam betas from now on: %s", cfg.betas)
        if args.ema is not None:
            cfg.ema_decay = args.ema
            cfg.validate()
            log.info("weight EMA from now on: decay %g", cfg.ema_decay)
        if args.val_quality is not None and args.val_quality != cfg.val_qualities:
            cfg.val_qualities = args.val_quality
            cfg.validate()
            log.info("validation at JPEG qualities %s from now on", cfg.val_qualities)
        if args.val_images is not None:
            cfg.val_max_images = args.val_images
        cfg.num_workers = args.workers
        trainer = Trainer(cfg, out, device=args.device, quiet=args.quiet)
        trainer.load_state_dict(state)  # other validation pairs start the best score again (Trainer.load_data)
        return trainer
    if (out / "last.pt").exists():
        raise ResumeError(f"{out}/last.pt exists: pass --resume to continue it, or choose another --out")
    cfg = config_from_args(args)
    with ThreadPoolExecutor(1) as pool:
        data = pool.submit(load_run_data, cfg)  # decoding (OpenCV releases the GIL) overlaps the batch probe
        if args.batch == 0:
            apply_probe(cfg, pick_device(args.device), args.probe_seconds)
        trainer = Trainer(cfg, out, device=args.device, quiet=args.quiet)
        if cfg.init_from:
            trainer.g.load_state_dict(load_generator(cfg.init_from)[0].state_dict())
        trainer.images, trainer.val = data.result()
    return trainer


def apply_probe(cfg: TrainConfig, device: torch.device, seconds: float) -> None:
    """``--batch auto``: measure, then set the batch, memory format and sqrt-scaled learning rates in ``cfg``."""
    results = probe.probe_training_speed(cfg.generator, cfg.patch_size, device, seconds=seconds, amp=cfg.amp)
    if device.type == "cuda":
        torch.cuda.empty_cache()  # hand the probe's activations back before the run allocates its own
    pick = probe.choose(results)
    cfg.batch_size, cfg.channels_last = pick.batch, pick.channels_last
    cfg.patches_per_crop = 4
    cfg.lr_g, cfg.lr_d = probe.scaled_lr(cfg.lr_g, pick.batch), probe.scaled_lr(cfg.lr_d, pick.batch)
    cfg.batch_probe = [r.to_dict() for r in results]
    rows = ", ".join(f"{r.batch}{'cl' if r.channels_last else ''} {r.samples_per_s:.0f}/s" for r in results)
    log.info("batch probe: %s -> batch %d, channels_last %s, lr %.3g", rows, pick.batch, pick.channels_last, cfg.lr_g)


INTERRUPTED = "interrupted: the last periodic checkpoint in the run folder is kept"


def main(argv: list[str] | None = None) -> int:
    return run_cli(train, build_parser().parse_args(argv), INTERRUPTED)


def train(args: argparse.Namespace) -> int:
    """Training as a command: progress logged, the checkpoint written on stdout; bad input is a UsageError for
    :func:`common.cli.run_cli`."""
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        trainer = make_trainer(args)
        if trainer.images is None:  # a resumed run
            trainer.load_data()
        cfg = trainer.cfg
        if args.end_at is not None:
            left = args.end_at - time.time()
            if left < MIN_BUDGET_S:  # start-up ate the budget: still leave a checkpoint to evaluate
                log.warning("warning: --end-at is %.0f s past as training begins; training for %.0f s only",
                            -left, MIN_BUDGET_S)  # fmt: skip
                left = MIN_BUDGET_S
            cfg.time_budget_s = trainer.wall_time + left  # a resumed run continues its training time
        span = (
            f"for {cfg.time_budget_s / 60:.1f} min"
            if cfg.time_budget_s
            else f"iterations {trainer.iteration}..{cfg.iterations}"
        )
        log.info(
            "training %s %s on %d images, device %s, batch %d, %s",
            cfg.preset, cfg.channel, len(trainer.images), trainer.device, cfg.batch_size, span,
        )  # fmt: skip
        reason = trainer.run(time_limit_s=args.time_limit * 60 if args.time_limit else None)
    except (DataError, ResumeError, CheckpointError, FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    val = trainer.last_val
    extra = f", val PSNR {val['val_psnr']:.2f} dB (JPEG {val['val_psnr_jpeg']:.2f})" if val else ""
    if not args.quiet:
        print(f"{reason}: iteration {trainer.iteration}{extra}; wrote {Path(args.out) / 'g.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
