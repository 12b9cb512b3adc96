"""magenta mode reproduces the reference converters' windows on the Freedoom MIDI files.

tests/fixtures/magenta_windows.npz (SPEC.md section 9) holds what Magenta's MusicVAE converters
extract from data_pipelines/freedoom; every file must give the same multiset of windows.
"""

import collections
import os

import numpy as np
import pytest

from data_pipelines import encoding
from data_pipelines import extract
from data_pipelines import midi
from data_pipelines import midi_fast

FIXTURE = os.path.join(os.path.dirname(__file__), 'fixtures', 'magenta_windows.npz')
FREEDOOM = os.path.join(os.path.dirname(encoding.__file__), 'freedoom')
TOTALS = {'mel_2bar': 2206, 'mel_16bar': 6150, 'drums_2bar': 1587, 'trio_16bar': 3044}


@pytest.fixture(scope='module')
def reference():
  return np.load(FIXTURE)


@pytest.fixture(scope='module')
def freedoom_parts(reference):
  """Quantised parts of every fixture file (None for files we reject), read as builds read them
  (the fast reader; tests/test_midi_fast.py checks it equals the full one)."""
  parts = {}
  for i, name in enumerate(reference['files']):
    try:
      parts[i] = midi_fast.read_file_parts(os.path.join(FREEDOOM, str(name)),
                                           reject_empty_tracks=True)
    except midi.MidiError:
      parts[i] = None
  return parts


def _multiset(rows):
  return collections.Counter(r.tobytes() for r in rows)


@pytest.mark.parametrize('kind', list(TOTALS))
def test_magenta_windows_match_reference(kind, reference, freedoom_parts, record_property):
  key = extract.REFERENCE_CONFIGS[kind]
  ref_windows, ref_file = reference[key + '/windows'], reference[key + '/file']
  assert len(ref_windows) == TOTALS[kind]
  spec = encoding.window_spec(kind, 'magenta')
  matched = files_ok = files = 0
  bad = []
  for i, parts in freedoom_parts.items():
    ours = (np.zeros((0,) + spec.shape, np.int16) if parts is None else
            encoding.extract_windows(None, spec, parts=parts))
    assert ours.dtype == np.int16 and ours.shape[1:] == spec.shape
    theirs = ref_windows[ref_file == i]
    if not len(ours) and not len(theirs):
      continue
    files += 1
    a, b = _multiset(ours), _multiset(theirs)
    matched += sum((a & b).values())
    if a == b:
      files_ok += 1
    else:
      bad.append(f'{reference["files"][i]} (ours {len(ours)}, reference {len(theirs)})')
  summary = (f'{kind}: {matched} / {len(ref_windows)} windows, {files_ok} / {files} files'
             + (f'; differ: {", ".join(bad[:5])}' if bad else ''))
  print(summary)
  record_property('magenta_compat', summary)
  assert not bad and matched == len(ref_windows), summary


def test_extract_cli_reproduces_fixture(tmp_path, reference, monkeypatch):
  """The CLI writes the fixture's format; one small file, all kinds, byte-identical rows."""
  name = 'freedoom1_D_E1M1.mid'
  src = tmp_path / 'midi'
  src.mkdir()
  (src / name).write_bytes(open(os.path.join(FREEDOOM, name), 'rb').read())
  (src / 'broken.mid').write_bytes(b'not midi')
  out = tmp_path / 'w.npz'
  assert extract.main(['--mode=magenta', '--reference_names', f'--out={out}', str(src)]) == 0
  got = np.load(out)
  assert list(got['files']) == ['broken.mid', name]
  i = list(reference['files']).index(name)
  for kind in TOTALS:
    key = extract.REFERENCE_CONFIGS[kind]
    want = reference[key + '/windows'][reference[key + '/file'] == i]
    np.testing.assert_array_equal(got[key + '/windows'], want)
    assert (got[key + '/file'] == 1).all()
