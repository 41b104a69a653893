"""Restores are bit-identical across refactors: the bundled example and a small folder, through the API and the CLI,
hashed and compared with ``tests/data/restore_reference.json``.

The reference was produced by the code *before* the settings/CLI/lifecycle refactor of issue 30 (commit 7ddb59c) with
``PYTHONPATH=. python -m tests.test_restore_identity`` and committed; CI cannot run an older checkout. Regenerate it
only for a change that is meant to alter outputs (a new bundled model), and say so in the commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from pathlib import Path

import cv2
import pytest

from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "astronaut_q10.jpg"
REFERENCE = Path(__file__).resolve().parent / "data" / "restore_reference.json"


def pixel_hash(path: Path) -> str:
    """sha256 of the decoded pixels with their shape and dtype (the PNG encoder's bytes may differ, pixels may not)."""
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return hashlib.sha256(f"{pixels.shape}{pixels.dtype}".encode() + pixels.tobytes()).hexdigest()


def make_folder(folder: Path) -> Path:
    """Three inputs from the example: itself (JPEG q10), an RGB crop and a gray crop (lossless PNGs: no encoder in
    the loop, so the inputs are the same everywhere)."""
    folder.mkdir(parents=True)
    shutil.copy(EXAMPLE, folder / "astronaut.jpg")
    decoded = cv2.imread(str(EXAMPLE))
    cv2.imwrite(str(folder / "crop.png"), decoded[40:140, 60:210])
    cv2.imwrite(str(folder / "gray.png"), cv2.cvtColor(decoded[200:290, 100:170], cv2.COLOR_BGR2GRAY))
    return folder


def restore_hashes(work: Path) -> dict[str, str]:
    """Hashes of: the example through the API (precision auto and fp32, default tile and a small one) and a folder
    through ``runtime.infer`` (default options and ``--tile 64``, both without the projection)."""
    from runtime.infer import main
    from runtime.restorer import Restorer

    rgb = cv2.cvtColor(cv2.imread(str(EXAMPLE)), cv2.COLOR_BGR2RGB)
    hashes = {}
    for name, options in {"api_auto": {}, "api_fp32_tile64": {"precision": "fp32", "tile": 64}}.items():
        restored = Restorer(backend="ort-cpu", **options)(rgb, quality=10)
        hashes[name] = hashlib.sha256(restored.tobytes()).hexdigest()
    src = make_folder(work / "in")
    for name, options in {"cli_default": [], "cli_tile64": ["--tile", "64"]}.items():
        out = work / name
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # --no-consistent:
            # the reference predates the projection (on for JPEG inputs by default since issue 34): the restoration
            assert main([str(src), "-o", str(out), "--backend", "ort-cpu", "-q", "--no-consistent", *options]) == 0
        for path in sorted(out.iterdir()):
            hashes[f"{name}/{path.name}"] = pixel_hash(path)
    return hashes


@pytest.mark.slow
def test_restores_match_the_pre_refactor_reference(tmp_path):
    expected = json.loads(REFERENCE.read_text())
    assert restore_hashes(tmp_path) == expected


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        hashes = restore_hashes(Path(tmp))
    REFERENCE.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    print(f"wrote {REFERENCE} ({len(hashes)} hashes)")
