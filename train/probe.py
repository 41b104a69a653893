"""Measure training throughput per batch size and memory format before a run (``python -m train --batch auto``).

Why: a small convolution net's step time on a GPU is dominated by kernel launches at the paper's batch of 16,
so a larger batch can process several times more patches per second — how many depends on the GPU and on
what else shares it (a campaign runs several trainings at once), so it is measured, not assumed. On an H200
(bf16, two runs probing at once; each run's ``batch_probe`` in ``benchmarks/results/gpu_window_1/campaign.json``)
patches/s still grew from batch 32 to 64 and channels_last was no faster, hence the default candidates
32 / 64 / 128 in the standard memory format. Each candidate runs real generator steps (bf16 autocast on CUDA,
L1 loss, Adam) on random patches for a fixed time; the data pipeline is not involved (its rate is measured
separately, ``benchmarks/results/README.md``, "Measurements behind the code").

The choice: the smallest batch within ``tolerance`` of the best samples/s (a smaller batch takes more
optimiser steps per sample), and the lr grows with the square root of the batch (Adam's usual rule),
relative to the paper's batch of 16.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from models.wcdgan import GeneratorConfig, WCDGANGenerator

PAPER_BATCH = 16


@dataclass
class ProbeResult:
    """Measured speed of one candidate: ``samples_per_s`` (0 when it ran out of memory), peak device MiB."""

    batch: int
    channels_last: bool
    samples_per_s: float
    step_ms: float
    steps: int
    peak_mib: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast speeds training up on ``device``: CUDA, or a CPU with native bf16 (AVX512-BF16 or AMX).

    Measured on the team's 2-core AMD EPYC (AVX512-BF16), one thread, 16 patches of 80²: bf16 autocast with
    channels_last trains 2.3-2.6× as many patches/s as fp32 (``benchmarks/results/README.md``). Without native
    support bf16 is emulated and slower than fp32.
    """
    if device.type == "cuda":
        return True
    cpu = getattr(torch, "cpu", None)
    return device.type == "cpu" and any(
        bool(getattr(cpu, probe, lambda: False)()) for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )


def probe_training_speed(
    generator: GeneratorConfig,
    patch: int,
    device: torch.device,
    batches: tuple[int, ...] = (32, 64, 128),
    formats: tuple[bool, ...] = (False,),
    seconds: float = 1.2,
    amp: bool = True,
) -> list[ProbeResult]:
    """Time generator training steps for every (channels_last, batch) pair, ``seconds`` each after 2 warm-up steps."""
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True  # as in training (train.loop): fixed shapes, fastest algorithms
    results = []
    for channels_last in formats:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        torch.manual_seed(0)
        model = WCDGANGenerator(generator).to(device, memory_format=fmt).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-5, betas=(0.5, 0.999))
        for batch in batches:
            shape = (batch, generator.in_channels, patch, patch)
            x = torch.rand(shape, device=device).contiguous(memory_format=fmt)
            y = torch.rand(shape, device=device).contiguous(memory_format=fmt)
            step = functools.partial(_l1_step, model, opt, x, y, amp and fast_bf16(device))
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            try:
                steps, elapsed = _timed(step, seconds, torch.cuda.synchronize if cuda else None)
            except torch.OutOfMemoryError:
                results.append(ProbeResult(batch, channels_last, 0.0, math.inf, 0, None))
                torch.cuda.empty_cache()
                continue
            peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
            rate, step_ms = batch * steps / elapsed, 1e3 * elapsed / steps
            results.append(ProbeResult(batch, channels_last, rate, step_ms, steps, peak))
    return results


def _l1_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, amp: bool) -> None:
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        out = model(x).float()
    loss = (out - y).abs().mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _timed(step: Callable[[], None], seconds: float, sync: Callable[[], None] | None) -> tuple[int, float]:
    """Run ``step`` until ``seconds`` have passed (≥ 1 step); returns (steps, seconds), device-synchronised."""
    for _ in range(2):  # warm-up: cuDNN algorithm search, allocations
        step()
    if sync:
        sync()
    steps, t0 = 0, time.perf_counter()
    while steps == 0 or time.perf_counter() - t0 < seconds:
        step()
        steps += 1
        if sync and steps % 4 == 0:
            sync()
    if sync:
        sync()
    return steps, time.perf_counter() - t0


def choose(results: list[ProbeResult], tolerance: float = 0.1) -> ProbeResult:
    """The smallest batch whose samples/s is within ``tolerance`` of the best (ties: the faster format)."""
    best = max(r.samples_per_s for r in results)
    if best <= 0:
        raise RuntimeError("every probed batch size ran out of device memory")
    good = [r for r in results if r.samples_per_s >= (1 - tolerance) * best]
    return min(good, key=lambda r: (r.batch, -r.samples_per_s))


def scaled_lr(lr: float, batch: int) -> float:
    """``lr`` (meant for the paper's batch of 16) scaled by sqrt(batch / 16)."""
    return lr * math.sqrt(batch / PAPER_BATCH)
