"""Reads magenta.js (TensorFlow.js) MusicVAE checkpoints without TensorFlow (numpy only).

A magenta.js checkpoint is a folder (magenta-js `scripts/checkpoint_converter.py` writes it with
tensorflowjs's `write_weights`):

  * `weights_manifest.json`: a list of groups, each `{"paths": [shard file, ...], "weights":
    [{"name", "shape", "dtype", "quantization"?}, ...]}`. A group's weights are stored back to back,
    in manifest order, in the concatenation of its shards (row-major, little-endian); the writer
    cuts that byte string into 4 MiB files wherever the boundary falls, also inside a tensor. Shard
    names are taken as the manifest gives them (`group1-shard1of5` in older releases,
    `group1-shard1of1.bin` in newer ones).
  * `quantization` (optional, `dtype` stays the original one): `{"dtype": "uint8" | "uint16",
    "min", "scale"}` stores q and means min + scale * q, computed in float64 and rounded to the
    original dtype (round-to-nearest for int32) exactly as tensorflowjs's Python `read_weights`
    does; `{"dtype": "float16"}` stores float16 copies of float32 values. Newer writers add
    `"original_dtype"`, which says nothing the weight's `dtype` does not.
  * `config.json` (optional for the reader): `{"type": "MusicVAE", "dataConverter": {"type": ...,
    "args": {...}}}`, the magenta.js data converter, which fixes the window structure
    (`converter_spec`).

Every problem (a missing manifest or shard, unreadable JSON, a shard shorter or longer than its
weights, an unknown dtype or quantization, duplicated names, non-finite values) is a
`TfjsCheckpointError` with one line naming the file and what is wrong; nothing is returned
half-read.
"""
from __future__ import annotations

import bisect
import collections
import contextlib
import dataclasses
import json
import math
import os
from typing import Any

import numpy as np

MANIFEST = 'weights_manifest.json'
CONFIG = 'config.json'

# Stored dtypes a MusicVAE checkpoint can hold (magenta.js's converter writes float32 only;
# int32 is what a global_step would be).
_DTYPES = {'float32': np.dtype('<f4'), 'int32': np.dtype('<i4')}
_QUANTIZED = {'uint8': np.dtype('u1'), 'uint16': np.dtype('<u2'), 'float16': np.dtype('<f2')}

# magenta.js's DEFAULT_DRUM_PITCH_CLASSES (core/data.ts): the 9 drum classes of the reference's
# drum models, each a list of MIDI pitches, the first one used for output.
DEFAULT_DRUM_PITCH_CLASSES = (
    (36, 35), (38, 27, 28, 31, 32, 33, 34, 37, 39, 40, 56, 65, 66, 75, 85),
    (42, 44, 54, 68, 69, 70, 71, 73, 78, 80), (46, 67, 72, 74, 79, 81), (45, 29, 41, 61, 64, 84),
    (48, 47, 60, 63, 77, 86, 87), (50, 30, 43, 62, 76, 83), (49, 55, 57, 58), (51, 52, 53, 59, 82))


class TfjsCheckpointError(ValueError):
  """A missing, unreadable or inconsistent magenta.js checkpoint; the message names the file."""


@dataclasses.dataclass(frozen=True)
class Weight:
  """One manifest entry: where its bytes are and how to turn them into values."""
  name: str
  shape: tuple[int, ...]
  dtype: str                   # float32 | int32: the dtype of the values
  stored: np.dtype             # the dtype of the bytes (quantized or not)
  quantization: str | None     # uint8 | uint16 | float16 | None
  minimum: float = 0.0         # uint8 / uint16: value = minimum + scale * q
  scale: float = 1.0

  @property
  def size(self) -> int:
    return math.prod(self.shape)

  @property
  def nbytes(self) -> int:
    return self.size * self.stored.itemsize


@dataclasses.dataclass(frozen=True)
class Group:
  """A manifest group: its shard files (paths inside the folder, in order) and its weights."""
  paths: tuple[str, ...]
  weights: tuple[Weight, ...]


# ----------------------------------------------------------------------------- the manifest

def _load_json(path: str) -> Any:
  try:
    with open(path, 'rb') as f:
      return json.loads(f.read().decode('utf-8'))
  except json.JSONDecodeError as e:
    raise TfjsCheckpointError(f'{path}: not valid JSON (line {e.lineno} column {e.colno}: '
                              f'{e.msg})') from e
  except UnicodeDecodeError as e:
    raise TfjsCheckpointError(f'{path}: not valid JSON (not UTF-8 text)') from e
  except OSError as e:
    raise TfjsCheckpointError(f'{path}: cannot read ({e.strerror or e})') from e


def _is_number(v: Any) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _parse_weight(entry: Any, where: str) -> Weight:
  if not isinstance(entry, dict) or not isinstance(entry.get('name'), str) or not entry['name']:
    raise TfjsCheckpointError(f'{where}: a weight entry without a name string')
  name = entry['name']
  shape = entry.get('shape')
  if not isinstance(shape, list) or not all(
      isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
    raise TfjsCheckpointError(f'{where}: weight {name} has shape {shape!r}, expected a list of '
                              'non-negative integers')
  dtype = entry.get('dtype')
  if dtype not in _DTYPES:
    raise TfjsCheckpointError(f'{where}: weight {name} has dtype {dtype!r}; this reader supports '
                              f'{", ".join(sorted(_DTYPES))}')
  quant = entry.get('quantization')
  if quant is None:
    return Weight(name, tuple(shape), dtype, _DTYPES[dtype], None)
  qdtype = quant.get('dtype') if isinstance(quant, dict) else None
  if qdtype not in _QUANTIZED:
    raise TfjsCheckpointError(f'{where}: weight {name} has quantization {quant!r}; this reader '
                              f'supports dtype {", ".join(sorted(_QUANTIZED))}')
  if qdtype == 'float16':
    if dtype != 'float32':
      raise TfjsCheckpointError(f'{where}: weight {name}: float16 quantization of a {dtype} '
                                'weight (tensorflowjs quantizes only float32 to float16)')
    return Weight(name, tuple(shape), dtype, _QUANTIZED[qdtype], qdtype)
  lo, scale = quant.get('min'), quant.get('scale')
  if not (_is_number(lo) and _is_number(scale)):
    raise TfjsCheckpointError(f'{where}: weight {name}: {qdtype} quantization needs finite '
                              f'"min" and "scale", found min={lo!r} scale={scale!r}')
  return Weight(name, tuple(shape), dtype, _QUANTIZED[qdtype], qdtype, float(lo), float(scale))


def _inside(folder: str, rel: Any, where: str) -> str:
  """`folder/rel` for a manifest shard path, refusing paths that leave the folder."""
  if not isinstance(rel, str) or not rel or os.path.isabs(rel):
    raise TfjsCheckpointError(f'{where}: shard path {rel!r} is not a relative file name')
  path = os.path.normpath(os.path.join(folder, rel))
  if os.path.commonpath([os.path.abspath(path), os.path.abspath(folder)]) != \
      os.path.abspath(folder):
    raise TfjsCheckpointError(f'{where}: shard path {rel!r} points outside the checkpoint folder')
  return path


def read_manifest(folder: str) -> list[Group]:
  """The groups of `folder/weights_manifest.json`, validated (names unique, dtypes known).

  Raises:
    TfjsCheckpointError: a missing or malformed manifest.
  """
  where = os.path.join(folder, MANIFEST)
  if not os.path.isfile(where):
    raise TfjsCheckpointError(f'{where}: no such file (a magenta.js checkpoint folder holds '
                              f'{MANIFEST}, its shard files and {CONFIG})')
  raw = _load_json(where)
  if not isinstance(raw, list) or not raw:
    raise TfjsCheckpointError(f'{where}: expected a non-empty list of weight groups, found '
                              f'{type(raw).__name__}')
  groups, seen = [], set()
  for g, group in enumerate(raw, 1):
    if not isinstance(group, dict) or not isinstance(group.get('paths'), list) or \
        not isinstance(group.get('weights'), list):
      raise TfjsCheckpointError(f'{where}: group {g} is not {{"paths": [...], "weights": [...]}}')
    weights = tuple(_parse_weight(w, where) for w in group['weights'])
    for w in weights:
      if w.name in seen:
        raise TfjsCheckpointError(f'{where}: weight {w.name} appears more than once')
      seen.add(w.name)
    paths = tuple(group['paths'])
    for p in paths:
      _inside(folder, p, where)
    if len(set(paths)) != len(paths):
      raise TfjsCheckpointError(f'{where}: group {g} lists a shard file twice')
    groups.append(Group(paths, weights))
  return groups


# ----------------------------------------------------------------------------- the shards

def _short_shard(paths: tuple[str, ...], sizes: list[int]) -> str:
  """The shard most likely at fault when a group's bytes do not add up: the writer makes every
  shard but the last the same size, so one that differs from the others is the suspect."""
  if len(paths) > 1:
    common = collections.Counter(sizes[:-1]).most_common(1)[0][0]
    for p, s in zip(paths[:-1], sizes[:-1]):
      if s != common:
        return p
  return paths[-1]


class _Bytes:
  """A group's shards as one byte string, read piecewise (a tensor may span shards)."""

  def __init__(self, files: list[str], sizes: list[int], stack: contextlib.ExitStack):
    self.files, self.stack = files, stack
    self.starts = [0]
    for size in sizes:
      self.starts.append(self.starts[-1] + size)
    self.handles: dict[int, Any] = {}

  def file_at(self, offset: int) -> str:
    """The shard that holds byte `offset` of the group."""
    return self.files[min(bisect.bisect_right(self.starts, offset), len(self.files)) - 1]

  def read(self, start: int, size: int) -> bytes:
    out, end = [], start + size
    k = bisect.bisect_right(self.starts, start) - 1
    while start < end:
      want = min(end, self.starts[k + 1]) - start
      if want > 0:
        if k not in self.handles:
          self.handles[k] = self.stack.enter_context(open(self.files[k], 'rb'))
        f = self.handles[k]
        f.seek(start - self.starts[k])
        piece = f.read(want)
        if len(piece) != want:
          raise TfjsCheckpointError(f'{self.files[k]}: shorter than when it was measured')
        out.append(piece)
        start += want
      k += 1
    return b''.join(out)


def _values(w: Weight, raw: bytes) -> np.ndarray:
  """Stored bytes -> values, with tensorflowjs's own arithmetic (`quantization.py`)."""
  q = np.frombuffer(raw, w.stored).reshape(w.shape)
  if w.quantization in ('uint8', 'uint16'):
    value = q.astype(np.float64) * w.scale + w.minimum
    return np.round(value).astype(np.int32) if w.dtype == 'int32' else value.astype(np.float32)
  return q.astype(np.float32 if w.dtype == 'float32' else np.int32)


def read_tfjs(folder: str) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
  """Every weight of a magenta.js checkpoint, dequantized, and its `config.json`.

  Args:
    folder: the checkpoint folder (or the path of its `weights_manifest.json`).
  Returns:
    ({name: array}, config): float32 arrays for float32 weights (int32 for int32 ones, such as a
    `global_step`, which magenta.js checkpoints leave out), in the manifest's shapes; the parsed
    `config.json`, or None when the folder has none (`converter_spec` reads it).
  Raises:
    TfjsCheckpointError: see the module docstring.
  """
  folder = os.fspath(folder)
  if os.path.basename(folder) == MANIFEST and os.path.isfile(folder):
    folder = os.path.dirname(folder) or '.'
  if not os.path.isdir(folder):
    raise TfjsCheckpointError(f'{folder}: no such folder (expected a magenta.js checkpoint '
                              f'folder with {MANIFEST})')
  groups = read_manifest(folder)
  variables: dict[str, np.ndarray] = {}
  for g, group in enumerate(groups, 1):
    files = [_inside(folder, p, MANIFEST) for p in group.paths]
    for f in files:
      if not os.path.isfile(f):
        raise TfjsCheckpointError(f'{f}: missing shard (group {g} of '
                                  f'{os.path.join(folder, MANIFEST)} lists {len(files)} shard '
                                  'file(s))')
    sizes = [os.path.getsize(f) for f in files]
    need, have = sum(w.nbytes for w in group.weights), sum(sizes)
    if need != have:
      suspect = os.path.join(folder, _short_shard(group.paths, sizes)) if files else \
          os.path.join(folder, MANIFEST)
      what = ('short or truncated shard' if have < need
              else 'extra bytes: the manifest does not describe these shards')
      listed = (' + '.join(f'{p} ({s})' for p, s in zip(group.paths, sizes)) if len(files) <= 6
                else f'{len(files)} shard files') or 'no shard files'
      raise TfjsCheckpointError(
          f'{suspect}: {what} (group {g}: {listed} = {have} bytes, its {len(group.weights)} '
          f'weights need {need})')
    with contextlib.ExitStack() as stack:
      data, offset = _Bytes(files, sizes, stack), 0
      for w in group.weights:
        value = _values(w, data.read(offset, w.nbytes))
        offset += w.nbytes
        if value.dtype == np.float32 and not np.isfinite(value).all():
          raise TfjsCheckpointError(f'{data.file_at(offset - w.nbytes)}: weight {w.name} holds '
                                    'NaN or infinite values (a corrupt checkpoint)')
        variables[w.name] = value
  config_path = os.path.join(folder, CONFIG)
  config = _load_json(config_path) if os.path.isfile(config_path) else None
  return variables, config


# ----------------------------------------------------------------------------- config.json

@dataclasses.dataclass(frozen=True)
class ConverterSpec:
  """The window structure a magenta.js `config.json` gives (its `dataConverter`).

  kind: melody | drums | trio (trio parts: lead, bass, drums).
  converter: the magenta.js class (MelodyConverter, DrumsConverter, DrumRollConverter,
    TrioConverter).
  num_steps: time steps of a window (16 per 4/4 bar).
  num_segments: conductor steps of a hierarchical model (magenta.js then expects a hierarchical
    encoder as well); None for a flat one.
  melody_pitch: (min, max) MIDI pitch, inclusive, of a melody or the trio's lead.
  bass_pitch: (min, max) of the trio's bass.
  drum_pitch_classes: the drum classes (each a tuple of MIDI pitches, the first used for output).
  chord_encoder: the chord-conditioning encoder, None for an unconditioned model.
  """
  kind: str
  converter: str
  num_steps: int
  num_segments: int | None
  melody_pitch: tuple[int, int] | None = None
  bass_pitch: tuple[int, int] | None = None
  drum_pitch_classes: tuple[tuple[int, ...], ...] | None = None
  chord_encoder: str | None = None

  @property
  def part_depths(self) -> tuple[int, ...]:
    """Output classes per part: NO_EVENT, NOTE_OFF and one per pitch for a melody, one per
    subset of drum classes for DrumsConverter's one-hot drums, one per class for a drum roll."""
    mel = lambda r: r[1] - r[0] + 3  # noqa: E731
    if self.kind == 'melody':
      return (mel(self.melody_pitch),)
    drums = 2 ** len(self.drum_pitch_classes)
    if self.kind == 'drums':
      return (len(self.drum_pitch_classes),) if self.converter == 'DrumRollConverter' else (drums,)
    return (mel(self.melody_pitch), mel(self.bass_pitch), drums)


_KINDS = {'MelodyConverter': 'melody', 'DrumsConverter': 'drums', 'DrumRollConverter': 'drums',
          'TrioConverter': 'trio'}


def _positive_int(args: dict, key: str, where: str, optional: bool = False) -> int | None:
  v = args.get(key)
  if v is None and optional:
    return None
  if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
    raise TfjsCheckpointError(f'{where}: dataConverter.args.{key} is {v!r}, expected a positive '
                              'integer')
  return v


def _pitch_range(args: Any, where: str, what: str) -> tuple[int, int]:
  lo, hi = (args.get('minPitch'), args.get('maxPitch')) if isinstance(args, dict) else (None, None)
  if not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 127 for p in (lo, hi)) \
      or lo > hi:
    raise TfjsCheckpointError(f'{where}: {what} minPitch={lo!r} maxPitch={hi!r}, expected MIDI '
                              'pitches 0..127 with minPitch <= maxPitch')
  return lo, hi


def _drum_classes(args: Any, where: str, what: str) -> tuple[tuple[int, ...], ...]:
  classes = args.get('pitchClasses') if isinstance(args, dict) else None
  if classes is None:
    return DEFAULT_DRUM_PITCH_CLASSES
  if not isinstance(classes, list) or not classes or not all(
      isinstance(c, list) and c and all(isinstance(p, int) and not isinstance(p, bool)
                                        and 0 <= p <= 127 for p in c) for c in classes):
    raise TfjsCheckpointError(f'{where}: {what} pitchClasses is not a list of non-empty lists of '
                              'MIDI pitches')
  return tuple(tuple(c) for c in classes)


def converter_spec(config: Any, source: str = CONFIG) -> ConverterSpec:
  """The window structure of a magenta.js `config.json` (as `read_tfjs` returns it).

  Raises:
    TfjsCheckpointError: not a MusicVAE config, a converter this project has no model for
      (multitrack, GrooVAE, melody controls), or missing / out-of-range arguments.
  """
  if not isinstance(config, dict) or config.get('type') != 'MusicVAE':
    found = config.get('type') if isinstance(config, dict) else type(config).__name__
    raise TfjsCheckpointError(f'{source}: "type" is {found!r}, expected "MusicVAE"')
  conv = config.get('dataConverter')
  ctype = conv.get('type') if isinstance(conv, dict) else None
  if ctype not in _KINDS:
    raise TfjsCheckpointError(f'{source}: dataConverter type {ctype!r} has no mvae_jax model '
                              f'(supported: {", ".join(sorted(_KINDS))})')
  args = conv.get('args', {})
  if not isinstance(args, dict):
    raise TfjsCheckpointError(f'{source}: dataConverter.args is not an object')
  steps = _positive_int(args, 'numSteps', source)
  segments = _positive_int(args, 'numSegments', source, optional=True)
  if segments is not None and steps % segments:
    raise TfjsCheckpointError(f'{source}: numSteps {steps} is not a multiple of numSegments '
                              f'{segments}')
  chords = config.get('chordEncoder')
  if chords is not None and not isinstance(chords, str):
    raise TfjsCheckpointError(f'{source}: chordEncoder is {chords!r}, expected a name')
  kind = _KINDS[ctype]
  common = dict(kind=kind, converter=ctype, num_steps=steps, num_segments=segments,
                chord_encoder=chords)
  if kind == 'melody':
    return ConverterSpec(**common, melody_pitch=_pitch_range(args, source, 'MelodyConverter'))
  if kind == 'drums':
    return ConverterSpec(**common, drum_pitch_classes=_drum_classes(args, source, ctype))
  return ConverterSpec(
      **common, melody_pitch=_pitch_range(args.get('melArgs'), source, 'TrioConverter melArgs'),
      bass_pitch=_pitch_range(args.get('bassArgs'), source, 'TrioConverter bassArgs'),
      drum_pitch_classes=_drum_classes(args.get('drumsArgs', {}), source,
                                       'TrioConverter drumsArgs'))


# ----------------------------------------------------------------------------- structure

_ENC_FLAT = 'encoder/cell_{k}/bidirectional_rnn/fw/multi_rnn_cell/cell_0/lstm_cell/kernel'
_ENC_HIER = 'encoder/hierarchical_level_{k}/cell_0/bidirectional_rnn/fw/multi_rnn_cell/cell_0/' \
    'lstm_cell/kernel'
_CONDUCTOR = 'decoder/hierarchical_level_0/'
_PROJECTION = '/output_projection/bias'


@dataclasses.dataclass(frozen=True)
class WeightLayout:
  """The model structure that a checkpoint's variable names and shapes show.

  encoder: 'flat' (`encoder/cell_k/...`: k stacked bidirectional layers over the whole window) or
    'hierarchical' (`encoder/hierarchical_level_k/...`: level 0 reads each segment, level 1 the
    segment embeddings; what magenta.js expects whenever config.json has numSegments).
  encoder_layers: stacked layers (flat) or levels (hierarchical).
  conductor: whether a conductor (`decoder/hierarchical_level_0/...`) is present.
  part_prefixes: the TF scope of each part's bottom decoder, in part order.
  part_depths: their output classes (`output_projection/bias` sizes).
  nade: whether a decoder has a NADE output layer (`<part>/nade/...`).
  """
  encoder: str
  encoder_layers: int
  conductor: bool
  part_prefixes: tuple[str, ...]
  part_depths: tuple[int, ...]
  nade: bool


def _count(variables: dict[str, np.ndarray], pattern: str) -> int:
  k = 0
  while pattern.format(k=k) in variables:
    k += 1
  return k


def weight_layout(variables: dict[str, np.ndarray], source: str) -> WeightLayout:
  """The structure of a checkpoint's variables (`read_tfjs`'s output).

  Raises:
    TfjsCheckpointError: no encoder or no decoder output layer, so not a MusicVAE.
  """
  flat, hier = _count(variables, _ENC_FLAT), _count(variables, _ENC_HIER)
  if not (flat or hier) or (flat and hier):
    raise TfjsCheckpointError(
        f'{source}: not a MusicVAE checkpoint: expected the encoder variables '
        f'{_ENC_FLAT.format(k=0)} or {_ENC_HIER.format(k=0)} (exactly one of the two kinds), '
        f'found {"both" if flat else "neither"}')
  prefixes = tuple(sorted(n[:-len(_PROJECTION)] for n in variables if n.endswith(_PROJECTION)))
  if not prefixes:
    raise TfjsCheckpointError(f'{source}: not a MusicVAE checkpoint: no decoder output layer '
                              f'(<decoder>{_PROJECTION})')
  depths = tuple(int(np.asarray(variables[p + _PROJECTION]).shape[0]) for p in prefixes)
  return WeightLayout(
      encoder='hierarchical' if hier else 'flat', encoder_layers=hier or flat,
      conductor=any(n.startswith(_CONDUCTOR) for n in variables), part_prefixes=prefixes,
      part_depths=depths, nade=any(p + '/nade/w_enc' in variables for p in prefixes))


def check_layout(spec: ConverterSpec, layout: WeightLayout, source: str) -> None:
  """Raises TfjsCheckpointError (one line) when config.json and the weights disagree, or when
  they describe a model mvae_jax has no counterpart for (a NADE decoder, chord conditioning)."""
  if layout.nade:
    raise TfjsCheckpointError(f'{source}: a NADE decoder ({layout.part_prefixes[0]}/nade/w_enc, '
                              'as drums_2bar_nade_9_q2): mvae_jax has no such model')
  if spec.chord_encoder is not None:
    raise TfjsCheckpointError(f'{source}: a chord-conditioned model (chordEncoder '
                              f'{spec.chord_encoder}): mvae_jax has no such model')
  if layout.conductor != (spec.num_segments is not None):
    said = (f'numSegments {spec.num_segments} (a hierarchical decoder)' if spec.num_segments
            else 'no numSegments (a flat decoder)')
    found = 'a conductor' if layout.conductor else 'no conductor'
    raise TfjsCheckpointError(f'{source}: config.json gives {said}, the weights have {found} '
                              f'({_CONDUCTOR}...)')
  if layout.part_depths != spec.part_depths:
    raise TfjsCheckpointError(
        f'{source}: config.json\'s {spec.converter} has {len(spec.part_depths)} part(s) of '
        f'{list(spec.part_depths)} classes, the weights\' output layers '
        f'({", ".join(p + _PROJECTION for p in layout.part_prefixes)}) have '
        f'{list(layout.part_depths)}')


def read_magenta_js(folder: str) -> tuple[dict[str, np.ndarray], ConverterSpec, WeightLayout]:
  """`read_tfjs` + `converter_spec` + `weight_layout` + `check_layout`: a magenta.js MusicVAE
  checkpoint folder, its window structure and its model structure, checked against each other.

  Raises:
    TfjsCheckpointError: anything `read_tfjs` refuses, no config.json (it is the only record of
      the window length and pitch range), or config and weights that disagree.
  """
  variables, config = read_tfjs(folder)
  if os.path.basename(folder) == MANIFEST:
    folder = os.path.dirname(folder) or '.'
  config_path = os.path.join(folder, CONFIG)
  if config is None:
    raise TfjsCheckpointError(f'{config_path}: no such file (magenta.js checkpoints come with '
                              'one; it gives the window length and pitch range)')
  spec = converter_spec(config, config_path)
  layout = weight_layout(variables, folder)
  check_layout(spec, layout, folder)
  return variables, spec, layout
