#!/usr/bin/env bash
# Train on every accelerator of this machine (all GPUs, all TPU cores, or the CPU).
#   launch/single_host.sh CONFIG WORKDIR [--config.x=y ...]
# JAX sees all local devices; the global batch is split across them (data parallel).
# Restrict GPUs with CUDA_VISIBLE_DEVICES=0,1 as usual.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 CONFIG WORKDIR [--config.x=y ...]" >&2; exit 2
fi
config="$1"; workdir="$2"; shift 2
exec python -m mvae_jax.train --config="$config" --workdir="$workdir" "$@"
