#!/usr/bin/env bash
# Train on several machines: run this once on every host, with the same CONFIG and WORKDIR
# (WORKDIR on storage all hosts share, e.g. NFS or a gs:// bucket) and these variables set:
#   MVAE_COORDINATOR_ADDRESS  host:port of process 0, reachable from every host (e.g. 10.0.0.1:1234)
#   MVAE_NUM_PROCESSES        number of hosts (processes)
#   MVAE_PROCESS_ID           this host's index, 0 .. MVAE_NUM_PROCESSES-1
# Under SLURM or Open MPI, set MVAE_DISTRIBUTED=auto instead and JAX reads the cluster itself.
#   launch/multi_host.sh CONFIG WORKDIR [--config.x=y ...]
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 CONFIG WORKDIR [--config.x=y ...]" >&2; exit 2
fi
if [[ "${MVAE_DISTRIBUTED:-}" != "auto" ]]; then
  for v in MVAE_COORDINATOR_ADDRESS MVAE_NUM_PROCESSES MVAE_PROCESS_ID; do
    if [[ -z "${!v:-}" ]]; then echo "$0: $v is not set (or set MVAE_DISTRIBUTED=auto)" >&2; exit 2; fi
  done
fi
config="$1"; workdir="$2"; shift 2
exec python -m mvae_jax.train --config="$config" --workdir="$workdir" "$@"
