"""Hostile inputs, round 2 (issue 29), for the commands around the runtime: ``runtime.cache``, ``export.triton``,
``export.opencv_compat``, ``export.build``'s publishing and the Triton client. Every case ends with one ``error:``
line (or its documented result), no traceback, nothing touched outside the tool's own files and no input modified."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from runtime.cache import main as cache_main
from runtime.engine_cache import EngineKey
from tests.conftest import run_module, tiny_model

REPO = Path(__file__).resolve().parents[1]
KEY = EngineKey(
    model_name="m", onnx_sha256="ab" * 32, precision="fp16", input_dtype="float32", output_dtype="float32",
    profiles=(("input", (1, 3, 64, 64), (4, 3, 64, 64), (4, 3, 64, 64)),), trt_version="10.13.0",
    gpu_name="GPU", compute_capability="9.0",
)  # fmt: skip


def _command(module: str, *args: object, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m module args`` in a subprocess (bounded: a hang fails the test instead of blocking it)."""
    return run_module(module, *args, timeout=timeout)


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


@pytest.mark.cli
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


# -- export.triton (issue 29 items 3 and 9, issue 26 item 5) -----------------------------------------------------


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory, "tiny.onnx", recommended_overlap=8)


def _model_copy(model: Path, folder: Path, onnx_bytes: bytes | None = None, **sidecar: object) -> Path:
    """``model`` copied into ``folder``, sidecar fields overridden, its graph replaced by ``onnx_bytes`` if given."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / model.name
    copy.write_bytes(model.read_bytes() if onnx_bytes is None else onnx_bytes)
    spec = json.loads(model.with_suffix(".json").read_text())
    copy.with_suffix(".json").write_text(json.dumps({**spec, **sidecar}))
    return copy


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _export_triton(capsys, *argv: object) -> tuple[int, str]:
    from export.triton import main as triton_main

    try:
        code = triton_main([str(a) for a in argv])
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/wcdgan_escaped_abs", "a/b", "..", ".hidden"])
def test_export_triton_refuses_names_that_leave_the_repository(model, tmp_path, capsys, name):
    repo = tmp_path / "sandbox" / "repo"
    code, err = _export_triton(capsys, "--model", model, "-o", repo, "--cpu", "--name", name)
    assert code == 2 and "not a plain file name" in err and "Traceback" not in err, err
    assert not Path("/tmp/wcdgan_escaped_abs").exists()
    assert [p for p in (tmp_path / "sandbox").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("name", ["two\nlines", "tab\there", "bell\x07", "esc\x1b[31m", "del\x7f", "c1\x85"])
def test_export_triton_refuses_control_characters_in_the_name(model, tmp_path, capsys, name):
    code, err = _export_triton(capsys, "--model", model, "-o", tmp_path / "repo", "--cpu", "--name", name)
    assert code == 2 and "control characters" in err and "Traceback" not in err, err
    assert not (tmp_path / "repo").exists()


def test_export_triton_output_that_is_a_file_is_a_usage_error(model, tmp_path, capsys):
    file = tmp_path / "notes.txt"
    file.write_text("a user's file")
    code, err = _export_triton(capsys, "--model", model, "-o", file, "--cpu")
    assert code == 2 and "exists and is not a folder" in err and "Traceback" not in err, err
    assert file.read_text() == "a user's file" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("name", ["/tmp/wcdgan_escaped_sidecar", "../escaped"])
def test_export_triton_refuses_sidecar_names_that_leave_the_repository(model, tmp_path, capsys, name):
    hostile = _model_copy(model, tmp_path / "m", name=name)
    code, err = _export_triton(capsys, "--model", hostile, "-o", tmp_path / "repo", "--cpu")
    assert code == 2 and "sidecar name" in err, err
    assert not Path(name).exists() and not (tmp_path / "escaped").exists()


@pytest.mark.parametrize(
    ("option", "value"),
    [("--queue-delay-us", -1), ("--queue-delay-us", 10**20), ("--max-batch", 0), ("--max-batch", 2**40),
     ("--instances", -5), ("--instances", 10**12)],
)  # fmt: skip
def test_export_triton_option_ranges_are_usage_errors(model, tmp_path, capsys, option, value):
    code, err = _export_triton(capsys, "--model", model, "-o", tmp_path / "repo", "--cpu", option, value)
    assert code == 2 and f"{option} must be in" in err and "Traceback" not in err, err
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize(
    ("case", "message"),
    [("float64", "input_dtype 'float64'"), ("junk", "not a valid ONNX model"), ("channels", "channels, its sidecar 1"),
     ("names", "are not its sidecar's")],
)  # fmt: skip
def test_export_triton_checks_the_model_before_writing(model, tmp_path, capsys, case, message):
    fields = {"float64": {"input_dtype": "float64"}, "channels": {"channels": 1, "color": "y"},
              "names": {"input_name": "x"}}.get(case, {})  # fmt: skip
    hostile = _model_copy(model, tmp_path / "m", b"\x08\x07junk" * 10 if case == "junk" else None, **fields)
    code, err = _export_triton(capsys, "--model", hostile, "-o", tmp_path / "repo", "--cpu")
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "repo").exists()


def test_export_triton_refuses_an_existing_entry_without_overwrite(model, tmp_path, capsys):
    repo = tmp_path / "repo"
    assert _export_triton(capsys, "--model", model, "-o", repo, "--cpu", "--max-batch", "4")[0] == 0
    before = _tree(repo)
    code, err = _export_triton(capsys, "--model", model, "-o", repo, "--cpu", "--max-batch", "8")
    assert code == 2 and "exists (use -f/--overwrite" in err, err
    assert _tree(repo) == before
    assert _export_triton(capsys, "--model", model, "-o", repo, "--cpu", "--max-batch", "8", "-f")[0] == 0
    assert "max_batch_size: 8" in (repo / "tiny" / "config.pbtxt").read_text()
    assert sorted(p.name for p in repo.iterdir()) == ["tiny"]  # no staging or old folder left behind


def test_export_triton_overwrite_replaces_a_link_not_its_target(model, tmp_path, capsys):
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "config.pbtxt").write_text("a user's file")
    repo.mkdir()
    (repo / "tiny").symlink_to(elsewhere)
    assert _export_triton(capsys, "--model", model, "-o", repo, "--cpu", "-f")[0] == 0
    assert (elsewhere / "config.pbtxt").read_text() == "a user's file" and not (repo / "tiny").is_symlink()


# -- export.opencv_compat (issue 29 items 3 and 9) ---------------------------------------------------------------


def _opencv_compat(*argv: object) -> subprocess.CompletedProcess:
    return _command("export.opencv_compat", *argv)


@pytest.mark.cli
@pytest.mark.parametrize(
    ("case", "message"),
    [("absolute name", "sidecar name"), ("junk", "not a valid ONNX model"), ("channels", "channels, its sidecar 1"),
     ("own input", "the input itself")],
)  # fmt: skip
def test_export_opencv_compat_refuses_in_one_line(model, tmp_path, case, message):
    fields = {"absolute name": {"name": str(tmp_path / "outside" / "abs")}, "channels": {"channels": 1, "color": "y"},
              "own input": {"name": "x"}}.get(case, {})  # fmt: skip
    hostile = _model_copy(model, tmp_path / "m", b"\x08\x07junk" * 10 if case == "junk" else None, **fields)
    if case == "own input":
        hostile = hostile.rename(hostile.with_name("x_opencv.onnx"))
        hostile.with_suffix(".json").write_text(hostile.with_name("tiny.json").read_text())
    before = _tree(tmp_path)
    proc = _opencv_compat(hostile, "-o", tmp_path / "m")
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert _tree(tmp_path) == before  # the input untouched, nothing written anywhere


# -- export.build's publishing (issue 29 item 3) -------------------------------------------------------------------


def _checkpoint(path: Path) -> Path:
    import torch

    from models import GeneratorConfig, WCDGANGenerator, save_generator

    torch.manual_seed(0)
    save_generator(path, WCDGANGenerator(GeneratorConfig(features=16, num_blocks=1, branch_channels=8)))
    return path


@pytest.mark.parametrize("folder", ["g.json", "g_fp16.json", "g_fp16.onnx"])
def test_export_build_publishes_nothing_when_a_target_is_a_folder(tmp_path, capsys, folder):
    from export.build import main as build_main

    ckpt, out = _checkpoint(tmp_path / "g.pt"), tmp_path / "out"
    (out / folder).mkdir(parents=True)
    assert build_main(["--ckpt", str(ckpt), "-o", str(out), "--fp16", "--engine", "skip", "-q"]) == 1
    err = capsys.readouterr().err
    assert "a folder is in the way" in err and folder in err and len(err.strip().splitlines()) == 1, err
    assert [p.name for p in out.iterdir()] == [folder]  # nothing half-published, no staging folder left


@pytest.mark.parametrize("name", ["../escaped", "/tmp/wcdgan_escaped_build", ".hidden"])
def test_export_build_refuses_names_that_leave_the_output_folder(tmp_path, capsys, name):
    from export.build import main as build_main

    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error, before any work
        build_main(["--ckpt", str(tmp_path / "g.pt"), "-o", str(tmp_path / "out"), "--name", name])
    assert exit_info.value.code == 2 and "not a plain file name" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not Path(name).exists()


# -- the Triton client (issue 29 item 10), against tests/fake_triton.py ---------------------------------------------


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory) -> Path:
    from skimage import data

    from tests.runtime_fixtures import write_jpeg

    return write_jpeg(tmp_path_factory.mktemp("jpeg") / "a.jpg", data.astronaut()[:100, :100], 30)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Path:
    """A model whose window at --tile 32 is 64×64, the fake server's."""
    from tests.runtime_fixtures import local_net

    return local_net(tmp_path_factory.mktemp("served") / "tiny.onnx", recommended_overlap=16)


def _infer_through(mode: str, served: Path, jpeg: Path, out: Path) -> tuple[subprocess.CompletedProcess, str]:
    pytest.importorskip("tritonclient", reason="tritonclient is not installed (pip install -e '.[triton]')")
    from tests.fake_triton import FakeTriton

    with FakeTriton(mode) as server:
        proc = _command("runtime.infer", jpeg, "-o", out, "--model", served, "--tile", 32, "--backend", "triton",
                        "--url", server.url)  # fmt: skip
    return proc, server.url


@pytest.mark.cli
@pytest.mark.parametrize(
    ("mode", "message"),
    [("meta_list", "metadata of model 'tiny' is not a model description"),
     ("meta_no_shape", "metadata of model 'tiny' is not a model description"),
     ("infer_500", "model crashed (fake)"),  # the load-time self-test's request fails
     ("short_output", "its answer is not an inference result"),
     ("bad_json", "its answer is not an inference result"),
     ("garbage", "its answer is not an inference result (UnicodeError")],
)  # fmt: skip
def test_triton_client_failures_at_start_are_one_line_exit_2(served, jpeg, tmp_path, mode, message):
    proc, url = _infer_through(mode, served, jpeg, tmp_path / "out.png")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
    assert f"Triton server {url}" in lines[0] or f"Triton server http://{url}" in lines[0]
    assert not (tmp_path / "out.png").exists()


@pytest.mark.cli
def test_triton_server_dying_mid_run_is_one_line(served, jpeg, tmp_path):
    proc, url = _infer_through("die_after_one", served, jpeg, tmp_path / "out.png")
    errors = [line for line in proc.stderr.splitlines() if "rror" in line]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "Greenlet" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and f"Triton server http://{url}" in errors[0], proc.stderr
    assert not (tmp_path / "out.png").exists()


def _spec(served: Path):
    from runtime.spec import ModelSpec

    return ModelSpec.load(served.with_suffix(".json"))


def test_triton_server_that_never_answers_times_out(served, monkeypatch):
    pytest.importorskip("tritonclient", reason="tritonclient is not installed (pip install -e '.[triton]')")
    import time

    import numpy as np

    from runtime.backends import triton
    from runtime.backends.base import BackendUnavailable
    from tests.fake_triton import FakeTriton

    monkeypatch.setattr(triton, "CONNECT_TIMEOUT_S", 1.0)
    with FakeTriton("hang_all") as server:
        start = time.monotonic()
        with pytest.raises(BackendUnavailable, match="not reachable"):
            triton.TritonBackend(server.url, _spec(served), (64, 64), 4)
        assert time.monotonic() - start < 10
    with FakeTriton("hang") as server:  # start-up checks answered, inference requests never
        backend = triton.TritonBackend(server.url, _spec(served), (64, 64), 4, timeout_s=1.0)
        start = time.monotonic()
        with pytest.raises(triton.TritonError, match=f"Triton server http://{server.url}"):
            backend.run(np.zeros((2, 3, 64, 64), np.float32))
        assert time.monotonic() - start < 10
        backend.close()


def test_triton_client_closes_every_client_it_made(served, monkeypatch):
    """Clients made by the start-up checks and in other threads are closed explicitly, never left to tritonclient's
    ``__del__`` (which prints a traceback when it runs at interpreter exit)."""
    tritonclient_http = pytest.importorskip("tritonclient.http", reason="tritonclient is not installed")
    import gc
    import threading

    import numpy as np

    from runtime.backends.triton import TritonBackend
    from tests.fake_triton import FakeTriton

    opened, closed = [], []
    original_init, original_close = (
        tritonclient_http.InferenceServerClient.__init__,
        tritonclient_http.InferenceServerClient.close,
    )

    def init(self, *args, **kwargs):
        opened.append(self)  # the objects, not their ids: an id is reused once its object is collected
        original_init(self, *args, **kwargs)

    def close(self):
        closed.append(self)
        original_close(self)

    gc.collect()  # earlier tests' backends close their clients when collected: not during this test

    monkeypatch.setattr(tritonclient_http.InferenceServerClient, "__init__", init)
    monkeypatch.setattr(tritonclient_http.InferenceServerClient, "close", close)
    with FakeTriton("ok") as server:
        backend = TritonBackend(server.url, _spec(served), (64, 64), 4)
        batch = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
        np.testing.assert_array_equal(backend.run(batch), batch)  # the fake echoes
        worker = threading.Thread(target=backend.run, args=(batch,))
        worker.start()
        worker.join()
        backend.close()
    assert len(opened) == 3 and all(any(c is o for c in closed) for o in opened)  # probe, this thread's, the worker's


def test_triton_client_refuses_a_float64_sidecar(served):
    pytest.importorskip("tritonclient", reason="tritonclient is not installed (pip install -e '.[triton]')")
    import dataclasses

    from runtime.backends.base import BackendUnavailable
    from runtime.backends.triton import TritonBackend
    from tests.fake_triton import FakeTriton

    with FakeTriton("ok") as server, pytest.raises(BackendUnavailable, match="not 'float64'"):
        TritonBackend(server.url, dataclasses.replace(_spec(served), input_dtype="float64"), (64, 64), 4)
