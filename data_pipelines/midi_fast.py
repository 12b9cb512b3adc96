"""MIDI bytes -> quantised parts without mido / pretty_midi / NoteSequence objects (the fast path).

`read_parts` gives exactly what `midi.quantized_parts(midi.midi_bytes_to_note_sequence(...))`
gives (the reference's reading: mido's parser, pretty_midi's note pairing and tempo map, note-seq's
conversion and time-change splitting), at a fraction of the cost, and imports none of those
libraries:
  * each track chunk splits into tokens (an event with a status byte and the running-status
    events after it, or a meta / sysex / system message) by one regular expression, in C; numpy
    then decodes every token of the file at once (`_lex_tokens`). A track that does not split
    (running status right after a meta message or sysex, a payload of 128 bytes or more, a
    5-byte delta-time, anything malformed) is read one event at a time (`_lex_track_loop`);
  * pretty_midi's note pairing runs on arrays over the whole file (`_pair_notes`);
  * meta messages are checked as mido decodes them (`_check_metas`), tempo and time signatures
    of the first track taken as pretty_midi takes them; the rest is numpy over note arrays.
System messages are read as mido reads them: sysex (0xf0, and the 0xf7 escape form; GM / GS /
XG resets, device setup), system common and real-time bytes, with the running status they set.

The fast path only handles what it reproduces exactly. A file with anything mido, pretty_midi or
note-seq refuse or read oddly (running status without a status, a message running past its track
chunk, a data byte above 127 (in a sysex too), an undefined status byte, a truncated file, a meta
message mido refuses, a zero tempo, a time signature pretty_midi or note-seq refuse,
ticks_per_beat <= 0, no notes, a last event beyond `midi.MAX_TICKS`...) is read by the full path
instead (`_Fallback`), which gives the skip reasons and results it always gave. So the fast path
changes speed only; tests/test_midi_fast.py checks it against the full path on every test corpus
and on synthetic files with the awkward cases (overlapping notes of one pitch, note-offs at a
note-on's tick, note-offs without a note-on, random streams of them, tempo events on other tracks,
running status, program changes while a note sounds, each kind of system message, corruptions).
"""

from __future__ import annotations

import collections
import math
import re
import struct

import numpy as np

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


def _lex_track_loop(data: bytes, pos: int, end: int):
  """Reads one track chunk data[pos:end] as mido does, one event per iteration.

  Returns (events, metas, last tick): events a flat list tick, status, data 1, data 2 of its
  note-off, note-on and program-change events (data 2 = 0 for program changes), in order; metas
  [(tick, type, payload bytes)]. System messages are checked and stepped over (`_skip_system`);
  anything mido would refuse raises `_Fallback`.
  """
  metas = []
  events = []
  add = events.extend
  tick = 0
  last_status = -1
  while pos != end:
    if pos > end:
      raise _Fallback('message runs past the track chunk')
    b = data[pos]
    pos += 1
    if b & 0x80:
      delta = b & 0x7f
      while b & 0x80:
        b = data[pos]
        pos += 1
        delta = (delta << 7) | (b & 0x7f)
      tick += delta
    else:
      tick += b
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
    if status < 0xc0 or 0xe0 <= status < 0xf0:
      d1 = data[pos]
      d2 = data[pos + 1]
      pos += 2
      if (d1 | d2) & 0x80:
        raise _Fallback('data byte > 127')
      if status < 0xa0:
        add((tick, status, d1, d2))
    elif status < 0xe0:
      d1 = data[pos]
      pos += 1
      if d1 & 0x80:
        raise _Fallback('data byte > 127')
      if status < 0xd0:
        add((tick, status, d1, 0))
    else:
      pos = _skip_system(data, pos, status, False)
  if tick + 1 > midi.MAX_TICKS:  # (and before its ticks overflow int64: mido reads any length)
    raise _Fallback('corrupt ticks')
  return events, metas, tick


def _token_pattern() -> re.Pattern:
  """One token: an event with a status byte and the running-status events after it, as mido
  reads them (a delta-time of at most 4 bytes each):
    * a channel message of 2 data bytes (note-off, note-on, poly aftertouch, control change,
      pitch bend) or song position (0xf2), then events of 2 data bytes under its status;
    * a message of 1 data byte (program change, channel aftertouch, quarter frame, song select),
      then events of 1 data byte;
    * a system message without data bytes (no running status may follow: mido refuses it);
    * a meta message or sysex (0xf0 / 0xf7) whose length is one byte (< 128), and its payload.
  Everything else (longer payloads or delta-times, running status right after a meta message or
  sysex, anything malformed) matches no token; such a track is read by `_lex_track_loop`.
  """
  delta = rb'[\x80-\xff]{0,3}+[\x00-\x7f]'
  data = rb'[\x00-\x7f]'
  payload = b'(?:' + b'|'.join(re.escape(bytes([n])) + (b'.{%d}' % n if n else b'')
                               for n in range(128)) + b')'
  return re.compile(
      delta + b'(?:'
      + rb'[\x80-\xbf\xe0-\xef\xf2]' + data * 2 + b'(?:' + delta + data * 2 + b')*+'
      + rb'|[\xc0-\xdf\xf1\xf3]' + data + b'(?:' + delta + data + b')*+'
      + rb'|[\xf6\xf8\xfa-\xfc\xfe]'
      + rb'|\xff.' + payload
      + rb'|[\xf0\xf7]' + payload + b')', re.DOTALL)


_TOKEN = _token_pattern()
# Data bytes after the status byte of a token's messages (0: a token of one message).
_DATA_BYTES = np.zeros(256, np.int64)
_DATA_BYTES[0x80:0xc0] = _DATA_BYTES[0xe0:0xf0] = _DATA_BYTES[0xf2] = 2
_DATA_BYTES[0xc0:0xe0] = _DATA_BYTES[0xf1] = _DATA_BYTES[0xf3] = 1


def _lex_tokens(data: bytes, spans, tokens):
  """`_lex_track_loop`'s results for tracks split into `_TOKEN`s, all at once with numpy.

  spans: [(start, end)] of track chunks in `data` whose tokens (`tokens`, one list per track)
  cover them exactly. Returns (events int64 [n, 5]: track number in `spans`, tick, status,
  data 1, data 2 of their note-off, note-on and program-change events, in order; per track:
  metas [(tick, type, payload)] and last tick).
  """
  buf = b''.join(data[a:e] for a, e in spans)  # the tracks' bytes, back to back
  flat = [t for toks in tokens for t in toks]
  lengths = np.fromiter(map(len, flat), np.int64, len(flat))
  tok_track = np.repeat(np.arange(len(spans)), [len(toks) for toks in tokens])
  b = np.frombuffer(buf, np.uint8)
  tok_start = np.cumsum(lengths) - lengths
  lpos = np.flatnonzero(b < 0x80)             # bytes < 128: delta ends, data, payload
  first_l = np.searchsorted(lpos, tok_start)  # each token's first delta end
  status = b[lpos[first_l] + 1]
  k = _DATA_BYTES[status]
  # Bytes < 128 of a token with running status group into (delta end, k data bytes) per event;
  # a meta / sysex / system token holds one event, ended by its first byte < 128.
  per_tok = np.empty_like(first_l)
  per_tok[:-1] = first_l[1:] - first_l[:-1]
  per_tok[-1] = len(lpos) - first_l[-1]
  step = k + 1
  n_ev = np.where(k > 0, per_tok // step, 1)
  ev_tok = np.repeat(np.arange(len(flat)), n_ev)
  ev_first = np.cumsum(n_ev) - n_ev
  ends = first_l[ev_tok] + step[ev_tok] * (np.arange(len(ev_tok)) - ev_first[ev_tok])
  tp = lpos[ends]
  prev = np.zeros_like(tp)
  prev[1:] = lpos[ends[1:] - 1] + 1
  cont = tp - np.maximum(prev, tok_start[ev_tok])  # delta-time bytes before its last (0..3)
  delta = b[tp].astype(np.int64)
  for i in (1, 2, 3):
    m = np.flatnonzero(cont >= i)
    delta[m] += (b[tp[m] - i].astype(np.int64) & 0x7f) << (7 * i)
  ticks = np.cumsum(delta)
  ev_track = tok_track[ev_tok]
  # Ticks restart at each track.
  track_first = np.searchsorted(ev_track, np.arange(len(spans)))
  ticks -= (ticks[track_first] - delta[track_first])[ev_track]
  ev_status = status[ev_tok]
  keep = np.flatnonzero((ev_status < 0xa0) | ((ev_status >= 0xc0) & (ev_status < 0xd0)))
  data_at = ends[keep] + 1
  events = np.empty((len(keep), 5), np.int64)
  events[:, 0] = ev_track[keep]
  events[:, 1] = ticks[keep]
  events[:, 2] = ev_status[keep]
  events[:, 3] = b[lpos[data_at]]
  two = k[ev_tok[keep]] == 2
  events[:, 4] = 0
  events[two, 4] = b[lpos[data_at[two] + 1]]
  metas = [[] for _ in spans]
  track_last = np.searchsorted(ev_track, np.arange(len(spans)), side='right') - 1
  last = ticks[track_last].tolist()
  special = np.flatnonzero((status == 0xff) | (status == 0xf0) | (status == 0xf7))
  if len(special):
    first_event = np.searchsorted(ends, first_l[special])
    at_all = (lpos[first_l[special]] - tok_start[special] + 1).tolist()
    for t, ev, at in zip(special.tolist(), first_event.tolist(), at_all):
      tok = flat[t]
      if tok[at] == 0xff:
        metas[tok_track[t]].append((int(ticks[ev]), tok[at + 1], tok[at + 3:]))
      else:
        body = tok[at + 2:]
        body = body[body[:1] == b'\xf0':len(body) - (body[-1:] == b'\xf7')]
        if body and max(body) > 127:
          raise _Fallback('sysex data byte > 127')
  return events, metas, last


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
  """For each element of a sorted key array, the index of the first element with its key."""
  n = len(sorted_keys)
  first = np.ones(n, bool)
  first[1:] = sorted_keys[1:] != sorted_keys[:-1]
  return np.maximum.accumulate(np.where(first, np.arange(n), 0))


def _track_major_order(track: np.ndarray, key: np.ndarray) -> np.ndarray:
  """The stable order by (track, key) of elements already ordered by track, 0 <= key < 2048:
  two stable sorts of 16-bit integers (numpy sorts those by radix)."""
  order = np.argsort(key.astype(np.int16), kind='stable')
  if len(order) and track[-1] != track[0]:
    order = order[np.argsort(track[order].astype(np.int16), kind='stable')]
  return order


def _pair_notes(events: np.ndarray):
  """pretty_midi's note pairing, on arrays: (notes, instruments).

  events: int64 [n, 5] track, tick, status, data 1, data 2 of the note-off, note-on and program
  change events of every track, in file order (tracks in order, each in event order).
  pretty_midi, per track: a note-on (velocity > 0) opens a note of its channel and pitch; a
  note-off (or note-on with velocity 0) closes every open note of its channel and pitch that did
  not start on its tick, into the instrument (program of the channel at the note-off, channel,
  track), and keeps those that did start on its tick open only if it closed any (else it forgets
  them). Notes are appended in the order they close (by note-off, then note-on), instruments
  created when their first note closes.
  Returns notes int64 [m, 5]: start tick, end tick, pitch, velocity, instrument, in note-seq's
  order (instrument by instrument, each in closing order), and instruments int64 [i, 3]:
  program, channel, track, in creation order.
  """
  track, tick, status, d1, d2 = events.T
  n = len(events)
  if not ((status >> 4 == 9) & (d2 > 0)).any() or not n:
    return np.zeros((0, 5), np.int64), np.zeros((0, 3), np.int64)
  kind = status >> 4
  chan_key = track * 16 + (status & 15)
  # The program of each event's channel: the last program change of its track and channel
  # before it (0 if none).
  srt = _track_major_order(track, status & 15)
  gstart = _group_starts(chan_key[srt])
  last = np.maximum.accumulate(np.where(kind[srt] == 0xc, np.arange(n), -1))
  program = np.empty(n, np.int64)
  program[srt] = np.where(last >= gstart, d1[srt][last], 0)

  # Note events grouped by track, channel and pitch (event order within a group).
  note_idx = np.flatnonzero(kind <= 9)
  note_key = chan_key[note_idx] * 128 + d1[note_idx]
  by_key = _track_major_order(track[note_idx], (status[note_idx] & 15) * 128 + d1[note_idx])
  ev = note_idx[by_key]
  grp = _group_starts(note_key[by_key])
  is_on = (kind[ev] == 9) & (d2[ev] > 0)
  t = tick[ev]
  offs = np.flatnonzero(~is_on)            # positions (in `ev`) of note-offs
  t_off = t[offs]
  g_off = grp[offs]
  num_offs = len(offs)
  # The note-off each note-on meets first (in its group), if any.
  ons = np.flatnonzero(is_on)
  nxt = np.searchsorted(offs, ons)
  has_off = nxt < num_offs
  has_off[has_off] = g_off[nxt[has_off]] == grp[ons[has_off]]
  ons, nxt = ons[has_off], nxt[has_off]
  earlier = t[ons] < t_off[nxt]            # else it starts on that note-off's tick
  # Per note-off j: a = it closes a note-on since the previous note-off, z = a note-on since
  # then starts on its tick, d = the previous note-off of the group is on another tick.
  a = np.zeros(num_offs, bool)
  a[nxt[earlier]] = True
  z = np.zeros(num_offs, bool)
  z[nxt[~earlier]] = True
  j = np.arange(num_offs)
  first_off = np.ones(num_offs, bool)
  first_off[1:] = g_off[1:] != g_off[:-1]
  d = ~first_off
  d[1:] &= t_off[1:] != t_off[:-1]
  # k = some note stays open after note-off j (kept: started on its tick, and j closed some).
  # k_j = f_j(k_{j-1}) with f_j constant 0, constant 1 or the identity, so k is the value of the
  # last constant f in the group (0 before any).
  f = np.where(d, np.where(~z, 0, np.where(a, 1, -1)), np.where(~a, 0, np.where(z, 1, -1)))
  off_gstart = np.maximum.accumulate(np.where(first_off, j, 0))
  last_const = np.maximum.accumulate(np.where(f >= 0, j, -1))
  k = (last_const >= off_gstart) & (f[last_const] == 1)
  k_prev = np.zeros(num_offs, bool)
  k_prev[1:] = k[:-1] & ~first_off[1:]
  closes = a | (k_prev & d)                # note-off j closes some note
  # A note-on on its note-off's tick stays open through the following note-offs of that tick
  # while each of them closes something, and closes at the next note-off on a later tick.
  run_start = first_off.copy()
  run_start[1:] |= t_off[1:] != t_off[:-1]
  run_id = np.cumsum(run_start) - 1
  run_last = np.empty(run_id[-1] + 1 if num_offs else 0, np.int64)
  run_last[run_id] = j
  run_end = run_last[run_id]
  misses = np.cumsum(~closes)
  all_close = misses[run_end] - misses + ~closes == 0
  after = run_end + 1
  valid_after = after < num_offs
  valid_after[valid_after] = g_off[after[valid_after]] == g_off[valid_after]
  survives = all_close & valid_after
  same = ~earlier
  keep = earlier | survives[nxt]
  closer = nxt.copy()
  closer[same] = after[nxt[same]]
  ons, closer = ons[keep], closer[keep]
  on_ev, off_ev = ev[ons], ev[offs[closer]]
  # Closing order: by note-off event, then by note-on event.
  order = np.lexsort((on_ev, off_ev))
  on_ev, off_ev = on_ev[order], off_ev[order]
  inst_key = (track[off_ev] * 16 + (status[off_ev] & 15)) * 128 + program[off_ev]
  uniq, first, inverse = np.unique(inst_key, return_index=True, return_inverse=True)
  rank = np.empty(len(uniq), np.int64)
  by_creation = np.argsort(first, kind='stable')
  rank[by_creation] = np.arange(len(uniq))
  inst = rank[inverse.reshape(-1)]
  created = uniq[by_creation]
  instruments = np.stack([created % 128, created // 128 % 16, created // 2048], 1)
  notes = np.stack([tick[on_ev], tick[off_ev], d1[on_ev], d2[on_ev], inst], 1)
  return notes[np.argsort(inst, kind='stable')], instruments


def _read_tracks(data: bytes):
  """Reads a well-formed file: (ticks_per_beat, tracks [(metas, last tick, chunk size)], notes,
  instruments); see `_lex_tokens` and `_pair_notes`. Empty track chunks get no track index
  (pretty_midi cannot read them, so the full reader drops them)."""
  if len(data) < 14 or data[:4] != b'MThd':
    raise _Fallback('no MThd header')
  size = int.from_bytes(data[4:8], 'big')
  if size < 6 or 8 + size > len(data):
    raise _Fallback('short header')
  _, num_tracks, ticks_per_beat = struct.unpack('>hhh', data[8:14])
  pos = 8 + size
  spans = []
  for _ in range(num_tracks):
    if data[pos:pos + 4] != b'MTrk' or pos + 8 > len(data):
      raise _Fallback('no MTrk header')
    chunk = int.from_bytes(data[pos + 4:pos + 8], 'big')
    start = pos + 8
    if start + chunk > len(data):
      raise _Fallback('truncated track')
    spans.append((start, start + chunk))
    pos = start + chunk
  # Tracks that split into tokens exactly are read with numpy, the others one event at a time.
  tracks = [None] * len(spans)
  arrays = []
  tokenised, token_lists = [], []
  index = np.cumsum([0] + [e > a for a, e in spans])  # track index among non-empty chunks
  try:
    for n, (start, end) in enumerate(spans):
      if start == end:
        tracks[n] = ([], 0, 0)
        continue
      toks = _TOKEN.findall(data, start, end)
      if sum(map(len, toks)) == end - start:
        tokenised.append(n)
        token_lists.append(toks)
        continue
      events, metas, last = _lex_track_loop(data, start, end)
      tracks[n] = (metas, last, end - start)
      if events:
        arr = np.empty((len(events) // 4, 5), np.int64)
        arr[:, 0] = index[n]
        arr[:, 1:] = np.array(events, np.int64).reshape(-1, 4)
        arrays.append(arr)
  except IndexError as e:
    raise _Fallback('truncated') from e
  if tokenised:
    events, metas, last = _lex_tokens(data, [spans[n] for n in tokenised], token_lists)
    for m, n in enumerate(tokenised):
      tracks[n] = (metas[m], last[m], spans[n][1] - spans[n][0])
    events[:, 0] = index[np.array(tokenised)][events[:, 0]]
    arrays.append(events)
  events = np.concatenate(arrays) if arrays else np.zeros((0, 5), np.int64)
  if len(arrays) > 1:  # tracks in file order
    events = events[np.argsort(events[:, 0], kind='stable')]
  notes, instruments = _pair_notes(events)
  return ticks_per_beat, tracks, notes, instruments


# The meta messages mido can refuse: type byte -> the payload bytes its decoder reads (a shorter
# payload fails, and so the file). It also checks what it decodes: sequence number (0x00) fails
# on exactly 1 byte; SMPTE offset (0x54) on a frame-rate code > 3, minutes or seconds > 59,
# sub-frames > 99; time signature (0x58) on a denominator 2**e whose `math.log(2**e, 2)` is not a
# whole float (e = 29, 31, ...: its power-of-two check); key signature (0x59) on anything but
# -7..7 sharps in major or minor. Text is decoded as latin-1 (never fails); unknown types are
# kept as they are. tests/test_midi_fast.py checks this against mido, payload by payload.
_META_MIN_BYTES = {0x20: 1, 0x51: 3, 0x54: 5, 0x58: 4, 0x59: 2}
_DENOMINATOR_EXPONENTS = frozenset(e for e in range(256)
                                   if math.log(2 ** e, 2) == int(math.log(2 ** e, 2)))


def _check_metas(metas):
  """Raises `_Fallback` for a meta message mido refuses (the full path's skip reason then)."""
  for _, mtype, p in metas:
    need = _META_MIN_BYTES.get(mtype)
    if need is None:
      if mtype == 0 and len(p) == 1:
        raise _Fallback('meta message mido refuses')
    elif (len(p) < need
          or (mtype == 0x54 and (p[0] >> 5 > 3 or p[1] > 59 or p[2] > 59 or p[4] > 99))
          or (mtype == 0x58 and p[1] not in _DENOMINATOR_EXPONENTS)
          or (mtype == 0x59 and (p[1] > 1 or 7 < p[0] < 249))):
      raise _Fallback('meta message mido refuses')


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
  ticks_per_beat, tracks, arr, info = _read_tracks(data)
  if reject_empty_tracks and any(chunk == 0 for *_, chunk in tracks):
    raise midi.MidiError(path, 'empty_track', 'a track chunk with no events')
  tracks = [t for t in tracks if t[2]]  # pretty_midi cannot read empty tracks: they carry nothing
  if not tracks or ticks_per_beat <= 0:
    raise _Fallback('no tracks')
  max_tick = max(t[1] for t in tracks)
  if max_tick + 1 > midi.MAX_TICKS:
    raise _Fallback('corrupt ticks')
  resolution = ticks_per_beat
  for t in tracks:
    _check_metas(t[0])
  # pretty_midi: tempo, time and key signatures from the first track only (every key signature
  # mido decodes, pretty_midi takes; a time signature with numerator 0 it refuses, one with a
  # denominator beyond 2**30 note-seq).
  scales = [(0, 60.0 / (120.0 * resolution))]
  signatures = []
  for tick, mtype, payload in tracks[0][0]:
    if mtype == 0x51:
      tempo = (payload[0] << 16) | (payload[1] << 8) | payload[2]
      if not tempo:
        raise _Fallback('zero tempo')
      if tick == 0:
        bpm = 6e7 / tempo
        scales = [(0, 60.0 / (bpm * resolution))]
      else:
        _, last = scales[-1]
        scale = 60.0 / ((6e7 / tempo) * resolution)
        if scale != last:
          scales.append((tick, scale))
    elif mtype == 0x58:
      if not payload[0]:
        raise _Fallback('time signature pretty_midi refuses')
      if payload[1] > 30:  # note-seq stores the denominator as an int32
        raise _Fallback('time signature note-seq refuses')
      signatures.append((tick, payload[0], 2 ** payload[1]))
  table = midi._TickTimes(scales, max_tick + 1)  # pylint: disable=protected-access
  starts, bases, rates = table.segments()
  starts, bases, rates = (np.array(starts, np.int64), np.array(bases, np.float64),
                          np.array(rates, np.float64))
  time_signatures = [_TimeSignature(table[tick], num, den) for tick, num, den in signatures]
  tempos = [_Tempo(table[tick], 60.0 / (scale * resolution)) for tick, scale in scales]

  if not len(arr):
    raise _Fallback('no notes')
  ticks = arr[:, :2]
  seg = np.searchsorted(starts, ticks, side='right') - 1
  times = bases[seg] + rates[seg] * (ticks - starts[seg])
  inst = arr[:, 4]  # info: [instrument] -> (program, channel, track)
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
