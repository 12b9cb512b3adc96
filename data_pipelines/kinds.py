"""The data contract: window kinds, modes, sources, token classes. One home for both sides.

The data side (`encoding`, `build`, the TFDS builders) writes windows of these kinds; the model
side (`mvae_jax.config_lib`, `input_pipeline`, `metrics`, `plotting`) reads them. Both import the
numbers from here, and `tests/test_kinds.py` checks that a config made for a kind and the windows
extracted for it agree.

Token arrays per window (int16 on disk; the loader turns every window into int32 [time, parts]):
  melody parts: 0 = NO_EVENT (hold what sounds / stay silent), 1 = NOTE_OFF,
                NUM_SPECIAL + pitch - min_pitch = note-on of that pitch;
  drums parts:  the sum of 2**i over the drum classes i hit on the step (0 = no hit), 512 classes.
"""
from __future__ import annotations

import dataclasses

# Melody classes.
NO_EVENT = 0          # melody: continue what sounds (or the silence); drums: no hit
NOTE_OFF = 1
NUM_SPECIAL = 2       # classes before the first note-on: note-on of pitch p = NUM_SPECIAL + p - min_pitch

# Drum classes: 9 instruments, one bit each.
DRUM_NAMES = ('kick', 'snare', 'closed hi-hat', 'open hi-hat', 'low tom', 'mid tom', 'high tom',
              'crash', 'ride')
NUM_DRUM_CLASSES = len(DRUM_NAMES)
DRUM_VOCAB = 2 ** NUM_DRUM_CLASSES  # 512

STEPS_PER_QUARTER = 4
STEPS_PER_BAR = 16

MODES = ('paper', 'magenta')
# Melody pitch range per mode, inclusive: paper 0..127 (130 classes), magenta 21..108 (90).
PITCH_RANGE = {'paper': (0, 127), 'magenta': (21, 108)}

SOURCES = ('folk', 'freedoom', 'folder')


@dataclasses.dataclass(frozen=True)
class Kind:
  """What a window kind is, independent of the mode."""
  name: str
  parts: tuple[str, ...]   # 'melody' | 'drums' per part
  num_bars: int

  @property
  def time_steps(self) -> int:
    return self.num_bars * STEPS_PER_BAR

  @property
  def part_is_drums(self) -> tuple[bool, ...]:
    return tuple(p == 'drums' for p in self.parts)


_KINDS = (
    Kind('mel_2bar', ('melody',), 2),
    Kind('drums_2bar', ('drums',), 2),
    Kind('mel_16bar', ('melody',), 16),
    Kind('mel_32bar', ('melody',), 32),
    Kind('trio_16bar', ('melody', 'melody', 'drums'), 16),
    # The lengths only magenta.js's released models have (4-bar melodies, drums and trios).
    Kind('mel_4bar', ('melody',), 4),
    Kind('drums_4bar', ('drums',), 4),
    Kind('trio_4bar', ('melody', 'melody', 'drums'), 4),
)
KINDS = tuple(k.name for k in _KINDS)
_BY_NAME = {k.name: k for k in _KINDS}
# The folk source has melodies only.
FOLK_KINDS = tuple(k.name for k in _KINDS if k.parts == ('melody',))


def kind(name: str) -> Kind:
  """The `Kind` called `name`; ValueError naming the choices otherwise."""
  if name not in _BY_NAME:
    raise ValueError(f'unknown window kind {name!r}; choose from {list(KINDS)}')
  return _BY_NAME[name]


def time_steps(name: str) -> int:
  """Sixteenth-note steps of a window of kind `name`."""
  return kind(name).time_steps


def check_mode(mode: str) -> str:
  if mode not in MODES:
    raise ValueError(f'unknown mode {mode!r}; expected one of {MODES}')
  return mode


def melody_vocab(mode: str) -> int:
  """Classes of a melody part: the specials plus every pitch of the mode's range."""
  lo, hi = PITCH_RANGE[check_mode(mode)]
  return NUM_SPECIAL + hi - lo + 1


def part_vocab(name: str, mode: str) -> tuple[int, ...]:
  """Output classes per part: (130,), (512,), (130, 130, 512) in paper mode."""
  mel = melody_vocab(mode)
  return tuple(DRUM_VOCAB if p == 'drums' else mel for p in kind(name).parts)


def part_is_drums(name: str) -> tuple[bool, ...]:
  return kind(name).part_is_drums


def part_names(part_is_drums: tuple[bool, ...] | list[bool]) -> tuple[str, ...]:
  """Names of the parts: ('melody',), ('drums',), ('lead', 'bass', 'drums') for the trio layout,
  else ('part0', 'part1', ...). They name the model's part decoders and per-part metrics."""
  drums = tuple(bool(d) for d in part_is_drums)
  if drums == (False,):
    return ('melody',)
  if drums == (True,):
    return ('drums',)
  if drums == (False, False, True):
    return ('lead', 'bass', 'drums')
  return tuple(f'part{i}' for i in range(len(drums)))
