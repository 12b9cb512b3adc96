#!/usr/bin/env bash
# Train on a Cloud TPU pod slice: runs the same command on every worker of the TPU VM; JAX finds
# the slice's hosts itself (MVAE_DISTRIBUTED=auto). The repo must be installed on every worker
# (pip install -e . in REPO_DIR) and WORKDIR must be shared storage (a gs:// bucket).
#   TPU_NAME=my-slice ZONE=us-central2-b launch/tpu_pod.sh CONFIG WORKDIR [--config.x=y ...]
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME to the TPU VM name}"
: "${ZONE:?set ZONE to the TPU zone}"
REPO_DIR="${REPO_DIR:-~/mvae_jax}"
if [[ $# -lt 2 ]]; then
  echo "usage: TPU_NAME=.. ZONE=.. $0 CONFIG WORKDIR [--config.x=y ...]" >&2; exit 2
fi
config="$1"; workdir="$2"; shift 2
extra="$(printf ' %q' "$@")"
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command \
  "cd $REPO_DIR && MVAE_DISTRIBUTED=auto python -m mvae_jax.train --config=$config --workdir=$workdir$extra"
