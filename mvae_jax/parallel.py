"""Data parallelism through JAX's sharding: one code path for 1 CPU, all local GPUs, or many hosts.

Parameters and optimizer state are replicated; the batch is split along a one-dimensional `data`
mesh axis that spans every device of every process. Each process loads only its slice of the global
batch (`global_batch / process_count` rows) and `global_batch_array` stitches the slices into one
global `jax.Array`.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'


def maybe_initialize_distributed() -> None:
  """Starts multi-process JAX when the launch scripts ask for it through the environment.

  MVAE_COORDINATOR_ADDRESS, MVAE_NUM_PROCESSES, MVAE_PROCESS_ID: explicit cluster (any machines).
  MVAE_DISTRIBUTED=auto: let JAX detect the cluster (TPU pod slices, SLURM, Open MPI, ...).
  Nothing set: a single process, nothing to do.
  """
  if jax.distributed.is_initialized():
    return
  addr = os.environ.get('MVAE_COORDINATOR_ADDRESS')
  if addr:
    missing = [v for v in ('MVAE_NUM_PROCESSES', 'MVAE_PROCESS_ID') if v not in os.environ]
    if missing:
      raise RuntimeError(f'MVAE_COORDINATOR_ADDRESS is set but {missing} are not')
    jax.distributed.initialize(coordinator_address=addr,
                               num_processes=int(os.environ['MVAE_NUM_PROCESSES']),
                               process_id=int(os.environ['MVAE_PROCESS_ID']))
  elif os.environ.get('MVAE_DISTRIBUTED') == 'auto':
    jax.distributed.initialize()


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over `devices` (default: every device of every process)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over the data axis, the rest whole."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch(global_batch: int, mesh: Mesh, flag: str = '--config.train.batch_size') -> None:
  """Raises ValueError naming `flag` (the setting to change) when the batch does not split."""
  if global_batch % mesh.devices.size:
    raise ValueError(f'global batch {global_batch} is not divisible by the {mesh.devices.size} '
                     f'devices of the mesh; change {flag}')


def global_batch_array(local: Any, mesh: Mesh) -> Any:
  """This process's rows of every leaf -> global arrays sharded over the data axis."""
  sharding = batch_sharded(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                      local)
