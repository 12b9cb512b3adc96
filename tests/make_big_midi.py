r"""Writes large, expressive and extreme (but valid) MIDI files: real music must not be skipped.

  python tests/make_big_midi.py OUT_DIR

Real collections hold files that the old count caps skipped: dense songs of 12k-28k notes,
expressive recordings with thousands of tempo changes, files with an absurd gap, 30+ minute
pieces. This script writes one deterministic file of each kind (same bytes on every run, a few
hundred KB in all, so no binary is committed):

  dense_30k_notes.mid      4/4, 120 qpm, 30,000 notes (lead chords, bass octaves, drums), ~320 bars
  tempo_2000_changes.mid   2,000 tempo changes after the initial tempo and one beat: 40 blocks
                           of 49 one-beat expressive tempo steps
                           then a 17-bar stretch at one tempo (long enough for 2- and 16-bar
                           windows); the one-beat parts are too short for any window
  gap_1e8_ticks.mid        a 24-bar song, then one delta of 10^8 ticks before the end of track
  forty_minutes.mid        40 minutes (400 bars at 40 qpm), lead, bass and drums

Every file has a lead (GM program 0, channel 1), a bass (program 33, channel 2) and drums
(channel 10), so all window kinds, trios included, see them. `tests/fixtures/magenta_big_windows.npz`
holds what the reference converters extract from these files (made once with
`../shared/tools/magenta/windows.py` in the magenta venv, see tests/test_big_midi.py).
"""

from __future__ import annotations

import argparse
import os
import random

import mido

TPB = 480                 # ticks per quarter
EIGHTH, SIXTEENTH = TPB // 2, TPB // 4
BAR = 4 * TPB
DRUMS = (36, 38, 42, 46, 45, 48, 50, 49, 51)
NAMES = ('dense_30k_notes.mid', 'tempo_2000_changes.mid', 'gap_1e8_ticks.mid',
         'forty_minutes.mid')


def _bar_patterns(rng, n, steps, lo, hi):
  """n one-bar patterns: `steps` pitches (0 = rest) on an even grid, from a small bank."""
  out = []
  for _ in range(n):
    out.append([0 if rng.random() < 0.15 else rng.randrange(lo, hi) for _ in range(steps)])
  return out


def _song(rng, bars, *, lead_step=EIGHTH, chord=1, bass_octave=False, drum_step=EIGHTH,
          drum_hits=1, start=0):
  """Notes (start_tick, end_tick, pitch, channel) of a `bars`-bar song starting at tick `start`.

  Each bar picks one of a few random bar patterns per instrument (so windows repeat a bit, like
  real songs, and the fixture compresses well).
  """
  lead_bank = _bar_patterns(rng, 6, BAR // lead_step, 60, 84)
  bass_bank = _bar_patterns(rng, 4, 4, 36, 48)
  drum_bank = [[rng.sample(DRUMS, drum_hits) for _ in range(BAR // drum_step)] for _ in range(4)]
  notes = []
  for b in range(bars):
    t0 = start + b * BAR
    for i, p in enumerate(rng.choice(lead_bank)):
      if p:
        for c in range(chord):
          notes.append((t0 + i * lead_step, t0 + (i + 1) * lead_step, p - 3 * c, 0))
    for i, p in enumerate(rng.choice(bass_bank)):
      p = p or 40
      notes.append((t0 + i * TPB, t0 + (i + 1) * TPB - 10, p, 1))
      if bass_octave:
        notes.append((t0 + i * TPB, t0 + (i + 1) * TPB - 10, p + 12, 1))
    for i, hits in enumerate(rng.choice(drum_bank)):
      for p in hits:
        notes.append((t0 + i * drum_step, t0 + i * drum_step + 30, p, 9))
  return notes


def _file(notes, meta=(), extra_track_end=0):
  """A type-1 MIDI file: track 0 holds `meta` [(tick, MetaMessage)], one track per channel."""
  mid = mido.MidiFile(type=1, ticks_per_beat=TPB)
  events = sorted(meta, key=lambda e: e[0])
  mid.tracks.append(_to_track(events))
  programs = {0: 0, 1: 33}
  for ch in (0, 1, 9):
    evs = []
    if ch in programs:
      evs.append((0, 0, mido.Message('program_change', channel=ch, program=programs[ch])))
    for s, e, p, c in notes:
      if c == ch:
        evs.append((s, 2, mido.Message('note_on', channel=ch, note=p, velocity=90)))
        evs.append((e, 1, mido.Message('note_off', channel=ch, note=p, velocity=0)))
    evs.sort(key=lambda e: (e[0], e[1]))
    mid.tracks.append(_to_track([(t, m) for t, _, m in evs],
                                extra_track_end if ch == 0 else 0))
  return mid


def _to_track(events, end_delta=0):
  track = mido.MidiTrack()
  now = 0
  for tick, msg in events:
    track.append(msg.copy(time=tick - now))
    now = tick
  track.append(mido.MetaMessage('end_of_track', time=end_delta))
  return track


def _tempo(qpm):
  return mido.MetaMessage('set_tempo', tempo=int(round(6e7 / qpm)))


def _four_four():
  return (0, mido.MetaMessage('time_signature', numerator=4, denominator=4))


def dense_30k_notes(rng):
  """30,000 notes in ~320 bars: 16th-note 4-note chords, bass octaves, two drum hits per 16th."""
  notes = _song(rng, 330, lead_step=SIXTEENTH, chord=4, bass_octave=True, drum_step=SIXTEENTH,
                drum_hits=2)
  notes = notes[:30_000]
  assert len(notes) == 30_000, len(notes)
  return _file(notes, [_four_four(), (0, _tempo(120))])


def tempo_2000_changes(rng):
  """40 x (49 one-beat tempo steps, then a 17-bar stable stretch): 2,000 tempo changes."""
  qpm = 100.0
  meta = [_four_four(), (0, _tempo(qpm))]  # the initial tempo, then one beat before the changes
  beats_per_block = 49 + 17 * 4
  for blk in range(40):
    t0 = TPB + blk * beats_per_block * TPB
    for k in range(50):  # 49 expressive steps + the stable tempo
      new = qpm
      while new == qpm:
        new = float(rng.randrange(70, 150))
      qpm = new
      meta.append((t0 + k * TPB, _tempo(qpm)))
  bars = 40 * beats_per_block // 4 + 1
  notes = _song(rng, bars)
  end = TPB + 40 * beats_per_block * TPB
  notes = [n for n in notes if n[1] <= end]
  assert len(meta) - 2 == 2000
  return _file(notes, meta)


def gap_1e8_ticks(rng):
  """A 24-bar song, then 10^8 ticks of nothing before the lead track ends."""
  return _file(_song(rng, 24), [_four_four(), (0, _tempo(120))], extra_track_end=10**8)


def forty_minutes(rng):
  """400 bars at 40 qpm = 40 minutes."""
  return _file(_song(rng, 400, lead_step=TPB, drum_step=TPB),
               [_four_four(), (0, _tempo(40))])


def write_corpus(out_dir: str) -> list[str]:
  """Writes the files of `NAMES` into `out_dir` (deterministic); returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  for name, fn in zip(NAMES, (dense_30k_notes, tempo_2000_changes, gap_1e8_ticks,
                              forty_minutes)):
    path = os.path.join(out_dir, name)
    fn(random.Random(name)).save(path)
    paths.append(path)
  return paths


def main():
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('out_dir')
  for path in write_corpus(ap.parse_args().out_dir):
    print(path, os.path.getsize(path), 'bytes')


if __name__ == '__main__':
  main()
