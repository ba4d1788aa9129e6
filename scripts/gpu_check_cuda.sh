#!/usr/bin/env bash
# GPU check of the CUDA backend (csrc/): build pan_kernels._C, run its tests, then compute-sanitizer memcheck and
# racecheck (and synccheck / initcheck while time allows) on a small run of every op. Run from the repository root
# on a machine with a GPU; logs go to $OUT (default build/gpu_check). Target: under 8 minutes on one H100.
#   OUT=/tmp/logs bash scripts/gpu_check_cuda.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export PATH="$CUDA_HOME/bin:$PATH"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-3}
export PYTHONUNBUFFERED=1
START=$SECONDS
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
note() { echo "[$((SECONDS - START))s] $*" | tee -a "$SUMMARY"; }

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  "$PY" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
  nvcc --version | tail -2
  git rev-parse HEAD 2>/dev/null
} > "$OUT/environment.txt" 2>&1
note "environment: $(tr '\n' ' ' < "$OUT/environment.txt")"

# 1. build (fresh, so a stale object from another torch never links in)
rm -rf build/temp.* pan_kernels/_C*.so
T=$SECONDS
PAN_FORCE_CUDA_BUILD=1 timeout 300 "$PY" setup.py build_ext --inplace > "$OUT/build.log" 2>&1
rc=$?
note "build rc=$rc in $((SECONDS - T))s"
if [ $rc -ne 0 ]; then tail -40 "$OUT/build.log" | tee -a "$SUMMARY"; exit 1; fi
for o in build/temp.*/csrc/*.o; do
  note "$(basename "$o"): $(cuobjdump -sass "$o" 2>/dev/null | grep -c HMMA) HMMA instructions"
done

# 2. tests of the extension (schemas, import order, every op against the float64 reference, opcheck, graphs, compile)
T=$SECONDS
timeout 300 "$PY" -m pytest tests/test_cuda_extension.py -q -rfEs -p no:cacheprovider > "$OUT/pytest.log" 2>&1
note "pytest rc=$? in $((SECONDS - T))s: $(tail -1 "$OUT/pytest.log")"

# 3. compute-sanitizer on a small run of every op, instrumenting only this extension's kernels when supported
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer /opt/nvidia/*/compute-sanitizer 2>/dev/null | head -1)
if [ -z "$SAN" ]; then note "compute-sanitizer not found"; exit 0; fi
FILTER=()
if "$SAN" --help 2>&1 | grep -q -- "--kernel-regex"; then
  FILTER=(--kernel-regex "kns=attention_mlp|hard_marginal|soft_pool")
fi
for tool in memcheck racecheck synccheck initcheck; do
  if [ "$tool" = synccheck ] && [ $((SECONDS - START)) -gt 360 ]; then note "skipping synccheck and initcheck (time)"; break; fi
  if [ "$tool" = initcheck ] && [ $((SECONDS - START)) -gt 400 ]; then note "skipping initcheck (time)"; break; fi
  T=$SECONDS
  timeout 150 "$SAN" --tool "$tool" "${FILTER[@]}" --error-exitcode 3 --print-limit 20 \
    "$PY" scripts/sanitize_cuda_ops.py > "$OUT/sanitizer_$tool.log" 2>&1
  rc=$?
  note "$tool rc=$rc in $((SECONDS - T))s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer_$tool.log" | tail -1)"
done
note "total $((SECONDS - START))s"
