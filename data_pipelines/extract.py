r"""Extracts training windows from a folder of MIDI files into one .npz (no TensorFlow).

  python -m data_pipelines.extract --mode=magenta --out=/tmp/windows.npz data_pipelines/freedoom

Output (the format of tests/fixtures/magenta_windows.npz, SPEC.md section 9):
  files            str [F]   MIDI paths relative to MIDI_DIR, sorted
  <key>/windows    int16 [N, T] (trio: [N, T, 3] = lead, bass, drums)
  <key>/file       int32 [N] index into `files`
where <key> is the kind (`mel_2bar`, ...) or, with --reference_names, the reference config
name (`cat-mel_2bar_small`, ...). Rows are ordered by file, then by content. magenta mode keeps
the reference's per-part duplicates; paper mode keeps each window once, in the first file where
it occurs. Bad files are skipped with a `skip <file>: <reason>` line.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time

import numpy as np

from data_pipelines import encoding
from data_pipelines import midi
from data_pipelines import midi_fast
from data_pipelines import kinds as kinds_lib

REFERENCE_CONFIGS = {
    'mel_2bar': 'cat-mel_2bar_small',
    'mel_16bar': 'hierdec-mel_16bar',
    'drums_2bar': 'cat-drums_2bar_small',
    'trio_16bar': 'hierdec-trio_16bar',
}
DEFAULT_KINDS = tuple(REFERENCE_CONFIGS)


def sort_rows(array: np.ndarray) -> np.ndarray:
  """Rows of `array` [n, ...] ordered by their bytes (`row.tobytes()`), duplicates kept.

  Byte order is what the reference fixture uses, so magenta-mode output matches it exactly. Each
  row is sorted as one opaque byte string (numpy compares those with memcmp).
  """
  if len(array) < 2:
    return array
  raw = np.ascontiguousarray(array).reshape(len(array), -1)
  rows = raw.view(np.dtype((np.void, raw.shape[1] * raw.itemsize))).ravel()
  return array[np.argsort(rows, kind='stable')]


def midi_files(midi_dir: str) -> list[str]:
  """MIDI files under `midi_dir` (recursive), as sorted relative paths."""
  out = []
  for root, _, names in os.walk(midi_dir):
    for name in names:
      if name.lower().endswith(('.mid', '.midi')):
        out.append(os.path.relpath(os.path.join(root, name), midi_dir))
  return sorted(out)


def extract_folder(midi_dir: str, mode: str, kinds=DEFAULT_KINDS, log=print):
  """Windows of every file of `midi_dir`: (files, {kind: (windows, file_index)}, skip reasons)."""
  specs = {k: encoding.window_spec(k, mode) for k in kinds}
  files = midi_files(midi_dir)
  rows = {k: [] for k in kinds}
  owners = {k: [] for k in kinds}
  seen = {k: set() for k in kinds}
  skipped = collections.Counter()
  for i, rel in enumerate(files):
    try:
      parts = midi_fast.read_file_parts(os.path.join(midi_dir, rel),
                                        reject_empty_tracks=mode == 'magenta')
    except midi.MidiError as e:
      log(f'skip {rel}: {e.reason}' + (f' ({e.detail})' if e.detail else ''))
      skipped[e.reason] += 1
      continue
    for kind, spec in specs.items():
      w = sort_rows(encoding.extract_windows(None, spec, parts=parts))
      if spec.dedup == 'file':  # paper mode: unique across the whole folder
        fresh = []
        for r in w:
          b = r.tobytes()
          if b not in seen[kind]:
            seen[kind].add(b)
            fresh.append(r)
        w = np.stack(fresh) if fresh else w[:0]
      rows[kind].append(w)
      owners[kind].append(np.full(len(w), i, np.int32))
  result = {}
  for kind, spec in specs.items():
    w = np.concatenate(rows[kind]) if rows[kind] else np.zeros((0,) + spec.shape, np.int16)
    f = np.concatenate(owners[kind]) if owners[kind] else np.zeros(0, np.int32)
    result[kind] = (w.astype(np.int16), f)
  return files, result, skipped


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('midi_dir')
  parser.add_argument('--mode', choices=kinds_lib.MODES, default='paper')
  parser.add_argument('--out', required=True, help='output .npz path')
  parser.add_argument('--kinds', default=None,
                      help=f'comma-separated subset of {",".join(kinds_lib.KINDS)} '
                           f'(default: {",".join(DEFAULT_KINDS)})')
  parser.add_argument('--reference_names', action='store_true',
                      help='key arrays by the reference config names (reference kinds only)')
  args = parser.parse_args(argv)
  kinds = tuple(args.kinds.split(',')) if args.kinds else DEFAULT_KINDS
  for k in kinds:
    if k not in kinds_lib.KINDS:
      parser.error(f'unknown kind {k!r}')
    if args.reference_names and k not in REFERENCE_CONFIGS:
      parser.error(f'{k} has no reference config name')
  start = time.time()
  files, result, skipped = extract_folder(args.midi_dir, args.mode, kinds)
  arrays = {'files': np.array(files)}
  for kind, (w, f) in result.items():
    key = REFERENCE_CONFIGS[kind] if args.reference_names else kind
    arrays[f'{key}/windows'] = w
    arrays[f'{key}/file'] = f
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  np.savez_compressed(args.out, **arrays)
  print(f'{len(files)} files, {sum(skipped.values())} skipped '
        f'({", ".join(f"{r}: {n}" for r, n in sorted(skipped.items())) or "none"}), '
        f'{time.time() - start:.1f} s -> {args.out}')
  for kind, (w, f) in result.items():
    print(f'  {kind}: {len(w)} windows from {len(np.unique(f))} files, shape {w.shape[1:]}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
