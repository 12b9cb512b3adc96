r"""A trained MusicVAE as a Python object: `Model`, for notebooks and every tool built on it.

  from mvae_jax.trained_model import Model, to_midi
  m = Model.load('runs/mel2')                     # latest checkpoint (or step=...)
  pieces = m.sample(4, temperature=0.5, seed=0)    # list of NoteSequences
  mu, sigma = m.encode('tune.mid')                 # float32 [1, z_size] each
  mu, sigma = m.encode('tune.mid', window='bar:9') # bars 9-10 of the file
  logits = m.logits(tokens, mu)                    # teacher forced: float32 [b, time, vocab] per part
  greedy = m.decode_tokens(mu, greedy=True)        # int32 [b, time, parts]
  steps = m.interpolate('a.mid', 'b.mid', steps=7)
  to_midi(steps[3], 'middle.mid')

Input MIDI goes through the datasets' own extraction (`data_pipelines.inputs`); a file without a
usable window raises `InputError` naming the reason. Every operation is jit-compiled once per
shape (batch sizes are padded to powers of two) and shared by every `Model` of one architecture.
The command line over this is `mvae_jax.generate`.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import warnings
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import note_seq
import numpy as np

from data_pipelines import encoding, kinds
from data_pipelines.inputs import InputError, InputWindows, WindowChoice, input_windows
from mvae_jax import metrics
from mvae_jax import run as run_lib
from mvae_jax.models import MusicVAE, default_part_names

DEFAULT_TEMPERATURE = 0.5  # the paper's sampling temperature
QPM = 120.0
CACHE_ENV = 'MVAE_JAX_COMPILATION_CACHE'


def enable_compilation_cache() -> str | None:
  """Keeps compiled functions on disk (JAX's persistent compilation cache), so that a new
  process's first call reads them instead of compiling again (measured: a first sample of
  cat-mel_2bar_small 3.4 s instead of 22 s on a loaded 2-core machine; benchmarks/RESULTS.md).

  The folder is $MVAE_JAX_COMPILATION_CACHE, else $XDG_CACHE_HOME/mvae_jax/xla (default
  ~/.cache/mvae_jax/xla); MVAE_JAX_COMPILATION_CACHE=off turns it off. A cache folder the
  process already set (`jax_compilation_cache_dir`) is left as it is. Entries are keyed by the
  computation, the compiler options and the jax version, so a stale entry is never used; the
  folder may be deleted at any time. Called by `Model`; returns the folder in use or None.
  """
  if jax.config.jax_compilation_cache_dir:
    return jax.config.jax_compilation_cache_dir
  path = os.environ.get(CACHE_ENV, '')
  if path.lower() in ('off', '0', 'false', 'none'):
    return None
  if not path:
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    path = os.path.join(base, 'mvae_jax', 'xla')
  try:
    os.makedirs(path, exist_ok=True)
  except OSError:
    return None  # a read-only home: compile as before
  jax.config.update('jax_compilation_cache_dir', path)
  # Cache what takes a noticeable time to compile (all of our jitted functions), not every
  # small eager operation.
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.2)
  return path


def check_temperature(temperature: float) -> float:
  """`temperature` as a float: finite and >= 0 (0 means greedy decoding); ValueError otherwise."""
  try:
    t = float(temperature)
  except (TypeError, ValueError):
    t = math.nan
  if not math.isfinite(t) or t < 0:
    raise ValueError(f'temperature must be a finite number >= 0 (0 = greedy: the most likely '
                     f'token at every step), got {temperature!r}')
  return t


def _how_to_decode(temperature: float, greedy: bool) -> tuple[bool, np.float32]:
  """(greedy, the temperature the decoder gets): temperature 0 is greedy decoding; a greedy
  decoder ignores the temperature, so it gets 1 (no division by 0). ValueError for a negative or
  non-finite temperature."""
  greedy = bool(greedy) or check_temperature(temperature) == 0
  return greedy, np.float32(1.0 if greedy else temperature)


def _check_count(value: int, what: str, lowest: int = 1) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest:
    raise ValueError(f'{what} must be a whole number >= {lowest}, got {value!r}')
  return int(value)


class Pieces(list):
  """A list of NoteSequences (what `sample`, `decode`, `interpolate` and `reconstruct` return)
  whose repr is one line per piece instead of every note's protocol buffer."""

  def __repr__(self) -> str:
    if not self:
      return 'Pieces([])'
    lines = [f'{len(self)} piece{"s" if len(self) != 1 else ""} (NoteSequences):']
    for i, ns in enumerate(self):
      pitches = [n.pitch for n in ns.notes if not n.is_drum]
      span = f', pitches {min(pitches)}..{max(pitches)}' if pitches else ''
      drums = sum(n.is_drum for n in ns.notes)
      lines.append(f'  [{i}] {ns.total_time:.1f} s, {len(ns.notes)} notes'
                   + (f' ({drums} drum hits)' if drums else '') + span)
    return '\n'.join(lines)

  _repr_pretty_ = lambda self, p, cycle: p.text(repr(self))  # noqa: E731 (IPython)


# ----------------------------------------------------------------------------- jitted functions
#
# One jitted call per operation: the key is made from the seed, z drawn and the interpolation's
# points computed inside it, so a call costs one dispatch (at batch 1 the host-side work of
# separate calls was a large part of the time). Sampling keys are those of the earlier separate
# calls: jax.random.PRNGKey(seed), z from fold_in(key, 0), decoding from fold_in(key, 1).

def _encode(params: Any, tokens: jax.Array, *, model: MusicVAE) -> tuple[jax.Array, jax.Array]:
  return model.apply({'params': params}, tokens, method=MusicVAE.encode)


def _decoder_tokens(module: MusicVAE, z: jax.Array | None, **kwargs: Any) -> jax.Array:
  """The decoder's free-running tokens alone (no logits kept): int32 [batch, time, parts]."""
  return module.dec.decode(z, with_logits=False, **kwargs)[0]


def _decode(params: Any, z: jax.Array | None, seed: jax.Array, temperature: jax.Array, *,
            model: MusicVAE, time: int, greedy: bool, batch_size: int | None = None,
            shared_noise: bool = False) -> jax.Array:
  """z [batch, z_size] (or None and `batch_size` for a baseline) -> int32 [batch, time, parts]."""
  rng = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
  return model.apply({'params': params}, z,
                     batch_size=batch_size if z is None else z.shape[0], time=time,
                     temperature=temperature, greedy=greedy, shared_noise=shared_noise,
                     rngs={'sample': rng}, method=_decoder_tokens)


def _sample(params: Any, seed: jax.Array, temperature: jax.Array, *, model: MusicVAE, time: int,
            greedy: bool, rows: int) -> jax.Array:
  """`rows` pieces from z ~ N(0, I) (z from fold_in(key, 0); row i's z does not depend on
  `rows`): int32 [rows, time, parts]."""
  z = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(seed), 0), (rows, model.z_size))
  return _decode(params, z, seed, temperature, model=model, time=time, greedy=greedy)


def _interpolate(params: Any, tokens: jax.Array, seed: jax.Array, temperature: jax.Array, *,
                 model: MusicVAE, time: int, greedy: bool, pairs: int, steps: int) -> jax.Array:
  """Encode, slerp and decode in one call.

  Args:
    tokens: int [>= 2 * pairs, time, parts]: the `pairs` start sequences, then the end ones.
  Returns:
    int32 [_bucket(pairs * steps), time, parts]: row i * steps + j is point j of pair i.
  """
  mu, _ = _encode(params, tokens, model=model)
  z = metrics.slerp(mu[:pairs], mu[pairs:2 * pairs], jnp.linspace(0.0, 1.0, steps))
  z = jnp.swapaxes(z, 0, 1).reshape(pairs * steps, -1)  # [steps, pairs, d] -> pair-major
  rows = _bucket(pairs * steps)
  z = jnp.concatenate([z, jnp.zeros((rows - len(z), z.shape[1]), z.dtype)])
  return _decode(params, z, seed, temperature, model=model, time=time, greedy=greedy,
                 shared_noise=not greedy)


def _teacher_forced_logits(params: Any, tokens: jax.Array, z: jax.Array | None, *,
                           model: MusicVAE) -> tuple[jax.Array, ...]:
  return model.apply({'params': params}, tokens, z, method=MusicVAE.decode_teacher_forced)


@functools.lru_cache(maxsize=64)
def _jitted(fn: Any, model: MusicVAE, **static: Any) -> Any:
  """One jitted function per (function, model, static arguments): every `Model` of the same
  architecture shares the compiled code."""
  return jax.jit(functools.partial(fn, model=model, **static))


def _bucket(n: int) -> int:
  """Batch sizes are padded to a power of two, so varying n rarely recompiles. One row stays
  one: a single piece (interactive use) is the common case, and at batch 1 XLA multiplies
  matrix by vector, several times faster than the smallest padded product."""
  return 1 << (max(n, 1) - 1).bit_length()


def _seed(seed: int) -> np.ndarray:
  """A seed as `jax.random.PRNGKey` reads it (its low 32 bits), passed as an array so that
  another seed does not recompile."""
  return np.uint32(int(seed) & 0xFFFFFFFF)


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
    enable_compilation_cache()
    self.config, self.module, self.params = config, module, params
    self.step, self.workdir = step, workdir
    self.spec = encoding.window_spec(config.data.kind, config.data.mode)
    self.time = kinds.time_steps(config.data.kind)
    self.part_vocab = tuple(config.model.part_vocab)
    self.part_is_drums = tuple(config.model.part_is_drums)
    self.part_names = default_part_names(self.part_is_drums)
    self.z_size = int(config.model.z_size)

  @classmethod
  def load(cls, workdir: str, step: int | None = None, *, quiet: bool = True) -> 'Model':
    """The newest healthy checkpoint of a run directory (or exactly `step`).

    `quiet` (default): the libraries' log lines (Orbax, absl) are not shown, as the command
    lines keep them off the console; our one-line warnings (a damaged checkpoint skipped) are.

    Raises:
      FileNotFoundError: not a run directory, no checkpoint, or no checkpoint for `step`.
      checkpoints.DamagedCheckpointError, run.CheckpointMismatchError: see `run.load`.
    """
    with _quiet_libraries() if quiet else contextlib.nullcontext():
      run = run_lib.load(workdir, step)
    return cls(run.config, run.model, run.params, run.step, run.workdir)

  def __repr__(self) -> str:
    m = self.config.model
    kind = 'baseline (decoder only)' if not self.use_encoder else f'z {self.z_size}'
    sizes = f'encoder {tuple(m.enc_sizes)}, ' if self.use_encoder else ''
    if m.decoder == 'hier':
      sizes += f'conductor {tuple(m.conductor_sizes)}, '
    sizes += f'{m.decoder} decoder {tuple(m.dec_sizes)}'
    where = f', from {self.workdir}' if self.workdir else ''
    step = f', step {self.step}' if self.step is not None else ''
    return (f'Model({self.config.family}:{self.config.preset}, {self.spec.kind} '
            f'({self.spec.mode} mode, {"/".join(self.part_names)} in '
            f'{"/".join(map(str, self.part_vocab))} classes), {kind}, {sizes}{step}{where})')

  @property
  def use_encoder(self) -> bool:
    return bool(self.config.model.use_encoder)

  def _need_encoder(self, what: str) -> None:
    if not self.use_encoder:
      raise ValueError(f'{what} needs an encoder, but this run is a baseline '
                       '(model.use_encoder=False): it can only sample')

  # -- inputs
  def windows(self, x: str | os.PathLike | note_seq.NoteSequence, *, track: int | None = None,
              any_program: bool = False) -> InputWindows:
    """The windows of a MIDI file or NoteSequence for this model, in time order (`.tokens`,
    `.bars`, `.seconds`, `.track`: the track each melody window comes from, `.default`).

    `track`: only that track's windows; `any_program`: a magenta-mode 2-bar melody model (trained
    on GM programs 0..31, the reference's rule) also takes notes of other programs.
    """
    return input_windows(x, self.spec, track=track, any_program=any_program)

  def tokens(self, x: Any, window: WindowChoice = None, *, track: int | None = None,
             any_program: bool = False) -> np.ndarray:
    """`x` as model input: int32 [batch, time, parts]. For a file or NoteSequence, one window
    (`window`, `track`, `any_program`: see `windows`)."""
    if isinstance(x, (str, os.PathLike, note_seq.NoteSequence)):
      windows = self.windows(x, track=track, any_program=any_program)
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
    the argmax when `greedy` or `temperature == 0`. `shared_noise` gives every row the same
    sampling noise. Raises ValueError for a negative or non-finite temperature."""
    greedy, temp = _how_to_decode(temperature, greedy)
    if z is None:
      if self.use_encoder:
        raise ValueError('decode needs z for a VAE (use sample() to draw it from the prior)')
      num = _check_count(num, 'num')
      fn = _jitted(_decode, self.module, time=self.time, greedy=greedy, batch_size=_bucket(num),
                   shared_noise=shared_noise)
      return np.asarray(fn(self.params, None, _seed(seed), temp))[:num]
    self._need_encoder('decoding a given z')
    z = np.asarray(z, np.float32).reshape(-1, self.z_size)
    n = len(z)
    fn = _jitted(_decode, self.module, time=self.time, greedy=greedy, shared_noise=shared_noise)
    return np.asarray(fn(self.params, _pad_rows(z, _bucket(n)), _seed(seed), temp))[:n]

  def decode(self, z: np.ndarray, temperature: float = DEFAULT_TEMPERATURE, greedy: bool = False,
             seed: int = 0) -> Pieces:
    """Decodes codes z float [batch, z_size] into one NoteSequence per row.

    Args:
      z: latent codes, e.g. `encode(...)[0]` or points of `interpolation_z`.
      temperature: softmax temperature of the sampled tokens (the paper's 0.5); 0 = greedy.
      greedy: the most likely token at every step (no randomness).
      seed: the sampling noise.
    Returns:
      `Pieces` (a list) of NoteSequences at 120 qpm, each exactly one window long.
    """
    return self.to_note_sequences(self.decode_tokens(z, temperature=temperature, greedy=greedy,
                                                     seed=seed))

  def sample_tokens(self, num: int, temperature: float = DEFAULT_TEMPERATURE,
                    greedy: bool = False, seed: int = 0) -> np.ndarray:
    """`num` pieces from z ~ N(0, I) (the baseline: from its decoder alone): int32
    [num, time, parts]."""
    num = _check_count(num, 'num')
    if not self.use_encoder:
      return self.decode_tokens(None, temperature=temperature, greedy=greedy, seed=seed, num=num)
    greedy, temp = _how_to_decode(temperature, greedy)
    fn = _jitted(_sample, self.module, time=self.time, greedy=greedy, rows=_bucket(num))
    return np.asarray(fn(self.params, _seed(seed), temp))[:num]

  def sample(self, num: int, temperature: float = DEFAULT_TEMPERATURE, greedy: bool = False,
             seed: int = 0) -> Pieces:
    """`num` new pieces: z drawn from the prior N(0, I) and decoded (a baseline decodes
    without z).

    Args:
      num: how many pieces (>= 1).
      temperature: softmax temperature (the paper's 0.5); 0 = greedy.
      greedy: the most likely token at every step; the pieces still differ through z.
      seed: z and the sampling noise; the same seed gives the same pieces.
    Returns:
      `Pieces` (a list) of `num` NoteSequences at 120 qpm, each one window long.
    """
    return self.to_note_sequences(self.sample_tokens(num, temperature, greedy, seed))

  def interpolation_z(self, a: Any, b: Any, steps: int = 7, window_a: WindowChoice = None,
                      window_b: WindowChoice = None) -> np.ndarray:
    """mu of a and b, and the points between at equal steps of slerp: float32 [steps, z_size],
    endpoints included (row 0 = mu_a, row steps-1 = mu_b)."""
    self._need_encoder('interpolate')
    _check_count(steps, 'steps (the points of an interpolation, both endpoints included)', 2)
    mu_a, _ = self.encode(a, window_a)
    mu_b, _ = self.encode(b, window_b)
    if len(mu_a) != 1 or len(mu_b) != 1:
      raise InputError('interpolate takes one sequence for a and one for b')
    return slerp_points(mu_a[0], mu_b[0], steps)

  def interpolate_tokens(self, a: Any, b: Any, steps: int = 7,
                         temperature: float = DEFAULT_TEMPERATURE, greedy: bool = False,
                         seed: int = 0, window_a: WindowChoice = None,
                         window_b: WindowChoice = None) -> np.ndarray:
    """Decoded interpolation, int32 [steps, time, parts]: the points of `interpolation_z`.
    Every point is decoded with the same sampling noise, so neighbouring points differ only
    through z."""
    self._need_encoder('interpolate')
    ta, tb = self.tokens(a, window_a), self.tokens(b, window_b)
    if len(ta) != 1 or len(tb) != 1:
      raise InputError('interpolate takes one sequence for a and one for b')
    return self.interpolate_pairs_tokens(ta, tb, steps, temperature, greedy, seed)[0]

  def interpolate_pairs_tokens(self, a: Any, b: Any, steps: int = 7,
                               temperature: float = DEFAULT_TEMPERATURE, greedy: bool = False,
                               seed: int = 0) -> np.ndarray:
    """n interpolations in one call: tokens a and b [n, time, parts] (row i of a to row i of
    b) -> int32 [n, steps, time, parts]; pair i is what `interpolate_tokens(a[i], b[i])` gives.
    Encoding, slerp and decoding run as one compiled function."""
    self._need_encoder('interpolate')
    if steps < 2:
      raise ValueError(f'steps must be at least 2 (the two endpoints), got {steps}')
    ta, tb = self.tokens(a), self.tokens(b)
    if len(ta) != len(tb):
      raise InputError(f'a has {len(ta)} sequences and b {len(tb)}: they go in pairs')
    n = len(ta)
    greedy, temp = _how_to_decode(temperature, greedy)
    fn = _jitted(_interpolate, self.module, time=self.time, greedy=greedy, pairs=n, steps=steps)
    tokens = _pad_rows(np.concatenate([ta, tb]), _bucket(2 * n))
    out = np.asarray(fn(self.params, tokens, _seed(seed), temp))[:n * steps]
    return out.reshape((n, steps) + out.shape[1:])

  def interpolate(self, a: Any, b: Any, steps: int = 7, temperature: float = DEFAULT_TEMPERATURE,
                  greedy: bool = False, seed: int = 0, window_a: WindowChoice = None,
                  window_b: WindowChoice = None) -> Pieces:
    """Pieces on the way from `a` to `b`: decoded at `steps` equal slerp steps from mu_a to mu_b.

    Args:
      a, b: MIDI file paths, NoteSequences or tokens (see the class docstring).
      steps: points, both endpoints included (>= 2).
      temperature, greedy, seed: as `sample`; every point shares one sampling noise.
      window_a, window_b: which window of a file (K, 'bar:N', None = the default).
    Returns:
      `Pieces` (a list) of `steps` NoteSequences.
    """
    return self.to_note_sequences(self.interpolate_tokens(a, b, steps, temperature, greedy, seed,
                                                          window_a, window_b))

  def reconstruct_tokens(self, x: Any, temperature: float = DEFAULT_TEMPERATURE,
                         greedy: bool = True, seed: int = 0,
                         window: WindowChoice = None) -> np.ndarray:
    """Encode to mu and decode (greedy by default): int32 [batch, time, parts]."""
    mu, _ = self.encode(x, window)
    return self.decode_tokens(mu, temperature=temperature, greedy=greedy, seed=seed)

  def reconstruct(self, x: Any, temperature: float = DEFAULT_TEMPERATURE, greedy: bool = True,
                  seed: int = 0, window: WindowChoice = None) -> Pieces:
    """Encodes `x` to mu and decodes it back: what the model keeps of an input.

    Args:
      x: a MIDI file path, a NoteSequence or tokens (see the class docstring).
      temperature: used when `greedy=False`; 0 = greedy.
      greedy: the most likely token at every step (the default).
      seed: the sampling noise when not greedy.
      window: which window of a file (K, 'bar:N', None = the default).
    Returns:
      `Pieces` (a list) with one NoteSequence per input sequence.
    """
    return self.to_note_sequences(self.reconstruct_tokens(x, temperature, greedy, seed, window))

  # -- latent-space tools (mvae_jax.attributes, mvae_jax.score)
  def attribute_vector(self, name: str) -> np.ndarray:
    """The attribute vector `name` of this run (`python -m mvae_jax.attributes compute` makes
    them): float32 [z_size]."""
    from mvae_jax import attributes  # pylint: disable=g-import-not-at-top
    return attributes.attribute_vector(self, name)

  def transform(self, x: Any, attribute: str, amount: float | Sequence[float] = 1.0, *,
                window: WindowChoice = None, greedy: bool = True,
                temperature: float = DEFAULT_TEMPERATURE, seed: int = 0) -> np.ndarray:
    """`x` decoded from mu + amount * the attribute's vector, for each amount: int32
    [len(amounts), batch, time, parts] (greedy by default, as `reconstruct`)."""
    from mvae_jax import attributes  # pylint: disable=g-import-not-at-top
    return attributes.transform_tokens(self, x, attribute, amount, window=window, greedy=greedy,
                                       temperature=temperature, seed=seed)[1]

  def score(self, x: Any, samples: int = 100, seed: int = 0,
            window: WindowChoice | str = 'all') -> dict[str, np.ndarray]:
    """ELBO and importance-sampled log p(x) of `x`'s windows (`mvae_jax.score.score`)."""
    from mvae_jax import score  # pylint: disable=g-import-not-at-top
    return score.score(self, x, samples, seed, window)

  # -- outputs
  def to_note_sequence(self, tokens: np.ndarray, qpm: float = QPM) -> note_seq.NoteSequence:
    """One piece, int [time] or [time, parts] -> NoteSequence (total_time = the whole window)."""
    tokens = np.asarray(tokens)
    ns = encoding.windows_to_note_sequence(tokens[:, 0] if tokens.ndim == 2 and
                                           tokens.shape[1] == 1 else tokens, self.spec, qpm=qpm)
    ns.total_time = len(tokens) * 60.0 / qpm / self.spec.steps_per_quarter
    return ns

  def to_note_sequences(self, tokens: np.ndarray, qpm: float = QPM) -> Pieces:
    """Pieces int [n, time, parts] -> `Pieces` (a list) of n NoteSequences."""
    return Pieces(self.to_note_sequence(t, qpm) for t in np.asarray(tokens))

  def plot(self, pieces: Sequence[np.ndarray], path: str, **kwargs) -> str:
    """Piano roll of token arrays (see `plotting.plot_pieces`)."""
    from mvae_jax import plotting  # pylint: disable=g-import-not-at-top  (matplotlib: slow import)
    return plotting.plot_pieces(pieces, path, part_names=self.part_names,
                                part_is_drums=self.part_is_drums,
                                min_pitch=self.spec.min_pitch, **kwargs)


@contextlib.contextmanager
def _quiet_libraries():
  """Library log records below ERROR (Orbax's and absl's INFO / WARNING lines) and Python
  warnings are dropped while a run loads, as the command lines keep them off the console."""
  loggers = [logging.getLogger(name) for name in ('absl', 'orbax', 'jax')]
  saved = [lg.level for lg in loggers]
  try:
    for lg in loggers:
      lg.setLevel(logging.ERROR)
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      yield
  finally:
    for lg, level in zip(loggers, saved):
      lg.setLevel(level)


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
