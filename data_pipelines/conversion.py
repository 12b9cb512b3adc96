r"""Conversion of MIDI files and folk tunes into windows: the library the TFDS builders use.

How one build runs:
1. `list_items` lists the inputs in sorted order of their relative path (MIDI files, or ABC tunes
   for the folk source).
2. `extract` converts every item (`convert_item`) in the bounded worker pool of `workers.py`
   (per-worker memory cap, per-item wall-clock limit, crashed workers replaced). Any error is a
   per-item skip reason; nothing stops the build, and no size or count of real music is a reason.
   One pass extracts all requested kinds; windows go to a work folder on disk (rows in arrival
   order, an index in memory).
3. `select` orders rows by (item order, window index), drops items whose content hash was already
   seen ('duplicate'), dedups globally in paper mode (first occurrence kept), applies the seeded
   per-file cap in magenta mode, and splits train / eval by the item's content hash.
4. The TFDS builder (`mvae_datasets.py`) writes the selected rows as array_record and stores the
   counts in its metadata; `build_report.json` (`report`) is written beside the data and printed.

`data_pipelines.build` runs builds (and is the command line).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time

import numpy as np

from data_pipelines import console
from data_pipelines import encoding
from data_pipelines import folk
from data_pipelines import midi
from data_pipelines import midi_fast
from data_pipelines import workers as workers_lib
from data_pipelines.kinds import SOURCES

FREEDOOM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'freedoom')
MIDI_EXTENSIONS = ('.mid', '.midi', '.kar', '.smf')

EVAL_PERCENT = 10           # share of files (by content hash) in the eval split
FILE_TIMEOUT_S = 60.0       # wall-clock limit per item inside a worker
WORKER_MEMORY_GB = 3.0      # address-space cap per worker process
WORK_VERSION = 2            # bump when the work-folder format or the selection rules change
SLOWEST_SHOWN = 10          # the report lists this many slowest items with their time

# What a user can do about each skip reason (shown in the report next to the counts).
SKIP_HINTS = {
    'unreadable': 'not a MIDI file the reader understands; re-export it from a MIDI editor',
    'truncated': 'the file ends early (partial download or copy?); fetch it again',
    'no_tracks': 'the file holds no track data; re-export it',
    'no_notes': 'the file holds no notes; nothing to learn from it',
    'empty_track': ('magenta mode only: a track chunk with no events, which the reference\'s '
                    'reader refuses; paper mode reads the file without that track'),
    'corrupt_ticks': ('its last event lies beyond 1e10 ticks (a corrupt length field); '
                       'the reference cannot read it either; repair or drop it'),
    'filtered_parts': 'dropped by --max_parts (off by default); raise or remove that option',
    'timeout': 'ran over --file_timeout; raise it if the file is genuinely large',
    'memory': 'hit the --worker_memory_gb cap; raise it if the file is genuinely large',
    'crashed': 'the worker process died on it; please report the file',
    'recursion': 'the parser recursed too deep on it; please report the file',
    'error': 'an unexpected error; please report the file with the detail shown',
    'no_meter': 'folk: a free-meter tune (M:none) has no bar lines to put windows on',
    'abc_error': 'folk: music21 could not parse the tune',
}
# Counted per item, not skips: what the report says about them.
COUNT_HINTS = {
    'repeats_not_expanded': ('folk tunes whose repeat marks music21 finds incoherent: used as '
                             'written'),
    'max_seconds': 'parts dropped by --max_seconds (off by default)',
    'max_notes': 'parts dropped by --max_notes (off by default)',
    'min_velocities': 'parts dropped by --min_velocities (off by default)',
    'min_metric_positions': 'parts dropped by --min_metric_positions (off by default)',
    'quantize_failed': 'parts dropped by --min_metric_positions: not quantisable',
}


@dataclasses.dataclass(frozen=True)
class ConvertOptions:
  """How items are converted, beyond the window kinds and mode.

  `filters`: Magenta's preprocessing-script filters (`midi.Filters`, all off by default).
  `expand_repeats`: folk tunes are played out with their repeats (default on in paper mode, off in
  magenta mode, which mirrors the reference; `folk.py`).
  """
  filters: midi.Filters = midi.Filters()
  expand_repeats: bool = True

  @classmethod
  def default(cls, mode: str) -> 'ConvertOptions':
    return cls(expand_repeats=mode == 'paper')

  def key(self) -> str:
    """A stable text form for cache fingerprints and metadata."""
    return json.dumps(dataclasses.asdict(self), sort_keys=True)


def default_data_dir() -> str:
  """$TFDS_DATA_DIR, else ~/tensorflow_datasets (TFDS's own default)."""
  return os.environ.get('TFDS_DATA_DIR') or os.path.join(os.path.expanduser('~'),
                                                         'tensorflow_datasets')


# ----------------------------------------------------------------------------- inputs

@dataclasses.dataclass(frozen=True)
class Item:
  """One input: a MIDI file, or one ABC tune of the folk collections."""
  path: str           # relative to the source root: report, `path` feature, processing order
  fmt: str            # 'midi' | 'abc'
  location: str       # absolute file path (midi) or the tune's ABC text (abc)
  file_id: str = ''   # content hash; computed by the worker from the bytes for MIDI


def list_items(source: str, midi_dir: str | None = None) -> list[Item]:
  """The inputs of `source`, sorted by relative path."""
  if source == 'folk':
    return [Item(t.path, 'abc', t.text, t.file_id) for t in folk.list_tunes()]
  if source == 'freedoom':
    midi_dir = FREEDOOM_DIR
  elif source == 'folder':
    if not midi_dir:
      raise ValueError('source=folder needs midi_dir')
  else:
    raise ValueError(f'unknown source {source!r}; expected one of {SOURCES}')
  if not os.path.isdir(midi_dir):
    raise FileNotFoundError(f'MIDI folder not found: {midi_dir}')
  items = []
  for root, dirs, files in os.walk(midi_dir):
    dirs.sort()
    for f in files:
      if f.lower().endswith(MIDI_EXTENSIONS):
        full = os.path.join(root, f)
        items.append(Item(os.path.relpath(full, midi_dir), 'midi', full))
  return sorted(items, key=lambda it: it.path)


def source_fingerprint(source: str, items: list[Item],
                       options: ConvertOptions | None = None) -> str:
  """Changes when any input (name, size, modification time), the options or the code change."""
  opts = options.key() if options is not None else ''
  h = hashlib.sha256(f'{source}|{WORK_VERSION}|{folk.CONVERTER_VERSION}|{opts}'.encode())
  for it in items:
    if it.fmt == 'midi':
      st = os.stat(it.location)
      h.update(f'{it.path}|{st.st_size}|{st.st_mtime_ns}\n'.encode())
    else:
      h.update(f'{it.path}|{it.file_id}\n'.encode())
  for mod in (encoding, midi, folk, workers_lib):
    with open(mod.__file__, 'rb') as f:
      h.update(f.read())
  return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- folder identity

FINGERPRINT_VERSION = 1     # bump when what a folder fingerprint covers changes


@dataclasses.dataclass(frozen=True)
class FolderFingerprint:
  """What identifies a MIDI folder's dataset: the content of its files and the build options.

  `value` (16 hex digits) is a SHA-256 over every MIDI file's path relative to the folder and the
  MD5 of its bytes, and over the conversion options (`ConvertOptions.key`). Content hashes, not
  sizes and modification times, because a copied, restored or re-downloaded folder keeps its
  content but not its times, and a file rewritten within one timestamp tick keeps its size and
  time but not its content; the relative paths, because they are the dataset's `path` feature
  and decide which of two identical windows the dedup keeps. Hashing is linear in the bytes
  (Lakh MIDI's 1.7 GB: seconds), and a per-folder cache keyed by each file's (size, mtime, ctime,
  inode) rehashes only files whose metadata changed, so a rerun only stats the files.
  """
  value: str
  midi_dir: str
  files: dict            # relative path -> md5 of the bytes ('' for a file that cannot be read)
  hashed: int            # files read and hashed by this call (the others came from the cache)
  seconds: float

  def __str__(self) -> str:
    return self.value


def _hash_cache_path(data_dir: str, midi_dir: str) -> str:
  key = hashlib.sha256(os.path.abspath(midi_dir).encode()).hexdigest()[:16]
  return os.path.join(data_dir, 'mvae_work', 'folder_hashes', f'{key}.json')


def _md5_of(path: str) -> str:
  h = hashlib.md5()
  with open(path, 'rb') as f:
    while chunk := f.read(1 << 20):
      h.update(chunk)
  return h.hexdigest()


def folder_fingerprint(midi_dir: str, data_dir: str | None = None,
                       options: 'ConvertOptions | None' = None, mode: str = 'paper'
                       ) -> FolderFingerprint:
  """The `FolderFingerprint` of the MIDI files under `midi_dir` converted with `options`
  (default: `ConvertOptions.default(mode)`). Per-file MD5s are cached under
  `<data_dir>/mvae_work/folder_hashes/`; a file that is not a regular file (a named pipe) or
  cannot be read counts by its path alone, and is never opened."""
  import stat as stat_lib  # pylint: disable=g-import-not-at-top
  t0 = time.monotonic()
  midi_dir = os.path.abspath(midi_dir)
  data_dir = data_dir or default_data_dir()
  options = options or ConvertOptions.default(mode)
  cache_path = _hash_cache_path(data_dir, midi_dir)
  try:
    with open(cache_path) as f:
      cached = json.load(f)['files']
  except (OSError, ValueError, KeyError):
    cached = {}
  files, entries, hashed = {}, {}, 0
  for item in list_items('folder', midi_dir):
    try:
      st = os.stat(item.location)
    except OSError:
      files[item.path] = ''
      continue
    if not stat_lib.S_ISREG(st.st_mode):
      files[item.path] = ''
      continue
    key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    old = cached.get(item.path)
    if old is not None and old[:4] == key:
      digest = old[4]
    else:
      try:
        digest = _md5_of(item.location)
      except OSError:
        files[item.path] = ''
        continue
      hashed += 1
    files[item.path] = digest
    entries[item.path] = key + [digest]
  if entries != cached:
    try:  # a read-only data dir only costs the rehash next time
      os.makedirs(os.path.dirname(cache_path), exist_ok=True)
      with open(cache_path + f'.{os.getpid()}.tmp', 'w') as f:
        json.dump({'midi_dir': midi_dir, 'files': entries}, f)
      os.replace(cache_path + f'.{os.getpid()}.tmp', cache_path)
    except OSError:
      pass
  h = hashlib.sha256(f'mvae folder {FINGERPRINT_VERSION}\n{options.key()}\n'.encode())
  for path in sorted(files):
    h.update(f'{path}\t{files[path]}\n'.encode())
  return FolderFingerprint(h.hexdigest()[:16], midi_dir, files, hashed, time.monotonic() - t0)


class NothingFoundError(ValueError):
  """A build whose inputs gave no window at all; the message says why, file by file."""


def nothing_found_message(source: str, items: list, midi_dir: str | None, kind: str) -> str:
  """Why a build has no windows: no input at all, or every input skipped (reasons with names)."""
  where = midi_dir or source
  if not items:
    return (f'no MIDI files ({", ".join(MIDI_EXTENSIONS)}) found under {where}' if source != 'folk'
            else 'no folk tunes found')
  by_reason: dict[str, list[str]] = {}
  for r in items:
    reason = r['reason'] or f'no {kind} windows'
    by_reason.setdefault(reason, []).append(r['path'] + (f' ({r["detail"]})' if r['detail'] else ''))
  parts = []
  for reason, paths in sorted(by_reason.items()):
    shown = ', '.join(paths[:3]) + (f', ... {len(paths) - 3} more' if len(paths) > 3 else '')
    parts.append(f'{reason}: {len(paths)} ({shown})')
  return f'{len(items)} files under {where}, none usable for {kind}: ' + '; '.join(parts)


MIN_FILES_FOR_EVAL = 5      # with at least this many usable files, the eval split gets one


def is_eval(file_id: str, eval_percent: int = EVAL_PERCENT) -> bool:
  """Deterministic train / eval assignment of a file by its content hash (hex)."""
  return int(file_id[:8], 16) % 100 < eval_percent


# ----------------------------------------------------------------------------- conversion

def _row_hashes(windows: np.ndarray) -> np.ndarray:
  """128-bit content hash per window: uint64 [n, 2] (global dedup without holding the rows)."""
  out = np.empty((len(windows), 2), np.uint64)
  for i, row in enumerate(np.ascontiguousarray(windows)):
    out[i] = np.frombuffer(hashlib.blake2b(row.tobytes(), digest_size=16).digest(), np.uint64)
  return out


def convert_item(item: Item, specs: dict, options: ConvertOptions | None = None) -> dict:
  """Item -> {'file_id', 'reason' (None if read), 'detail', 'windows': {kind: int16 array},
  'hashes', 'counts': {event: n}} (counts: parts dropped by filters, unexpanded repeats).

  Never raises for bad input: every failure becomes a short reason code.
  """
  options = options or ConvertOptions()
  res = {'path': item.path, 'file_id': item.file_id, 'reason': None, 'detail': '',
         'windows': {}, 'hashes': {}, 'counts': {}}
  counts = collections.Counter()
  filters = options.filters if options.filters.active else None
  parts_cache = {}
  try:
    if item.fmt == 'midi':
      try:
        with open(item.location, 'rb') as f:
          data = f.read()
      except OSError as e:
        raise midi.MidiError(item.path, 'unreadable', str(e)) from e
      res['file_id'] = hashlib.md5(data).hexdigest()
      magenta = bool(specs) and all(spec.mode == 'magenta' for spec in specs.values())
      if filters is None:
        # The fast reader gives the full reader's parts (see midi_fast); filters need the
        # NoteSequence, so they take the full path.
        ns = None
        grids = {(spec.steps_per_quarter, spec.steps_per_bar) for spec in specs.values()}
        for key in grids or {(midi.STEPS_PER_QUARTER, 16)}:  # no kinds: still check the file
          parts_cache[key] = midi_fast.read_parts(
              data, item.path, reject_empty_tracks=magenta, steps_per_quarter=key[0],
              steps_per_bar=key[1])
      else:
        ns = midi.midi_bytes_to_note_sequence(data, item.path, reject_empty_tracks=magenta)
    else:
      ns = folk.tune_to_note_sequence(item.location, options.expand_repeats, counts)
    for kind, spec in specs.items():
      key = (spec.steps_per_quarter, spec.steps_per_bar)
      if key not in parts_cache:
        part_counts = collections.Counter()
        parts_cache[key] = midi.quantized_parts(ns, *key, filters=filters, counts=part_counts)
        for k, n in part_counts.items():  # the same parts for every grid: count once
          counts[k] = max(counts[k], n)
      w = encoding.extract_windows(ns, spec, parts=parts_cache[key])
      res['windows'][kind] = w
      res['hashes'][kind] = _row_hashes(w)
  except midi.MidiError as e:
    res['reason'], res['detail'] = e.reason, e.detail
  except folk.TuneError as e:
    res['reason'], res['detail'] = e.reason, e.detail
  except MemoryError:
    res['reason'] = 'memory'
  except RecursionError:
    res['reason'] = 'recursion'
  except Exception as e:  # pylint: disable=broad-except
    res['reason'] = 'abc_error' if item.fmt == 'abc' else 'error'
    res['detail'] = f'{type(e).__name__}: {e}'[:300]
  if res['reason']:
    res['windows'], res['hashes'] = {}, {}
  res['counts'] = dict(counts)
  return res


# ----------------------------------------------------------------------------- extraction

@dataclasses.dataclass
class Extraction:
  """What `extract` produced for one source and mode, stored in `work_dir`.

  Per kind: `<kind>.bin` (rows as raw int16, arrival order) and `<kind>.index.npz` (item, window
  index within the item's windows, row hash); `items.json` holds every item's path, file id and
  skip reason.
  """
  work_dir: str
  source: str
  mode: str
  items: list          # [{'path', 'file_id', 'reason', 'detail'}], in item order
  kinds: tuple
  convert_s: float
  workers: int
  options: dict = dataclasses.field(default_factory=dict)
  reused: bool = False  # found from an earlier identical conversion: convert_s is 0

  def rows(self, kind: str) -> np.ndarray:
    shape = encoding.window_spec(kind, self.mode).shape
    path = os.path.join(self.work_dir, f'{kind}.bin')
    if os.path.getsize(path) == 0:
      return np.zeros((0,) + shape, np.int16)
    return np.memmap(path, np.int16, 'r').reshape((-1,) + shape)

  def index(self, kind: str):
    with np.load(os.path.join(self.work_dir, f'{kind}.index.npz')) as z:
      return z['item'], z['window'], z['hash']


def _work_dir(data_dir, source, mode, fingerprint):
  return os.path.join(data_dir, 'mvae_work', f'{source}-{mode}-{fingerprint}')


def _load_extraction(work_dir, kinds):
  meta_path = os.path.join(work_dir, 'items.json')
  if not os.path.exists(meta_path):
    return None
  with open(meta_path) as f:
    meta = json.load(f)
  if not set(kinds) <= set(meta['kinds']):
    return None
  # Reused: this build converted nothing, so its conversion time is 0 (not the earlier build's).
  return Extraction(work_dir=work_dir, source=meta['source'], mode=meta['mode'],
                    items=meta['items'], kinds=tuple(meta['kinds']),
                    convert_s=0.0, workers=meta['workers'],
                    options=meta.get('options', {}), reused=True)


def extract(source: str, kinds, mode: str = 'paper', data_dir: str | None = None,
            midi_dir: str | None = None, workers: int | None = None,
            timeout_s: float = FILE_TIMEOUT_S, memory_gb: float = WORKER_MEMORY_GB,
            items: list[Item] | None = None, progress=True,
            options: ConvertOptions | None = None) -> Extraction:
  """Converts every input of `source` once for all `kinds`; reuses an earlier identical run.

  `workers=0` converts in this process (no timeout or memory cap; for debugging). `options`
  defaults to `ConvertOptions.default(mode)`.
  """
  data_dir = data_dir or default_data_dir()
  kinds = tuple(kinds)
  options = options or ConvertOptions.default(mode)
  items = list_items(source, midi_dir) if items is None else items
  work_dir = _work_dir(data_dir, source, mode, source_fingerprint(source, items, options))
  found = _load_extraction(work_dir, kinds)
  if found is not None:
    return found
  if workers is None:
    workers = os.cpu_count() or 1
  tmp = work_dir + '.tmp'
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  bins = {k: open(os.path.join(tmp, f'{k}.bin'), 'wb') for k in kinds}
  index = {k: ([], [], []) for k in kinds}
  records = [None] * len(items)
  bar = console.Progress(f'{source} {mode}', len(items), 'files') if progress else None
  skipped = [0]
  t0 = time.monotonic()

  def consume(idx, res):
    records[idx] = {'path': res['path'], 'file_id': res['file_id'], 'reason': res['reason'],
                    'detail': res['detail'], 'counts': res.get('counts') or {},
                    'seconds': res.get('seconds')}
    for k, w in res['windows'].items():
      if len(w):
        bins[k].write(np.ascontiguousarray(w, np.int16).tobytes())
        index[k][0].append(np.full(len(w), idx, np.int64))
        index[k][1].append(np.arange(len(w), dtype=np.int64))
        index[k][2].append(res['hashes'][k])
    skipped[0] += bool(res['reason'])
    if bar:
      bar.update(1, f'{skipped[0]} skipped')

  try:
    specs = {k: encoding.window_spec(k, mode) for k in kinds}
    if workers == 0:
      for idx, item in enumerate(items):
        t_item = time.monotonic()
        res = convert_item(item, specs, options)
        res['seconds'] = time.monotonic() - t_item
        consume(idx, res)
    else:
      with workers_lib.WorkerPool('data_pipelines.conversion:convert_item', (specs, options),
                                  workers, timeout_s, memory_gb) as pool:
        for idx, res in pool.imap(items):
          consume(idx, res)
  finally:
    for f in bins.values():
      f.close()
  for k in kinds:
    it, win, hs = index[k]
    np.savez(os.path.join(tmp, f'{k}.index.npz'),
             item=np.concatenate(it) if it else np.zeros(0, np.int64),
             window=np.concatenate(win) if win else np.zeros(0, np.int64),
             hash=np.concatenate(hs) if hs else np.zeros((0, 2), np.uint64))
  convert_s = time.monotonic() - t0
  if records and all(r['reason'] == 'crashed' for r in records):
    raise RuntimeError(f'every worker crashed (first: {records[0]["detail"]}); see stderr')
  with open(os.path.join(tmp, 'items.json'), 'w') as f:
    json.dump({'source': source, 'mode': mode, 'kinds': list(kinds), 'items': records,
               'convert_s': convert_s, 'workers': workers,
               'options': dataclasses.asdict(options)}, f)
  shutil.rmtree(work_dir, ignore_errors=True)
  os.replace(tmp, work_dir)
  return Extraction(work_dir=work_dir, source=source, mode=mode, items=records, kinds=kinds,
                    convert_s=convert_s, workers=workers, options=dataclasses.asdict(options))


# ----------------------------------------------------------------------------- selection

@dataclasses.dataclass
class Selection:
  """The rows of one kind that go into the dataset, in (item, window index) order."""
  extraction: Extraction
  kind: str
  rows: np.ndarray        # indices into extraction.rows(kind)
  item: np.ndarray        # item index per selected row
  window: np.ndarray      # window index within the item, per selected row
  is_eval: np.ndarray     # bool per selected row
  stats: dict

  def examples(self, split: str):
    """(key, example) pairs of `split`; keys are `<file id>:<window index>`."""
    data = self.extraction.rows(self.kind)
    items = self.extraction.items
    want_eval = split == 'eval'
    for r, i, w, e in zip(self.rows, self.item, self.window, self.is_eval):
      if e != want_eval:
        continue
      rec = items[i]
      yield f'{rec["file_id"]}:{w}', {'tokens': np.asarray(data[r]), 'source': rec['file_id'],
                                      'path': rec['path']}


def capped(n: int, max_per_file: int, seed: int, file_id: str) -> np.ndarray:
  """Sorted indices of the `max_per_file` windows (of n) kept for a file; seeded by its hash."""
  rng = np.random.default_rng([seed, int(file_id[:15], 16)])
  return np.sort(rng.choice(n, max_per_file, replace=False))


def select(ext: Extraction, kind: str, max_per_file: int | None = None, seed: int = 0,
           eval_percent: int = EVAL_PERCENT, dedup: bool | None = None) -> Selection:
  """Orders, dedups (paper: global, first occurrence), caps (seeded per file) and splits rows.

  `dedup` defaults to True in paper mode, False in magenta mode (the extractor already dedups
  within each time-split part there, like the reference).
  """
  if dedup is None:
    dedup = ext.mode == 'paper'
  item, window, hashes = ext.index(kind)
  # Items whose content was already seen earlier in path order are duplicates.
  seen, dup = {}, np.zeros(len(ext.items), bool)
  for i, rec in enumerate(ext.items):
    if rec['reason'] is None:
      if rec['file_id'] in seen:
        dup[i] = True
      else:
        seen[rec['file_id']] = i
  order = np.lexsort((window, item))
  order = order[~dup[item[order]]] if len(order) else order
  raw = len(order)
  if dedup and len(order):
    h = hashes[order]
    _, first = np.unique(h, axis=0, return_index=True)
    order = order[np.sort(first)]
  if max_per_file and len(order):
    keep = []
    it = item[order]
    bounds = np.flatnonzero(np.diff(it)) + 1
    for grp in np.split(np.arange(len(order)), bounds):
      if len(grp) > max_per_file:
        grp = grp[capped(len(grp), max_per_file, seed, ext.items[it[grp[0]]]['file_id'])]
      keep.append(grp)
    order = order[np.concatenate(keep)]
  sel_item = item[order]
  item_eval = np.array([bool(r['file_id']) and is_eval(r['file_id'], eval_percent)
                        for r in ext.items], bool)
  used = np.unique(sel_item) if len(sel_item) else np.zeros(0, np.int64)
  if len(used) >= MIN_FILES_FOR_EVAL and not item_eval[used].any():
    # A small folder whose files all hash to train: the file nearest to the eval side of the
    # hash rule (deterministic, content-based) is evaluated on instead.
    nearest = min(used, key=lambda i: (int(ext.items[i]['file_id'][:8], 16) % 100,
                                       ext.items[i]['file_id']))
    item_eval[nearest] = True
  ev = item_eval[sel_item] if len(sel_item) else np.zeros(0, bool)
  stats = {
      'windows_before_dedup': int(raw),
      'windows': int(len(order)),
      'dedup_ratio': round(len(order) / raw, 4) if raw else None,
      'train': int((~ev).sum()),
      'eval': int(ev.sum()),
      'files_with_windows': int(len(np.unique(sel_item))),
      'duplicate_files': int(dup.sum()),
  }
  return Selection(ext, kind, order, sel_item, window[order], ev, stats)


def report(ext: Extraction, selections: dict, total_s: float | None = None) -> dict:
  """Build report: files read / skipped (by reason, with names and what to do), per-item counts
  (parts dropped by filters, unexpanded repeats), the slowest items, windows per kind, time."""
  skipped = [r for r in ext.items if r['reason'] is not None]
  by_reason = {}
  for r in skipped:
    by_reason.setdefault(r['reason'], []).append(r['path'])
  counted = collections.Counter()
  for r in ext.items:
    counted.update(r.get('counts') or {})
  timed = sorted((r for r in ext.items if r.get('seconds') is not None),
                 key=lambda r: -r['seconds'])[:SLOWEST_SHOWN]
  sel_any = next(iter(selections.values()), None)
  return {
      'source': ext.source,
      'mode': ext.mode,
      'files_total': len(ext.items),
      'files_read': len(ext.items) - len(skipped),
      'files_skipped': len(skipped),
      'skipped_by_reason': {k: len(v) for k, v in sorted(by_reason.items())},
      'skipped_files': {k: sorted(v) for k, v in sorted(by_reason.items())},
      'skipped_details': {r['path']: r['detail'] for r in skipped if r['detail']},
      'skip_hints': {k: SKIP_HINTS.get(k, '') for k in sorted(by_reason)},
      'counted': dict(sorted(counted.items())),
      'slowest_files': [[r['path'], round(r['seconds'], 2)] for r in timed],
      'options': ext.options,
      'duplicate_files': sel_any.stats['duplicate_files'] if sel_any else None,
      'kinds': {k: s.stats for k, s in selections.items()},
      'convert_s': round(ext.convert_s, 1),
      'conversion_reused': ext.reused,
      'total_s': round(total_s, 1) if total_s is not None else None,
      'workers': ext.workers,
  }


def print_report(rep: dict, stream=None):
  stream = stream or sys.stdout
  w = stream.write
  w(f"== build report: source={rep['source']} mode={rep['mode']}\n")
  w(f"files: {rep['files_total']} total, {rep['files_read']} read, {rep['files_skipped']} skipped"
    f", {rep['duplicate_files']} duplicates\n")
  hints = rep.get('skip_hints') or {}
  for reason, paths in rep['skipped_files'].items():
    shown = ', '.join(paths[:5]) + (f', ... ({len(paths) - 5} more)' if len(paths) > 5 else '')
    w(f'  skipped {reason}: {len(paths)}: {shown}\n')
    if hints.get(reason):
      w(f'    -> {hints[reason]}\n')
  for name, n in (rep.get('counted') or {}).items():
    w(f'  {name}: {n} ({COUNT_HINTS.get(name, "")})\n')
  slow = rep.get('slowest_files') or []
  if slow:
    w('slowest files: ' + ', '.join(f'{p} {t:.1f} s' for p, t in slow[:5]) + '\n')
  for kind, s in rep['kinds'].items():
    w(f"{kind}: {s['windows_before_dedup']} windows -> {s['windows']} after dedup/cap "
      f"(ratio {s['dedup_ratio']}), train {s['train']}, eval {s['eval']}, "
      f"from {s['files_with_windows']} files\n")
  conversion = ('reused from an earlier build' if rep.get('conversion_reused')
                else f"{rep.get('convert_s')} s")
  w(f"time: conversion {conversion} with {rep['workers']} workers"
    + (f", total {rep['total_s']} s" if rep.get('total_s') is not None else '') + '\n')
  stream.flush()


def config_name(kind: str, mode: str = 'paper', expand_repeats: bool | None = None) -> str:
  """`<kind>` (paper) or `<kind>_<mode>`; folk tunes converted against the mode's repeat default
  (`expand_repeats`, see `ConvertOptions`) get `_written` (paper) or `_expanded` (magenta)."""
  name = kind if mode == 'paper' else f'{kind}_{mode}'
  if expand_repeats is not None and expand_repeats != ConvertOptions.default(mode).expand_repeats:
    name += '_expanded' if expand_repeats else '_written'
  return name
