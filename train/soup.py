"""Average the weights of generator checkpoints of one architecture (a "model soup", Wortsman et al. 2022).

Checkpoints from one run or lineage that were fine-tuned towards different ends (here: plain MSE, strong at low JPEG
qualities, and log-MSE, strong at high ones) usually lie in one basin, so their weight average keeps much of each
one's strength; judge it on validation images like any other candidate. The result is a normal self-describing
checkpoint: the last input's metadata (its validation scores left out), plus ``soup`` (the inputs and weights)::

    python -m train.soup runs/a/best.pt runs/b/g.pt -o soup.pt              # equal weights
    python -m train.soup A.pt B.pt --weights 0.7 0.3 -o soup.pt
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from common.cli import UsageError, run_cli
from models.checkpoint import CheckpointError, load_generator, save_generator
from models.wcdgan import WCDGANGenerator


def average_generators(models: Sequence[WCDGANGenerator], weights: Sequence[float]) -> WCDGANGenerator:
    """A new generator whose floating-point tensors are the ``weights``-weighted mean of ``models``' (weights are
    normalised to sum 1). Raises ValueError unless all models have one configuration."""
    if len(models) != len(weights) or not models:
        raise ValueError("one weight per checkpoint is needed")
    if any(m.cfg != models[0].cfg for m in models):
        raise ValueError("the checkpoints have different architectures (GeneratorConfig); only one can be averaged")
    if min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {list(weights)}")
    share = [w / sum(weights) for w in weights]
    states = [m.state_dict() for m in models]
    mean = {
        key: sum(s * state[key].double() for s, state in zip(share, states, strict=True)).to(value.dtype)
        if value.is_floating_point()
        else value
        for key, value in states[0].items()
    }
    soup = WCDGANGenerator(models[0].cfg)
    soup.load_state_dict(mean)
    return soup.eval()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.soup", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", type=Path, metavar="CKPT", help="generator checkpoints (g.pt, best.pt)")
    p.add_argument("--weights", nargs="+", type=float, metavar="W", help="one weight per checkpoint (default: equal)")
    p.add_argument("-o", "--output", type=Path, required=True, help="the averaged checkpoint to write")
    p.add_argument("-f", "--force", action="store_true", help="replace an existing output")
    return p.parse_args(argv)


def soup(args: argparse.Namespace) -> int:
    weights = args.weights or [1.0] * len(args.checkpoints)
    if args.output.resolve() in {c.resolve() for c in args.checkpoints}:
        raise UsageError(f"{args.output}: is one of the inputs; refusing to overwrite an input")
    if args.output.exists() and not args.force:
        raise UsageError(f"{args.output}: exists (use -f to replace it)")
    try:
        loaded = [load_generator(c) for c in args.checkpoints]
        model = average_generators([m for m, _ in loaded], weights)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    meta = {k: v for k, v in loaded[-1][1].items() if not k.startswith("val_")}  # scores of an input, not the soup
    meta["soup"] = [{"checkpoint": str(c), "weight": w} for c, w in zip(args.checkpoints, weights, strict=True)]
    save_generator(args.output, model, meta)
    print(args.output)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(soup, _parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
