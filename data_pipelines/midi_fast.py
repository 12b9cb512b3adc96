"""MIDI bytes -> quantised parts without mido / pretty_midi / NoteSequence objects (the fast path).

`read_parts` gives exactly what `midi.quantized_parts(midi.midi_bytes_to_note_sequence(...))`
gives (the reference's reading: mido's parser, pretty_midi's note pairing and tempo map, note-seq's
conversion and time-change splitting), at a fraction of the cost: one pass over the bytes that
keeps only note, program and meta events, then numpy over note arrays.

The fast path only handles what it reproduces exactly. A file with anything unusual for it (system
exclusive or system common messages, running status without a status, a message running past its
track chunk, a data byte above 127, a truncated file, a meta message mido or pretty_midi refuse,
a zero tempo, ticks_per_beat <= 0, no notes, a last event beyond `midi.MAX_TICKS`...) is read by
the full path instead (`_Fallback`), which gives the skip reasons and results it always gave. So
the fast path changes speed only; tests/test_midi_fast.py checks it against the full path on every
test corpus and on synthetic files with the awkward cases (overlapping notes of one pitch,
note-offs at a note-on's tick, note-offs without a note-on, tempo events on other tracks, running
status, program changes while a note sounds).
"""

from __future__ import annotations

import collections
import struct

import numpy as np
import pretty_midi
from mido.midifiles import meta as mido_meta

from data_pipelines import midi

_MAX_MESSAGE_LENGTH = 1_000_000  # mido's limit on a meta / sysex message

_TimeSignature = collections.namedtuple('_TimeSignature', 'time numerator denominator')
_Tempo = collections.namedtuple('_Tempo', 'time qpm')


class _Fallback(Exception):
  """The fast path does not handle this file; the full path reads it."""


# Data bytes of the system messages mido reads in a track (after their status byte); 0xf4,
# 0xf5, 0xf9 and 0xfd are undefined (mido refuses the file), 0xff is a meta event there.
_SYSTEM_SIZES = {0xf1: 1, 0xf2: 2, 0xf3: 1, 0xf6: 0, 0xf8: 0, 0xfa: 0, 0xfb: 0, 0xfc: 0, 0xfe: 0}


def _skip_system(data: bytes, pos: int, status: int, running: bool) -> int:
  """Steps over a system message as mido reads it; returns the position after it.

  `pos` is just after the status byte or, with `running` status (mido lets system messages set
  running status too), at the data byte that stands for it. Sysex (0xf0 and the 0xf7 escape
  form): a length, then that many bytes, of which mido strips a leading 0xf0 and a trailing 0xf7
  and refuses any other byte > 127; under running status it reads the data byte, drops it, and
  reads the length after it. System common and real-time messages: their fixed number of data
  bytes, the running data byte being the first; under running status a message without data
  bytes is one mido refuses. Nothing of these reaches pretty_midi's notes or tempo map, so the
  message is only checked, not kept; what mido refuses raises `_Fallback` (the full path then
  gives its skip reason).
  """
  if status == 0xf0 or status == 0xf7:
    if running:
      pos += 1
    b = data[pos]
    pos += 1
    length = b & 0x7f
    while b & 0x80:
      b = data[pos]
      pos += 1
      length = (length << 7) | (b & 0x7f)
    end = pos + length
    if length > _MAX_MESSAGE_LENGTH or end > len(data):
      raise _Fallback('sysex message too long')
    if length:
      first = pos + (data[pos] == 0xf0)
      last = end - (data[end - 1] == 0xf7)
      if first < last and max(data[first:last]) > 127:
        raise _Fallback('sysex data byte > 127')
    return end
  size = _SYSTEM_SIZES.get(status)
  if size is None:
    raise _Fallback('undefined status byte')
  if running and not size:
    raise _Fallback('running status of a message without data bytes')
  end = pos + size
  if end > len(data):
    raise _Fallback('truncated')
  if size and max(data[pos:end]) > 127:
    raise _Fallback('data byte > 127')
  return end


def _read_track(data: bytes, pos: int, end: int, track_idx: int, instruments: dict, notes: list):
  """Reads one track chunk data[pos:end] as mido does, pairing its notes as pretty_midi does.

  pretty_midi's pairing: a note-off (or note-on with velocity 0) closes every open note of its
  channel and pitch that did not start on this very tick, into the instrument (program at the
  note-off, channel, track); if it closes none, it forgets the open ones. Closed notes are
  appended to `notes` as (start tick, end tick, pitch, velocity, instrument index), new
  instruments to `instruments` ((program, channel, track) -> index, in creation order).

  Returns (metas [(tick, type, bytes)], last tick). System messages are checked and stepped
  over (`_skip_system`); anything mido would refuse raises `_Fallback`.
  """
  metas = []
  add_note = notes.append
  last_note_on = {}
  current = [0] * 16  # program per channel
  tick = 0
  last_status = -1
  while pos != end:
    if pos > end:
      raise _Fallback('message runs past the track chunk')
    b = data[pos]
    pos += 1
    delta = b & 0x7f
    while b & 0x80:
      b = data[pos]
      pos += 1
      delta = (delta << 7) | (b & 0x7f)
    tick += delta
    status = data[pos]
    if status & 0x80:
      pos += 1
      if status == 0xff:
        mtype = data[pos]
        pos += 1
        b = data[pos]
        pos += 1
        length = b & 0x7f
        while b & 0x80:
          b = data[pos]
          pos += 1
          length = (length << 7) | (b & 0x7f)
        if length > _MAX_MESSAGE_LENGTH or pos + length > len(data):
          raise _Fallback('meta message too long')
        metas.append((tick, mtype, data[pos:pos + length]))
        pos += length
        continue
      last_status = status
    elif last_status < 0:
      raise _Fallback('running status without a status')
    else:
      status = last_status
      if status >= 0xf0:
        pos = _skip_system(data, pos, status, True)
        continue
    kind = status & 0xf0
    if kind == 0xc0 or kind == 0xd0:
      d1 = data[pos]
      pos += 1
      if d1 & 0x80:
        raise _Fallback('data byte > 127')
      if kind == 0xc0:
        current[status & 0x0f] = d1
      continue
    if status >= 0xf0:
      pos = _skip_system(data, pos, status, False)
      continue
    d1 = data[pos]
    d2 = data[pos + 1]
    pos += 2
    if (d1 | d2) & 0x80:
      raise _Fallback('data byte > 127')
    if kind > 0x90:
      continue
    key = status & 0x0f, d1
    if kind == 0x90 and d2:
      open_notes = last_note_on.get(key)
      if open_notes is None:
        last_note_on[key] = [(tick, d2)]
      else:
        open_notes.append((tick, d2))
      continue
    open_notes = last_note_on.pop(key, None)
    if open_notes is None:
      continue
    close = [n for n in open_notes if n[0] != tick]
    if not close:
      continue
    ikey = (current[key[0]], key[0], track_idx)
    inst = instruments.get(ikey)
    if inst is None:
      inst = instruments[ikey] = len(instruments)
    for start, velocity in close:
      add_note((start, tick, d1, velocity, inst))
    if len(close) < len(open_notes):
      last_note_on[key] = [n for n in open_notes if n[0] == tick]
  return metas, tick


def _read_tracks(data: bytes):
  """Reads a well-formed file: (ticks_per_beat, tracks [(metas, last tick, chunk size)],
  instruments, notes); see `_read_track`. Empty track chunks get no track index (pretty_midi
  cannot read them, so the full reader drops them)."""
  if len(data) < 14 or data[:4] != b'MThd':
    raise _Fallback('no MThd header')
  size = int.from_bytes(data[4:8], 'big')
  if size < 6 or 8 + size > len(data):
    raise _Fallback('short header')
  _, num_tracks, ticks_per_beat = struct.unpack('>hhh', data[8:14])
  pos = 8 + size
  tracks, instruments, notes = [], {}, []
  try:
    for _ in range(num_tracks):
      if data[pos:pos + 4] != b'MTrk' or pos + 8 > len(data):
        raise _Fallback('no MTrk header')
      chunk = int.from_bytes(data[pos + 4:pos + 8], 'big')
      start = pos + 8
      if start + chunk > len(data):
        raise _Fallback('truncated track')
      track_idx = sum(1 for t in tracks if t[2])
      tracks.append(_read_track(data, start, start + chunk, track_idx, instruments, notes)
                    + (chunk,))
      pos = start + chunk
  except IndexError as e:
    raise _Fallback('truncated') from e
  return ticks_per_beat, tracks, instruments, notes


def _decode_metas(metas):
  """mido's decoding of every meta message (its errors mean the full path's error)."""
  out = []
  for tick, mtype, raw in metas:
    try:
      msg = mido_meta.build_meta_message(mtype, list(raw))
    except Exception as e:  # pylint: disable=broad-except
      raise _Fallback('meta message mido refuses') from e
    out.append((tick, msg))
  return out


class _Piece:
  """What the reference's NoteSequence holds that quantisation uses, as arrays."""

  def __init__(self, times, ints, total_time, time_signatures, tempos):
    self.times = times                      # float64 [n, 2]: start, end (seconds)
    self.ints = ints                        # int64 [n, 5]: pitch, velocity, instrument,
                                            # program, is_drum
    self.total_time = total_time
    self.time_signatures = time_signatures  # [_TimeSignature]
    self.tempos = tempos                    # [_Tempo]


def _piece(data: bytes, path, reject_empty_tracks: bool) -> _Piece:
  ticks_per_beat, tracks, instruments, notes = _read_tracks(data)
  if reject_empty_tracks and any(chunk == 0 for *_, chunk in tracks):
    raise midi.MidiError(path, 'empty_track', 'a track chunk with no events')
  tracks = [t for t in tracks if t[2]]  # pretty_midi cannot read empty tracks: they carry nothing
  if not tracks or ticks_per_beat <= 0:
    raise _Fallback('no tracks')
  max_tick = max(t[1] for t in tracks)
  if max_tick + 1 > midi.MAX_TICKS:
    raise _Fallback('corrupt ticks')
  resolution = ticks_per_beat
  metas = [_decode_metas(t[0]) for t in tracks]
  # pretty_midi: tempo, time and key signatures from the first track only.
  try:
    scales = [(0, 60.0 / (120.0 * resolution))]
    for tick, msg in metas[0]:
      if msg.type == 'set_tempo':
        if tick == 0:
          bpm = 6e7 / msg.tempo
          scales = [(0, 60.0 / (bpm * resolution))]
        else:
          _, last = scales[-1]
          scale = 60.0 / ((6e7 / msg.tempo) * resolution)
          if scale != last:
            scales.append((tick, scale))
  except ZeroDivisionError as e:
    raise _Fallback('zero tempo') from e
  table = midi._TickTimes(scales, max_tick + 1)  # pylint: disable=protected-access
  starts, bases, rates = table.segments()
  starts, bases, rates = (np.array(starts, np.int64), np.array(bases, np.float64),
                          np.array(rates, np.float64))
  time_signatures = []
  try:
    for tick, msg in metas[0]:
      if msg.type == 'time_signature':
        ts = pretty_midi.TimeSignature(msg.numerator, msg.denominator, table[tick])
        time_signatures.append(_TimeSignature(ts.time, ts.numerator, ts.denominator))
      elif msg.type == 'key_signature':
        pretty_midi.KeySignature(pretty_midi.key_name_to_key_number(msg.key), table[tick])
  except ValueError as e:
    raise _Fallback('signature pretty_midi refuses') from e
  tempos = [_Tempo(table[tick], 60.0 / (scale * resolution)) for tick, scale in scales]

  if not notes:
    raise _Fallback('no notes')
  arr = np.array(notes, np.int64)
  # note-seq's order: instrument by instrument, each in pretty_midi's append order.
  arr = arr[np.argsort(arr[:, 4], kind='stable')]
  ticks = arr[:, :2]
  seg = np.searchsorted(starts, ticks, side='right') - 1
  times = bases[seg] + rates[seg] * (ticks - starts[seg])
  info = np.array(list(instruments), np.int64)  # [instrument] -> (program, channel, track)
  inst = arr[:, 4]
  ints = np.stack([arr[:, 2], arr[:, 3], inst, info[inst, 0], info[inst, 1] == 9], 1)
  return _Piece(times, ints, float(times[:, 1].max()), time_signatures, tempos)


def _stateful(events, split_times):
  """note-seq's `_extract_subsequences` for one kind of state event: the events of each part,
  in its order, with their times in the part."""
  parts = [[] for _ in range(len(split_times) - 1)]
  previous = None
  index = -1
  for event in sorted(events, key=lambda e: e.time):
    if event.time <= split_times[0]:
      previous = event
      continue
    while index < len(split_times) - 1 and event.time > split_times[index + 1]:
      index += 1
      if index == len(split_times) - 1:
        break
      if previous is not None:
        parts[index].append(previous._replace(time=0.0))
    if index == len(split_times) - 1:
      break
    if event.time < split_times[index + 1]:
      parts[index].append(event._replace(time=event.time - split_times[index]))
    previous = event
  while index < len(split_times) - 2:
    index += 1
    if previous is not None:
      parts[index].append(previous._replace(time=0.0))
  return parts


def _split(piece: _Piece):
  """note-seq's `split_note_sequence_on_time_changes`: [(time sigs, tempos, times, ints, total)]."""
  changes = sorted(piece.time_signatures + piece.tempos, key=lambda t: t.time)
  changes = [t for t in changes if t.time < piece.total_time]
  numerator, denominator, qpm = 4, 4, 120.0
  split_times = [0.0]
  for change in changes:
    if isinstance(change, _TimeSignature):
      if (change.numerator, change.denominator) == (numerator, denominator):
        continue
    elif change.qpm == qpm:
      continue
    if change.time > split_times[-1]:
      split_times.append(change.time)
    if isinstance(change, _TimeSignature):
      numerator, denominator = change.numerator, change.denominator
    else:
      qpm = change.qpm
  if piece.total_time > split_times[-1]:
    split_times.append(piece.total_time)
  if len(split_times) < 2:
    return []
  order = np.argsort(piece.times[:, 0], kind='stable')
  times, ints = piece.times[order], piece.ints[order]
  bounds = np.array(split_times, np.float64)
  # Notes are sorted by onset: part i holds notes [first[i], first[i + 1]) (a note starting at
  # or after the last split time, the end, belongs to none).
  first = np.searchsorted(times[:, 0], bounds, side='left')
  signatures = _stateful(piece.time_signatures, split_times)
  tempos = _stateful(piece.tempos, split_times)
  out = []
  for i in range(len(split_times) - 1):
    sel = slice(first[i], first[i + 1])
    t = times[sel]
    offset = split_times[i]
    part_times = np.stack([t[:, 0] - offset, np.minimum(t[:, 1], split_times[i + 1]) - offset], 1)
    total = max(0.0, float(part_times[:, 1].max())) if len(t) else 0.0
    out.append((signatures[i], tempos[i], part_times, ints[sel], total))
  return out


def read_parts(data: bytes, path='<bytes>', *, reject_empty_tracks: bool = False,
               steps_per_quarter: int = midi.STEPS_PER_QUARTER, steps_per_bar: int = 16):
  """MIDI bytes -> the parts `midi.quantized_parts` keeps (no filters); raises `midi.MidiError`.

  Equal to `midi.quantized_parts(midi.midi_bytes_to_note_sequence(data, path,
  reject_empty_tracks=...), steps_per_quarter, steps_per_bar)`, which is what runs for the files
  the fast path leaves to it (see the module docstring).
  """
  try:
    piece = _piece(data, path, reject_empty_tracks)
  except _Fallback:
    ns = midi.midi_bytes_to_note_sequence(data, path, reject_empty_tracks=reject_empty_tracks)
    return midi.quantized_parts(ns, steps_per_quarter, steps_per_bar)
  parts = []
  for signatures, tempos, times, ints, total in _split(piece):
    try:
      part = midi.quantize_arrays(signatures, tempos, times, ints, total, steps_per_quarter)
    except midi.QuantizationError:
      continue
    if part.steps_per_bar == steps_per_bar:
      parts.append(part)
  return parts


def read_file_parts(path, **kwargs):
  """`read_parts` of a file; an unreadable file raises `midi.MidiError(path, 'unreadable')`."""
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as e:
    raise midi.MidiError(path, 'unreadable', str(e)) from e
  return read_parts(data, path, **kwargs)
