"""Batches for training and evaluation, from the TFDS window datasets.

The training stream is a pure function of (seed, step): a grain `MapDataset` over the random-access
TFDS source, reshuffled every epoch, with the pitch augmentation drawn per element index (so afresh
every epoch), batched, and sliced per process. Batch `s` of process `p` is `dataset[s]`, so the
loader's position is just the step number and a resumed run sees exactly the batches an uninterrupted
run would have seen.

Every batch is `{'tokens': int32 [batch, time, parts]}` (parts = 1 for melody and drums, 3 for trio);
evaluation batches add `'weights': float32 [batch]` (0 for padding rows of the last batch).
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
from typing import Any, Iterator, Sequence

import jax
import numpy as np

from data_pipelines.kinds import NUM_SPECIAL as NOTE_ON_OFFSET  # first note-on class

# grain and the data stack (data_pipelines.conversion: MIDI reading, note-seq) are imported where
# they are used, so that importing the trainer (a training step on synthetic batches, as the
# benchmarks on a bare GPU machine run it) does not need them.


def to_parts(tokens: np.ndarray) -> np.ndarray:
  """[time] or [time, parts] int16 window -> int32 [time, parts]."""
  tokens = np.asarray(tokens, np.int32)
  return tokens[:, None] if tokens.ndim == 1 else tokens


def valid_shifts(tokens: np.ndarray, melody_parts: Sequence[int], vocab: Sequence[int],
                 shift_min: int, shift_max: int) -> tuple[int, int]:
  """The inclusive range of transpositions that keeps every note of `melody_parts` in range.

  Args:
    tokens: int [time, parts] window.
    melody_parts: indices of the parts that are transposed together (never drums).
    vocab: classes per part (2 + number of pitches for melody parts).
  Returns:
    (lo, hi) with lo <= 0 <= hi, a subset of [shift_min, shift_max].
  """
  lo, hi = shift_min, shift_max
  for p in melody_parts:
    notes = tokens[:, p][tokens[:, p] >= NOTE_ON_OFFSET]
    if notes.size:
      lo = max(lo, NOTE_ON_OFFSET - int(notes.min()))
      hi = min(hi, vocab[p] - 1 - int(notes.max()))
  return lo, hi


def transpose(tokens: np.ndarray, shift: int, melody_parts: Sequence[int]) -> np.ndarray:
  """Shifts the note-on classes of `melody_parts` by `shift` semitones; NO_EVENT / NOTE_OFF stay."""
  out = tokens.copy()
  for p in melody_parts:
    col = out[:, p]
    col[col >= NOTE_ON_OFFSET] += shift
  return out


@dataclasses.dataclass(frozen=True)
class Augment:
  """Random transposition in [shift_min, shift_max] restricted to shifts that keep notes in range.

  Lead and bass of a trio move together; drums never move. Called by grain with a per-element
  numpy Generator, so the shift is drawn afresh each time an example is served.
  """
  part_vocab: tuple[int, ...]
  part_is_drums: tuple[bool, ...]
  shift_min: int = -5
  shift_max: int = 6

  def __call__(self, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    parts = [p for p, drums in enumerate(self.part_is_drums) if not drums]
    if not parts:
      return tokens
    lo, hi = valid_shifts(tokens, parts, self.part_vocab, self.shift_min, self.shift_max)
    shift = int(rng.integers(lo, hi + 1)) if hi >= lo else 0
    return transpose(tokens, shift, parts) if shift else tokens


def _tokens(example: Any) -> np.ndarray:
  return to_parts(example['tokens'] if isinstance(example, dict) else example)


def _stack(rows: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
  return {'tokens': np.stack(rows)}


def train_dataset(source: Sequence[Any], *, global_batch: int, seed: int,
                  augment: Augment | None, process_index: int | None = None,
                  process_count: int | None = None) -> grain.MapDataset:
  """This process's slice of the infinite, shuffled, augmented training stream.

  Element g of the global stream belongs to global batch g // global_batch; each global batch is
  split into `process_count` contiguous slices of `global_batch / process_count` rows.
  Returns a MapDataset whose item `s` is this process's part of global batch `s`.
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if global_batch % process_count:
    raise ValueError(f'global batch {global_batch} does not split over {process_count} processes')
  if len(source) == 0:
    raise ValueError('the training split is empty')
  local = global_batch // process_count
  import grain  # pylint: disable=g-import-not-at-top
  ds = grain.MapDataset.source(source).map(_tokens).shuffle(seed=seed).repeat()
  if augment is not None:
    ds = ds.random_map(augment, seed=seed + 1)
  return ds.batch(local, batch_fn=_stack).slice(slice(process_index, None, process_count))


def train_iterator(ds: grain.MapDataset, start_step: int, *, threads: int = 4,
                   prefetch: int = 8) -> Iterator[dict[str, np.ndarray]]:
  """Batches start_step, start_step + 1, ... read ahead on a few threads."""
  import grain  # pylint: disable=g-import-not-at-top
  opts = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch)
  return iter(ds.slice(slice(start_step, None)).to_iter_dataset(opts))


def eval_batches(source: Sequence[Any], *, global_batch: int, num_batches: int = 0,
                 process_index: int | None = None,
                 process_count: int | None = None) -> Iterator[dict[str, np.ndarray]]:
  """The eval split in order, without augmentation, padded to whole global batches.

  Yields this process's slice of each global batch with `weights` 1 for real rows and 0 for
  padding. `num_batches` > 0 stops after that many global batches (0 = the whole split).
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if global_batch % process_count:
    raise ValueError(f'eval batch {global_batch} does not split over {process_count} processes')
  n = len(source)
  if n == 0:
    raise ValueError('the eval split is empty')
  local = global_batch // process_count
  total = -(-n // global_batch)
  if num_batches:
    total = min(total, num_batches)
  for b in range(total):
    start = b * global_batch + process_index * local
    idx = np.arange(start, start + local)
    weights = (idx < n).astype(np.float32)
    rows = [_tokens(source[int(i) if i < n else 0]) for i in idx]
    yield {'tokens': np.stack(rows), 'weights': weights}


@contextlib.contextmanager
def _build_lock(data_dir: str, name: str):
  """An exclusive lock on `<data_dir>/.build-<name>.lock` (released by the kernel if we die)."""
  os.makedirs(data_dir, exist_ok=True)
  with open(os.path.join(data_dir, f'.build-{name}.lock'), 'a') as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      print(f'waiting for another process that is building the {name} dataset in {data_dir}...',
            flush=True)
      fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def get_source(data: Any, split: str) -> Sequence[Any]:
  """The random-access TFDS source for `config.data` and a split, building the dataset if missing.

  Building happens on process 0 only; the other processes wait for it at a barrier.
  """
  # local imports: the model code does not need the data stack
  from data_pipelines import build, conversion  # pylint: disable=g-import-not-at-top

  where = dict(source=data.source, kind=data.kind, mode=data.mode, data_dir=data.data_dir or None)
  if jax.process_index() == 0:
    try:
      build.dataset_dir(**where)
    except FileNotFoundError:
      data_dir = os.path.abspath(data.data_dir or conversion.default_data_dir())
      # Two trainings that need the same missing dataset (say, a sweep started at once) build it
      # once: the second waits for the first's build, then finds it.
      with _build_lock(data_dir, f'{data.source}-{data.kind}-{data.mode}'):
        try:
          build.dataset_dir(**where)
        except FileNotFoundError:
          print(f'building the {data.source} {data.kind} ({data.mode}) dataset (once) in '
                f'{data_dir} (set TFDS_DATA_DIR or --config.data.data_dir to build elsewhere)...',
                flush=True)
          build.build(**where, midi_dir=data.midi_dir or None, workers=data.workers or None)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(f'dataset {data.kind} built')
  build.dataset_dir(**where, midi_dir=data.midi_dir or None)  # still missing: the full command
  return build.data_source(split=split, **where)
