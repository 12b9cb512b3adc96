"""Does the model copy its data? The nearest training window of each sample.

`generate sample --nearest` reports, for every sample, the training window with the fewest
differing tokens (Hamming distance over the window's steps and parts), the file it comes from and
the bar of that file where it starts. A distance of 0 means the sample *is* a training window.

The search compares a batch of samples with the whole training split in chunks (numpy, no loop
over windows): a few seconds for the folk set's 2-bar melodies on a CPU. The split is read once
per process and cached. The bar is found by reading the one source file again and locating the
window in it (`encoding.located_windows`), only for the windows that are reported.

  index, distance = nearest_windows(samples, train_tokens)          # int [n] each
  report = nearest_training_windows(model, samples)                 # list of dicts, one a sample
  lines = describe(report, model.time * len(model.part_vocab))
"""
from __future__ import annotations

import functools
import json
import os
from typing import Any, Sequence

import numpy as np

from data_pipelines import console
from mvae_jax import attributes as attr_lib
from mvae_jax import input_pipeline
from data_pipelines import conversion

CHUNK_CELLS = 1 << 25  # compared tokens per chunk (bool bytes): ~32 MB


def nearest_windows(samples: np.ndarray, train: np.ndarray, chunk: int | None = None,
                    progress: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """For each sample, the training window with the smallest Hamming distance.

  Args:
    samples: int [n, time, parts] (or [n, cells]).
    train: int [N, time, parts], the same trailing shape.
    chunk: training windows compared per step (default: ~32M compared cells).
  Returns:
    (index int64 [n] into `train`, the first of equals; distance int64 [n]: differing tokens).
  """
  s = np.asarray(samples).reshape(len(samples), -1)
  t = np.asarray(train)
  t = t.reshape(len(t), -1)
  if s.shape[1] != t.shape[1]:
    raise ValueError(f'samples have {s.shape[1]} tokens per window, training windows '
                     f'{t.shape[1]}')
  if not len(t):
    raise ValueError('no training windows to compare with')
  n, cells = s.shape
  chunk = chunk or max(1, CHUNK_CELLS // max(1, n * cells))
  s = s.astype(t.dtype, copy=False)
  best = np.full(n, np.iinfo(np.int64).max)
  index = np.zeros(n, np.int64)
  bar = console.Progress(progress or 'searching', len(t), 'windows', quiet_s=3.0,
                         enabled=progress is not None)
  for a, b in attr_lib.batches(len(t), chunk):
    d = (t[a:b, None, :] != s[None, :, :]).sum(-1)  # [c, n]
    i = d.argmin(0)
    dmin = d[i, np.arange(n)]
    better = dmin < best
    best[better], index[better] = dmin[better], a + i[better]
    bar.update(b - a)
  bar.close()
  return index, best


@functools.lru_cache(maxsize=4)
def _split_cached(data_key: str, config_json: str, split: str
                  ) -> tuple[np.ndarray, tuple[str, ...]]:
  import ml_collections
  del data_key
  config = ml_collections.ConfigDict(json.loads(config_json))
  tokens, _, paths = input_pipeline.split_windows(config.data, split, with_paths=True,
                                                  progress=True)
  tokens.setflags(write=False)
  return tokens, tuple(paths)


def training_windows(model: Any, split: str = 'train') -> tuple[np.ndarray, tuple[str, ...]]:
  """(tokens int32 [N, time, parts], source path per window) of the run's dataset split,
  read once per process."""
  from mvae_jax import config_lib
  data = config_lib.as_plain(model.config.data)
  key = json.dumps(data, sort_keys=True)
  return _split_cached(key, json.dumps({'data': data}), split)


def _source_location(data: Any, path: str) -> tuple[str, str] | None:
  """('midi', absolute file) or ('abc', tune text) of a dataset item's relative `path`."""
  try:
    items = _items(data.source, data.midi_dir or None)
  except (FileNotFoundError, ValueError):
    return None
  it = items.get(path)
  return None if it is None else (it.fmt, it.location)


@functools.lru_cache(maxsize=4)
def _items(source: str, midi_dir: str | None) -> dict[str, Any]:
  return {it.path: it for it in conversion.list_items(source, midi_dir)}


def locate_window(model: Any, path: str, window: np.ndarray) -> int | None:
  """The bar (from 1) of the dataset file `path` (relative, the `path` feature) where `window`
  int [time, parts] starts, by extracting the file's windows again; None if not found (a file
  that moved, or a conversion with filters)."""
  from data_pipelines import encoding, folk, midi
  loc = _source_location(model.config.data, path)
  if loc is None:
    return None
  fmt, where = loc
  try:
    if fmt == 'abc':
      opts = conversion.ConvertOptions.default(model.spec.mode)
      ns = folk.tune_to_note_sequence(where, opts.expand_repeats)
    else:
      ns = midi.read_midi(where, reject_empty_tracks=model.spec.mode == 'magenta')
    rows, bars, _ = encoding.located_windows(ns, model.spec)
  except Exception:  # pylint: disable=broad-except  (any unreadable file: no bar, not a crash)
    return None
  rows = np.asarray(rows).reshape(len(rows), -1)
  hit = np.flatnonzero((rows == np.asarray(window).reshape(1, -1)).all(1))
  return int(np.floor(bars[hit[0]] + 1e-6)) + 1 if len(hit) else None


def nearest_training_windows(model: Any, samples: np.ndarray, split: str = 'train',
                             locate: bool = True) -> list[dict[str, Any]]:
  """For each sample int [n, time, parts]: {'sample', 'index' (into the split), 'distance'
  (differing tokens), 'cells' (tokens per window), 'same_fraction', 'path', 'bar' (from 1, or
  None), 'window' (the training window's tokens)}."""
  samples = np.asarray(samples, np.int32)
  train, paths = training_windows(model, split)
  index, dist = nearest_windows(samples, train,
                                progress='comparing with the training windows')
  cells = int(np.prod(samples.shape[1:]))
  out = []
  for i, (j, d) in enumerate(zip(index.tolist(), dist.tolist())):
    out.append({'sample': i, 'index': j, 'distance': d, 'cells': cells,
                'same_fraction': 1.0 - d / cells, 'path': paths[j],
                'bar': locate_window(model, paths[j], train[j]) if locate else None,
                'window': train[j]})
  return out


def describe(report: Sequence[dict[str, Any]], names: Sequence[str] | None = None) -> list[str]:
  """One line per sample: `sample_003: nearest training window: tunes/x.abc bar 9, 3 of 32
  tokens differ (91% equal)` (`names`: the samples' names, default sample_<i>)."""
  lines = []
  for r in report:
    name = names[r['sample']] if names else f'sample_{r["sample"]:03d}'
    where = r['path'] + (f' bar {r["bar"]}' if r['bar'] is not None else '')
    copy = '  (a copy of a training window)' if r['distance'] == 0 else ''
    lines.append(f'{name}: nearest training window: {where} (window {r["index"]} of the split), '
                 f'{r["distance"]} of {r["cells"]} tokens differ ({r["same_fraction"]:.0%} '
                 f'equal){copy}')
  return lines


def write_nearest(model: Any, samples: np.ndarray, out_dir: str, split: str = 'train',
                  names: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
  """What `generate sample --nearest` adds: `nearest.json` (the report without tokens) and
  `nearest.png` (each sample next to its nearest training window, in black). Returns
  (the report's lines, the written paths)."""
  report = nearest_training_windows(model, samples, split)
  os.makedirs(out_dir, exist_ok=True)
  plain = [{k: v for k, v in r.items() if k != 'window'} for r in report]
  json_path = os.path.join(out_dir, 'nearest.json')
  with open(json_path, 'w') as f:
    json.dump({'split': split, 'distance': 'Hamming: differing tokens (steps x parts)',
               'samples': plain}, f, indent=1)
  pieces, labels, highlight = [], [], []
  for r in report:
    pieces += [np.asarray(samples[r['sample']]), r['window']]
    name = names[r['sample']] if names else f'sample {r["sample"]}'
    labels += [name, f'nearest: d={r["distance"]}']
    highlight.append(len(pieces) - 1)
  png = model.plot(pieces, os.path.join(out_dir, 'nearest.png'), highlight=tuple(highlight),
                   labels=labels, title='samples and their nearest training windows (black)')
  return describe(report, names), [os.path.abspath(json_path), os.path.abspath(png)]
