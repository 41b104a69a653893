"""``python -m train.campaign``: several training runs on one device at once, to one wall-clock deadline,
each followed by its evaluation and export — how a short GPU window is turned into finished models.

A campaign spec (JSON, :class:`CampaignSpec`) names the runs: data, validation set, further ``python -m train``
arguments, the test sets to evaluate on, and whether to export. The campaign

1. starts one ``python -m train`` process per run, all with ``--end-at`` the shared deadline (so each run's
   cosine learning-rate schedule spans exactly the time it gets) and the CPU cores split between their
   data workers;
2. while they train, prints one status line per run (iteration, rate, loss, validation gain), and copies each
   periodic ``g.pt`` to ``--mirror`` (e.g. the folder a remote machine sends back), so a window cut short still
   yields checkpoints;
3. after the deadline (a run still alive 60 s later is interrupted), evaluates each run with
   ``python -m train.evaluate`` on the device and exports it with ``python -m export.build --fp16``, all
   these steps at once;
4. writes ``campaign.json`` (spec, machine, per-run results) and ``summary.md``, and prints one line per run.

Paths in the spec are relative to ``--data-root``. ``--tiny`` swaps in a tiny generator and 32-px patches (see
:func:`tiny_args`): the same campaign as a CPU rehearsal that finishes in about a minute.

    python -m train.campaign tools/gpu_window.json --data-root .window --budget 7m -o runs/window --mirror $OUT
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.cli import UsageError, run_cli
from common.files import atomic_path, atomic_write_text

log = logging.getLogger(__spec__.name)

GRACE_S = 60.0  # after the deadline: time for a run to finish its step, validate and save
STATUS_EVERY_S = 30.0
POLL_S = 2.0
TINY_ARGS = ["--features", "8", "--blocks", "1", "--branch", "4", "--patch", "32", "--stride", "30", "--val-crop", "64"]
TINY_ARGS += ["--probe-seconds", "0.1"]


class CampaignError(ValueError):
    """A spec or campaign folder the user must fix (message says how)."""


@dataclass
class EvalSpec:
    """One evaluation: a test-set folder (relative to the data root), the protocol channel, JPEG qualities."""

    data: str
    channel: str
    qualities: list[int]


@dataclass
class RunSpec:
    """One training run: its name (= sub-folder), training sources, validation source, extra train arguments."""

    name: str
    data: list[str]
    val: str | None = None
    args: list[str] = field(default_factory=list)
    evaluate: list[EvalSpec] = field(default_factory=list)
    export: bool = True

    def __post_init__(self) -> None:
        self.evaluate = [e if isinstance(e, EvalSpec) else EvalSpec(**e) for e in self.evaluate]
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise CampaignError(f"run name {self.name!r}: use letters, digits, '_', '.', '-' only")


@dataclass
class CampaignSpec:
    """The runs of a campaign; ``common_args`` go before each run's own ``args``; ``workers_per_run`` None: the CPU
    cores split evenly (at most 8 each)."""

    runs: list[RunSpec]
    common_args: list[str] = field(default_factory=list)
    workers_per_run: int | None = None

    def __post_init__(self) -> None:
        self.runs = [r if isinstance(r, RunSpec) else RunSpec(**r) for r in self.runs]
        names = [r.name for r in self.runs]
        if not names or len(set(names)) != len(names):
            raise CampaignError("a campaign needs at least one run, with distinct names")

    @classmethod
    def load(cls, path: str | os.PathLike) -> CampaignSpec:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (OSError, json.JSONDecodeError, TypeError) as e:
            raise CampaignError(f"{path}: not a readable campaign spec ({e})") from None

    def workers(self) -> int:
        if self.workers_per_run is not None:
            return self.workers_per_run
        return max(1, min(8, ((os.cpu_count() or 2) - len(self.runs)) // len(self.runs)))


@dataclass
class Run:
    """A run in progress: its spec, folder, process and what was last seen of it."""

    spec: RunSpec
    folder: Path
    process: subprocess.Popen | None = None
    mirrored_mtime: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)


def parse_duration(text: str) -> float:
    """``'450s'``, ``'7.5m'``, ``'1h'`` or a bare number of minutes → seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration such as 450s, 7.5m or 1h, got {text!r}")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "": 60}[m.group(2)]


def resolve(root: Path, path: str) -> str:
    """``path`` relative to the data root (absolute paths stay), checked to exist."""
    p = Path(path) if Path(path).is_absolute() else root / path
    if not p.exists():
        raise CampaignError(f"{p}: no such file or folder (spec paths are relative to --data-root {root})")
    return str(p)


def train_command(
    run: Run, common: list[str], root: Path, deadline: float, workers: int, device: str, tiny: bool
) -> list[str]:
    s, args = run.spec, [*common, *run.spec.args]
    cmd = [sys.executable, "-m", "train", "--data", *(resolve(root, d) for d in s.data), "-o", str(run.folder)]
    cmd += ["--val", resolve(root, s.val)] if s.val else []
    cmd += ["--end-at", f"{deadline:.3f}", "--workers", str(workers), "--device", device]
    return cmd + (tiny_args(args) + TINY_ARGS if tiny else args)


def tiny_args(args: list[str]) -> list[str]:
    """A run's train arguments for a rehearsal: ``--init CKPT`` dropped (a checkpoint's architecture would replace
    the tiny one) and ``--compile`` traced by the ``eager`` backend (compiling takes minutes on a CPU)."""
    out, i = [], 0
    while i < len(args):
        if args[i] == "--init":
            i += 2
            continue
        if args[i] == "--compile":
            out += ["--compile", "eager"]
            i += 2 if i + 1 < len(args) and not args[i + 1].startswith("--") else 1
            continue
        out.append(args[i])
        i += 1
    return out


def start_runs(
    runs: list[Run], common: list[str], root: Path, deadline: float, workers: int, device: str, tiny: bool
) -> None:
    """Start every run's training process (output to ``RUN/train.log``; tqdm refreshes at most every 30 s)."""
    env = os.environ | {"PYTHONUNBUFFERED": "1", "TQDM_MININTERVAL": "30"}
    for run in runs:
        run.folder.mkdir(parents=True, exist_ok=True)
        cmd = train_command(run, common, root, deadline, workers, device, tiny)
        with open(run.folder / "train.log", "w", encoding="utf-8") as train_log:
            train_log.write(" ".join(cmd) + "\n")
            train_log.flush()
            run.process = subprocess.Popen(cmd, stdout=train_log, stderr=subprocess.STDOUT, env=env)


def last_records(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's latest training-loss record and latest validation record from ``log.jsonl`` (empty if none)."""
    train, val = {}, {}
    try:
        lines = (folder / "log.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return train, val
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being appended right now
        if "val_psnr" in rec:
            val = rec
        else:
            train = rec
    return train, val


def status_line(run: Run) -> str:
    train, val = last_records(run.folder)
    if not train:
        return f"{run.spec.name}: starting"
    rate = train["iter"] / train["time_s"] if train.get("time_s") else 0.0
    gain = f", val {val['val_gain']:+.2f} dB" if val else ""
    return f"{run.spec.name}: it {train['iter']} ({rate:.1f} it/s), l1 {train.get('l1', float('nan')):.4f}{gain}"


def mirror_checkpoints(runs: list[Run], mirror: Path | None) -> None:
    """Copy each run's ``g.pt`` to ``mirror/NAME_g.pt`` when it changed since the last copy (atomically)."""
    if mirror is None:
        return
    for run in runs:
        src = run.folder / "g.pt"
        try:
            mtime = src.stat().st_mtime
        except OSError:
            continue
        if mtime != run.mirrored_mtime:
            with atomic_path(mirror / f"{run.spec.name}_g.pt") as tmp:
                shutil.copyfile(src, tmp)
            run.mirrored_mtime = mtime


def wait_for_runs(runs: list[Run], deadline: float, mirror: Path | None) -> None:
    """Poll until every process ends (status lines, mirroring); interrupt, then kill, runs that overstay."""
    next_status, interrupted = time.time() + STATUS_EVERY_S, False
    while any(r.process.poll() is None for r in runs):
        time.sleep(POLL_S)
        mirror_checkpoints(runs, mirror)
        now = time.time()
        if now >= next_status:
            left = f"{deadline - now:.0f} s left" if now < deadline else "finishing"
            log.info("[%s] %s", left, " | ".join(status_line(r) for r in runs))
            next_status = now + STATUS_EVERY_S
        late = [r for r in runs if r.process.poll() is None and now > deadline + GRACE_S]
        for run in late:
            if not interrupted:
                log.warning("%s: still running %.0f s after the deadline, interrupting", run.spec.name, GRACE_S)
                run.process.send_signal(signal.SIGINT)
            elif now > deadline + GRACE_S + 20:
                run.process.kill()
        interrupted = interrupted or bool(late)
    mirror_checkpoints(runs, mirror)


def run_step(cmd: list[str], log_path: Path) -> int:
    """Run one post-training command with its output in ``log_path``; returns the exit code."""
    with open(log_path, "w", encoding="utf-8") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        env = os.environ | {"PYTHONUNBUFFERED": "1"}
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode


def post_steps(run: Run, root: Path, device: str) -> list[tuple[str, list[str], Path]]:
    """``(kind, command, output path)`` of a trained run's evaluations and export (independent of each other)."""
    folder, ckpt, steps = run.folder, str(run.folder / "g.pt"), []
    for ev in run.spec.evaluate:
        out = folder / f"eval_{Path(ev.data).name}_{ev.channel}.json"
        cmd = [sys.executable, "-m", "train.evaluate", "--data", resolve(root, ev.data), "--channel", ev.channel]
        cmd += ["--quality", *map(str, ev.qualities), "--ckpt", ckpt, "--device", device, "-o", str(out), "-q"]
        steps.append(("evaluate", cmd, out))
    if run.spec.export:
        out = folder / "export"
        cmd = [sys.executable, "-m", "export.build", "--ckpt", ckpt, "--fp16", "-o", str(out)]
        steps.append(("export", [*cmd, "--name", run.spec.name, "--engine", "skip", "-q"], out))
    return steps


def finish_runs(runs: list[Run], root: Path, device: str) -> None:
    """Evaluate and export every trained run, all steps at once (GPU evaluation and CPU export overlap);
    fills each ``run.result``. A step's output goes to ``RUN/<output stem>.log``."""
    jobs = []
    for run in runs:
        res = run.result
        res["train_exit_code"] = run.process.returncode if run.process else None
        if not (run.folder / "g.pt").is_file():
            res["error"] = "no g.pt: training produced no checkpoint (see train.log)"
            continue
        res["train"] = checkpoint_facts(run.folder / "g.pt")
        jobs += [(run, kind, cmd, out) for kind, cmd, out in post_steps(run, root, device)]
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        codes = list(pool.map(lambda job: run_step(job[2], job[3].with_suffix(".log")), jobs))
    for (run, kind, _, out), code in zip(jobs, codes, strict=True):
        if kind == "evaluate":
            failed = {"data": out.stem, "error": f"exit code {code} (see {out.with_suffix('.log')})"}
            run.result.setdefault("evaluations", []).append(eval_facts(out) if code == 0 else failed)
        else:
            run.result["export"] = export_facts(out) if code == 0 else {"error": f"exit code {code}"}


def checkpoint_facts(ckpt: Path) -> dict[str, Any]:
    """Iterations, wall time, batch, lr and validation of a trained ``g.pt`` (from its meta)."""
    from models.checkpoint import read_checkpoint

    meta = read_checkpoint(ckpt)["meta"]
    cfg = meta.get("train_config", {})
    keep = ("iterations", "wall_time_s", "device", "val_psnr", "val_psnr_jpeg", "val_gain")
    facts = {k: meta[k] for k in keep if k in meta}
    facts |= {k: cfg.get(k) for k in ("batch_size", "channels_last", "lr_g", "time_budget_s", "batch_probe")}
    facts["patches_seen"] = facts.get("iterations", 0) * (cfg.get("batch_size") or 0)
    return facts


def eval_facts(path: Path) -> dict[str, Any]:
    """Mean PSNR/SSIM/PSNR-B per quality of the model and of JPEG, from a ``train.evaluate`` results file."""
    r = json.loads(path.read_text(encoding="utf-8"))
    model = next(m for m in r["methods"] if m != "JPEG")
    rows = {}
    for q in map(str, r["qualities"]):
        ours, jpeg = r["methods"][model][q], r["methods"]["JPEG"][q]
        rows[q] = {m: ours[m] for m in r["metrics"]} | {f"jpeg_{m}": jpeg[m] for m in r["metrics"]}
        rows[q]["gain_db"] = ours["psnr"] - jpeg["psnr"]
    return {"data": r["dataset"], "channel": r["channel"], "images": len(r["images"]), "qualities": rows}


def export_facts(folder: Path) -> dict[str, Any]:
    """The validation numbers the export recorded in its sidecars, by model file stem (the run's export folder
    holds nothing else, so the file-naming rule of :mod:`runtime.spec` is not needed here)."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")).get("validation") for p in sorted(folder.glob("*.json"))}


def summary_line(run: Run) -> str:
    res, name = run.result, run.spec.name
    if "error" in res:
        return f"{name}: {res['error']}"
    t = res["train"]
    parts = [
        f"{name}: {t.get('iterations', 0):,} it × batch {t.get('batch_size')} = "
        f"{t['patches_seen'] / 1e6:.2f} M patches in {t.get('wall_time_s', 0):.0f} s"
    ]
    for ev in res.get("evaluations", []):
        if "error" in ev:
            parts.append(f"{ev['data']}: evaluation failed ({ev['error']})")
            continue
        cells = ", ".join(f"q{q} {v['psnr']:.2f} dB ({v['gain_db']:+.2f})" for q, v in ev["qualities"].items())
        parts.append(f"{ev['data']} {ev['channel']}: {cells}")
    if "export" in res:
        parts.append("export failed" if "error" in res["export"] else "exported FP32+FP16")
    return "; ".join(parts)


def machine_facts(device: str) -> dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name(0) if device != "cpu" and torch.cuda.is_available() else None
    return {"host": platform.node(), "cpus": os.cpu_count(), "gpu": gpu, "torch": torch.__version__}


def run_campaign(
    spec: CampaignSpec,
    out: Path,
    budget_s: float,
    root: Path,
    device: str = "auto",
    mirror: Path | None = None,
    tiny: bool = False,
    quiet: bool = False,
) -> list[Run]:
    """Train every run of ``spec`` until ``budget_s`` from now, then evaluate and export them (see module doc)."""
    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    runs = [Run(s, out / s.name) for s in spec.runs]
    if existing := [str(r.folder) for r in runs if (r.folder / "last.pt").exists()]:
        raise CampaignError(f"{', '.join(existing)}: already trained; choose another -o")
    for r in runs:  # fail before any process starts
        for path in [*r.spec.data, *([r.spec.val] if r.spec.val else []), *(e.data for e in r.spec.evaluate)]:
            resolve(root, path)
    started = time.time()
    deadline = started + budget_s
    workers = spec.workers()
    log.info("campaign: %d runs on %s, %d data workers each, budget %.0f s", len(runs), device, workers, budget_s)
    start_runs(runs, spec.common_args, root, deadline, workers, device, tiny)
    try:
        wait_for_runs(runs, deadline, mirror)
    except BaseException:
        for r in runs:
            if r.process.poll() is None:
                r.process.kill()
        raise
    finish_runs(runs, root, device)
    report = {
        "spec": dataclasses.asdict(spec),
        "budget_s": budget_s,
        "device": device,
        "machine": machine_facts(device),
        "started_unix": started,
        "seconds": time.time() - started,
        "tiny": tiny,
        "runs": {r.spec.name: r.result for r in runs},
    }
    lines = [summary_line(r) for r in runs]
    atomic_write_text(out / "campaign.json", json.dumps(report, indent=1) + "\n")
    atomic_write_text(out / "summary.md", "".join(f"- {line}\n" for line in lines))
    if mirror is not None:
        with atomic_path(mirror / "campaign.json") as tmp:
            shutil.copyfile(out / "campaign.json", tmp)
    if not quiet:
        print("\n".join(lines), flush=True)
    return runs


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m train.campaign",
        description="Train several WCDGAN runs at once on one device to one deadline, then evaluate and export "
        "each. SPEC is a JSON campaign spec (see tools/gpu_window.json).",
    )
    p.add_argument("spec", type=Path, help="campaign spec (JSON)")
    p.add_argument("--budget", type=parse_duration, required=True, help="training time from now: 450s, 7.5m, 1h")
    p.add_argument("-o", "--output", type=Path, required=True, help="campaign folder (one sub-folder per run)")
    p.add_argument("--data-root", type=Path, default=Path("."), help="folder the spec's paths are relative to")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    p.add_argument("--mirror", type=Path, help="copy each run's periodic g.pt and the final campaign.json here")
    p.add_argument("--tiny", action="store_true", help="rehearsal: tiny generator and 32-px patches (CPU, seconds)")
    p.add_argument("-q", "--quiet", action="store_true", help="no status lines or summary")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, _parse_args(argv), "interrupted: checkpoints written so far are kept")


def run(args: argparse.Namespace) -> int:
    """The campaign as a command: 0 when every run and step succeeded, else 1; UsageError for a bad spec."""
    try:
        spec = CampaignSpec.load(args.spec)
        runs = run_campaign(
            spec, args.output, args.budget, args.data_root, args.device, args.mirror, args.tiny, args.quiet
        )
    except CampaignError as e:
        raise UsageError(str(e)) from None
    return 0 if all("error" not in r.result and not _failed_steps(r.result) for r in runs) else 1


def _failed_steps(result: dict[str, Any]) -> bool:
    return any("error" in e for e in result.get("evaluations", [])) or "error" in result.get("export", {})


if __name__ == "__main__":
    sys.exit(main())
