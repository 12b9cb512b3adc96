#!/usr/bin/env bash
# Table 1, 2-bar melody, at the reference's cat-mel_2bar_small sizes with the paper's schedules,
# on one GPU in about 8 minutes: baseline, VAE and VAE + scheduled sampling, trained and evaluated
# like every other family (experiments/table1.py), written to docs/results/table1_gpu.json (family melody2).
#
#   bash experiments/table1_gpu.sh              # on a GPU machine (after benchmarks/gpu.sh installed)
#   bash experiments/table1_gpu.sh --dry_run    # the same commands on the CPU, smoke sizes, 2 steps
#
# Sizes: `configs/melody2.py:magenta` (encoder 512, z 256, decoder 2 x 256, batch 512, 90-class
# melodies of the folk corpus). Schedules: the paper's inverse-sigmoid rate k = 1000 (override with
# K=...), learning rate 1e-3 -> 1e-5 at 0.9999, the preset's KL and free bits. STEPS (default 4000)
# is what fits 8 minutes with three columns; the budget and k are recorded in the JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
dry=0
[[ "${1:-}" == "--dry_run" ]] && dry=1
py=${PY:-${GPU_VENV:-/tmp/mvae_gpu_venv}/bin/python}
[[ -x "$py" ]] || py=.venv/bin/python
root=${ROOT:-runs/table1_gpu}
if [[ $dry == 1 ]]; then
  export JAX_PLATFORMS=cpu
  exec "$py" experiments/table1.py --family=melody2 --preset=smoke --steps=2 --ss_rate=1 \
    --root="${root}_dry" --out_json="${OUT_JSON:-/tmp/table1_gpu_dry.json}" \
    --out_md="${OUT_MD:-/tmp/table1_gpu_dry.md}" --eval_num_batches=2
fi
exec "$py" experiments/table1.py --family=melody2 --preset=magenta --steps="${STEPS:-4000}" \
  --ss_rate="${K:-1000}" --root="$root" --out_json="${OUT_JSON:-docs/results/table1_gpu.json}" \
  --out_md="${OUT_MD:-docs/results/table1_gpu_melody2.md}" --set train.checkpoint_every_steps=1000
