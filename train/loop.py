"""The training loop: generator-only warm-up, then one G step and one D step per iteration (paper §IV-A).

Run folder layout (all files written atomically except the append-only log):

- ``last.pt``  full training state (G, D, optimisers, iteration, RNG, config) for ``--resume``
- ``g.pt``     generator only (``models.checkpoint`` format); meta holds the TrainConfig and run facts
- ``best.pt``  generator with the best validation PSNR so far (only with a validation folder)

With ``cfg.ema_decay`` both generator files hold the exponential moving average of G's weights, which is also what
validation measures; ``last.pt`` keeps G and the average.
- ``log.jsonl`` one JSON object per log interval (mean losses, lr) and per validation
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from tqdm import tqdm

from common.files import atomic_path
from common.metrics import psnr
from models.checkpoint import load_tagged, save_generator
from models.wcdgan import Discriminator, DiscriminatorConfig, WCDGANGenerator, open_attention_gates
from train.config import TrainConfig
from train.data import (
    IndexRange,
    PatchPairs,
    QualitySampler,
    ValidationSet,
    collate_pairs,
    load_images,
    load_validation,
)
from train.losses import l1_loss, load_vgg_perceptual, log_mse_loss, lsgan_d_loss, lsgan_g_loss, mse_loss, tv_loss
from train.probe import fast_bf16

log = logging.getLogger(__name__)

STATE_FORMAT = "wcdgan-train-state"
STATE_VERSION = 1


class ResumeError(ValueError):
    """``--resume`` without a usable ``last.pt``, or a fresh run that would overwrite one."""


WARMUP_FRACTION = 0.02  # of a time budget: linear lr warm-up (Adam's early steps are noisy at full lr)
FINAL_LR_FRACTION = 0.01  # of the base lr, at the end of a time budget


def lr_at(base: float, iteration: int, cfg: TrainConfig, elapsed_s: float) -> float:
    """Learning rate of the next step.

    Without a time budget: the paper's step schedule, ``base`` halved every ``cfg.lr_halve_every`` iterations
    (0 = constant). With ``cfg.time_budget_s`` (speed unknown in advance, e.g. a GPU window): a function of
    the elapsed training seconds — linear warm-up over the first 2 %, then a cosine from ``base`` down to 1 %
    of it at the end of the budget.
    """
    budget = cfg.time_budget_s
    if budget is None:
        halve = cfg.lr_halve_every
        return base * 0.5 ** (iteration // halve) if halve > 0 else base
    t = min(max(elapsed_s / budget, 0.0), 1.0)
    warm = min(1.0, (t + 1e-9) / WARMUP_FRACTION)
    return base * warm * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * t)))


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class _TermMeans:
    """Running means of the loss terms between two log records. Each term counts its own iterations: warm-up
    iterations lack the GAN terms."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.iterations = 0

    def add(self, terms: dict[str, float]) -> None:
        for k, v in terms.items():
            self.sums[k] += v
            self.counts[k] += 1
        self.iterations += 1

    def pop(self) -> dict[str, float]:
        """The means so far; the next record starts afresh."""
        means = {k: s / self.counts[k] for k, s in self.sums.items()}
        self.sums.clear()
        self.counts.clear()
        self.iterations = 0
        return means


class Trainer:
    """Owns the models, optimisers, data and run folder of one training run."""

    def __init__(self, cfg: TrainConfig, out_dir: str | os.PathLike, device: str = "auto", quiet: bool = False) -> None:
        self.cfg, self.out, self.quiet = cfg, Path(out_dir), quiet
        self.device = pick_device(device)
        self.amp = cfg.amp and fast_bf16(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed patch shape: pick the fastest conv algorithms once
        torch.manual_seed(cfg.seed)
        self.g = WCDGANGenerator(cfg.generator)
        if cfg.gate_bias is not None:
            open_attention_gates(self.g, cfg.gate_bias)
        self.g = self.g.to(self.device)
        self.d = None
        self.opt_d = None
        if cfg.loss.uses_discriminator:
            d_cfg = DiscriminatorConfig(in_channels=cfg.channels, patch_size=cfg.patch_size)
            self.d = Discriminator(d_cfg).to(self.device)
            self.opt_d = torch.optim.Adam(self.d.parameters(), lr=cfg.lr_d, betas=cfg.betas)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=cfg.lr_g, betas=cfg.betas)
        # Loaded before the (slow) data so that a missing weights file fails fast.
        self.vgg = load_vgg_perceptual(cfg.vgg_weights).to(self.device) if cfg.loss.perceptual > 0 else None
        if cfg.channels_last:
            self.g = self.g.to(memory_format=torch.channels_last)
        # Training steps may run a compiled view of G (same parameters); validation and export use G itself.
        self.g_train = torch.compile(self.g, backend=cfg.compile) if cfg.compile else self.g
        # With an EMA, validation, g.pt and best.pt use the average (it takes G's weights at its first update).
        self.g_ema = AveragedModel(self.g, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay)) if cfg.ema_decay else None
        self.iteration = 0
        self.wall_time = 0.0
        self.best_val = -math.inf
        self.best_val_set: list[str] | None = None  # the pairs best_val was measured on (a resumed run's)
        self.last_val: dict[str, float] = {}
        self.images: list[np.ndarray] | None = None
        self.val: ValidationSet | None = None

    # ----------------------------------------------------------------- data
    def load_data(self) -> None:
        """Decode the training (and validation) images into memory; raises train.data.DataError. A resumed run
        whose validation pairs differ from those its best score was measured on starts that score again."""
        self.images, self.val = load_run_data(self.cfg)
        if self.val is not None and self.best_val > -math.inf and self.best_val_set != validation_pairs(self.val):
            log.info("the validation set differs from the one the best score was measured on: it starts again")
            self.best_val = -math.inf

    def loader(self, start: int, stop: int) -> DataLoader:
        """Batches for iterations ``start .. stop-1`` (uint8 N×C×P×P pairs)."""
        cfg = self.cfg
        dataset = PatchPairs(
            self.images,
            cfg.channel,
            QualitySampler(cfg.qualities, cfg.quality_weights, cfg.quality_range),
            cfg.patch_size,
            cfg.patch_stride,
            cfg.crop_patches,
            cfg.patches_per_crop,
            cfg.seed,
        )
        crops = cfg.batch_size // cfg.patches_per_crop
        workers = cfg.num_workers if cfg.num_workers >= 0 else (2 if self.device.type == "cuda" else 0)
        return DataLoader(
            dataset,
            batch_size=crops,
            sampler=IndexRange(start * crops, stop * crops),
            collate_fn=collate_pairs,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    # ----------------------------------------------------------------- steps
    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True).float().div_(255.0)
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else x

    def _autocast(self, training: bool = True) -> Any:
        """bf16 autocast for training steps; validation on the CPU runs in fp32 (its numbers are the run's record)."""
        enabled = self.amp and (training or self.device.type == "cuda")
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def train_step(self, jpeg: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
        """One iteration on a uint8 batch: a G step (and a D step after warm-up). Returns the loss terms."""
        cfg, w = self.cfg, self.cfg.loss
        for opt, base in ((self.opt_g, cfg.lr_g), (self.opt_d, cfg.lr_d)):
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = lr_at(base, self.iteration, cfg, self.wall_time)
        x, y = self._to_device(jpeg), self._to_device(clean)
        full = self.iteration >= cfg.warmup_iters  # after warm-up: every term and the discriminator
        self.g.train()
        out = self._generate(x)
        terms: dict[str, torch.Tensor] = {"l1": l1_loss(out, y)}  # logged even at weight 0: the run's record
        total = w.l1 * terms["l1"]
        if w.mse > 0:
            terms["mse"] = mse_loss(out, y)
            total = total + w.mse * terms["mse"]
        if w.log_mse > 0:
            terms["log_mse"] = log_mse_loss(out, y)
            total = total + w.log_mse * terms["log_mse"]
        if full and self.vgg is not None:
            with self._autocast():
                terms["perceptual"] = self.vgg(out, y).float()
            total = total + w.perceptual * terms["perceptual"]
        if full and w.tv > 0:
            terms["tv"] = tv_loss(out)
            total = total + w.tv * terms["tv"]
        if full and self.d is not None:
            self.d.requires_grad_(False)  # G step: gradients flow through D to G only
            with self._autocast():
                terms["adv_g"] = lsgan_g_loss(self.d(out).float())
            total = total + w.adversarial * terms["adv_g"]
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        if self.g_ema is not None:
            self.g_ema.update_parameters(self.g)
        if full and self.d is not None:
            self.d.requires_grad_(True)
            with self._autocast():
                d_real, d_fake = self.d(y).float(), self.d(out.detach()).float()
            terms["adv_d"] = lsgan_d_loss(d_real, d_fake)
            self.opt_d.zero_grad(set_to_none=True)
            terms["adv_d"].backward()
            self.opt_d.step()
        self.iteration += 1
        return {"total": float(total.detach()), **{k: float(v.detach()) for k, v in terms.items()}}

    def _generate(self, x: torch.Tensor) -> torch.Tensor:
        """G's training forward (compiled if configured). A compiler failure on the first step falls back to eager
        with a warning: a run should lose its speed-up, not its time budget."""
        try:
            with self._autocast():
                return self.g_train(x).float()
        except Exception as e:
            if self.g_train is self.g or self.iteration > 0:
                raise
            log.warning("torch.compile failed (%s: %s); training eagerly", type(e).__name__, e)
            self.g_train = self.g
            self.cfg.compile = None
            with self._autocast():
                return self.g(x).float()

    @property
    def g_out(self) -> WCDGANGenerator:
        """The generator a run puts out (validation, ``g.pt``, ``best.pt``): G, or its weights' EMA."""
        return self.g_ema.module if self.g_ema is not None else self.g

    @torch.no_grad()
    def restore(self, image: np.ndarray) -> np.ndarray:
        """Run the output generator on one uint8 image (H×W×3 or H×W) → uint8 of the same shape."""
        g = self.g_out.eval()
        x = self._to_device(torch.from_numpy(image[..., None] if image.ndim == 2 else image).permute(2, 0, 1)[None])
        with self._autocast(training=False):
            y = g(x).float()
        y = (y[0].clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).cpu().numpy()
        return y[..., 0] if image.ndim == 2 else y

    def validate(self) -> dict[str, float]:
        """Mean PSNR (dB, over the configured channel) of the JPEG inputs and of G's restorations over every
        validation pair (each quality weighs the same), and the gain at each quality (``val_gain_q10``...)."""
        v = self.val
        jpeg = np.array([psnr(j, c) for j, c in zip(v.jpeg, v.clean, strict=True)])
        restored = np.array([psnr(self.restore(j), c) for j, c in zip(v.jpeg, v.clean, strict=True)])
        qualities = np.array(v.qualities)
        self.last_val = {
            "val_psnr": float(restored.mean()),
            "val_psnr_jpeg": float(jpeg.mean()),
            "val_gain": float(restored.mean() - jpeg.mean()),
        }
        if len(set(v.qualities)) > 1:
            for q in sorted(set(v.qualities)):
                at_q = qualities == q
                self.last_val[f"val_gain_q{q}"] = float(restored[at_q].mean() - jpeg[at_q].mean())
        return self.last_val

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "config": self.cfg.to_dict(),
            "iteration": self.iteration,
            "wall_time": self.wall_time,
            "best_val": self.best_val,
            "val_set": validation_pairs(self.val) if self.val is not None else None,
            "last_val": self.last_val,
            "generator": self.g.state_dict(),
            "generator_ema": self.g_ema.state_dict() if self.g_ema is not None else None,
            "discriminator": self.d.state_dict() if self.d is not None else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict() if self.opt_d is not None else None,
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.g.load_state_dict(state["generator"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.d is not None:
            self.d.load_state_dict(state["discriminator"])
            self.opt_d.load_state_dict(state["opt_d"])
        if self.g_ema is not None and state.get("generator_ema") is not None:  # else (EMA new): starts at G
            self.g_ema.load_state_dict(state["generator_ema"])
        for opt in filter(None, (self.opt_g, self.opt_d)):  # the saved state brings its betas: the config rules
            for group in opt.param_groups:
                group["betas"] = self.cfg.betas
        self.iteration, self.wall_time = int(state["iteration"]), float(state["wall_time"])
        self.best_val, self.last_val = float(state["best_val"]), dict(state["last_val"])
        self.best_val_set = state.get("val_set")  # None in states saved before 2026-12-07 (session 6): unknown
        torch.set_rng_state(state["torch_rng"])

    def generator_meta(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "train_config": cfg.to_dict(),
            "iterations": self.iteration,
            "wall_time_s": round(self.wall_time, 1),
            "patches_per_s": round(self.iteration * cfg.batch_size / self.wall_time, 2) if self.wall_time else None,
            "threads": torch.get_num_threads(),
            "bf16_autocast": self.amp,
            "device": str(self.device) if self.device.type != "cuda" else torch.cuda.get_device_name(self.device),
            "channel": cfg.channel,
            "qualities": list(range(cfg.quality_range[0], cfg.quality_range[1] + 1))
            if cfg.quality_range
            else list(cfg.qualities),
            "data_dirs": list(cfg.data_dirs),
            "val_qualities": list(cfg.val_qualities) if cfg.val_dir else None,
            **self.last_val,
        }

    def save(self) -> None:
        """Write ``last.pt`` and ``g.pt`` atomically."""
        with atomic_path(self.out / "last.pt") as tmp:
            torch.save(self.state_dict(), tmp)
        save_generator(self.out / "g.pt", self.g_out, self.generator_meta())

    def log(self, record: dict[str, Any]) -> None:
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    # ----------------------------------------------------------------- run
    def run(self, time_limit_s: float | None = None, log_every: int = 50) -> str:
        """Train until ``cfg.iterations``, the end of ``cfg.time_budget_s`` or ``time_limit_s``; save at the end.

        Returns ``"done"`` (iterations or budget reached) or ``"time-limit"``.
        """
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        if self.images is None:
            self.load_data()
        start, t0 = self.iteration, time.monotonic()
        wall0 = self.wall_time
        terms, reason, shown = _TermMeans(), "done", {}
        total = None if cfg.time_budget_s is not None else cfg.iterations  # a budgeted run ends by time, not count
        bar = tqdm(total=total, initial=start, disable=self.quiet, dynamic_ncols=True, unit="it")
        try:
            for jpeg, clean in self.loader(start, cfg.iterations):
                terms.add(self.train_step(jpeg, clean))
                self.wall_time = wall0 + time.monotonic() - t0
                bar.update(1)
                it = self.iteration
                end = self._end_reason(t0, time_limit_s)
                if terms.iterations == log_every or it == cfg.iterations or end:
                    shown = self._log_means(terms.pop())
                self._validate_and_save_when_due(it)
                bar.set_postfix(shown | self._val_postfix(), refresh=False)
                if end:
                    reason = end
                    break
        finally:
            bar.close()
        if self.val is not None and self.last_val.get("val_iter") != self.iteration:
            self._validate_and_log()
        self.save()
        return reason

    def _end_reason(self, t0: float, time_limit_s: float | None) -> str | None:
        """``"time-limit"`` once ``time_limit_s`` has passed since ``t0`` (monotonic s), ``"done"`` once
        ``cfg.time_budget_s`` of training time is spent, else None."""
        if time_limit_s is not None and time.monotonic() - t0 > time_limit_s:
            return "time-limit"
        if self.cfg.time_budget_s is not None and self.wall_time >= self.cfg.time_budget_s:
            return "done"
        return None

    def _log_means(self, means: dict[str, float]) -> dict[str, str]:
        """Log the loss terms' means since the last record; returns them shortened for the progress bar."""
        lr = self.opt_g.param_groups[0]["lr"]
        self.log({"iter": self.iteration, "time_s": round(self.wall_time, 1), "lr_g": lr, **means})
        return {k: f"{v:.4g}" for k, v in means.items()}

    def _validate_and_save_when_due(self, it: int) -> None:
        """Validation every ``cfg.val_every`` and a checkpoint every ``cfg.save_every`` iterations (0: never)."""
        cfg = self.cfg
        if self.val is not None and cfg.val_every > 0 and it % cfg.val_every == 0:
            self._validate_and_log()
        if cfg.save_every > 0 and it % cfg.save_every == 0:
            self.save()

    def _val_postfix(self) -> dict[str, str]:
        return {"val": f"{self.last_val['val_psnr']:.2f}dB"} if self.last_val else {}

    def _validate_and_log(self) -> None:
        v = self.validate()
        self.last_val["val_iter"] = self.iteration
        self.log({"iter": self.iteration, "time_s": round(self.wall_time, 1), **v})
        if v["val_psnr"] > self.best_val:
            self.best_val = v["val_psnr"]
            save_generator(self.out / "best.pt", self.g_out, self.generator_meta())


def validation_pairs(val: ValidationSet) -> list[str]:
    """What a validation score was measured on: each pair's image name and JPEG quality, sorted."""
    return sorted(f"{name} q{q}" for name, q in zip(val.names, val.qualities, strict=True))


def load_run_data(cfg: TrainConfig) -> tuple[list[np.ndarray], ValidationSet | None]:
    """The decoded training images and the validation set (None without ``cfg.val_dir``) of a run."""
    images = load_images(cfg.data_dirs, cfg.channel, min_size=cfg.patch_size)
    if not cfg.val_dir:
        return images, None
    return images, load_validation(cfg.val_dir, cfg.channel, cfg.val_qualities, cfg.val_crop, cfg.val_max_images)


def load_training_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``last.pt``; raise ResumeError if it is missing or not a training state."""
    if not Path(path).is_file():
        raise ResumeError(f"{path}: nothing to resume (no such file)")
    return load_tagged(path, STATE_FORMAT, STATE_VERSION, "training state", ResumeError)
