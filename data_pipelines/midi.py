"""Safe MIDI reading, time-change splitting and quantisation (TF-free).

MIDI -> NoteSequence goes through note-seq (`midi_to_note_sequence`, i.e. pretty_midi), with
guards so that one pathological file among millions cannot stall or blow up a build: every bad
file raises `MidiError(path, reason)` with a short reason code, and callers count and skip it.

After reading, a piece is split at tempo and time-signature changes (note-seq's
`split_note_sequence_on_time_changes`; bar lines restart at each part's start) and each part is
quantised to a fixed grid (4 steps per quarter) into flat numpy arrays (`QuantizedPart`), which is
what `encoding.py` works on. Parts whose bar is not 16 steps (anything but 4/4, 2/2, 8/8, ...) or
whose time data is unusable are dropped.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import os
import warnings

import mido
import note_seq
import numpy as np
import pretty_midi
from note_seq import sequences_lib

# Reference guards: pieces longer than 30 minutes or with more than 10,000 notes are skipped, and
# at most 100 splits at tempo / time-signature changes are accepted.
MAX_SECONDS = 30 * 60.0
MAX_NOTES = 10_000
MAX_TIME_CHANGES = 100
# Tempos outside this range (quarter notes per minute) make step counts explode or vanish.
MIN_QPM = 1.0
MAX_QPM = 1000.0
MAX_FILE_BYTES = 16 * 1024 * 1024

STEPS_PER_QUARTER = 4
_LOG = logging.getLogger(__name__)
_DEFAULT_QPM = 120.0  # the implicit tempo of a MIDI file without tempo events


class MidiError(ValueError):
  """A MIDI file that cannot be used; `reason` is a short code for build reports.

  Reason codes: 'unreadable', 'truncated', 'no_tracks', 'too_big', 'absurd_tempo', 'too_long',
  'too_many_notes', 'too_many_time_changes', 'no_notes'.
  """

  def __init__(self, path, reason: str, detail: str = ''):
    self.path = str(path)
    self.reason = reason
    self.detail = detail
    super().__init__(f'{self.path}: {reason}' + (f' ({detail})' if detail else ''))


class QuantizationError(ValueError):
  """A part whose time signature, tempo or note times cannot be put on the step grid."""


def _parse_mido(data: bytes, path) -> mido.MidiFile:
  try:
    # Same parser settings as pretty_midi, so acceptance matches note-seq's own reader.
    return mido.MidiFile(file=io.BytesIO(data), charset='latin1')
  except EOFError as e:
    raise MidiError(path, 'truncated', str(e)) from e
  except Exception as e:  # mido raises OSError, ValueError, KeyError, IndexError... on junk.
    raise MidiError(path, 'unreadable', f'{type(e).__name__}: {e}') from e


def midi_bytes_to_note_sequence(data: bytes, path='<bytes>', *, max_seconds=MAX_SECONDS,
                                max_notes=MAX_NOTES) -> note_seq.NoteSequence:
  """Parses MIDI bytes into a NoteSequence; raises `MidiError` for anything unusable."""
  if len(data) > MAX_FILE_BYTES:
    raise MidiError(path, 'too_big', f'{len(data)} bytes')
  mid = _parse_mido(data, path)
  # pretty_midi fails on a whole file when one track has no events at all (max() of an empty
  # list); such tracks carry nothing, so drop them.
  mid.tracks = [t for t in mid.tracks if len(t)]
  if not mid.tracks:
    raise MidiError(path, 'no_tracks')
  if mid.ticks_per_beat <= 0:
    raise MidiError(path, 'unreadable', f'ticks_per_beat={mid.ticks_per_beat}')
  for track in mid.tracks:
    for msg in track:
      if msg.type == 'set_tempo':
        qpm = 6e7 / msg.tempo if msg.tempo > 0 else math.inf
        if not MIN_QPM <= qpm <= MAX_QPM:
          raise MidiError(path, 'absurd_tempo', f'{qpm:.3g} qpm')
  # Bound the length in ticks before pretty_midi allocates its tick -> time table.
  max_ticks = max(sum(msg.time for msg in t) for t in mid.tracks)
  # At the slowest allowed tempo a tick lasts 60 / (MIN_QPM * ticks_per_beat) s: a cheap upper
  # bound in ticks for MAX_SECONDS; pretty_midi itself refuses more than 1e7 ticks.
  if max_ticks > 10_000_000:
    raise MidiError(path, 'too_long', f'{max_ticks} ticks')
  try:
    # pretty_midi warns about odd but readable files (tempo events on other tracks, ...): a
    # note in the log (see mvae_jax.logs), not a console line per file of a build.
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter('always')
      pm = pretty_midi.PrettyMIDI(mido_object=mid)
      ns = note_seq.midi_to_note_sequence(pm)
    for w in caught:
      _LOG.info('%s: %s', path, w.message)
  except MidiError:
    raise
  except Exception as e:
    raise MidiError(path, 'unreadable', f'{type(e).__name__}: {e}') from e
  if ns.total_time > max_seconds:
    raise MidiError(path, 'too_long', f'{ns.total_time:.0f} s')
  if len(ns.notes) > max_notes:
    raise MidiError(path, 'too_many_notes', f'{len(ns.notes)} notes')
  if not ns.notes:
    raise MidiError(path, 'no_notes')
  ns.filename = os.path.basename(str(path))
  return ns


def read_midi(path, **kwargs) -> note_seq.NoteSequence:
  """Reads a MIDI file into an unquantised NoteSequence (see `midi_bytes_to_note_sequence`)."""
  try:
    with open(path, 'rb') as f:
      data = f.read(MAX_FILE_BYTES + 1)
  except OSError as e:
    raise MidiError(path, 'unreadable', str(e)) from e
  return midi_bytes_to_note_sequence(data, path, **kwargs)


def split_on_time_changes(ns: note_seq.NoteSequence, max_time_changes=MAX_TIME_CHANGES):
  """Splits at every tempo / time-signature change; each part restarts at time 0.

  Raises `MidiError(..., 'too_many_time_changes')` above `max_time_changes` splits.
  """
  parts = sequences_lib.split_note_sequence_on_time_changes(ns)
  if max_time_changes is not None and len(parts) - 1 > max_time_changes:
    raise MidiError(ns.filename or '<sequence>', 'too_many_time_changes', f'{len(parts) - 1}')
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
  num, den = _single_value(ns.time_signatures, lambda t: (t.numerator, t.denominator), (4, 4),
                           lambda t: (t.numerator, t.denominator) == (4, 4), 'time signature')
  if den <= 0 or den & (den - 1) or num == 0:
    raise QuantizationError(f'bad time signature {num}/{den}')
  qpm = _single_value(ns.tempos, lambda t: t.qpm, _DEFAULT_QPM,
                      lambda t: t.qpm == _DEFAULT_QPM, 'tempo')
  steps_per_second = steps_per_quarter * qpm / 60.0
  notes = ns.notes
  times = np.array([(n.start_time, n.end_time) for n in notes], np.float64).reshape(-1, 2)
  ints = np.array([(n.pitch, n.velocity, n.instrument, n.program, n.is_drum) for n in notes],
                  np.int64).reshape(-1, 5)
  steps = (times * steps_per_second + 0.5).astype(np.int64)  # truncation, like int()
  start, end = steps[:, 0], steps[:, 1]
  end = np.where(end == start, end + 1, end)
  if (start < 0).any() or (end < 0).any():
    raise QuantizationError('negative note time')
  total = int(ns.total_time * steps_per_second + 0.5)
  if len(end):
    total = max(total, int(end.max()))
  return QuantizedPart(start=start, end=end, pitch=ints[:, 0], velocity=ints[:, 1],
                       instrument=ints[:, 2], program=ints[:, 3], is_drum=ints[:, 4].astype(bool),
                       total_steps=total, steps_per_bar=steps_per_quarter * 4.0 / den * num,
                       qpm=float(qpm))


def quantized_parts(ns: note_seq.NoteSequence, steps_per_quarter: int = STEPS_PER_QUARTER,
                    steps_per_bar: int = 16, max_time_changes=MAX_TIME_CHANGES):
  """Splits `ns` at time changes and quantises each part, keeping `steps_per_bar` parts only.

  Parts that cannot be quantised (bad meter, negative times, an unsplit tempo change) and parts
  in any other meter are dropped; raises `MidiError` for too many time changes.
  """
  return [part for part, _, _ in located_parts(ns, steps_per_quarter, steps_per_bar,
                                               max_time_changes)]


def located_parts(ns: note_seq.NoteSequence, steps_per_quarter: int = STEPS_PER_QUARTER,
                  steps_per_bar: int = 16, max_time_changes=MAX_TIME_CHANGES):
  """`quantized_parts` with where each part starts in the piece: [(part, seconds, bars)].

  `bars` counts the bars before the part, each earlier section in its own meter and tempo
  (dropped sections included), so a window starting at step s of the part starts at bar
  `bars + s / steps_per_bar` of the piece (0-based; fractional only after a change mid-bar).
  """
  located = []
  subs = split_on_time_changes(ns, max_time_changes)
  bars = 0.0
  for k, sub in enumerate(subs):
    offset = sub.subsequence_info.start_time_offset
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
