"""Structure measures (mvae_jax.structure): hand-built pieces with known answers, the baselines,
the report files, and the command on a smoke-trained run and on the Freedoom songs."""
import json
import math
import os
import pathlib

import numpy as np
import pytest

from mvae_jax import structure as S

ROOT = pathlib.Path(__file__).resolve().parents[1]
FREEDOOM = ROOT / 'data_pipelines' / 'freedoom'
C4 = 2 + 60  # note-on class of MIDI pitch 60 in paper mode (min_pitch 0)


def note(pitch):
  return 2 + pitch


def bar_of(onsets, length=16):
  """A melody bar: {step: pitch or 'off'} -> int [16] (holds elsewhere)."""
  b = np.zeros(length, np.int64)
  for step, p in onsets.items():
    b[step] = S.NOTE_OFF if p == 'off' else note(p)
  return b


# Four distinct bars of a C major tune (pitches 60..72); no note is tied over a bar line.
A1 = bar_of({0: 60, 4: 62, 8: 64, 12: 65, 15: 'off'})
A2 = bar_of({0: 67, 6: 65, 8: 64, 14: 'off'})
A3 = bar_of({0: 62, 2: 64, 4: 65, 8: 67, 12: 69, 15: 'off'})
A4 = bar_of({0: 72, 8: 71, 12: 'off'})
PHRASE = [A1, A2, A3, A4]


def piece(*bars):
  return np.concatenate(bars)[None]  # [1, time]


def transpose(bar, shift):
  return np.where(bar >= 2, bar + shift, bar)


# ----------------------------------------------------------------------------- repetition

def test_one_bar_repeated_scores_full_repetition():
  m = S.piece_measures(piece(*[A1] * 16), (False,))
  # Every bar after the first repeats it (the first can repeat nothing): 15 of 15.
  for key in ('repeat_bar', 'repeat_bar_transposed', 'repeat_2bar', 'repeat_4bar'):
    assert m[key][0] == 1.0, key
  assert m['empty_bars'][0] == 0.0
  assert m['similarity_lag1'][0] == pytest.approx(1.0)
  assert m['tonal_distance'][0] == pytest.approx(0.0, abs=1e-12)
  assert 'similarity_lag16' not in m  # 16 bars have no pairs 16 apart


def test_transposed_copy_counts_only_up_to_transposition():
  first = [A1, A2, A3, A4, A3, A1, A4, A2]  # 8 bars, 4 of them repeats of earlier bars
  second = [transpose(b, 5) for b in first]  # the same, a fourth up
  m = S.piece_measures(piece(*first, *second), (False,))
  assert m['repeat_bar'][0] == pytest.approx((4 + 4) / 15)
  # Bars 8..15 are transposed copies of bars 0..7: 4 + 8 = 12 of 15.
  assert m['repeat_bar_transposed'][0] == pytest.approx(12 / 15)
  # Aligned 4-bar phrases: (A1 A2 A3 A4) (A3 A1 A4 A2) and their transpositions.
  assert m['repeat_4bar'][0] == 0.0
  assert m['repeat_4bar_transposed'][0] == pytest.approx(2 / 3)
  # Similarity is octave-blind, not transposition-blind: bar 0 vs bar 8 (up a fourth) differ.
  sim = S.self_similarity(piece(*first, *second), drums=False)[0]
  assert sim[0, 8] < 1.0 and sim[0, 8] >= 0.5  # the same rhythm gives half the score


def test_transposition_with_a_changed_interval_is_no_repeat():
  other = A1.copy()
  other[8] = note(65)  # one interval changed
  m = S.piece_measures(piece(A1, transpose(other, 2), A2, A2), (False,))
  assert m['repeat_bar'][0] == pytest.approx(1 / 3)          # only A2 again
  assert m['repeat_bar_transposed'][0] == pytest.approx(1 / 3)


def test_bars_compare_by_what_sounds_not_by_tokens():
  # The same tokens in bars 1 and 3, but bar 1 continues a held E4 and bar 3 a held G4 for
  # its first four steps: not a repeat. Bars 0 and 2 hold their note to the bar line.
  tail = bar_of({4: 60, 8: 62, 12: 'off'})
  m = S.piece_measures(piece(bar_of({0: 64}), tail, bar_of({0: 67}), tail), (False,))
  assert m['repeat_bar'][0] == 0.0
  # Up to transposition bar 2 (a held G4) repeats bar 0 (a held E4), but bar 3 does not repeat
  # bar 1: the held note is part of the bar, and E4 -> C4 is not G4 -> C4.
  assert m['repeat_bar_transposed'][0] == pytest.approx(1 / 3)
  # With the same held note before it, the bar repeats.
  m = S.piece_measures(piece(bar_of({0: 64}), tail, bar_of({0: 64}), tail), (False,))
  assert m['repeat_bar'][0] == pytest.approx(2 / 3)


def test_empty_bars_never_count():
  held = np.zeros(16, np.int64)  # all hold: a sustained note, no onset
  whole = bar_of({0: 60})
  m = S.piece_measures(piece(whole, held, held, held, A1, held, held, held), (False,))
  assert m['empty_bars'][0] == pytest.approx(6 / 8)
  # Two non-empty bars (different): no repeat, although six identical all-hold bars follow.
  assert m['repeat_bar'][0] == 0.0
  silent = S.piece_measures(np.zeros((1, 256), np.int64), (False,))
  assert silent['empty_bars'][0] == 1.0
  assert math.isnan(silent['repeat_bar'][0]) and math.isnan(silent['similarity_lag1'][0])
  assert math.isnan(silent['tonal_distance'][0])
  assert S.summarize(silent)['repeat_bar']['n'] == 0


# ----------------------------------------------------------------------------- similarity

def test_similarity_hand_computed():
  a = bar_of({0: 60, 4: 62, 8: 64, 12: 65})
  b = bar_of({0: 72, 4: 62, 8: 67, 12: 69})  # same rhythm; C (an octave up) and D shared
  c = bar_of({0: 60, 8: 60})
  sim = S.self_similarity(piece(a, b, c, np.zeros(16, np.int64)), drums=False)[0]
  assert sim[0, 1] == pytest.approx(0.5 * (1.0 + 2 * 2 / 8))
  # c: onsets at 0 and 8 (both in a), pitch classes C and C (a has C at 0, E at 8).
  assert sim[0, 2] == pytest.approx(0.5 * (2 * 2 / 6 + 2 * 1 / 6))
  assert np.allclose(sim, sim.T, equal_nan=True)
  assert sim[0, 3] == 0.0 and math.isnan(sim[3, 3])


def test_lag_means_pick_out_the_form():
  # AABA-like song form on 4-bar phrases: phrase P, P, Q, P with Q unrelated to P.
  q = [bar_of({0: 61, 3: 63, 10: 66}), bar_of({2: 70, 5: 68}), bar_of({1: 66, 9: 61}),
       bar_of({7: 63})]
  m = S.piece_measures(piece(*PHRASE, *PHRASE, *q, *PHRASE), (False,))
  assert m['similarity_lag4'][0] > m['similarity_lag1'][0]
  assert m['similarity_lag8'][0] > m['similarity_lag2'][0]
  # Bars 8 apart: P-Q (4 pairs, low) and P-P (4 pairs, 1).
  assert 0.5 <= m['similarity_lag8'][0] < 1.0


def test_drum_similarity_and_repeats():
  beat = np.array([1 | 4, 0, 4, 0, 2 | 4, 0, 4, 0] * 2)  # kick+hat, hat, snare+hat, hat
  fill = np.array([2, 2, 2, 2, 16, 16, 32, 32, 64, 64, 2, 2, 128 | 1, 0, 0, 0])
  drums = np.concatenate([beat, beat, beat, fill] * 4)[None]
  m = S.piece_measures(drums, (True,))
  assert m['repeat_bar'][0] == pytest.approx(14 / 15)
  assert m['repeat_4bar'][0] == 1.0
  assert 'repeat_bar_transposed' not in m and 'tonal_distance' not in m
  assert m['similarity_lag4'][0] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- tonality

def test_tonal_distance_one_key_vs_modulating():
  one_key = piece(*PHRASE * 4)
  up = [transpose(b, 6) for b in PHRASE]  # a tritone away: the most distant key
  modulating = piece(*PHRASE, *PHRASE, *up, *up)
  d_one = S.piece_measures(one_key, (False,))['tonal_distance'][0]
  d_mod = S.piece_measures(modulating, (False,))['tonal_distance'][0]
  assert d_one == pytest.approx(0.0, abs=1e-12)
  assert d_mod > 0.2
  # min_pitch moves pitch classes but not distances between spans.
  assert S.piece_measures(modulating, (False,), min_pitch=21)['tonal_distance'][0] == \
      pytest.approx(d_mod)


def test_jensen_shannon_bounds():
  p = np.array([[1.0, 0.0], [0.5, 0.5]])
  q = np.array([[0.0, 1.0], [0.5, 0.5]])
  assert np.allclose(S.jensen_shannon(p, q), [1.0, 0.0])


# ----------------------------------------------------------------------------- baselines

def _bar_states(tokens):
  """Per bar, the sounding state of its steps (what a listener hears, ignoring re-strikes)."""
  n, t = tokens.shape
  return S.melody_state(tokens).reshape(n, t // 16, 16)


def test_shuffling_keeps_every_bar_and_destroys_the_form():
  rng = np.random.default_rng(0)
  tied = bar_of({0: 64})                        # E4 held over the next bar line
  cont = bar_of({8: 65, 12: 'off'})             # holds E4 for its first 8 steps
  structured = np.concatenate([*PHRASE, tied, cont, *PHRASE[2:]] * 2)
  batch = np.tile(structured, (200, 1))
  shuffled = S.shuffle_bars(batch, rng, (False,))[:, :, 0]
  assert shuffled.shape == batch.shape
  # Every bar sounds as before (the multiset of bars' sounding states is kept).
  before = np.sort(_bar_states(batch).reshape(-1, 16), axis=0)
  after = np.sort(_bar_states(shuffled).reshape(-1, 16), axis=0)
  assert np.array_equal(np.unique(_bar_states(batch)[0], axis=0),
                        np.unique(_bar_states(shuffled)[0], axis=0))
  assert np.array_equal(before, after)
  # A tied-into bar strikes E4 itself unless it follows the tied bar again; nothing else
  # gained an onset.
  bars = shuffled.reshape(200, 16, 16)
  states = _bar_states(shuffled)
  cont_state = _bar_states(piece(tied, cont))[0, 1]
  is_cont = (states == cont_state).all(axis=2)
  after_tied = np.zeros_like(is_cont)
  after_tied[:, 1:] = (bars[:, :-1] == tied).all(axis=2)
  restruck = (is_cont & ~after_tied).sum(axis=1)
  assert restruck.max() == 2
  assert np.array_equal((shuffled >= 2).sum(axis=1), (structured >= 2).sum() + restruck)
  orig = S.summarize(S.piece_measures(batch, (False,)))
  shuf = S.summarize(S.piece_measures(shuffled, (False,)))
  # 4-bar phrases P Q P Q: 2 of 3 repeat.
  assert orig['repeat_4bar']['mean'] == pytest.approx(2 / 3) and shuf['repeat_4bar']['mean'] < 0.3
  assert orig['similarity_lag8']['mean'] == pytest.approx(1.0)
  assert shuf['similarity_lag8']['mean'] < 0.6
  assert shuf['similarity_lag4']['mean'] < orig['similarity_lag4']['mean'] - 0.1
  # Bar repetition is a count of equal bars: order-free, so shuffling keeps it (up to the
  # re-struck tie, which makes `cont` a new bar).
  assert abs(shuf['repeat_bar']['mean'] - orig['repeat_bar']['mean']) < 0.1


def test_shuffling_writes_note_off_when_a_silent_start_follows_a_held_note():
  rests_first = bar_of({8: 60, 12: 'off'})       # starts silent (after an OFF)
  held = bar_of({0: 67})                         # ends sounding
  x = np.tile(np.concatenate([rests_first] + [held] * 3), (64, 1))
  out = S.shuffle_bars(x, np.random.default_rng(1), (False,))[:, :, 0]
  assert np.array_equal(np.sort(_bar_states(x).reshape(-1, 16), axis=0),
                        np.sort(_bar_states(out).reshape(-1, 16), axis=0))
  # In some shuffles rests_first follows a held bar: its first step became a NOTE_OFF.
  assert (out.reshape(64, 4, 16)[:, :, 0] == S.NOTE_OFF).any()


def test_trio_parts_measured_separately_and_shuffled_together():
  rng = np.random.default_rng(2)
  n = 32
  lead = np.tile(np.concatenate(PHRASE * 4), (n, 1))
  bass = np.tile(np.concatenate([transpose(b, -24) for b in PHRASE[::-1]] * 4), (n, 1))
  beat = np.array([1 | 4, 0, 4, 0, 2 | 4, 0, 4, 0] * 2)
  drums = np.tile(np.concatenate([beat, beat, beat, np.array([2] * 16)] * 4), (n, 1))
  trio = np.stack([lead, bass, drums], -1)
  m = S.piece_measures(trio, (False, False, True))
  assert set(k.split('/')[0] for k in m) == {'lead', 'bass', 'drums'}
  assert 'drums/repeat_bar_transposed' not in m and 'drums/tonal_distance' not in m
  assert m['lead/repeat_4bar'][0] == 1.0 and m['drums/repeat_bar'][0] == pytest.approx(14 / 15)
  shuffled = S.shuffle_bars(trio, rng, (False, False, True))
  # One permutation per piece for all parts: the (lead, bass, drums) bars stay together.
  def bars(t):
    lead, bass = _bar_states(t[:, :, 0]), _bar_states(t[:, :, 1])
    drum_bars = t[:, :, 2].reshape(n, 16, 16)
    return {tuple(np.concatenate([lead[i, b], bass[i, b], drum_bars[i, b]]))
            for i in range(n) for b in range(16)}
  assert bars(shuffled) == bars(trio)
  ms = S.summarize(S.piece_measures(shuffled, (False, False, True)))
  assert ms['lead/repeat_4bar']['mean'] < 0.5 and ms['drums/repeat_4bar']['mean'] < 1.0


def test_concatenated_short_pieces():
  held_end = bar_of({0: 60, 8: 62})             # ends on a sounding D4
  hold_start = bar_of({8: 64, 12: 'off'})       # starts with holds (in silence)
  two_bar = np.stack([np.concatenate([A1, held_end]), np.concatenate([hold_start, A2])] * 8)
  joined = S.concatenate_pieces(two_bar, 16, (False,))
  assert joined.shape == (2, 256, 1)
  # Where a piece that started silent follows a held note, a NOTE_OFF cuts that note.
  assert joined[0, 32, 0] == S.NOTE_OFF and joined[0, 0, 0] == A1[0]
  # Each 2-bar piece sounds as it did alone.
  alone = _bar_states(two_bar).reshape(2, 16, 16)
  assert np.array_equal(_bar_states(joined[:, :, 0]), alone)
  with pytest.raises(ValueError, match='too few'):
    S.concatenate_pieces(two_bar[:3], 16, (False,))
  with pytest.raises(ValueError, match='whole bars'):
    S.concatenate_pieces(two_bar[:, :20], 16, (False,))


def test_bad_inputs():
  with pytest.raises(ValueError, match='whole bars'):
    S.piece_measures(np.zeros((2, 20), np.int64), (False,))
  with pytest.raises(ValueError, match='integers'):
    S.piece_measures(np.zeros((2, 32)), (False,))
  with pytest.raises(ValueError, match='part'):
    S.piece_measures(np.zeros((2, 32, 3), np.int64), (False,))
  with pytest.raises(ValueError, match='non-negative'):
    S.piece_measures(-np.ones((2, 32), np.int64), (False,))


# ----------------------------------------------------------------------------- reports

def test_report_written_and_read_back(tmp_path):
  rng = np.random.default_rng(3)
  data = np.tile(np.concatenate([*PHRASE, *PHRASE, *PHRASE[::-1], *PHRASE]), (40, 1))
  sets = {'data': S.measure_set(data, (False,), pictures=2),
          'data, bars shuffled': S.measure_set(S.shuffle_bars(data, rng, (False,)), (False,)),
          'half': S.measure_set(np.concatenate([data[:20], S.shuffle_bars(data[20:], rng,
                                                                          (False,))[:, :, 0]]),
                                (False,))}
  paths = S.write_report(sets, str(tmp_path), reference='data', baseline='data, bars shuffled',
                         info={'kind': 'mel_16bar'})
  assert [os.path.basename(p) for p in paths] == ['structure.json', 'structure.md',
                                                  'self_similarity.png']
  back = S.read_report(str(tmp_path))
  assert back['info']['kind'] == 'mel_16bar'
  for name, s in sets.items():
    for metric, stats in s['metrics'].items():
      got = back['sets'][name]['metrics'][metric]['mean']
      assert (math.isnan(got) and math.isnan(stats['mean'])) or got == pytest.approx(stats['mean'])
  # Half the pieces intact: about halfway between shuffled (0) and the data (1).
  assert 0.3 < back['positions']['half']['repeat_4bar'] < 0.7
  assert back['positions']['half']['repeat_bar'] is None  # shuffling keeps it: no scale
  table = (tmp_path / 'structure.md').read_text()
  assert '| repeat_4bar |' in table and 'Position between' in table
  assert np.asarray(back['sets']['data']['mean_similarity']['melody']).shape == (16, 16)
  json.loads((tmp_path / 'structure.json').read_text())  # strict JSON (no NaN)


# ----------------------------------------------------------------------------- the command

def test_cli_on_freedoom_trios(tmp_path, capsys):
  # Eight Freedoom songs (one without a trio window) and a file that is no MIDI file.
  songs = tmp_path / 'songs'
  songs.mkdir()
  for name in ('BUNNY', 'E1M1', 'E1M2', 'E1M4', 'E1M6', 'E1M7', 'E1M9', 'E2M2'):
    (songs / f'freedoom1_D_{name}.mid').write_bytes((FREEDOOM / f'freedoom1_D_{name}.mid')
                                                    .read_bytes())
  (songs / 'junk.mid').write_bytes(b'not a MIDI file')
  out = tmp_path / 'trio'
  assert S.main([f'--midi_dir={songs}', '--kind=trio_16bar', f'--out={out}',
                 '--pictures=2']) == 0
  printed = capsys.readouterr()
  assert '| lead/repeat_4bar |' in printed.out
  assert 'read 331 windows from 7 of 9 MIDI files' in printed.err
  back = S.read_report(str(out))
  assert list(back['sets']) == ['MIDI (songs)', 'MIDI (songs), bars shuffled']
  assert '331 windows from 7 of 9 files (1 unreadable)' in back['info']['sets']['MIDI (songs)']
  data = back['sets']['MIDI (songs)']
  assert data['pieces'] == 331 and data['bars'] == 16
  shuffled = back['sets']['MIDI (songs), bars shuffled']
  # Real songs repeat 4-bar phrases; shuffled bars much less.
  for part in ('lead', 'bass', 'drums'):
    assert data['metrics'][f'{part}/repeat_4bar']['mean'] > \
        shuffled['metrics'][f'{part}/repeat_4bar']['mean'] + 0.1
    assert (out / f'self_similarity_{part}.png').stat().st_size > 1000
  assert data['metrics']['lead/similarity_lag8']['mean'] > \
      shuffled['metrics']['lead/similarity_lag8']['mean']


def test_cli_on_a_trained_run(tmp_path, make_config, capsys):
  from mvae_jax import trainer
  from tests.test_generate import smoke_run
  workdir = str(tmp_path / 'mel16')
  # One step, no periodic eval: the command needs a checkpoint, not a good model.
  trainer.train_and_evaluate(make_config('melody16:smoke', **{
      'train.num_steps': 1, 'train.checkpoint_every_steps': 1, 'eval.every_steps': 0}), workdir)
  short = smoke_run('melody2', tmp_path / 'runs')  # an initialised 2-bar model
  capsys.readouterr()
  # Two batches of 4 (8 x 8 2-bar samples in two of 32): one compiled decoder per model.
  assert S.main([f'--workdir={workdir}', '--num=8', '--batch_size=4', f'--concat_from={short}',
                 '--pictures=1']) == 0
  printed = capsys.readouterr()
  out = os.path.join(workdir, 'structure')
  back = S.read_report(out)
  names = list(back['sets'])
  assert names[:2] == ['data (freedoom eval)', 'data (freedoom eval), bars shuffled']
  assert names[2] == 'samples (mel16, T=0.5)' and names[3].startswith('2-bar samples joined')
  assert back['sets']['samples (mel16, T=0.5)']['pieces'] == 8
  assert back['sets'][names[3]]['pieces'] == 8 and back['sets'][names[3]]['bars'] == 16
  assert back['reference'] == names[0] and back['baseline'] == names[1]
  # The progress line (non-terminal: every 15 s, and the last one).
  assert '[sampling samples (mel16, T=0.5)] 8/8 pieces' in printed.err
  assert printed.out.splitlines()[-1].endswith('self_similarity.png')
  # Bad command lines: one line, status 2; a missing run: status 1.
  for argv, status, words in (
      (['--num=0', f'--workdir={workdir}'], 2, 'at least 1'),
      ([], 2, 'nothing to measure'),
      (['--temperature=nan', f'--workdir={workdir}'], 2, 'finite'),
      ([f'--midi_dir={FREEDOOM}'], 2, '--kind'),
      ([f'--midi_dir={FREEDOOM}', '--kind=mel_2bar'], 2, '4 or more'),
      ([f'--midi_dir={FREEDOOM}', '--kind=trio_16bar', f'--concat_from={short}'], 2,
       'no 2-bar model'),
      ([f'--workdir={tmp_path / "nope"}'], 1, 'not a mvae_jax run'),
      ([f'--config={ROOT / "configs" / "melody16.py"}:smoke', '--split=train', f'--data_dir={tmp_path}/x'], 1,
       'no built dataset')):
    assert S.main(argv) == status, argv
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ') and words in err[0], (argv, err)


def test_compare_reports_side_by_side(tmp_path, capsys):
  rng = np.random.default_rng(5)
  data = np.tile(np.concatenate([*PHRASE, *PHRASE, *PHRASE[::-1], *PHRASE]), (30, 1))
  shuffled = S.shuffle_bars(data, rng, (False,))
  real = {'data': S.measure_set(data, (False,)),
          'data, bars shuffled': S.measure_set(shuffled, (False,))}
  for name, samples in (('a', data[:10]), ('b', shuffled[:, :, 0])):
    S.write_report({**real, f'samples ({name})': S.measure_set(samples, (False,))},
                   str(tmp_path / name), reference='data', baseline='data, bars shuffled',
                   plots=False)
  out = tmp_path / 'cmp'
  assert S.main(['--compare', str(tmp_path / 'a'), str(tmp_path / 'b' / 'structure.json'),
                 '--labels', 'intact', 'shuffled', f'--out={out}']) == 0
  table = capsys.readouterr().out
  rows = {r.split(' | ')[0].strip('| '): r.split(' | ') for r in table.splitlines()[2:]
          if r.startswith('| ')}
  # The data rows once (both reports measured the same data), then one row per report.
  assert list(rows) == ['data', 'data, bars shuffled', 'intact', 'shuffled']
  col = S.COMPARE_METRICS.index('repeat_4bar') + 2
  assert float(rows['intact'][col]) == pytest.approx(
      real['data']['metrics']['repeat_4bar']['mean'], abs=5e-4)
  assert float(rows['intact'][col]) > float(rows['shuffled'][col]) + 0.5
  md = (out / 'compare.md').read_text()
  assert table == md + str(out / 'compare.md') + '\n'
  # Refusals: one line each, exit status 2 / 1.
  assert S.main(['--compare', str(tmp_path / 'a'), '--labels', 'x', 'y']) == 2
  assert S.main(['--compare', str(tmp_path / 'a'), '--kind=mel_16bar']) == 2
  assert S.main(['--midi_dir', str(tmp_path), '--kind=mel_16bar', '--labels', 'x']) == 2
  assert S.main(['--compare', str(tmp_path / 'nothing')]) == 1
  (tmp_path / 'bad.json').write_text('{"sets": 3}')
  assert S.main(['--compare', str(tmp_path / 'bad.json')]) == 1
  err = capsys.readouterr().err
  assert '2 names for 1 reports' in err and 'no structure report there' in err
  assert 'not a structure report' in err
