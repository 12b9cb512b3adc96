"""Piano-roll pictures of token arrays, in the style of the paper's supplemental figures 2-5.

Melodies are drawn as pitch by time (one bar = 16 steps; grid lines at every bar, beat and
sixteenth; bars numbered from 1, or from where an input window starts in its file), with octave
labels (C3, C4, ...) on a y axis that spans whole octaves and the names of the pitches played
beside their rows, and every note-on visible: a note starts
after a small gap and its first steps are darker, so repeated notes of one pitch read as
separate notes. Drums are a 9-row grid with the instrument names (kick at the bottom ... ride at
the top), trios three panels (lead, bass, drums) in three colours. A list of pieces (an
interpolation) is drawn one after another on one time axis, with chosen pieces (the inputs of
an interpolation) in black, as in the paper's figures 2 and 3. Pictures of a set drawn
separately (the samples of one command) share one pitch range through `pitch_ranges`.

Everything works on token arrays `int [time, parts]` (the model's own output), so a picture shows
exactly what the model produced. matplotlib runs on the Agg backend: no display is needed.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from data_pipelines.kinds import DRUM_NAMES, NO_EVENT, NUM_SPECIAL, STEPS_PER_BAR  # noqa: E402

PART_COLOURS = ('tab:blue', 'tab:orange', 'tab:green')
HIGHLIGHT_COLOUR = 'black'


def melody_notes(tokens: np.ndarray) -> list[tuple[int, int, int]]:
  """Notes of one melody part: int [time] classes -> [(start, end, class - 2)] in steps.

  A note-on starts a note that lasts until the next event (NOTE_OFF or another note-on) or the end.
  The third value is the pitch index above the vocabulary's lowest pitch.
  """
  tokens = np.asarray(tokens)
  onsets = np.flatnonzero(tokens >= NUM_SPECIAL)
  events = np.flatnonzero(tokens != NO_EVENT)
  notes = []
  for s in onsets.tolist():
    k = np.searchsorted(events, s, side='right')
    e = int(events[k]) if k < len(events) else len(tokens)
    notes.append((s, e, int(tokens[s]) - NUM_SPECIAL))
  return notes


def drum_hits(tokens: np.ndarray) -> np.ndarray:
  """512-class drum tokens int [time] -> bool [9, time] (row i = drum class i hit)."""
  tokens = np.asarray(tokens, np.int64)
  return ((tokens[None, :] >> np.arange(len(DRUM_NAMES))[:, None]) & 1).astype(bool)


def _pitch_name(midi_pitch: int) -> str:
  names = ('C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#', 'B')
  return f'{names[midi_pitch % 12]}{midi_pitch // 12 - 1}'


def pitch_ranges(pieces: Sequence[np.ndarray], part_is_drums: Sequence[bool],
                 min_pitch: int = 0) -> list[tuple[int, int] | None]:
  """Per part, the (lowest, highest) MIDI pitch played in any of `pieces`, widened to whole
  octaves (C to C) so the y axis always shows octave labels; None for drum parts.

  Pass the result as `plot_pieces(..., pitch_ranges=...)` to draw several pictures of a set (the
  samples of one command, the steps of an interpolation) on one scale.
  """
  pieces = [np.asarray(p)[:, None] if np.asarray(p).ndim == 1 else np.asarray(p) for p in pieces]
  out = []
  for part, drums in enumerate(part_is_drums):
    if drums:
      out.append(None)
      continue
    pitches = [min_pitch + int(t) - NUM_SPECIAL for p in pieces for t in p[:, part]
               if t >= NUM_SPECIAL]
    lo, hi = (min(pitches), max(pitches)) if pitches else (60, 72)
    lo_c, hi_c = 12 * (lo // 12), 12 * (hi // 12 + 1)
    out.append((lo_c, hi_c))
  return out


_pitch_ranges = pitch_ranges  # draw_pieces has an argument of that name


# A note is drawn from ONSET_GAP after its start to its end, and its first ONSET_MARK steps in a
# darker shade: repeated notes of one pitch read as separate notes.
ONSET_GAP = 0.15
ONSET_MARK = 0.35


def _melody_panel(ax, pieces, part, min_pitch, colours, offsets, pitch_range):
  for piece, colour, offset in zip(pieces, colours, offsets):
    notes = melody_notes(piece[:, part])
    if not notes:
      continue
    boxes = [[(offset + s + ONSET_GAP, min_pitch + p - 0.42), (offset + e, min_pitch + p - 0.42),
              (offset + e, min_pitch + p + 0.42), (offset + s + ONSET_GAP, min_pitch + p + 0.42)]
             for s, e, p in notes]
    ax.add_collection(PolyCollection(boxes, facecolors=colour, edgecolors='none'))
    dark = 'white' if colour == HIGHLIGHT_COLOUR else matplotlib.colors.to_rgba(colour)
    if dark != 'white':
      dark = tuple(0.55 * c for c in dark[:3]) + (1.0,)
    marks = [[(offset + s + ONSET_GAP, min_pitch + p - 0.42),
              (offset + s + ONSET_GAP + min(ONSET_MARK, max(e - s - ONSET_GAP, 0)),
               min_pitch + p - 0.42),
              (offset + s + ONSET_GAP + min(ONSET_MARK, max(e - s - ONSET_GAP, 0)),
               min_pitch + p + 0.42), (offset + s + ONSET_GAP, min_pitch + p + 0.42)]
             for s, e, p in notes]
    ax.add_collection(PolyCollection(marks, facecolors=dark, edgecolors='none'))
  lo, hi = pitch_range
  ax.set_ylim(lo - 0.6, hi + 0.6)
  ticks = list(range(lo, hi + 1, 12))
  ax.set_yticks(ticks)
  ax.set_yticklabels([_pitch_name(p) for p in ticks], fontsize=7)
  # Every semitone has a minor tick; the pitches the pieces play are named there too (the Cs
  # are the major ticks), so a note's pitch reads off the axis.
  used = {min_pitch + p for piece in pieces for _, _, p in melody_notes(piece[:, part])}
  minor = list(range(lo, hi + 1))
  ax.set_yticks(minor, minor=True)
  ax.set_yticklabels([_pitch_name(p) if p in used and p % 12 else '' for p in minor],
                     minor=True, fontsize=5, color='0.35')
  ax.tick_params(axis='y', which='minor', length=1.5, pad=1)
  for c in ticks:
    ax.axhline(c - 0.5, color='0.88', linewidth=0.5, zorder=0)


def _drum_panel(ax, pieces, part, colours, offsets):
  for piece, colour, offset in zip(pieces, colours, offsets):
    hits = drum_hits(piece[:, part])
    rows, steps = np.nonzero(hits)
    boxes = [[(offset + t + 0.1, r - 0.38), (offset + t + 0.9, r - 0.38),
              (offset + t + 0.9, r + 0.38), (offset + t + 0.1, r + 0.38)]
             for r, t in zip(rows.tolist(), steps.tolist())]
    if boxes:
      ax.add_collection(PolyCollection(boxes, facecolors=colour, edgecolors='none'))
  ax.set_ylim(-0.7, len(DRUM_NAMES) - 0.3)
  ax.set_yticks(range(len(DRUM_NAMES)))
  ax.set_yticklabels(DRUM_NAMES, fontsize=6)
  for r in range(len(DRUM_NAMES) + 1):
    ax.axhline(r - 0.5, color='0.92', linewidth=0.4, zorder=0)


def draw_pieces(pieces: Sequence[np.ndarray], *, part_names: Sequence[str],
                part_is_drums: Sequence[bool], min_pitch: int = 0,
                highlight: Sequence[int] = (), labels: Sequence[str] | None = None,
                title: str | None = None, steps_per_bar: int = STEPS_PER_BAR,
                pitch_ranges: Sequence[tuple[int, int] | None] | None = None,
                first_bars: Sequence[int] | None = None) -> str:
  """Draws `pieces` one after another; returns the matplotlib Figure (the caller closes it).

  The time axis is numbered in bars (`first_bars`: the bar number of each piece's first bar,
  e.g. where an input window starts in its file; default 1), with grid lines at every bar,
  beat and (up to 32 bars) sixteenth.

  Args:
    pieces: token arrays, each int [time] or [time, parts].
    part_names: one name per part ('melody'; 'lead', 'bass', 'drums').
    part_is_drums: which parts are 512-class drums (drawn as the 9-row grid).
    min_pitch: MIDI pitch of note-on class 2 (0 in paper mode, 21 in magenta mode).
    highlight: indices of pieces drawn in black (the inputs of an interpolation).
    labels: optional text above each piece.
    title: optional figure title.
    pitch_ranges: per part, the (low, high) MIDI pitches of the y axis (see `pitch_ranges`);
      default: the notes of `pieces`, widened to whole octaves.
  """
  pieces = [np.asarray(p)[:, None] if np.asarray(p).ndim == 1 else np.asarray(p) for p in pieces]
  if not pieces:
    raise ValueError('nothing to plot')
  num_parts = len(part_is_drums)
  if pitch_ranges is None:
    pitch_ranges = _pitch_ranges(pieces, part_is_drums, min_pitch)
  lengths = [len(p) for p in pieces]
  offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).tolist()
  total = int(sum(lengths))
  # Panel heights in inches: a semitone row or a drum row stays a few pixels high at any range.
  heights = [1.8 if drums else min(10.0, max(2.2, 0.09 * (r[1] - r[0] + 1)))
             for drums, r in zip(part_is_drums, pitch_ranges)]
  width = min(48.0, max(8.0, total / 16.0 * 1.6))
  fig, axes = plt.subplots(num_parts, 1, figsize=(width, 1.2 + sum(heights)), sharex=True,
                           squeeze=False, gridspec_kw={'height_ratios': heights})
  axes = axes[:, 0]
  for part, ax in enumerate(axes):
    base = PART_COLOURS[part % len(PART_COLOURS)] if num_parts > 1 else PART_COLOURS[0]
    colours = [HIGHLIGHT_COLOUR if i in highlight else base for i in range(len(pieces))]
    if part_is_drums[part]:
      _drum_panel(ax, pieces, part, colours, offsets)
    else:
      _melody_panel(ax, pieces, part, min_pitch, colours, offsets, pitch_ranges[part])
    beat = max(1, steps_per_bar // 4)
    if total <= 32 * steps_per_bar:  # sixteenths, where they stay apart
      for t in range(0, total + 1):
        if t % beat:
          ax.axvline(t, color='0.95', linewidth=0.3, zorder=0)
    for t in range(0, total + 1, beat):
      if t % steps_per_bar:
        ax.axvline(t, color='0.88', linewidth=0.5, zorder=0)
    for bar in range(0, total + 1, steps_per_bar):
      ax.axvline(bar, color='0.7', linewidth=0.8, zorder=0)
    for off in offsets[1:]:
      ax.axvline(off, color='0.3', linewidth=1.2, zorder=0)
    ax.set_xlim(0, total)
    ax.set_ylabel(part_names[part], fontsize=8)
  if labels is not None:
    for off, n, label in zip(offsets, lengths, labels):
      axes[0].text(off + n / 2, 1.02, label, transform=axes[0].get_xaxis_transform(),
                   ha='center', va='bottom', fontsize=7)
  # Each piece's bars numbered from its own first bar; long sets label every k-th bar.
  first_bars = list(first_bars) if first_bars is not None else [1] * len(pieces)
  every = max(1, total // steps_per_bar // 24)
  ticks, names = [], []
  for off, n, first in zip(offsets, lengths, first_bars):
    for k in range(0, -(-n // steps_per_bar), every):
      ticks.append(off + k * steps_per_bar)
      names.append(str(first + k))
  axes[-1].set_xticks(ticks)
  axes[-1].set_xticklabels(names, fontsize=7)
  axes[-1].set_xlabel('bar' if first_bars == [1] * len(pieces) else 'bar (of the input file)')
  if title:
    fig.suptitle(title, fontsize=9)
  # Fixed margins (in inches) instead of tight_layout, which costs more than the drawing.
  fig_w, fig_h = fig.get_size_inches()
  fig.subplots_adjust(left=0.9 / fig_w, right=1 - 0.2 / fig_w, bottom=0.55 / fig_h,
                      top=1 - (0.7 if title else 0.45) / fig_h, hspace=0.12)
  return fig


def save_figure(fig: Any, path: str, dpi: int = 100) -> str:
  """Writes `fig` to `path` (its folders created); returns `path`. Every picture the project
  writes goes through here; the caller closes the figure."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=dpi)
  return path


def plot_pieces(pieces: Sequence[np.ndarray], path: str, **kwargs) -> str:
  """Draws `pieces` (see `draw_pieces` for the arguments) and writes a PNG to `path` (folders
  are created); returns `path`."""
  fig = draw_pieces(pieces, **kwargs)
  try:
    return save_figure(fig, path)
  finally:
    plt.close(fig)
