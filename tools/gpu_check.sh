#!/usr/bin/env bash
# GPU check of the ONNX Runtime CUDA path (tools/gpu_check.py; plan in tools/GPU_WINDOW.md, "Backend check").
# The GPU machine has only the CPU onnxruntime; onnxruntime-gpu (a 244 MiB wheel) travels in 5 parts, one per
# call, each call within 30 s of the previous one (the machine keeps /tmp while warm):
#
#   bash tools/gpu_check.sh prepare        CPU machine: download the wheel, split it into .gpucheck/part-0{0..4}
#   bash tools/gpu_check.sh receive K      GPU call K+1 (K = 0..3), carry [".gpucheck/part-0K"]: append the part
#   bash tools/gpu_check.sh run            last GPU call, carry [".gpucheck/part-04"]: append, verify, install, check
#   bash tools/gpu_check.sh dry            CPU rehearsal of `run` with the installed CPU onnxruntime (CUDA absent)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PARTS=.gpucheck
WHEEL=onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl  # CUDA 13 + cuDNN 9, like the machine's torch
INBOX=${GPUCHECK_INBOX:-/tmp/wcdgan-gpucheck}
OUT=${OUT:-$INBOX/out}

case "${1:-}" in
    prepare)
        mkdir -p runs/gpu-check "$PARTS"
        [ -f "runs/gpu-check/$WHEEL" ] || "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 -d runs/gpu-check onnxruntime-gpu==1.31.1
        rm -f "$PARTS"/part-*
        split -b 52M -d -a 2 "runs/gpu-check/$WHEEL" "$PARTS/part-"
        sha256sum "runs/gpu-check/$WHEEL" | cut -d' ' -f1 > "$PARTS/part-04.sha256"
        ls -la "$PARTS" ;;
    receive)
        mkdir -p "$INBOX"
        cat "$PARTS/part-0$2" >> "$INBOX/$WHEEL.partial"
        echo "received part $2: $(stat -c %s "$INBOX/$WHEEL.partial") bytes so far" ;;
    run)
        bash "$0" receive 4
        [ "$(sha256sum "$INBOX/$WHEEL.partial" | cut -d' ' -f1)" = "$(cat "$PARTS/part-04.sha256")" ] \
            || { echo "wheel checksum mismatch: a part is missing or doubled" >&2; exit 3; }
        mv "$INBOX/$WHEEL.partial" "$INBOX/$WHEEL"
        "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$INBOX/$WHEEL"
        mkdir -p "$OUT"
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
        PYTHONPATH=/tmp/site:. "$PY" tools/gpu_check.py -o "$OUT/gpu_check.json" ;;
    dry)
        mkdir -p "$OUT"
        PYTHONPATH=. "$PY" tools/gpu_check.py -o "$OUT/gpu_check.json" || true
        "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); assert 'CUDA' in r['checks']['ort_cuda']['error']" \
            "$OUT/gpu_check.json" && echo "dry run: the check ran and reported the missing CUDA provider" ;;
    *) sed -n '2,11p' "$0"; exit 2 ;;
esac
