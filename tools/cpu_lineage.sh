#!/usr/bin/env bash
# The CPU training lineage of the bundled default model (issue 33; the half-resolution trunk's since 2026-12-07,
# session 7): one run that goes on across sessions.
#
#   tools/cpu_lineage.sh start END [THREADS [TRAIN_ARGS...]]
#                                              resume the committed state in the background until END (a time `date`
#                                              reads, e.g. 07:55 or 'tomorrow 00:50', or a Unix time; never one in the
#                                              past), niced, THREADS torch threads (2);
#                                              TRAIN_ARGS go to `train --resume` (e.g. `--w-l1 0 --w-mse 1`: a recipe
#                                              change, recorded in the checkpoints)
#   tools/cpu_lineage.sh status                where the run stands (validation curve, last losses)
#   tools/cpu_lineage.sh commit                copy the run's best generator, full state and curve into the checkout
#
# LINEAGE=lineage tools/cpu_lineage.sh ...       works on another lineage (models/pretrained/lineage/, runs/lineage):
#                                                 the previous default's (small, full resolution); lineage_full: the
#                                                 equal-time A/B's full arm (that architecture, from scratch).
# What is committed (models/pretrained/lineage_half/): best.pt (the best generator by validation PSNR, a self-describing
# checkpoint; shipping it as the default is a separate step, docs/export.md), state.pt (weights, Adam state,
# iteration, training seconds, best score: what --resume continues) and log.jsonl (every loss and validation record
# since the lineage began; a resumed session repeats the records after the last periodic checkpoint) — each one
# file updated in place. The half trunk's lineage began from scratch as the half arm of an equal-time A/B (commands
# in models/pretrained/README.md). Data: ../shared/data/train (CBSD432, SunHays80_HR, Urban100_x2HR without the
# validation images); validation: every 12th image of each source from the 12th on (36 + 6 + 8 = 50 images; until
# 2026-12-07's last session the 8 Urban100 ones alone, which chose for urban edges). Never LIVE1/Classic5.
# Each session's --end-at stretches the cosine lr to the new end (train --help, --end-at).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
SHARED=${WCDGAN_SHARED:-../shared}
NAME=${LINEAGE:-lineage_half}  # lineage_half (the default's), lineage, lineage_full (models/pretrained/README.md)
WORK=${LINEAGE_WORK:-runs/$NAME}
KEEP=${LINEAGE_KEEP:-models/pretrained}
STATE=$KEEP/$NAME/state.pt
CURVE=$KEEP/$NAME/log.jsonl
BEST=$KEEP/$NAME/best.pt

split_sources() {  # each source's every 12th image (sorted, from the 12th on) validates and never trains
    local src f i
    rm -rf "$WORK/data" && mkdir -p "$WORK/data/val"
    for src in CBSD432 SunHays80_HR Urban100_x2HR; do
        mkdir -p "$WORK/data/$src" && i=0
        for f in $(ls "$SHARED/data/train/$src" | grep -iE '\.(png|jpe?g|bmp|tiff?)$' | sort); do
            if [ $((i % 12)) -eq 11 ]; then ln -s "$(realpath "$SHARED/data/train/$src/$f")" "$WORK/data/val/${src}_$f"
            else ln -s "$(realpath "$SHARED/data/train/$src/$f")" "$WORK/data/$src/"; fi
            i=$((i + 1))
        done
    done
}

start() {
    local end threads=${2:-2}
    case "$1" in  # a Unix time as it is: `date -d` reads some digit strings as dates ~170,000 years ahead
        *[!0-9]* | "") end=$(date -d "$1" +%s) || { echo "error: $1: not a time" >&2; exit 2; } ;;
        *) end=$1 ;;
    esac
    # `date -d 00:50` at 22:35 is this morning's: a run would stop at once, its session's training lost
    [ "$end" -gt "$(date +%s)" ] || { echo "error: $1 is in the past (after midnight, say 'tomorrow $1')" >&2; exit 2; }
    shift $(($# < 2 ? $# : 2))  # what is left goes to train
    [ -f "$STATE" ] || { echo "error: $STATE: no lineage to continue" >&2; exit 2; }
    split_sources
    # The work folder goes on only where it is newer than the committed state (a restart within a session);
    # an older one (another session's, or one made before the last commit) would resume a stale lineage.
    if [ ! "$WORK/run/last.pt" -nt "$STATE" ]; then
        rm -rf "$WORK/run" && mkdir -p "$WORK/run"
        cp "$STATE" "$WORK/run/last.pt" && cp "$CURVE" "$WORK/run/log.jsonl"
        if [ -f "$BEST" ]; then cp "$BEST" "$WORK/run/best.pt"; fi  # kept unless this session beats its score
    fi
    nohup nice -n 10 "$PY" -m train --resume -o "$WORK/run" --end-at "$end" --threads "$threads" -q \
        --data "$WORK/data/CBSD432" "$WORK/data/SunHays80_HR" "$WORK/data/Urban100_x2HR" \
        --val "$WORK/data/val" --val-images 100 "$@" > "$WORK/train.log" 2>&1 &
    echo "lineage training until $(date -d "@$end" +%H:%M) in the background (pid $!, log $WORK/train.log)"
}

status() {
    grep val_psnr "$WORK/run/log.jsonl" | tail -5 || true
    tail -n 1 "$WORK/run/log.jsonl"
}

commit() {
    [ -f "$WORK/run/best.pt" ] || { echo "error: $WORK/run/best.pt: nothing to commit" >&2; exit 1; }
    mkdir -p "$KEEP/$NAME"
    cp "$WORK/run/best.pt" "$BEST" && cp "$WORK/run/last.pt" "$STATE" && cp "$WORK/run/log.jsonl" "$CURVE"
    echo "copied into $BEST, $STATE, $CURVE"
}

case "${1:-}" in
    start) shift; start "$@" ;;
    status) status ;;
    commit) commit ;;
    *) sed -n '2,11p' "$0" >&2; exit 2 ;;
esac
