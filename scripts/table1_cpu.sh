#!/usr/bin/env bash
# CPU Table 1 (issue 10): every model on MREF and SAN / HAN / PAN[H]+CTX on MDIST and MBG, each trained with the
# `cpu` recipe (the demo's: same optimiser steps for every model), evaluated on 10K test examples, then collected
# into benchmarks/results/table1-cpu-<date>.json. Resumable: a run with a last.pt continues where it stopped
# (`pan train --resume` is exact), a run with its eval JSON is skipped; run it again until it says "all done".
#   bash scripts/table1_cpu.sh [RUNS_DIR] [MAX_RUNS]      # default benchmarks/table1-cpu (committed without its .pt files), all runs
set -euo pipefail
runs=${1:-benchmarks/table1-cpu}
max_runs=${2:-1000}
jobs=(
  "uniform mref" "stn-s mref" "stn-m mref" "san mref" "han mref" "pan-s mref" "pan-h mref" "pan-s-ctx mref"
  "pan-h-ctx mref" "san mdist" "han mdist" "pan-h-ctx mdist" "san mbg" "han mbg" "pan-h-ctx mbg"
)
done_now=0
for job in "${jobs[@]}"; do
  read -r model dataset <<<"$job"
  out="$runs/$model-$dataset"
  [[ -f "$out/eval_${dataset}_test.json" ]] && continue
  (( done_now >= max_runs )) && { echo "stopping after $max_runs run(s); run again to continue"; exit 0; }
  resume=()
  [[ -f "$out/last.pt" ]] && resume=(--resume)
  python -m pan train --recipe cpu --model "$model" --dataset "$dataset" --backend torch --device cpu \
    --out "$out" "${resume[@]}" --quiet
  python -m pan eval --checkpoint "$out/best.pt" --split test --num-examples 10000 --backend torch --device cpu
  done_now=$((done_now + 1))
done
python -m pan table --results "$runs" --write "benchmarks/results/table1-cpu-$(date -u +%F).json"
echo "all done"
