r"""Writes a corpus of malformed and extreme MIDI files into a folder (robustness tests of builds).

  python tests/make_bad_midi.py OUT_DIR [--good=data_pipelines/freedoom/freedoom1_D_E1M1.mid]

Each file is named after what is wrong with it; `EXPECTED` maps a name to the skip reasons the
build may report for it (None: the file must be read, like the reference reads it, and yield its
windows: extreme is not broken).
`--good` is a valid MIDI file used as the base of the truncated and empty-track cases.
"""

from __future__ import annotations

import argparse
import os
import random
import struct

import mido

# name -> acceptable skip reasons (None: must be read, not skipped)
EXPECTED = {
    'garbage.mid': {'unreadable', 'truncated'},
    'truncated.mid': {'truncated', 'unreadable'},
    'zero_tracks.mid': {'no_tracks', 'unreadable'},
    'header_only.mid': {'no_tracks', 'unreadable', 'truncated'},
    'empty_track_next_to_good.mid': None,
    'absurd_tempo.mid': None,
    'absurd_length.mid': None,
    'huge_tick.mid': None,
    'beyond_max_ticks.mid': {'corrupt_ticks'},
    'huge_note_count.mid': None,
    'many_time_changes.mid': None,
    'no_notes.mid': {'no_notes'},
    'empty_file.mid': {'unreadable', 'truncated', 'no_tracks'},
    'hangs_on_open.mid': {'timeout'},
}


def _track(events):
  t = mido.MidiTrack()
  t.extend(events)
  t.append(mido.MetaMessage('end_of_track', time=0))
  return t


def _save(mid, path):
  mid.save(path)


def _notes(n, step=120, pitch=60):
  out = []
  for i in range(n):
    p = pitch + (i % 12)
    out.append(mido.Message('note_on', note=p, velocity=80, time=0 if i == 0 else step // 2))
    out.append(mido.Message('note_off', note=p, velocity=0, time=step // 2))
  return out


def _empty_track_chunk() -> bytes:
  return b'MTrk' + struct.pack('>I', 0)


def write_corpus(out_dir: str, good: str) -> list[str]:
  """Writes every file of `EXPECTED` into `out_dir`; returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  rng = random.Random(0)
  p = lambda name: os.path.join(out_dir, name)  # noqa: E731

  with open(p('garbage.mid'), 'wb') as f:
    f.write(bytes(rng.randrange(256) for _ in range(4096)))

  with open(good, 'rb') as f:
    good_bytes = f.read()
  with open(p('truncated.mid'), 'wb') as f:
    f.write(good_bytes[:len(good_bytes) // 2])

  # MThd chunk declaring format 1, zero tracks.
  with open(p('zero_tracks.mid'), 'wb') as f:
    f.write(b'MThd' + struct.pack('>IHHH', 6, 1, 0, 480))
  # MThd declaring 3 tracks but none present.
  with open(p('header_only.mid'), 'wb') as f:
    f.write(b'MThd' + struct.pack('>IHHH', 6, 1, 3, 480))
  with open(p('empty_file.mid'), 'wb'):
    pass

  # The good file plus one MTrk chunk holding no event at all (not even end_of_track): pretty_midi
  # fails on the whole file; the reader must drop the empty track and keep the rest.
  ntracks = struct.unpack('>H', good_bytes[10:12])[0]
  fixed = good_bytes[:10] + struct.pack('>H', ntracks + 1) + good_bytes[12:] + _empty_track_chunk()
  with open(p('empty_track_next_to_good.mid'), 'wb') as f:
    f.write(fixed)

  mid = mido.MidiFile(ticks_per_beat=480)
  mid.tracks.append(_track([mido.MetaMessage('set_tempo', tempo=1)] + _notes(64)))
  _save(mid, p('absurd_tempo.mid'))

  # Two hours of one held note (Magenta's preprocessing script would drop it: > 30 minutes).
  mid = mido.MidiFile(ticks_per_beat=480)
  mid.tracks.append(_track([mido.Message('note_on', note=60, velocity=80, time=0),
                            mido.Message('note_off', note=60, velocity=0,
                                         time=480 * 2 * 60 * 120)]))
  _save(mid, p('absurd_length.mid'))

  # An event at tick ~2^28 with 1 tick per beat: readers that build a tick -> time table up to
  # the last tick (pretty_midi does) allocate gigabytes; ours computes times on demand.
  mid = mido.MidiFile(ticks_per_beat=1)
  mid.tracks.append(_track(_notes(8, step=2) + [
      mido.MetaMessage('text', text='far away', time=(1 << 28) - 1)]))
  _save(mid, p('huge_tick.mid'))

  # Past 1e10 ticks (40 maximal deltas): the reference's reader refuses it too.
  mid = mido.MidiFile(ticks_per_beat=480)
  mid.tracks.append(_track(_notes(8) + [
      mido.MetaMessage('text', text='.', time=(1 << 28) - 1) for _ in range(40)]))
  _save(mid, p('beyond_max_ticks.mid'))

  mid = mido.MidiFile(ticks_per_beat=480)
  mid.tracks.append(_track(_notes(12_000, step=8)))
  _save(mid, p('huge_note_count.mid'))

  # 500 alternating tempo changes, one per beat (the preprocessing script's limit: 100 parts).
  events = []
  for i in range(500):
    events.append(mido.MetaMessage('set_tempo', tempo=500_000 if i % 2 else 400_000,
                                   time=0 if i == 0 else 240))
    events.append(mido.Message('note_on', note=60, velocity=80, time=0))
    events.append(mido.Message('note_off', note=60, velocity=0, time=240))
  mid = mido.MidiFile(ticks_per_beat=480)
  mid.tracks.append(_track(events))
  _save(mid, p('many_time_changes.mid'))

  mid = mido.MidiFile(ticks_per_beat=480)
  mid.tracks.append(_track([mido.MetaMessage('set_tempo', tempo=500_000),
                            mido.Message('program_change', program=1, time=10)]))
  _save(mid, p('no_notes.mid'))

  # A named pipe with no writer: opening it for reading blocks forever, like a parser stuck in a
  # loop. Only the per-file timeout gets the build past it.
  hang = p('hangs_on_open.mid')
  if os.path.exists(hang):
    os.remove(hang)
  os.mkfifo(hang)
  return [p(n) for n in EXPECTED]


def main():
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('out_dir')
  ap.add_argument('--good', default=os.path.join(
      os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data_pipelines', 'freedoom',
      'freedoom1_D_E1M1.mid'))
  a = ap.parse_args()
  for path in write_corpus(a.out_dir, a.good):
    print(path)


if __name__ == '__main__':
  main()
