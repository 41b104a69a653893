#!/usr/bin/env bash
# The GPU window plan (tools/GPU_WINDOW.md): prepared and rehearsed on a CPU machine, two calls on the GPU machine.
#
#   tools/gpu_window.sh prepare   CPU machine: pack data and wheels into .window/ (what travels), check the payload size
#   tools/gpu_window.sh start     GPU call 1 (timeout 600 s): check the machine, launch the job in the background,
#                                 wait until its models are trained, evaluated and exported, fetch them into $OUT
#   tools/gpu_window.sh finish    GPU call 2 (timeout 130 s, within 30 s of call 1): wait for the timings, fetch them
#   tools/gpu_window.sh dry       CPU rehearsal of start + finish with a tiny model on tiny data (tests run it)
#
# The job (tools/gpu_window.sh job, started by `start`): environment report → train.campaign (trains the runs of
# tools/gpu_window.json to one deadline, evaluates and exports them) → window.tgz → benchmarks.runtime GPU rows.
# Times are seconds since call 1 began; every knob below can be set from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
SHARED=${WCDGAN_SHARED:-../shared}
DATA=${WINDOW_DATA:-.window}            # what travels: train/ and eval/ shards, wheels/
WORK=${WINDOW_WORK:-/tmp/wcdgan-window} # the job's folder on the machine (outlives call 1)
OUT=${OUT:-$WORK/fetched}               # what comes back (the device tool sets OUT for each call)
SPEC=${WINDOW_SPEC:-tools/gpu_window.json}
FETCH_AT=${WINDOW_FETCH_AT:-570}        # call 1 returns by then (its timeout is 600)
POST_S=${WINDOW_POST_S:-80}             # evaluation + export + packing, after the training deadline (window 1: 72 s)
BENCH_S=${WINDOW_BENCH_S:-80}           # timing rows not started by then are skipped
FINISH_WAIT=${WINDOW_FINISH_WAIT:-110}  # call 2 waits at most this long for the timings
PAYLOAD_MIB=${WINDOW_PAYLOAD_MIB:-62}   # the device tool carries at most 64 MiB per call
TINY=${WINDOW_TINY:-}                   # non-empty: rehearsal (tiny model, tiny timing plan)

now() { date +%s; }
elapsed() { echo $(( $(now) - $(cat "$WORK/t0") )); }
say() { echo "[window $(elapsed 2>/dev/null || echo 0)s] $*"; }

prepare() {
    local packed=runs/window-data
    "$PY" -m train.pack "$SHARED"/data/train/CBSD432 "$SHARED"/data/train/SunHays80_HR \
        "$SHARED"/data/train/Urban100_x2HR -o "$packed/train" --shard-mib 36 --holdout 8
    "$PY" -m train.pack "$SHARED"/data/eval/LIVE1 "$SHARED"/data/eval/Classic5 -o "$packed/eval" --name eval \
        --shard-mib 60
    rm -rf "$DATA" && mkdir -p "$DATA/train" "$DATA/eval" "$DATA/wheels"
    cp "$packed/train/train-000.tar" "$packed/train/train-val.tar" "$DATA/train/"
    cp "$packed/eval/eval-000.tar" "$DATA/eval/"
    # Not in the GPU machine's image (tools/GPU_WINDOW.md lists what is): pure-Python wheels.
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation py \
        --platform any -d "$DATA/wheels" polygraphy==0.53.6 platformdirs==4.3.6
    payload_check
}

payload_check() {
    # Tracked and untracked-but-not-ignored files travel, plus the carried $DATA.
    local tree data
    tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
    data=$(du -sb "$DATA" | cut -f1)
    echo "payload: tree $((tree >> 20)) MiB + $DATA $((data >> 20)) MiB = $(((tree + data) >> 20)) MiB" \
        "(limit $PAYLOAD_MIB MiB)"
    du -sh "$DATA"/*/*
    [ $((tree + data)) -le $((PAYLOAD_MIB << 20)) ] || { echo "payload too large" >&2; exit 1; }
}

install_wheels() {
    if compgen -G "$DATA/wheels/*.whl" >/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            "$DATA"/wheels/*.whl
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
}

env_report() {
    # Fails (exit 3) when training or evaluation cannot import: before any GPU time is spent. Export and timings
    # only warn (a missing module there costs those steps, not the models).
    "$PY" - <<'EOF' || exit 3
import importlib, os, platform, sys
print("python", sys.version.split()[0], platform.platform(), "cpus", os.cpu_count())
import torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", gpu)
for name in ("numpy", "cv2", "onnx", "onnxruntime", "polygraphy", "skimage", "scipy", "tqdm", "filelock",
             "platformdirs", "triton"):
    try:
        print(name, getattr(importlib.import_module(name), "__version__", "?"))
    except ImportError as e:
        print(name, "MISSING", e)
for name in ("train.campaign", "train.evaluate"):
    importlib.import_module(name)
for name in ("export.build", "benchmarks.runtime"):
    try:
        importlib.import_module(name)
    except ImportError as e:
        print(f"WARNING: {name} does not import ({e}): that step will fail")
print("training modules import")
EOF
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm \
        --format=csv || true
}

job() {
    # The background job: everything after the checks, in order of value.
    say "job: data"  # the spec's paths are relative to $WORK/data: train/ (the carried shards), eval/ (extracted)
    mkdir -p "$WORK/data" && ln -sfn "$(cd "$DATA" && pwd)/train" "$WORK/data/train"
    "$PY" -m train.pack --extract "$DATA/eval/eval-000.tar" -o "$WORK/data/eval" -q
    if command -v nvidia-smi >/dev/null; then  # evidence for the next plan: was the GPU busy?
        nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 > "$WORK/out/gpu_util.csv" &
    fi
    local budget=$(( FETCH_AT - POST_S - $(elapsed) ))
    say "job: campaign, training budget ${budget}s"
    "$PY" -m train.campaign "$SPEC" --data-root "$WORK/data" --budget "${budget}s" -o "$WORK/campaign" \
        --mirror "$WORK/out" ${TINY:+--tiny} || say "campaign exit code $?"
    tar czf "$WORK/out/window.tgz" -C "$WORK" --exclude '*.pt' --exclude '*.onnx' campaign env.txt \
        || say "packing window.tgz failed"
    touch "$WORK/post.done"
    say "job: timings"
    if [ -n "$TINY" ]; then
        set -- --tiny --models wcdgan-rgb arcnn --backends torch-fp32 --repeats 2
    else
        set -- --models wcdgan-rgb arcnn dncnn3 memnet-unshared mwcnn wcdgan-y \
            --backends torch-fp32 torch-tf32 torch-bf16 torch-fp16 --sizes 768x512 1024x1024 \
            --sweep-sizes 768x512 1024x1024 --sweep-backends torch-fp16-cl torch-fp16-graph torch-fp16-compile \
            --warmup 3 --repeats 20 --budget 5
    fi
    "$PY" -m benchmarks.runtime "$@" --e2e-sizes --no-plot --deadline "$BENCH_S" -o "$WORK/out/bench" -q \
        || say "timings exit code $?"
    touch "$WORK/bench.done"
    kill $(jobs -p) 2>/dev/null || true
    say "job: done"
}

fetch_until() {
    # Wait for marker $1 (at most until second $2 of the window), then copy what is new under $WORK/out to $OUT.
    while [ ! -e "$WORK/$1" ] && [ "$(elapsed)" -lt "$2" ]; do sleep 2; done
    [ -e "$WORK/$1" ] && say "$1" || say "$1 not reached; fetching what exists"
    mkdir -p "$OUT"
    touch "$WORK/sent.list"
    (cd "$WORK/out" && find . -type f | sed 's|^\./||' | sort) | while read -r f; do
        # logs and the timing results grow: always sent again; everything else once
        case "$f" in window.log|gpu_util.csv|bench/*) ;; *) grep -qxF "$f" "$WORK/sent.list" && continue ;; esac
        mkdir -p "$OUT/$(dirname "$f")" && cp "$WORK/out/$f" "$OUT/$f"
        echo "$f" >> "$WORK/sent.list"
    done
    ls -la "$OUT" "$OUT"/* 2>/dev/null | grep -v '^total' || true
}

start() {
    rm -rf "$WORK" && mkdir -p "$WORK/out"
    now > "$WORK/t0"
    install_wheels
    env_report | tee "$WORK/env.txt"
    export PYTHONUNBUFFERED=1 WINDOW_DATA="$DATA" WINDOW_WORK="$WORK" WINDOW_TINY="$TINY"
    # A new session: the job outlives this call (the machine stays warm 30 s; `finish` must follow within that).
    "$PY" -c 'import os, sys, contextlib
with contextlib.suppress(OSError): os.setsid()
os.execvp(sys.argv[1], sys.argv[1:])' bash tools/gpu_window.sh job \
        > "$WORK/out/window.log" 2>&1 < /dev/null &
    fetch_until post.done "$FETCH_AT"
    tail -n 25 "$WORK/out/window.log"
}

finish() {
    fetch_until bench.done $(( $(elapsed) + FINISH_WAIT ))
    tail -n 15 "$WORK/out/window.log"
    [ -e "$WORK/out/bench/runtime_cuda.md" ] && cat "$WORK/out/bench/runtime_cuda.md" | head -60 || true
}

dry() {
    # The same start/job/finish path on CPU: tiny images packed and extracted like the real ones, a tiny model.
    local root
    root=$(mktemp -d)
    "$PY" - "$root" <<'EOF'
import sys
from pathlib import Path
import cv2, skimage.data as d
root = Path(sys.argv[1])
def put(folder, name, rgb):
    (root / folder).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / folder / f"{name}.png"), rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
for n in ("astronaut", "rocket", "coffee"):
    put("src/CleanA", n, getattr(d, n)())
put("src/CleanB", "chelsea", d.chelsea())
put("src/LIVE1", "ihc", d.immunohistochemistry()[:160, :192])
put("src/LIVE1", "motorcycle", d.stereo_motorcycle()[0][:128, :160])
put("src/Classic5", "camera", d.camera()[:128, :128])
EOF
    "$PY" -m train.pack "$root/src/CleanA" "$root/src/CleanB" -o "$root/data/train" --holdout 1 -q
    "$PY" -m train.pack "$root/src/LIVE1" "$root/src/Classic5" -o "$root/data/eval" --name eval -q
    WINDOW_DATA="$root/data" WINDOW_TINY=1 WINDOW_FETCH_AT=${WINDOW_FETCH_AT:-90} WINDOW_POST_S=${WINDOW_POST_S:-30} \
        WINDOW_BENCH_S=${WINDOW_BENCH_S:-20} bash tools/gpu_window.sh start
    WINDOW_DATA="$root/data" WINDOW_FINISH_WAIT=${WINDOW_FINISH_WAIT:-90} bash tools/gpu_window.sh finish
    rm -rf "$root"
}

case "${1:-}" in
    prepare) prepare ;;
    payload) payload_check ;;
    start) start ;;
    job) job ;;
    finish) finish ;;
    dry) dry ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
esac
