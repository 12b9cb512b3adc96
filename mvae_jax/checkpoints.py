"""Orbax checkpoints of a run directory: the train state plus the data loader's position.

Layout: `<workdir>/checkpoints/<step>/{state,data}`, plus our `mvae_checksums.json` (size and CRC32
of every file). A step is *sealed* as part of its save: the checksum file is written and synced
into Orbax's temporary folder just before Orbax renames that folder into place, so a step that
exists under its final name has its checksums (`_SealingTemporaryPath`). A truncated or
overwritten file is found by `verify` before its values are used; a step without checksums (a run
of an older version killed before it sealed, or a folder copied without them) is *unverified* and
used only when no sealed step is healthy; `restore_good` falls back to the newest healthy step.
Nothing ever seals a step after the fact, so a step damaged while unsealed is never blessed.

The loader position is stored explicitly (`{'next_batch': step}`), although for our loaders it
equals the step, so a resumed run reads the batches an uninterrupted run would have read.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import sys
import zlib
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint._src.path import atomicity  # pylint: disable=g-direct-tensorflow-import


CHECKSUMS = 'mvae_checksums.json'  # inside each step folder, written as part of the commit
DAMAGED_DIR = 'checkpoints.damaged'  # <workdir>/checkpoints.damaged/<step>: set aside by training
# Orbax's own bookkeeping files, rewritten while the step commits (after our checksums): not
# checksummed. A damaged one makes the restore fail, which is reported the same way.
_UNSUMMED = ('_CHECKPOINT_METADATA', 'commit_success.txt')


class _SealingTemporaryPath(atomicity.AtomicRenameTemporaryPath):
  """Orbax's atomic-rename commit with our checksums written (and synced) into the temporary
  folder first. Orbax calls `finalize` on the primary process only, after every process has
  written its part, so the checksums cover the whole step."""

  async def finalize(self, *args, **kwargs):
    if self.get_final().name.isdigit():  # a step (its items `state`, `data` commit inside it)
      await asyncio.to_thread(write_checksums, os.fspath(self.get()))
    await super().finalize(*args, **kwargs)


def manager(workdir: str, *, keep: int = 3, async_save: bool = True,
            read_only: bool = False) -> ocp.CheckpointManager:
  """The run's checkpoint manager; the caller decides when to save (every N steps and at the end).
  Every step it saves is sealed with its checksums as it commits."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=not read_only,
      enable_async_checkpointing=async_save, read_only=read_only,
      temporary_path_class=_SealingTemporaryPath)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, 'checkpoints')),
                               options=options, item_names=('state', 'data'))


def save(mgr: ocp.CheckpointManager, step: int, state: Any, data_position: dict[str, Any]) -> None:
  """Starts an (async) save of `state` and the loader position as checkpoint `step`, after the
  previous save has committed; the step seals itself as it commits (see `manager`)."""
  mgr.wait_until_finished()
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

class DamagedCheckpointError(RuntimeError):
  """No checkpoint of a run can be used (or the one asked for is damaged)."""


def step_dir(mgr: ocp.CheckpointManager, step: int) -> str:
  return os.path.join(str(mgr.directory), str(step))


def _file_sums(folder: str, sync: bool = False) -> dict[str, list[int]]:
  """{relative path: [size, crc32]} of every file under `folder` but the checksum file and
  Orbax's bookkeeping; `sync` also flushes each file to the disk."""
  out = {}
  for root, dirs, files in os.walk(folder):
    dirs.sort()
    for name in sorted(files):
      full = os.path.join(root, name)
      rel = os.path.relpath(full, folder)
      if rel == CHECKSUMS or rel.endswith('.tmp') or rel in _UNSUMMED:
        continue
      crc = 0
      with open(full, 'rb') as f:
        while chunk := f.read(1 << 22):
          crc = zlib.crc32(chunk, crc)
        if sync:
          os.fsync(f.fileno())
      out[rel] = [os.path.getsize(full), crc]
  return out


def write_checksums(folder: str) -> None:
  """Seals a step folder that is being committed: `mvae_checksums.json` with the size and CRC32
  of every file, the files and the checksum file synced to the disk."""
  sums = _file_sums(folder, sync=True)
  path = os.path.join(folder, CHECKSUMS)
  with open(path + '.tmp', 'w') as f:
    json.dump({'files': sums}, f)
    f.flush()
    os.fsync(f.fileno())
  os.replace(path + '.tmp', path)
  fd = os.open(folder, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


UNSEALED = 'it has no checksums'  # the start of `verify`'s answer for a step never sealed


def verify(folder: str) -> str | None:
  """What is wrong with a step folder's files, or None when they match their checksums.

  A step without a checksum file gets an answer starting with `UNSEALED`: it was never sealed (an
  older version killed before sealing it, or a copy), so nothing proves its files intact.
  """
  path = os.path.join(folder, CHECKSUMS)
  if not os.path.exists(path):
    return (f'{UNSEALED}: an older version was killed before sealing it, or it was copied '
            'without them; nothing proves it intact')
  try:
    with open(path) as f:
      want = json.load(f)['files']
  except (OSError, ValueError, KeyError) as e:
    return f'its checksum file is unreadable ({type(e).__name__})'
  have = _file_sums(folder)
  for rel, (size, crc) in sorted(want.items()):
    if rel in _UNSUMMED:  # sealed by an older version, after the commit
      continue
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


def check_step(mgr: ocp.CheckpointManager, abstract_state: Any, step: int, *,
               unverified_ok: bool = False
               ) -> tuple[Any, dict[str, Any] | None, str | None]:
  """(state, data_position, None) when `step` verifies, restores and holds only finite values;
  (None, None, what is wrong) otherwise. `unverified_ok`: a step without checksums is restored
  and checked for finite values instead of refused."""
  problem = verify(step_dir(mgr, step))
  if problem is not None and not (unverified_ok and problem.startswith(UNSEALED)):
    return None, None, problem
  try:
    state, data, _ = restore(mgr, abstract_state, step)
  except Exception as e:  # pylint: disable=broad-except
    return None, None, f'cannot be restored ({_short(e)})'
  if not _all_finite(state):
    return None, None, 'holds non-finite values'
  return state, data, None


@dataclasses.dataclass
class Restored:
  """What `restore_good` found: the state of `step` and its loader position; `verified` is
  False for a step used without checksums; `skipped`: newer steps that were not used."""
  state: Any
  data: dict[str, Any]
  step: int
  verified: bool
  skipped: list[int]


def restore_good(mgr: ocp.CheckpointManager, abstract_state: Any, step: int | None = None,
                 warn: Callable[[str], None] | None = None) -> Restored | None:
  """Restores the newest healthy sealed checkpoint (or exactly `step`).

  Every newer step that is not used (damaged, or unsealed) is reported through `warn`, one line
  each. Without any healthy sealed step, the newest unsealed one that restores with finite values
  is used, with a warning that it cannot be verified. Returns None without any checkpoint.
  Raises DamagedCheckpointError when `step` (or every checkpoint) is damaged.
  """
  warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
  steps = sorted(mgr.all_steps(), reverse=True)
  if step is not None:
    if step not in steps:
      raise FileNotFoundError(f'no checkpoint for step {step} in {mgr.directory}; '
                              f'available: {sorted(steps)}')
    state, data, problem = check_step(mgr, abstract_state, step, unverified_ok=True)
    if problem is not None:
      raise DamagedCheckpointError(f'checkpoint {step_dir(mgr, step)} is damaged: {problem}')
    if verify(step_dir(mgr, step)) is not None:
      warn(f'warning: checkpoint {step_dir(mgr, step)} has no checksums, so nothing proves it '
           'intact; using it as asked')
      return Restored(state, data, step, False, [])
    return Restored(state, data, step, True, [])
  if not steps:
    return None
  bad = []
  for s in steps:
    state, data, problem = check_step(mgr, abstract_state, s)
    if problem is None:
      for b, why in bad:
        what = 'is not sealed' if why.startswith(UNSEALED) else 'is damaged'
        warn(f'warning: checkpoint {step_dir(mgr, b)} {what} ({why}); using step {s}')
      return Restored(state, data, s, True, [b for b, _ in bad])
    bad.append((s, problem))
  # No sealed step is healthy: the newest unsealed one that restores, unverified.
  for i, (s, why) in enumerate(bad):
    if not why.startswith(UNSEALED):
      continue
    state, data, problem = check_step(mgr, abstract_state, s, unverified_ok=True)
    if problem is None:
      for b, why_b in bad[:i]:
        warn(f'warning: checkpoint {step_dir(mgr, b)} is damaged ({why_b}); using step {s}')
      warn(f'warning: checkpoint {step_dir(mgr, s)} has no checksums and no sealed checkpoint '
           'is healthy; using it unverified')
      return Restored(state, data, s, False, [b for b, _ in bad[:i]])
    bad[i] = (s, problem)
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
