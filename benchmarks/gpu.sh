#!/usr/bin/env bash
# One command for a GPU machine: install, run the model tests on the GPU, measure every family.
#
#   bash benchmarks/gpu.sh [OUT_DIR]             # on a GPU machine (about 8 minutes on one H200)
#   bash benchmarks/gpu.sh --dry_run [OUT_DIR]   # the same steps on the CPU, smoke sizes
#
# Install: a virtualenv that sees the system's packages (a GPU image usually has jax with its
# CUDA plugin already); `pip install -e ".[cuda12]"` where an index is reachable, else offline from
# benchmarks/wheels/ (fill it beforehand with `bash benchmarks/gpu.sh --fetch_wheels` on a machine
# with network; the CUDA libraries themselves must then come with the machine's jax).
# Then: tests/test_models.py on the accelerator (float32, highest matmul precision), then
# benchmarks/gpu_bench.py (train step of every family, magenta and paper presets, float32 and
# bfloat16, with compile time, peak memory and MFU; sampling throughput). Writes
# OUT_DIR/gpu_bench.{json,md}, OUT_DIR/tests.log and OUT_DIR/summary.json (default OUT_DIR:
# ${OUT:-benchmarks/results/gpu}).
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0; fetch=0
while [[ $# -gt 0 && "$1" == --* ]]; do
  case "$1" in
    --dry_run) dry=1 ;;
    --fetch_wheels) fetch=1 ;;
    *) echo "error: unknown flag $1" >&2; exit 2 ;;
  esac
  shift
done
out="${1:-${OUT:-benchmarks/results/gpu}}"
mkdir -p "$out"
start=$(date +%s)

if [[ $fetch == 1 ]]; then  # the pure-Python dependencies a bare GPU image may lack
  python3 -m pip download -d benchmarks/wheels --only-binary=:all: --python-version 3.12 \
    ml-collections note-seq pretty-midi mido grain array-record tensorboardX music21 \
    tensorflow-datasets "protobuf<7" absl-py
  exit $?
fi

if [[ $dry == 1 ]]; then
  py=${PY:-.venv/bin/python}
  export JAX_PLATFORMS=cpu
else
  venv=${GPU_VENV:-/tmp/mvae_gpu_venv}
  python3 -m venv --system-site-packages "$venv"
  py="$venv/bin/python"
  if ! "$py" -m pip install -q -e ".[cuda12,test]" 2>"$out/pip.log"; then
    echo "no package index reachable: installing offline from benchmarks/wheels" | tee -a "$out/pip.log"
    "$py" -m pip install -q --no-index --find-links=benchmarks/wheels --no-build-isolation -e ".[test]" \
      >>"$out/pip.log" 2>&1 || { echo "error: install failed, see $out/pip.log"; exit 1; }
  fi
  export JAX_PLATFORMS=${JAX_PLATFORMS:-cuda}
fi
"$py" -c "import jax; print('devices:', jax.devices())" | tee "$out/devices.txt" || exit 1

# Model tests on the accelerator: the same assertions as on the CPU, float32 at full precision.
JAX_DEFAULT_MATMUL_PRECISION=highest "$py" -m pytest -q -x -p no:cacheprovider tests/test_models.py \
  >"$out/tests.log" 2>&1
tests_rc=$?
tail -n 1 "$out/tests.log"

flags=(--out="$out")
[[ $dry == 1 ]] && flags+=(--dry_run)
"$py" benchmarks/gpu_bench.py "${flags[@]}" 2>"$out/bench_stderr.log"
bench_rc=$?
printf '{"dry_run": %s, "tests_rc": %d, "bench_rc": %d, "seconds": %d}\n' \
  "$([[ $dry == 1 ]] && echo true || echo false)" "$tests_rc" "$bench_rc" "$(( $(date +%s) - start ))" \
  | tee "$out/summary.json"
[[ $tests_rc == 0 && $bench_rc == 0 ]]
