"""Orbax checkpoints of a run directory: the train state plus the data loader's position.

Layout: `<workdir>/checkpoints/<step>/{state,data}`. The loader position is stored explicitly
(`{'next_batch': step}`), although for our loaders it equals the step, so a resumed run reads the
batches an uninterrupted run would have read.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


def manager(workdir: str, *, keep: int = 3, async_save: bool = True,
            read_only: bool = False) -> ocp.CheckpointManager:
  """The run's checkpoint manager; the caller decides when to save (every N steps and at the end)."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=not read_only,
      enable_async_checkpointing=async_save, read_only=read_only)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, 'checkpoints')),
                               options=options, item_names=('state', 'data'))


def save(mgr: ocp.CheckpointManager, step: int, state: Any, data_position: dict[str, Any]) -> None:
  """Starts an (async) save of `state` and the loader position as checkpoint `step`."""
  mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                         data=ocp.args.JsonSave(data_position)), force=True)


def restore(mgr: ocp.CheckpointManager, abstract_state: Any, step: int | None = None
            ) -> tuple[Any, dict[str, Any], int] | None:
  """Restores `step` (default: latest) onto the shardings of `abstract_state`.

  Returns (state, data_position, step), or None when the directory holds no checkpoint.
  """
  step = mgr.latest_step() if step is None else step
  if step is None:
    return None
  if step not in mgr.all_steps():
    raise FileNotFoundError(f'no checkpoint for step {step} in {mgr.directory}; '
                            f'available: {sorted(mgr.all_steps())}')
  restored = mgr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
  return restored['state'], dict(restored['data']), step


def abstract_like(tree: Any, sharding: Any) -> Any:
  """ShapeDtypeStructs of `tree` placed on `sharding`, the target of a restore."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
