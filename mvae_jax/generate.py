r"""Sampling, interpolation and reconstruction with a trained MusicVAE: a CLI and a Python API.

  python -m mvae_jax.generate sample --workdir=runs/mel2 --num=8 [--temperature=0.5 | --greedy]
  python -m mvae_jax.generate interpolate --workdir=runs/mel2 --a=A.mid --b=B.mid --steps=7
  python -m mvae_jax.generate interpolate --workdir=runs/mel2 --from_eval=3,17
  python -m mvae_jax.generate reconstruct --workdir=runs/mel2 --input=X.mid [--window=bar:9]

Each command writes MIDI files and piano-roll PNGs (add `--wav` for audio) into a new folder
`<workdir>/samples/<command>[-<input>-bar<N>]-step<step>-<T0.5|greedy>-seed<seed>[-<k>]/` (the
next free index `-2`, `-3`, ... when the name is taken; or `--out`, refused when it holds files
unless `--overwrite`) and prints their absolute paths.

An input MIDI file's windows are numbered in time order. The command says how many the file has,
which one it used (its bars) and how to pick another: `--window=K` (the K-th, from 0) or
`--window=bar:N` (the window starting at bar N, counted from 1). The default is the first window
with note onsets in every bar (trios: in every part), never a silent or all-hold window while a
better one exists.

Python API (notebooks):

  from mvae_jax.generate import Model, to_midi
  m = Model.load('runs/mel2')                     # latest checkpoint (or step=...)
  pieces = m.sample(4, temperature=0.5, seed=0)    # list of NoteSequences
  mu, sigma = m.encode('tune.mid')                 # float32 [1, z_size] each
  mu, sigma = m.encode('tune.mid', window='bar:9') # bars 9-10 of the file
  logits = m.logits(tokens, mu)                    # teacher forced: float32 [b, time, vocab] per part
  greedy = m.decode_tokens(mu, greedy=True)        # int32 [b, time, parts]
  steps = m.interpolate('a.mid', 'b.mid', steps=7)
  to_midi(steps[3], 'middle.mid')

Input MIDI goes through the datasets' own extraction (`data_pipelines.encoding.located_windows`:
`extract_windows` with where each window starts, with the run's window kind and mode); a file
without a usable window raises `InputError` naming the reason (no 4/4 section, too short, no
drums, ...).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
import sys
from typing import Any, Sequence, Union

import jax
import jax.numpy as jnp
import note_seq
import numpy as np
from absl import app, flags

from data_pipelines import encoding, midi
from mvae_jax import config_lib, logs, metrics, plotting
from mvae_jax import eval as eval_lib
from mvae_jax.models import MusicVAE, default_part_names

DEFAULT_TEMPERATURE = 0.5  # the paper's sampling temperature
QPM = 120.0


class InputError(ValueError):
  """An input (MIDI file, NoteSequence or token array) the model cannot encode; says why."""


# ----------------------------------------------------------------------------- input windows

def _why_no_window(ns: note_seq.NoteSequence, spec: encoding.WindowSpec) -> str:
  """The most likely reason `extract_windows(ns, spec)` found nothing, in words."""
  parts = midi.quantized_parts(ns, spec.steps_per_quarter, spec.steps_per_bar)
  if not parts:
    sigs = sorted({f'{t.numerator}/{t.denominator}' for t in ns.time_signatures}) or ['4/4']
    return ('no section in 4/4 (or 2/2, 8/8) with a steady tempo that fits the 16th-note grid '
            f'(time signatures in the file: {", ".join(sigs)})')
  bars = max(p.total_steps for p in parts) / spec.steps_per_bar
  if bars < spec.num_bars:
    return (f'too short: its longest 4/4 section is {bars:.1f} bars, the model needs '
            f'{spec.num_bars}')
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
              'model is trained on')
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

  def __len__(self) -> int:
    return len(self.tokens)

  def describe(self, i: int) -> str:
    """`window 3 (bars 9-10, from 0:17.4)`."""
    m, sec = divmod(float(self.seconds[i]), 60.0)
    return (f'window {i} (bars {self.bars[i]}-{self.bars[i] + self.num_bars - 1}, from '
            f'{int(m)}:{sec:04.1f})')

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
    return f'{head}; using {self.describe(chosen)}, {why}; {pick}.'


def input_windows(source: str | os.PathLike | note_seq.NoteSequence,
                  spec: encoding.WindowSpec) -> InputWindows:
  """The windows of a MIDI file or NoteSequence as the datasets extract them, in time order.

  Raises:
    InputError: unreadable file, or no usable window (the message says why).
  """
  if isinstance(source, note_seq.NoteSequence):
    return _windows(source, source.filename or 'the NoteSequence', spec)
  label = os.fspath(source)
  if not os.path.exists(label):
    raise InputError(f'{label}: no such file')
  stat = os.stat(label)
  return _file_windows(label, stat.st_mtime_ns, stat.st_size, spec)


def midi_windows(source: str | note_seq.NoteSequence, spec: encoding.WindowSpec) -> np.ndarray:
  """Every window of a MIDI file or NoteSequence, as the datasets extract them, in time order.

  Returns:
    int32 [n, time, parts], n >= 1.
  Raises:
    InputError: unreadable file, or no usable window (the message says why).
  """
  return input_windows(source, spec).tokens.copy()


@functools.lru_cache(maxsize=32)
def _file_windows(path: str, mtime_ns: int, size: int, spec: encoding.WindowSpec
                  ) -> InputWindows:
  """Windows of a file, cached while the file is unchanged (interactive use re-reads often)."""
  del mtime_ns, size  # part of the cache key only
  try:
    ns = midi.read_midi(path)
  except midi.MidiError as e:
    raise InputError(f'{path}: cannot read it as MIDI ({e.reason}'
                     + (f': {e.detail}' if e.detail else '') + ')') from e
  return _windows(ns, path, spec)


def _windows(ns: note_seq.NoteSequence, label: str, spec: encoding.WindowSpec) -> InputWindows:
  try:
    windows, bars, seconds = encoding.located_windows(ns, spec)
  except midi.MidiError as e:
    raise InputError(f'{label}: {e.reason} {e.detail}'.strip()) from e
  if len(windows) == 0:
    raise InputError(f'{label}: no usable {spec.num_bars}-bar window for a {spec.kind} '
                     f'({spec.mode} mode) model: {_why_no_window(ns, spec)}')
  w = np.asarray(windows, np.int32)
  w = w[..., None] if w.ndim == 2 else w
  bars = np.floor(bars + 1e-6).astype(np.int64) + 1
  for a in (w, bars, seconds):  # shared by every caller of the cache
    a.setflags(write=False)
  best = default_window(w, spec)
  return InputWindows(label=os.path.basename(label), tokens=w, bars=bars, seconds=seconds,
                      num_bars=spec.num_bars, default=best,
                      complete_bars=int(_onset_bars(w[best:best + 1], spec)[0]))


# ----------------------------------------------------------------------------- jitted functions

def _encode(params: Any, tokens: jax.Array, *, model: MusicVAE) -> tuple[jax.Array, jax.Array]:
  return model.apply({'params': params}, tokens, method=MusicVAE.encode)


def _decode(params: Any, z: jax.Array | None, rng: jax.Array, temperature: jax.Array, *,
            model: MusicVAE, time: int, greedy: bool, batch_size: int | None = None) -> jax.Array:
  """z [batch, z_size] (or None and `batch_size` for a baseline) -> int32 [batch, time, parts]."""
  tokens, _ = model.apply({'params': params}, z,
                          batch_size=batch_size if z is None else z.shape[0], time=time,
                          temperature=temperature, greedy=greedy, rngs={'sample': rng},
                          method=MusicVAE.decode)
  return tokens


def _decode_shared_noise(params: Any, z: jax.Array, rng: jax.Array, temperature: jax.Array, *,
                         model: MusicVAE, time: int, greedy: bool) -> jax.Array:
  """Decodes every row of z with the same sampling noise (smooth interpolations)."""
  one = functools.partial(_decode, model=model, time=time, greedy=greedy)
  return jax.vmap(lambda zi: one(params, zi[None], rng, temperature)[0])(z)


def _teacher_forced_logits(params: Any, tokens: jax.Array, z: jax.Array | None, *,
                           model: MusicVAE) -> tuple[jax.Array, ...]:
  return model.apply({'params': params}, tokens, z, method=MusicVAE.decode_teacher_forced)


@functools.lru_cache(maxsize=64)
def _jitted(fn: Any, model: MusicVAE, **static: Any) -> Any:
  """One jitted function per (function, model, static arguments): every `Model` of the same
  architecture shares the compiled code."""
  return jax.jit(functools.partial(fn, model=model, **static))


def _bucket(n: int) -> int:
  """Batch sizes are padded to a power of two (at least 4), so varying n rarely recompiles."""
  return max(4, 1 << (max(n, 1) - 1).bit_length())


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
  return np.concatenate([x, np.zeros((rows - len(x),) + x.shape[1:], x.dtype)]) \
      if rows > len(x) else x


def slerp_points(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
  """`steps` points at equal steps of slerp from a to b, endpoints included: [steps, d]."""
  return np.asarray(metrics.slerp(a, b, np.linspace(0.0, 1.0, steps)), np.float32)


# ----------------------------------------------------------------------------- the API

class Model:
  """A trained MusicVAE with its config and parameters; every method works on numpy / NoteSequences.

  Inputs `x` of `encode` / `interpolate` / `reconstruct` may be a MIDI file path, a NoteSequence
  (both go through the dataset extraction; their windows are numbered in time order and `window`
  picks one: K, 'bar:N' or None for `default_window`, the first with note onsets in every bar),
  or tokens int [time], [time, parts] or [batch, time, parts].
  """

  def __init__(self, config: Any, module: MusicVAE, params: Any, step: int | None = None,
               workdir: str | None = None):
    self.config, self.module, self.params = config, module, params
    self.step, self.workdir = step, workdir
    self.spec = encoding.window_spec(config.data.kind, config.data.mode)
    self.time = config_lib.time_steps(config.data.kind)
    self.part_vocab = tuple(config.model.part_vocab)
    self.part_is_drums = tuple(config.model.part_is_drums)
    self.part_names = default_part_names(self.part_is_drums)
    self.z_size = int(config.model.z_size)

  @classmethod
  def load(cls, workdir: str, step: int | None = None) -> 'Model':
    """The latest (or `step`) checkpoint of a run directory."""
    config, module, params, step = eval_lib.load_checkpoint(workdir, step)
    return cls(config, module, params, step, os.path.abspath(workdir))

  @property
  def use_encoder(self) -> bool:
    return bool(self.config.model.use_encoder)

  def _need_encoder(self, what: str) -> None:
    if not self.use_encoder:
      raise ValueError(f'{what} needs an encoder, but this run is a baseline '
                       '(model.use_encoder=False): it can only sample')

  # -- inputs
  def windows(self, x: str | os.PathLike | note_seq.NoteSequence) -> InputWindows:
    """The windows of a MIDI file or NoteSequence for this model, in time order."""
    return input_windows(x, self.spec)

  def tokens(self, x: Any, window: WindowChoice = None) -> np.ndarray:
    """`x` as model input: int32 [batch, time, parts]."""
    if isinstance(x, (str, os.PathLike, note_seq.NoteSequence)):
      windows = self.windows(x)
      i = windows.select(window)
      return windows.tokens[i:i + 1].copy()
    t = np.asarray(x)
    if t.ndim == 1:
      t = t[None, :, None]
    elif t.ndim == 2:
      t = t[:, :, None] if len(self.part_vocab) == 1 and t.shape[1] != 1 else t[None]
    if t.ndim != 3 or t.shape[1:] != (self.time, len(self.part_vocab)):
      raise InputError(f'tokens of shape {np.asarray(x).shape} do not fit this model '
                       f'([batch,] {self.time}, {len(self.part_vocab)})')
    if not np.issubdtype(t.dtype, np.integer):
      raise InputError(f'tokens must be integers, got {t.dtype}')
    for p, vocab in enumerate(self.part_vocab):
      if t[..., p].min() < 0 or t[..., p].max() >= vocab:
        raise InputError(f'part {self.part_names[p]} has tokens outside [0, {vocab})')
    return t.astype(np.int32)

  # -- the model
  def encode(self, x: Any, window: WindowChoice = None) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of q(z|x), float32 [batch, z_size] each."""
    self._need_encoder('encode')
    tokens = self.tokens(x, window)
    n = len(tokens)
    mu, sigma = _jitted(_encode, self.module)(self.params,
                                              jnp.asarray(_pad_rows(tokens, _bucket(n))))
    return np.asarray(mu)[:n], np.asarray(sigma)[:n]

  def logits(self, x: Any, z: np.ndarray | None = None, window: int = 0) -> list[np.ndarray]:
    """Teacher-forced next-step logits of `x` given z: one float32 [batch, time, vocab_p] per
    part. The input of step t is the token of step t - 1 (nothing at t = 0), as in training.

    Args:
      x: as `encode` (tokens int [batch, time, parts], a MIDI file, ...).
      z: float [batch, z_size]; None = mu of q(z|x) (a baseline takes no z).
    """
    tokens = self.tokens(x, window)
    n = len(tokens)
    if self.use_encoder:
      z = self.encode(tokens)[0] if z is None else np.asarray(z, np.float32).reshape(-1,
                                                                                   self.z_size)
      if len(z) != n:
        raise InputError(f'z has {len(z)} rows for {n} input sequence(s)')
      z = jnp.asarray(_pad_rows(z, _bucket(n)))
    elif z is not None:
      raise ValueError('this run is a baseline (model.use_encoder=False): it takes no z')
    out = _jitted(_teacher_forced_logits, self.module)(
        self.params, jnp.asarray(_pad_rows(tokens, _bucket(n))), z)
    return [np.asarray(lg, np.float32)[:n] for lg in out]

  def decode_tokens(self, z: np.ndarray | None, *, temperature: float = DEFAULT_TEMPERATURE,
                    greedy: bool = False, seed: int = 0, num: int | None = None,
                    shared_noise: bool = False) -> np.ndarray:
    """Free-running decoding of z float [batch, z_size] (None and `num` for a baseline) ->
    int32 [batch, time, parts]. Every step samples softmax(logits / temperature), or takes
    the argmax when `greedy`. `shared_noise` gives every row the same sampling noise."""
    rng = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
    temp = jnp.float32(temperature)
    if z is None:
      if self.use_encoder:
        raise ValueError('decode needs z for a VAE (use sample() to draw it from the prior)')
      fn = _jitted(_decode, self.module, time=self.time, greedy=greedy, batch_size=_bucket(num))
      return np.asarray(fn(self.params, None, rng, temp))[:num]
    self._need_encoder('decoding a given z')
    z = np.asarray(z, np.float32).reshape(-1, self.z_size)
    n = len(z)
    fn = _jitted(_decode_shared_noise if shared_noise else _decode, self.module, time=self.time,
                 greedy=greedy)
    return np.asarray(fn(self.params, jnp.asarray(_pad_rows(z, _bucket(n))), rng, temp))[:n]

  def decode(self, z: np.ndarray, temperature: float = DEFAULT_TEMPERATURE, greedy: bool = False,
             seed: int = 0) -> list[note_seq.NoteSequence]:
    """z float [batch, z_size] -> one NoteSequence per row."""
    return self.to_note_sequences(self.decode_tokens(z, temperature=temperature, greedy=greedy,
                                                     seed=seed))

  def sample_tokens(self, num: int, temperature: float = DEFAULT_TEMPERATURE,
                    greedy: bool = False, seed: int = 0) -> np.ndarray:
    """`num` pieces from z ~ N(0, I) (the baseline: from its decoder alone): int32
    [num, time, parts]."""
    if not self.use_encoder:
      return self.decode_tokens(None, temperature=temperature, greedy=greedy, seed=seed, num=num)
    z = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(seed), 0), (num, self.z_size))
    return self.decode_tokens(np.asarray(z), temperature=temperature, greedy=greedy, seed=seed)

  def sample(self, num: int, temperature: float = DEFAULT_TEMPERATURE, greedy: bool = False,
             seed: int = 0) -> list[note_seq.NoteSequence]:
    return self.to_note_sequences(self.sample_tokens(num, temperature, greedy, seed))

  def interpolation_z(self, a: Any, b: Any, steps: int = 7, window_a: WindowChoice = None,
                      window_b: WindowChoice = None) -> np.ndarray:
    """mu of a and b, and the points between at equal steps of slerp: float32 [steps, z_size],
    endpoints included (row 0 = mu_a, row steps-1 = mu_b)."""
    self._need_encoder('interpolate')
    if steps < 2:
      raise ValueError(f'steps must be at least 2 (the two endpoints), got {steps}')
    mu_a, _ = self.encode(a, window_a)
    mu_b, _ = self.encode(b, window_b)
    if len(mu_a) != 1 or len(mu_b) != 1:
      raise InputError('interpolate takes one sequence for a and one for b')
    return slerp_points(mu_a[0], mu_b[0], steps)

  def interpolate_tokens(self, a: Any, b: Any, steps: int = 7,
                         temperature: float = DEFAULT_TEMPERATURE, greedy: bool = False,
                         seed: int = 0, window_a: WindowChoice = None,
                         window_b: WindowChoice = None) -> np.ndarray:
    """Decoded interpolation, int32 [steps, time, parts]. Every point is decoded with the same
    sampling noise, so neighbouring points differ only through z."""
    z = self.interpolation_z(a, b, steps, window_a, window_b)
    return self.decode_tokens(z, temperature=temperature, greedy=greedy, seed=seed,
                              shared_noise=not greedy)

  def interpolate(self, a: Any, b: Any, steps: int = 7, temperature: float = DEFAULT_TEMPERATURE,
                  greedy: bool = False, seed: int = 0) -> list[note_seq.NoteSequence]:
    """`steps` NoteSequences decoded at equal slerp steps from mu_a to mu_b (endpoints included)."""
    return self.to_note_sequences(self.interpolate_tokens(a, b, steps, temperature, greedy, seed))

  def reconstruct_tokens(self, x: Any, temperature: float = DEFAULT_TEMPERATURE,
                         greedy: bool = True, seed: int = 0,
                         window: WindowChoice = None) -> np.ndarray:
    """Encode to mu and decode (greedy by default): int32 [batch, time, parts]."""
    mu, _ = self.encode(x, window)
    return self.decode_tokens(mu, temperature=temperature, greedy=greedy, seed=seed)

  def reconstruct(self, x: Any, temperature: float = DEFAULT_TEMPERATURE, greedy: bool = True,
                  seed: int = 0, window: WindowChoice = None) -> list[note_seq.NoteSequence]:
    return self.to_note_sequences(self.reconstruct_tokens(x, temperature, greedy, seed, window))

  # -- outputs
  def to_note_sequence(self, tokens: np.ndarray, qpm: float = QPM) -> note_seq.NoteSequence:
    """One piece, int [time] or [time, parts] -> NoteSequence (total_time = the whole window)."""
    tokens = np.asarray(tokens)
    ns = encoding.windows_to_note_sequence(tokens[:, 0] if tokens.ndim == 2 and
                                           tokens.shape[1] == 1 else tokens, self.spec, qpm=qpm)
    ns.total_time = len(tokens) * 60.0 / qpm / self.spec.steps_per_quarter
    return ns

  def to_note_sequences(self, tokens: np.ndarray, qpm: float = QPM) -> list[note_seq.NoteSequence]:
    return [self.to_note_sequence(t, qpm) for t in np.asarray(tokens)]

  def plot(self, pieces: Sequence[np.ndarray], path: str, **kwargs) -> str:
    """Piano roll of token arrays (see `plotting.plot_pieces`)."""
    return plotting.plot_pieces(pieces, path, part_names=self.part_names,
                                part_is_drums=self.part_is_drums,
                                min_pitch=self.spec.min_pitch, **kwargs)


def to_midi(ns: note_seq.NoteSequence, path: str) -> str:
  """Writes a NoteSequence as a MIDI file; returns the path."""
  encoding.write_midi(ns, path)
  return path


def concatenate(sequences: Sequence[note_seq.NoteSequence]) -> note_seq.NoteSequence:
  """Pieces one after another, each taking its whole window (trailing rests kept)."""
  return note_seq.sequences_lib.concatenate_sequences(
      list(sequences), [s.total_time for s in sequences])


def soundfont_path() -> str:
  """The General MIDI soundfont pretty_midi ships (TimGM6mb.sf2)."""
  import pretty_midi
  return os.path.join(os.path.dirname(pretty_midi.__file__), 'TimGM6mb.sf2')


def render_wav(midi_path: str, wav_path: str | None = None, soundfont: str | None = None) -> str:
  """Renders a MIDI file to WAV (48 kHz stereo) with the `midirenderer` package
  (`pip install 'mvae_jax[audio]'`) and a GM soundfont (default: pretty_midi's)."""
  try:
    import midirenderer
  except ImportError as e:
    raise ImportError('--wav needs the midirenderer package: pip install midirenderer (or '
                      "pip install -e '.[audio]'); or render with fluidsynth: "
                      'fluidsynth -ni -F out.wav SOUNDFONT.sf2 in.mid') from e
  wav_path = wav_path or os.path.splitext(midi_path)[0] + '.wav'
  with open(soundfont or soundfont_path(), 'rb') as f:
    sf = f.read()
  with open(midi_path, 'rb') as f:
    data = f.read()
  with open(wav_path, 'wb') as f:
    f.write(midirenderer.render_wave_from(sf, data))
  return wav_path


# ----------------------------------------------------------------------------- the CLI

COMMANDS = ('sample', 'interpolate', 'reconstruct')

FLAGS = flags.FLAGS
_DEFINE = dict(allow_override=True)  # eval / train define some of the same names
flags.DEFINE_string('workdir', None, 'Run directory of a trained model.', **_DEFINE)
flags.DEFINE_integer('checkpoint_step', None, 'Checkpoint step (default: the latest).', **_DEFINE)
flags.DEFINE_integer('seed', 0, 'Random seed (z and sampling noise).', **_DEFINE)
flags.DEFINE_string('out', None, 'Output folder (default <workdir>/samples/<command>-...).')
flags.DEFINE_integer('num', 8, 'sample: number of pieces.')
flags.DEFINE_float('temperature', DEFAULT_TEMPERATURE, 'Softmax temperature of the samples.')
flags.DEFINE_bool('greedy', None, 'Argmax decoding (default: sample and interpolate sample at '
                  '--temperature, reconstruct is greedy).')
flags.DEFINE_string('a', None, 'interpolate: first MIDI file.')
flags.DEFINE_string('b', None, 'interpolate: second MIDI file.')
flags.DEFINE_string('from_eval', None, 'interpolate: "I,J" / reconstruct: "I": take eval-split '
                    'examples instead of MIDI files.')
flags.DEFINE_integer('steps', 7, 'interpolate: points from a to b, endpoints included.')
flags.DEFINE_bool('with_inputs', True, 'interpolate / reconstruct: put the inputs (black in the '
                  'PNG) around the decoded pieces in the combined MIDI and PNG.')
flags.DEFINE_string('input', None, 'reconstruct: MIDI file.')
flags.DEFINE_string('window', None, 'Which window of an input MIDI file: K (the K-th in time, '
                    'from 0) or bar:N (the one starting at bar N, from 1). Default: the first '
                    'with note onsets in every bar. interpolate: for both files unless '
                    '--window_a / --window_b.')
flags.DEFINE_string('window_a', None, 'interpolate: window of --a (default --window).')
flags.DEFINE_string('window_b', None, 'interpolate: window of --b (default --window).')
flags.DEFINE_bool('wav', False, 'Also render every MIDI file to WAV (needs midirenderer).')
flags.DEFINE_bool('overwrite', False, 'Write into --out even if it already holds files.')


def _eval_examples(model: Model, indices: Sequence[int]) -> list[np.ndarray]:
  from mvae_jax import input_pipeline
  source = input_pipeline.get_source(model.config.data, 'eval')
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

  def piece(self, tokens: np.ndarray, name: str, title: str) -> None:
    self.midi(self.model.to_note_sequence(tokens), name)
    self.plot([tokens], name + '.png', title=title)

  def plot(self, pieces: Sequence[np.ndarray], name: str, **kwargs) -> None:
    self.paths.append(self.model.plot(pieces, os.path.join(self.out, name),
                                      pitch_ranges=self.pitch_ranges, **kwargs))


def _say(line: str) -> None:
  print(line, file=sys.stderr, flush=True)


def _file_input(model: Model, path: str, window: WindowChoice) -> tuple[np.ndarray, str]:
  """(tokens [1, time, parts], folder-name part) of a MIDI file's chosen window; prints which
  window it is and how to pick another."""
  windows = model.windows(path)
  i = windows.select(window)
  _say(windows.summary(i, window))
  return windows.tokens[i:i + 1].copy(), f'{_slug(path)}-bar{windows.bars[i]}'


def run_command(command: str, *, workdir: str, step: int | None = None, out: str | None = None,
                seed: int = 0, num: int = 8, temperature: float = DEFAULT_TEMPERATURE,
                greedy: bool | None = None, a: str | None = None, b: str | None = None,
                from_eval: str | None = None, steps: int = 7, with_inputs: bool = True,
                input_path: str | None = None, window: WindowChoice = None,
                window_a: WindowChoice = None, window_b: WindowChoice = None,
                wav: bool = False, overwrite: bool = False) -> list[str]:
  """The CLI's work: writes the outputs of `command` and returns their paths (absolute).

  Default output folder: `<workdir>/samples/<command>[-<input>-bar<N>...]-step<step>-<how>-
  seed<seed>`, with the next free index appended when it exists (see `output_folder`).
  """
  if command not in COMMANDS:
    raise InputError(f'unknown command {command!r}; choose one of {COMMANDS}')
  # Check the inputs before loading anything.
  if command == 'interpolate' and not from_eval and not (a and b):
    raise InputError('interpolate needs --a and --b (MIDI files) or --from_eval=I,J')
  if command == 'reconstruct' and not from_eval and not input_path:
    raise InputError('reconstruct needs --input (a MIDI file) or --from_eval=I')
  model = Model.load(workdir, step)
  if command != 'sample':
    model._need_encoder(command)  # pylint: disable=protected-access
  if greedy is None:
    greedy = command == 'reconstruct'
  how = 'greedy' if greedy else f'T{temperature:g}'
  name = f'{model.config.family}:{model.config.preset} step {model.step}'
  what = ''  # the inputs, in the folder's name
  if command == 'interpolate':
    if from_eval:
      ia, ib = _parse_indices(from_eval, 2)
      ta, tb = (model.tokens(t) for t in _eval_examples(model, [ia, ib]))
      labels, what = (f'eval {ia}', f'eval {ib}'), f'-eval{ia}-eval{ib}'
    else:
      ta, part_a = _file_input(model, a, window if window_a is None else window_a)
      tb, part_b = _file_input(model, b, window if window_b is None else window_b)
      labels, what = (os.path.basename(a), os.path.basename(b)), f'-{part_a}-{part_b}'
  elif command == 'reconstruct':
    if from_eval:
      [i] = _parse_indices(from_eval, 1)
      tx, label, what = model.tokens(_eval_examples(model, [i])[0]), f'eval {i}', f'-eval{i}'
    else:
      tx, part = _file_input(model, input_path, window)
      label, what = os.path.basename(input_path), f'-{part}'
  base = out or os.path.join(model.workdir, 'samples',
                             f'{command}{what}-step{model.step}-{how}-seed{seed}')
  out = output_folder(base, explicit=bool(out), overwrite=overwrite)
  w = _Writer(model, out, wav)
  if command == 'sample':
    tokens = model.sample_tokens(num, temperature, greedy, seed)
    w.share_range(tokens)
    for i, t in enumerate(tokens):
      w.piece(t, f'sample_{i:03d}', f'{name} | sample {i} ({how}, seed {seed})')
  elif command == 'interpolate':
    tokens = model.interpolate_tokens(ta, tb, steps, temperature, greedy, seed)
    pieces = list(tokens)
    w.share_range(pieces + [ta[0], tb[0]])
    for i, t in enumerate(tokens):
      w.piece(t, f'interp_{i:02d}', f'{name} | interpolation step {i}/{steps - 1} ({how})')
    tags = [f'{i}' for i in range(steps)]
    tags[0], tags[-1] = f'0 (A)', f'{steps - 1} (B)'
    highlight = ()
    if with_inputs:
      pieces = [ta[0]] + pieces + [tb[0]]
      tags = ['A: ' + labels[0]] + tags + ['B: ' + labels[1]]
      highlight = (0, len(pieces) - 1)
      w.midi(model.to_note_sequence(ta[0]), 'input_a')
      w.midi(model.to_note_sequence(tb[0]), 'input_b')
    w.midi(concatenate(model.to_note_sequences(np.stack(pieces))), 'interpolation')
    w.plot(pieces, 'interpolation.png', highlight=highlight, labels=tags,
           title=f'{name} | {labels[0]} -> {labels[1]}, {steps} steps ({how}, inputs in black)')
  else:  # reconstruct
    rec = model.reconstruct_tokens(tx, temperature, greedy, seed)[0]
    w.share_range([tx[0], rec])
    w.piece(tx[0], 'input', f'{name} | input: {label}')
    w.piece(rec, 'reconstruction', f'{name} | reconstruction of {label} ({how})')
    acc = float((rec == tx[0]).mean())
    w.plot([tx[0], rec], 'comparison.png', highlight=(0,),
           labels=['input', f'reconstruction ({acc:.0%} of steps equal)'],
           title=f'{name} | {label}')
  return [os.path.abspath(p) for p in w.paths]


def main(argv: Sequence[str]) -> int:
  logs.setup(FLAGS.workdir if FLAGS.workdir and os.path.isdir(FLAGS.workdir) else None,
             'generate')
  if len(argv) != 2 or argv[1] not in COMMANDS:
    print(f'usage: python -m mvae_jax.generate {{{"|".join(COMMANDS)}}} --workdir=RUN [flags]; '
          f'got {list(argv[1:])}', file=sys.stderr)
    return 2
  if not FLAGS.workdir:
    print('error: --workdir is required', file=sys.stderr)
    return 2
  try:
    paths = run_command(
        argv[1], workdir=FLAGS.workdir, step=FLAGS.checkpoint_step, out=FLAGS.out,
        seed=FLAGS.seed, num=FLAGS.num, temperature=FLAGS.temperature, greedy=FLAGS.greedy,
        a=FLAGS.a, b=FLAGS.b, from_eval=FLAGS.from_eval, steps=FLAGS.steps,
        with_inputs=FLAGS.with_inputs, input_path=FLAGS.input, window=FLAGS.window,
        window_a=FLAGS.window_a, window_b=FLAGS.window_b, wav=FLAGS.wav,
        overwrite=FLAGS.overwrite)
  except (FileNotFoundError, InputError, eval_lib.CheckpointMismatchError, ImportError,
          ValueError, eval_lib.checkpoints.DamagedCheckpointError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  for p in paths:
    print(p)
  return 0


if __name__ == '__main__':
  app.run(main)
