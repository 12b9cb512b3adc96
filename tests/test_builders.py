"""TFDS builders (data_pipelines/mvae_datasets.py) and the build driver (data_pipelines/build.py).

Built from a handful of real Freedoom files; counts are compared with `extract_windows` + a
global dedup computed directly here.
"""

import collections
import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from data_pipelines import build
from data_pipelines import encoding
from data_pipelines import midi
from data_pipelines import conversion

# Small Freedoom files: one lands in eval (by content hash), E1M5 and E2M6 are byte-identical.
FILES = ('freedoom2_D_DOOM.mid', 'freedoom2_D_READ_M.mid', 'freedoom1_D_E1M5.mid',
         'freedoom1_D_E2M6.mid', 'freedoom1_D_E1M6.mid', 'freedoom1_D_INTROA.mid')
KINDS = ('mel_2bar', 'drums_2bar', 'trio_16bar')


@pytest.fixture(scope='module')
def midi_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp('midi')
  sub = d / 'sub'
  sub.mkdir()
  for i, f in enumerate(FILES):
    shutil.copy(os.path.join(conversion.FREEDOOM_DIR, f), (sub if i % 2 else d) / f)
  return str(d)


@pytest.fixture(scope='module')
def built(midi_dir, tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  rep = build.build_all('folder', KINDS, 'paper', data_dir, midi_dir, workers=2, keep_work=True)
  return data_dir, rep


def _expected(midi_dir, kind, mode='paper'):
  """[(file id, rel path, window index, tokens bytes)] with a first-occurrence global dedup."""
  spec = encoding.window_spec(kind, mode)
  out, seen_rows, seen_files = [], set(), set()
  for item in conversion.list_items('folder', midi_dir):
    data = open(item.location, 'rb').read()
    fid = hashlib.md5(data).hexdigest()
    if fid in seen_files:
      continue
    seen_files.add(fid)
    try:
      w = encoding.extract_windows(midi.midi_bytes_to_note_sequence(data, item.path), spec)
    except midi.MidiError:
      continue
    for i, row in enumerate(w):
      b = row.tobytes()
      if mode == 'paper' and b in seen_rows:
        continue
      seen_rows.add(b)
      out.append((fid, item.path, i, b))
  return out


def _read_all(data_dir, kind, mode='paper', source='folder'):
  out = {}
  b = build.data_source_builder(source, kind, mode, data_dir)
  for split in b.info.splits:
    ds = build.data_source(source, kind, mode, split, data_dir)
    out[split] = [ds[i] for i in range(len(ds))]
  return out


def test_items_sorted_relative_paths(midi_dir):
  paths = [it.path for it in conversion.list_items('folder', midi_dir)]
  assert paths == sorted(paths) and len(paths) == len(FILES)
  assert any(p.startswith('sub/') for p in paths)


@pytest.mark.parametrize('kind', KINDS)
def test_exact_windows_and_splits(built, midi_dir, kind):
  data_dir, rep = built
  expected = _expected(midi_dir, kind)
  got = _read_all(data_dir, kind)
  got_rows = collections.Counter(
      (e['source'].decode(), e['path'].decode(), e['tokens'].tobytes())
      for split in got.values() for e in split)
  assert got_rows == collections.Counter((f, p, b) for f, p, _, b in expected)
  assert rep['kinds'][kind]['windows'] == len(expected)
  # Split by file: every file's windows are all in the split its content hash picks.
  for split, examples in got.items():
    for e in examples:
      assert conversion.is_eval(e['source'].decode()) == (split == 'eval')
  train = {e['source'] for e in got.get('train', [])}
  assert not train & {e['source'] for e in got.get('eval', [])}


def test_data_source_shapes_and_metadata(built):
  data_dir, _ = built
  for kind in KINDS:
    spec = encoding.window_spec(kind)
    ds = build.data_source('folder', kind, 'paper', 'train', data_dir)
    e = ds[0]
    assert e['tokens'].dtype == np.int16 and e['tokens'].shape == spec.shape
    assert set(e) == {'tokens', 'source', 'path'}
    md = build.data_source_builder('folder', kind, 'paper', data_dir).info.metadata
    assert md['kind'] == kind and md['mode'] == 'paper'
    assert md['part_vocab'] == list(spec.part_vocab) and md['steps_per_bar'] == 16
    assert md['num_files'] == len(FILES) and md['duplicate_files'] == 1
    assert md['windows'] == md['train'] + md['eval']


def test_report_written_beside_data(built):
  data_dir, rep = built
  path = os.path.join(build.dataset_dir('folder', 'mel_2bar', 'paper', data_dir),
                      'build_report.json')
  with open(path) as f:
    r = json.load(f)
  assert r['files_total'] == len(FILES) and r['files_read'] == len(FILES)
  assert r['kinds']['mel_2bar']['windows'] == rep['kinds']['mel_2bar']['windows']
  assert r['convert_s'] > 0 and 'total_s' in r


def test_selection_is_deterministic(built, midi_dir, tmp_path):
  """Same keys and rows whatever the worker count / arrival order; keys = `<file id>:<index>`."""
  data_dir, _ = built
  ext_a = conversion.extract('folder', KINDS, 'paper', data_dir, midi_dir)  # the cached run
  ext_b = conversion.extract('folder', KINDS, 'paper', str(tmp_path), midi_dir, workers=0,
                        progress=False)
  for kind in KINDS:
    ex_a = [(k, e['tokens'].tobytes()) for s in ('train', 'eval')
            for k, e in conversion.select(ext_a, kind).examples(s)]
    ex_b = [(k, e['tokens'].tobytes()) for s in ('train', 'eval')
            for k, e in conversion.select(ext_b, kind).examples(s)]
    assert ex_a == ex_b
    keys = [k for k, _ in ex_a]
    assert len(set(keys)) == len(keys)
    want = {f'{f}:{i}' for f, _, i, _ in _expected(midi_dir, kind)}
    assert set(keys) == want


def test_two_builds_identical(built, midi_dir, tmp_path):
  data_dir, _ = built
  b = build.build('folder', 'mel_2bar', 'paper', str(tmp_path), midi_dir, workers=1, quiet=True)
  assert b.info.splits['train'].num_examples > 0
  a_rows = _read_all(data_dir, 'mel_2bar')
  b_rows = _read_all(str(tmp_path), 'mel_2bar')
  for split in a_rows:
    assert [(e['source'], e['tokens'].tobytes()) for e in a_rows[split]] == [
        (e['source'], e['tokens'].tobytes()) for e in b_rows[split]]


def test_magenta_mode_cap(midi_dir, tmp_path):
  b = build.build('folder', 'mel_2bar', 'magenta', str(tmp_path), midi_dir, workers=2, quiet=True)
  # A folder's dataset is named by the fingerprint of its content (and options).
  fingerprint = conversion.folder_fingerprint(midi_dir, str(tmp_path), mode='magenta').value
  assert b.builder_config.name == f'mel_2bar_magenta-{fingerprint}'
  assert b.builder_config.max_per_file == 5
  got = _read_all(str(tmp_path), 'mel_2bar', 'magenta')
  per_file = collections.Counter(e['source'] for s in got.values() for e in s)
  full = collections.Counter(f for f, *_ in _expected(midi_dir, 'mel_2bar', 'magenta'))
  assert {f.decode(): n for f, n in per_file.items()} == {f: min(n, 5) for f, n in full.items()}
  allowed = {b for *_, b in _expected(midi_dir, 'mel_2bar', 'magenta')}
  assert all(e['tokens'].tobytes() in allowed for s in got.values() for e in s)
  assert b.info.metadata['melody_vocab'] == 90


def test_missing_dataset_message(tmp_path):
  with pytest.raises(FileNotFoundError, match='python -m data_pipelines.build'):
    build.data_source('freedoom', 'mel_2bar', 'paper', 'train', str(tmp_path))


def test_beam_pipeline_matches(built, midi_dir, tmp_path):
  pytest.importorskip('apache_beam')
  data_dir, _ = built
  build.build('folder', 'mel_2bar', 'paper', str(tmp_path), midi_dir, workers=1, beam=True)
  want = _read_all(data_dir, 'mel_2bar')
  got = _read_all(str(tmp_path), 'mel_2bar')
  assert set(got) == set(want)
  for split in want:
    as_set = lambda rows: collections.Counter(  # noqa: E731
        (e['source'], e['path'], e['tokens'].tobytes()) for e in rows)
    assert as_set(got[split]) == as_set(want[split])
  md = build.data_source_builder('folder', 'mel_2bar', 'paper', str(tmp_path)).info.metadata
  assert md['files_read'] == len(FILES) and md['files_skipped'] == 0
