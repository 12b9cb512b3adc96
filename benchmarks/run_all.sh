#!/usr/bin/env bash
# Training-step and sampling throughput of every family at the small and magenta presets (CPU).
# Writes benchmarks/results/train_step_families.json and benchmarks/results/sample.json (appends).
#   bash benchmarks/run_all.sh
# The hierarchical magenta presets (2 x 2048 BiLSTM over 256-512 steps) cost hundreds of GFLOP per
# example per training step, so they run at a small batch and few steps on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=benchmarks/results
mkdir -p "$OUT"
train() {  # config batch steps warmup
  "$PY" benchmarks/train_step.py --config="configs/$1" --batch="$2" --steps="$3" --warmup="$4" \
      --json="$OUT/train_step_families.json"
}
sample() {  # config batch calls
  "$PY" benchmarks/sample.py --config="configs/$1" --batch="$2" --calls="$3" --json="$OUT/sample.json"
}
for f in melody2 drums2; do
  train "$f.py:small" 64 10 2
  train "$f.py:magenta" 64 10 2
done
train melody16.py:small 32 5 1
train melody32.py:small 16 5 1
train trio16.py:small 16 5 1
train melody16.py:magenta 4 3 1
train melody32.py:magenta 2 3 1
train trio16.py:magenta 4 3 1
for f in melody2 drums2; do
  sample "$f.py:small" 64 5
  sample "$f.py:magenta" 64 5
done
for f in melody16 melody32 trio16; do
  sample "$f.py:small" 32 3
  sample "$f.py:magenta" 8 3
done
