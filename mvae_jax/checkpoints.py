"""Orbax checkpoints of a run directory: the train state plus the data loader's position.

Layout: `<workdir>/checkpoints/<step>/{state,data}`, plus our `mvae_checksums.json` (size and CRC32
of every file, written once Orbax has committed the step), by which a truncated or overwritten file
is found before its values are used; `restore_good` falls back to the newest healthy step. The
loader position is stored explicitly (`{'next_batch': step}`), although for our loaders it equals
the step, so a resumed run reads the batches an uninterrupted run would have read.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import zlib
from typing import Any, Callable

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
  """Starts an (async) save of `state` and the loader position as checkpoint `step`, after the
  previous save has committed and been sealed with its checksums."""
  mgr.wait_until_finished()
  seal(mgr)
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


# ----------------------------------------------------------------------------- integrity

CHECKSUMS = 'mvae_checksums.json'  # inside each step folder, written after Orbax committed it
DAMAGED_DIR = 'checkpoints.damaged'  # <workdir>/checkpoints.damaged/<step>: set aside by training


class DamagedCheckpointError(RuntimeError):
  """No checkpoint of a run can be used (or the one asked for is damaged)."""


def step_dir(mgr: ocp.CheckpointManager, step: int) -> str:
  return os.path.join(str(mgr.directory), str(step))


def _file_sums(folder: str) -> dict[str, list[int]]:
  """{relative path: [size, crc32]} of every file under `folder` but the checksum file."""
  out = {}
  for root, dirs, files in os.walk(folder):
    dirs.sort()
    for name in sorted(files):
      full = os.path.join(root, name)
      rel = os.path.relpath(full, folder)
      if rel == CHECKSUMS or rel.endswith('.tmp'):
        continue
      crc = 0
      with open(full, 'rb') as f:
        while chunk := f.read(1 << 22):
          crc = zlib.crc32(chunk, crc)
      out[rel] = [os.path.getsize(full), crc]
  return out


def seal(mgr: ocp.CheckpointManager) -> None:
  """Writes the checksum file of every committed step that has none yet (process 0).

  Call after `wait_until_finished()`: Orbax lists only committed steps, so a step is sealed
  exactly as it was committed, and `verify` later detects any file truncated or changed in place.
  """
  if jax.process_index() != 0:
    return
  for step in mgr.all_steps():
    folder = step_dir(mgr, step)
    path = os.path.join(folder, CHECKSUMS)
    if os.path.isdir(folder) and not os.path.exists(path):
      with open(path + '.tmp', 'w') as f:
        json.dump({'step': int(step), 'files': _file_sums(folder)}, f)
      os.replace(path + '.tmp', path)


def verify(folder: str) -> str | None:
  """What is wrong with a step folder's files, or None when they match their checksums (or the
  step was never sealed: a run killed between the commit and the seal)."""
  path = os.path.join(folder, CHECKSUMS)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      want = json.load(f)['files']
  except (OSError, ValueError, KeyError) as e:
    return f'its checksum file is unreadable ({type(e).__name__})'
  have = _file_sums(folder)
  for rel, (size, crc) in sorted(want.items()):
    if rel not in have:
      return f'{rel} is missing'
    if have[rel][0] != size:
      return f'{rel} has {have[rel][0]} bytes, {size} when saved (truncated?)'
    if have[rel][1] != crc:
      return f'{rel} changed since it was saved (checksum mismatch)'
  return None


def _all_finite(tree: Any) -> bool:
  leaves = [x for x in jax.tree.leaves(tree)
            if hasattr(x, 'dtype') and jax.numpy.issubdtype(x.dtype, jax.numpy.inexact)]
  return all(bool(jax.device_get(jax.numpy.isfinite(x).all())) for x in leaves)


def _short(e: BaseException) -> str:
  first = next((line.strip() for line in str(e).splitlines() if line.strip()), '')
  return f'{type(e).__name__}: {first[:200]}'


def check_step(mgr: ocp.CheckpointManager, abstract_state: Any, step: int
               ) -> tuple[Any, dict[str, Any] | None, str | None]:
  """(state, data_position, None) when `step` verifies, restores and holds only finite values;
  (None, None, what is wrong) otherwise."""
  problem = verify(step_dir(mgr, step))
  if problem is not None:
    return None, None, problem
  try:
    state, data, _ = restore(mgr, abstract_state, step)
  except Exception as e:  # pylint: disable=broad-except
    return None, None, f'cannot be restored ({_short(e)})'
  if not _all_finite(state):
    return None, None, 'holds non-finite values'
  return state, data, None


def restore_good(mgr: ocp.CheckpointManager, abstract_state: Any, step: int | None = None,
                 warn: Callable[[str], None] | None = None
                 ) -> tuple[Any, dict[str, Any], int, list[int]] | None:
  """Restores the newest healthy checkpoint (or exactly `step`).

  Every damaged step newer than the one used is reported through `warn`, one line each.
  Returns (state, data_position, step, damaged newer steps), or None without any checkpoint.
  Raises DamagedCheckpointError when `step` (or every checkpoint) is damaged.
  """
  warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
  steps = sorted(mgr.all_steps(), reverse=True)
  if step is not None:
    if step not in steps:
      raise FileNotFoundError(f'no checkpoint for step {step} in {mgr.directory}; '
                              f'available: {sorted(steps)}')
    state, data, problem = check_step(mgr, abstract_state, step)
    if problem is not None:
      raise DamagedCheckpointError(f'checkpoint {step_dir(mgr, step)} is damaged: {problem}')
    return state, data, step, []
  if not steps:
    return None
  bad = []
  for s in steps:
    state, data, problem = check_step(mgr, abstract_state, s)
    if problem is None:
      for b, why in bad:
        warn(f'warning: checkpoint {step_dir(mgr, b)} is damaged ({why}); using step {s}')
      return state, data, s, [b for b, _ in bad]
    bad.append((s, problem))
  listed = '; '.join(f'step {b}: {why}' for b, why in bad)
  raise DamagedCheckpointError(f'every checkpoint in {mgr.directory} is damaged ({listed}); '
                               'move them away to start over')


def set_aside(workdir: str, steps: list[int]) -> str | None:
  """Moves damaged step folders to `<workdir>/checkpoints.damaged/` (process 0), out of the way
  of retention and of the new saves of those step numbers; returns that folder."""
  if not steps:
    return None
  dest = os.path.join(workdir, DAMAGED_DIR)
  if jax.process_index() == 0:
    os.makedirs(dest, exist_ok=True)
    for s in steps:
      target = os.path.join(dest, str(s))
      n = 1
      while os.path.exists(target):
        target, n = os.path.join(dest, f'{s}.{n}'), n + 1
      os.replace(os.path.join(workdir, 'checkpoints', str(s)), target)
  return dest


def remove_partial_saves(workdir: str) -> None:
  """Deletes the temporary folders of saves that never committed (process 0)."""
  folder = os.path.join(workdir, 'checkpoints')
  if jax.process_index() != 0 or not os.path.isdir(folder):
    return
  for name in os.listdir(folder):
    if 'orbax-checkpoint-tmp' in name:
      shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
