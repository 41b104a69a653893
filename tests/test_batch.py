"""``python -m runtime.batch`` on a local Ray (2 CPUs): same outputs as runtime.infer, error rows, resume after
SIGTERM and SIGKILL, usage errors without tracebacks. A Ray start costs 5-10 s here: one test holds the three runs."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from argparse import Namespace
from pathlib import Path

import cv2
import filelock
import numpy as np
import pytest
from skimage import data

from runtime.infer import main as infer_main
from runtime.io import read_image
from runtime.strength import blend
from tests.conftest import MODULE_ENV, REPO_ROOT, assert_imports_without_torch, module_command, tiny_model
from tests.runtime_fixtures import write_jpeg

pytest.importorskip("ray.data", reason="runtime.batch needs Ray Data: pip install -e '.[ray]'")

from runtime.batch import LOCK_NAME, MANIFEST_NAME, SETUP_FAILED, RestoreActor, UsageError, list_inputs, pool_size
from runtime.batch import main as batch_main
from runtime.settings import RestoreSettings

pytestmark = pytest.mark.ray

ENV = MODULE_ENV


def batch(*args, **popen) -> subprocess.Popen:
    cmd = module_command("runtime.batch", *args)
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=ENV, stderr=subprocess.PIPE, text=True, **popen)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=180)
    assert "Traceback" not in err, err
    return proc.returncode, err


def rows(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def leftovers(folder: Path) -> list[Path]:
    return list(folder.glob(".*.tmp*"))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory)


@pytest.mark.cli
def test_killed_jobs_resume_to_the_outputs_of_infer(tmp_path, model):
    """SIGTERM, then SIGKILL of the whole job half way, then a run to the end: the outputs are those of
    runtime.infer, bad files are error rows, nothing partial is left; a rerun of finished work starts no Ray."""
    src = tmp_path / "in"
    src.mkdir()
    image = cv2.resize(data.astronaut(), (384, 384))
    qualities = {f"f{i:02d}.jpg": 10 + 5 * i for i in range(12)}
    for name, quality in qualities.items():
        write_jpeg(src / name, image, quality)
    full = (src / "f00.jpg").read_bytes()
    (src / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (src / "text.jpg").write_text("not a JPEG")
    out = tmp_path / "out"
    manifest = out / MANIFEST_NAME
    args = (src, out, "--model", model, "--tile", "32")

    def run_until_rows(count: int) -> subprocess.Popen:
        proc = batch(*args, "--actors", "1", "-q", start_new_session=True)  # own process group: Ray's included
        while not (manifest.exists() and manifest.read_text().count('"ok"') >= count):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        return proc

    proc = run_until_rows(1)
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert code == 143 and "interrupted" in err
    assert not leftovers(out)
    proc = run_until_rows(len(list(out.glob("*.png"))) + 1)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job at once: driver, raylet, workers
    proc.communicate(timeout=60)
    assert len(list(out.glob("*.png"))) < 12  # killed half way

    proc = batch(*args, "--actors", "2", "--compare", stdout=subprocess.PIPE)
    summary, err = proc.communicate(timeout=180)
    assert proc.returncode == 1 and "2 input(s) failed" in err and "Traceback" not in err, err
    restored = re.fullmatch(r"(\d+) restored, (\d+) skipped, 2 failed in [\d.]+ s: [\d.]+ MP, [\d.]+ s/MP "
                            r"\(Ray start included; backend: ort-cpu; \1 projected, consistent ≥ ([\d.]+) %\)\n"
                            r"compare report: (.*)\n", summary)  # fmt: skip
    assert restored and Path(restored[4]) == out / "compare" / "report.html"
    pictures = sorted(p.name for p in (out / "compare").iterdir())  # compared on the driver
    assert int(restored[1]) > 0 and int(restored[2]) > 0
    assert len(pictures) == len(qualities) + 1 and pictures[-1] == "report.html"  # skipped ones: existing outputs
    report = Path(restored[4]).read_text(encoding="utf-8")
    assert report.count("<td>local</td><td>fp32</td><td>ort-cpu</td>") == int(restored[1])
    assert report.count("<td>–</td><td>–</td><td>–</td><td>–</td>") == int(restored[2])
    assert not leftovers(out)
    reference = tmp_path / "reference"
    assert infer_main([str(src), "-o", str(reference), "--model", str(model), "--tile", "32", "-q"]) == 1
    assert sorted(p.name for p in reference.iterdir()) == sorted(p.name for p in out.glob("*.png"))
    for path in reference.iterdir():
        assert (out / path.name).read_bytes() == path.read_bytes(), path.name  # nothing partial was kept
    last_run = {Path(r["input"]).name: r for r in rows(manifest)[-14:]}
    assert sorted(last_run) == sorted(p.name for p in src.iterdir())
    assert all(last_run[name]["status"] in ("ok", "skipped") for name in qualities)  # skipped: done when killed
    assert last_run["truncated.jpg"]["status"] == last_run["text.jpg"]["status"] == "error"
    assert "truncated JPEG" in last_run["truncated.jpg"]["error"] and "text.jpg" in last_run["text.jpg"]["error"]
    shares = [r["consistent"] for r in last_run.values() if r["status"] == "ok"]
    assert len(shares) == int(restored[1]) and min(shares) < 1  # some restorations lost a few coefficients
    assert float(restored[3]) <= 100 * min(shares) < float(restored[3]) + 0.01  # the summary's bound is the lowest
    for result in rows(manifest):
        if result["status"] == "ok":
            assert result["jpeg_quality"] == qualities[Path(result["input"]).name]
            assert result["model"] == "local" and result["backend"] == "ort-cpu" and result["error"] is None
            assert result["seconds"] > 0 and result["megapixels"] == pytest.approx(384 * 384 / 1e6)

    listing = tmp_path / "good.txt"  # a manifest of the good files: all done, so Ray is not even started
    listing.write_text("# done already\n" + "".join(f"in/{name}\n" for name in qualities))
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    proc = batch(listing, out, "--model", model, stdout=subprocess.PIPE)
    summary, err = proc.communicate(timeout=180)
    assert proc.returncode == 0 and "Traceback" not in err and "Ray on" not in err
    assert "0 restored, 12 skipped, 0 failed" in summary  # results on stdout (the console contract)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == before
    assert [r["status"] for r in rows(manifest)[-12:]] == ["skipped"] * 12


def test_usage_errors_are_one_line(tmp_path, model, capsys):
    write_jpeg(tmp_path / "a.jpg", data.astronaut()[:32, :32], 10)
    out = tmp_path / "out"
    cases = [
        ([str(tmp_path / "missing"), str(out)], "no such file"),
        ([str(tmp_path / "a.jpg"), str(out), "--actors", "0"], "--actors must be at least 1"),
        ([str(tmp_path / "a.jpg"), str(out), "--overlap", "-1"], "--overlap must be"),
        ([str(tmp_path / "a.jpg"), str(out), "--gpus-per-actor", "1.5"], "--gpus-per-actor must be"),
        ([str(tmp_path / "a.jpg"), str(out), "--strength", "0"], "--strength must be a number in (0, 1]"),
        ([str(tmp_path / "a.jpg"), str(out), "--reference", str(tmp_path)], "--reference needs --compare"),
        ([str(tmp_path / "a.jpg"), str(out), "--model", str(tmp_path / "nope.onnx")], "no such model"),
    ]
    for argv, message in cases:
        assert batch_main(argv) == 2, argv
        assert message in capsys.readouterr().err
    out.mkdir()
    with filelock.FileLock(str(out / LOCK_NAME), timeout=0):
        assert batch_main([str(tmp_path / "a.jpg"), str(out), "--model", str(model)]) == 2
    assert "another runtime.batch job" in capsys.readouterr().err
    with pytest.raises(UsageError, match="need 2 CPUs and 2 GPUs; Ray has 2 and 0"):
        pool_size(Namespace(actors=2, threads=1, gpus_per_actor=1.0, address=None), {"CPU": 2.0})
    assert pool_size(Namespace(actors=None, threads=1, gpus_per_actor=0.5, address=None), {"CPU": 8, "GPU": 2}) == 4


def test_gpus_per_actor_bounds_are_inclusive():
    """--gpus-per-actor 0 (CPU actors) and 1 (one actor per GPU, as the help says) pass the checks made before Ray
    starts; below 0 or above 1 (a Restorer uses one GPU) is refused with one line."""
    from runtime.batch import build_parser, check_batch_options

    def check(gpus: str) -> None:
        check_batch_options(build_parser().parse_args(["a.jpg", "out", "--gpus-per-actor", gpus]))

    for gpus in ("0", "0.25", "1"):
        check(gpus)
    for gpus in ("-0.5", "1.5"):
        with pytest.raises(UsageError, match=rf"^--gpus-per-actor must be in 0\.\.1, got {gpus}$"):
            check(gpus)


def test_inputs_from_manifests_folders_and_globs(tmp_path):
    for name in ("a.jpg", "b.png", "b_wcdgan.png", "notes.md"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "list.txt").write_text("a.jpg\n\n# comment\n#old files\n  # indented\n/elsewhere/c.jpg\na.jpg\n")
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.table({"path": ["b.png", "d.jpg"]}), tmp_path / "list.parquet")
    found, errors = list_inputs([str(tmp_path / "list.txt"), str(tmp_path), str(tmp_path / "list.parquet")])
    assert found == [tmp_path / "a.jpg", Path("/elsewhere/c.jpg"), tmp_path / "b.png", tmp_path / "d.jpg"]
    assert errors == []
    found, errors = list_inputs([str(tmp_path / "*.webp")])
    assert found == [] and "no such file" in errors[0]
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9.jpg\n".encode("latin-1"))  # not UTF-8
    found, errors = list_inputs(
        [str(tmp_path / "broken.parquet"), str(tmp_path / "latin1.txt"), str(tmp_path / "a.jpg")]
    )
    assert found == [tmp_path / "a.jpg"] and len(errors) == 2
    assert all("cannot read the manifest" in e for e in errors) and "broken.parquet" in errors[0]


@pytest.mark.cli
def test_a_manifest_named_in_upper_case_is_read_as_a_list_of_paths(tmp_path, model):
    """``python -m runtime.batch LIST.TXT Paths.Parquet out/`` reads both files as the manifests list.txt and
    paths.parquet are: the job is the paths they list (all done already here, so skipped without starting Ray),
    exit 0, the manifest's rows name those inputs and no other."""
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    for name in ("a", "b"):
        write_jpeg(src / f"{name}.jpg", data.astronaut()[:32, :32], 10)
        (out / f"{name}.png").write_bytes(b"restored before")
    (tmp_path / "LIST.TXT").write_text("in/a.jpg\n")
    pq.write_table(pa.table({"path": ["in/b.jpg"]}), tmp_path / "Paths.Parquet")
    proc = batch(tmp_path / "LIST.TXT", tmp_path / "Paths.Parquet", out, "--model", model, stdout=subprocess.PIPE)
    summary, err = proc.communicate(timeout=180)
    assert proc.returncode == 0 and "Traceback" not in err and "Ray on" not in err, err
    assert "0 restored, 2 skipped, 0 failed" in summary
    assert [(r["input"], r["status"]) for r in rows(out / MANIFEST_NAME)] == [
        (str(src / "a.jpg"), "skipped"),
        (str(src / "b.jpg"), "skipped"),
    ]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", MANIFEST_NAME]


def test_missing_ray_and_torch_free_imports():
    missing = "import sys, runpy; sys.modules['ray'] = None; sys.argv = ['x', '--help']; " + (
        "runpy.run_module('runtime.batch', run_name='__main__')"
    )
    r = subprocess.run([sys.executable, "-c", missing], cwd=REPO_ROOT, env=ENV, capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert 'pip install -e ".[ray]"' in r.stderr  # from the clone's root: the package is on no index
    assert_imports_without_torch("import runtime.batch", env=ENV)


def test_actor_rows_and_setup_failure_without_ray(tmp_path, model):
    good = write_jpeg(tmp_path / "g.jpg", data.astronaut()[:48, :48], 25)
    batch_rows = {"input": np.array([str(good), str(tmp_path / "gone.jpg")]),
                  "output": np.array([str(tmp_path / "g.png"), str(tmp_path / "gone.png")])}  # fmt: skip
    settings = RestoreSettings(tile=32, threads=1, cache_dir=tmp_path, consistent=False)  # the network's outputs
    assert pickle.loads(pickle.dumps(settings)) == settings  # Ray ships it to the actors
    actor = RestoreActor(str(model), settings, None)
    ok, gone = (json.loads(r) for r in actor(batch_rows)["result"])
    assert ok["status"] == "ok" and ok["jpeg_quality"] == 25 and (tmp_path / "g.png").is_file()
    assert ok["model"] == "local" and ok["precision"] == "fp32"
    assert gone["status"] == "error" and "no such file" in gone["error"]
    lighter = RestoreActor(str(model), dataclasses.replace(settings, strength=0.25), None)
    half = {"input": batch_rows["input"][:1], "output": np.array([str(tmp_path / "g25.png")])}
    assert json.loads(lighter(half)["result"][0])["status"] == "ok"
    jpeg, full = read_image(good).pixels, read_image(tmp_path / "g.png").pixels
    np.testing.assert_array_equal(read_image(tmp_path / "g25.png").pixels, blend(jpeg, full, 0.25))
    broken = RestoreActor(str(tmp_path / "gone.onnx"), settings, None)  # answers instead of dying
    assert {json.loads(r)["status"] for r in broken(batch_rows)["result"]} == {SETUP_FAILED}


def pool_without_ray(monkeypatch, given: list[list[str]], count: int | None = None, failure: Exception | None = None):
    """runtime.batch's Ray pool played by one RestoreActor in this process (no Ray starts): each job's file names
    are appended to ``given``; after ``count`` files (None: all) the pool raises ``failure``."""
    import runtime.batch as batch_module

    def restore_on_ray(todo, args, settings, actors):
        given.append(sorted(plan.src.name for plan in todo))
        actor = RestoreActor(str(args.model), settings, args.quality)
        for plan in todo[:count]:
            batch_rows = {"input": np.array([str(plan.src)]), "output": np.array([str(plan.dst)])}
            yield json.loads(actor(batch_rows)["result"][0])
        if count is not None and count < len(todo):
            raise failure

    monkeypatch.setattr(batch_module, "ray_session", lambda args: contextlib.nullcontext(1))
    monkeypatch.setattr(batch_module, "restore_on_ray", restore_on_ray)


def test_a_ray_failure_counts_only_the_unfinished_files_as_failed(tmp_path, model, monkeypatch, capsys):
    """Ray dies after 2 of the 4 files to restore were written (the pool played by a RestoreActor here, without
    Ray): the summary counts those 2 restored and only the 2 unwritten ones failed (exit 1, one line saying to
    rerun); the rerun restores just those 2 and ends with all done."""
    import ray.exceptions

    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for i in range(4):
        write_jpeg(src / f"a{i}.jpg", data.astronaut()[:48, 48 * i : 48 * (i + 1)], 10 + 5 * i)
    write_jpeg(src / "b.jpg", data.astronaut()[48:96, :48], 10)
    out.mkdir()
    (out / "b.png").write_bytes(b"done by an earlier run")  # skipped
    given: list[list[str]] = []
    died = ray.exceptions.RaySystemError("the raylet died")
    pool_without_ray(monkeypatch, given, 2, died)
    argv = [str(src), str(out), "--model", str(model), "--tile", "32"]
    assert batch_main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("2 restored, 1 skipped, 2 failed in "), captured.out
    err = captured.err.splitlines()
    assert err[-2] == "error: the Ray job failed, rerun to resume (System error: the raylet died)", err
    assert err[-1] == "2 input(s) failed" and "Traceback" not in captured.err
    written = sorted(p.name for p in out.glob("*.png"))
    assert given == [["a0.jpg", "a1.jpg", "a2.jpg", "a3.jpg"]] and written == ["a0.png", "a1.png", "b.png"]
    assert [r["status"] for r in rows(out / MANIFEST_NAME)] == ["skipped", "ok", "ok"]

    pool_without_ray(monkeypatch, given, 4, died)
    assert batch_main(argv) == 0
    assert capsys.readouterr().out.startswith("2 restored, 3 skipped, 0 failed in ")
    assert given[1] == ["a2.jpg", "a3.jpg"] and len(list(out.glob("*.png"))) == 5


def test_the_summary_counts_only_the_jpegs_it_projected(tmp_path, model, monkeypatch, capsys):
    """2 JPEGs restored, 1 PNG restored, 1 JPEG skipped (its output exists): the summary says "2 projected" (a PNG
    has no coefficients to project onto, a skipped file was not restored), as many as the manifest's rows with a
    consistent share; a job of PNGs only says "none projected onto its JPEG"."""
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    write_jpeg(src / "a.jpg", data.astronaut()[:48, :48], 10)
    write_jpeg(src / "b.jpg", data.astronaut()[48:96, :48], 20)
    write_jpeg(src / "d.jpg", data.astronaut()[96:144, :48], 30)
    cv2.imwrite(str(src / "c.png"), data.astronaut()[:48, 48:96])
    out.mkdir()
    (out / "d.png").write_bytes(b"done by an earlier run")
    pool_without_ray(monkeypatch, [])
    assert batch_main([str(src), str(out), "--model", str(model), "--tile", "32"]) == 0
    summary = capsys.readouterr().out
    assert re.fullmatch(r"3 restored, 1 skipped, 0 failed in [\d.]+ s: [\d.]+ MP, [\d.]+ s/MP \(Ray start included; "
                        r"backend: ort-cpu; 2 projected, consistent ≥ [\d.]+ %\)\n", summary), summary  # fmt: skip
    projected = [Path(r["input"]).name for r in rows(out / MANIFEST_NAME) if r["consistent"] is not None]
    assert sorted(projected) == ["a.jpg", "b.jpg"]

    pngs = tmp_path / "pngs"
    pngs.mkdir()
    cv2.imwrite(str(pngs / "c.png"), data.astronaut()[:48, 48:96])
    assert batch_main([str(pngs), str(tmp_path / "out_pngs"), "--model", str(model), "--tile", "32"]) == 0
    assert capsys.readouterr().out.endswith("(Ray start included; backend: ort-cpu; none projected onto its JPEG)\n")


# -- issue 29 (items 1, 11) and issue 26 (item 5) ----------------------------------------------------------------


def test_refusals_before_ray_starts_are_one_line(tmp_path, model, capsys):
    """Each is refused in the driver within seconds, before Ray starts, and touches nothing."""
    src = tmp_path / "src"
    src.mkdir()
    good = write_jpeg(src / "good.jpg", data.astronaut()[:32, :32], 10)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    (tmp_path / "notes.jsonl").write_text("my own notes\n")
    (tmp_path / "folder.jsonl").mkdir()
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"junk")
    sidecar = json.loads(model.with_suffix(".json").read_text())
    junk.with_suffix(".json").write_text(json.dumps({**sidecar, "name": "junk", "onnx_sha256": ""}))
    out = tmp_path / "out"
    cases = [
        (["--manifest", str(good)], "must be a .jsonl file"),
        (["--manifest", str(src / "list.txt")], "must be a .jsonl file"),
        (["--manifest", str(tmp_path / "folder.jsonl")], "must be a .jsonl file"),
        (["--manifest", str(tmp_path / "notes.jsonl")], "not a manifest of runtime.batch"),
        (["--manifest", str(blocker / "m.jsonl")], "not a writable folder"),
        (["--actors", "100"], "needs more CPUs than this machine has"),
        (["--threads", "100"], "needs more CPUs than this machine has"),
        (["--address", "127.0.0.1:1"], "--address 127.0.0.1:1: no Ray there"),
        (["--address", "ray://127.0.0.1:1"], "--address ray://127.0.0.1:1: no Ray there"),
        (["--address", "[::1]:1"], "--address [::1]:1: no Ray there"),  # IPv6: the port after the last colon
        (["--address", "ray://[::1]:1"], "--address ray://[::1]:1: no Ray there"),
        (["--model", str(junk)], "not a model ONNX Runtime can load"),
    ]
    before = {p: p.read_bytes() for p in src.iterdir()}
    for argv, message in cases:
        start = time.perf_counter()
        assert batch_main([str(src), str(out), "--model", str(model), *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.startswith("error: ") and err.count("\n") == 1, (argv, err)
        assert time.perf_counter() - start < 30, argv
        assert not out.exists(), argv
    for dst in (blocker, blocker / "sub"):  # DST a file, or under one
        assert batch_main([str(src), str(dst), "--model", str(model)]) == 2
        assert "error: " in capsys.readouterr().err
    assert {p: p.read_bytes() for p in src.iterdir()} == before and not out.exists()
    (tmp_path / "notes.jsonl").write_text("")  # empty: a job killed before its first row; ours to append to
    out.mkdir()
    (out / "good.png").write_bytes(b"done already")  # all skipped: no Ray needed
    assert batch_main([str(src), str(out), "--model", str(model), "--manifest", str(tmp_path / "notes.jsonl")]) == 0
    assert rows(tmp_path / "notes.jsonl")[0]["status"] == "skipped"
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]  # no default manifest, no lock file left
    # a job whose manifest an earlier version wrote (its rows have no "consistent") resumes, appending to it
    old_row = {"input": str(good), "output": str(out / "good.png"), "status": "ok", "jpeg_quality": 10,
               "model": "local", "precision": "fp32", "backend": "ort-cpu", "seconds": 0.1, "megapixels": 0.001,
               "error": None}  # fmt: skip
    (out / MANIFEST_NAME).write_text(json.dumps(old_row) + "\n")
    assert batch_main([str(src), str(out), "--model", str(model)]) == 0, capsys.readouterr().err
    assert [r["status"] for r in rows(out / MANIFEST_NAME)] == ["ok", "skipped"]


def test_an_ipv6_address_where_something_listens_is_accepted():
    """--address [::1]:PORT and ray://[::1]:PORT pass the driver's check (before Ray starts) when something listens
    there, as 127.0.0.1:PORT does."""
    from runtime.batch import check_reachable

    try:
        listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError as e:
        pytest.skip(f"no IPv6 loopback here ({e})")
    with listener:
        port = listener.getsockname()[1]
        for address in (f"[::1]:{port}", f"ray://[::1]:{port}"):
            check_reachable(address)  # no UsageError


def test_compare_files_are_planned_with_the_job(tmp_path, model, capsys):
    """A picture that would replace an output, or an earlier run's report, is refused before any work and leaves
    nothing; skipped inputs are compared with their existing outputs (on the driver: no Ray)."""
    src = tmp_path / "src"
    src.mkdir()
    write_jpeg(src / "a.jpg", data.astronaut()[:32, :32], 10)
    write_jpeg(src / "a_compare.jpg", data.astronaut()[32:64, :32], 20)  # its output: a.jpg's picture in DST
    out = tmp_path / "out"
    assert batch_main([str(src), str(out), "--model", str(model), f"--compare={out}"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --compare {out}: a_compare.png would replace an output of this run; choose another DIR\n"
    assert not out.exists()  # no manifest, no lock file, no folder
    manifest = out / "m.jsonl"
    assert (
        batch_main([str(src), str(out), "--model", str(model), "--manifest", str(manifest), f"--compare={manifest}"])
        == 2
    )
    assert f"{manifest} is the manifest of this run, not a folder for the report" in capsys.readouterr().err
    assert not out.exists()
    out.mkdir()
    outputs = {}
    for name in ("a", "a_compare"):  # done by an earlier run: skipped
        outputs[name] = cv2.GaussianBlur(read_image(src / f"{name}.jpg").pixels, (3, 3), 0)
        cv2.imwrite(str(out / f"{name}.png"), cv2.cvtColor(outputs[name], cv2.COLOR_RGB2BGR))
    (out / "compare").mkdir()
    (out / "compare" / "report.html").write_text("the first run's report")
    assert batch_main([str(src), str(out), "--model", str(model), "--compare"]) == 2
    assert "report.html exists (1 compare file(s) of an earlier run): -f replaces" in capsys.readouterr().err
    assert (out / "compare" / "report.html").read_text() == "the first run's report"
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_compare.png", "compare"]
    assert batch_main([str(src), str(out), "--model", str(model), f"--compare={tmp_path / 'cmp'}"]) == 0
    assert "Ray on" not in capsys.readouterr().err
    report = (tmp_path / "cmp" / "report.html").read_text(encoding="utf-8")
    assert report.count('<section class="image"') == 2 and "2 of the images: the output of an earlier run" in report
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == [
        "a_compare.png", "a_compare_compare.png", "report.html"
    ]  # fmt: skip
    for name, pixels in outputs.items():  # the existing outputs as they are, not restored again
        assert np.array_equal(read_image(out / f"{name}.png").pixels, pixels)


def _ray_processes(session: int) -> list[str]:
    """Processes still running in the process session ``session`` (the job's, started with start_new_session); a
    zombie has ended (killed, waiting for init to collect its exit status) and is not listed."""
    ps = subprocess.run(["ps", "-e", "-o", "stat=,sid=,pid=,comm="], capture_output=True, text=True).stdout
    rows = [line.split(None, 1) for line in ps.splitlines()]
    return [rest for stat, rest in rows if not stat.startswith("Z") and rest.split()[0] == str(session)]


def _reaper_roots() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("wcdgan-ray-*")}


@pytest.fixture(scope="module")
def small_job(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("small_job")
    for i in range(6):
        write_jpeg(src / f"f{i}.jpg", cv2.resize(data.astronaut(), (256, 256)), 10 + 5 * i)
    return src


@pytest.mark.cli
def test_a_clean_run_is_quiet_and_leaves_nothing(tmp_path, model, small_job):
    """Ray's notices (token-auth warning, core-worker 'E' line, INFO lines) only with -v; no lock file, no Ray
    process, no Ray folder afterwards."""
    roots = _reaper_roots()
    proc = batch(small_job, tmp_path / "out", "--model", model, "--tile", "64", "--actors", "1",
                 stdout=subprocess.PIPE, start_new_session=True)  # fmt: skip
    summary, err = proc.communicate(timeout=180)
    assert proc.returncode == 0 and "6 restored" in summary, err
    assert [line.split(",")[0] for line in err.splitlines()] == ["Ray on this machine"], err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [f"f{i}.png" for i in range(6)] + [MANIFEST_NAME]
    )  # no lock file left
    assert not _ray_processes(proc.pid) and not (_reaper_roots() - roots)  # another job's folder may come and go


@pytest.mark.cli
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="runtime.ray_reaper reads /proc (Linux)")
@pytest.mark.parametrize(
    ("sig", "moment", "whole_group", "code"),
    [
        (signal.SIGTERM, "starting", False, 143),  # while ray.init runs
        (signal.SIGINT, "running", True, 130),  # Ctrl-C in a terminal: the whole foreground group
        (signal.SIGKILL, "running", False, -9),  # the driver alone: Ray's agents must not outlive it
    ],
    ids=["sigterm-during-ray-start", "ctrl-c-while-restoring", "sigkill-of-the-driver"],
)
def test_signals_end_the_job_and_its_ray(tmp_path, model, small_job, sig, moment, whole_group, code):
    roots = _reaper_roots()
    out = tmp_path / "out"
    proc = batch(small_job, out, "--model", model, "--tile", "16", "--actors", "1", start_new_session=True)
    if moment == "starting":
        while not any("gcs_server" in line for line in _ray_processes(proc.pid)):  # ray.init is under way
            assert proc.poll() is None
            time.sleep(0.01)
        time.sleep(0.3)
    else:
        while not list(out.glob(".*.tmp*")) and not list(out.glob("*.png")):  # an actor is restoring
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
    (os.killpg if whole_group else os.kill)(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    if sig != signal.SIGKILL:
        assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted"), err
    deadline = time.monotonic() + 20
    while (_ray_processes(proc.pid) or _reaper_roots() - roots) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _ray_processes(proc.pid) and not (_reaper_roots() - roots)
    if sig != signal.SIGKILL:  # a SIGKILLed job may leave a worker's temporary: the next job sweeps it
        assert not list(out.glob(".*.tmp*"))


def test_one_input_and_a_file_dst_restores_into_that_file(tmp_path, model, monkeypatch, capsys):
    """``python -m runtime.batch photo.jpg out.png`` (documented: DST may be the output file of a single input)
    writes out.png with runtime.infer's pixels, its manifest beside it, and no folder named out.png; a trailing
    separator (``out.png/``) makes it a folder, as in runtime.infer."""
    photo = write_jpeg(tmp_path / "photo.jpg", data.astronaut()[:48, :64], 15)
    given: list[list[str]] = []
    pool_without_ray(monkeypatch, given)
    out = tmp_path / "out.png"
    assert batch_main([str(photo), str(out), "--model", str(model), "--tile", "32"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("1 restored, 0 skipped, 0 failed in "), (captured.out, captured.err)
    assert given == [["photo.jpg"]] and out.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "photo.jpg", MANIFEST_NAME]  # no lock left
    assert [(r["status"], r["output"]) for r in rows(tmp_path / MANIFEST_NAME)] == [("ok", str(out))]
    reference = tmp_path / "reference" / "photo.png"
    assert infer_main([str(photo), "-o", str(reference), "--model", str(model), "--tile", "32", "-q"]) == 0
    np.testing.assert_array_equal(read_image(out).pixels, read_image(reference).pixels)

    folder = tmp_path / "as_folder.png"
    assert batch_main([str(photo), f"{folder}{os.sep}", "--model", str(model), "--tile", "32", "-q"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["photo.png", MANIFEST_NAME]
    assert (folder / "photo.png").read_bytes() == out.read_bytes()


# -- issue 38 ----------------------------------------------------------------------------------------------------


def test_a_manifest_path_with_an_upper_case_suffix_is_appended_to(tmp_path, model, capsys):
    """``python -m runtime.batch in/ out/ --manifest RUN.JSONL`` is accepted as run.jsonl is: exit 0 (all skipped
    here: no Ray), its rows appended to RUN.JSONL on each run, no default manifest in out/."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    write_jpeg(src / "a.jpg", data.astronaut()[:32, :32], 10)
    (out / "a.png").write_bytes(b"restored before")
    manifest = tmp_path / "RUN.JSONL"
    for run in (1, 2):  # created, then appended to (an existing manifest of ours)
        assert batch_main([str(src), str(out), "--model", str(model), "--manifest", str(manifest)]) == 0
        captured = capsys.readouterr()
        assert "0 restored, 1 skipped, 0 failed" in captured.out and "error" not in captured.err, captured.err
        assert [(r["input"], r["status"]) for r in rows(manifest)] == [(str(src / "a.jpg"), "skipped")] * run
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]


def test_an_actors_failure_shows_the_original_error_not_rays_traceback_header(tmp_path, model, monkeypatch, capsys):
    """The pool fails with a Ray task error (Ray's header line, the worker's traceback, then the original error)
    before any file is written: the one error line names the original exception and its message, exit 1."""
    import ray.exceptions

    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    write_jpeg(src / "a.jpg", data.astronaut()[:32, :32], 10)
    try:
        raise OSError(28, "No space left on device")
    except OSError as cause:  # wrapped as Ray wraps a worker's exception: with the worker's traceback
        failure = ray.exceptions.RayTaskError("RestoreActor.__call__", traceback.format_exc(), cause,
                                              "ray::RestoreActor.__call__()")  # fmt: skip
    assert len(str(failure).splitlines()) > 1  # as Ray words it: its header first, the original error last
    pool_without_ray(monkeypatch, [], 0, failure)
    assert batch_main([str(src), str(out), "--model", str(model), "--tile", "32"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-2] == "error: the Ray job failed, rerun to resume (OSError: [Errno 28] No space left on device)", err
    assert err[-1] == "1 input(s) failed"
