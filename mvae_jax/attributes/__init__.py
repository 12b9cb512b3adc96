r"""Attribute vectors: move a piece along a musical attribute in latent space.

  python -m mvae_jax.attributes compute --workdir=RUN [--split=train | --midi_dir=DIR]
  python -m mvae_jax.attributes matrix --workdir=RUN [--num=512] [--out=docs/results/NAME]
  python -m mvae_jax.attributes list --workdir=RUN

The full MusicVAE paper (Roberts et al., ICML 2018, section 5, "latent space manipulation")
takes an attribute of a piece (note density, say), sorts the training sequences by it, and
subtracts the mean latent code of the bottom quartile from the mean code of the top quartile.
Adding a multiple of that *attribute vector* to the code of another piece and decoding gives the
piece with more (or, subtracted, less) of the attribute while keeping the rest. `compute` does
this for every attribute of the run's family and writes `<run>/attributes.npz`;
`python -m mvae_jax.generate transform` (`write_transform` here) applies a vector to a MIDI
file; `matrix` measures, as the paper's Figure 6, how each vector changes every attribute of
held-out windows.

Attributes (all on the 16-step-per-bar grid, per window; `nan` where undefined, e.g. an interval
of a window with one note; such windows are left out of that attribute's statistics):

Melody parts (melodies; the lead and bass of a trio as `lead/<name>`, `bass/<name>`):
  note_density      note onsets per bar (0..16).
  average_interval  mean absolute interval between consecutive onsets, in semitones (nan below
                    two onsets).
  syncopation_16th  fraction of onsets on an odd 16th (steps 1, 3, 5, ... of a bar) that are held
                    across the following 8th-note position (the next step is a hold, not a new
                    note or a note-off): a note that starts between 8th notes and sounds through
                    the next one. nan without onsets.
  syncopation_8th   fraction of onsets on an off-beat 8th (steps 2, 6, 10, 14 of a bar) held
                    across the following beat (the next two steps are holds). nan without onsets.
  c_diatonic        fraction of onsets whose pitch class is in the C major scale (C D E F G A B).
                    nan without onsets.
  pitch_range       highest minus lowest onset pitch, in semitones. nan without onsets.
  rest_fraction     fraction of steps where no note sounds (0..1).
Drum parts (2-bar drums; the drums of a trio as `drums/<name>`):
  hits_per_bar      drum hits per bar, each instrument counted (0..144).
  offbeat_fraction  fraction of hits that are not on a quarter-note beat (steps other than 0, 4,
                    8, 12 of a bar). nan without hits.
  kick_density      kick hits per bar (0..16).
  snare_density     snare hits per bar (0..16).
  hihat_density     closed + open hi-hat hits per bar (0..32).

The paper names five of these (note density, average interval, 16th- and 8th-note syncopation,
C diatonic) without spelling out its syncopation rule; ours counts a note as syncopated when it
starts off the beat grid of the next coarser level and is held through that grid point, the
usual musical meaning, which also matches the supplement's Figures 10 and 11 (syncopated notes
drawn across 8th / quarter-note lines).

Python API (a trained `Model` first, as everywhere):

  vecs = compute_attribute_vectors(model, split='train')   # writes <run>/attributes.npz
  vecs = load_attribute_vectors(model.workdir)
  x, out = transform_tokens(model, 'tune.mid', 'note_density', [-1, 0, 1])
  paths = write_transform(model, 'tune.mid', 'note_density', [1.5], out_dir)
  values = window_attributes(model, tokens)                 # {name: float [batch]}
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
from typing import Any, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines import console, inputs
from data_pipelines.kinds import NO_EVENT, NUM_DRUM_CLASSES, NUM_SPECIAL, STEPS_PER_BAR
from mvae_jax import input_pipeline

C_MAJOR = np.zeros(12, bool)
C_MAJOR[[0, 2, 4, 5, 7, 9, 11]] = True
KICK, SNARE, CLOSED_HAT, OPEN_HAT = 0, 1, 2, 3  # drum classes = bits of a drum token
FILENAME = 'attributes.npz'
DEFAULT_FRACTION = 0.25  # the paper's quartiles

# (name, unit) in output order; the definitions are in the module docstring.
MELODY_ATTRIBUTES = (
    ('note_density', 'onsets / bar'),
    ('average_interval', 'semitones'),
    ('syncopation_16th', 'fraction of onsets'),
    ('syncopation_8th', 'fraction of onsets'),
    ('c_diatonic', 'fraction of onsets'),
    ('pitch_range', 'semitones'),
    ('rest_fraction', 'fraction of steps'),
)
DRUM_ATTRIBUTES = (
    ('hits_per_bar', 'hits / bar'),
    ('offbeat_fraction', 'fraction of hits'),
    ('kick_density', 'hits / bar'),
    ('snare_density', 'hits / bar'),
    ('hihat_density', 'hits / bar'),
)


class VectorsMissingError(FileNotFoundError):
  """A run without `attributes.npz` (or without the asked attribute); says what to run."""


# ----------------------------------------------------------------------------- attributes

def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
  """num / den as float64, nan where den == 0."""
  num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
  out = np.full(np.broadcast(num, den).shape, np.nan)
  np.divide(num, den, out=out, where=den > 0)
  return out


def _last_index(mask: np.ndarray) -> np.ndarray:
  """Per row and step, the latest step <= t where mask holds (-1 before the first): int [b, T]."""
  t = np.arange(mask.shape[1])
  return np.maximum.accumulate(np.where(mask, t, -1), axis=1)


def sounding(tokens: np.ndarray) -> np.ndarray:
  """Melody tokens int [batch, time] -> bool [batch, time]: a note sounds at the step (its
  onset, or a hold after it that no NOTE_OFF or new onset has ended)."""
  tokens = np.asarray(tokens)
  last = _last_index(tokens != NO_EVENT)
  event = np.take_along_axis(tokens, np.maximum(last, 0), axis=1)
  return (last >= 0) & (event >= NUM_SPECIAL)


def _held(tokens: np.ndarray, steps: int) -> np.ndarray:
  """bool [b, T]: the `steps` tokens after step t exist and are all holds (NO_EVENT)."""
  b, n = tokens.shape
  out = np.zeros((b, n), bool)
  if steps < n:
    ok = np.ones((b, n - steps), bool)
    for k in range(1, steps + 1):
      ok &= tokens[:, k:n - steps + k] == NO_EVENT
    out[:, :n - steps] = ok
  return out


def melody_attributes(tokens: np.ndarray, min_pitch: int = 0,
                      steps_per_bar: int = STEPS_PER_BAR) -> dict[str, np.ndarray]:
  """The melody attributes (see the module docstring) of a batch of one melody part.

  Args:
    tokens: int [batch, time]: 0 hold, 1 note-off, 2 + pitch - min_pitch note-on.
    min_pitch: MIDI pitch of class 2 (0 in paper mode, 21 in magenta mode).
  Returns:
    {name: float64 [batch]} in `MELODY_ATTRIBUTES` order.
  """
  tokens = np.asarray(tokens, np.int64)
  if tokens.ndim != 2:
    raise ValueError(f'melody tokens must be [batch, time], got shape {tokens.shape}')
  b, n = tokens.shape
  bars = n / steps_per_bar
  onset = tokens >= NUM_SPECIAL
  count = onset.sum(1)
  pitch = tokens - NUM_SPECIAL + min_pitch
  pos = np.arange(n) % steps_per_bar
  # Interval to the previous onset: the latest onset strictly before each step.
  prev = np.concatenate([np.full((b, 1), -1), _last_index(onset)[:, :-1]], axis=1)
  has_prev = onset & (prev >= 0)
  interval = np.abs(pitch - np.take_along_axis(pitch, np.maximum(prev, 0), axis=1))
  sync16 = onset & (pos % 2 == 1) & _held(tokens, 1)
  sync8 = onset & (pos % 4 == 2) & _held(tokens, 2)
  diatonic = onset & C_MAJOR[pitch % 12]
  big = np.iinfo(np.int64).max
  hi = np.where(onset, pitch, -big).max(1)
  lo = np.where(onset, pitch, big).min(1)
  return {
      'note_density': count / bars,
      'average_interval': _safe_ratio(np.where(has_prev, interval, 0).sum(1), has_prev.sum(1)),
      'syncopation_16th': _safe_ratio(sync16.sum(1), count),
      'syncopation_8th': _safe_ratio(sync8.sum(1), count),
      'c_diatonic': _safe_ratio(diatonic.sum(1), count),
      'pitch_range': np.where(count > 0, hi - lo, np.nan).astype(np.float64),
      'rest_fraction': 1.0 - sounding(tokens).mean(1),
  }


def drum_hits(tokens: np.ndarray) -> np.ndarray:
  """512-class drum tokens int [batch, time] -> bool [batch, time, 9] (class c = bit c)."""
  tokens = np.asarray(tokens, np.int64)
  return (tokens[..., None] >> np.arange(NUM_DRUM_CLASSES)) & 1 == 1


def drum_attributes(tokens: np.ndarray,
                    steps_per_bar: int = STEPS_PER_BAR) -> dict[str, np.ndarray]:
  """The drum attributes (see the module docstring) of a batch of one drum part.

  Args:
    tokens: int [batch, time], each the sum of 2**c over the drum classes c hit on the step.
  Returns:
    {name: float64 [batch]} in `DRUM_ATTRIBUTES` order.
  """
  tokens = np.asarray(tokens, np.int64)
  if tokens.ndim != 2:
    raise ValueError(f'drum tokens must be [batch, time], got shape {tokens.shape}')
  bars = tokens.shape[1] / steps_per_bar
  hits = drum_hits(tokens)
  per_step = hits.sum(2)
  off_beat = np.arange(tokens.shape[1]) % 4 != 0
  total = per_step.sum(1)
  return {
      'hits_per_bar': total / bars,
      'offbeat_fraction': _safe_ratio(per_step[:, off_beat].sum(1), total),
      'kick_density': hits[..., KICK].sum(1) / bars,
      'snare_density': hits[..., SNARE].sum(1) / bars,
      'hihat_density': hits[..., [CLOSED_HAT, OPEN_HAT]].sum((1, 2)) / bars,
  }


def attribute_names(part_names: Sequence[str], part_is_drums: Sequence[bool]) -> list[str]:
  """Every attribute of a layout: ['note_density', ...] for one part, ['lead/note_density',
  ..., 'drums/hits_per_bar', ...] for several."""
  out = []
  for name, drums in zip(part_names, part_is_drums):
    prefix = f'{name}/' if len(part_names) > 1 else ''
    out += [prefix + a for a, _ in (DRUM_ATTRIBUTES if drums else MELODY_ATTRIBUTES)]
  return out


def attribute_unit(name: str) -> str:
  base = name.rsplit('/', 1)[-1]
  return dict(MELODY_ATTRIBUTES + DRUM_ATTRIBUTES)[base]


def compute_attributes(tokens: np.ndarray, part_names: Sequence[str],
                       part_is_drums: Sequence[bool], min_pitch: int = 0,
                       steps_per_bar: int = STEPS_PER_BAR) -> dict[str, np.ndarray]:
  """Every attribute of windows int [batch, time, parts]: {name: float64 [batch]}, in
  `attribute_names` order."""
  tokens = np.asarray(tokens)
  if tokens.ndim != 3 or tokens.shape[2] != len(part_names):
    raise ValueError(f'tokens must be [batch, time, {len(part_names)}], got {tokens.shape}')
  out = {}
  for p, (name, drums) in enumerate(zip(part_names, part_is_drums)):
    values = (drum_attributes(tokens[..., p], steps_per_bar) if drums
              else melody_attributes(tokens[..., p], min_pitch, steps_per_bar))
    prefix = f'{name}/' if len(part_names) > 1 else ''
    out.update({prefix + k: v for k, v in values.items()})
  return out


def window_attributes(model: Any, tokens: np.ndarray) -> dict[str, np.ndarray]:
  """`compute_attributes` with a `Model`'s layout: int [batch, time, parts] -> {name: [batch]}."""
  return compute_attributes(tokens, model.part_names, model.part_is_drums, model.spec.min_pitch,
                            model.spec.steps_per_bar)


def model_attribute_names(model: Any) -> list[str]:
  return attribute_names(model.part_names, model.part_is_drums)


# ----------------------------------------------------------------------------- big batches

def batches(n: int, batch_size: int) -> Iterator[tuple[int, int]]:
  """(start, stop) of consecutive batches covering range(n)."""
  for start in range(0, n, batch_size):
    yield start, min(n, start + batch_size)


def pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
  """x [n, ...] with zero rows appended up to `rows` (every batch has one shape: one compile)."""
  if len(x) >= rows:
    return x
  return np.concatenate([x, np.zeros((rows - len(x),) + x.shape[1:], x.dtype)])


def default_batch_size(model: Any, budget: int = 1 << 22) -> int:
  """Rows per batch: about `budget` logits (time x summed vocabulary) per batch, 16..512."""
  per_row = model.time * sum(model.part_vocab)
  return int(min(512, max(16, 1 << int(math.log2(max(1, budget // per_row))))))


def _encode(params: Any, tokens: jax.Array, *, module: Any) -> tuple[jax.Array, jax.Array]:
  return module.apply({'params': params}, tokens, method=module.encode)


@functools.lru_cache(maxsize=16)
def _jit(fn: Any, module: Any, **static: Any) -> Any:
  """One jitted function per (function, module, static arguments)."""
  return jax.jit(functools.partial(fn, module=module, **static))


def encode_all(model: Any, tokens: np.ndarray, batch_size: int | None = None,
               progress: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(mu, sigma) of q(z|x) for many windows, float32 [n, z_size] each, in fixed-size batches
  (the last padded), so the encoder compiles once. `progress`: a label to show progress under."""
  if not model.use_encoder:
    raise ValueError('this run is a baseline (model.use_encoder=False): it has no encoder')
  tokens = np.asarray(tokens, np.int32)
  n = len(tokens)
  # A power of two: a few shapes cover every n (one compile each).
  bs = min(batch_size or default_batch_size(model), 1 << (max(1, n) - 1).bit_length())
  fn = _jit(_encode, model.module)
  mu = np.zeros((n, model.z_size), np.float32)
  sigma = np.zeros((n, model.z_size), np.float32)
  bar = console.Progress(progress or 'encoding', n, 'windows', quiet_s=3.0,
                         enabled=progress is not None)
  for a, b in batches(n, bs):
    m, s = fn(model.params, jnp.asarray(pad_rows(tokens[a:b], bs)))
    mu[a:b], sigma[a:b] = np.asarray(m)[:b - a], np.asarray(s)[:b - a]
    bar.update(b - a)
  bar.close()
  return mu, sigma


def decode_all(model: Any, z: np.ndarray, *, greedy: bool = True, temperature: float = 0.5,
               seed: int = 0, batch_size: int | None = None,
               progress: str | None = None) -> np.ndarray:
  """Free-running decoding of many codes z float [n, z_size] -> int32 [n, time, parts], in
  fixed-size batches. Sampled decoding draws batch k with seed `seed + k`."""
  z = np.asarray(z, np.float32).reshape(-1, model.z_size)
  n = len(z)
  bs = min(batch_size or default_batch_size(model), max(1, n))
  bs = 1 << (bs - 1).bit_length()  # Model.decode_tokens pads to a power of two anyway
  out = np.zeros((n, model.time, len(model.part_vocab)), np.int32)
  bar = console.Progress(progress or 'decoding', n, 'windows', quiet_s=3.0,
                         enabled=progress is not None)
  for k, (a, b) in enumerate(batches(n, bs)):
    out[a:b] = model.decode_tokens(pad_rows(z[a:b], bs), temperature=temperature, greedy=greedy,
                                   seed=seed + k)[:b - a]
    bar.update(b - a)
  bar.close()
  return out


# ----------------------------------------------------------------------------- data windows

# ----------------------------------------------------------------------------- vectors

@dataclasses.dataclass
class AttributeVectors:
  """Attribute vectors of one run and the statistics they come from (`attributes.npz`).

  For attribute a: `vectors[a]` = mean mu of the windows in the top `fraction` by a minus mean mu
  of the bottom `fraction` (windows where a is nan left out; see `split_groups` for ties).
  """
  names: list[str]
  vectors: np.ndarray        # float32 [A, z_size]
  mean: np.ndarray           # float64 [A]: the attribute's mean over the windows (nan left out)
  std: np.ndarray            # float64 [A]
  low_mean: np.ndarray       # float64 [A]: the attribute's mean over the bottom group
  high_mean: np.ndarray      # float64 [A]: ... over the top group
  low_max: np.ndarray        # float64 [A]: the largest value in the bottom group
  high_min: np.ndarray       # float64 [A]: the smallest value in the top group
  count: np.ndarray          # int [A]: windows where the attribute is defined
  low_size: np.ndarray       # int [A]: windows in the bottom group
  high_size: np.ndarray      # int [A]: windows in the top group
  num_windows: int
  fraction: float
  z_mean: np.ndarray         # float32 [z_size]: mean mu of all windows
  source: str                # 'split:train' or 'midi_dir:/abs/path'
  step: int | None           # the checkpoint step of the codes
  values: np.ndarray | None = None  # float32 [n, A]: every window's attributes

  def index(self, name: str) -> int:
    if name not in self.names:
      raise VectorsMissingError(f'no attribute vector {name!r}; this run has: '
                                f'{", ".join(self.names)}')
    return self.names.index(name)

  def vector(self, name: str) -> np.ndarray:
    """float32 [z_size]."""
    return self.vectors[self.index(name)]

  def save(self, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + '.tmp.npz'
    arrays = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
    arrays['names'] = np.asarray(self.names, dtype=str)
    arrays['step'] = np.asarray(-1 if self.step is None else self.step)
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # a reader never sees half a file
    return path

  @classmethod
  def load(cls, path: str) -> 'AttributeVectors':
    with np.load(path, allow_pickle=False) as z:
      d = {k: z[k] for k in z.files}
    fields = {f.name for f in dataclasses.fields(cls)}
    missing = sorted(f.name for f in dataclasses.fields(cls)
                     if f.name not in d and f.default is dataclasses.MISSING)
    if missing:
      raise VectorsMissingError(
          f'{path} lacks {", ".join(missing)} (written by an older version); recompute it with: '
          f'python -m mvae_jax.attributes compute --workdir={os.path.dirname(path) or "."}')
    d = {k: v for k, v in d.items() if k in fields}
    d['names'] = [str(n) for n in d['names']]
    d['num_windows'] = int(d['num_windows'])
    d['fraction'] = float(d['fraction'])
    d['source'] = str(d['source'])
    d['step'] = None if int(d['step']) < 0 else int(d['step'])
    return cls(**d)

  def describe(self) -> list[str]:
    """One line per attribute: its spread and the two groups."""
    lines = []
    for a, name in enumerate(self.names):
      lines.append(
          f'{name:28s} mean {self.mean[a]:7.3f} sd {self.std[a]:6.3f} ({attribute_unit(name)}); '
          f'bottom {self.low_size[a]} windows mean {self.low_mean[a]:.3f}, top '
          f'{self.high_size[a]} mean {self.high_mean[a]:.3f}; |vector| '
          f'{np.linalg.norm(self.vectors[a]):.3f}'
          + ('' if self.high_size[a] else '  (no spread: vector is 0)'))
    return lines


def split_groups(values: np.ndarray, fraction: float = DEFAULT_FRACTION
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Indices of the bottom and top `fraction` of the windows by `values` float [n] (nan left out;
  equal values in dataset order).

  A value so common that it fills both groups (more than half the windows tie; e.g. 8th-note
  syncopation 0 in 97% of folk windows) would make the two groups alike, so a tie across the
  boundary is resolved: the tied value stays in the group where it is the extreme (0, the
  minimum: bottom; 1.0 of a fraction at its maximum: top) and leaves the other, which may end up
  smaller (down to the windows with any other value) or empty (no spread).
  """
  v = np.asarray(values, np.float64)
  ok = np.flatnonzero(np.isfinite(v))
  k = int(math.floor(len(ok) * fraction))
  if k == 0:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  order = ok[np.argsort(v[ok], kind='stable')]
  low, high = order[:k], order[-k:]
  tie = v[low].max()
  if v[high].min() <= tie:  # one value in both groups
    if tie > v[ok].min():
      low = low[v[low] < tie]
    if tie < v[ok].max() or tie == v[ok].min():
      high = high[v[high] > tie]
  return low, high


def attribute_vectors(mu: np.ndarray, values: dict[str, np.ndarray],
                      fraction: float = DEFAULT_FRACTION) -> dict[str, np.ndarray]:
  """The vectors and group statistics from codes mu [n, z] and attributes {name: [n]}.

  Returns a dict of arrays, one row per attribute (the `AttributeVectors` fields). An attribute
  without two distinct groups (`split_groups`) gets a zero vector and nan group statistics.
  """
  if not 0.0 < fraction <= 0.5:
    raise ValueError(f'fraction must be in (0, 0.5], got {fraction}')
  mu = np.asarray(mu, np.float64)
  out = {k: [] for k in ('vectors', 'mean', 'std', 'low_mean', 'high_mean', 'low_max',
                         'high_min', 'count', 'low_size', 'high_size')}
  for name, v in values.items():
    v = np.asarray(v, np.float64)
    ok = np.isfinite(v)
    low, high = split_groups(v, fraction)
    spread = len(low) > 0 and len(high) > 0
    vec = mu[high].mean(0) - mu[low].mean(0) if spread else np.zeros(mu.shape[1])
    stats = [v[ok].mean() if ok.any() else np.nan, v[ok].std() if ok.any() else np.nan]
    stats += ([v[low].mean(), v[high].mean(), v[low].max(), v[high].min()] if spread
              else [np.nan] * 4)
    out['vectors'].append(vec)
    for key, s in zip(('mean', 'std', 'low_mean', 'high_mean', 'low_max', 'high_min'), stats):
      out[key].append(s)
    out['count'].append(int(ok.sum()))
    out['low_size'].append(len(low) if spread else 0)
    out['high_size'].append(len(high) if spread else 0)
  res = {k: np.asarray(v, np.float64) for k, v in out.items()}
  res['vectors'] = res['vectors'].astype(np.float32).reshape(len(values), mu.shape[1])
  for k in ('count', 'low_size', 'high_size'):
    res[k] = res[k].astype(np.int64)
  return res


def vectors_path(workdir: str) -> str:
  return os.path.join(workdir, FILENAME)


def compute_attribute_vectors(model: Any, *, split: str | None = 'train',
                              midi_dir: str | None = None,
                              attributes: Sequence[str] | None = None,
                              fraction: float = DEFAULT_FRACTION,
                              max_windows: int | None = None, seed: int = 0,
                              batch_size: int | None = None, write: bool = True,
                              progress: bool = True) -> AttributeVectors:
  """Attribute vectors of a trained model from a dataset split or a folder of MIDI files.

  Args:
    model: a `Model` with an encoder.
    split: 'train' (the paper's choice) or 'eval' of the run's dataset; ignored with `midi_dir`.
    midi_dir: take the windows of every MIDI file in this folder instead.
    attributes: names to compute (default: all of `model_attribute_names`).
    fraction: size of the top and bottom groups (the paper: quartiles, 0.25).
    max_windows: a seeded random subset of the split's windows (default: all of them).
    write: save to `<model.workdir>/attributes.npz` (replacing an older one).
  """
  if not model.use_encoder:
    raise ValueError('attribute vectors need an encoder; this run is a baseline')
  names = model_attribute_names(model)
  wanted = list(attributes) if attributes else names
  unknown = [a for a in wanted if a not in names]
  if unknown:
    raise ValueError(f'unknown attribute(s) {", ".join(unknown)}; this model has: '
                     f'{", ".join(names)}')
  if max_windows is not None and max_windows < 8:
    raise ValueError(f'max_windows must be at least 8, got {max_windows}')
  if midi_dir:
    tokens = inputs.folder_windows(midi_dir, model.spec, progress=progress).tokens
    source = f'midi_dir:{os.path.abspath(midi_dir)}'
    if max_windows is not None and max_windows < len(tokens):
      keep = np.sort(np.random.default_rng(seed).choice(len(tokens), max_windows, False))
      tokens = tokens[keep]
  else:
    tokens = input_pipeline.split_windows(model.config.data, split, limit=max_windows, seed=seed,
                                          progress=progress)
    source = f'split:{split}'
  if len(tokens) < 8:
    raise ValueError(f'{len(tokens)} windows are too few for attribute vectors (need 8+)')
  values = {k: v for k, v in window_attributes(model, tokens).items() if k in wanted}
  mu, _ = encode_all(model, tokens, batch_size, progress='encoding' if progress else None)
  res = attribute_vectors(mu, values, fraction)
  vecs = AttributeVectors(
      names=list(values), num_windows=len(tokens), fraction=fraction,
      z_mean=mu.mean(0).astype(np.float32), source=source, step=model.step,
      values=np.stack(list(values.values()), 1).astype(np.float32), **res)
  if write:
    if not model.workdir:
      raise ValueError('write=True needs a model loaded from a run directory')
    vecs.save(vectors_path(model.workdir))
  return vecs


def load_attribute_vectors(workdir_or_path: str) -> AttributeVectors:
  """`<run>/attributes.npz` (or that file's path); `VectorsMissingError` says how to make it."""
  path = workdir_or_path
  if os.path.isdir(path):
    path = vectors_path(path)
  if not os.path.isfile(path):
    run = os.path.dirname(path) or '.'
    raise VectorsMissingError(
        f'{path}: no attribute vectors yet; compute them with: python -m mvae_jax.attributes '
        f'compute --workdir={run}')
  return _load_cached(os.path.abspath(path), os.stat(path).st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> AttributeVectors:
  del mtime_ns  # part of the cache key only: a recomputed file is read again
  return AttributeVectors.load(path)


def model_vectors(model: Any) -> AttributeVectors:
  """The vectors of a `Model`'s run directory; warns (stderr) when they come from another
  checkpoint step than the model's."""
  if not model.workdir:
    raise VectorsMissingError('this model has no run directory to read attributes.npz from')
  vecs = load_attribute_vectors(model.workdir)
  if vecs.step is not None and model.step is not None and vecs.step != model.step:
    print(f'warning: {vectors_path(model.workdir)} was computed at step {vecs.step}, the model '
          f'is at step {model.step}; recompute with python -m mvae_jax.attributes compute '
          f'--workdir={model.workdir}', file=sys.stderr)
  return vecs


def attribute_vector(model: Any, name: str) -> np.ndarray:
  """float32 [z_size]: the vector of attribute `name` (Model.attribute_vector)."""
  return model_vectors(model).vector(name)


# ----------------------------------------------------------------------------- transform

MAX_AMOUNT = 100.0


def parse_amounts(text: str | float | Sequence[float]) -> list[float]:
  """'1.5' or '-2,-1,0,1,2' (or numbers) -> a list of finite amounts; ValueError otherwise."""
  if isinstance(text, (int, float)):
    items = [text]
  elif isinstance(text, str):
    items = [t for t in text.replace(' ', '').split(',')]
  else:
    items = list(text)
  out = []
  for t in items:
    try:
      v = float(t)
    except (TypeError, ValueError):
      raise ValueError(f'--amount: {t!r} is not a number (give one, or a comma-separated list '
                       'such as -1.5,-0.5,0,0.5,1.5)') from None
    if not math.isfinite(v) or abs(v) > MAX_AMOUNT:
      raise ValueError(f'--amount: {t!r} must be a finite number within +-{MAX_AMOUNT:g}')
    out.append(v)
  if not out:
    raise ValueError('--amount: give at least one number')
  return out


def transform_z(mu: np.ndarray, vector: np.ndarray, amounts: Sequence[float]) -> np.ndarray:
  """mu [batch, z] + a * vector for each amount a: float32 [len(amounts), batch, z]."""
  mu = np.asarray(mu, np.float32)
  a = np.asarray(amounts, np.float32)
  return mu[None] + a[:, None, None] * np.asarray(vector, np.float32)[None, None]


def transform_tokens(model: Any, x: Any, attribute: str, amounts: float | Sequence[float], *,
                     window: Any = None, greedy: bool = True, temperature: float = 0.5,
                     seed: int = 0, vectors: AttributeVectors | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
  """Decodes mu(x) + amount * vector(attribute) (Model.transform).

  Args:
    x: what `Model.tokens` takes (a MIDI file, a NoteSequence, tokens [batch, time, parts]).
    amounts: one amount or several (a sweep); 0 gives the plain reconstruction.
    greedy: argmax decoding (default, so only z changes the output), else sample at
      `temperature` with the same noise for every amount.
  Returns:
    (x as tokens int32 [batch, time, parts],
     decoded int32 [len(amounts), batch, time, parts]).
  """
  amounts = parse_amounts(amounts)
  vectors = vectors or model_vectors(model)
  vec = vectors.vector(attribute)
  tokens = model.tokens(x, window)
  mu, _ = model.encode(tokens)
  z = transform_z(mu, vec, amounts)
  flat = z.reshape(-1, z.shape[-1])
  if greedy:
    out = decode_all(model, flat, greedy=True)
  else:  # the same sampling noise for every amount: only z differs
    out = np.concatenate([model.decode_tokens(zz, temperature=temperature, greedy=False,
                                              seed=seed) for zz in z])
  return tokens, out.reshape(len(amounts), len(tokens), *out.shape[1:])


def _amount_tag(a: float) -> str:
  return f'{a:+g}'.replace('+', 'plus').replace('-', 'minus').replace('.', 'p')


def write_transform(model: Any, x: Any, attribute: str, amounts: float | Sequence[float],
                    out_dir: str, *, window: Any = None, greedy: bool = True,
                    temperature: float = 0.5, seed: int = 0, label: str | None = None,
                    vectors: AttributeVectors | None = None) -> list[str]:
  """Everything `generate transform` writes, into `out_dir` (created); returns the paths.

  Files: `input.mid` / `input.png` (the window used), `reconstruction.mid` / `.png` (amount 0,
  what the model makes of the input without a vector; unless 0 is among the amounts),
  `transform_<amount>.mid` / `.png` for each amount (e.g. `transform_plus1p5`),
  `transform.mid` (all of them one after another) and `transform.png` (the same side by side,
  the input in black, each labelled with its amount and the attribute's value).
  """
  from data_pipelines import encoding
  from mvae_jax import plotting
  asked = parse_amounts(amounts)
  amounts = asked if 0.0 in asked else [0.0] + asked
  vectors = vectors or model_vectors(model)
  vectors.index(attribute)  # unknown attribute: fail before decoding
  tokens, out = transform_tokens(model, x, attribute, amounts, window=window, greedy=greedy,
                                 temperature=temperature, seed=seed, vectors=vectors)
  if len(tokens) != 1:
    raise ValueError(f'transform writes one piece; got {len(tokens)} input windows')
  os.makedirs(out_dir, exist_ok=True)
  pieces = [tokens[0]] + [o[0] for o in out]
  values = window_attributes(model, np.stack(pieces))[attribute]
  unit = attribute_unit(attribute)
  label = label or (os.path.basename(str(x)) if isinstance(x, (str, os.PathLike)) else 'input')
  step = f' step {model.step}' if model.step is not None else ''
  how = 'greedy' if greedy else f'T{temperature:g} seed {seed}'
  ranges = plotting.pitch_ranges(pieces, model.part_is_drums, model.spec.min_pitch)
  paths = []

  def piece(t: np.ndarray, name: str, title: str) -> None:
    ns = model.to_note_sequence(t)
    path = os.path.join(out_dir, name + '.mid')
    encoding.write_midi(ns, path)
    paths.append(path)
    paths.append(model.plot([t], os.path.join(out_dir, name + '.png'), title=title,
                            pitch_ranges=ranges))

  def fmt(v: float) -> str:
    return 'n/a' if not np.isfinite(v) else f'{v:.3g}'

  piece(tokens[0], 'input', f'{label}: input ({attribute} {fmt(values[0])})')
  for a, t, v in zip(amounts, out, values[1:]):
    if a == 0 and 0.0 not in asked:
      piece(t[0], 'reconstruction', f'{label}: reconstruction ({how}; {attribute} {fmt(v)})')
    else:
      piece(t[0], f'transform_{_amount_tag(a)}',
            f'{label}: {a:+g} x {attribute} ({how}; {attribute} {fmt(v)})')
  labels = [f'input: {attribute} {fmt(values[0])}'] + [
      (f'reconstruction: {fmt(v)}' if a == 0 and 0.0 not in asked else f'{a:+g}: {fmt(v)}')
      for a, v in zip(amounts, values[1:])]
  seq = [model.to_note_sequence(p) for p in pieces]
  import note_seq  # local: only this writer needs it
  both = note_seq.sequences_lib.concatenate_sequences(seq, [s.total_time for s in seq])
  path = os.path.join(out_dir, 'transform.mid')
  encoding.write_midi(both, path)
  paths.append(path)
  paths.append(model.plot(
      pieces, os.path.join(out_dir, 'transform.png'), highlight=(0,), labels=labels,
      pitch_ranges=ranges,
      title=f'{label}: adding the {attribute} vector ({unit}; {how}{step}; input in black)'))
  return [os.path.abspath(p) for p in paths]


# ----------------------------------------------------------------------------- Figure 6

def attribute_change_matrix(model: Any, tokens: np.ndarray, vectors: AttributeVectors,
                            amounts: Sequence[float] = (1.0, -1.0),
                            batch_size: int | None = None,
                            progress: bool = False) -> dict[str, Any]:
  """How each attribute vector changes every attribute (the paper's Figure 6).

  Every window of `tokens` (held-out windows) is encoded to mu and decoded greedily from
  mu + s * v_a for each vector a and amount s, and from mu itself (the reference: so the
  reconstruction's own error does not count as the vector's effect).

  Returns a dict:
    names: the attributes (rows a: the vector; columns b: the attribute measured).
    amounts: the amounts s.
    relative: float [S, A, A]: (mean_b(after) - mean_b(reference)) / |mean_b(reference)|, means
      over the windows where b is defined.
    in_sd: float [S, A, A]: the same difference in units of b's standard deviation over the
      vectors' windows (comparable across attributes, defined where the mean is near 0).
    reference: float [A]: mean_b of the reconstructions; input: mean_b of the windows.
    diagonal_dominates: bool [S, A]: row a's largest |in_sd| is its own attribute, with the sign
      of s.
    num_windows: int.
  """
  names = list(vectors.names)
  A = len(names)
  tokens = np.asarray(tokens, np.int32)
  mu, _ = encode_all(model, tokens, batch_size, progress='encoding' if progress else None)

  def means(decoded):
    vals = window_attributes(model, decoded)
    return np.array([np.nanmean(vals[b]) if np.isfinite(vals[b]).any() else np.nan
                     for b in names])

  ref = means(decode_all(model, mu, batch_size=batch_size,
                         progress='decoding reference' if progress else None))
  inp = means(tokens)
  after = np.zeros((len(amounts), A, A))
  bar = console.Progress('decoding with the vectors', len(amounts) * A, 'decodes of all windows',
                         enabled=progress)
  for i, s in enumerate(amounts):
    for a, name in enumerate(names):
      z = mu + np.float32(s) * vectors.vectors[a][None]
      after[i, a] = means(decode_all(model, z, batch_size=batch_size))
      bar.update(1)
  bar.close()
  diff = after - ref[None, None]
  with np.errstate(divide='ignore', invalid='ignore'):
    relative = diff / np.abs(ref)[None, None]
    in_sd = diff / np.asarray(vectors.std)[None, None]
  dominates = np.zeros((len(amounts), A), bool)
  for i, s in enumerate(amounts):
    for a in range(A):
      row = np.nan_to_num(np.abs(in_sd[i, a]), nan=-1.0)
      dominates[i, a] = bool(row.argmax() == a and np.sign(in_sd[i, a, a]) == np.sign(s)
                             and s != 0)
  return {'names': names, 'amounts': [float(s) for s in amounts], 'relative': relative,
          'in_sd': in_sd, 'reference': ref, 'input': inp, 'diagonal_dominates': dominates,
          'correlation': attribute_correlation(vectors), 'num_windows': int(len(tokens)),
          'step': model.step}


def attribute_correlation(vectors: AttributeVectors) -> np.ndarray:
  """Pearson correlation of the attributes over the vectors' windows (pairs where both are
  defined): float [A, A], nan without stored values. Correlated attributes share direction in
  the data, so their vectors move each other too."""
  A = len(vectors.names)
  out = np.full((A, A), np.nan)
  if vectors.values is None:
    return out
  v = np.asarray(vectors.values, np.float64)
  for a in range(A):
    for b in range(A):
      ok = np.isfinite(v[:, a]) & np.isfinite(v[:, b])
      if ok.sum() > 2 and v[ok, a].std() > 0 and v[ok, b].std() > 0:
        out[a, b] = np.corrcoef(v[ok, a], v[ok, b])[0, 1]
  return out


def _cell(v: float, pct: bool) -> str:
  if not np.isfinite(v):
    return 'n/a'
  return f'{100 * v:+.0f}%' if pct else f'{v:+.2f}'


def matrix_markdown(res: dict[str, Any], title: str, command: str = '') -> str:
  """The matrix as markdown tables: relative change (%) and change in standard deviations."""
  names, amounts = res['names'], res['amounts']
  short = [n.replace('syncopation_', 'sync') for n in names]
  lines = [f'# {title}', '']
  if command:
    lines += ['Command:', '', '```', command, '```', '']
  lines += [f'{res["num_windows"]} held-out windows; checkpoint step {res["step"]}. Rows: the '
            'vector added (amount x vector); columns: the attribute measured on the greedy '
            'decodes, against the greedy reconstructions without a vector. Bold: the row\'s '
            'own attribute.', '']
  for key, what, pct in (('relative', 'Mean relative change', True),
                         ('in_sd', 'Change in standard deviations of the attribute (over the '
                          'windows the vectors come from)', False)):
    lines += [f'## {what}', '', '| vector | ' + ' | '.join(short) + ' |',
              '|---|' + '---:|' * len(names)]
    for i, s in enumerate(amounts):
      for a, name in enumerate(names):
        cells = [_cell(res[key][i, a, b], pct) for b in range(len(names))]
        cells[a] = f'**{cells[a]}**'
        lines.append(f'| {s:+g} x {short[a]} | ' + ' | '.join(cells) + ' |')
    lines.append('')
  dom = np.asarray(res['diagonal_dominates'])
  lines += ['## Does the diagonal dominate?', '',
            f'A row counts when its own attribute moves the most (in standard deviations) and '
            f'in the direction of the amount: {int(dom.sum())} of {dom.size} rows.', '']
  for i, s in enumerate(amounts):
    good = [short[a] for a in range(len(names)) if dom[i, a]]
    bad = [short[a] for a in range(len(names)) if not dom[i, a]]
    lines.append(f'- amount {s:+g}: yes for {", ".join(good) or "none"}; no for '
                 f'{", ".join(bad) or "none"}.')
  corr = np.asarray(res.get('correlation', np.full((len(names),) * 2, np.nan)))
  lines += ['', '## Correlation of the attributes over the windows the vectors come from', '',
            'Attributes that go together in the data share direction in latent space, so '
            'their vectors move each other (an off-diagonal cell of the same sign as this '
            'correlation is expected, not a failure of the vector).', '',
            '| | ' + ' | '.join(short) + ' |', '|---|' + '---:|' * len(names)]
  for a in range(len(names)):
    lines.append(f'| {short[a]} | ' + ' | '.join(
        'n/a' if not np.isfinite(c) else f'{c:+.2f}' for c in corr[a]) + ' |')
  lines += ['', '## Means', '', '| attribute | input windows | reconstructions |',
            '|---|---:|---:|']
  for b, name in enumerate(names):
    lines.append(f'| {name} ({attribute_unit(name)}) | {res["input"][b]:.3f} | '
                 f'{res["reference"][b]:.3f} |')
  return '\n'.join(lines) + '\n'


def plot_matrix(res: dict[str, Any], path: str, title: str) -> str:
  """Heat map of the change in standard deviations (rows: +/- each vector)."""
  from mvae_jax import plotting  # noqa: F401  (selects the Agg backend)
  import matplotlib.pyplot as plt
  names, amounts = res['names'], res['amounts']
  data = np.asarray(res['in_sd']).reshape(-1, len(names))
  rows = [f'{s:+g} x {n}' for s in amounts for n in names]
  lim = float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 1.0
  fig, ax = plt.subplots(figsize=(1.6 + 0.75 * len(names), 1.4 + 0.32 * len(rows)))
  try:
    im = ax.imshow(data, cmap='RdBu_r', vmin=-lim, vmax=lim, aspect='auto')
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha='right', fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=8)
    for r in range(data.shape[0]):
      for c in range(data.shape[1]):
        if np.isfinite(data[r, c]):
          ax.text(c, r, f'{data[r, c]:+.2f}', ha='center', va='center', fontsize=6,
                  color='white' if abs(data[r, c]) > 0.6 * lim else 'black',
                  fontweight='bold' if c == r % len(names) else 'normal')
    for r in range(data.shape[0]):  # the diagonal of each block
      ax.add_patch(plt.Rectangle((r % len(names) - 0.5, r - 0.5), 1, 1, fill=False,
                                 edgecolor='black', linewidth=1.0))
    fig.colorbar(im, ax=ax, label='change in standard deviations')
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    from mvae_jax import plotting  # pylint: disable=g-import-not-at-top
    plotting.save_figure(fig, path, dpi=90)
  finally:
    plt.close(fig)
  return path


def write_matrix(res: dict[str, Any], stem: str, title: str, command: str = '') -> list[str]:
  """`<stem>.md`, `<stem>.json` and `<stem>.png`; returns the paths."""
  os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)

  def plain(v):
    if isinstance(v, np.ndarray):
      return [plain(x) for x in v.tolist()] if v.ndim else plain(v.item())
    if isinstance(v, list):
      return [plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
      return None
    return v

  with open(stem + '.md', 'w') as f:
    f.write(matrix_markdown(res, title, command))
  with open(stem + '.json', 'w') as f:
    json.dump({'title': title, 'command': command, **{k: plain(v) for k, v in res.items()}},
              f, indent=1)
  return [stem + '.md', stem + '.json', plot_matrix(res, stem + '.png', title)]


# ----------------------------------------------------------------------------- the CLI

COMMANDS = ('compute', 'matrix', 'list')
