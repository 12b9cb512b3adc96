"""Encoding rules on hand-made NoteSequences (SPEC sections 1-4), and the MIDI round trip."""

import os

import note_seq
import numpy as np
import pytest

from data_pipelines import encoding
from data_pipelines import midi
from data_pipelines import kinds

STEP = 0.125  # seconds per step at 120 qpm


def make_ns(notes, total_steps=None, qpm=120.0, time_signatures=((4, 4, 0),)):
  """notes: (pitch, start_step, end_step[, instrument, program, is_drum]) at 120 qpm."""
  ns = note_seq.NoteSequence(ticks_per_quarter=220)
  ns.tempos.add(qpm=qpm)
  for num, den, t in time_signatures:
    ns.time_signatures.add(numerator=num, denominator=den, time=t)
  step = 60.0 / qpm / 4
  for n in notes:
    pitch, start, end, inst, prog, drum = tuple(n) + (0, 0, False)[len(n) - 3:]
    ns.notes.add(pitch=pitch, start_time=start * step, end_time=end * step, velocity=100,
                 instrument=inst, program=prog, is_drum=drum)
  ns.total_time = max([n.end_time for n in ns.notes] + [(total_steps or 0) * step])
  return ns


def part_of(ns):
  [part] = midi.quantized_parts(ns)
  return part


def melodies(notes, kind='mel_2bar', mode='paper'):
  return encoding.extract_melodies(part_of(make_ns(notes)), encoding.window_spec(kind, mode))


def on(pitch, spec=None):
  return 2 + pitch - (spec.min_pitch if spec else 0)


def test_window_specs():
  assert kinds.KINDS == ('mel_2bar', 'drums_2bar', 'mel_16bar', 'mel_32bar', 'trio_16bar',
                         'mel_4bar', 'drums_4bar', 'trio_4bar')
  shapes = {'mel_2bar': (32,), 'drums_2bar': (32,), 'mel_16bar': (256,), 'mel_32bar': (512,),
            'trio_16bar': (256, 3), 'mel_4bar': (64,), 'drums_4bar': (64,), 'trio_4bar': (64, 3)}
  for kind in kinds.KINDS:
    for mode in kinds.MODES:
      assert encoding.window_spec(kind, mode).shape == shapes[kind]
  assert encoding.window_spec('mel_2bar', 'paper').part_vocab == (130,)
  assert encoding.window_spec('mel_2bar', 'magenta').part_vocab == (90,)
  assert encoding.window_spec('trio_16bar', 'magenta').part_vocab == (90, 90, 512)
  assert encoding.window_spec('drums_2bar').part_vocab == (512,)
  assert encoding.window_spec('mel_2bar', 'magenta').max_per_file == 5
  assert encoding.window_spec('mel_2bar', 'paper').max_per_file is None
  # The reference reads 2-bar melodies from programs 0..31 only, longer ones from any program.
  assert encoding.window_spec('mel_2bar', 'magenta').programs == encoding.LEAD_PROGRAMS
  assert encoding.window_spec('mel_4bar', 'magenta').programs is None
  assert encoding.window_spec('trio_4bar', 'magenta').trio_rule == 'coverage'
  with pytest.raises(ValueError):
    encoding.window_spec('mel_3bar')
  with pytest.raises(ValueError):
    encoding.window_spec('mel_2bar', 'tf')


def test_note_off_and_cut():
  # Note 60 for 4 steps, rest, 62 cut by 64 (no NOTE_OFF), 64 held to step 16 + 4.
  [m] = melodies([(60, 0, 4), (62, 8, 12), (64, 10, 20)])
  expect = np.zeros(32, np.int16)
  expect[[0, 4, 8, 10, 20]] = [on(60), 1, on(62), on(64), 1]
  np.testing.assert_array_equal(m, expect)


def test_highest_note_kept():
  [m] = melodies([(60, 0, 8), (67, 0, 4), (64, 0, 2)])
  assert m[0] == on(67) and m[4] == 1 and len(m) == 16


def test_short_note_inside_long_note():
  # A later onset cuts the held note; the melody then ends with the short note.
  [m] = melodies([(60, 0, 12), (72, 2, 3)])
  np.testing.assert_array_equal(m[:5], [on(60), 0, on(72), 1, 0])
  assert not m[4:].any()


def test_note_off_on_final_bar_line_is_dropped():
  [m] = melodies([(60, 0, 16)])
  assert len(m) == 16 and m[0] == on(60) and not m[1:].any()


def test_one_bar_gap_splits_melodies():
  # 15 silent steps after the note: one melody; 16: two melodies (each starts on a bar line).
  [m] = melodies([(60, 0, 2), (62, 17, 18)])
  assert len(m) == 32 and m[17] == on(62)
  m1, m2 = melodies([(60, 0, 2), (62, 18, 19)])
  assert len(m1) == 16 and len(m2) == 16 and m2[2] == on(62)


def _melodies_step_by_step(start, end, pitch, spb, gap_steps, length=None):
  """The melody rules written as one sequential pass (the statement `_melody_tracks` computes
  with arrays): notes by onset, highest first, one per onset; each note writes its note-on and
  NOTE_OFF and wipes whatever a previous note left from its onset on."""
  notes = sorted(zip(start.tolist(), (-pitch).tolist(), end.tolist()))
  kept = [n for i, n in enumerate(notes) if i == 0 or n[0] != notes[i - 1][0]]
  groups = [[kept[0]]] if kept else []
  for n in kept[1:]:
    if gap_steps is not None and n[0] - groups[-1][-1][2] >= gap_steps:
      groups.append([n])
    else:
      groups[-1].append(n)
  out = []
  for group in groups:
    written = {}
    for s, neg_p, e in group:
      written = {k: v for k, v in written.items() if k < s}
      written[s], written[e] = encoding.NUM_SPECIAL - neg_p, encoding.NOTE_OFF
    last_e = group[-1][2]
    if length is None:
      first = group[0][0] - group[0][0] % spb
      steps = -(-(last_e - first) // spb) * spb
      keep = min(steps, last_e - first + 1)
    else:
      first, steps, keep = 0, length, min(length, last_e + 1)
    events = np.zeros(steps, np.int16)
    for k, v in written.items():
      if 0 <= k - first < keep:
        events[k - first] = v
    out.append((first, events))
  return out


def test_melody_tracks_equal_the_step_by_step_rules():
  rng = np.random.default_rng(0)
  for trial in range(3000):
    n = int(rng.integers(1, 14))
    start = rng.integers(0, int(rng.integers(4, 200)), n)
    end = start + rng.integers(1, int(rng.integers(2, 60)), n)
    pitch = rng.integers(0, 128, n)
    length = int(rng.integers(16, 160)) if trial % 4 == 0 else None
    gap = None if length else (None, 16, 32)[trial % 3]
    got = encoding._melody_tracks(  # pylint: disable=protected-access
        start, end, pitch, 16, gap, length=length)
    want = _melodies_step_by_step(start, end, pitch, 16, gap, length=length)
    assert len(got) == len(want), trial
    for (f1, e1), (f2, e2) in zip(got, want):
      assert f1 == f2 and e1.dtype == np.int16, trial
      np.testing.assert_array_equal(e1, e2, err_msg=str(trial))


def test_windows_stride_and_rest():
  # 3 bars of melody -> 2 windows of 2 bars; a 1-bar gap leaves two 1-bar melodies: none.
  notes = [(60 + i, 4 * i, 4 * i + 2) for i in range(12)]
  spec = encoding.window_spec('mel_2bar')
  w = encoding.extract_windows(make_ns(notes), spec)
  assert w.shape == (2, 32) and w.dtype == np.int16
  np.testing.assert_array_equal(w[0][16:], w[1][:16])
  assert encoding.extract_windows(make_ns([(60, 0, 2), (62, 18, 19)]), spec).shape == (0, 32)


def test_pitch_range_and_programs():
  notes = [(10, 0, 4), (64, 4, 8), (40, 8, 12, 1, 40)]  # pitch 10 outside the piano range
  paper = encoding.window_spec('mel_2bar', 'paper')
  magenta = encoding.window_spec('mel_2bar', 'magenta')
  mel = encoding.extract_melodies(part_of(make_ns(notes)), paper)
  assert sorted(int(m[m >= 2][0]) for m in mel) == [on(10), on(40)]  # program 40 kept
  mel = encoding.extract_melodies(part_of(make_ns(notes)), magenta)
  assert len(mel) == 1 and mel[0][0] == NO_EVENT and mel[0][4] == on(64, magenta)
  # Class bounds of the magenta vocabulary.
  [m] = encoding.extract_melodies(part_of(make_ns([(21, 0, 2), (108, 4, 6)])), magenta)
  assert m[0] == 2 and m[4] == 89
  # 16-bar magenta melodies take any non-drum program.
  spec16 = encoding.window_spec('mel_16bar', 'magenta')
  assert len(encoding.extract_melodies(part_of(make_ns([(60, 0, 4, 0, 40)])), spec16)) == 1
  # Drum instruments are never melodies.
  assert encoding.extract_melodies(part_of(make_ns([(60, 0, 4, 9, 0, True)])), paper) == []


NO_EVENT = encoding.NO_EVENT


def test_leading_note_off_cleared():
  # The second window starts right where the first bar's note ends: NOTE_OFF there is cleared.
  notes = [(60, 0, 16), (62, 20, 22), (64, 36, 38)]
  w = encoding.extract_windows(make_ns(notes), encoding.window_spec('mel_2bar'))
  starts = sorted(int(r[0]) for r in w)
  assert starts == [NO_EVENT, on(60)]


def test_magenta_truncates_long_melodies():
  notes = [(60, 16 * b, 16 * b + 8) for b in range(120)]
  ns = make_ns(notes)
  magenta = encoding.window_spec('mel_16bar', 'magenta')
  paper = encoding.window_spec('mel_16bar', 'paper')
  part = part_of(ns)
  assert len(encoding.part_windows(part, magenta)) == 100 - 16 + 1
  assert len(encoding.part_windows(part, paper)) == 120 - 16 + 1
  # Identical windows: magenta dedups within the part, paper within the file.
  assert len(encoding.extract_windows(ns, magenta)) == 1
  assert len(encoding.extract_windows(ns, paper)) == 1


def test_drum_mapping_and_classes():
  spec = encoding.window_spec('drums_2bar')
  hits = [(36, 0), (38, 0), (42, 4), (35, 8), (46, 8), (51, 8), (25, 12), (49, 20)]
  ns = make_ns([(p, s, s + 1, 9, 0, True) for p, s in hits] + [(60, 0, 30)])
  [track] = encoding.extract_drum_tracks(part_of(ns), spec)
  expect = np.zeros(32, np.int16)
  expect[[0, 4, 8, 20]] = [1 | 2, 4, 1 | 8 | 256, 128]  # pitch 25 has no class: dropped
  np.testing.assert_array_equal(track, expect)
  w = encoding.extract_windows(ns, spec)
  np.testing.assert_array_equal(w, expect[None])
  for cls, pitches in enumerate(encoding.DRUM_CLASS_PITCHES):
    assert all(encoding.DRUM_PITCH_TO_CLASS[p] == cls for p in pitches)
    assert encoding.DRUM_PITCH_TO_CLASS[encoding.DRUM_OUTPUT_PITCHES[cls]] == cls


def test_drum_gap():
  spec = encoding.window_spec('drums_2bar')
  # 16 empty steps between hits end a track; 15 do not.
  one = make_ns([(36, s, s + 1, 9, 0, True) for s in (0, 16, 32)])
  assert [len(t) for t in encoding.extract_drum_tracks(part_of(one), spec)] == [48]
  two = make_ns([(36, s, s + 1, 9, 0, True) for s in (0, 17, 33)])
  assert [len(t) for t in encoding.extract_drum_tracks(part_of(two), spec)] == [16, 32]


@pytest.mark.parametrize('xp', ['numpy', 'jax'])
def test_drums_roll(xp):
  classes = np.array([[0, 1, 3, 511, 256]], np.int32)
  if xp == 'jax':
    jnp = pytest.importorskip('jax.numpy')
    classes = jnp.asarray(classes)
  roll = np.asarray(encoding.drums_roll(classes))
  assert roll.shape == (1, 5, 10) and roll.dtype == np.float32
  np.testing.assert_array_equal(roll[0, 0], [0] * 9 + [1])
  np.testing.assert_array_equal(roll[0, 1], [1] + [0] * 9)
  np.testing.assert_array_equal(roll[0, 2], [1, 1] + [0] * 8)
  np.testing.assert_array_equal(roll[0, 3], [1] * 9 + [0])
  np.testing.assert_array_equal(roll[0, 4], [0] * 8 + [1, 0])


def trio_ns(leads=1, lead_gap=None, bars=16):
  """A `bars`-bar trio: `leads` legato lead instruments (a note every 2 steps, the pitch rising
  by bar), one bass, one drum kit; no lead onsets in `lead_gap` = [start, end) steps."""
  notes = []
  for k in range(leads):
    notes += [(60 + 20 * k + s // 16, s, s + 2, k, 0) for s in range(0, 16 * bars, 2)
              if lead_gap is None or not lead_gap[0] <= s < lead_gap[1]]
  notes += [(40, s, s + 4, 5, 33) for s in range(0, 16 * bars, 8)]
  notes += [(36, s, s + 1, 9, 0, True) for s in range(0, 16 * bars, 4)]
  notes += [(50, 0, 4, 6, 60)]  # program 60 (brass): not a trio instrument
  return make_ns(notes, total_steps=16 * bars)


@pytest.mark.parametrize('mode', kinds.MODES)
def test_trio_cross_product(mode):
  spec = encoding.window_spec('trio_16bar', mode)
  w = encoding.extract_windows(trio_ns(leads=2, bars=17), spec)
  # 2 leads x 1 bass x 1 drums, 2 windows each (17 bars); paper mode keeps unique ones.
  assert w.shape[1:] == (256, 3)
  lead_pitches = sorted(int(r[0, 0]) for r in w)
  assert lead_pitches == [on(p, spec) for p in (60, 61, 80, 81)]
  assert len(w) == 4
  np.testing.assert_array_equal(w[0, :8, 2], [1, 0, 0, 0, 1, 0, 0, 0])
  assert w[0, 0, 1] == on(40, spec)
  assert len(encoding.extract_windows(trio_ns(leads=0), spec)) == 0


def test_trio_rest_rule_paper():
  spec = encoding.window_spec('trio_16bar', 'paper')
  # The lead is legato, so a gap [s, e) of onsets (e even) leaves e - s silent steps.
  assert len(encoding.extract_windows(trio_ns(), spec)) == 1
  assert len(encoding.extract_windows(trio_ns(lead_gap=(64, 78)), spec)) == 1   # 14 silent
  assert len(encoding.extract_windows(trio_ns(lead_gap=(64, 80)), spec)) == 1   # 16 silent
  assert len(encoding.extract_windows(trio_ns(lead_gap=(64, 82)), spec)) == 0   # 18 silent


def test_trio_coverage_rule_magenta():
  spec = encoding.window_spec('trio_16bar', 'magenta')
  # Coverage is widened by 2 bars: a 4-bar hole in the lead is tolerated, a 5-bar one is not.
  assert len(encoding.extract_windows(trio_ns(lead_gap=(64, 128)), spec)) == 1
  assert len(encoding.extract_windows(trio_ns(lead_gap=(64, 144)), spec)) == 0


def test_meter_filter_and_split():
  spec = encoding.window_spec('mel_2bar')
  notes = [(60 + (s % 7), s, s + 2) for s in range(0, 64, 2)]
  assert len(encoding.extract_windows(make_ns(notes, time_signatures=[(3, 4, 0)]), spec)) == 0
  assert len(encoding.extract_windows(make_ns(notes, time_signatures=[(2, 2, 0)]), spec)) == 3
  assert len(encoding.extract_windows(make_ns(notes, time_signatures=[]), spec)) == 3
  # 4/4 for two bars, then 6/8: only the first part gives a window.
  ns = make_ns(notes, time_signatures=[(4, 4, 0), (6, 8, 32 * STEP)])
  w = encoding.extract_windows(ns, spec)
  assert len(w) == 1 and w[0][0] == on(60)
  # A tempo change restarts the bar grid at the change.
  ns = make_ns([(60, 0, 2), (62, 20, 22), (64, 40, 42)])
  ns.tempos.add(qpm=60.0, time=20 * STEP)
  parts = midi.quantized_parts(ns)
  assert [p.start.tolist() for p in parts] == [[0], [0, 10]]  # 40 steps at 120 = 10 at 60 qpm


def test_dedup_rows():
  a = np.array([[3, 1], [1, 2], [3, 1]], np.int16)
  np.testing.assert_array_equal(encoding.dedup_rows(a), [[1, 2], [3, 1]])
  assert encoding.dedup_rows(a[:0]).shape == (0, 2)


def test_decode_melody():
  spec = encoding.window_spec('mel_2bar', 'magenta')
  tokens = np.zeros(32, np.int16)
  tokens[[0, 4, 6, 30]] = [on(60, spec), 1, on(62, spec), on(64, spec)]
  ns = encoding.windows_to_note_sequence(tokens, spec)
  got = [(n.pitch, n.start_time, n.end_time, n.velocity, n.is_drum) for n in ns.notes]
  assert got == [(60, 0.0, 0.5, 80, False), (62, 0.75, 3.75, 80, False), (64, 3.75, 4.0, 80, False)]


def test_decode_trio():
  spec = encoding.window_spec('trio_16bar', 'paper')
  tokens = np.zeros((256, 3), np.int16)
  tokens[0] = [on(72), on(36), 1 | 4]
  ns = encoding.windows_to_note_sequence(tokens, spec)
  got = sorted((n.instrument, n.program, n.is_drum, n.pitch) for n in ns.notes)
  assert got == [(0, 0, False, 72), (1, 33, False, 36), (9, 0, True, 36), (9, 0, True, 42)]


def _round_trip_ok(window, spec):
  """Windows that survive decoding: each melody part starts with a note in its first bar."""
  w = window.reshape(len(window), -1)
  for k, part in enumerate(spec.parts):
    if part == 'melody':
      onsets = np.flatnonzero(w[:, k] >= 2)
      if not len(onsets) or onsets[0] >= spec.steps_per_bar or (w[:onsets[0], k] == 1).any():
        return False
  return True


@pytest.mark.parametrize('mode', kinds.MODES)
def test_round_trip(tmp_path, mode):
  """window -> NoteSequence -> MIDI -> read -> window gives the window back."""
  rng = np.random.default_rng(0)
  files = sorted(f for f in os.listdir(FREEDOOM) if f.endswith('.mid'))[:12:3]
  nss = [midi.read_midi(os.path.join(FREEDOOM, f)) for f in files]
  checked = 0
  for kind in kinds.KINDS:
    spec = encoding.window_spec(kind, mode)
    pool = [w for ns in nss for w in encoding.extract_windows(ns, spec)]
    pool = [w for w in pool if _round_trip_ok(w, spec)]
    assert pool, kind
    for i in rng.choice(len(pool), min(4, len(pool)), replace=False):
      path = tmp_path / f'{kind}_{i}.mid'
      encoding.write_midi(encoding.windows_to_note_sequence(pool[i], spec), path)
      back = encoding.extract_windows(midi.read_midi(path), spec)
      assert len(back) == 1, (kind, len(back))
      np.testing.assert_array_equal(back[0], pool[i])
      checked += 1
  assert checked == 4 * len(kinds.KINDS)


FREEDOOM = os.path.join(os.path.dirname(encoding.__file__), 'freedoom')
