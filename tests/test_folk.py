"""Folk ABC -> NoteSequence conversion (data_pipelines/folk.py), hand-checked on small tunes."""

import collections
import copy

import numpy as np
import pytest

from data_pipelines import encoding
from data_pipelines import folk

QPM = 120.0
SEC = 60.0 / QPM  # seconds per quarter note at the default tempo


def _notes(ns):
  """(pitch, onset, end) in quarter notes."""
  return [(n.pitch, round(n.start_time / SEC, 4), round(n.end_time / SEC, 4)) for n in ns.notes]


def _tune(body, meter='4/4', length='1/4', extra=''):
  return f'X:1\nT:test\nM:{meter}\nL:{length}\n{extra}K:C\n{body}\n'


def test_pickup_tie_rest():
  # Pickup G (1 quarter) is right-aligned in bar 0; c- tied over the bar line; a rest; a full
  # bar of rest; G=67, c=72, d=74, e=76.
  ns = folk.tune_to_note_sequence(_tune('G | c2 z c- | c d e2 | z4 | c4 |]'))
  assert _notes(ns) == [(67, 3, 4), (72, 4, 6), (72, 7, 9), (74, 9, 10), (76, 10, 12),
                        (72, 16, 20)]
  assert [(t.numerator, t.denominator, t.time) for t in ns.time_signatures] == [(4, 4, 0.0)]
  assert [t.qpm for t in ns.tempos] == [QPM]
  assert {n.program for n in ns.notes} == {0} and not any(n.is_drum for n in ns.notes)


def test_pickup_tune_windows_start_on_written_bar_lines():
  ns = folk.tune_to_note_sequence(_tune('G | c2 z c- | c d e2 | z4 | c4 |]'))
  w = encoding.extract_windows(ns, 'mel_2bar', 'paper')
  g, c = 2 + 67, 2 + 72
  first = [0] * 12 + [g, 0, 0, 0] + [c] + [0] * 7 + [encoding.NOTE_OFF, 0, 0, 0, c, 0, 0, 0]
  assert first in w.tolist()


def test_tempo_from_q_field():
  ns = folk.tune_to_note_sequence(_tune('c4 | d4 |]', extra='Q:1/2=60\n'))
  assert [t.qpm for t in ns.tempos] == [120.0]  # half note = 60 -> 120 quarter notes per minute


def test_three_four_tune_has_no_four_four_windows():
  ns = folk.tune_to_note_sequence(_tune('c2 d | e2 f | g3 | e2 d | c3 | d2 e | f2 g | c3 |]',
                                        meter='3/4'))
  assert [(t.numerator, t.denominator) for t in ns.time_signatures] == [(3, 4)]
  assert len(ns.notes) == 13
  for kind in ('mel_2bar', 'mel_16bar'):
    assert encoding.extract_windows(ns, kind, 'paper').shape[0] == 0


def test_short_bars_complement_or_pad():
  # "d2 :|" + "e2" complete one bar between them (repeat + pickup): kept together.
  ns = folk.tune_to_note_sequence(_tune('c4 | d2 :| e2 | f4 |]'), expand_repeats=False)
  assert _notes(ns) == [(72, 0, 4), (74, 4, 6), (76, 6, 8), (77, 8, 12)]
  # Played out: c d2 | c d2 + e2 (the repeated short bar completed by the pickup) | f.
  ns = folk.tune_to_note_sequence(_tune('c4 | d2 :| e2 | f4 |]'))
  assert _notes(ns) == [(72, 0, 4), (74, 4, 6), (72, 8, 12), (74, 12, 14), (76, 14, 16),
                        (77, 16, 20)]
  # An uncompleted short bar is padded with rest: the next bar starts on the bar line.
  ns = folk.tune_to_note_sequence(_tune('c4 | d2 | f4 |]'))
  assert _notes(ns) == [(72, 0, 4), (74, 4, 6), (77, 8, 12)]


def test_grace_notes_and_chord_symbols_dropped_chords_kept():
  ns = folk.tune_to_note_sequence(_tune('"G" {A}B2 c2 | [CEG]4 |]'))
  assert _notes(ns) == [(71, 0, 2), (72, 2, 4), (60, 4, 8), (64, 4, 8), (67, 4, 8)]


def test_free_meter_tune_is_skipped():
  # M:none (218 Essen tunes) has no bar grid; it is not read as 4/4.
  with pytest.raises(folk.TuneError, match='no_meter'):
    folk.tune_to_note_sequence(_tune('cdef gabc | c4 |]', meter='none'))


def test_eighth_note_unit_and_triplets_quantise():
  ns = folk.tune_to_note_sequence(_tune('(3cde c2 d2 e2 | f8 | g8 |]', length='1/8'))
  onsets = [p[1] for p in _notes(ns)]
  assert onsets[:3] == pytest.approx([0, 1 / 3, 2 / 3], abs=1e-3)
  assert onsets[3:] == [1, 2, 3, 4, 8]
  w = encoding.extract_windows(ns, 'mel_2bar', 'paper')
  # Triplet onsets 0, 4/3, 8/3 steps snap to steps 0, 1, 3; the next c is on step 4.
  assert w[0][:5].tolist() == [2 + 72, 2 + 74, 0, 2 + 76, 2 + 72]


def test_tune_without_notes_raises():
  with pytest.raises(folk.TuneError):
    folk.tune_to_note_sequence(_tune('z4 | z4 |]'))


def test_split_tunes_header_and_ids():
  text = '% comment\nL:1/8\n\nX:1\nT:a\nK:C\ncdef|\n\nX:7\nT:b\nK:C\ncdef|\n'
  tunes = folk.split_tunes(text, 'coll/f.abc')
  assert [t.path for t in tunes] == ['coll/f.abc#1', 'coll/f.abc#2']
  assert [t.ref for t in tunes] == ['1', '7']
  assert all(t.text.startswith('% comment\nL:1/8\n') for t in tunes)
  assert tunes[0].file_id != tunes[1].file_id  # titles differ
  again = folk.split_tunes(text.replace('X:7', 'X:99'), 'coll/g.abc')
  assert again[1].file_id == tunes[1].file_id  # the reference number is not content


def test_installed_corpus():
  tunes = folk.list_tunes()
  assert len(tunes) > 12_000
  assert {t.path.split('/')[0] for t in tunes} == set(folk.COLLECTIONS)
  # Essen "Das Hildebrandslied": 4/2 with a half-note pickup (ends on the first bar line,
  # 8 quarters in); a 4/2 bar is not 4/4, so it yields no windows.
  t = next(t for t in tunes if t.path == 'essenFolksong/altdeu10.abc#1')
  ns = folk.tune_to_note_sequence(t.text)
  first = ns.notes[0]
  assert first.pitch == 67
  assert (round(first.start_time / (60 / ns.tempos[0].qpm), 4),
          round(first.end_time / (60 / ns.tempos[0].qpm), 4)) == (6, 8)
  assert encoding.extract_windows(ns, 'mel_2bar', 'paper').shape[0] == 0
  w = encoding.extract_windows(folk.tune_to_note_sequence(
      next(t for t in tunes if t.path == 'airdsAirs/book1.abc#1').text), 'mel_2bar', 'paper')
  assert w.shape[1:] == (32,) and len(w) > 0 and w.dtype == np.int16


def test_voices_become_instruments():
  text = 'X:1\nT:two voices\nM:4/4\nL:1/4\nK:C\nV:1\nc4 | d4 | e4 |]\nV:2\nC4 | D4 | E4 |]\n'
  ns = folk.tune_to_note_sequence(text)
  assert sorted((n.instrument, n.pitch, round(n.start_time / SEC)) for n in ns.notes) == [
      (0, 72, 0), (0, 74, 4), (0, 76, 8), (1, 60, 0), (1, 62, 4), (1, 64, 8)]


def _pitches(body, **kwargs):
  return [n.pitch for n in folk.tune_to_note_sequence(_tune(body), **kwargs).notes]


C, D, E, F, G = 72, 74, 76, 77, 79


def test_repeats_and_endings_played_out():
  body = '|: c4 | d4 |1 e4 :|2 f4 || g4 |]'
  assert _pitches(body) == [C, D, E, C, D, F, G]
  assert _pitches(body, expand_repeats=False) == [C, D, E, F, G]  # the written form
  ns = folk.tune_to_note_sequence(_tune(body))
  # Played bars follow each other on the bar grid.
  assert [n.start_time / SEC for n in ns.notes] == [0, 4, 8, 12, 16, 20, 24]


def test_unmatched_end_repeats_repeat_their_own_section():
  # "A :| B :|" with no "|:": a player repeats each section (music21 alone would go back to
  # the start of the tune for B: A A B A A B).
  assert _pitches('c4 | d4 :| e4 | f4 :|') == [C, D, C, D, E, F, E, F]


def test_unexpandable_tune_falls_back_to_written_form(monkeypatch):
  body = '|: c4 | d4 :| e4 | f4 | g4 |]'
  assert _pitches(body) == [C, D, C, D, E, F, G]
  monkeypatch.setattr(folk, 'MAX_EXPANSION', 1)  # any expansion counts as a misreading now
  counts = collections.Counter()
  ns = folk.tune_to_note_sequence(_tune(body), counts=counts)
  assert [n.pitch for n in ns.notes] == [C, D, E, F, G]
  assert counts == {'repeats_not_expanded': 1}


def test_skeleton_expansion_equals_music21_on_tunes_with_endings():
  """`played_order` (music21's Expander on an empty-measure skeleton) plays the measures in the
  order music21's full `Expander` gives for the real part, on corpus tunes with 1st/2nd endings."""
  from music21 import repeat, stream  # pylint: disable=g-import-not-at-top
  from music21 import bar  # pylint: disable=g-import-not-at-top
  tunes = [t for t in folk.list_tunes(('oneills1850', 'ryansMammoth'))
           if '[1' in t.text or '|1' in t.text][::25][:12]
  assert len(tunes) >= 10
  checked = 0
  for t in tunes:
    part = folk.parse_tune(t.text).parts[0]
    measures = list(part.getElementsByClass(stream.Measure))
    order = folk.played_order(part, measures)
    full = copy.deepcopy(part)
    folk._close_open_sections(list(full.getElementsByClass(stream.Measure)), bar)  # pylint: disable=protected-access
    expander = repeat.Expander(full)
    if not expander.isExpandable():
      assert order is None
      continue
    assert order == expander.measureMap(), t.path
    assert len(order) > len(measures)
    checked += 1
  assert checked >= 8
