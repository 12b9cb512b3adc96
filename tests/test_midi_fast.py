"""The fast MIDI reader (data_pipelines/midi_fast.py) gives the full reader's parts, exactly.

The full reader (mido + pretty_midi + note-seq, `midi.quantized_parts(midi.read_midi(...))`) is
the one the reference uses; the fast one must give the same `QuantizedPart`s (every array, every
float-derived step) or the same skip reason, on every test corpus and on synthetic files with the
cases where MIDI readers disagree.
"""

import io
import os
import sys

import mido
import numpy as np
import pytest

from data_pipelines import midi
from data_pipelines import midi_fast

sys.path.insert(0, os.path.dirname(__file__))
import make_bad_midi  # pylint: disable=g-import-not-at-top,wrong-import-position
import make_big_midi  # pylint: disable=g-import-not-at-top,wrong-import-position
from data_pipelines import conversion

FIELDS = ('start', 'end', 'pitch', 'velocity', 'instrument', 'program', 'is_drum')


def _full(data, reject):
  try:
    ns = midi.midi_bytes_to_note_sequence(data, 'x.mid', reject_empty_tracks=reject)
    return midi.quantized_parts(ns)
  except midi.MidiError as e:
    return e.reason


def _fast(data, reject):
  try:
    return midi_fast.read_parts(data, 'x.mid', reject_empty_tracks=reject)
  except midi.MidiError as e:
    return e.reason


def _assert_same(data, name=''):
  for reject in (False, True):
    want, got = _full(data, reject), _fast(data, reject)
    if isinstance(want, str) or isinstance(got, str):
      assert got == want, (name, reject)
      continue
    assert len(got) == len(want), (name, reject)
    for k, (a, b) in enumerate(zip(got, want)):
      for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f'{name} part {k} {f}')
      assert ((a.total_steps, a.steps_per_bar, a.qpm)
              == (b.total_steps, b.steps_per_bar, b.qpm)), name


def _takes_fast_path(data) -> bool:
  try:
    midi_fast._piece(data, 'x.mid', False)  # pylint: disable=protected-access
    return True
  except midi_fast._Fallback:  # pylint: disable=protected-access
    return False


def _bytes(*tracks, ticks_per_beat=480) -> bytes:
  mid = mido.MidiFile(ticks_per_beat=ticks_per_beat)
  for events in tracks:
    t = mido.MidiTrack()
    t.extend(events)
    mid.tracks.append(t)
  buf = io.BytesIO()
  mid.save(file=buf)
  return buf.getvalue()


def _on(note, time, velocity=90, channel=0):
  return mido.Message('note_on', note=note, velocity=velocity, time=time, channel=channel)


def _off(note, time, channel=0, zero_velocity_on=False):
  if zero_velocity_on:
    return mido.Message('note_on', note=note, velocity=0, time=time, channel=channel)
  return mido.Message('note_off', note=note, velocity=64, time=time, channel=channel)


def _tempo(bpm, time=0):
  return mido.MetaMessage('set_tempo', tempo=mido.bpm2tempo(bpm), time=time)


def _melody(n=64, step=240, channel=0, pitch=60):
  out = []
  for i in range(n):
    out += [_on(pitch + i % 7, 0 if i == 0 else step // 2, channel=channel),
            _off(pitch + i % 7, step // 2, channel=channel, zero_velocity_on=i % 2 == 0)]
  return out


# Synthetic files with the cases where readers disagree; each has enough notes for windows.
SYNTHETIC = {
    # Two note-ons of one pitch, then one note-off: pretty_midi closes both there.
    'overlapping_same_pitch': [_melody(32) + [_on(60, 0), _on(60, 120), _off(60, 240),
                                              _off(60, 240)] + _melody(32)],
    # A note-off on its note-on's tick (zero length): the note is dropped; with an older open
    # note of the pitch, the older one closes and the new one stays open.
    'zero_length_notes': [_melody(16) + [_on(62, 0), _off(62, 0), _on(64, 60), _on(64, 180),
                                         _off(64, 0), _off(64, 300)] + _melody(32)],
    'note_off_before_on': [[_off(65, 0), _off(60, 10)] + _melody(48)],
    # Tempo and time signature events on a non-zero track: pretty_midi ignores them.
    'tempo_on_other_track': [[_tempo(100)] + _melody(40),
                             [_tempo(150, 960), mido.MetaMessage('time_signature', numerator=3,
                                                                 denominator=4, time=0)]
                             + _melody(40, channel=1)],
    'tempo_and_meter_changes': [[_tempo(97), _tempo(97, 1920), _tempo(133, 1920),
                                 mido.MetaMessage('time_signature', numerator=3, denominator=4,
                                                  time=7680),
                                 mido.MetaMessage('time_signature', numerator=4, denominator=4,
                                                  time=3840), _tempo(71, 0)],
                                _melody(200, step=180)],
    # A program change while a note sounds: the note goes to the program at its note-off.
    'program_change_mid_note': [[mido.Message('program_change', program=33, time=0), _on(40, 0),
                                 mido.Message('program_change', program=5, time=100),
                                 _off(40, 100)] + _melody(40) + _melody(30, channel=9, pitch=36)],
    'same_channel_two_tracks': [_melody(40), _melody(40, step=120), _melody(40, channel=9,
                                                                            pitch=35)],
    # Zero-length drum hits (every other one) next to real ones.
    'drums_zero_length': [[x for i in range(64) for x in (_on(36 + i % 6, 120, channel=9),
                                                          _off(36 + i % 6, 60 * (i % 2),
                                                               channel=9))]],
    'resolution_96': [_melody(64, step=48)],
}


def _synthetic(name, ticks_per_beat=480):
  tracks = SYNTHETIC[name]
  return _bytes(*tracks, ticks_per_beat=96 if name == 'resolution_96' else ticks_per_beat)


@pytest.mark.parametrize('name', sorted(SYNTHETIC))
def test_synthetic_cases_equal_the_full_reader(name):
  data = _synthetic(name)
  assert _takes_fast_path(data), name
  _assert_same(data, name)
  assert not isinstance(_fast(data, False), str) and _fast(data, False), name


def test_running_status_and_sysex():
  data = _synthetic('overlapping_same_pitch')
  # mido writes running status already; check it is there, then add a sysex (full path).
  raw = bytearray(data)
  assert raw.count(b'\x90') < sum(1 for m in SYNTHETIC['overlapping_same_pitch'][0]
                                  if m.type == 'note_on')
  _assert_same(bytes(raw), 'running status')
  with_sysex = _bytes([mido.Message('sysex', data=[1, 2, 3])] + _melody(40))
  assert not _takes_fast_path(with_sysex)
  _assert_same(with_sysex, 'sysex')


def test_freedoom_equals_the_full_reader_and_takes_the_fast_path():
  names = sorted(f for f in os.listdir(conversion.FREEDOOM_DIR) if f.endswith('.mid'))
  assert len(names) > 60
  for name in names:
    with open(os.path.join(conversion.FREEDOOM_DIR, name), 'rb') as f:
      data = f.read()
    assert _takes_fast_path(data), name
    _assert_same(data, name)


def test_big_and_malformed_corpora_equal_the_full_reader(tmp_path):
  make_big_midi.write_corpus(str(tmp_path / 'big'))
  make_bad_midi.write_corpus(str(tmp_path / 'bad'),
                             os.path.join(conversion.FREEDOOM_DIR, 'freedoom1_D_VICTOR.mid'))
  os.remove(tmp_path / 'bad' / 'hangs_on_open.mid')
  for folder in ('big', 'bad'):
    for name in sorted(os.listdir(tmp_path / folder)):
      with open(tmp_path / folder / name, 'rb') as f:
        _assert_same(f.read(), name)


def test_corruptions_of_a_real_file_equal_the_full_reader():
  """Byte flips and cuts of a real file: the fast path accepts only what it reads exactly."""
  with open(os.path.join(conversion.FREEDOOM_DIR, 'freedoom1_D_E1M1.mid'), 'rb') as f:
    good = f.read()
  rng = np.random.default_rng(0)
  for k in range(40):
    raw = bytearray(good)
    if k % 4 == 0:
      raw = raw[:int(rng.integers(14, len(raw)))]
    else:
      for i in rng.integers(14, len(raw), size=1 + k % 3):
        raw[i] = int(rng.integers(256))
    _assert_same(bytes(raw), f'corruption {k}')
