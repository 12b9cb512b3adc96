r"""The generate command's work as a library function: `run_command('sample', workdir=...)`.

Each command writes MIDI files and piano-roll PNGs (WAV too with `wav=True`) into a new folder
`<workdir>/samples/<command>[-<input>-bar<N>]-step<step>-<T0.5|greedy>-seed<seed>[-<k>]/` (the
next free index `-2`, `-3`, ... when the name is taken; or `out`, refused when it holds files
unless `overwrite`) and returns their absolute paths. The command line is `mvae_jax.generate`.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from typing import Sequence

import note_seq
import numpy as np

from data_pipelines.inputs import InputError, WindowChoice
from mvae_jax import plotting
from mvae_jax.trained_model import (DEFAULT_TEMPERATURE, Model, check_temperature, concatenate,
                                    render_wav, to_midi)

COMMANDS = ('sample', 'interpolate', 'reconstruct', 'transform')


class ArgumentError(InputError):
  """A command-line argument that cannot work (`--num=0`, `--temperature=nan`, a missing
  `--input`): found before anything is loaded or written; the command exits with status 2."""


def check_arguments(command: str, *, num: int = 8, temperature: float = DEFAULT_TEMPERATURE,
                    steps: int = 7, a: str | None = None, b: str | None = None,
                    from_eval: str | None = None, input_path: str | None = None) -> None:
  """Raises ArgumentError (one line naming the flag) for arguments no command can use."""
  if command not in COMMANDS:
    raise ArgumentError(f'unknown command {command!r}; choose one of {COMMANDS}')
  try:
    check_temperature(temperature)
  except ValueError as e:
    raise ArgumentError(f'--{e}') from None
  if command == 'sample' and (isinstance(num, bool) or not isinstance(num, (int, np.integer))
                              or num < 1):
    raise ArgumentError(f'--num must be a whole number >= 1 (pieces to sample), got {num!r}')
  if command == 'interpolate':
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
      raise ArgumentError(f'--steps must be a whole number >= 2 (the two endpoints included), '
                          f'got {steps!r}')
    if not from_eval and not (a and b):
      raise ArgumentError('interpolate needs --a and --b (MIDI files) or --from_eval=I,J')
  if command in ('reconstruct', 'transform') and not from_eval and not input_path:
    raise ArgumentError(f'{command} needs --input (a MIDI file) or --from_eval=I')


def _eval_examples(model: Model, indices: Sequence[int]) -> list[np.ndarray]:
  from mvae_jax import input_pipeline
  from mvae_jax import run as run_lib
  recorded = (run_lib.load_dataset_record(model.workdir) if model.workdir else None) or {}
  source = input_pipeline.get_source(model.config.data, 'eval', recorded.get('fingerprint'))
  out = []
  for i in indices:
    if not 0 <= i < len(source):
      raise InputError(f'eval example {i} does not exist (the eval split has {len(source)})')
    ex = source[i]
    out.append(input_pipeline.to_parts(ex['tokens'] if isinstance(ex, dict) else ex))
  return out


def _parse_indices(text: str, count: int) -> list[int]:
  try:
    idx = [int(v) for v in text.split(',')]
  except ValueError:
    idx = []
  if len(idx) != count:
    raise InputError(f'--from_eval={text!r}: expected {count} comma-separated integer(s)')
  return idx


def _slug(text: str, limit: int = 40) -> str:
  """A file name's stem as a safe folder-name part: `My Song (v2).mid` -> `My_Song_v2`."""
  stem = os.path.splitext(os.path.basename(text))[0]
  return re.sub(r'[^A-Za-z0-9.-]+', '_', stem).strip('_.')[:limit] or 'input'


def output_folder(base: str, *, explicit: bool, overwrite: bool) -> str:
  """Where a command writes: never over earlier outputs unless asked.

  An explicit `--out` that already holds files is refused without `overwrite`. A default folder
  name that is taken gets the next free index (`<base>-2`, `<base>-3`, ...), or is reused with
  `overwrite`.
  """
  base = os.path.abspath(base)

  def taken(path):
    return os.path.isdir(path) and bool(os.listdir(path)) or os.path.isfile(path)

  if overwrite or not taken(base):
    return base
  if explicit:
    raise InputError(f'{base} already holds files; pass --overwrite to write over them, or '
                     'choose another --out')
  k = 2
  while taken(f'{base}-{k}'):
    k += 1
  return f'{base}-{k}'


class _Writer:
  """Writes MIDI (+ WAV) and PNG files into one folder and remembers their paths. Every piece of
  one command is drawn with the same pitch range (`pitch_ranges`), so the pictures compare."""

  def __init__(self, model: Model, out: str, wav: bool):
    self.model, self.out, self.wav, self.paths = model, out, wav, []
    self.pitch_ranges = None
    os.makedirs(out, exist_ok=True)

  def share_range(self, pieces: Sequence[np.ndarray]) -> None:
    self.pitch_ranges = plotting.pitch_ranges(pieces, self.model.part_is_drums,
                                              self.model.spec.min_pitch)

  def midi(self, ns: note_seq.NoteSequence, name: str) -> None:
    path = to_midi(ns, os.path.join(self.out, name + '.mid'))
    self.paths.append(path)
    if self.wav:
      self.paths.append(render_wav(path))

  def piece(self, tokens: np.ndarray, name: str, title: str, first_bar: int = 1) -> None:
    self.midi(self.model.to_note_sequence(tokens), name)
    self.plot([tokens], name + '.png', title=title, first_bars=[first_bar])

  def plot(self, pieces: Sequence[np.ndarray], name: str, **kwargs) -> None:
    self.paths.append(self.model.plot(pieces, os.path.join(self.out, name),
                                      pitch_ranges=self.pitch_ranges, **kwargs))


def _say(line: str) -> None:
  print(line, file=sys.stderr, flush=True)


def _file_input(model: Model, path: str, window: WindowChoice, track: int | None = None,
                any_program: bool = False) -> tuple[np.ndarray, str, int]:
  """(tokens [1, time, parts], folder-name part, the file's bar where the window starts) of a
  MIDI file's chosen window; prints which window it is (and its track) and how to pick another."""
  windows = model.windows(path, track=track, any_program=any_program)
  i = windows.select(window)
  _say(windows.summary(i, window))
  part = f'{_slug(path)}' + (f'-track{track}' if track is not None else '')
  return windows.tokens[i:i + 1].copy(), f'{part}-bar{windows.bars[i]}', int(windows.bars[i])


def run_command(command: str, *, workdir: str, step: int | None = None, out: str | None = None,
                seed: int = 0, num: int = 8, temperature: float = DEFAULT_TEMPERATURE,
                greedy: bool | None = None, a: str | None = None, b: str | None = None,
                from_eval: str | None = None, steps: int = 7, with_inputs: bool = True,
                input_path: str | None = None, window: WindowChoice = None,
                window_a: WindowChoice = None, window_b: WindowChoice = None,
                wav: bool = False, overwrite: bool = False, track: int | None = None,
                any_program: bool = False, attribute: str | None = None,
                amount: str | float | Sequence[float] = 1.0, nearest: bool = False) -> list[str]:
  """The CLI's work: writes the outputs of `command` and returns their paths (absolute).

  Default output folder: `<workdir>/samples/<command>[-<input>-bar<N>...]-step<step>-<how>-
  seed<seed>`, with the next free index appended when it exists (see `output_folder`).
  `temperature=0` is greedy decoding (the argmax at every step), as `greedy=True`. A command that
  fails removes the output folder it created, so no empty or partial folder is left behind.

  Raises:
    ArgumentError: an argument no command can use (checked before anything is loaded).
    InputError, FileNotFoundError, ...: an unusable input or run (nothing written).
  """
  # Check the arguments before loading anything.
  check_arguments(command, num=num, temperature=temperature, steps=steps, a=a, b=b,
                  from_eval=from_eval, input_path=input_path)
  amounts = None
  if command == 'transform':
    from mvae_jax import attributes  # pylint: disable=g-import-not-at-top
    if not attribute:
      raise ArgumentError('transform needs --attribute (python -m mvae_jax.attributes list '
                          f'--workdir={workdir} names them)')
    try:
      amounts = attributes.parse_amounts(amount)
    except ValueError as e:
      raise ArgumentError(str(e)) from None
  model = Model.load(workdir, step)
  if command != 'sample':
    model._need_encoder(command)  # pylint: disable=protected-access
  if greedy is None:
    greedy = command in ('reconstruct', 'transform')
  if temperature == 0 and not greedy:
    _say('--temperature=0 is greedy decoding: the most likely token at every step (as --greedy)')
    greedy = True
  how = 'greedy' if greedy else f'T{temperature:g}'
  name = f'{model.config.family}:{model.config.preset} step {model.step}'
  what = ''  # the inputs, in the folder's name
  ta = tb = tx = labels = label = None
  first_bars = (1, 1)  # where the inputs start in their files (the piano rolls' bar numbers)
  pick = dict(track=track, any_program=any_program)
  if command == 'interpolate':
    if from_eval:
      ia, ib = _parse_indices(from_eval, 2)
      ta, tb = (model.tokens(t) for t in _eval_examples(model, [ia, ib]))
      labels, what = (f'eval {ia}', f'eval {ib}'), f'-eval{ia}-eval{ib}'
    else:
      ta, part_a, bar_a = _file_input(model, a, window if window_a is None else window_a, **pick)
      tb, part_b, bar_b = _file_input(model, b, window if window_b is None else window_b, **pick)
      labels, what = (os.path.basename(a), os.path.basename(b)), f'-{part_a}-{part_b}'
      first_bars = (bar_a, bar_b)
  elif command in ('reconstruct', 'transform'):
    if command == 'transform':
      attributes.model_vectors(model).index(attribute)  # no vectors / unknown name: fail now
    if from_eval:
      [i] = _parse_indices(from_eval, 1)
      tx, label, what = model.tokens(_eval_examples(model, [i])[0]), f'eval {i}', f'-eval{i}'
    else:
      tx, part, bar_x = _file_input(model, input_path, window, **pick)
      label, what = os.path.basename(input_path), f'-{part}'
      first_bars = (bar_x, bar_x)
  if command == 'transform':
    what += f'-{attribute.replace("/", "_")}'
  base = out or os.path.join(model.workdir, 'samples',
                             f'{command}{what}-step{model.step}-{how}-seed{seed}')
  out = output_folder(base, explicit=bool(out), overwrite=overwrite)
  created = not os.path.exists(out)
  try:
    return _write(command, _Writer(model, out, wav), name=name, how=how, num=num,
                  temperature=temperature, greedy=greedy, seed=seed, steps=steps,
                  with_inputs=with_inputs, a=(ta, labels[0]) if command == 'interpolate' else None,
                  b=(tb, labels[1]) if command == 'interpolate' else None,
                  x=(tx, label) if command in ('reconstruct', 'transform') else None,
                  first_bars=first_bars, nearest=nearest, attribute=attribute, amounts=amounts)
  except BaseException:
    if created:  # a failed command leaves no empty or half-written folder behind
      shutil.rmtree(out, ignore_errors=True)
    raise


def _write(command: str, w: _Writer, *, name: str, how: str, num: int, temperature: float,
           greedy: bool, seed: int, steps: int, with_inputs: bool,
           a: tuple[np.ndarray, str] | None, b: tuple[np.ndarray, str] | None,
           x: tuple[np.ndarray, str] | None, first_bars: tuple[int, int] = (1, 1),
           nearest: bool = False, attribute: str | None = None,
           amounts: Sequence[float] | None = None) -> list[str]:
  """Decodes and writes the outputs of `command` through `w`; returns their absolute paths.
  `a`, `b` (interpolate) and `x` (reconstruct): (tokens [1, time, parts], label) of the inputs;
  `first_bars`: the bars of their files where they start (the pictures' bar numbers)."""
  model = w.model
  if a is not None:
    (ta, label_a), (tb, label_b) = a, b
    labels = (label_a, label_b)
  if x is not None:
    tx, label = x
  if command == 'sample':
    tokens = model.sample_tokens(num, temperature, greedy, seed)
    w.share_range(tokens)
    for i, t in enumerate(tokens):
      w.piece(t, f'sample_{i:03d}', f'{name} | sample {i} ({how}, seed {seed})')
    if nearest:
      from mvae_jax import novelty  # pylint: disable=g-import-not-at-top
      lines, paths = novelty.write_nearest(model, tokens, w.out,
                                           names=[f'sample_{i:03d}' for i in range(len(tokens))])
      for line in lines:
        _say(line)
      w.paths += paths
  elif command == 'interpolate':
    tokens = model.interpolate_tokens(ta, tb, steps, temperature, greedy, seed)
    pieces = list(tokens)
    w.share_range(pieces + [ta[0], tb[0]])
    for i, t in enumerate(tokens):
      w.piece(t, f'interp_{i:02d}', f'{name} | interpolation step {i}/{steps - 1} ({how})')
    tags = [f'{i}' for i in range(steps)]
    tags[0], tags[-1] = '0 (A)', f'{steps - 1} (B)'
    highlight, bars = (), [1] * len(pieces)
    if with_inputs:
      pieces = [ta[0]] + pieces + [tb[0]]
      tags = ['A: ' + labels[0]] + tags + ['B: ' + labels[1]]
      highlight = (0, len(pieces) - 1)
      bars = [first_bars[0]] + bars + [first_bars[1]]  # the inputs in their files' bars
      w.midi(model.to_note_sequence(ta[0]), 'input_a')
      w.midi(model.to_note_sequence(tb[0]), 'input_b')
    w.midi(concatenate(model.to_note_sequences(np.stack(pieces))), 'interpolation')
    w.plot(pieces, 'interpolation.png', highlight=highlight, labels=tags, first_bars=bars,
           title=f'{name} | {labels[0]} -> {labels[1]}, {steps} steps ({how}, inputs in black)')
  elif command == 'transform':
    from mvae_jax import attributes  # pylint: disable=g-import-not-at-top
    w.paths += attributes.write_transform(model, tx, attribute, amounts, w.out, greedy=greedy,
                                          temperature=temperature, seed=seed, label=label)
  else:  # reconstruct
    rec = model.reconstruct_tokens(tx, temperature, greedy, seed)[0]
    w.share_range([tx[0], rec])
    w.piece(tx[0], 'input', f'{name} | input: {label}', first_bars[0])
    w.piece(rec, 'reconstruction', f'{name} | reconstruction of {label} ({how})', first_bars[0])
    acc = float((rec == tx[0]).mean())
    w.plot([tx[0], rec], 'comparison.png', highlight=(0,), first_bars=[first_bars[0]] * 2,
           labels=['input', f'reconstruction ({acc:.0%} of steps equal)'],
           title=f'{name} | {label}')
  return [os.path.abspath(p) for p in w.paths]
