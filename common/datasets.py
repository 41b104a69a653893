"""Which image folders are training data and which are evaluation sets (never to be trained or calibrated on).

The one owner of that policy: ``python -m train`` refuses evaluation sets for training, ``export.build --int8``
for calibration. A source counts as an evaluation set when any part of its path is named like one (LIVE1,
Classic5, case-insensitive) or it lies under the team's ``shared/data/eval``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from common.files import shared_dir

EVAL_SET_NAMES = ("live1", "classic5")


def shared_eval_dir() -> Path:
    """``shared/data/eval``: the paper's test sets (LIVE1, Classic5)."""
    return shared_dir() / "data" / "eval"


def shared_train_dirs() -> list[Path]:
    """The team's training folders under ``shared/data/train`` (sorted; [] when absent)."""
    root = shared_dir() / "data" / "train"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def is_eval_set(path: str | os.PathLike, source_names: Iterable[str] = ()) -> bool:
    """Whether ``path`` (or one of the ``source_names`` it was packed from) is an evaluation set."""
    p = Path(path).expanduser().resolve()
    names = [part.lower() for part in p.parts] + [name.lower() for name in source_names]
    return any(name in EVAL_SET_NAMES for name in names) or p.is_relative_to(shared_eval_dir().resolve())
