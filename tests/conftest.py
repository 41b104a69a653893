"""Shared fixtures: the repository root and the team's ``../shared`` inputs (skipped cleanly when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WCDGAN_SHARED", REPO_ROOT.parent / "shared"))

# Two cores are shared by torch, ORT and OpenCV in CI: one thread each avoids oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (data, weights); skips the test when this checkout has none beside it."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not found: the team's shared data/weights are not beside this checkout")
    return SHARED
