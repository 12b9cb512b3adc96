r"""Long-term structure of 16- and 32-bar pieces: repetition, self-similarity, tonal stability.

  python -m mvae_jax.structure --workdir=runs/melody16_small             # samples vs the data
  python -m mvae_jax.structure --workdir=RUN --concat_from=runs/melody2   # + 2-bar samples joined
  python -m mvae_jax.structure --config=configs/melody16.py:small --split=eval  # the data alone
  python -m mvae_jax.structure --midi_dir=DIR --kind=trio_16bar          # windows of a MIDI folder
  python -m mvae_jax.structure --compare RUN_A/structure RUN_B/structure --labels A B  # side by side

Accuracy per step says nothing about whether a piece repeats itself, builds phrases or stays in
a key. This module measures those three things on token arrays (the model / dataset layout:
int [pieces, time, parts], 16 steps per bar) and compares named sets of pieces: the data, the
data with its bars shuffled (every note kept, the order destroyed), samples of a trained run and
i.i.d. 2-bar samples of a 2-bar model joined end to end (local quality, no global plan). Where a
set lands between "bars shuffled" and "data" is its long-term structure. docs/STRUCTURE.md
describes the measures and the choices below in words.

Definitions (every one per part: melody; trio lead, bass and drums separately):

* Bar content (melody). The sounding state of a step is the latest event at or before it: a
  note-on sounds its pitch until a NOTE_OFF or the next note-on, and before the first event of
  the piece nothing sounds. A bar is the 16 (sounding state, onset?) pairs of its steps, so a
  bar that opens with the hold of a note struck in the previous bar carries that note's pitch:
  two all-hold bars are equal only if the same pitch (or silence) holds through both. Raw token
  equality would call any two all-hold bars equal.
* Empty bars. A bar with no onset (melody: no note-on; drums: no hit) is empty: silence or a
  held note only. Empty bars are never counted as repeats and are left out of every
  denominator, so a silent or sustained sample cannot score structure from nothing. Their share
  is reported as `empty_bars`.
* Repetition. A bar repeats if it is non-empty and equal to an earlier bar of the piece. Per
  piece: repeats / (non-empty bars - 1) (the first non-empty bar cannot repeat anything; a
  piece of one bar played 16 times scores 1.0; undefined with fewer than 2 non-empty bars).
  Phrases of 2 and 4 bars are aligned to the window (bars 0-1, 2-3, ... / 0-3, 4-7, ...) and
  compared with the earlier aligned phrases: musical repeats come at distances that are
  multiples of the phrase length, which an aligned grid catches whatever bar the window starts
  on. A phrase is non-empty when it has an onset.
* Up to transposition (melody only). The same onsets, the same rests and every sounding pitch
  shifted by one constant over the whole bar (phrase): pitches are taken relative to the first
  sounding pitch of the bar (phrase). An exact repeat is also a transposed one (shift 0).
* Similarity of two bars, in [0, 1]: the mean of two Dice coefficients, 2|A n B| / (|A| + |B|),
  one of the onset positions (rhythm; of 16 steps) and one of the (onset position, pitch class)
  pairs (the melody's notes, octave-blind); drums: of the hit positions and of the (position,
  drum class) pairs. 1 for bars with the same rhythm on the same pitch classes, 0 for bars that
  share no onset position. Held notes do not count (onsets only); two empty bars have no
  similarity (NaN, left out of every mean), an empty and a non-empty bar have 0.
* Self-similarity: the bar x bar matrix of a piece, and per piece the mean of its diagonal at
  lag L (pairs of bars L apart) for L in 1, 2, 4, 8, 16 (16 only in 32-bar pieces), and over all
  pairs (`similarity_all`). A piece without structure is as similar at lag 8 as at lag 3; a song
  form peaks at 4 and 8.
* Tonal stability (melody only): the duration-weighted pitch-class histogram (each sounding
  step adds one to its pitch class) of each aligned 4-bar span against the whole piece's, by
  the Jensen-Shannon divergence in bits (0 = the same distribution, 1 = disjoint pitch classes),
  averaged over the spans where a note sounds. Low = one stable key throughout.

Baselines:

* `shuffle_bars`: each piece's bars in a random order (one permutation for all parts of a trio,
  so the band stays together). To keep every bar's notes, a bar whose first step is a hold
  gets the event that restores its own start: a note tied over the bar line from the original
  previous bar is struck again at the bar line (the only change to the notes), and a bar that
  started in silence gets a NOTE_OFF when the new previous bar ends on a sounding note.
* `concatenate_pieces`: consecutive pieces of a batch of short (2-bar) samples joined into
  long ones, with the same repair at the joins (each short piece starts in silence).

The library is numpy only, vectorised over pieces (seconds for thousands of 32-bar pieces); the
command line also loads a trained run (JAX) or a dataset (TFDS) when asked to.
"""
from __future__ import annotations

import json
import math
import os
import sys
import textwrap
import time
from typing import Any, Mapping, Sequence

import numpy as np

from data_pipelines import console, kinds
from data_pipelines.kinds import NO_EVENT, NOTE_OFF, NUM_SPECIAL, STEPS_PER_BAR

LAGS = (1, 2, 4, 8, 16)
PHRASE_BARS = (1, 2, 4)   # repetition of bars, 2-bar and 4-bar phrases
SPAN_BARS = 4             # tonal stability: spans of this many bars against the whole piece
CHUNK = 512               # pieces per vectorised block (bounds memory at [CHUNK, bars, bars, 16])
MAX_PICTURES = 16         # example pieces per set in a similarity picture

# The metrics of `piece_measures`, per part, in table order. Drums have no transposed repeats
# and no tonal stability (None in the summaries).
METRICS = (
    'empty_bars',
    'repeat_bar', 'repeat_bar_transposed',
    'repeat_2bar', 'repeat_2bar_transposed',
    'repeat_4bar', 'repeat_4bar_transposed',
    *(f'similarity_lag{lag}' for lag in LAGS), 'similarity_all',
    'tonal_distance',
)
MELODY_ONLY = ('repeat_bar_transposed', 'repeat_2bar_transposed', 'repeat_4bar_transposed',
               'tonal_distance')
# The metrics that measure structure (shuffling the bars changes them; `positions` uses them).
STRUCTURE_METRICS = tuple(m for m in METRICS if m != 'empty_bars')
METRIC_HELP = {
    'empty_bars': 'fraction of bars without an onset (silence or a held note only)',
    'repeat_bar': 'fraction of non-empty bars equal to an earlier bar',
    'repeat_bar_transposed': 'the same, up to transposition',
    'repeat_2bar': 'fraction of non-empty aligned 2-bar phrases equal to an earlier one',
    'repeat_2bar_transposed': 'the same, up to transposition',
    'repeat_4bar': 'fraction of non-empty aligned 4-bar phrases equal to an earlier one',
    'repeat_4bar_transposed': 'the same, up to transposition',
    **{f'similarity_lag{lag}': f'mean similarity of bars {lag} apart' for lag in LAGS},
    'similarity_all': 'mean similarity of all pairs of bars',
    'tonal_distance': 'Jensen-Shannon divergence (bits) of 4-bar pitch-class histograms from '
                      "the piece's",
}


# ----------------------------------------------------------------------------- layout

def as_batch(tokens: Any, steps_per_bar: int = STEPS_PER_BAR) -> np.ndarray:
  """Token arrays int [n, time] or [n, time, parts] -> int64 [n, time, parts].

  Raises ValueError for anything else (floats, negative tokens, a length that is not whole bars).
  """
  x = np.asarray(tokens)
  if x.ndim == 2:
    x = x[:, :, None]
  if x.ndim != 3:
    raise ValueError(f'tokens must be [pieces, time] or [pieces, time, parts], got shape '
                     f'{x.shape}')
  if x.size and not np.issubdtype(x.dtype, np.integer):
    raise ValueError(f'tokens must be integers, got {x.dtype}')
  if x.shape[1] == 0 or x.shape[1] % steps_per_bar:
    raise ValueError(f'pieces of {x.shape[1]} steps are not whole bars of {steps_per_bar} steps')
  if x.size and x.min() < 0:
    raise ValueError('tokens must be non-negative')
  return x.astype(np.int64)


def _check_parts(x: np.ndarray, part_is_drums: Sequence[bool]) -> tuple[bool, ...]:
  part_is_drums = tuple(bool(d) for d in part_is_drums)
  if len(part_is_drums) != x.shape[2]:
    raise ValueError(f'{x.shape[2]} part(s) in the tokens, {len(part_is_drums)} in '
                     'part_is_drums')
  return part_is_drums


def melody_state(tokens: np.ndarray) -> np.ndarray:
  """The sounding state of each step: the latest event at or before it, [n, time] -> [n, time].

  Values: NOTE_OFF (1) where nothing sounds (also before the first event), else the note-on
  class (2 + pitch - min_pitch) of the sounding note.
  """
  n, t = tokens.shape
  idx = np.where(tokens != NO_EVENT, np.arange(t), -1)
  idx = np.maximum.accumulate(idx, axis=1)
  latest = np.take_along_axis(tokens, np.maximum(idx, 0), axis=1)
  return np.where(idx >= 0, latest, NOTE_OFF)


def _row_ids(rows: np.ndarray) -> np.ndarray:
  """Equal rows get equal ids: int [..., features] -> int64 [...] (exact, no hashing)."""
  lead = rows.shape[:-1]
  flat = np.ascontiguousarray(rows.reshape(-1, rows.shape[-1]))
  if flat.shape[0] == 0:
    return np.zeros(lead, np.int64)
  void = flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1])))[:, 0]
  _, inverse = np.unique(void, return_inverse=True)
  return inverse.reshape(lead).astype(np.int64)


# ----------------------------------------------------------------------------- repetition

def _segment_codes(state: np.ndarray, onset: np.ndarray, seg_steps: int,
                   transposed: bool) -> np.ndarray:
  """Per-step codes of segments of `seg_steps` steps: int16 [n, segments, seg_steps].

  Exact: 2 * state + onset. Transposed: 0 for silence, else 1 + onset + 2 * (pitch - the
  segment's first sounding pitch + 256), so two segments get equal codes iff one is the other
  shifted by a constant.
  """
  n, t = state.shape
  s = state.reshape(n, t // seg_steps, seg_steps)
  o = onset.reshape(s.shape)
  if not transposed:
    return (2 * s + o).astype(np.int16)
  sounding = s >= NUM_SPECIAL
  first = np.argmax(sounding, axis=2)  # 0 where nothing sounds (then every code is 0 anyway)
  ref = np.take_along_axis(s, first[:, :, None], axis=2)
  return np.where(sounding, 1 + o + 2 * (s - ref + 256), 0).astype(np.int16)


def _repeat_fraction(ids: np.ndarray, nonempty: np.ndarray) -> np.ndarray:
  """Per piece, the fraction of non-empty segments equal to an earlier one, float [n].

  ids int [n, segments] (equal ids = equal segments), nonempty bool [n, segments]. Denominator:
  non-empty segments - 1 (the first can repeat nothing); NaN with fewer than 2.
  """
  s = ids.shape[1]
  earlier = np.tril(np.ones((s, s), bool), k=-1)  # [i, j]: j before i
  same = ids[:, :, None] == ids[:, None, :]
  repeats = (same & earlier).any(axis=2) & nonempty
  count = nonempty.sum(axis=1) - 1
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(count > 0, repeats.sum(axis=1) / np.maximum(count, 1), np.nan)


def repetition(part: np.ndarray, drums: bool, steps_per_bar: int = STEPS_PER_BAR
               ) -> dict[str, np.ndarray]:
  """Repetition measures of one part, int [n, time] -> {'repeat_bar': float [n], ...}.

  Keys: repeat_{bar,2bar,4bar} and (melody) repeat_{...}_transposed; a phrase length that does
  not fit the piece is left out. See the module docstring for the definitions.
  """
  n, t = part.shape
  bars = t // steps_per_bar
  if drums:
    state, onset = part, part != 0
  else:
    state, onset = melody_state(part), part >= NUM_SPECIAL
  bar_onset = onset.reshape(n, bars, steps_per_bar).any(axis=2)
  bar_ids = _row_ids(_segment_codes(state, onset, steps_per_bar, False) if not drums else
                     state.reshape(n, bars, steps_per_bar).astype(np.int16))
  out = {}
  for length in PHRASE_BARS:
    if length > bars:
      continue
    name = 'repeat_bar' if length == 1 else f'repeat_{length}bar'
    segs = bars // length
    used = segs * length
    nonempty = bar_onset[:, :used].reshape(n, segs, length).any(axis=2)
    ids = bar_ids if length == 1 else _row_ids(bar_ids[:, :used].reshape(n, segs, length))
    out[name] = _repeat_fraction(ids, nonempty)
    if not drums:
      codes = _segment_codes(state[:, :used * steps_per_bar], onset[:, :used * steps_per_bar],
                             length * steps_per_bar, True)
      out[name + '_transposed'] = _repeat_fraction(_row_ids(codes), nonempty)
  return out


# ----------------------------------------------------------------------------- similarity

_POPCOUNT = np.array([bin(i).count('1') for i in range(1 << 12)], np.int16)


def _onset_masks(part: np.ndarray, drums: bool, min_pitch: int) -> np.ndarray:
  """Per step, the set of what starts there as a bitmask: int [n, time].

  Melody: bit (pitch class) of a note-on, 0 elsewhere; drums: the token (bit i = drum class i).
  """
  if drums:
    return part & 511
  pc = (part - NUM_SPECIAL + min_pitch) % 12
  return np.where(part >= NUM_SPECIAL, 1 << pc, 0)


def self_similarity(part: np.ndarray, drums: bool, min_pitch: int = 0,
                    steps_per_bar: int = STEPS_PER_BAR) -> np.ndarray:
  """The bar x bar similarity matrices of one part: int [n, time] -> float32 [n, bars, bars].

  Similarity of bars i, j: (Dice of their onset positions + Dice of their (position, pitch
  class) onsets) / 2 (drums: (position, drum class) hits); NaN when both bars are empty.
  """
  n, t = part.shape
  bars = t // steps_per_bar
  out = np.empty((n, bars, bars), np.float32)
  for lo in range(0, n, CHUNK):
    m = _onset_masks(part[lo:lo + CHUNK], drums, min_pitch).reshape(-1, bars, steps_per_bar)
    m = m.astype(np.int16)
    hit = m != 0
    notes = _POPCOUNT[m]                                   # [c, bars, 16] onsets per step
    both = m[:, :, None, :] & m[:, None, :, :]             # [c, bars, bars, 16]
    common_notes = _POPCOUNT[both].sum(axis=3, dtype=np.float32)
    common_steps = (hit[:, :, None, :] & hit[:, None, :, :]).sum(axis=3, dtype=np.float32)
    size_notes = notes.sum(axis=2, dtype=np.float32)
    size_steps = hit.sum(axis=2, dtype=np.float32)
    pair_notes = size_notes[:, :, None] + size_notes[:, None, :]
    pair_steps = size_steps[:, :, None] + size_steps[:, None, :]
    with np.errstate(invalid='ignore', divide='ignore'):
      sim = 0.5 * (2 * common_steps / pair_steps + 2 * common_notes / pair_notes)
    out[lo:lo + CHUNK] = sim  # 0 / 0 = NaN: both bars empty
  return out


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
  """Mean over the last axis ignoring NaN; NaN where a row has no number. [..., k] -> [...]."""
  ok = ~np.isnan(x)
  count = ok.sum(axis=-1)
  total = np.where(ok, x, 0).sum(axis=-1, dtype=np.float64)
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def lag_similarity(sim: np.ndarray, lags: Sequence[int] = LAGS) -> dict[str, np.ndarray]:
  """Per piece, the mean similarity of bars L apart for each lag L < bars, and of all pairs.

  sim float [n, bars, bars] -> {'similarity_lag1': float [n], ..., 'similarity_all': [n]}.
  """
  bars = sim.shape[1]
  out = {}
  for lag in lags:
    if lag < bars:
      i = np.arange(bars - lag)
      out[f'similarity_lag{lag}'] = _nanmean_rows(sim[:, i, i + lag])
  iu, ju = np.triu_indices(bars, k=1)
  out['similarity_all'] = _nanmean_rows(sim[:, iu, ju])
  return out


# ----------------------------------------------------------------------------- tonality

def pitch_class_histograms(part: np.ndarray, min_pitch: int = 0, span_steps: int | None = None
                           ) -> np.ndarray:
  """Duration-weighted pitch-class counts of a melody: int [n, time] -> float [n, spans, 12].

  Each sounding step adds one to its pitch class; `span_steps` = None: one span (the piece).
  """
  n, t = part.shape
  span_steps = span_steps or t
  state = melody_state(part)
  sounding = state >= NUM_SPECIAL
  pc = (state - NUM_SPECIAL + min_pitch) % 12
  onehot = (pc[:, :, None] == np.arange(12)) & sounding[:, :, None]   # [n, time, 12]
  spans = t // span_steps
  return onehot[:, :spans * span_steps].reshape(n, spans, span_steps, 12).sum(
      axis=2, dtype=np.float64)


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> np.ndarray:
  """Jensen-Shannon divergence in bits of distributions along the last axis (unnormalised
  counts are normalised; NaN where either has no mass), in [0, 1]."""
  with np.errstate(invalid='ignore', divide='ignore'):
    p = p / p.sum(axis=-1, keepdims=True)
    q = q / q.sum(axis=-1, keepdims=True)
    m = 0.5 * (p + q)

    def kl(a, b):
      return np.where(a > 0, a * np.log2(np.where(a > 0, a, 1) / np.where(b > 0, b, 1)), 0.0
                      ).sum(axis=-1)

    out = 0.5 * kl(p, m) + 0.5 * kl(q, m)
  bad = np.isnan(p).any(axis=-1) | np.isnan(q).any(axis=-1)
  return np.where(bad, np.nan, np.clip(out, 0.0, 1.0))


def tonal_distance(part: np.ndarray, min_pitch: int = 0, span_bars: int = SPAN_BARS,
                   steps_per_bar: int = STEPS_PER_BAR) -> np.ndarray:
  """Per piece, the mean Jensen-Shannon divergence (bits) of each aligned `span_bars` span's
  pitch-class histogram from the whole piece's, over the spans where a note sounds: float [n]
  (NaN for a piece where nothing sounds)."""
  spans = pitch_class_histograms(part, min_pitch, span_bars * steps_per_bar)
  whole = spans.sum(axis=1, keepdims=True)
  return _nanmean_rows(jensen_shannon(spans, np.broadcast_to(whole, spans.shape)))


# ----------------------------------------------------------------------------- all measures

def _part_measures(part: np.ndarray, drums: bool, min_pitch: int, steps_per_bar: int
                   ) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Every measure of one part int [n, time]: ({metric: float64 [n]}, the similarity matrices
  float32 [n, bars, bars])."""
  n, t = part.shape
  onset = (part != 0) if drums else (part >= NUM_SPECIAL)
  values = {'empty_bars': 1.0 - onset.reshape(n, t // steps_per_bar, steps_per_bar).any(
      axis=2).mean(axis=1)}
  values.update(repetition(part, drums, steps_per_bar))
  sim = self_similarity(part, drums, min_pitch, steps_per_bar)
  values.update(lag_similarity(sim))
  if not drums:
    values['tonal_distance'] = tonal_distance(part, min_pitch, SPAN_BARS, steps_per_bar)
  return {k: np.asarray(values[k], np.float64) for k in METRICS if k in values}, sim


def piece_measures(tokens: Any, part_is_drums: Sequence[bool], *, min_pitch: int = 0,
                   part_names: Sequence[str] | None = None,
                   steps_per_bar: int = STEPS_PER_BAR) -> dict[str, np.ndarray]:
  """Every measure of every piece: {'<metric>' or '<part>/<metric>': float64 [n]} (NaN where a
  measure is undefined for a piece, e.g. repetition with fewer than two non-empty bars).

  Args:
    tokens: int [n, time] or [n, time, parts] (melody classes 0 hold / 1 off / 2 + pitch -
      min_pitch; drums 512-class bitmasks), time a multiple of `steps_per_bar`.
    part_is_drums: one flag per part.
    min_pitch: MIDI pitch of note-on class 2 (0 in paper mode, 21 in magenta mode); only pitch
      classes depend on it.
    part_names: names used as key prefixes when there are several parts (default lead, bass,
      drums for a trio).
  """
  x = as_batch(tokens, steps_per_bar)
  part_is_drums = _check_parts(x, part_is_drums)
  names = tuple(part_names) if part_names is not None else kinds.part_names(part_is_drums)
  out = {}
  for p, drums in enumerate(part_is_drums):
    prefix = f'{names[p]}/' if x.shape[2] > 1 else ''
    values, _ = _part_measures(x[:, :, p], drums, min_pitch, steps_per_bar)
    out.update({prefix + k: v for k, v in values.items()})
  return out


def summarize(per_piece: Mapping[str, np.ndarray]) -> dict[str, dict[str, float | int]]:
  """{metric: {'mean', 'std', 'sem', 'n'}} over the pieces where the metric is defined
  (std: of the pieces; sem: standard error of the mean; n: pieces counted)."""
  out = {}
  for name, values in per_piece.items():
    v = np.asarray(values, np.float64)
    v = v[~np.isnan(v)]
    k = int(v.size)
    mean = float(v.mean()) if k else float('nan')
    std = float(v.std(ddof=1)) if k > 1 else float('nan')
    out[name] = {'mean': mean, 'std': std, 'sem': std / math.sqrt(k) if k > 1 else float('nan'),
                 'n': k}
  return out


def example_indices(n: int, k: int) -> np.ndarray:
  """`k` piece indices spread evenly over a set of `n` (the first, the last and between), so
  that pictures do not show k overlapping windows of one song."""
  return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(np.int64)) if k > 0 else \
      np.zeros(0, np.int64)


def measure_set(tokens: Any, part_is_drums: Sequence[bool], *, min_pitch: int = 0,
                part_names: Sequence[str] | None = None, pictures: int = 4,
                steps_per_bar: int = STEPS_PER_BAR) -> dict[str, Any]:
  """The summary of a set of pieces and what its pictures need.

  Returns {'pieces': n, 'bars': bars per piece, 'metrics': `summarize(piece_measures(...))`,
  'mean_similarity': {part: float [bars, bars]} (NaN-ignoring mean over the pieces),
  'examples': int [k] (`example_indices(n, pictures)`),
  'example_similarity': {part: float [k, bars, bars]} of those pieces}.
  """
  x = as_batch(tokens, steps_per_bar)
  part_is_drums = _check_parts(x, part_is_drums)
  names = tuple(part_names) if part_names is not None else kinds.part_names(part_is_drums)
  if len(x) == 0:
    raise ValueError('no pieces to measure')
  examples = example_indices(len(x), pictures)
  per_piece, mean_sim, example_sim = {}, {}, {}
  for p, drums in enumerate(part_is_drums):
    prefix = f'{names[p]}/' if x.shape[2] > 1 else ''
    values, sim = _part_measures(x[:, :, p], drums, min_pitch, steps_per_bar)
    per_piece.update({prefix + k: v for k, v in values.items()})
    mean_sim[names[p]] = _nanmean_rows(np.moveaxis(sim, 0, -1))
    example_sim[names[p]] = sim[examples]
  return {'pieces': int(len(x)), 'bars': int(x.shape[1] // steps_per_bar),
          'metrics': summarize(per_piece), 'mean_similarity': mean_sim, 'examples': examples,
          'example_similarity': example_sim}


# ----------------------------------------------------------------------------- baselines

def _bar_states(x: np.ndarray, part_is_drums: Sequence[bool], steps_per_bar: int
                ) -> tuple[np.ndarray, np.ndarray]:
  """Sounding state before and at the end of each bar: (start, end) int [n, bars, parts].

  Melody parts: the `melody_state` of the step before the bar (NOTE_OFF before the first bar)
  and of the bar's last step; drum parts: zeros (a drum hit never lasts into the next step).
  """
  n, t, parts = x.shape
  bars = t // steps_per_bar
  start = np.zeros((n, bars, parts), np.int64)
  end = np.zeros((n, bars, parts), np.int64)
  for p, drums in enumerate(part_is_drums):
    if drums:
      continue
    state = melody_state(x[:, :, p]).reshape(n, bars, steps_per_bar)
    end[:, :, p] = state[:, :, -1]
    start[:, 0, p] = NOTE_OFF
    start[:, 1:, p] = state[:, :-1, -1]
  return start, end


def _rejoin(segments: np.ndarray, start: np.ndarray, end: np.ndarray,
            part_is_drums: Sequence[bool]) -> np.ndarray:
  """Joins segments [n, k, steps, parts] whose own sounding state at their start and end was
  `start` / `end` [n, k, parts] (see `_bar_states`) into [n, k * steps, parts], writing at a
  segment's first step (when it is a hold) the event that restores its own start state: the
  held note's note-on, or a NOTE_OFF where the previous segment now ends on a sounding note
  and this one started in silence."""
  seg = segments.copy()
  n, k, steps, parts = seg.shape
  context = np.concatenate([np.full((n, 1, parts), NOTE_OFF, np.int64), end[:, :-1]], axis=1)
  for p, drums in enumerate(part_is_drums):
    if drums:
      continue
    first = seg[:, :, 0, p]
    fix = (first == NO_EVENT) & (start[:, :, p] != context[:, :, p])
    seg[:, :, 0, p] = np.where(fix, start[:, :, p], first)
  return seg.reshape(n, k * steps, parts)


def shuffle_bars(tokens: Any, rng: np.random.Generator, part_is_drums: Sequence[bool],
                 steps_per_bar: int = STEPS_PER_BAR) -> np.ndarray:
  """Each piece with its bars in a random order: int [n, time, parts] -> the same shape.

  One permutation per piece, shared by its parts. Every bar keeps its notes: a bar that starts
  by holding a note from its original previous bar strikes it again at the bar line, and a bar
  that started in silence gets a NOTE_OFF at its first step if its new predecessor ends on a
  sounding note (so it does not extend that note).
  """
  x = as_batch(tokens, steps_per_bar)
  part_is_drums = _check_parts(x, part_is_drums)
  n, t, parts = x.shape
  bars = t // steps_per_bar
  start, end = _bar_states(x, part_is_drums, steps_per_bar)
  perm = rng.permuted(np.tile(np.arange(bars), (n, 1)), axis=1)
  segs = np.take_along_axis(x.reshape(n, bars, steps_per_bar, parts), perm[:, :, None, None],
                            axis=1)
  return _rejoin(segs, np.take_along_axis(start, perm[:, :, None], axis=1),
                 np.take_along_axis(end, perm[:, :, None], axis=1), part_is_drums)


def concatenate_pieces(short_tokens: Any, bars: int, part_is_drums: Sequence[bool],
                       steps_per_bar: int = STEPS_PER_BAR) -> np.ndarray:
  """Consecutive short pieces (e.g. i.i.d. 2-bar samples) joined into pieces of `bars` bars.

  short_tokens int [m, steps, parts] (steps whole bars dividing bars * steps_per_bar) ->
  int [m // k, bars * steps_per_bar, parts] with k = bars * steps_per_bar / steps; the rest of
  the m pieces is dropped. Each short piece started in silence, so at a join where the previous
  piece ends on a sounding note and the next begins with a hold, a NOTE_OFF is written first.
  """
  x = as_batch(short_tokens, steps_per_bar)
  part_is_drums = _check_parts(x, part_is_drums)
  m, steps, parts = x.shape
  total = bars * steps_per_bar
  if bars < 1 or total % steps:
    raise ValueError(f'cannot build {bars}-bar pieces from pieces of {steps} steps')
  k = total // steps
  if m < k:
    raise ValueError(f'{m} pieces of {steps} steps are too few for one piece of {bars} bars')
  count = m // k
  x = x[:count * k]
  end = np.zeros((m, parts), np.int64)
  for p, drums in enumerate(part_is_drums):
    if not drums:
      end[:count * k, p] = melody_state(x[:, :, p])[:, -1]
  start = np.where(np.array(part_is_drums), 0, NOTE_OFF) * np.ones((count, k, parts), np.int64)
  return _rejoin(x.reshape(count, k, steps, parts), start, end[:count * k].reshape(count, k, parts),
                 part_is_drums)


# ----------------------------------------------------------------------------- reports

def positions(sets: Mapping[str, Mapping[str, Any]], reference: str, baseline: str
              ) -> dict[str, dict[str, float | None]]:
  """Where each other set lies between `baseline` (0, bars shuffled) and `reference` (1, the
  data), per structure metric: (x - baseline) / (reference - baseline); None where reference and
  baseline are within two standard errors of each other (the metric does not separate them).
  """
  ref, base = sets[reference]['metrics'], sets[baseline]['metrics']
  out = {}
  for name, s in sets.items():
    if name in (reference, baseline):
      continue
    row = {}
    for metric, stats in s['metrics'].items():
      if metric.rsplit('/', 1)[-1] not in STRUCTURE_METRICS or metric not in ref \
          or metric not in base:
        continue
      r, b = ref[metric], base[metric]
      gap = r['mean'] - b['mean']
      noise = 2 * math.hypot(r['sem'] if math.isfinite(r['sem']) else 0.0,
                             b['sem'] if math.isfinite(b['sem']) else 0.0)
      ok = math.isfinite(gap) and math.isfinite(stats['mean']) and abs(gap) > max(noise, 1e-9)
      row[metric] = (stats['mean'] - b['mean']) / gap if ok else None
    out[name] = row
  return out


def _fmt(stats: Mapping[str, Any] | None) -> str:
  if not stats or not math.isfinite(stats['mean']):
    return '-'
  sem = stats['sem']
  return f'{stats["mean"]:.3f} ± {sem:.3f}' if math.isfinite(sem) else f'{stats["mean"]:.3f}'


def markdown_table(sets: Mapping[str, Mapping[str, Any]], reference: str | None = None,
                   baseline: str | None = None) -> str:
  """A Markdown table: one row per metric, one column per set (mean ± standard error), and,
  given the reference and baseline sets, a second table of `positions`."""
  names = list(sets)
  metrics = []
  for s in sets.values():
    metrics += [m for m in s['metrics'] if m not in metrics]
  lines = ['| metric | ' + ' | '.join(names) + ' |', '|---' * (len(names) + 1) + '|',
           '| pieces | ' + ' | '.join(str(sets[n]['pieces']) for n in names) + ' |']
  for m in metrics:
    lines.append(f'| {m} | ' + ' | '.join(_fmt(sets[n]['metrics'].get(m)) for n in names) + ' |')
  lines.append('')
  lines.append('Mean ± standard error over the pieces where a metric is defined. ' +
               '; '.join(f'`{k}`: {v}' for k, v in METRIC_HELP.items()) + '.')
  if reference and baseline and reference in sets and baseline in sets:
    pos = positions(sets, reference, baseline)
    if pos:
      others = list(pos)
      lines += ['', f'Position between "{baseline}" (0) and "{reference}" (1); '
                '- where those two are within two standard errors:', '',
                '| metric | ' + ' | '.join(others) + ' |', '|---' * (len(others) + 1) + '|']
      for m in metrics:
        if any(m in pos[o] for o in others):
          cells = [pos[o].get(m) for o in others]
          lines.append(f'| {m} | ' + ' | '.join('-' if c is None else f'{c:.2f}' for c in cells)
                       + ' |')
  return '\n'.join(lines) + '\n'


def _jsonable(x: Any) -> Any:
  if isinstance(x, dict):
    return {k: _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, np.ndarray):
    return _jsonable(x.tolist())
  if isinstance(x, (float, np.floating)):
    return float(x) if math.isfinite(x) else None
  if isinstance(x, np.integer):
    return int(x)
  return x


def plot_similarity(sets: Mapping[str, Mapping[str, Any]], part: str, path: str) -> str:
  """One row per set: its mean bar x bar similarity matrix, then its example pieces' matrices
  (viridis, 0 to 1; grey where both bars are empty). Writes a PNG; returns `path`."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  names = [n for n in sets if part in sets[n]['mean_similarity']]
  cols = 1 + max(len(sets[n]['example_similarity'][part]) for n in names)
  fig, axes = plt.subplots(len(names), cols, figsize=(1.9 * cols + 0.8, 2.0 * len(names) + 0.4),
                           squeeze=False)
  cmap = matplotlib.colormaps['viridis']
  cmap = cmap.with_extremes(bad='0.8')
  image = None
  for r, name in enumerate(names):
    mats = [sets[name]['mean_similarity'][part]] + list(sets[name]['example_similarity'][part])
    for c in range(cols):
      ax = axes[r, c]
      ax.set_xticks([])
      ax.set_yticks([])
      if c >= len(mats):
        ax.axis('off')
        continue
      m = np.asarray(mats[c], np.float64)
      image = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=0, vmax=1,
                        interpolation='nearest')
      bars = m.shape[0]
      ticks = [b for b in range(0, bars, 4)]
      ax.set_xticks(ticks)
      ax.set_yticks(ticks)
      ax.tick_params(labelsize=5, length=2)
      ax.set_title('mean over pieces' if c == 0 else
                   f'piece {sets[name]["examples"][c - 1]}', fontsize=7)
      if c == 0:
        ax.set_ylabel('\n'.join(textwrap.wrap(name, 24)), fontsize=7)
  fig.suptitle(f'bar x bar similarity ({part}); bars from 0', fontsize=9)
  if image is not None:
    fig.colorbar(image, ax=axes, shrink=0.6, fraction=0.02)
  try:
    from mvae_jax import plotting  # pylint: disable=g-import-not-at-top
    plotting.save_figure(fig, path, dpi=90)
  finally:
    plt.close(fig)
  return path


def write_report(sets: Mapping[str, Mapping[str, Any]], out_dir: str, *,
                 reference: str | None = None, baseline: str | None = None,
                 info: Mapping[str, Any] | None = None, plots: bool = True) -> list[str]:
  """Writes `structure.json`, `structure.md` and `self_similarity[_<part>].png` into `out_dir`.

  Args:
    sets: name -> `measure_set(...)`, in column order.
    reference / baseline: the names of the data and the bars-shuffled data (for `positions`).
    info: what the command did (kind, sources, seeds, times), stored in the JSON as 'info'.
  Returns the paths written (absolute).
  """
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  parts = []
  for s in sets.values():
    parts += [p for p in s['mean_similarity'] if p not in parts]
  if plots:
    for part in parts:
      name = 'self_similarity.png' if len(parts) == 1 else f'self_similarity_{part}.png'
      paths.append(plot_similarity(sets, part, os.path.join(out_dir, name)))
  data = {
      'info': dict(info or {}),
      'reference': reference, 'baseline': baseline,
      'metric_help': METRIC_HELP,
      'sets': {name: {'pieces': s['pieces'], 'bars': s['bars'], 'metrics': s['metrics'],
                      'mean_similarity': s['mean_similarity'], 'examples': s['examples']}
               for name, s in sets.items()},
      'positions': (positions(sets, reference, baseline)
                    if reference in sets and baseline in sets else {}),
  }
  path = os.path.join(out_dir, 'structure.json')
  with open(path + '.tmp', 'w') as f:
    json.dump(_jsonable(data), f, indent=1, allow_nan=False)
  os.replace(path + '.tmp', path)
  paths.insert(0, path)
  path = os.path.join(out_dir, 'structure.md')
  with open(path, 'w') as f:
    f.write(markdown_table(sets, reference, baseline))
  paths.insert(1, path)
  return [os.path.abspath(p) for p in paths]


def read_report(path: str) -> dict[str, Any]:
  """A `structure.json` (a file or the folder holding it), with nulls as NaN in the metrics."""
  if os.path.isdir(path):
    path = os.path.join(path, 'structure.json')
  with open(path) as f:
    data = json.load(f)
  for s in data['sets'].values():
    for stats in s['metrics'].values():
      for k in ('mean', 'std', 'sem'):
        if stats[k] is None:
          stats[k] = float('nan')
  return data


# The columns of `compare_table`: the measures that tell the kinds of pieces apart.
COMPARE_METRICS = ('empty_bars', 'repeat_bar_transposed', 'repeat_2bar_transposed', 'repeat_4bar',
                   'similarity_lag1', 'similarity_lag4', 'similarity_lag8', 'similarity_lag16',
                   'similarity_all', 'tonal_distance')


def _report_parts(data: Mapping[str, Any]) -> list[str | None]:
  parts: list[str | None] = []
  for s in data['sets'].values():
    for metric in s['metrics']:
      part = metric.rsplit('/', 1)[0] if '/' in metric else None
      if part not in parts:
        parts.append(part)
  return parts


def compare_table(reports: Sequence[tuple[str, Mapping[str, Any]]],
                  metrics: Sequence[str] = COMPARE_METRICS) -> str:
  """Several reports side by side: a Markdown table with one row per set (and per part for
  trios) and one column per metric (means).

  `reports` are (label, `read_report(...)`) pairs, e.g. one per trained run. Each report's data
  and bars-shuffled sets appear once (a later report's identical data rows are not repeated);
  its other sets (the samples) are named by the label. Metrics a part does not have (drums:
  transposition, tonal distance) show '-'.
  """
  if not reports:
    raise ValueError('compare_table: no reports')
  rows: list[tuple[str, Mapping[str, Any]]] = []
  seen: dict[str, Mapping[str, Any]] = {}
  for label, data in reports:
    real = [n for n in (data.get('reference'), data.get('baseline')) if n in data['sets']]
    others = [n for n in data['sets'] if n not in real]
    for name in real:
      s = data['sets'][name]
      if name in seen and seen[name]['pieces'] == s['pieces'] and all(
          _same(seen[name]['metrics'].get(m), s['metrics'].get(m)) for m in s['metrics']):
        continue
      title = name if name not in seen else f'{name} [{label}]'
      seen.setdefault(name, s)
      rows.append((title, s))
    for name in others:
      rows.append((label if len(others) == 1 else f'{label}: {name}', data['sets'][name]))
  parts = []
  for _, data in reports:
    parts += [p for p in _report_parts(data) if p not in parts]
  multi = parts != [None]
  head = ['set'] + (['part'] if multi else []) + ['pieces'] + list(metrics)
  lines = ['| ' + ' | '.join(head) + ' |', '|---' * len(head) + '|']
  for part in parts:
    for title, s in rows:
      key = (lambda m: f'{part}/{m}') if part is not None else (lambda m: m)
      if not any(key(m) in s['metrics'] for m in metrics):
        continue
      cells = [title] + ([part] if multi else []) + [str(s['pieces'])]
      for m in metrics:
        stats = s['metrics'].get(key(m))
        ok = stats is not None and stats['mean'] is not None and math.isfinite(stats['mean'])
        cells.append(f'{stats["mean"]:.3f}' if ok else '-')
      lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def _same(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
  if a is None or b is None:
    return a is b
  x, y = a['mean'], b['mean']
  return (x == y) or (isinstance(x, float) and isinstance(y, float) and math.isnan(x)
                      and math.isnan(y))


# ----------------------------------------------------------------------------- the command line

class UsageError(ValueError):
  """A bad command line (exit status 2)."""


def _say(line: str) -> None:
  print(line, file=sys.stderr, flush=True)


def dataset_tokens(data: Any, split: str, *, limit: int = 0, seed: int = 0) -> np.ndarray:
  """The windows of a built dataset split (`config.data`): int [n, time, parts].

  `limit` > 0 keeps a random subset of that many (seeded). Raises FileNotFoundError (with the
  build command) when the dataset is not built: measuring never starts a build.
  """
  from mvae_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  tokens = input_pipeline.split_windows(data, split, limit=limit or None, seed=seed,
                                        progress=True, build=False)
  _say(f'read {len(tokens)} windows of the {data.source} {data.kind} ({data.mode}) {split} split')
  return tokens.astype(np.int64)


def midi_tokens(midi_dir: str, spec: Any) -> tuple[np.ndarray, dict[str, int]]:
  """Every window of `spec` (a `data_pipelines.encoding.WindowSpec`) in the MIDI files under
  `midi_dir` as the datasets extract them (`data_pipelines.inputs.folder_windows`):
  (int [n, time, parts], {'files', 'with_windows', 'unreadable'})."""
  from data_pipelines import inputs  # pylint: disable=g-import-not-at-top
  folder = inputs.folder_windows(midi_dir, spec, progress=True)
  counts = {'files': folder.files, 'with_windows': folder.used,
            'unreadable': len(folder.skipped)}
  _say(f'read {folder.describe()}')
  return folder.tokens.astype(np.int64), counts


def sample_run(model: Any, num: int, *, temperature: float, seed: int, batch_size: int,
               label: str) -> np.ndarray:
  """`num` pieces sampled from a loaded `generate.Model` at `temperature`, in batches (batch b
  uses seed (seed * 10007 + b) mod 2**31): int [num, time, parts]."""
  progress = console.Progress(f'sampling {label}', num, 'pieces')
  out = []
  done = 0
  for b in range(-(-num // batch_size)):
    k = min(batch_size, num - done)
    out.append(np.asarray(model.sample_tokens(k, temperature, seed=(seed * 10007 + b) % 2 ** 31)))
    done += k
    progress.update(k)
  return np.concatenate(out).astype(np.int64)


def _positive_int(name: str, lo: int = 1):
  import argparse  # pylint: disable=g-import-not-at-top

  def parse(text: str) -> int:
    try:
      v = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f'expected a whole number, got {text!r}') from None
    if v < lo:
      raise argparse.ArgumentTypeError(f'must be at least {lo}, got {v}')
    return v
  return parse


def _temperature(text: str) -> float:
  import argparse  # pylint: disable=g-import-not-at-top
  try:
    v = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f'expected a number, got {text!r}') from None
  if not math.isfinite(v) or v <= 0:
    raise argparse.ArgumentTypeError(f'must be a finite number above 0, got {text}')
  return v


def _parser():
  import argparse  # pylint: disable=g-import-not-at-top

  class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2 (raised to main)
      raise UsageError(message)

  p = Parser(prog='python -m mvae_jax.structure',
             description='Repetition, self-similarity and tonal stability of long pieces: the '
                         'data, the data with its bars shuffled, samples of trained runs.')
  p.add_argument('--workdir', help='trained run: sample --num pieces from it (and measure its '
                 'dataset split)')
  p.add_argument('--config', help='config file[:arg] (e.g. configs/melody16.py:small) naming '
                 'the dataset, when no --workdir')
  p.add_argument('--split', choices=('eval', 'train'), default=None,
                 help='dataset split of --workdir / --config (default: eval, skipped with a note '
                      'when the dataset is not built)')
  p.add_argument('--data_dir', help='TFDS data folder (default: the config\'s, or TFDS_DATA_DIR)')
  p.add_argument('--midi_dir', help='also measure the windows of the MIDI files in this folder')
  p.add_argument('--kind', help='window kind of --midi_dir without --workdir / --config '
                 '(mel_16bar, mel_32bar, trio_16bar)')
  p.add_argument('--mode', choices=('paper', 'magenta'), default=None,
                 help='data mode of --kind (default paper)')
  p.add_argument('--concat_from', help='a 2-bar run: its i.i.d. samples joined to the length of '
                 'the others')
  p.add_argument('--num', type=_positive_int('num'), default=1000,
                 help='pieces sampled from each run (default 1000)')
  p.add_argument('--temperature', type=_temperature, default=0.5,
                 help='sampling temperature (default 0.5, the paper\'s)')
  p.add_argument('--batch_size', type=_positive_int('batch_size'), default=256,
                 help='pieces per sampling batch')
  p.add_argument('--seed', type=_positive_int('seed', 0), default=0,
                 help='seed of the samples, the bar shuffles and --max_data\'s subset')
  p.add_argument('--max_data', type=_positive_int('max_data', 0), default=0,
                 help='at most this many dataset / MIDI windows (a seeded random subset; 0 = all)')
  p.add_argument('--pictures', type=_positive_int('pictures', 0), default=4,
                 help='pieces per set drawn as similarity matrices (0 = no pictures)')
  p.add_argument('--checkpoint_step', type=_positive_int('checkpoint_step', 0), default=None,
                 help='checkpoint of --workdir (default the latest)')
  p.add_argument('--out', help='output folder (default RUN/structure, or ./structure_<kind>)')
  p.add_argument('--compare', nargs='+', metavar='REPORT',
                 help='instead of measuring: print earlier reports (structure.json files or '
                      'their folders) side by side, one row per set; with --out, also write '
                      'the table there as compare.md')
  p.add_argument('--labels', nargs='+', metavar='LABEL',
                 help='names of the --compare reports\' sample rows (default: folder names)')
  return p


def compare(args: Any) -> tuple[list[str], str]:
  """`--compare`: the reports side by side; returns (paths written, the table)."""
  others = [f'--{k}' for k in ('workdir', 'config', 'midi_dir', 'concat_from', 'kind', 'split')
            if getattr(args, k)]
  if others:
    raise UsageError(f'--compare reads finished reports; it takes no {", ".join(others)}')
  labels = args.labels or []
  if labels and len(labels) != len(args.compare):
    raise UsageError(f'--labels: {len(labels)} names for {len(args.compare)} reports')
  reports = []
  for i, path in enumerate(args.compare):
    try:
      data = read_report(path)
    except FileNotFoundError:
      raise ValueError(f'{path}: no structure report there (structure.json)') from None
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
      raise ValueError(f'{path}: not a structure report ({type(e).__name__}: {e})') from None
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    reports.append((labels[i] if labels else os.path.basename(os.path.normpath(folder)), data))
  table = compare_table(reports)
  paths = []
  if args.out:
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, 'compare.md')
    with open(path, 'w') as f:
      f.write(table)
    paths.append(os.path.abspath(path))
  return paths, table


def _subset(x: np.ndarray, limit: int, seed: int) -> np.ndarray:
  if limit and limit < len(x):
    return x[np.sort(np.random.default_rng(seed).choice(len(x), limit, replace=False))]
  return x


def run(args: Any) -> tuple[list[str], str]:
  """The command's work on parsed arguments; returns (paths written, the Markdown table)."""
  from data_pipelines import encoding  # pylint: disable=g-import-not-at-top
  from mvae_jax import config_lib  # pylint: disable=g-import-not-at-top
  from mvae_jax import run as run_lib  # pylint: disable=g-import-not-at-top
  if args.labels:
    raise UsageError('--labels names the reports of --compare')
  if not (args.workdir or args.config or args.midi_dir):
    raise UsageError('nothing to measure: give --workdir, --config or --midi_dir')
  if args.workdir and args.config:
    raise UsageError('give --workdir or --config, not both (a run names its own dataset)')
  if args.split and not (args.workdir or args.config):
    raise UsageError('--split needs --workdir or --config (they name the dataset)')
  if args.pictures > MAX_PICTURES:
    raise UsageError(f'--pictures={args.pictures}: at most {MAX_PICTURES} pieces per set')
  config = None
  if args.workdir:
    config = run_lib.load_config(args.workdir)
  elif args.config:
    try:
      config = config_lib.from_file(args.config)
    except Exception as e:  # pylint: disable=broad-except
      raise UsageError(f'--config={args.config}: cannot load it ({type(e).__name__}: {e})') from e
  if config is not None:
    kind, mode = config.data.kind, config.data.mode
    if (args.kind and args.kind != kind) or (args.mode and args.mode != mode):
      raise UsageError(f'--kind / --mode disagree with the run\'s / config\'s data ({kind}, '
                       f'{mode})')
    if args.data_dir:
      config.data.data_dir = args.data_dir  # a locked ConfigDict still takes new values
  else:
    if not args.kind:
      raise UsageError('--midi_dir needs --kind (mel_16bar, mel_32bar or trio_16bar) without '
                       '--workdir / --config')
    kind, mode = args.kind, args.mode or 'paper'
  try:
    spec = encoding.window_spec(kind, mode)
  except ValueError as e:
    raise UsageError(str(e)) from None
  if spec.num_bars < 4:
    raise UsageError(f'{kind} pieces have {spec.num_bars} bars; structure needs 4 or more '
                     '(16- and 32-bar kinds)')
  part_is_drums = tuple(p == 'drums' for p in spec.parts)
  names = kinds.part_names(part_is_drums)
  out = os.path.abspath(args.out or (os.path.join(args.workdir, 'structure') if args.workdir
                                     else f'structure_{kind}'))
  # Library logging to <out>/structure.log when that folder exists, else to the temp dir: a
  # command that fails early leaves no new folder behind.
  console.setup(out if os.path.isdir(out) else None, 'structure')

  # Load (and check) the runs first: a wrong --concat_from fails before any slow work.
  model = short = None
  if args.workdir:
    from mvae_jax.trained_model import Model  # pylint: disable=g-import-not-at-top
    model = Model.load(args.workdir, args.checkpoint_step)
  if args.concat_from:
    from mvae_jax.trained_model import Model  # pylint: disable=g-import-not-at-top
    want = {('melody',): 'mel_2bar'}.get(spec.parts)
    if want is None:
      raise UsageError(f'--concat_from: there is no 2-bar model of the parts of a {kind} '
                       '(joining needs mel_2bar for 16- and 32-bar melodies)')
    short = Model.load(args.concat_from)
    if short.spec.kind != want:
      raise UsageError(f'--concat_from={args.concat_from} is a {short.spec.kind} run; joining '
                       f'{kind} pieces needs a {want} run')

  raw: dict[str, tuple[np.ndarray, int]] = {}   # name -> (tokens, min_pitch)
  info: dict[str, Any] = {'kind': kind, 'mode': mode, 'seed': args.seed,
                          'temperature': args.temperature, 'arguments': dict(vars(args)),
                          'sets': {}}
  reference = baseline = None
  rng = np.random.default_rng(args.seed)

  def add_real(name: str, tokens: np.ndarray, note: str) -> None:
    nonlocal reference, baseline
    raw[name] = (tokens, spec.min_pitch)
    raw[name + ', bars shuffled'] = (shuffle_bars(tokens, rng, part_is_drums), spec.min_pitch)
    info['sets'][name] = note
    info['sets'][name + ', bars shuffled'] = f"{name} with each piece's bars in a random order"
    if reference is None:
      reference, baseline = name, name + ', bars shuffled'

  if config is not None:
    split = args.split or 'eval'
    try:
      tokens = dataset_tokens(config.data, split, limit=args.max_data, seed=args.seed)
    except FileNotFoundError as e:
      if args.split:
        raise
      _say(f'note: no {split} split measured: {e}')
    else:
      add_real(f'data ({config.data.source} {split})', tokens,
               f'{config.data.source} {kind} ({mode} mode) {split} split, {len(tokens)} windows')
  if args.midi_dir:
    tokens, counts = midi_tokens(args.midi_dir, spec)
    tokens = _subset(tokens, args.max_data, args.seed)
    add_real(f'MIDI ({os.path.basename(os.path.normpath(args.midi_dir))})', tokens,
             f'{kind} windows of {os.path.abspath(args.midi_dir)}: {len(tokens)} windows from '
             f'{counts["with_windows"]} of {counts["files"]} files ({counts["unreadable"]} '
             'unreadable)')
  if model is not None:
    name = f'samples ({os.path.basename(os.path.normpath(args.workdir))}, T={args.temperature:g})'
    raw[name] = (sample_run(model, args.num, temperature=args.temperature, seed=args.seed,
                            batch_size=args.batch_size, label=name), spec.min_pitch)
    info['sets'][name] = (f'{args.num} samples of {model.workdir} step {model.step} '
                          f'({model.config.family}:{model.config.preset}), z ~ N(0, I)')
  if short is not None:
    per = spec.num_steps // short.spec.num_steps
    name = (f'2-bar samples joined ({os.path.basename(os.path.normpath(args.concat_from))}, '
            f'T={args.temperature:g})')
    short_tokens = sample_run(short, args.num * per, temperature=args.temperature,
                              seed=args.seed + 1, batch_size=args.batch_size * per, label=name)
    raw[name] = (concatenate_pieces(short_tokens, spec.num_bars, part_is_drums),
                 short.spec.min_pitch)
    info['sets'][name] = (f'{args.num} pieces of {per} i.i.d. samples each of {short.workdir} '
                          f'step {short.step}, joined')
  if not raw:
    raise ValueError('nothing was measured (no dataset built, no run, no MIDI folder)')

  sets = {}
  info['seconds'] = {}
  for name, (tokens, min_pitch) in raw.items():
    t0 = time.monotonic()
    sets[name] = measure_set(tokens, part_is_drums, min_pitch=min_pitch, part_names=names,
                             pictures=args.pictures)
    info['seconds'][name] = round(time.monotonic() - t0, 3)
    _say(f'measured {name}: {len(tokens)} pieces in {info["seconds"][name]:.1f}s')
  paths = write_report(sets, out, reference=reference, baseline=baseline, info=info,
                       plots=args.pictures > 0)
  return paths, markdown_table(sets, reference, baseline)


def main(argv: Sequence[str] | None = None) -> int:
  """`python -m mvae_jax.structure [flags]`; returns the exit status (2: bad command line,
  1: failed)."""
  argv = sys.argv[1:] if argv is None else list(argv)
  try:
    args = _parser().parse_args(argv)
    paths, table = compare(args) if args.compare else run(args)
  except UsageError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  except (OSError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  except RuntimeError as e:
    if type(e).__name__ != 'DamagedCheckpointError':
      raise
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(table, end='')
  for p in paths:
    print(p)
  return 0


if __name__ == '__main__':
  sys.exit(main())
