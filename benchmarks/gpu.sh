#!/usr/bin/env bash
# One command for a GPU machine: install, run the model tests on the GPU, measure every family.
#
#   bash benchmarks/gpu.sh --offline [OUT_DIR]   # a GPU machine without a package index (below)
#   bash benchmarks/gpu.sh [OUT_DIR]             # a GPU machine that reaches a package index
#   bash benchmarks/gpu.sh --dry_run [OUT_DIR]   # the same steps on the CPU, smoke sizes
#   PY=/tmp/py312gpu/bin/python bash benchmarks/gpu.sh --offline --dry_run OUT   # the offline
#                                                # install checked on the CPU (Python 3.12)
#
# --offline (this project's GPU machines: no network, Python 3.12 with jax 0.11.2 and its CUDA 13
# plugin, flax, optax, orbax-checkpoint, numpy, absl-py, pytest): uses that Python and its jax as
# they are. The packages the image lacks and these steps import travel as wheels in
# benchmarks/wheels/ (git-ignored; fill it with `bash benchmarks/gpu_wheels.sh` where PyPI is
# reachable, and carry it with the call: 77 KB, ml-collections alone). They are installed with
# `pip install --no-index --no-deps --target` into a folder on PYTHONPATH, and the checkout itself
# is put on PYTHONPATH: no build, no resolver, nothing that could replace the image's jax. (A venv
# made with --system-site-packages from a Python that is itself a venv, as the image's is, would
# not see that venv's packages: hence no venv.)
# Online: a virtualenv that sees the system's packages and `pip install -e ".[test]"`, plus the
# `cuda12` extra unless the system's jax already sees a GPU.
# Then: tests/test_models.py on the accelerator (float32, highest matmul precision), then
# benchmarks/gpu_bench.py (the 40% MFU headline, generation at the released sizes, the training
# step of every family at the magenta and paper presets in float32 and bfloat16). Writes
# OUT_DIR/gpu_bench.{json,md}, OUT_DIR/tests.log, OUT_DIR/pip.log and OUT_DIR/summary.json
# (default OUT_DIR: ${OUT:-benchmarks/results/gpu}). About 6 minutes on one H100.
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0; offline=0
while [[ $# -gt 0 && "$1" == --* ]]; do
  case "$1" in
    --dry_run) dry=1 ;;
    --offline) offline=1 ;;
    --fetch_wheels) exec bash benchmarks/gpu_wheels.sh ;;
    *) echo "error: unknown flag $1" >&2; exit 2 ;;
  esac
  shift
done
out="${1:-${OUT:-benchmarks/results/gpu}}"
mkdir -p "$out"
start=$(date +%s)

if [[ $offline == 1 ]]; then
  py=${PY:-python3}
  site=${GPU_SITE:-/tmp/mvae_gpu_site}
  shopt -s nullglob
  wheels=(benchmarks/wheels/*.whl)
  if [[ ${#wheels[@]} == 0 ]]; then
    echo "error: benchmarks/wheels/ has no wheels: run bash benchmarks/gpu_wheels.sh where PyPI is" \
      "reachable, and carry benchmarks/wheels with the call" >&2
    exit 1
  fi
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "${wheels[@]}" >"$out/pip.log" 2>&1 \
    || { echo "error: offline install failed, see $out/pip.log"; exit 1; }
  export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  echo "offline: ${#wheels[@]} wheel(s) into $site; $("$py" -c 'import jax; print("jax", jax.__version__)')" \
    | tee -a "$out/pip.log"
elif [[ $dry == 1 ]]; then
  py=${PY:-.venv/bin/python}
else
  venv=${GPU_VENV:-/tmp/mvae_gpu_venv}
  python3 -m venv --system-site-packages "$venv"
  py="$venv/bin/python"
  extras="test"
  "$py" -c "import jax; jax.devices('gpu')" >/dev/null 2>&1 || extras="cuda12,test"
  if ! "$py" -m pip install -q -e ".[$extras]" >"$out/pip.log" 2>&1; then
    echo "error: install failed (no package index? use --offline), see $out/pip.log"; exit 1
  fi
fi
if [[ $dry == 1 ]]; then
  export JAX_PLATFORMS=cpu
else
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
printf '{"dry_run": %s, "offline": %s, "tests_rc": %d, "bench_rc": %d, "seconds": %d}\n' \
  "$([[ $dry == 1 ]] && echo true || echo false)" "$([[ $offline == 1 ]] && echo true || echo false)" \
  "$tests_rc" "$bench_rc" "$(( $(date +%s) - start ))" | tee "$out/summary.json"
[[ $tests_rc == 0 && $bench_rc == 0 ]]
