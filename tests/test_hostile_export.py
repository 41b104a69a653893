"""Hostile inputs, round 2 (issue 29), for the commands around the runtime: ``runtime.cache``, ``export.triton``,
``export.opencv_compat``, ``export.build``'s publishing and the Triton client. Every case ends with one ``error:``
line (or its documented result), no traceback, nothing touched outside the tool's own files and no input modified."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.cache import main as cache_main
from runtime.engine_cache import EngineKey

REPO = Path(__file__).resolve().parents[1]
KEY = EngineKey(
    model_name="m", onnx_sha256="ab" * 32, precision="fp16", input_dtype="float32", output_dtype="float32",
    profiles=(("input", (1, 3, 64, 64), (4, 3, 64, 64), (4, 3, 64, 64)),), trt_version="10.13.0",
    gpu_name="GPU", compute_capability="9.0",
)  # fmt: skip


def _command(module: str, *args: object, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m module args`` in a subprocess (bounded: a hang fails the test instead of blocking it)."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


def _entry(cache: Path, key: EngineKey = KEY, **record: object) -> Path:
    """A cache entry as EngineCache writes it (plan, sidecar), record fields overridden by ``record``."""
    cache.mkdir(parents=True, exist_ok=True)
    sidecar = cache / f"{key.slot()}.json"
    sidecar.with_suffix(".plan").write_bytes(b"PLAN")
    fields = {"format": "wcdgan-engine", "key": key.to_dict(), "plan_sha256": "0", "size": 4, "created": "now"}
    sidecar.write_text(json.dumps({**fields, **record}))
    return sidecar


# -- runtime.cache (issue 29 item 2) ---------------------------------------------------------------------------


def test_cache_clear_never_follows_links_out_of_the_cache(tmp_path, capsys):
    cache, elsewhere = tmp_path / "cache", tmp_path / "elsewhere"
    elsewhere.mkdir()
    victims = [elsewhere / "1.blob", elsewhere / "trt10.13.0-GPU-sm9.0.cache", elsewhere / "x.plan"]
    for path in victims:
        path.write_bytes(b"a user's file")
    sidecar = _entry(cache)
    (cache / "openvino").symlink_to(elsewhere)
    (cache / "timing").symlink_to(elsewhere)
    sidecar.with_suffix(".plan").unlink()
    sidecar.with_suffix(".plan").symlink_to(elsewhere / "x.plan")  # our entry's plan, a link: the link goes
    assert cache_main(["list", "--cache-dir", str(cache)]) == 0
    assert "OpenVINO" not in capsys.readouterr().out  # not counted through the link either
    assert cache_main(["clear", "--cache-dir", str(cache)]) == 0
    assert "removed 2 file(s)" in capsys.readouterr().out  # sidecar + the plan link
    assert all(path.read_bytes() == b"a user's file" for path in victims)
    assert sorted(p.name for p in cache.iterdir()) == ["openvino", "timing"]  # the links to folders stay


def test_cache_commands_do_not_block_on_a_fifo_named_json(tmp_path):
    cache = tmp_path / "cache"
    _entry(cache)
    os.mkfifo(cache / "pipe.json")
    os.mkfifo(cache / f"{KEY.slot()[:-1]}0.json")
    for action in ("list", "clear"):
        proc = _command("runtime.cache", action, "--cache-dir", cache, timeout=30)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert (cache / "pipe.json").exists() and "removed 2 file(s)" in proc.stdout


@pytest.mark.parametrize(
    ("name", "record"),
    [
        ("size a string", {"size": "big"}),
        ("profiles a number", {"key": {**KEY.to_dict(), "profiles": 5}}),
        ("profile too short", {"key": {**KEY.to_dict(), "profiles": [["input", [1, 3]]]}}),
        ("shape of strings", {"key": {**KEY.to_dict(), "profiles": [["input", ["a"], ["b"], ["c"]]]}}),
        ("created a dict", {"created": {"when": 1}}),
    ],
)
def test_cache_list_reports_malformed_entries_in_one_line(tmp_path, capsys, name, record):
    """A record whose file name is its key's slot (so it looks like ours) but whose fields have the wrong types."""
    cache = tmp_path / "cache"
    fields = {"format": "wcdgan-engine", "key": KEY.to_dict(), "plan_sha256": "0", "size": 4, "created": "now"}
    fields |= record
    key = fields["key"]
    slot = KEY.slot() if key == KEY.to_dict() else _slot_of(key)
    cache.mkdir()
    (cache / f"{slot}.plan").write_bytes(b"PLAN")
    (cache / f"{slot}.json").write_text(json.dumps(fields))
    assert cache_main(["list", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert f"{slot}  (unreadable sidecar: " in out  # listed as damaged, in its one row
    assert cache_main(["clear", "--cache-dir", str(cache)]) == 0
    assert (cache / f"{slot}.json").exists()  # not provably ours: kept


def _slot_of(key: dict) -> str:
    """The slot EngineKey.slot() computes for a raw JSON key (any field types)."""
    import hashlib

    from common.files import safe_name

    fields = {k: v for k, v in key.items() if k != "trt_version"}
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
    return f"{safe_name(str(key['model_name']))}-{digest}"


def test_cache_list_survives_deeply_nested_json(tmp_path, capsys):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "deep.json").write_text('{"format": "wcdgan-engine", "key": ' + "[" * 100000 + "]" * 100000 + "}")
    (cache / "deep.plan").write_bytes(b"PLAN")
    assert cache_main(["list", "--cache-dir", str(cache)]) == 0
    assert "nested too deeply" in capsys.readouterr().out
    assert cache_main(["clear", "--cache-dir", str(cache)]) == 0
    assert (cache / "deep.json").exists()  # not provably ours: kept
