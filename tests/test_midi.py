"""read_midi: every bad file raises MidiError with a reason; good files load."""

import collections
import io
import struct

import mido
import note_seq
import numpy as np
import pytest

from data_pipelines import midi


def _midi_bytes(notes=((60, 0, 480),), tempos=(500000,), extra_tracks=0, ticks_per_beat=480):
  """A type-1 MIDI file: one track with `notes` (pitch, start tick, end tick)."""
  mid = mido.MidiFile(ticks_per_beat=ticks_per_beat)
  track = mido.MidiTrack()
  mid.tracks.append(track)
  events = [(0, mido.MetaMessage('set_tempo', tempo=t)) for t in tempos[:1]]
  events += [(i * 480, mido.MetaMessage('set_tempo', tempo=t)) for i, t in enumerate(tempos) if i]
  for pitch, start, end in notes:
    events.append((start, mido.Message('note_on', note=pitch, velocity=90)))
    events.append((end, mido.Message('note_off', note=pitch, velocity=0)))
  events.sort(key=lambda e: e[0])
  now = 0
  for tick, msg in events:
    track.append(msg.copy(time=tick - now))
    now = tick
  for _ in range(extra_tracks):
    mid.tracks.append(mido.MidiTrack())
  buf = io.BytesIO()
  mid.save(file=buf)
  return buf.getvalue()


def _write(tmp_path, name, data):
  path = tmp_path / name
  path.write_bytes(data)
  return path


def test_good_file(tmp_path):
  ns = midi.read_midi(_write(tmp_path, 'good.mid', _midi_bytes()))
  assert [(n.pitch, n.start_time, n.end_time) for n in ns.notes] == [(60, 0.0, 0.5)]
  assert ns.filename == 'good.mid'


@pytest.mark.parametrize('data, reason', [
    (b'this is not a midi file at all' * 4, 'unreadable'),
    (b'', 'truncated'),
    (b'MThd\x00\x00\x00\x06\x00\x01\x00\x00\x01\xe0', 'no_tracks'),
])
def test_broken_files(tmp_path, data, reason):
  path = _write(tmp_path, 'bad.mid', data)
  with pytest.raises(midi.MidiError) as e:
    midi.read_midi(path)
  assert e.value.reason == reason
  assert isinstance(e.value, ValueError)
  assert 'bad.mid' in str(e.value) and reason in str(e.value)


def test_truncated_file(tmp_path):
  data = _midi_bytes(notes=[(60 + i, 480 * i, 480 * i + 240) for i in range(20)])
  with pytest.raises(midi.MidiError) as e:
    midi.read_midi(_write(tmp_path, 'cut.mid', data[:len(data) // 2]))
  assert e.value.reason == 'truncated'


def test_empty_track_still_loads(tmp_path):
  # A track chunk with no events at all: pretty_midi (and so note-seq) rejects the whole file.
  data = bytearray(_midi_bytes())
  data[10:12] = struct.pack('>H', 2)  # two tracks in the header
  data += b'MTrk\x00\x00\x00\x00'
  data = bytes(data)
  with pytest.raises(note_seq.MIDIConversionError):
    note_seq.midi_to_note_sequence(data)
  ns = midi.read_midi(_write(tmp_path, 'empty_track.mid', data))
  assert [n.pitch for n in ns.notes] == [60]


def test_missing_file(tmp_path):
  with pytest.raises(midi.MidiError) as e:
    midi.read_midi(tmp_path / 'nope.mid')
  assert e.value.reason == 'unreadable'


def test_no_notes(tmp_path):
  with pytest.raises(midi.MidiError) as e:
    midi.read_midi(_write(tmp_path, 'silent.mid', _midi_bytes(notes=())))
  assert e.value.reason == 'no_notes'


def test_no_size_caps(tmp_path):
  """Long pieces, dense pieces and absurd tempos are read: only time and memory bound a file."""
  path = _write(tmp_path, 'long.mid', _midi_bytes(
      notes=[(60, 0, 480), (62, 480 * 4000, 480 * 4001)]))  # 33 minutes at 120 qpm
  assert midi.read_midi(path).total_time > 30 * 60
  dense = _midi_bytes(notes=[(60 + i % 12, 8 * i, 8 * i + 8) for i in range(12_000)])
  assert len(midi.read_midi(_write(tmp_path, 'dense.mid', dense)).notes) == 12_000
  fast = midi.read_midi(_write(tmp_path, 'fast.mid', _midi_bytes(tempos=(1000,))))  # 60000 qpm
  assert fast.tempos[0].qpm == pytest.approx(60000)


def test_beyond_max_ticks(tmp_path):
  mid = mido.MidiFile(ticks_per_beat=480)
  track = mido.MidiTrack()
  track.append(mido.Message('note_on', note=60, velocity=90, time=0))
  track.append(mido.Message('note_off', note=60, velocity=0, time=480))
  # MIDI deltas are at most 2^28 - 1: 40 of them pass 1e10 ticks.
  track.extend(mido.MetaMessage('text', text='.', time=(1 << 28) - 1) for _ in range(40))
  mid.tracks.append(track)
  buf = io.BytesIO()
  mid.save(file=buf)
  with pytest.raises(midi.MidiError) as e:
    midi.read_midi(_write(tmp_path, 'far.mid', buf.getvalue()))
  assert e.value.reason == 'corrupt_ticks'


def test_many_time_changes(tmp_path):
  # A tempo change every quarter note: 20 parts, none skipped unless a filter asks for it.
  tempos = [500000 + 1000 * i for i in range(20)]
  ns = midi.read_midi(_write(tmp_path, 'rit.mid', _midi_bytes(
      notes=[(60, 480 * i, 480 * i + 240) for i in range(20)], tempos=tempos)))
  assert len(midi.split_on_time_changes(ns)) == 20
  assert len(midi.quantized_parts(ns)) == 20
  with pytest.raises(midi.MidiError) as e:
    midi.split_on_time_changes(ns, midi.Filters(max_parts=10))
  assert e.value.reason == 'filtered_parts'


def test_filters_velocities_and_metric_positions():
  ns = note_seq.NoteSequence()
  ns.tempos.add(qpm=120.0)
  for i in range(8):  # every onset on a beat, one velocity
    ns.notes.add(pitch=60, velocity=80, start_time=0.5 * i, end_time=0.5 * i + 0.25)
  ns.total_time = 4.0
  counts = collections.Counter()
  assert len(midi.quantized_parts(ns, filters=midi.Filters.magenta_preprocess())) == 1
  assert midi.quantized_parts(ns, filters=midi.Filters(min_velocities=2), counts=counts) == []
  assert midi.quantized_parts(ns, filters=midi.Filters(min_metric_positions=2),
                              counts=counts) == []
  assert counts == {'min_velocities': 1, 'min_metric_positions': 1}
  ns.notes[3].velocity = 81
  ns.notes[3].start_time += 0.125  # a 16th after the beat
  assert len(midi.quantized_parts(ns, filters=midi.Filters(min_velocities=2,
                                                           min_metric_positions=2))) == 1


def test_quantize_grid():
  ns = note_seq.NoteSequence()
  ns.tempos.add(qpm=120.0)
  # 1 step = 0.125 s; onsets snap to the nearest step, a too-short note lasts one step.
  for start, end in [(0.0, 0.5), (0.06, 0.07), (0.2, 0.3)]:
    ns.notes.add(pitch=60, velocity=80, start_time=start, end_time=end)
  ns.total_time = 0.5
  part = midi.quantize(ns)
  np.testing.assert_array_equal(part.start, [0, 0, 2])
  np.testing.assert_array_equal(part.end, [4, 1, 3])
  assert part.total_steps == 4 and part.steps_per_bar == 16.0


def test_quantized_parts_meters():
  ns = note_seq.NoteSequence()
  ns.tempos.add(qpm=120.0)
  ns.time_signatures.add(numerator=4, denominator=4, time=0.0)
  ns.time_signatures.add(numerator=3, denominator=4, time=2.0)   # after one 4/4 bar
  ns.time_signatures.add(numerator=2, denominator=2, time=3.5)   # 2/2: 16 steps per bar again
  for t in np.arange(0, 6, 0.5):
    ns.notes.add(pitch=60, velocity=80, start_time=t, end_time=t + 0.25)
  ns.total_time = 6.0
  parts = midi.quantized_parts(ns)
  # The 3/4 part is dropped; the 2/2 part restarts at step 0.
  assert [(p.start[0], len(p.start)) for p in parts] == [(0, 4), (0, 5)]
