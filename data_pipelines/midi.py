"""Safe MIDI reading, time-change splitting and quantisation (TF-free).

MIDI -> NoteSequence goes through note-seq (`midi_to_note_sequence`, i.e. pretty_midi). A file
that cannot be read raises `MidiError(path, reason)` with a short reason code, and callers count
and skip it. There are no caps on notes, length or time changes (real collections hold dense songs
of 30,000 notes and expressive recordings with thousands of tempo changes, and the reference
converters keep their windows); what keeps one pathological file from stalling or blowing up a
build is the per-file time and memory bound of the build's worker pool (`workers.py`). Magenta's
preprocessing-script filters are available as `Filters`, off by default.

After reading, a piece is split at tempo and time-signature changes (note-seq's
`split_note_sequence_on_time_changes`; bar lines restart at each part's start) and each part is
quantised to a fixed grid (4 steps per quarter) into flat numpy arrays (`QuantizedPart`), which is
what `encoding.py` works on. Parts whose bar is not 16 steps (anything but 4/4, 2/2, 8/8, ...) or
whose time data is unusable are dropped.

This is the full reader, the reference's own path. Builds and `extract.py` read MIDI bytes with
`midi_fast.read_parts`, which gives the same parts many times faster and hands every file it
does not reproduce exactly (malformed, or read oddly by mido / pretty_midi) to this reader.
"""

from __future__ import annotations

import bisect
import dataclasses
import io
import logging
import os
import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported where used: a fast-path build needs neither
  import mido
  import note_seq

# mido, pretty_midi and note-seq (over a second to import: note-seq pulls in librosa, bokeh,
# pandas...) are imported by the functions that use them, on first use: the fast reader
# (midi_fast.py), and so a build or extraction of well-formed files, needs none of them.

# The only count bound: pretty_midi (with note-seq's setting, which the reference shares) refuses
# files whose last event lies beyond 1e10 ticks (`pretty_midi.pretty_midi.MAX_TICK`, which
# tests/test_midi_fast.py checks this equals). No real piece gets near it: at 960 ticks per
# quarter and 120 qpm, 1e10 ticks last 60 days. Everything else a file costs is bounded by the
# build's per-file time and memory limits (`data_pipelines/workers.py`), not by counts.
MAX_TICKS = 10_000_000_000

STEPS_PER_QUARTER = 4
_LOG = logging.getLogger(__name__)
_DEFAULT_QPM = 120.0  # the implicit tempo of a MIDI file without tempo events


class MidiError(ValueError):
  """A MIDI file that cannot be used; `reason` is a short code for build reports.

  Reason codes: 'unreadable', 'truncated', 'no_tracks', 'corrupt_ticks' (last event beyond
  `MAX_TICKS`, refused by the reference's reader too), 'no_notes', 'empty_track' (only when the
  reference's strictness is asked for, see `midi_bytes_to_note_sequence`), and, only with the
  optional `Filters`, 'filtered_parts'. Real music is never skipped for its size: there is no note,
  length or time-change cap unless a `Filters` asks for one.
  """

  def __init__(self, path, reason: str, detail: str = ''):
    self.path = str(path)
    self.reason = reason
    self.detail = detail
    super().__init__(f'{self.path}: {reason}' + (f' ({detail})' if detail else ''))


@dataclasses.dataclass(frozen=True)
class Filters:
  """Optional filters of Magenta's Beam preprocessing script (`preprocess_tfrecord.py`).

  All off by default: the reference converters (what `music_vae_train` applies, and what magenta
  mode reproduces) have none of them, and they throw away real music (dense songs, expressive
  recordings). `Filters.magenta_preprocess()` gives the script's defaults, for users who want to
  reproduce a dataset made with it. Like the script:
    * `max_parts`: a file split at tempo / time-signature changes into more parts is skipped
      (reason 'filtered_parts');
    * `max_seconds`, `max_notes`: a part longer, or with more notes, is dropped;
    * `min_velocities`: a part with fewer distinct note-on velocities is dropped;
    * `min_metric_positions`: a part whose note onsets, quantised at 16 steps per quarter, fall
      on fewer distinct positions within a quarter note is dropped.
  Dropped parts are counted per filter in the build report (`counted`).
  """
  max_parts: int | None = None
  max_seconds: float | None = None
  max_notes: int | None = None
  min_velocities: int = 0
  min_metric_positions: int = 0

  @classmethod
  def magenta_preprocess(cls) -> 'Filters':
    """The script's defaults: 100 parts, 30 minutes, 10,000 notes, 1 velocity, 1 position."""
    return cls(max_parts=100, max_seconds=1800.0, max_notes=10_000, min_velocities=1,
               min_metric_positions=1)

  @property
  def active(self) -> bool:
    return self != Filters()

  def part_reason(self, ns: note_seq.NoteSequence) -> str | None:
    """Why the script would drop this (split) part, or None."""
    if self.max_seconds is not None and ns.total_time > self.max_seconds:
      return 'max_seconds'
    if self.max_notes is not None and len(ns.notes) > self.max_notes:
      return 'max_notes'
    if self.min_velocities or self.min_metric_positions:
      sounding = [n for n in ns.notes if n.velocity > 0]
      if len({n.velocity for n in sounding}) < self.min_velocities:
        return 'min_velocities'
      if self.min_metric_positions:
        try:
          fine = quantize(ns, 16)
        except QuantizationError:
          return 'quantize_failed'
        starts = fine.start[fine.velocity > 0]
        if len(np.unique(starts % 16)) < self.min_metric_positions:
          return 'min_metric_positions'
    return None


class QuantizationError(ValueError):
  """A part whose time signature, tempo or note times cannot be put on the step grid."""


def _parse_mido(data: bytes, path) -> mido.MidiFile:
  import mido  # pylint: disable=g-import-not-at-top
  try:
    # Same parser settings as pretty_midi, so acceptance matches note-seq's own reader.
    return mido.MidiFile(file=io.BytesIO(data), charset='latin1')
  except EOFError as e:
    raise MidiError(path, 'truncated', str(e)) from e
  except Exception as e:  # mido raises OSError, ValueError, KeyError, IndexError... on junk.
    raise MidiError(path, 'unreadable', f'{type(e).__name__}: {e}') from e


class _TickTimes:
  """pretty_midi's tick -> seconds table, computed on demand instead of stored.

  pretty_midi allocates one float per tick up to the last event (800 MB for a file with a 1e8-tick
  gap). This object gives the same floats (the same arithmetic, segment by segment) for any tick,
  holding one entry per tempo segment.
  """

  def __init__(self, tick_scales, max_tick):
    self._starts, self._bases, self._scales = [], [], []
    last = 0
    for (start, scale), (end, _) in zip(tick_scales[:-1], tick_scales[1:]):
      self._add(start, last, scale)
      last = last + scale * (end - start)
    start, scale = tick_scales[-1]
    self._add(start, last, scale)
    self._len = int(max_tick) + 1

  def _add(self, start, base, scale):
    if self._starts and self._starts[-1] == start:  # a later segment overwrites an empty one
      self._bases[-1], self._scales[-1] = base, scale
    else:
      self._starts.append(start)
      self._bases.append(base)
      self._scales.append(scale)

  def __len__(self):
    return self._len

  def segments(self):
    """(first tick, seconds at that tick, seconds per tick) of each tempo segment, as lists."""
    return self._starts, self._bases, self._scales

  def __getitem__(self, tick):
    tick = int(tick)
    if not 0 <= tick < self._len:
      raise IndexError(tick)
    i = bisect.bisect_right(self._starts, tick) - 1
    return self._bases[i] + self._scales[i] * (tick - self._starts[i])


_PRETTY_MIDI_CLASS = []


def _pretty_midi_class():
  """pretty_midi's reader with a lazy tick -> time table (memory independent of tick count)."""
  if not _PRETTY_MIDI_CLASS:
    import pretty_midi  # pylint: disable=g-import-not-at-top

    class _PrettyMIDI(pretty_midi.PrettyMIDI):

      def _update_tick_to_time(self, max_tick):
        max_tick = max(max_tick, max(t[0] for t in self._tick_scales))
        self._PrettyMIDI__tick_to_time = _TickTimes(self._tick_scales, max_tick)  # pylint: disable=invalid-name

    _PRETTY_MIDI_CLASS.append(_PrettyMIDI)
  return _PRETTY_MIDI_CLASS[0]


def midi_bytes_to_note_sequence(data: bytes, path='<bytes>', *,
                                reject_empty_tracks: bool = False) -> note_seq.NoteSequence:
  """Parses MIDI bytes into a NoteSequence; raises `MidiError` for anything unusable.

  Same result as note-seq's `midi_file_to_note_sequence` (the reference's reader) wherever that
  one succeeds, also on files with huge gaps or thousands of tempo changes (it costs time and
  memory linear in the number of events, not in ticks). A file with an empty track chunk, which
  the reference's reader fails on as a whole, is read without that track (it carries nothing),
  unless `reject_empty_tracks` (magenta mode: the reference's windows, none extra) makes it the
  skip reason 'empty_track'.
  """
  import note_seq  # pylint: disable=g-import-not-at-top
  mid = _parse_mido(data, path)
  # pretty_midi fails on a whole file when one track has no events at all (max() of an empty
  # list); such tracks carry nothing, so drop them.
  if reject_empty_tracks and any(not len(t) for t in mid.tracks):
    raise MidiError(path, 'empty_track', 'a track chunk with no events')
  mid.tracks = [t for t in mid.tracks if len(t)]
  if not mid.tracks:
    raise MidiError(path, 'no_tracks')
  if mid.ticks_per_beat <= 0:
    raise MidiError(path, 'unreadable', f'ticks_per_beat={mid.ticks_per_beat}')
  max_ticks = max(sum(msg.time for msg in t) for t in mid.tracks)
  if max_ticks + 1 > MAX_TICKS:
    raise MidiError(path, 'corrupt_ticks', f'last event at tick {max_ticks}')
  try:
    # pretty_midi warns about odd but readable files (tempo events on other tracks, ...): a
    # note in the log (see mvae_jax.logs), not a console line per file of a build.
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter('always')
      pm = _pretty_midi_class()(mido_object=mid)
      ns = note_seq.midi_to_note_sequence(pm)
    for w in caught:
      _LOG.info('%s: %s', path, w.message)
  except MidiError:
    raise
  except Exception as e:
    raise MidiError(path, 'unreadable', f'{type(e).__name__}: {e}') from e
  if not ns.notes:
    raise MidiError(path, 'no_notes')
  ns.filename = os.path.basename(str(path))
  return ns


def read_midi(path, *, reject_empty_tracks: bool = False) -> note_seq.NoteSequence:
  """Reads a MIDI file into an unquantised NoteSequence (see `midi_bytes_to_note_sequence`)."""
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as e:
    raise MidiError(path, 'unreadable', str(e)) from e
  return midi_bytes_to_note_sequence(data, path, reject_empty_tracks=reject_empty_tracks)


def split_on_time_changes(ns: note_seq.NoteSequence, filters: Filters | None = None):
  """Splits at every tempo / time-signature change; each part restarts at time 0.

  note-seq's splitter (what the reference uses): linear in notes and time changes (2,000 tempo
  changes and 22,000 notes split in about 0.2 s). With `filters.max_parts`, a file with more
  parts raises `MidiError(..., 'filtered_parts')`.
  """
  from note_seq import sequences_lib  # pylint: disable=g-import-not-at-top
  parts = sequences_lib.split_note_sequence_on_time_changes(ns)
  if filters is not None and filters.max_parts is not None and len(parts) > filters.max_parts:
    raise MidiError(ns.filename or '<sequence>', 'filtered_parts',
                    f'{len(parts)} parts > max_parts={filters.max_parts}')
  return parts


@dataclasses.dataclass(frozen=True)
class QuantizedPart:
  """One constant-tempo, constant-meter part on the step grid. Note arrays are [num_notes]."""
  start: np.ndarray       # int64 quantised onset step
  end: np.ndarray         # int64 quantised offset step (> start)
  pitch: np.ndarray       # int64 MIDI pitch
  velocity: np.ndarray    # int64
  instrument: np.ndarray  # int64 note-seq instrument index
  program: np.ndarray     # int64 GM program
  is_drum: np.ndarray     # bool
  total_steps: int        # quantised length of the part (>= every end)
  steps_per_bar: float    # from the time signature; 16.0 for 4/4-equivalent meters
  qpm: float


def _single_value(events, key, default, implicit_ok, what):
  """The one value that `events` (time signatures or tempos) hold, note-seq's rules."""
  if not events:
    return default
  ordered = sorted(events, key=lambda e: e.time)
  if ordered[0].time != 0 and not implicit_ok(ordered[0]):
    raise QuantizationError(f'implicit {what} change at {ordered[0].time:.2f} s')
  first = key(events[0])
  if any(key(e) != first for e in ordered[1:]):
    raise QuantizationError(f'{what} change inside a part')
  return first


def quantize(ns: note_seq.NoteSequence, steps_per_quarter: int = STEPS_PER_QUARTER) -> QuantizedPart:
  """Quantises one part (a single tempo and meter) to `steps_per_quarter` steps per quarter.

  Times snap to the nearest step (`int(seconds * steps_per_second + 0.5)`), a note shorter than a
  step lasts one step: the same grid as note-seq's `quantize_note_sequence`.
  """
  notes = ns.notes
  times = np.array([(n.start_time, n.end_time) for n in notes], np.float64).reshape(-1, 2)
  ints = np.array([(n.pitch, n.velocity, n.instrument, n.program, n.is_drum) for n in notes],
                  np.int64).reshape(-1, 5)
  return quantize_arrays(ns.time_signatures, ns.tempos, times, ints, ns.total_time,
                          steps_per_quarter)


def quantize_arrays(time_signatures, tempos, times, ints, total_time, steps_per_quarter):
  """`quantize` on arrays: times float64 [n, 2] (start, end in seconds), ints int64 [n, 5]
  (pitch, velocity, instrument, program, is_drum); events with `.time` and their values."""
  num, den = _single_value(time_signatures, lambda t: (t.numerator, t.denominator), (4, 4),
                           lambda t: (t.numerator, t.denominator) == (4, 4), 'time signature')
  if den <= 0 or den & (den - 1) or num == 0:
    raise QuantizationError(f'bad time signature {num}/{den}')
  qpm = _single_value(tempos, lambda t: t.qpm, _DEFAULT_QPM,
                      lambda t: t.qpm == _DEFAULT_QPM, 'tempo')
  steps_per_second = steps_per_quarter * qpm / 60.0
  steps = (times * steps_per_second + 0.5).astype(np.int64)  # truncation, like int()
  start, end = steps[:, 0], steps[:, 1]
  end = np.where(end == start, end + 1, end)
  if (start < 0).any() or (end < 0).any():
    raise QuantizationError('negative note time')
  total = int(total_time * steps_per_second + 0.5)
  if len(end):
    total = max(total, int(end.max()))
  return QuantizedPart(start=start, end=end, pitch=ints[:, 0], velocity=ints[:, 1],
                       instrument=ints[:, 2], program=ints[:, 3], is_drum=ints[:, 4].astype(bool),
                       total_steps=total, steps_per_bar=steps_per_quarter * 4.0 / den * num,
                       qpm=float(qpm))


def quantized_parts(ns: note_seq.NoteSequence, steps_per_quarter: int = STEPS_PER_QUARTER,
                    steps_per_bar: int = 16, filters: Filters | None = None, counts=None):
  """Splits `ns` at time changes and quantises each part, keeping `steps_per_bar` parts only.

  Parts that cannot be quantised (bad meter, negative times, an unsplit tempo change) and parts
  in any other meter are dropped; a part too short for a window simply yields none later. With
  `filters`, parts the preprocessing script would drop are dropped too, counted per reason in
  `counts` (a `collections.Counter`, optional).
  """
  return [part for part, _, _ in located_parts(ns, steps_per_quarter, steps_per_bar, filters,
                                               counts)]


def located_parts(ns: note_seq.NoteSequence, steps_per_quarter: int = STEPS_PER_QUARTER,
                  steps_per_bar: int = 16, filters: Filters | None = None, counts=None):
  """`quantized_parts` with where each part starts in the piece: [(part, seconds, bars)].

  `bars` counts the bars before the part, each earlier section in its own meter and tempo
  (dropped sections included), so a window starting at step s of the part starts at bar
  `bars + s / steps_per_bar` of the piece (0-based; fractional only after a change mid-bar).
  """
  located = []
  subs = split_on_time_changes(ns, filters)
  bars = 0.0
  for k, sub in enumerate(subs):
    offset = sub.subsequence_info.start_time_offset
    why = filters.part_reason(sub) if filters is not None else None
    if why is not None:
      if counts is not None:
        counts[why] += 1
      part = None
    else:
      try:
        part = quantize(sub, steps_per_quarter)
      except QuantizationError:
        part = None
    if part is not None and part.steps_per_bar == steps_per_bar:
      located.append((part, offset, bars))
    end = subs[k + 1].subsequence_info.start_time_offset if k + 1 < len(subs) else None
    if end is not None:
      qpm = sub.tempos[0].qpm if sub.tempos else _DEFAULT_QPM
      num, den = ((sub.time_signatures[0].numerator, sub.time_signatures[0].denominator)
                  if sub.time_signatures else (4, 4))
      quarters_per_bar = 4.0 * num / den if num > 0 and den > 0 else 4.0
      bars += (end - offset) * qpm / 60.0 / quarters_per_bar
  return located
