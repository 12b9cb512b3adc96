"""Large, expressive and extreme MIDI files lose nothing (tests/make_big_midi.py).

tests/fixtures/magenta_big_windows.npz holds what the reference converters extract from the four
generated files (made once with `../shared/tools/magenta/windows.py DIR OUT.npz` in the magenta
venv, over the output of `python tests/make_big_midi.py DIR`; the generator is deterministic).
In magenta mode every file must give the reference's multiset of windows, none lost, none extra;
the same holds for the malformed corpus of tests/make_bad_midi.py (`magenta_bad_windows.npz`).
"""

import collections
import hashlib
import os
import sys
import time
import tracemalloc

import numpy as np
import pytest

from data_pipelines import encoding
from data_pipelines import extract
from data_pipelines import midi

sys.path.insert(0, os.path.dirname(__file__))
import make_big_midi  # pylint: disable=g-import-not-at-top,wrong-import-position
from data_pipelines import conversion

FIXTURE = os.path.join(os.path.dirname(__file__), 'fixtures', 'magenta_big_windows.npz')
# md5 of the generated files the fixture was made from: if the generator's output changes,
# regenerate the fixture with the reference (see the module docstring).
MD5 = {
    'dense_30k_notes.mid': 'fd6cb6d9d9574c085500919dac83bb9d',
    'forty_minutes.mid': '1a1dae5f05f9a9da6505e2d1b1e590a5',
    'gap_1e8_ticks.mid': '60bb8e949e652d836dcaa8b7cd805e55',
    'tempo_2000_changes.mid': '173c3b46540ec7eba40123716e1fcfa4',
}


@pytest.fixture(scope='module')
def big_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp('big_midi')
  make_big_midi.write_corpus(str(d))
  return str(d)


@pytest.fixture(scope='module')
def reference():
  return np.load(FIXTURE)


@pytest.fixture(scope='module')
def ours(big_dir):
  return extract.extract_folder(big_dir, 'magenta', log=lambda _: None)


def test_generator_is_deterministic(big_dir):
  got = {f: hashlib.md5(open(os.path.join(big_dir, f), 'rb').read()).hexdigest()
         for f in sorted(os.listdir(big_dir))}
  assert got == MD5


def test_files_are_what_they_claim(big_dir):
  dense = midi.read_midi(os.path.join(big_dir, 'dense_30k_notes.mid'))
  assert len(dense.notes) == 30_000
  assert midi.read_midi(os.path.join(big_dir, 'forty_minutes.mid')).total_time >= 40 * 60 - 2
  tempo = midi.read_midi(os.path.join(big_dir, 'tempo_2000_changes.mid'))
  assert len(tempo.tempos) == 2001  # the initial tempo + 2,000 changes


@pytest.mark.parametrize('kind', list(extract.REFERENCE_CONFIGS))
def test_magenta_windows_match_reference_file_by_file(kind, ours, reference):
  files, result, skipped = ours
  assert not skipped
  assert list(files) == list(reference['files'])
  key = extract.REFERENCE_CONFIGS[kind]
  ref_w, ref_f = reference[key + '/windows'], reference[key + '/file']
  w, f = result[kind]
  for i, name in enumerate(files):
    a = collections.Counter(r.tobytes() for r in w[f == i])
    b = collections.Counter(r.tobytes() for r in ref_w[ref_f == i])
    assert len(b) > 0, (kind, name)  # every file gives the reference windows of every kind
    assert a == b, (kind, name, sum(a.values()), sum(b.values()), sum((a & b).values()))


def test_paper_mode_reads_every_file(big_dir):
  files, result, skipped = extract.extract_folder(big_dir, 'paper', log=lambda _: None)
  assert not skipped
  for kind, (w, f) in result.items():
    assert set(f) == set(range(len(files))), kind


def test_tempo_changes_split_fast_and_short_parts_yield_nothing(big_dir):
  ns = midi.read_midi(os.path.join(big_dir, 'tempo_2000_changes.mid'))
  t0 = time.process_time()
  parts = midi.quantized_parts(ns)
  elapsed = time.process_time() - t0
  assert len(parts) == 2001
  assert elapsed < 5.0, elapsed  # ~0.3 s here: linear in changes and notes
  spec = encoding.window_spec('mel_16bar', 'magenta')
  long_parts = [p for p in parts if p.total_steps >= 16 * 16]
  assert len(long_parts) == 40  # the 17-bar stable stretches
  for p in parts:
    w = encoding.part_windows(p, spec)
    if p.total_steps < 16 * 16:
      assert len(w) == 0
  assert sum(len(encoding.part_windows(p, spec)) > 0 for p in long_parts) == 40


def test_huge_gap_costs_no_memory(big_dir):
  """pretty_midi's own table would take 800 MB for the 1e8-tick gap; ours holds a few floats."""
  tracemalloc.start()
  try:
    ns = midi.read_midi(os.path.join(big_dir, 'gap_1e8_ticks.mid'))
    _, peak = tracemalloc.get_traced_memory()
  finally:
    tracemalloc.stop()
  assert peak < 50 * 2**20, peak
  assert len(ns.notes) > 0


def test_tick_times_equal_pretty_midi():
  """The lazy tick -> time table gives pretty_midi's floats, tempo segment by segment."""
  import pretty_midi  # pylint: disable=g-import-not-at-top
  scales = [(0, 60 / (97.0 * 480)), (1000, 60 / (133.0 * 480)), (1000, 60 / (71.0 * 480)),
            (5555, 60 / (120.0 * 480))]
  pm = pretty_midi.PrettyMIDI(resolution=480)
  pm._tick_scales = scales  # pylint: disable=protected-access
  pm._update_tick_to_time(9000)  # pylint: disable=protected-access
  eager = pm._PrettyMIDI__tick_to_time  # pylint: disable=protected-access
  lazy = midi._TickTimes(scales, 9000)  # pylint: disable=protected-access
  assert len(lazy) == len(eager)
  for t in (0, 1, 999, 1000, 1001, 5554, 5555, 5556, 9000):
    assert lazy[t] == eager[t], t


def test_filters_reproduce_the_preprocessing_script(big_dir):
  filters = midi.Filters.magenta_preprocess()
  counts = collections.Counter()
  dense = midi.read_midi(os.path.join(big_dir, 'dense_30k_notes.mid'))
  assert midi.quantized_parts(dense, filters=filters, counts=counts) == []
  long = midi.read_midi(os.path.join(big_dir, 'forty_minutes.mid'))
  assert midi.quantized_parts(long, filters=filters, counts=counts) == []
  assert counts == {'max_notes': 1, 'max_seconds': 1}
  with pytest.raises(midi.MidiError) as e:
    midi.quantized_parts(midi.read_midi(os.path.join(big_dir, 'tempo_2000_changes.mid')),
                         filters=filters)
  assert e.value.reason == 'filtered_parts'
  gap = midi.read_midi(os.path.join(big_dir, 'gap_1e8_ticks.mid'))
  assert len(midi.quantized_parts(gap, filters=filters)) == 1
  # Off by default: nothing dropped.
  assert len(midi.quantized_parts(dense)) == 1 and len(midi.quantized_parts(long)) == 1


def test_build_finishes_without_a_skip_and_reports_slowest(big_dir, tmp_path, reference):
  kinds = ('mel_2bar', 'trio_16bar')
  ext = conversion.extract('folder', kinds, 'magenta', str(tmp_path), big_dir, workers=2,
                      timeout_s=120, progress=False)
  sels = {k: conversion.select(ext, k) for k in kinds}
  rep = conversion.report(ext, sels)
  assert rep['files_skipped'] == 0 and rep['files_read'] == 4
  assert [p for p, _ in rep['slowest_files']][:1] != []
  assert {p for p, _ in rep['slowest_files']} == set(MD5)
  assert all(t >= 0 for _, t in rep['slowest_files'])
  for k in kinds:
    ref = reference[extract.REFERENCE_CONFIGS[k] + '/windows']
    assert rep['kinds'][k]['windows_before_dedup'] == len(ref)


BAD_FIXTURE = os.path.join(os.path.dirname(__file__), 'fixtures', 'magenta_bad_windows.npz')


def test_malformed_and_extreme_files_match_reference(tmp_path):
  """tests/make_bad_midi.py's corpus (without the blocking named pipe), magenta mode, against
  `magenta_bad_windows.npz` (the reference's windows.py over the same files): the same windows
  file by file, none lost, none extra. A good file with an extra empty track chunk, which
  pretty_midi (hence the reference) cannot read at all, is skipped as `empty_track` here and read
  without that track in paper mode."""
  import make_bad_midi  # pylint: disable=g-import-not-at-top
  base = os.path.join(conversion.FREEDOOM_DIR, 'freedoom1_D_VICTOR.mid')
  make_bad_midi.write_corpus(str(tmp_path), base)
  os.remove(tmp_path / 'hangs_on_open.mid')
  ref = np.load(BAD_FIXTURE)
  files, result, skipped = extract.extract_folder(str(tmp_path), 'magenta', log=lambda _: None)
  assert list(files) == list(ref['files'])
  # Skipped: only files the reference cannot read either (or with no notes: no windows there).
  assert sum(skipped.values()) == 8 and skipped['empty_track'] == 1
  for kind, (w, f) in result.items():
    key = extract.REFERENCE_CONFIGS[kind]
    ref_w, ref_f = ref[key + '/windows'], ref[key + '/file']
    for i, name in enumerate(files):
      a = collections.Counter(r.tobytes() for r in w[f == i])
      b = collections.Counter(r.tobytes() for r in ref_w[ref_f == i]) if ref_w.size else {}
      assert a == b, (kind, name, sum(a.values()), sum(b.values()))
  assert sum(len(w) for w, _ in result.values()) > 0
  # Paper mode recovers that file: the windows of the good file it was made from.
  recovered = os.path.join(tmp_path, 'empty_track_next_to_good.mid')
  got = encoding.extract_windows(midi.read_midi(recovered), encoding.window_spec('mel_2bar', 'paper'))
  want = encoding.extract_windows(midi.read_midi(base), encoding.window_spec('mel_2bar', 'paper'))
  assert len(want) > 0 and sorted(r.tobytes() for r in got) == sorted(r.tobytes() for r in want)
