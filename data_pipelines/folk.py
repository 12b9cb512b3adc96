"""Folk melodies from music21's bundled ABC collections -> NoteSequences (not via MIDI).

The installed `music21` package ships about 12,900 monophonic folk tunes written in ABC: the Essen
folksong collection, O'Neill's Music of Ireland (1850), Ryan's Mammoth Collection, Aird's Airs and
two small miscellaneous books. They make a small, always-available melody corpus, so nothing is
copied into this repository (Essen is licensed for non-commercial use only): the builder reads the
installed package.

Why not `score.write('midi')` + the MIDI reader: music21's MIDI writer fails on about 8% of these
tunes and writes absurdly long files for others. We convert the parsed score ourselves.

Speed: parsing ABC with music21 costs about 55 ms per tune, most of it in two notation-only steps
of `abcToStreamPart` (`makeBeams` and `reBar`, ~75% of the time) that do not change any note
time. `parse_tune` switches both off while it parses, and the build parses each tune in a worker
process (`data_pipelines.build`), so the whole corpus parses in a few minutes on 2 cores.

Bar placement (what a "bar" is matters: windows start on bar lines and only 4/4 bars are used):
- Written bar lines are kept on the bar grid. A measure starts at the end of the previous one when
  that end is on a bar line of the current meter; otherwise it starts at the next bar line (the
  gap becomes rest), except when the measure exactly completes the short bar before it (the usual
  short bar before a repeat sign followed by the next section's pickup), which is kept together.
- A pickup (anacrusis) first measure, shorter than a full bar, is right-aligned: the piece starts
  with a rest so that the pickup ends on the first bar line and every written bar line falls on the
  grid. (Music21 pads the same measure with `paddingLeft`.)
- A meter change restarts the grid where the new meter's first measure starts, and a time
  signature event is written there (downstream splitting treats each meter section on its own).
- Repeats are played out (default; `expand_repeats=False` keeps the written form): repeat signs,
  first / second endings and da capo / dal segno marks that music21's ABC reader records are
  expanded with music21's own `repeat.Expander`, the way a performer plays the tune (the paper's
  MIDI files are performances, with repeats played). The expander runs on a skeleton of empty
  measures carrying only the barlines, endings and repeat marks (its deep copies of full measures
  cost 5x the parse) and gives the order in which the written measures are played; its result
  is checked against music21's full `expandRepeats` in tests/test_folk.py. Where music21 finds
  the marks incoherent (or the expander fails), the written form is used and the tune is counted
  as 'repeats_not_expanded' in the build report. Music21 reads a `:|` without an earlier `|:` as
  "repeat from the start of the tune", also after a `||` section break.
- Grace notes are dropped; tied notes are merged; chords (rare, e.g. final double stops) keep all their notes; chord
  symbols ("G", "Am" above the staff) are not notes and are ignored.
- A tune without a meter (`M:none` or no M: field: free meter, 218 tunes, mostly Essen) is skipped
  with reason 'no_meter' rather than read as 4/4 like a MIDI file without a time signature.
- Known limit: music21's ABC reader ignores meter changes inside a tune body (`[M:..]` or a body
  `M:` line; 18 occurrences in the corpus), so those tunes are barred in their first meter.
- Tempo: the first metronome mark (`Q:`) in quarter notes per minute, else 120 qpm; later tempo
  marks are ignored (the bar grid, not the seconds, is what the windows use).
- Every part (ABC voice `V:`) with notes becomes an instrument, GM program 0 (so the 2-bar model's
  program filter 0..31 accepts it), velocity 80. Voices beyond the first are placed with the first
  voice's measure layout and are dropped when their measure count differs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fractions
import hashlib
import os
import re

import note_seq

# Bumped whenever the conversion changes, so caches of converted tunes are invalidated.
CONVERTER_VERSION = 2  # 2: repeats expanded
# A played-out tune longer than this many times its written measures is taken as a misreading.
MAX_EXPANSION = 8

COLLECTIONS = ('essenFolksong', 'oneills1850', 'ryansMammoth', 'airdsAirs', 'miscFolk')

DEFAULT_QPM = 120.0
VELOCITY = 80
PROGRAM = 0

_X_LINE = re.compile(r'^X:', re.MULTILINE)


class TuneError(ValueError):
  """A tune that yields no usable notes; `reason` is a short code for build reports."""

  def __init__(self, reason: str, detail: str = ''):
    self.reason = reason
    self.detail = detail
    super().__init__(reason + (f' ({detail})' if detail else ''))


@dataclasses.dataclass(frozen=True)
class Tune:
  """One ABC tune of a collection file.

  `path` is `<collection>/<file>.abc#<n>` with n the 1-based position of the tune in the file;
  `file_id` is the md5 of the tune's text without its `X:` (reference number) line and without
  comment lines, so the same tune printed in two files (O'Neill's has overlapping files) has one id.
  """
  path: str
  ref: str
  text: str
  file_id: str


def corpus_root() -> str:
  """The directory of music21's bundled corpus (where the ABC collections live)."""
  import music21.corpus  # pylint: disable=g-import-not-at-top
  return os.path.dirname(music21.corpus.__file__)


def collection_files(collections=COLLECTIONS, root: str | None = None) -> list[str]:
  """Sorted relative paths (`<collection>/<file>.abc`) of the ABC files of `collections`."""
  root = root or corpus_root()
  out = []
  for c in collections:
    d = os.path.join(root, c)
    if not os.path.isdir(d):
      raise FileNotFoundError(f'music21 corpus collection not found: {d}')
    out.extend(f'{c}/{f}' for f in sorted(os.listdir(d)) if f.endswith('.abc'))
  return sorted(out)


def _tune_id(text: str) -> str:
  lines = [ln.rstrip() for ln in text.splitlines()]
  lines = [ln for ln in lines if ln and not ln.startswith('%') and not ln.startswith('X:')]
  return hashlib.md5('\n'.join(lines).encode('utf-8')).hexdigest()


def split_tunes(text: str, relpath: str) -> list[Tune]:
  """Splits an ABC file into tunes; the file header (before the first X:) is prepended to each."""
  starts = [m.start() for m in _X_LINE.finditer(text)]
  if not starts:
    return []
  header = text[:starts[0]]
  # ABC file headers may set defaults (L:, M:, ...) for every tune; comment lines are harmless.
  header = '\n'.join(ln for ln in header.splitlines() if ln.strip()) + '\n' if header.strip() else ''
  tunes = []
  for n, (a, b) in enumerate(zip(starts, starts[1:] + [len(text)]), start=1):
    body = text[a:b].strip() + '\n'
    ref = body.split('\n', 1)[0][2:].strip()
    full = header + body
    tunes.append(Tune(path=f'{relpath}#{n}', ref=ref, text=full, file_id=_tune_id(full)))
  return tunes


def list_tunes(collections=COLLECTIONS, root: str | None = None) -> list[Tune]:
  """All tunes of `collections`, in sorted file order then file order."""
  root = root or corpus_root()
  tunes = []
  for rel in collection_files(collections, root):
    with open(os.path.join(root, rel), encoding='latin-1') as f:
      tunes.extend(split_tunes(f.read(), rel))
  return tunes


@contextlib.contextmanager
def _fast_abc_translation():
  """Switches off music21's notation-only beaming and re-barring while parsing ABC.

  Both cost ~75% of the parse time and change no note offset: `reBar` only splits overfull
  measures (our own bar placement handles those), `makeBeams` only draws beams.
  """
  from music21 import stream  # pylint: disable=g-import-not-at-top
  from music21.abcFormat import translate  # pylint: disable=g-import-not-at-top
  old_rebar = translate.reBar
  had_beams = 'makeBeams' in stream.Part.__dict__
  old_beams = stream.Part.__dict__.get('makeBeams')
  translate.reBar = lambda part, inPlace=False: None if inPlace else part
  stream.Part.makeBeams = lambda self, *a, inPlace=False, **k: None if inPlace else self
  try:
    yield
  finally:
    translate.reBar = old_rebar
    if had_beams:
      stream.Part.makeBeams = old_beams
    else:
      del stream.Part.makeBeams


def parse_tune(text: str):
  """ABC text of one tune -> music21 Score (fast path, see module docstring)."""
  from music21 import abcFormat  # pylint: disable=g-import-not-at-top
  from music21.abcFormat import translate  # pylint: disable=g-import-not-at-top
  with _fast_abc_translation():
    handler = abcFormat.ABCFile().readstr(text)
    return translate.abcToStreamScore(handler)


def tune_to_note_sequence(text: str, expand_repeats: bool = True,
                          counts=None) -> note_seq.NoteSequence:
  """ABC text of one tune -> NoteSequence (raises `TuneError` when it has no notes).

  `counts` (a `collections.Counter`, optional) gets 'repeats_not_expanded' += 1 when the tune's
  repeats could not be expanded (the written form is used then).
  """
  return score_to_note_sequence(parse_tune(text), expand_repeats, counts)


_SKELETON_MEASURE = None


def _skeleton_measure_class():
  """A music21 Measure whose deep copy copies only what the expander reads (4x faster)."""
  global _SKELETON_MEASURE  # pylint: disable=global-statement
  if _SKELETON_MEASURE is None:
    import copy  # pylint: disable=g-import-not-at-top
    from music21 import repeat, stream  # pylint: disable=g-import-not-at-top

    class SkeletonMeasure(stream.Measure):
      """An empty measure: number, barlines, repeat expressions and the written index (id)."""

      def __deepcopy__(self, memo=None):
        new = SkeletonMeasure(number=self.number)
        new.numberSuffix = self.numberSuffix
        new.id = self.id
        if self.leftBarline is not None:
          new.leftBarline = copy.deepcopy(self.leftBarline, memo)
        if self.rightBarline is not None:
          new.rightBarline = copy.deepcopy(self.rightBarline, memo)
        for el in self.getElementsByClass(repeat.RepeatExpression):
          new.insert(el.offset, copy.deepcopy(el, memo))
        return new

    _SKELETON_MEASURE = SkeletonMeasure
  return _SKELETON_MEASURE


def played_order(part, measures) -> list[int] | None:
  """Indices of `measures` (`part`'s written measures) in the order a performer plays them.

  music21's `repeat.Expander` on a skeleton: one empty measure per written measure, with its
  barlines, repeat expressions (da capo, segno, fine, coda...) and the part's repeat brackets
  (first / second endings); its measures copy only those (the expander copies every measure it
  repeats, which costs 5x the ABC parse for full measures). Returns None when there is nothing to expand; raises `ValueError`
  when music21 finds the repeat marks incoherent.
  """
  import copy  # pylint: disable=g-import-not-at-top
  from music21 import repeat, spanner, stream  # pylint: disable=g-import-not-at-top
  from music21 import bar  # pylint: disable=g-import-not-at-top
  skeleton = stream.Part()
  by_id = {}
  measure_cls = _skeleton_measure_class()
  for i, m in enumerate(measures):
    s = measure_cls(number=m.number)
    s.numberSuffix = m.numberSuffix
    s.id = f'written{i}'
    if m.leftBarline is not None:
      s.leftBarline = copy.deepcopy(m.leftBarline)
    if m.rightBarline is not None:
      s.rightBarline = copy.deepcopy(m.rightBarline)
    for mark in m.getElementsByClass(repeat.RepeatExpression):
      s.insert(mark.offset, copy.deepcopy(mark))
    by_id[id(m)] = s
    skeleton.append(s)
  _close_open_sections(list(skeleton.getElementsByClass(stream.Measure)), bar)
  for rb in part.spannerBundle.getByClass(spanner.RepeatBracket):
    spanned = [by_id[id(m)] for m in rb.getSpannedElements() if id(m) in by_id]
    if spanned:
      skeleton.insert(0, spanner.RepeatBracket(spanned, number=rb.number))
  expander = repeat.Expander(skeleton)
  ok = expander.isExpandable()
  if ok is None:
    return None
  if not ok:
    raise ValueError('music21 finds the repeat marks incoherent')
  played = expander.process()
  order = [int(m.id[len('written'):]) for m in played.getElementsByClass(stream.Measure)]
  if len(order) > MAX_EXPANSION * len(measures):
    raise ValueError(f'expansion to {len(order)} measures from {len(measures)}')
  return order


def _close_open_sections(measures, bar):
  """Gives every end repeat without a start its start, where a player would go back to.

  ABC tunes often write `A :| B :|` with no `|:`: a player repeats each section, going back to
  the previous end repeat or double bar (or the start). Music21 would go back to the start of the
  tune every time (A A B A A B, and exponentially longer with more sections), so a start repeat
  is put on the first measure of each such section before expanding.
  """
  section, open_start = 0, False
  for i, m in enumerate(measures):
    left, right = m.leftBarline, m.rightBarline
    if isinstance(left, bar.Repeat) and left.direction == 'start':
      open_start = True
    if isinstance(right, bar.Repeat) and right.direction == 'end':
      if not open_start and section < i + 1 and section > 0:
        first = measures[section]
        if not (isinstance(first.leftBarline, bar.Repeat)
                and first.leftBarline.direction == 'start'):
          first.leftBarline = bar.Repeat(direction='start')
      open_start = False
      section = i + 1
    elif right is not None and getattr(right, 'type', None) in ('double', 'final', 'light-light',
                                                                'light-heavy', 'heavy-light'):
      if not open_start:
        section = i + 1


def _frac(x) -> fractions.Fraction:
  return fractions.Fraction(x).limit_denominator(10_000)


@dataclasses.dataclass
class _Section:
  start: fractions.Fraction      # quarter notes
  ts: tuple[int, int] | None     # (numerator, denominator); None: no meter given


def _measure_layout(measures, first_ts):
  """Start time (quarters) of every measure and the meter sections, per the module docstring."""
  from music21 import meter  # pylint: disable=g-import-not-at-top
  starts = []
  sections = []
  ts = first_ts
  pos = fractions.Fraction(0)
  origin = fractions.Fraction(0)
  for k, m in enumerate(measures):
    m_ts = next(iter(m.getElementsByClass(meter.TimeSignature)), None)
    new_ts = (m_ts.numerator, m_ts.denominator) if m_ts is not None else ts
    bar = _frac(4 * new_ts[0] / new_ts[1]) if new_ts else fractions.Fraction(4)
    content = _frac(m.highestTime)
    if k == 0:
      # A short first measure is a pickup: it ends on the first bar line.
      start = bar - content if 0 < content < bar else fractions.Fraction(0)
      origin = fractions.Fraction(0)
      ts = new_ts
      sections.append(_Section(origin, ts))
    elif new_ts != ts:
      start = pos
      origin = start
      ts = new_ts
      sections.append(_Section(origin, ts))
    else:
      into_bar = (pos - origin) % bar
      if into_bar == 0 or content == bar - into_bar:
        start = pos
      else:
        start = pos + (bar - into_bar)
    starts.append(start)
    pos = start + content
  return starts, sections


def _first_tempo(score) -> float:
  from music21 import tempo  # pylint: disable=g-import-not-at-top
  for mm in score.recurse().getElementsByClass(tempo.MetronomeMark):
    try:
      qpm = float(mm.getQuarterBPM())
    except Exception:  # pylint: disable=broad-except
      continue
    if 20.0 <= qpm <= 400.0:
      return qpm
  return DEFAULT_QPM


def _part_events(part, measures, starts):
  """(onset, end, pitch) in quarters for the notes of `part`, ties merged, grace notes dropped."""
  from music21 import chord, harmony  # pylint: disable=g-import-not-at-top
  notes = []   # [onset, end, pitch]
  open_ties = {}  # pitch -> index into notes of a note whose tie continues
  cache = {}  # id(measure) -> [(offset, duration, midi pitches, tie type)]: repeats reuse it
  for m, start in zip(measures, starts):
    if id(m) not in cache:
      events = []
      for el in m.notesAndRests:
        if isinstance(el, harmony.Harmony) or el.isRest:
          continue
        dur = _frac(el.duration.quarterLength)
        if el.duration.isGrace or dur <= 0:
          continue
        pitches = el.pitches if isinstance(el, chord.Chord) else (el.pitch,)
        events.append((_frac(el.offset), dur, [int(p.midi) for p in pitches],
                       el.tie.type if el.tie is not None else None))
      cache[id(m)] = events
    for offset, dur, pitches, tie_type in cache[id(m)]:
      onset = start + offset
      for midi in pitches:
        idx = open_ties.pop(midi, None)
        if (idx is not None and tie_type in ('stop', 'continue')
            and abs(notes[idx][1] - onset) < fractions.Fraction(1, 8)):
          notes[idx][1] = onset + dur
        else:
          idx = len(notes)
          notes.append([onset, onset + dur, midi])
        if tie_type in ('start', 'continue'):
          open_ties[midi] = idx
  return notes


def score_to_note_sequence(score, expand_repeats: bool = True,
                           counts=None) -> note_seq.NoteSequence:
  """A parsed (monophonic) folk score -> unquantised NoteSequence; see the module docstring."""
  from music21 import meter, stream  # pylint: disable=g-import-not-at-top
  # Voices without notes (e.g. an `x`-only second voice, or an empty first one) carry no layout.
  parts = [p for p in (list(score.parts) or [score])
           if next(iter(p.recurse().notes), None) is not None]
  if not parts:
    raise TuneError('no_notes')
  measures0 = list(parts[0].getElementsByClass(stream.Measure))
  first_ts_el = next(iter(parts[0].recurse().getElementsByClass(meter.TimeSignature)), None)
  first_ts = (first_ts_el.numerator, first_ts_el.denominator) if first_ts_el is not None else None
  if first_ts is None:
    # `M:none` or no M: field: free meter, no bar grid to put windows on.
    raise TuneError('no_meter')
  if not measures0:
    # No bar lines at all: one "measure" that is the whole part, on the default grid.
    measures0 = [parts[0]]
  written0 = measures0
  order = None
  if expand_repeats and measures0 and isinstance(measures0[0], stream.Measure):
    try:
      order = played_order(parts[0], measures0)
    except Exception:  # pylint: disable=broad-except
      if counts is not None:
        counts['repeats_not_expanded'] += 1
    if order is not None:
      measures0 = [measures0[k] for k in order]
  starts, sections = _measure_layout(measures0, first_ts)

  qpm = _first_tempo(score)
  sec = 60.0 / qpm
  ns = note_seq.NoteSequence()
  ns.ticks_per_quarter = note_seq.constants.STANDARD_PPQ
  ns.tempos.add(time=0.0, qpm=qpm)
  for s in sections:
    if s.ts is not None:
      ns.time_signatures.add(time=float(s.start) * sec, numerator=s.ts[0], denominator=s.ts[1])

  for i, part in enumerate(parts):
    measures = list(part.getElementsByClass(stream.Measure)) if i else measures0
    if i and not measures:
      measures = [part]
    if i and len(measures) != len(written0):
      continue
    if i and order is not None:
      measures = [measures[k] for k in order]
    for onset, end, pitch in _part_events(part, measures, starts):
      if not 0 <= pitch <= 127:
        continue
      ns.notes.add(pitch=pitch, velocity=VELOCITY, start_time=float(onset) * sec,
                   end_time=float(end) * sec, instrument=i, program=PROGRAM, is_drum=False)
  if not ns.notes:
    raise TuneError('no_notes')
  ns.notes.sort(key=lambda n: (n.start_time, n.instrument, n.pitch))
  ns.total_time = max(n.end_time for n in ns.notes)
  ns.source_info.parser = note_seq.NoteSequence.SourceInfo.MUSIC21
  ns.source_info.encoding_type = note_seq.NoteSequence.SourceInfo.ABC
  return ns
