"""The windows of an input a user gives a trained model: a MIDI file or a NoteSequence.

The same extraction as the datasets (`encoding.located_windows`: `extract_windows` with where each
window starts, for the model's window kind and mode), numbered in time order, with the default a
user would pick and the ways to pick another (`--window=K` or `--window=bar:N`). A file without a
usable window raises `InputError` naming the reason (no 4/4 section, too short, no drums, ...).
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Union

import note_seq
import numpy as np

from data_pipelines import encoding, midi


class InputError(ValueError):
  """An input (MIDI file, NoteSequence or token array) the model cannot encode; says why."""


def _clock(seconds: float) -> str:
  m, sec = divmod(float(seconds), 60.0)
  return f'{int(m)}:{sec:04.1f}'


def meters(ns: note_seq.NoteSequence) -> str:
  """The time signatures of a piece and where each starts: `4/4 from 0:00.0, 3/4 from 0:02.0`
  (4/4 from 0:00.0 when the file states none, as MIDI assumes)."""
  sigs = sorted(ns.time_signatures, key=lambda t: t.time)
  if not sigs or sigs[0].time > 0:
    shown = ['4/4 from 0:00.0 (the MIDI default)']
  else:
    shown = []
  last = None
  for t in sigs:
    name = f'{t.numerator}/{t.denominator}'
    if name != last:
      shown.append(f'{name} from {_clock(t.time)}')
      last = name
  return ', '.join(shown)


def _why_no_window(ns: note_seq.NoteSequence, spec: encoding.WindowSpec) -> str:
  """The most likely reason `extract_windows(ns, spec)` found nothing, in words."""
  parts = midi.quantized_parts(ns, spec.steps_per_quarter, spec.steps_per_bar)
  bars = max((p.total_steps for p in parts), default=0) / spec.steps_per_bar
  if not parts or bars == 0:
    return ('no section in 4/4 (or 2/2, 8/8) with a steady tempo that fits the 16th-note grid '
            f'(time signatures in the file: {meters(ns)})')
  if bars < spec.num_bars:
    return (f'too short: its longest 4/4 section with a steady tempo is {bars:.1f} bars, the '
            f'model needs {spec.num_bars} (time signatures in the file: {meters(ns)})')
  drums = any(bool((p.is_drum & (encoding.DRUM_PITCH_TO_CLASS[np.clip(p.pitch, 0, 127)] >= 0)
                    & (p.velocity > 0)).any()) for p in parts)

  def melody_ok(programs):
    return any(bool((~p.is_drum & (p.velocity > 0) & (p.pitch >= spec.min_pitch)
                     & (p.pitch <= spec.max_pitch)
                     & ((p.program >= programs[0]) & (p.program < programs[1])
                        if programs else True)).any()) for p in parts)

  pitch_range = f'pitches {spec.min_pitch}..{spec.max_pitch}'
  if spec.parts == ('drums',):
    if not drums:
      return 'no drums: no General MIDI drum notes on channel 10'
  elif spec.parts == ('melody',):
    if not any(bool((~p.is_drum).any()) for p in parts):
      return 'no melody: every note is a drum (channel 10)'
    if not melody_ok(None):
      return f'no non-drum notes in the melody range ({pitch_range})'
    if spec.programs and not melody_ok(spec.programs):
      return (f'no non-drum notes with a GM program in {spec.programs[0]}..'
              f'{spec.programs[1] - 1} (piano, chromatic percussion, organ, guitar), which this '
              'model is trained on; --any_program (Python: any_program=True) takes the notes '
              'of every program')
  else:
    missing = [name for name, ok in (
        (f'lead (program {encoding.LEAD_PROGRAMS[0]}..{encoding.LEAD_PROGRAMS[1] - 1})',
         melody_ok(encoding.LEAD_PROGRAMS)),
        (f'bass (program {encoding.BASS_PROGRAMS[0]}..{encoding.BASS_PROGRAMS[1] - 1})',
         melody_ok(encoding.BASS_PROGRAMS)),
        ('drums (channel 10)', drums)) if not ok]
    if missing:
      return f'a trio needs lead, bass and drums; missing: {", ".join(missing)}'
    return (f'no {spec.num_bars}-bar stretch where lead, bass and drums all play with at most '
            'one bar of rest in a row')
  return (f'no {spec.num_bars}-bar stretch without a silence of a bar or more (a melody or drum '
          'track ends at a one-bar gap)')


WindowChoice = Union[int, str, None]  # None: the default window; K; 'bar:N'


def _onset_bars(tokens: np.ndarray, spec: encoding.WindowSpec) -> np.ndarray:
  """Per window, the fewest bars with a note onset (drums: a hit) of any part: int [n]."""
  t = tokens.reshape(tokens.shape[0], spec.num_bars, spec.steps_per_bar, -1)
  is_drums = np.array([p == 'drums' for p in spec.parts])
  onset = np.where(is_drums, t >= 1, t >= 2)  # melody: classes 0 (hold) and 1 (off) are not
  return onset.any(axis=2).sum(axis=1).min(axis=-1)


def default_window(tokens: np.ndarray, spec: encoding.WindowSpec) -> int:
  """The window a user would pick: the first (in time) with a note onset in every bar of every
  part (a 2-bar melody: in both bars; a trio: lead, bass and drums in every bar). Without one,
  the first of those with the most such bars, so a silent or all-hold window is never the
  default while a better one exists."""
  score = _onset_bars(np.asarray(tokens), spec)
  return int(np.flatnonzero(score == score.max())[0])


@dataclasses.dataclass(frozen=True)
class InputWindows:
  """The windows of one input (MIDI file or NoteSequence), numbered in time order."""
  label: str             # the file's name (or the NoteSequence's)
  tokens: np.ndarray     # int32 [n, time, parts], in order of start time
  bars: np.ndarray       # int [n]: bar of the input where each window starts, from 1
  seconds: np.ndarray    # float [n]: where each window starts, in seconds
  num_bars: int          # bars per window
  default: int           # `default_window` of `tokens`
  complete_bars: int     # the default window's bars with onsets (the fewest over its parts)
  # Melody kinds: the track (NoteSequence instrument) each window's notes come from, -1 when
  # not one track (drums: every drum track together; trios), and the tracks' descriptions.
  track: np.ndarray | None = None                    # int [n]
  track_names: dict = dataclasses.field(default_factory=dict)  # number -> 'track 2 "Lead" (...)'

  def __len__(self) -> int:
    return len(self.tokens)

  @property
  def tracks(self) -> list[int]:
    """The tracks that give windows (melody kinds), in order of their numbers."""
    return sorted(set(self.track.tolist()) - {-1}) if self.track is not None else []

  def describe(self, i: int) -> str:
    """`window 3 (bars 9-10, from 0:17.4)`, with its track when the file has several."""
    where = ''
    if len(self.tracks) > 1 and self.track[i] >= 0:
      where = ', ' + self.track_names.get(int(self.track[i]), f'track {self.track[i]}')
    return (f'window {i} (bars {self.bars[i]}-{self.bars[i] + self.num_bars - 1}, from '
            f'{_clock(self.seconds[i])}{where})')

  def select(self, window: WindowChoice = None) -> int:
    """The index of `window`: None / '' = `default`; K (int or digits) = the K-th window in time
    (0-based); 'bar:N' = the window that starts at bar N of the input."""
    n = len(self.tokens)
    if window is None or (isinstance(window, str) and not window.strip()):
      return self.default
    text = str(window).strip()
    if text.lower().startswith('bar:'):
      try:
        bar = int(text[4:])
      except ValueError:
        raise InputError(f'--window={text}: bar:N needs a whole bar number N') from None
      hits = np.flatnonzero(self.bars == bar)
      if not len(hits):
        starts = sorted(set(self.bars.tolist()))
        shown = ', '.join(map(str, starts[:24])) + (', ...' if len(starts) > 24 else '')
        raise InputError(f'{self.label}: no {self.num_bars}-bar window starts at bar {bar}; '
                         f'windows start at bars {shown}')
      return int(hits[0])
    try:
      index = int(text)
    except ValueError:
      raise InputError(f'--window={text}: expected a window number K (0..{n - 1}) or bar:N '
                       '(the window starting at bar N)') from None
    if not 0 <= index < n:
      raise InputError(f'{self.label} has {n} window(s) (0..{n - 1}); window={index} is out '
                       'of range')
    return index

  def summary(self, chosen: int, asked: WindowChoice = None) -> str:
    """What a command prints about the window it used, and how to pick another."""
    n = len(self.tokens)
    head = (f'{self.label}: {n} window{"s" if n != 1 else ""} of {self.num_bars} bars, in '
            f'time order (window 0 starts at bar {self.bars[0]}'
            + (f', window {n - 1} at bar {self.bars[-1]})' if n > 1 else ')'))
    if asked is None or (isinstance(asked, str) and not asked.strip()):
      if self.complete_bars == self.num_bars:
        why = 'the first with notes starting in every bar' + (
            ' of every part' if self.tokens.shape[-1] > 1 else '')
      else:
        why = (f'no window has notes starting in every bar; this is the first with the most '
               f'({self.complete_bars} of {self.num_bars})')
    else:
      why = f'as asked (--window={asked})'
    pick = (f'pick another with --window=K (0..{n - 1}) or --window=bar:N' if n > 1
            else 'it is the only one')
    tracks = self.tracks
    if len(tracks) == 1 and len(self.track_names) > 1:  # one track of several (--track)
      head += f'; only {self.track_names.get(tracks[0], f"track {tracks[0]}")}'
    if len(tracks) > 1:
      counts = {t: int((self.track == t).sum()) for t in tracks}
      head += ('; from ' + ', '.join(f'{self.track_names.get(t, f"track {t}")}: {c}'
                                     for t, c in counts.items()))
      pick += ', or one track with --track=N'
    return f'{head}; using {self.describe(chosen)}, {why}; {pick}.'


def input_windows(source: str | os.PathLike | note_seq.NoteSequence,
                  spec: encoding.WindowSpec, *, track: int | None = None,
                  any_program: bool = False) -> InputWindows:
  """The windows of a MIDI file or NoteSequence as the datasets extract them, in time order.

  Args:
    track: only the windows of this track (the NoteSequence instrument number the windows'
      descriptions name; melody kinds).
    any_program: a model whose data admits only some GM programs (magenta mode's 2-bar melodies:
      0..31, the reference's rule) takes the notes of every program.
  Raises:
    InputError: unreadable file, or no usable window (the message says why).
  """
  if any_program and spec.programs is not None:
    spec = dataclasses.replace(spec, programs=None)
  if track is not None and (isinstance(track, bool) or not isinstance(track, (int, np.integer))
                            or track < 0):
    raise InputError(f'--track must be a track number >= 0, got {track!r}')
  if isinstance(source, note_seq.NoteSequence):
    return _windows(source, source.filename or 'the NoteSequence', spec, track)
  label = os.fspath(source)
  if not os.path.exists(label):
    raise InputError(f'{label}: no such file')
  stat = os.stat(label)
  return _file_windows(label, stat.st_mtime_ns, stat.st_size, spec, track)


def midi_windows(source: str | note_seq.NoteSequence, spec: encoding.WindowSpec) -> np.ndarray:
  """Every window of a MIDI file or NoteSequence, as the datasets extract them, in time order.

  Returns:
    int32 [n, time, parts], n >= 1.
  Raises:
    InputError: unreadable file, or no usable window (the message says why).
  """
  return input_windows(source, spec).tokens.copy()


@functools.lru_cache(maxsize=32)
def _file_windows(path: str, mtime_ns: int, size: int, spec: encoding.WindowSpec,
                  track: int | None = None) -> InputWindows:
  """Windows of a file, cached while the file is unchanged (interactive use re-reads often)."""
  del mtime_ns, size  # part of the cache key only
  try:
    ns = midi.read_midi(path)
  except midi.MidiError as e:
    if e.reason == 'no_notes':  # a valid file: say what it lacks
      raise InputError(f'{path}: the file has no notes (a valid MIDI file, but nothing to '
                       'encode)') from e
    raise InputError(f'{path}: cannot read it as MIDI ({e.reason}'
                     + (f': {e.detail}' if e.detail else '') + ')') from e
  return _windows(ns, path, spec, track)


def _track_names(ns: note_seq.NoteSequence) -> dict[int, str]:
  """{instrument number: 'track 2 "Lead" (Electric Guitar (clean))'} of the non-drum tracks."""
  import pretty_midi  # pylint: disable=g-import-not-at-top
  names = {i.instrument: i.name for i in ns.instrument_infos}
  programs = {}
  for n in ns.notes:
    if not n.is_drum:
      programs.setdefault(n.instrument, n.program)
  out = {}
  for inst, program in sorted(programs.items()):
    name = names.get(inst, '').strip()
    out[inst] = (f'track {inst}' + (f' "{name}"' if name else '')
                 + f' ({pretty_midi.program_to_instrument_name(program)})')
  return out


def _only_track(ns: note_seq.NoteSequence, track: int) -> note_seq.NoteSequence:
  out = note_seq.NoteSequence()
  out.CopyFrom(ns)
  del out.notes[:]
  out.notes.extend(n for n in ns.notes if n.instrument == track and not n.is_drum)
  return out


def _windows(ns: note_seq.NoteSequence, label: str, spec: encoding.WindowSpec,
             track: int | None = None) -> InputWindows:
  names = _track_names(ns)
  melody = spec.parts == ('melody',)
  if track is not None:
    if not melody:
      raise InputError(f'{label}: --track picks a melody track; a {spec.kind} model reads '
                       + ('every drum track together' if spec.parts == ('drums',)
                          else 'lead, bass and drums together'))
    if track not in names:
      listed = ', '.join(names.values()) or 'none'
      raise InputError(f'{label}: no melody track {track}; its tracks with notes: {listed}')
    ns = _only_track(ns, track)
  try:
    windows, bars, seconds = encoding.located_windows(ns, spec)
  except midi.MidiError as e:
    raise InputError(f'{label}: {e.reason} {e.detail}'.strip()) from e
  if len(windows) == 0:
    which = f' in {names[track]}' if track is not None else ''
    raise InputError(f'{label}: no usable {spec.num_bars}-bar window{which} for a {spec.kind} '
                     f'({spec.mode} mode) model: {_why_no_window(ns, spec)}')
  if not melody:
    owner = np.full(len(windows), -1, np.int64)
  elif track is not None:
    owner = np.full(len(windows), track, np.int64)
  else:
    owner = _window_tracks(ns, spec, windows, seconds, list(names))
  w = np.asarray(windows, np.int32)
  w = w[..., None] if w.ndim == 2 else w
  bars = np.floor(bars + 1e-6).astype(np.int64) + 1
  for a in (w, bars, seconds):  # shared by every caller of the cache
    a.setflags(write=False)
  best = default_window(w, spec)
  owner.setflags(write=False)
  return InputWindows(label=os.path.basename(label), tokens=w, bars=bars, seconds=seconds,
                      num_bars=spec.num_bars, default=best,
                      complete_bars=int(_onset_bars(w[best:best + 1], spec)[0]),
                      track=owner, track_names=names)


def _window_tracks(ns: note_seq.NoteSequence, spec: encoding.WindowSpec, windows: np.ndarray,
                   seconds: np.ndarray, tracks: list[int]) -> np.ndarray:
  """The track each melody window comes from: the track whose own windows hold the same
  content starting at the same time (int [n]; -1 if none, which the extraction never gives)."""
  if len(tracks) == 1:
    return np.full(len(windows), tracks[0], np.int64)
  owner = np.full(len(windows), -1, np.int64)
  where = {}
  for t in tracks:
    w_t, _, s_t = encoding.located_windows(_only_track(ns, t), spec)
    for row, sec in zip(w_t, s_t):
      where.setdefault((row.tobytes(), round(float(sec), 6)), t)
  for i, (row, sec) in enumerate(zip(windows, seconds)):
    owner[i] = where.get((np.asarray(row, np.int16).tobytes(), round(float(sec), 6)), -1)
  return owner


# ----------------------------------------------------------------------------- a folder of MIDI

@dataclasses.dataclass(frozen=True)
class FolderWindows:
  """Every window of one kind in a folder of MIDI files (`folder_windows`).

  tokens: int32 [n, time, parts], ordered by file path, then as the file's extraction gives them.
  files: MIDI files found; used: those that gave windows.
  skipped: {relative path: reason} of the files that could not be read (the reasons of
    `conversion.SKIP_HINTS`); no_windows: relative paths of files read without a window (a
    copy of an earlier file counts as neither).
  """
  midi_dir: str
  tokens: np.ndarray
  files: int
  used: int
  skipped: dict
  no_windows: tuple

  def describe(self) -> str:
    """One line: how many windows from how many files, the skipped ones named."""
    line = (f'{len(self.tokens)} windows from {self.used} of {self.files} MIDI files under '
            f'{self.midi_dir}')
    if self.no_windows:
      line += f'; {len(self.no_windows)} without a window of this kind'
    if self.skipped:
      shown = ', '.join(f'{p} ({r})' for p, r in sorted(self.skipped.items())[:5])
      more = f', ... {len(self.skipped) - 5} more' if len(self.skipped) > 5 else ''
      line += f'; {len(self.skipped)} skipped: {shown}{more}'
    return line


def folder_windows(midi_dir: str, spec: encoding.WindowSpec, *, workers: int | None = None,
                   progress: bool = False) -> FolderWindows:
  """The windows of `spec`'s kind and mode in every MIDI file under `midi_dir`, extracted now.

  The datasets' conversion (`conversion.extract`: the worker pool with its per-file time and
  memory bounds, a broken file skipped with its reason, never the end of the run), kept in a
  temporary folder and in memory: nothing is written under `midi_dir` or any data dir. Every
  window is kept (no per-file cap, no split); files with the same content count once.

  Raises:
    InputError: no such folder, no MIDI file in it, or no window of the kind in any file (the
      message names the files and their reasons).
  """
  import tempfile  # pylint: disable=g-import-not-at-top
  from data_pipelines import conversion  # pylint: disable=g-import-not-at-top
  midi_dir = os.path.abspath(midi_dir)
  if not os.path.isdir(midi_dir):
    raise InputError(f'{midi_dir}: no such folder')
  items = conversion.list_items('folder', midi_dir)
  if not items:
    raise InputError(f'{midi_dir}: no MIDI files ({", ".join(conversion.MIDI_EXTENSIONS)}) in it')
  with tempfile.TemporaryDirectory(prefix='mvae_midi_dir_') as tmp:
    ext = conversion.extract('folder', [spec.kind], spec.mode, tmp, midi_dir, workers,
                             items=items, progress=progress)
    sel = conversion.select(ext, spec.kind, max_per_file=None, dedup=False)
    rows = np.asarray(ext.rows(spec.kind))[sel.rows] if len(sel.rows) else \
        np.zeros((0,) + spec.shape, np.int16)
  skipped = {r['path']: r['reason'] + (f': {r["detail"]}' if r['detail'] else '')
             for r in ext.items if r['reason'] is not None}
  used = set(int(i) for i in sel.item)
  seen, empty = set(), []
  for i, r in enumerate(ext.items):
    if r['reason'] is None and r['file_id'] not in seen and i not in used:
      empty.append(r['path'])
    seen.add(r['file_id'])
  empty = tuple(empty)
  if not len(rows):
    raise InputError(conversion.nothing_found_message('folder', ext.items, midi_dir, spec.kind))
  tokens = np.asarray(rows, np.int32)
  tokens = tokens[..., None] if tokens.ndim == 2 else tokens
  return FolderWindows(midi_dir, tokens, len(items), len(used), skipped, empty)


# ----------------------------------------------------------------------------- in a worker

@dataclasses.dataclass(frozen=True)
class UploadItem:
  """A file a worker process reads for `parse_upload` (the studio's uploads); `path` and
  `file_id` are what `workers.failed` reports."""
  path: str                  # the file's name as uploaded (messages name it)
  file_id: str               # the upload's id
  location: str              # the stored copy
  spec: encoding.WindowSpec  # the model's windows


def parse_upload(item: UploadItem) -> dict:
  """Worker side (`workers.WorkerPool('data_pipelines.inputs:parse_upload', ...)`, bounded in
  time and memory like the builders' workers, and quick to start: no JAX here): the windows of
  one uploaded file for one window spec, as plain arrays.

  Never raises for bad input: an unusable file gives reason 'unusable' and the message of
  `InputError` (no such window, not MIDI, ...), with the storage folder taken out of it.
  """
  folder = os.path.dirname(item.location) + os.sep
  out = {'path': item.path, 'file_id': item.file_id, 'reason': '', 'detail': ''}
  try:
    w = input_windows(item.location, item.spec)
  except InputError as e:
    out.update(reason='unusable', detail=str(e).replace(folder, ''))
    return out
  # ('seconds' of a result is the pool's timing of the item.)
  out.update(tokens=np.asarray(w.tokens), bars=np.asarray(w.bars),
             start_seconds=np.asarray(w.seconds), num_bars=w.num_bars, default=w.default,
             complete_bars=w.complete_bars,
             track=None if w.track is None else np.asarray(w.track),
             track_names=dict(w.track_names))
  return out
