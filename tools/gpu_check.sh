#!/usr/bin/env bash
# What a lent GPU runs, in about 12 minutes, every result under $OUT (the `device` tool brings $OUT back).
#
#   bash tools/gpu_check.sh prepare     # here, first: data and wheels the device machine lacks -> .device/
#   bash tools/gpu_check.sh run         # on the device: the `device` tool's run with carry [".device"]
#   DEVICE=cpu SMOKE=1 OUT=build/gpu_check bash tools/gpu_check.sh run    # the same script here, tiny budgets
#
# run: (1) the device-sensitive tests on the device, (2) python -m gifd.bench there (batched restarts and images
# against sequential chains), (3) the most valuable pending figure run, FIGURE (default 05_fedavg_cifar10), at its
# runs.json budget, packed as $OUT/<figure>.tar.gz: unpack it in the repository root and run
# `python -m gifd.reproduce figures --only <figure>` here to draw it from the cache. Each step has its own time
# limit, so a slow step never takes the others' time; the figure run stops at its limit and returns what it
# finished (the attack cache resumes it on the next GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODE=${1:-run}
DEVICE=${DEVICE:-cuda}
SMOKE=${SMOKE:-0}
FIGURE=${FIGURE:-05_fedavg_cifar10}
OUT=${OUT:-build/gpu_check}
PY=${PY:-python3}
SHARED=../shared/gifd_data
CIFAR=cifar10_yoongikim/cifar10_jpg_q75_train_test.tar.gz
TINY=tinyimagenet_rangeetpan/tiny_imagenet_val_wnids_words.tar.gz

if [ "$MODE" = prepare ]; then
    grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
    rm -rf .device && mkdir -p .device/whl .device/shared/cifar10_yoongikim .device/shared/tinyimagenet_rangeetpan
    # the archives themselves (not a subset): attack-cache keys name a data root by its content (gifd.keys.data_key)
    cp "$SHARED/$CIFAR" ".device/shared/$CIFAR"
    [ "${WITH_TINY:-0}" = 1 ] && cp "$SHARED/$TINY" ".device/shared/$TINY"  # only the 64x64 figures need it
    # the pure-Python wheel the device's Python 3.12 does not have (CMA-ES for GGL) and the converted LPIPS weights
    ${PIP:-.venv/bin/pip} download -q --no-deps --only-binary=:all: --python-version 3.12 -d .device/whl cma==4.5.0
    mkdir -p .device/cache/lpips
    .venv/bin/python -c 'from gifd.perceptual import load_lpips; load_lpips("alex")'
    cp "${GIFD_CACHE:-$HOME/.cache/gifd}/lpips/alex.safetensors" .device/cache/lpips/
    du -sh .device
    # what the device tool sends: tracked and untracked-not-ignored files plus the carried .device, at most 64 MiB
    git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c '%s %n' 2> /dev/null | sort -rn \
        > build/device_payload.txt
    tree=$(awk '{s += $1} END {print s}' build/device_payload.txt)
    carried=$(du -sb .device | cut -f1)
    total=$(( (tree + carried) / 1048576 ))
    echo "payload: working tree $(( tree / 1048576 )) MiB + .device $(( carried / 1048576 )) MiB = $total MiB (limit 64)"
    if [ "$total" -ge 64 ]; then
        echo "error: the device tool would refuse this call ($total MiB > 64 MiB); largest files:" >&2
        head -5 build/device_payload.txt >&2
        exit 1
    fi
    exit 0
fi

mkdir -p "$OUT"
log() { echo "[gpu_check $(date +%H:%M:%S)] $*" | tee -a "$OUT/gpu_check.log"; }
if [ -d .device/whl ] && ls .device/whl/*.whl > /dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/gifd_site .device/whl/*.whl \
        && export PYTHONPATH="$ROOT:/tmp/gifd_site:${PYTHONPATH:-}"
else
    export PYTHONPATH="$ROOT:${PYTHONPATH:-}"
fi
# the data where runs.json says it is (../shared beside the repository), unless that already exists
if [ ! -e "$SHARED" ] && [ -d .device/shared ]; then
    mkdir -p ../shared && ln -sfn "$ROOT/.device/shared" "$SHARED" || log "cannot place the data at $SHARED"
fi
export PYTHONUNBUFFERED=1
# the carried cache (LPIPS weights) on the device; a CPU smoke run keeps its extractions out of .device (carried)
[ -d .device/cache ] && [ "$SMOKE" != 1 ] && export GIFD_CACHE="$ROOT/.device/cache"
{ nvidia-smi 2> /dev/null || true; $PY -c 'import torch; print(torch.__version__, torch.cuda.is_available())'; } \
    > "$OUT/device.txt" 2>&1
log "device $DEVICE, smoke $SMOKE, figure $FIGURE"

# (1) tests on the device (about 1 minute)
GIFD_TEST_DEVICE=$DEVICE timeout -s INT 150 $PY -m pytest -q -p no:cacheprovider -x \
    tests/test_device.py tests/test_matching.py tests/test_gan_attacks.py > "$OUT/tests.log" 2>&1
log "tests rc=$? ($(tail -1 "$OUT/tests.log"))"

# (2) the benchmark (about 2 minutes on a GPU)
if [ "$SMOKE" = 1 ]; then BENCH=(--sizes 32 --reps 1 --batches 1 --restarts 1 2); else BENCH=(); fi
timeout -s INT 240 $PY -m gifd.bench --device "$DEVICE" "${BENCH[@]}" --out "$OUT/bench.json" \
    --table "$OUT/bench_$DEVICE.md" > "$OUT/bench.log" 2>&1
log "bench rc=$?"

# (3) the figure run, with what is left of the 12 minutes
if [ "$SMOKE" = 1 ]; then
    SETS=(--set 'indices=[500]' --set 'values=[16,24]' --set 'methods=["ig","gifd"]' --set model=convnet
          --set restarts=2 --set out_dir=build/gpu_check_figure)
    LIMIT=300
else
    SETS=()
    LIMIT=${FIGURE_SECONDS:-330}
fi
timeout -s INT "$LIMIT" $PY tools/run_entry.py "$FIGURE" --set "device=$DEVICE" "${SETS[@]}" \
    --tar "$OUT/$FIGURE.tar.gz" > "$OUT/figure.log" 2>&1
log "figure rc=$? ($(grep -c 'done in' "$OUT/figure.log") finished; $(ls -la "$OUT/$FIGURE.tar.gz" 2> /dev/null))"
