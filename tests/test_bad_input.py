"""A build over good MIDI files plus a corpus of malformed and extreme ones (tests/make_bad_midi.py).

The dataset must hold exactly the windows of the good files and of the extreme files that must be
read (`EXPECTED` None: an empty track, absurd tempo or length, huge ticks, 12,000 notes, 500 tempo
changes), and the report must name every bad file with its reason and a hint.
"""

import collections
import json
import os
import shutil
import sys
import time

import pytest

from data_pipelines import build
from data_pipelines import encoding
from data_pipelines import midi

sys.path.insert(0, os.path.dirname(__file__))
import make_bad_midi  # pylint: disable=g-import-not-at-top,wrong-import-position
from data_pipelines import conversion

GOOD = ('freedoom1_D_INTROA.mid', 'freedoom2_D_DEAD2.mid', 'freedoom2_D_READ_M.mid')
EMPTY_TRACK_BASE = 'freedoom1_D_VICTOR.mid'
TIMEOUT_S = 8.0


@pytest.fixture(scope='module')
def result(tmp_path_factory):
  root = tmp_path_factory.mktemp('bad_build')
  midi_dir = root / 'midi'
  bad_dir = midi_dir / 'bad'
  bad_dir.mkdir(parents=True)
  for f in GOOD:
    shutil.copy(os.path.join(conversion.FREEDOOM_DIR, f), midi_dir / f)
  make_bad_midi.write_corpus(str(bad_dir), os.path.join(conversion.FREEDOOM_DIR, EMPTY_TRACK_BASE))
  data_dir = str(root / 'tfds')
  t0 = time.monotonic()
  b = build.build('folder', 'mel_2bar', 'paper', data_dir, str(midi_dir), workers=2,
                  timeout_s=TIMEOUT_S, memory_gb=2.0)
  elapsed = time.monotonic() - t0
  rows = collections.Counter()
  for split in b.info.splits:
    ds = build.data_source('folder', 'mel_2bar', 'paper', split, data_dir)
    for i in range(len(ds)):
      rows[ds[i]['tokens'].tobytes()] += 1
  with open(os.path.join(b.data_dir, 'build_report.json')) as f:
    report = json.load(f)
  return rows, report, elapsed


def _good_windows(tmp_path):
  rows = set()
  paths = [os.path.join(conversion.FREEDOOM_DIR, f) for f in GOOD + (EMPTY_TRACK_BASE,)]
  make_bad_midi.write_corpus(str(tmp_path), os.path.join(conversion.FREEDOOM_DIR, EMPTY_TRACK_BASE))
  paths += [str(tmp_path / n) for n, allowed in make_bad_midi.EXPECTED.items()
            if allowed is None and n != 'empty_track_next_to_good.mid']
  for path in paths:
    ns = midi.read_midi(path)
    rows |= {r.tobytes() for r in encoding.extract_windows(ns, 'mel_2bar', 'paper')}
  return rows


def test_windows_are_exactly_the_good_ones(result, tmp_path):
  rows, _, _ = result
  assert set(rows) == _good_windows(tmp_path)
  assert all(n == 1 for n in rows.values())  # global dedup


def test_report_names_each_bad_file_with_its_reason(result):
  _, report, _ = result
  reason_of = {p: r for r, paths in report['skipped_files'].items() for p in paths}
  for name, allowed in make_bad_midi.EXPECTED.items():
    path = f'bad/{name}'
    if allowed is None:
      assert path not in reason_of, (path, reason_of.get(path))
    else:
      assert reason_of.get(path) in allowed, (path, reason_of.get(path), allowed)
  assert not any(p in reason_of for p in GOOD)
  assert report['files_read'] == len(GOOD) + sum(a is None for a in make_bad_midi.EXPECTED.values())
  assert report['files_skipped'] == sum(a is not None for a in make_bad_midi.EXPECTED.values())
  assert sum(report['skipped_by_reason'].values()) == report['files_skipped']
  # Every skip reason comes with what a user could do about it.
  assert set(report['skip_hints']) == set(report['skipped_by_reason'])
  assert all(len(h) > 20 for h in report['skip_hints'].values())
  # The slowest files are listed with their time; the hanging file ran its full timeout.
  slow = dict(report['slowest_files'])
  assert slow['bad/hangs_on_open.mid'] >= TIMEOUT_S


def test_hanging_file_costs_one_timeout(result):
  _, report, elapsed = result
  assert report['skipped_files']['timeout'] == ['bad/hangs_on_open.mid']
  assert elapsed < 120
