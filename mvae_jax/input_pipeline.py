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
import os
from typing import Any, Iterator, Sequence

import jax
import numpy as np

from data_pipelines import console
from data_pipelines.kinds import NUM_SPECIAL as NOTE_ON_OFFSET  # first note-on class
from mvae_jax import runlock

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
  """An exclusive lock on `<data_dir>/.build-<name>.lock` (released by the kernel if we die);
  the file is removed when the block ends."""
  os.makedirs(data_dir, exist_ok=True)
  path = os.path.join(data_dir, f'.build-{name}.lock')

  def wait(fd):
    del fd
    print(f'waiting for another process that is building the {name} dataset in {data_dir}...',
          flush=True)

  with runlock.locked_file(path, on_busy=wait):
    yield


class DatasetChangedError(ValueError):
  """A run's recorded MIDI-folder dataset is gone and the folder no longer has its content."""


@dataclasses.dataclass(frozen=True)
class Dataset:
  """The dataset a run trains on: where it is and, for a MIDI folder, its fingerprint
  (`conversion.FolderFingerprint`: the folder's file contents and the build options)."""
  source: str
  kind: str
  mode: str
  data_dir: str
  path: str                      # <data_dir>/<builder>/<config>/<version>
  fingerprint: str | None = None  # folder source only
  midi_dir: str | None = None

  def record(self) -> dict[str, Any]:
    """What a run directory keeps of it (`dataset.json`)."""
    return dataclasses.asdict(self)


def _note(line: str) -> None:
  import sys  # pylint: disable=g-import-not-at-top
  print(line, file=sys.stderr, flush=True)


def prepare(data: Any, fingerprint: str | None = None) -> Dataset:
  """The dataset of `config.data`, built if missing (on process 0; the others wait).

  A MIDI folder's dataset is the one of `fingerprint` when given (the fingerprint a run recorded
  when it started): a run never switches to other data. When that dataset exists it is used even
  if the folder changed since (the change is named in one line on stderr); when it does not, it
  is built if the folder still has that content, and otherwise DatasetChangedError says so.
  Without `fingerprint`, the dataset of the folder's current content and options is used or built.
  """
  # local imports: the model code does not need the data stack
  from data_pipelines import build, conversion  # pylint: disable=g-import-not-at-top

  data_dir = os.path.abspath(data.data_dir or conversion.default_data_dir())
  where = dict(source=data.source, kind=data.kind, mode=data.mode, data_dir=data_dir)
  folder = data.source == 'folder'
  midi_dir = os.path.abspath(data.midi_dir) if folder and data.midi_dir else None
  current = None
  if jax.process_index() == 0:
    if folder:
      fingerprint, current = _folder_dataset(data, data_dir, midi_dir, fingerprint)
    try:
      build.dataset_dir(**where, fingerprint=fingerprint)
    except FileNotFoundError:
      # Two trainings that need the same missing dataset (say, a sweep started at once) build it
      # once: the second waits for the first's build, then finds it.
      name = f'{data.source}-{data.kind}-{data.mode}' + (f'-{fingerprint}' if folder else '')
      with _build_lock(data_dir, name):
        try:
          build.dataset_dir(**where, fingerprint=fingerprint)
        except FileNotFoundError:
          what = f'{data.source} {data.kind} ({data.mode})'
          if folder:
            what = f'{data.kind} ({data.mode}) dataset of {midi_dir}, fingerprint {fingerprint},'
          else:
            what += ' dataset'
          # Said before it starts: a folk or large-folder build takes minutes.
          print(f'building the {what} (once) in {data_dir}: '
                + build.build_estimate(data.source, midi_dir, data.workers or None)
                + ' (set TFDS_DATA_DIR or --config.data.data_dir to build elsewhere)...',
                flush=True)
          build.build(**where, midi_dir=midi_dir, workers=data.workers or None,
                      fingerprint=current)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(f'dataset {data.kind} built')
    if folder:  # every process opens the dataset process 0 chose
      raw = np.frombuffer((fingerprint or '').ljust(16).encode(), np.uint8)
      fingerprint = bytes(np.asarray(multihost_utils.broadcast_one_to_all(raw),
                                     np.uint8)).decode().strip()
  # Still missing: FileNotFoundError with the full command.
  path = build.dataset_dir(**where, midi_dir=midi_dir, fingerprint=fingerprint)
  return Dataset(data.source, data.kind, data.mode, data_dir, path,
                 fingerprint if folder else None, midi_dir)


def _folder_dataset(data: Any, data_dir: str, midi_dir: str | None, recorded: str | None):
  """(fingerprint to use, the folder's current `FolderFingerprint` or None) on process 0."""
  from data_pipelines import build, conversion  # pylint: disable=g-import-not-at-top
  where = dict(source=data.source, kind=data.kind, mode=data.mode, data_dir=data_dir)
  if recorded is not None:
    try:
      path = build.dataset_dir(**where, fingerprint=recorded)
    except FileNotFoundError:
      path = None
    if midi_dir is None or not os.path.isdir(midi_dir):
      if path is None:
        raise DatasetChangedError(
            f'this run trained on the dataset of fingerprint {recorded}, which is not in '
            f'{data_dir}, and its MIDI folder {midi_dir} is gone: point '
            '--config.data.data_dir at the data dir that holds it, or restore the folder')
      return recorded, None
    current = conversion.folder_fingerprint(midi_dir, data_dir, mode=data.mode)
    if current.value == recorded:
      return recorded, current
    if path is not None:
      _note(f'note: {midi_dir} changed since this run started (fingerprint {recorded}, now '
            f'{current.value}); the run keeps its own dataset {path}. Train a new --workdir to '
            'use the folder as it is now.')
      return recorded, None
    raise DatasetChangedError(
        f'this run trained on {midi_dir} when its fingerprint was {recorded}; that dataset is '
        f'not in {data_dir} and the folder has changed since (fingerprint now {current.value}), '
        'so it cannot be rebuilt: restore the folder, or train a new --workdir on it as it is now')
  current = conversion.folder_fingerprint(midi_dir, data_dir, mode=data.mode)
  return current.value, current


def get_source(data: Any, split: str, fingerprint: str | None = None) -> Sequence[Any]:
  """The random-access TFDS source for `config.data` and a split, building the dataset if missing
  (see `prepare`). `fingerprint`: a MIDI-folder run's recorded dataset (`dataset.json`).

  Building happens on process 0 only; the other processes wait for it at a barrier. Before a
  build starts, one line says what it builds, from how many inputs and about how long it takes
  (`build.build_estimate`).
  """
  from data_pipelines import build  # local import: the model code does not need the data stack

  where = dict(source=data.source, kind=data.kind, mode=data.mode,
               data_dir=data.data_dir or None)
  if data.source == 'folder' and fingerprint:
    try:  # the recorded dataset is there: open it, nothing to check or build
      return build.data_source(split=split, **where, fingerprint=fingerprint)
    except FileNotFoundError:
      pass
  dataset = prepare(data, fingerprint)
  return build.data_source(split=split, **where, fingerprint=dataset.fingerprint)


def split_windows(data: Any, split: str = 'train', *, limit: int | None = None, seed: int = 0,
                  with_paths: bool = False, progress: bool = False, build: bool = True):
  """The windows of a dataset split (`config.data`) as one array, int32 [n, time, parts], in the
  dataset's order; a seeded random subset of `limit` windows (kept in order) if given.

  `build=False` never builds a missing dataset: FileNotFoundError with the build command.
  Returns tokens, or (tokens, indices int [n] into the split, paths list[str]) with `with_paths`.
  """
  from data_pipelines import build as build_lib  # local import: see get_source
  if not build:
    build_lib.dataset_dir(source=data.source, kind=data.kind, mode=data.mode,
                          data_dir=data.data_dir or None, midi_dir=data.midi_dir or None)
  source = get_source(data, split)
  total = len(source)
  if total == 0:
    raise ValueError(f'the {data.source} {data.kind} {split} split is empty')
  index = np.arange(total)
  if limit is not None and 0 < limit < total:
    index = np.sort(np.random.default_rng(seed).choice(total, limit, replace=False))
  rows, paths = [], []
  bar = console.Progress(f'reading the {data.source} {data.kind} {split} split', len(index),
                         'windows', quiet_s=3.0, enabled=progress)
  for a in range(0, len(index), 4096):
    keys = index[a:a + 4096].tolist()
    t, p = build_lib.read_rows(source, keys)
    rows.append(t)
    paths += p
    bar.update(len(keys))
  bar.close()
  tokens = np.concatenate(rows).astype(np.int32)
  tokens = tokens[..., None] if tokens.ndim == 2 else tokens
  return (tokens, index, paths) if with_paths else tokens
