"""Engine cache logic with real files and real processes; TensorRT is replaced by plain build/load callables."""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest

from runtime import cache as cache_cli
from runtime.engine_cache import ENV_VAR, EngineBuildError, EngineCache, EngineKey, cache_root, default_cache_dir

KEY = EngineKey(
    model_name="tiny_fp16",
    onnx_sha256="ab" * 32,
    precision="fp16",
    input_dtype="float32",
    output_dtype="float32",
    profiles=(("input", (1, 3, 288, 288), (4, 3, 288, 288), (4, 3, 288, 288)),),
    trt_version="10.13.0",
    gpu_name="NVIDIA H100 80GB HBM3",
    compute_capability="9.0",
    builder_options={"optimization_level": 3},
)


def _plan_for(key: EngineKey) -> bytes:
    """A fake engine: the key it was built for, padded so truncation is noticeable."""
    return b"PLAN" + json.dumps(key.to_dict(), sort_keys=True).encode() + b"\0" * 4096


def _load(plan: bytes) -> dict | None:
    """Fake deserializer: None for anything that is not a complete fake plan (like deserialize_cuda_engine)."""
    if not plan.startswith(b"PLAN") or not plan.endswith(b"\0" * 4096):
        return None
    return json.loads(plan[4:].rstrip(b"\0"))


class Recorder:
    """build_fn that records each call in a file (shared by processes), optionally slow."""

    def __init__(self, log: Path, delay: float = 0.0) -> None:
        self.log, self.delay = log, delay

    def __call__(self, onnx_path: Path, key: EngineKey) -> bytes:
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(self.delay)
        return _plan_for(key)

    @property
    def builds(self) -> int:
        return len(self.log.read_text().split()) if self.log.exists() else 0


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    return Recorder(tmp_path / "builds.log")


@pytest.fixture
def cache(tmp_path: Path, recorder: Recorder) -> EngineCache:
    return EngineCache(recorder, _load, tmp_path / "engines")


def test_builds_once_then_reuses(cache: EngineCache, recorder: Recorder, caplog) -> None:
    engine = cache.get("model.onnx", KEY)
    assert engine == KEY.to_dict() and recorder.builds == 1
    assert cache.get("model.onnx", KEY) == engine and recorder.builds == 1
    plan, sidecar, _ = cache.paths(KEY)
    record = json.loads(sidecar.read_text())
    assert record["key"] == KEY.to_dict() and record["size"] == plan.stat().st_size
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # a first build is no warning


def test_truncated_plan_is_detected_and_rebuilt(cache: EngineCache, recorder: Recorder, expect_warning) -> None:
    cache.get("model.onnx", KEY)
    plan, _, _ = cache.paths(KEY)
    plan.write_bytes(plan.read_bytes()[:100])
    with expect_warning("corrupt"):
        assert cache.get("model.onnx", KEY) == KEY.to_dict()
    assert recorder.builds == 2 and plan.read_bytes() == _plan_for(KEY)


@pytest.mark.parametrize(
    ("field", "value"), [("trt_version", "10.3.0"), ("gpu_name", "NVIDIA A100-SXM4-80GB"), ("onnx_sha256", "cd" * 32)]
)
def test_stale_sidecar_is_rebuilt(
    cache: EngineCache, recorder: Recorder, field: str, value: str, expect_warning
) -> None:
    cache.get("model.onnx", KEY)
    _, sidecar, _ = cache.paths(KEY)
    record = json.loads(sidecar.read_text())
    record["key"][field] = value
    sidecar.write_text(json.dumps(record))
    with expect_warning(f"stale .*{field}"):
        cache.get("model.onnx", KEY)
    assert recorder.builds == 2 and json.loads(sidecar.read_text())["key"] == KEY.to_dict()


def test_tensorrt_upgrade_replaces_the_entry(cache: EngineCache, recorder: Recorder, expect_warning) -> None:
    old = dataclasses.replace(KEY, trt_version="10.3.0")
    cache.get("model.onnx", old)
    assert cache.paths(old) == cache.paths(KEY)  # same slot: the upgrade replaces, not accumulates
    with expect_warning(r"stale .*trt_version: '10\.3\.0' → '10\.13\.0'"):
        cache.get("model.onnx", KEY)
    assert recorder.builds == 2 and len(list(cache.root.glob("*.plan"))) == 1


def test_different_shapes_and_models_get_their_own_entries(cache: EngineCache, recorder: Recorder) -> None:
    other_shape = dataclasses.replace(KEY, profiles=(("input", (1, 3, 160, 160), (4, 3, 160, 160), (4, 3, 160, 160)),))
    other_model = dataclasses.replace(KEY, model_name="other", onnx_sha256="cd" * 32)
    for key in (KEY, other_shape, other_model):
        assert cache.get("model.onnx", key) == key.to_dict()
    assert recorder.builds == 3 and len({cache.paths(k)[0] for k in (KEY, other_shape, other_model)}) == 3


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(EngineKey) if f.name != "trt_version"])
def test_every_key_field_but_the_tensorrt_version_has_its_own_slot(
    cache: EngineCache, recorder: Recorder, field: str
) -> None:
    """E.g. two graphs of one name (re-exported, other weights) must not share a slot and evict each other."""
    changed = {
        "onnx_sha256": "cd" * 32,
        "model_name": "other",
        "precision": "fp32",
        "input_dtype": "float16",
        "output_dtype": "float16",
        "profiles": (("input", (1, 3, 160, 160), (4, 3, 160, 160), (4, 3, 160, 160)),),
        "gpu_name": "NVIDIA L4",
        "compute_capability": "8.9",
        "builder_options": {"optimization_level": 5},
    }
    other = dataclasses.replace(KEY, **{field: changed[field]})
    assert cache.paths(other)[0] != cache.paths(KEY)[0]
    for key in (KEY, other, KEY, other):  # both stay cached: two builds, then two hits
        assert cache.get("model.onnx", key) == key.to_dict()
    assert recorder.builds == 2


def test_undeserializable_plan_is_rebuilt(tmp_path: Path, recorder: Recorder, expect_warning) -> None:
    EngineCache(recorder, _load, tmp_path / "engines").get("m.onnx", KEY)
    fresh: set[bytes] = set()

    def build(onnx_path: Path, key: EngineKey) -> bytes:
        fresh.add(plan := recorder(onnx_path, key))
        return plan

    def picky_load(plan: bytes) -> dict | None:  # like another TensorRT build: only its own plans deserialize
        return _load(plan) if plan in fresh else None

    with expect_warning("incompatible"):
        EngineCache(build, picky_load, tmp_path / "engines").get("m.onnx", KEY)
    assert recorder.builds == 2


def test_unloadable_fresh_build_raises(tmp_path: Path, recorder: Recorder) -> None:
    with pytest.raises(EngineBuildError, match="failed to deserialize"):
        EngineCache(recorder, lambda plan: None, tmp_path / "engines").get("m.onnx", KEY)


def test_plan_without_sidecar_is_rebuilt(cache: EngineCache, recorder: Recorder, expect_warning) -> None:
    plan, _, _ = cache.paths(KEY)
    plan.parent.mkdir(parents=True)
    plan.write_bytes(_plan_for(KEY))  # e.g. a build killed between writing the plan and its sidecar
    with expect_warning("unreadable"):
        cache.get("m.onnx", KEY)
    assert recorder.builds == 1


def _get_in_process(root: str, log: str, out: str) -> None:
    engine = EngineCache(Recorder(Path(log), delay=1.0), _load, root).get("m.onnx", KEY)
    Path(out).write_text(json.dumps(engine))


@pytest.mark.slow
def test_two_processes_build_once_and_share(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    log = tmp_path / "builds.log"
    outs = [tmp_path / f"out{i}.json" for i in range(2)]
    procs = [ctx.Process(target=_get_in_process, args=(str(tmp_path / "engines"), str(log), str(o))) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(log.read_text().split()) == 1  # exactly one build
    assert [json.loads(o.read_text()) for o in outs] == [KEY.to_dict()] * 2


def test_default_dir_honours_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WCDGAN_CACHE_DIR", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv("WCDGAN_CACHE_DIR")
    assert default_cache_dir().parts[-2:] == ("wcdgan", "engines")


def test_cli_list_and_clear(cache: EngineCache, capsys) -> None:
    cache.get("m.onnx", KEY)
    bystander = cache.root / "notes.json"
    bystander.write_text('{"mine": true}')
    (cache.root / "openvino").mkdir()
    (cache.root / "openvino" / "4190718664103519242.blob").write_bytes(b"compiled")  # OpenVINO's own naming
    (cache.root / "openvino" / "mine.blob").write_bytes(b"a user's file")
    assert cache_cli.main(["list", "--cache-dir", str(cache.root)]) == 0
    out = capsys.readouterr().out
    for text in (KEY.slot(), "tiny_fp16", "fp16", "4×3×288×288", "10.13.0", "H100", "MiB"):
        assert text in out
    assert f"OpenVINO: 1 compiled model(s), 0.0 MiB in {cache.root / 'openvino'}" in out  # not the user's mine.blob
    assert cache_cli.main(["clear", "--cache-dir", str(cache.root)]) == 0
    assert "removed 4 file(s)" in capsys.readouterr().out  # plan, sidecar, lock, OpenVINO blob
    assert bystander.exists() and not list(cache.root.glob("*.plan"))
    assert [p.name for p in (cache.root / "openvino").iterdir()] == ["mine.blob"]
    cache_cli.main(["list", "--cache-dir", str(cache.root)])
    out = capsys.readouterr().out
    assert "no cached engines" in out and "OpenVINO" not in out


def test_cli_missing_dir(tmp_path: Path, capsys) -> None:
    assert cache_cli.main(["list", "--cache-dir", str(tmp_path / "nope")]) == 2
    assert "no such cache folder" in capsys.readouterr().err


def test_cache_root_is_the_named_folder_with_home_expanded_or_the_default(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "from-env"))
    assert cache_root("~/mine") == tmp_path / "mine"
    assert cache_root(None) == default_cache_dir() == tmp_path / "from-env"
    assert EngineCache(lambda *_: b"", lambda plan: plan, "~/mine").root == tmp_path / "mine"


def test_an_entry_copied_under_another_slot_is_neither_used_nor_deleted(cache: EngineCache) -> None:
    """A sidecar whose key hashes to another slot than its file name is not this cache's entry there."""
    from runtime.engine_cache import clear, list_entries

    cache.get("m.onnx", KEY)
    plan, sidecar, _ = cache.paths(KEY)
    copy = cache.root / "tiny_fp16-0123456789abcdef"
    copy.with_suffix(".plan").write_bytes(plan.read_bytes())
    copy.with_suffix(".json").write_text(sidecar.read_text())
    (cache.root / "notes.plan").write_bytes(b"a user's file")  # a foreign JSON beside a .plan: not an entry at all
    (cache.root / "notes.json").write_text('{"mine": true}')
    listed = {e["slot"]: e for e in list_entries(cache.root)}
    assert set(listed) == {KEY.slot(), copy.name} and "error" not in listed[KEY.slot()]
    assert listed[copy.name]["error"] == f"record of entry {KEY.slot()}, not of {copy.name}"
    assert clear(cache.root) == 3  # the real entry's plan, sidecar and lock
    assert copy.with_suffix(".plan").exists() and copy.with_suffix(".json").exists()
    assert (cache.root / "notes.plan").exists() and (cache.root / "notes.json").exists()


def test_self_test_records_match_their_whole_key_and_clear_removes_only_them(tmp_path):
    from runtime.engine_cache import clear, passed_self_test, record_self_test, self_test_records

    key = {"onnx_sha256": "ab" * 32, "backend": "ort-cpu", "library": "onnxruntime 1", "window": [320, 320]}
    assert not passed_self_test(tmp_path, key)
    record_self_test(tmp_path, key)
    assert passed_self_test(tmp_path, key)
    assert not passed_self_test(tmp_path, {**key, "library": "onnxruntime 2"})
    (record,) = self_test_records(tmp_path)
    record.write_text(record.read_text().replace("ort-cpu", "openvino"))  # a record whose name and key disagree
    assert not passed_self_test(tmp_path, key)
    (record.parent / "notes.json").write_text("{}")
    assert clear(tmp_path) == 1 and self_test_records(tmp_path) == [] and (record.parent / "notes.json").exists()
