"""train.campaign and the GPU window plan (tools/gpu_window.sh), rehearsed end to end on CPU."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from train.campaign import (
    CampaignError,
    CampaignSpec,
    Run,
    RunSpec,
    last_records,
    main,
    parse_duration,
    status_line,
    tiny_args,
)

REPO = Path(__file__).resolve().parents[1]


def test_parse_duration():
    assert parse_duration("450s") == 450 and parse_duration("7.5m") == 450 and parse_duration("1h") == 3600
    assert parse_duration("2") == 120  # bare numbers are minutes, like train's --time-budget
    for bad in ("", "-3m", "0s", "5 minutes"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_duration(bad)


def test_spec_validation_and_loading(tmp_path):
    with pytest.raises(CampaignError, match="distinct names"):
        CampaignSpec([RunSpec("a", ["d"]), RunSpec("a", ["d"])])
    with pytest.raises(CampaignError, match="letters, digits"):
        RunSpec("a/b", ["d"])
    spec = CampaignSpec.load(REPO / "tools" / "gpu_window.json")
    assert spec.runs[0].evaluate[0].channel == "rgb" and "--batch" in spec.common_args
    bad = tmp_path / "bad.json"
    bad.write_text('{"runs": [{"nme": "x"}]}')
    with pytest.raises(CampaignError, match="not a readable campaign spec"):
        CampaignSpec.load(bad)


def test_workers_split_the_cores_at_most_eight_each(monkeypatch):
    runs = [RunSpec(name, ["d"]) for name in ("a", "b")]
    for cores, workers in ((64, 8), (12, 5), (2, 1), (None, 1)):
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        assert CampaignSpec(runs).workers() == workers
    assert CampaignSpec(runs, workers_per_run=12).workers() == 12


def test_rehearsal_drops_init_and_traces_compile_eagerly():
    args = ["--init", "ckpt.pt", "--compile", "--batch", "auto", "--compile", "inductor", "--quality", "10"]
    assert tiny_args(args) == ["--compile", "eager", "--batch", "auto", "--compile", "eager", "--quality", "10"]


def test_status_reads_a_log_being_written(tmp_path):
    run = Run(RunSpec("r", ["d"]), tmp_path)
    assert status_line(run) == "r: starting"
    (tmp_path / "log.jsonl").write_text(
        json.dumps({"iter": 100, "time_s": 10.0, "l1": 0.03}) + "\n"
        + json.dumps({"iter": 100, "val_psnr": 27.0, "val_psnr_jpeg": 26.0, "val_gain": 1.0}) + "\n"
        + '{"iter": 15'  # a line half-written by the training process
    )  # fmt: skip
    train, val = last_records(tmp_path)
    assert train["iter"] == 100 and val["val_gain"] == 1.0
    assert status_line(run) == "r: it 100 (10.0 it/s), l1 0.0300, val +1.00 dB"


def test_cli_refuses_missing_data_before_starting_anything(tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"runs": [{"name": "r", "data": ["missing.tar"]}]}))
    assert main([str(spec), "--budget", "1m", "-o", str(tmp_path / "c"), "--data-root", str(tmp_path)]) == 2
    assert "missing.tar: no such file" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
    assert main([str(tmp_path / "nope.json"), "--budget", "1m", "-o", str(tmp_path / "c")]) == 2


@pytest.mark.slow
def test_gpu_window_plan_rehearsal_end_to_end(tmp_path):
    """`tools/gpu_window.sh dry`: the two GPU calls' script on CPU with tiny data and a tiny model.

    Proves the real plan's path: shards packed and extracted, the campaign (batch probe, --end-at deadline,
    training, mirrored checkpoints, evaluation, export), packing of what comes back, the timing step, and the
    two fetches with their file limits.
    """
    env = os.environ | {"WINDOW_WORK": str(tmp_path / "work"), "OUT": str(tmp_path / "out"), "PYTHON": sys.executable}
    r = subprocess.run(["bash", "tools/gpu_window.sh", "dry"], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = tmp_path / "out"
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert {"rgb_open_g.pt", "rgb_warm_g.pt", "campaign.json", "window.tgz"} <= set(files), files
    assert any(f.startswith("bench/runtime_") and f.endswith(".json") for f in files), files
    assert len(files) <= 8  # what one device call brings back
    report = json.loads((out / "campaign.json").read_text())
    assert set(report["runs"]) == {"rgb_open", "rgb_warm"}
    run = report["runs"]["rgb_open"]
    assert run["train"]["iterations"] > 0 and run["train"]["batch_probe"], run
    assert run["train"]["time_budget_s"] > 0
    live1 = run["evaluations"][0]
    assert live1["data"] == "LIVE1" and set(live1["qualities"]) == {"5", "10", "20"}
    assert abs(live1["qualities"]["10"]["gain_db"]) < 30
    assert run["export"]["rgb_open"]["onnx_fp32_vs_torch"]["max_abs_error"] < 1e-4
    with tarfile.open(out / "window.tgz") as tar:
        names = tar.getnames()
    assert "campaign/rgb_warm/eval_LIVE1_rgb.json" in names and "env.txt" in names
    assert not any(n.endswith((".pt", ".onnx")) for n in names)
    log = (out / "window.log").read_text()
    assert "job: done" in log
