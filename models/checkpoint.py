"""Self-describing generator checkpoints: ``{format, version, config, state_dict, meta}``."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from common.files import atomic_path
from models.wcdgan import GeneratorConfig, WCDGANGenerator

FORMAT = "wcdgan-generator"
VERSION = 1


class CheckpointError(ValueError):
    """The file is missing, unreadable or not a WCDGAN generator checkpoint."""


def save_generator(path: str | os.PathLike, model: WCDGANGenerator, meta: dict[str, Any] | None = None) -> None:
    """Write ``model`` (weights as stored, config, free-form ``meta``) to ``path`` atomically."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": dataclasses.asdict(model.cfg),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_tagged(
    path: str | os.PathLike, fmt: str, version: int, what: str = "checkpoint", error: type[Exception] = CheckpointError
) -> dict[str, Any]:
    """Load a ``torch.save``d dict tagged ``{"format": fmt, "version": ≤ version}`` on CPU.

    Raises ``error`` with a message for the user (naming the file as a ``what``) when the file is missing,
    unreadable, of another format or too new.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such {what} file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for foreign or corrupt files
        raise error(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise error(f"{path}: not a WCDGAN {what} (expected format '{fmt}')")
    if payload.get("version", 0) > version:
        raise error(f"{path}: {what} version {payload['version']} is newer than supported ({version})")
    return payload


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate a generator checkpoint's payload (on CPU); raise :class:`CheckpointError` if it isn't one."""
    return load_tagged(path, FORMAT, VERSION)


def load_generator(path: str | os.PathLike) -> tuple[WCDGANGenerator, dict[str, Any]]:
    """Rebuild the generator from the file alone. Returns ``(model in eval mode on CPU, meta)``."""
    payload = read_checkpoint(path)
    try:
        model = WCDGANGenerator(GeneratorConfig(**payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        raise CheckpointError(f"{path}: checkpoint does not match the WCDGAN architecture ({e})") from None
    return model.eval(), payload.get("meta", {})
