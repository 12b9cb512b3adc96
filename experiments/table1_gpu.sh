#!/usr/bin/env bash
# Table 1 runs for one GPU's time, trained and evaluated like every other family
# (experiments/table1.py).
#
#   bash experiments/table1_gpu.sh                          # 2-bar melody, three columns (below)
#   bash experiments/table1_gpu.sh --structure              # 16-bar melody, hierarchical vs flat,
#                                                           # then the structure report of both
#   bash experiments/table1_gpu.sh [--structure] --dry_run  # the same commands on the CPU, smoke
#                                                           # sizes, 2 steps
# Run it after benchmarks/gpu.sh installed the project (its venv, or PY=...).
#
# Default mode: Table 1, 2-bar melody, at the reference's cat-mel_2bar_small sizes with the paper's
# schedules, on one GPU in about 8 minutes: baseline, VAE and VAE + scheduled sampling, written to
# docs/results/table1_gpu.json (family melody2). Sizes: `configs/melody2.py:magenta` (encoder 512,
# z 256, decoder 2 x 256, batch 512, 90-class melodies of the folk corpus). Schedules: the
# paper's inverse-sigmoid rate k = 1000 (override with K=...), learning rate 1e-3 -> 1e-5 at
# 0.9999, the preset's KL and free bits. STEPS (default 4000) is what fits 8 minutes with three
# columns; the budget and k are recorded in the JSON.
#
# --structure (issue 26): the 16-bar melody family (`--family=melody16`: the same encoder, z and
# budget; `hier` = the reference's hierdec-mel_16bar sizes, conductor 2 x 1024 and bottom decoder
# 2 x 1024, `flat` = a flat decoder of 2 x 1024 (FLAT_SIZES=...), both VAE + scheduled sampling)
# at `configs/melody16.py:magenta` (encoder 2 x 2048, z 512, batch 512), STEPS each (default 2000;
# not yet timed on a GPU: measure a few hundred steps first and set STEPS to what fits), written
# to docs/results/table1_gpu.json (family melody16); then `python -m mvae_jax.structure` on each
# run (1000 samples at T = 0.5 beside the folk eval split and its bars shuffled; with
# CONCAT_FROM=<a 2-bar melody run> also its samples joined), into RUN/structure/.
set -euo pipefail
cd "$(dirname "$0")/.."
dry=0; structure=0
for arg in "$@"; do
  case "$arg" in
    --dry_run) dry=1 ;;
    --structure) structure=1 ;;
    *) echo "error: unknown argument $arg (--structure, --dry_run)" >&2; exit 2 ;;
  esac
done
py=${PY:-${GPU_VENV:-/tmp/mvae_gpu_venv}/bin/python}
[[ -x "$py" ]] || py=.venv/bin/python
root=${ROOT:-runs/table1_gpu}
if [[ $dry == 1 ]]; then
  export JAX_PLATFORMS=cpu
  root="${root}_dry"
fi

if [[ $structure == 0 ]]; then
  if [[ $dry == 1 ]]; then
    exec "$py" experiments/table1.py --family=melody2 --preset=smoke --steps=2 --ss_rate=1 \
      --root="$root" --out_json="${OUT_JSON:-/tmp/table1_gpu_dry.json}" \
      --out_md="${OUT_MD:-/tmp/table1_gpu_dry.md}" --eval_num_batches=2
  fi
  exec "$py" experiments/table1.py --family=melody2 --preset=magenta --steps="${STEPS:-4000}" \
    --ss_rate="${K:-1000}" --root="$root" --out_json="${OUT_JSON:-docs/results/table1_gpu.json}" \
    --out_md="${OUT_MD:-docs/results/table1_gpu_melody2.md}" --set train.checkpoint_every_steps=1000
fi

# --structure
if [[ $dry == 1 ]]; then
  "$py" experiments/table1.py --family=melody16 --preset=smoke --steps=2 --ss_rate=1 \
    --flat_dec_sizes=16 --root="$root" --out_json="${OUT_JSON:-/tmp/table1_gpu_dry.json}" \
    --out_md="${OUT_MD:-/tmp/table1_gpu_dry_melody16.md}" --eval_num_batches=2
  measure=(--num=8 --batch_size=8 --max_data=64 --pictures=1)
else
  "$py" experiments/table1.py --family=melody16 --preset=magenta --steps="${STEPS:-2000}" \
    --ss_rate="${K:-1000}" --flat_dec_sizes="${FLAT_SIZES:-1024,1024}" --root="$root" \
    --out_json="${OUT_JSON:-docs/results/table1_gpu.json}" \
    --out_md="${OUT_MD:-docs/results/table1_gpu_melody16.md}" \
    --set train.checkpoint_every_steps=500
  measure=(--num=1000 --batch_size=250)
fi
for column in hier flat; do
  "$py" -m mvae_jax.structure --workdir="$root/melody16/$column" "${measure[@]}" \
    ${CONCAT_FROM:+--concat_from="$CONCAT_FROM"}
done
