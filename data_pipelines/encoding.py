"""Melody / drum encodings, extraction of training windows, and decoding back to MIDI.

Token arrays (the contract with the model, see docs/ARCHITECTURE.md):
  mel_2bar [32], drums_2bar [32], mel_4bar [64], drums_4bar [64], mel_16bar [256],
  mel_32bar [512]: int16 [time]; trio_16bar [256, 3], trio_4bar [64, 3]: int16 [time, (lead,
  bass, drums)].
Melody classes: 0 = NO_EVENT (hold what sounds / stay silent), 1 = NOTE_OFF, 2 + pitch - min_pitch
= note-on. Drum classes: sum of 2**i over the drum classes i hit on the step (0 = no hit).

One code path serves both modes; `window_spec(kind, mode)` holds every difference as a value.
Everything here works on `midi.QuantizedPart` note arrays: Python loops run over notes (never
over steps or windows), steps and windows are numpy arrays.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import TYPE_CHECKING

import numpy as np

from data_pipelines import kinds as kinds_lib
from data_pipelines import midi
from data_pipelines.kinds import (DRUM_VOCAB, NO_EVENT, NOTE_OFF, NUM_DRUM_CLASSES,
                                  NUM_SPECIAL)

if TYPE_CHECKING:  # note-seq is slow to import; extraction needs none of it
  import note_seq

# General MIDI drum pitches of the 9 drum classes (SPEC 3).
DRUM_CLASS_PITCHES = (
    (35, 36),                                                        # kick
    (27, 28, 31, 32, 33, 34, 37, 38, 39, 40, 56, 65, 66, 75, 85),    # snare
    (22, 42, 44, 54, 68, 69, 70, 71, 73, 78, 80),                    # closed hi-hat
    (26, 46, 67, 72, 74, 79, 81),                                    # open hi-hat
    (29, 41, 43, 45, 61, 64, 84),                                    # low tom
    (47, 48, 60, 63, 77, 86, 87),                                    # mid tom
    (30, 50, 62, 76, 83),                                            # high tom
    (49, 52, 55, 57, 58),                                            # crash
    (51, 53, 59, 82),                                                # ride
)
assert len(DRUM_CLASS_PITCHES) == NUM_DRUM_CLASSES
# Pitch written for each class when decoding.
DRUM_OUTPUT_PITCHES = (36, 38, 42, 46, 45, 48, 50, 49, 51)
# pitch -> class, -1 for pitches outside the 9 classes.
DRUM_PITCH_TO_CLASS = np.full(128, -1, np.int64)
for _c, _pitches in enumerate(DRUM_CLASS_PITCHES):
  DRUM_PITCH_TO_CLASS[list(_pitches)] = _c

OUTPUT_VELOCITY = 80
LEAD_PROGRAMS = (0, 32)   # [lo, hi): piano, chromatic percussion, organ, guitar
BASS_PROGRAMS = (32, 40)  # [lo, hi)
TRIO_OUTPUT_PROGRAMS = (0, 33)  # lead, bass (electric bass, finger)
DRUMS_INSTRUMENT = 9


@dataclasses.dataclass(frozen=True)
class WindowSpec:
  """Every parameter of window extraction for one kind in one mode (see `window_spec`)."""
  kind: str
  mode: str
  parts: tuple[str, ...]          # 'melody' | 'drums' per part; trio: ('melody', 'melody', 'drums')
  num_bars: int
  steps_per_bar: int = 16
  steps_per_quarter: int = 4
  stride_bars: int = 1
  min_pitch: int = 0              # melody pitch range, inclusive; notes outside it are dropped
  max_pitch: int = 127
  programs: tuple[int, int] | None = None  # melody kinds: [lo, hi) program filter, None = any
  gap_bars: int = 1               # this many bars of silence after a note ends a melody / drum track
  max_track_bars: int | None = None  # extracted tracks are truncated to this length before windowing
  trio_rule: str = 'rest'         # 'rest' (paper) | 'coverage' (reference); trio only
  trio_gap_bars: int = 2          # 'coverage': bars an instrument's coverage is widened by
  trio_max_bars: int = 1024       # trio: bars of a part considered (bounds memory)
  max_rest_steps: int | None = None  # trio 'rest': longest allowed run of silent steps per part
  clean_leading_off: bool = True  # a NOTE_OFF before a window's first note-on becomes NO_EVENT
  dedup: str = 'file'             # 'file' (paper) | 'part' (per time-split part) | 'none'
  max_per_file: int | None = None  # cap on windows per file, applied by callers (random pick)

  @property
  def num_steps(self) -> int:
    return self.num_bars * self.steps_per_bar

  @property
  def melody_vocab(self) -> int:
    return self.max_pitch - self.min_pitch + 1 + NUM_SPECIAL

  @property
  def part_vocab(self) -> tuple[int, ...]:
    return tuple(DRUM_VOCAB if p == 'drums' else self.melody_vocab for p in self.parts)

  @property
  def shape(self) -> tuple[int, ...]:
    """Shape of one window."""
    return (self.num_steps,) if len(self.parts) == 1 else (self.num_steps, len(self.parts))


def window_spec(kind: str, mode: str = 'paper') -> WindowSpec:
  """The `WindowSpec` of `kind` (one of `KINDS`) in `mode` ('paper' or 'magenta').

  Both modes: 16 steps per bar (4 per quarter), 4/4-equivalent parts only, split at tempo / meter
  changes, windows at every bar line (stride 1 bar), highest note kept on simultaneous onsets,
  melodies and drum tracks end at a silence of >= 1 bar (drum tracks: all drum instruments of a
  part together; melodies: per instrument), trio parts typed by program (lead 0..31, bass 32..39,
  an instrument with mixed types ignored) and taken as a cross-product over the first 1024 bars.

  magenta mode (bit-compatible with the reference converters):
    * pitches 21..108 (90 classes); notes outside are removed before extraction;
    * mel_2bar: programs 0..31 only; mel_4bar / mel_16bar / mel_32bar: any non-drum program
      (the 4-bar kinds are the reference converters with 4-bar slices, the lengths of
      magenta.js's 4-bar models: their melody converter has no program rule, and the windows of
      the 4-bar test fixtures, flat and hierarchical, are among ours);
    * melody windows: NOTE_OFFs before the window's first note-on are written as NO_EVENT (a
      window is a self-contained sequence); trio windows keep them;
    * extracted melodies / drum tracks are truncated to 100 bars before windowing;
    * rest rule: implicit in the 1-bar gap extraction; trio: the reference's coverage rule (an
      instrument counts as present in a bar if it sounds within 2 bars of it, and near the part's
      first and last 2 bars if any of the three does), over at most 1024 bars;
    * dedup within each time-split part (trio: no dedup); at most 5 windows per file (cap applied
      by callers).
  paper mode (the paper's Dataset section where it differs):
    * pitches 0..127 (130 classes);
    * all melody kinds use any non-drum program ("all unique non-drum sequences"; SPEC 2 limits
      2-bar melodies to programs 0..31, which is the reference's rule, kept in magenta mode);
    * no truncation of long tracks (the paper mentions none);
    * leading NOTE_OFFs are cleared in every window, trio lead and bass included;
    * trio: each of lead / bass / drums is encoded on the part's bar grid and a window is kept
      when no part has a run of more than one bar (16 steps) of silence in it ("at most a single
      bar of consecutive rests in any instrument"); a silent step is one where no note sounds
      (melody) or no drum is hit (drums);
    * windows unique within a file (`dedup_rows` across files is the dataset builder's job); no
      per-file cap.
  """
  magenta = kinds_lib.check_mode(mode) == 'magenta'
  k = kinds_lib.kind(kind)  # parts and length: the data contract
  min_pitch, max_pitch = kinds_lib.PITCH_RANGE[mode]
  common = dict(
      kind=kind, mode=mode, parts=k.parts, num_bars=k.num_bars,
      steps_per_bar=kinds_lib.STEPS_PER_BAR, steps_per_quarter=kinds_lib.STEPS_PER_QUARTER,
      min_pitch=min_pitch, max_pitch=max_pitch,
      max_track_bars=100 if magenta else None,
      dedup='part' if magenta else 'file',
      max_per_file=5 if magenta else None)
  if k.parts == ('melody',):
    # The reference's 2-bar melody model reads programs 0..31 only; its longer ones any program.
    return WindowSpec(programs=LEAD_PROGRAMS if magenta and k.num_bars == 2 else None, **common)
  if k.parts == ('drums',):
    return WindowSpec(**common)
  common.update(dedup='none' if magenta else 'file', max_track_bars=None,
                clean_leading_off=not magenta)
  return WindowSpec(trio_rule='coverage' if magenta else 'rest',
                    max_rest_steps=None if magenta else kinds_lib.STEPS_PER_BAR, **common)


def _as_spec(spec, mode=None) -> WindowSpec:
  if isinstance(spec, WindowSpec):
    if mode is not None and mode != spec.mode:
      raise ValueError(f'spec is {spec.mode} mode, got mode={mode!r}')
    return spec
  return window_spec(spec, mode or 'paper')


# ----------------------------------------------------------------------------- melodies

_NEVER = np.iinfo(np.int64).max


def _melody_tracks(start, end, pitch, spb, gap_steps, length=None):
  """Monophonic melodies of one instrument as raw event arrays (0 hold, 1 off, 2 + pitch).

  Notes (any order) are taken by onset, highest pitch first; a lower note with the same onset
  is dropped, a later onset cuts a sounding note (no NOTE_OFF), a NOTE_OFF is written where a note
  ends. A melody starts at the bar line before its first note and ends at a silence of
  `gap_steps` or more (None: never); a NOTE_OFF landing on the melody's final bar line is dropped
  and the end is padded to a whole bar. With `length`, a single melody is placed on the part's
  grid (from step 0) and cut or padded to `length` steps instead.

  Returns a list of (first_step, events int16 [steps]).
  """
  order = np.lexsort((-pitch, start))
  start, end, pitch = start[order], end[order], pitch[order]
  if not len(start):
    return []
  first = np.ones(len(start), bool)
  first[1:] = start[1:] != start[:-1]  # simultaneous onsets: the highest note only
  start, end, pitch = start[first], end[first], pitch[first]
  # The value at a step is set by the latest onset at or before it: the note-on on its onset
  # step, a NOTE_OFF on its end step, NO_EVENT elsewhere; so a note's NOTE_OFF is written only if
  # the next onset comes after its end (an onset at or before it cuts the note).
  nxt = np.append(start[1:], _NEVER)
  has_off = end < nxt
  bounds = [0, len(start)]
  if gap_steps is not None:
    bounds[1:1] = (np.flatnonzero(start[1:] - end[:-1] >= gap_steps) + 1).tolist()
  out = []
  for a, b in zip(bounds[:-1], bounds[1:]):
    s, e, off = start[a:b], end[a:b], has_off[a:b]
    last_e = int(e[-1])
    if length is None:
      mstart = int(s[0]) - int(s[0]) % spb
      steps = -(-(last_e - mstart) // spb) * spb  # whole bars; an OFF on the bar line falls off
      keep = min(steps, last_e - mstart + 1)
    else:
      mstart, steps = 0, length
      keep = min(length, last_e + 1)
    events = np.zeros(steps, np.int16)
    offs = e[off] - mstart
    events[offs[offs < keep]] = NOTE_OFF
    ons = s - mstart
    sel = ons < keep
    events[ons[sel]] = NUM_SPECIAL + pitch[a:b][sel]
    out.append((mstart, events))
  return out


def _melody_notes(part: midi.QuantizedPart, spec: WindowSpec, programs):
  """Mask of the notes a melody part may use: non-drum, sounding, in range and program."""
  ok = (~part.is_drum & (part.velocity > 0)
        & (part.pitch >= spec.min_pitch) & (part.pitch <= spec.max_pitch))
  if programs is not None:
    ok &= (part.program >= programs[0]) & (part.program < programs[1])
  return ok


def _to_classes(events, spec: WindowSpec):
  """Raw events (2 + pitch) -> classes (2 + pitch - min_pitch)."""
  return np.where(events >= NUM_SPECIAL, events - spec.min_pitch, events).astype(np.int16)


def extract_melodies(part: midi.QuantizedPart, spec: WindowSpec):
  """Melodies (class arrays, whole bars) of every instrument of `part` (SPEC 2)."""
  return [events for _, events in _located_melodies(part, spec)]


def _located_melodies(part: midi.QuantizedPart, spec: WindowSpec):
  """`extract_melodies` with each melody's first step in the part: [(step, events)]."""
  ok = _melody_notes(part, spec, spec.programs)
  tracks = []
  spb = spec.steps_per_bar
  for inst in np.unique(part.instrument[ok]):
    sel = ok & (part.instrument == inst)
    for first, events in _melody_tracks(part.start[sel], part.end[sel], part.pitch[sel], spb,
                                        spec.gap_bars * spb):
      if spec.max_track_bars is not None:
        events = events[:spec.max_track_bars * spb]
      tracks.append((first, _to_classes(events, spec)))
  return tracks


# ----------------------------------------------------------------------------- drums

def _drum_hits(part: midi.QuantizedPart, mask):
  """(steps, classes) of sounding drum notes with a mapped pitch among `mask`."""
  cls = DRUM_PITCH_TO_CLASS[np.clip(part.pitch, 0, 127)]
  ok = mask & part.is_drum & (part.velocity > 0) & (cls >= 0) & (part.pitch <= 127)
  return part.start[ok], cls[ok]


def _drum_grid(steps, classes, length):
  """Per-step drum classes (bit i = class i hit), int16 [length]."""
  grid = np.zeros(length, np.int64)
  keep = steps < length
  np.bitwise_or.at(grid, steps[keep], 1 << classes[keep])
  return grid.astype(np.int16)


def extract_drum_tracks(part: midi.QuantizedPart, spec: WindowSpec):
  """Drum tracks (all drum instruments together) split at silences of >= gap bars (SPEC 3)."""
  return [grid for _, grid in _located_drum_tracks(part, spec)]


def _located_drum_tracks(part: midi.QuantizedPart, spec: WindowSpec):
  """`extract_drum_tracks` with each track's first step in the part: [(step, grid)]."""
  steps, classes = _drum_hits(part, np.ones(len(part.start), bool))
  if not len(steps):
    return []
  spb = spec.steps_per_bar
  hits = np.unique(steps)
  # A track ends when gap_bars * spb or more empty steps follow a hit.
  breaks = np.flatnonzero(np.diff(hits) > spec.gap_bars * spb) + 1
  tracks = []
  for seg in np.split(hits, breaks):
    first = seg[0] - seg[0] % spb
    n = -(-(seg[-1] + 1 - first) // spb) * spb
    if spec.max_track_bars is not None:
      n = min(n, spec.max_track_bars * spb)
    sel = (steps >= first) & (steps < first + n)
    tracks.append((int(first), _drum_grid(steps[sel] - first, classes[sel], n)))
  return tracks


def drums_roll(classes):
  """Drum classes [...] -> float32 [..., 10]: the 9 class bits and a final "no hit" bit.

  Works on numpy and jax arrays alike (only broadcasting ops with numpy constants).
  """
  x = classes[..., None]
  # Column 9 reuses shift 0 and is then replaced by the no-hit bit.
  shifts = (np.arange(NUM_DRUM_CLASSES + 1) % NUM_DRUM_CLASSES).astype(np.int32)
  is_last = (np.arange(NUM_DRUM_CLASSES + 1) == NUM_DRUM_CLASSES).astype(np.int32)
  bits = (x >> shifts) & 1
  return (bits * (1 - is_last) + (x == 0) * is_last).astype(np.float32)


# ----------------------------------------------------------------------------- windows

def _slide(track, num_steps, stride):
  """All windows of `track` [steps, ...] at multiples of `stride`: [n, num_steps, ...]."""
  n = (len(track) - num_steps) // stride + 1
  if n <= 0:
    return np.zeros((0, num_steps) + track.shape[1:], track.dtype)
  idx = np.arange(n)[:, None] * stride + np.arange(num_steps)[None, :]
  return track[idx]


def _longest_run(mask):
  """Length of the longest run of True along the last axis, [n, T] -> [n]."""
  n, t = mask.shape
  if t == 0:
    return np.zeros(n, np.int64)
  pos = np.arange(1, t + 1)
  # Index of the most recent False at or before each step (0 if none): run length = pos - that.
  last_false = np.maximum.accumulate(np.where(mask, 0, pos), axis=-1)
  return (pos - last_false).max(-1)


def _melody_silent(events):
  """Steps where no note sounds, for a grid-aligned melody [T] (raw or class events)."""
  idx = np.where(events != NO_EVENT, np.arange(len(events)), -1)
  idx = np.maximum.accumulate(idx)  # the latest event at or before each step
  latest = np.where(idx >= 0, events[np.maximum(idx, 0)], NOTE_OFF)
  return latest == NOTE_OFF


def _trio_windows(part: midi.QuantizedPart, spec: WindowSpec):
  """Trio windows of a part and the step where each starts: (int16 [n, T, 3], int64 [n])."""
  spb, nb = spec.steps_per_bar, spec.num_bars
  none = (np.zeros((0, spec.num_steps, 3), np.int16), np.zeros(0, np.int64))
  mask_inst = part.instrument <= 127
  inst, prog, drum = part.instrument[mask_inst], part.program[mask_inst], part.is_drum[mask_inst]
  # Instrument type per note: 1 lead, 2 bass, 3 drums, 4 other; an instrument whose notes
  # disagree on the type (or any other program) is ignored.
  note_type = np.where(drum, 3, np.where((prog >= LEAD_PROGRAMS[0]) & (prog < LEAD_PROGRAMS[1]), 1,
                                         np.where((prog >= BASS_PROGRAMS[0]) & (prog < BASS_PROGRAMS[1]),
                                                  2, 4)))
  by_type = {1: [], 2: [], 3: []}
  for i in np.unique(inst):
    types = np.unique(note_type[inst == i])
    if len(types) == 1 and types[0] in by_type:
      by_type[int(types[0])].append(int(i))
  if not all(by_type.values()):
    return none

  total_bars = min(-(-part.total_steps // spb), spec.trio_max_bars)
  length = total_bars * spb
  if total_bars < nb:
    return none

  grids = {}
  for i in by_type[1] + by_type[2]:
    sel = _melody_notes(part, spec, None) & (part.instrument == i)
    if sel.any():
      [(_, events)] = _melody_tracks(part.start[sel], part.end[sel], part.pitch[sel], spb, None,
                                     length=length)
      grids[i] = _to_classes(events, spec)
  for i in by_type[3]:
    steps, classes = _drum_hits(part, part.instrument == i)
    if len(steps):
      grids[i] = _drum_grid(steps, classes, length)

  starts = np.arange(total_bars - nb + 1)
  windows, where = [], []
  if spec.trio_rule == 'coverage':
    g = spec.trio_gap_bars
    # Bars each instrument sounds in: +1 where a note's bars start, -1 after they end.
    start_bar = part.start // spb
    end_bar = np.minimum(-(-part.end // spb), total_bars)
    sel = (part.instrument <= 127) & (start_bar < total_bars)
    edges = np.zeros((total_bars + 1, 128), np.int64)
    np.add.at(edges, (start_bar[sel], part.instrument[sel]), 1)
    np.add.at(edges, (end_bar[sel], part.instrument[sel]), -1)
    coverage = np.cumsum(edges[:-1], 0) > 0
    coverage[:, [i for i in range(128) if i not in grids]] = False
    # Widen each instrument's coverage by g bars on both sides.
    csum = np.concatenate([np.zeros((1, 128), np.int64), np.cumsum(coverage, 0)])
    lo = np.maximum(0, np.arange(total_bars) - g)
    hi = np.minimum(total_bars, np.arange(total_bars) + g + 1)
    coverage = (csum[hi] - csum[lo]) > 0
    for grp in itertools.product(by_type[1], by_type[2], by_type[3]):
      if not all(i in grids for i in grp):
        continue
      cov = coverage[:, grp]
      grp_cov = cov.all(1)
      # Near the ends, one of the three sounding is enough.
      grp_cov[:g] = cov[:g].any()
      grp_cov[-g:] = cov[-g:].any()
      csum = np.concatenate([[0], np.cumsum(grp_cov)])
      ok = starts[(csum[starts + nb] - csum[starts]) == nb]
      if len(ok):
        stacked = np.stack([grids[i] for i in grp], -1)
        windows.append(_slide(stacked, spec.num_steps, spb)[ok])
        where.append(ok * spb)
  else:
    ok_start = {}
    for i, grid in grids.items():
      silent = grid == 0 if i in by_type[3] else _melody_silent(grid)
      ok_start[i] = _longest_run(_slide(silent, spec.num_steps, spb)) <= spec.max_rest_steps
    for grp in itertools.product(by_type[1], by_type[2], by_type[3]):
      if not all(i in grids for i in grp):
        continue
      keep = ok_start[grp[0]] & ok_start[grp[1]] & ok_start[grp[2]]
      if keep.any():
        stacked = np.stack([grids[i] for i in grp], -1)
        windows.append(_slide(stacked, spec.num_steps, spb)[keep])
        where.append(starts[keep] * spb)
  if not windows:
    return none
  return np.concatenate(windows).astype(np.int16), np.concatenate(where).astype(np.int64)


def clear_leading_offs(windows: np.ndarray, spec: WindowSpec) -> np.ndarray:
  """Writes NO_EVENT for each NOTE_OFF that precedes a melody window's first note-on."""
  w = windows.copy()
  for k, part in enumerate(spec.parts):
    if part != 'melody':
      continue
    x = w[:, :, k] if w.ndim == 3 else w
    before = np.cumsum(x >= NUM_SPECIAL, axis=1) == 0
    x[before & (x == NOTE_OFF)] = NO_EVENT
  return w


def part_windows(part: midi.QuantizedPart, spec: WindowSpec) -> np.ndarray:
  """All windows of one quantised part, before dedup: int16 [n, *spec.shape]."""
  return located_part_windows(part, spec)[0]


def located_part_windows(part: midi.QuantizedPart, spec: WindowSpec
                         ) -> tuple[np.ndarray, np.ndarray]:
  """`part_windows` and the step of the part where each window starts: int64 [n]."""
  w, starts = _part_windows(part, spec)
  return (clear_leading_offs(w, spec) if spec.clean_leading_off and len(w) else w), starts


def _part_windows(part: midi.QuantizedPart, spec: WindowSpec) -> tuple[np.ndarray, np.ndarray]:
  spb = spec.steps_per_bar
  if -(-part.total_steps // spb) * spb < spec.num_steps:
    # Every track lies within the part's whole bars: too short for one window (a beat of an
    # accelerando, say).
    return np.zeros((0,) + spec.shape, np.int16), np.zeros(0, np.int64)
  if spec.parts == ('melody', 'melody', 'drums'):
    return _trio_windows(part, spec)
  if spec.parts == ('melody',):
    tracks = _located_melodies(part, spec)
  elif spec.parts == ('drums',):
    tracks = _located_drum_tracks(part, spec)
  else:
    raise ValueError(f'unsupported parts {spec.parts}')
  stride = spec.stride_bars * spec.steps_per_bar
  rows = [_slide(t, spec.num_steps, stride) for _, t in tracks]
  if not any(len(r) for r in rows):
    return np.zeros((0, spec.num_steps), np.int16), np.zeros(0, np.int64)
  starts = [first + stride * np.arange(len(r), dtype=np.int64)
            for (first, _), r in zip(tracks, rows)]
  return np.concatenate(rows).astype(np.int16), np.concatenate(starts)


def dedup_rows(array: np.ndarray) -> np.ndarray:
  """Unique windows of `array` [n, ...], in lexicographic order of their contents.

  Each row of non-negative 16-bit tokens is one opaque byte string, big-endian so that byte order
  is numeric order: numpy sorts those with memcmp, several times faster than `np.unique(axis=0)`
  (which gives the same rows; it still serves other inputs).
  """
  if len(array) == 0:
    return array
  flat = array.reshape(len(array), -1)
  if array.dtype.itemsize != 2 or array.dtype.kind not in 'iu' or (flat < 0).any():
    return np.unique(array, axis=0)
  big = np.ascontiguousarray(flat, dtype='>u2')
  rows = np.unique(big.view(np.dtype((np.void, 2 * big.shape[1]))).ravel())
  return rows.view('>u2').reshape((len(rows),) + array.shape[1:]).astype(array.dtype)


def extract_windows(ns: note_seq.NoteSequence, spec, mode: str | None = None,
                    parts=None) -> np.ndarray:
  """Windows of one piece: int16 [n, T] (trio: [n, T, 3]).

  Args:
    ns: an unquantised NoteSequence (split and quantised here).
    spec: a `WindowSpec`, or a kind name (then `mode` picks the mode, default 'paper').
    parts: optional precomputed `midi.quantized_parts(ns)`, to share them between kinds.
  The per-file cap (`spec.max_per_file`) is not applied here.
  """
  spec = _as_spec(spec, mode)
  if parts is None:
    parts = midi.quantized_parts(ns, spec.steps_per_quarter, spec.steps_per_bar)
  rows = []
  for part in parts:
    w = part_windows(part, spec)
    rows.append(dedup_rows(w) if spec.dedup == 'part' else w)
  out = (np.concatenate(rows) if rows else np.zeros((0,) + spec.shape, np.int16)).astype(np.int16)
  if spec.dedup == 'file':
    out = dedup_rows(out)
  return out


def _first_of_each(windows: np.ndarray) -> np.ndarray:
  """Sorted indices of the first occurrence of each distinct row of `windows` [n, ...]."""
  if len(windows) == 0:
    return np.zeros(0, np.int64)
  _, first = np.unique(windows.reshape(len(windows), -1), axis=0, return_index=True)
  return np.sort(first)


def located_windows(ns: note_seq.NoteSequence, spec, mode: str | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The windows of `extract_windows`, in time order, with where each starts in the piece.

  The same windows as `extract_windows(ns, spec)` (the same dedup: a window whose content occurs
  several times is kept where it occurs first), ordered by start time (windows starting
  together, e.g. of two instruments, in extraction order).

  Returns:
    (windows int16 [n, T] or [n, T, 3], start_bar float64 [n] (0-based bar of the piece, see
    `midi.located_parts`), start_seconds float64 [n]).
  """
  spec = _as_spec(spec, mode)
  rows, bars, seconds = [], [], []
  for part, offset, bars_before in midi.located_parts(ns, spec.steps_per_quarter,
                                                      spec.steps_per_bar):
    w, starts = located_part_windows(part, spec)
    order = np.argsort(starts, kind='stable')
    w, starts = w[order], starts[order]
    if spec.dedup == 'part':
      keep = _first_of_each(w)
      w, starts = w[keep], starts[keep]
    rows.append(w)
    bars.append(bars_before + starts / spec.steps_per_bar)
    seconds.append(offset + starts * 60.0 / (part.qpm * spec.steps_per_quarter))
  if not rows:
    return np.zeros((0,) + spec.shape, np.int16), np.zeros(0), np.zeros(0)
  w, bars, seconds = np.concatenate(rows).astype(np.int16), np.concatenate(bars), \
      np.concatenate(seconds)
  order = np.argsort(seconds, kind='stable')
  w, bars, seconds = w[order], bars[order], seconds[order]
  if spec.dedup == 'file':
    keep = _first_of_each(w)
    w, bars, seconds = w[keep], bars[keep], seconds[keep]
  return w, bars, seconds


# ----------------------------------------------------------------------------- decoding

def _add_melody_notes(ns, classes, spec, seconds_per_step, instrument, program):
  classes = np.asarray(classes)
  onsets = np.flatnonzero(classes >= NUM_SPECIAL)
  ends = np.flatnonzero(classes != NO_EVENT)  # any event ends the sounding note
  for s in onsets.tolist():
    k = np.searchsorted(ends, s, side='right')
    e = int(ends[k]) if k < len(ends) else len(classes)
    note = ns.notes.add(pitch=int(classes[s]) - NUM_SPECIAL + spec.min_pitch,
                        velocity=OUTPUT_VELOCITY, instrument=instrument, program=program,
                        start_time=s * seconds_per_step, end_time=e * seconds_per_step)
    ns.total_time = max(ns.total_time, note.end_time)


def _add_drum_notes(ns, classes, seconds_per_step):
  classes = np.asarray(classes).astype(np.int64)
  for s in np.flatnonzero(classes).tolist():
    for c in range(NUM_DRUM_CLASSES):
      if classes[s] >> c & 1:
        note = ns.notes.add(pitch=DRUM_OUTPUT_PITCHES[c], velocity=OUTPUT_VELOCITY,
                            instrument=DRUMS_INSTRUMENT, program=0, is_drum=True,
                            start_time=s * seconds_per_step,
                            end_time=(s + 1) * seconds_per_step)
        ns.total_time = max(ns.total_time, note.end_time)


def windows_to_note_sequence(tokens, spec, mode: str | None = None,
                             qpm: float = 120.0) -> note_seq.NoteSequence:
  """One window (int [T] or [T, 3]) -> NoteSequence at `qpm`, velocity 80.

  Melodies: instrument 0, program 0 (trio bass: instrument 1, program 33); drums: is_drum,
  channel 10 (instrument 9), pitches `DRUM_OUTPUT_PITCHES`, one step long.
  """
  if mode is not None and not isinstance(mode, str):  # called as (tokens, spec, qpm)
    mode, qpm = None, float(mode)
  spec = _as_spec(spec, mode)
  tokens = np.asarray(tokens)
  if tokens.ndim == 1:
    tokens = tokens[:, None]
  if tokens.shape[-1] != len(spec.parts):
    raise ValueError(f'tokens of shape {tokens.shape} do not match {spec.kind}')
  seconds_per_step = 60.0 / qpm / spec.steps_per_quarter
  import note_seq  # pylint: disable=g-import-not-at-top  # slow to import; extraction needs none
  ns = note_seq.NoteSequence(ticks_per_quarter=note_seq.STANDARD_PPQ)
  ns.tempos.add(qpm=qpm)
  ns.time_signatures.add(numerator=4, denominator=4)
  for k, part in enumerate(spec.parts):
    if part == 'drums':
      _add_drum_notes(ns, tokens[:, k], seconds_per_step)
    else:
      program = TRIO_OUTPUT_PROGRAMS[k] if len(spec.parts) > 1 else 0
      _add_melody_notes(ns, tokens[:, k], spec, seconds_per_step, k, program)
  return ns


def write_midi(ns: note_seq.NoteSequence, path) -> None:
  """Writes `ns` as a standard MIDI file (drums on channel 10)."""
  os.makedirs(os.path.dirname(os.path.abspath(str(path))), exist_ok=True)
  import note_seq  # pylint: disable=g-import-not-at-top
  note_seq.sequence_proto_to_midi_file(ns, str(path))
