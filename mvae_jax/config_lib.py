"""Shared pieces of the `configs/*.py` files: the config skeleton, presets and modifiers.

A config file calls `build(family=..., presets=..., arg=arg)`; `arg` is what follows the colon in
`--config=configs/melody2.py:small,baseline`: one preset name, then optional comma-separated modifiers.

Sections, in this order: data, model, loss, optim, train, eval. `config.model` is exactly the keyword
arguments of `mvae_jax.models.MusicVAE`. The returned config is locked, so a mistyped
`--config.x.y=` override is an error instead of a silently ignored new key.
"""
from __future__ import annotations

import copy
import math
import os
from typing import Any, Sequence

import ml_collections
import numpy as np

from data_pipelines import kinds

# Modifiers after a preset's name (`small,baseline`): the config fields each one sets.
MODIFIERS = {
    'baseline': {'model.use_encoder': False},            # Table 1's decoder-only baseline
    'no_ss': {'train.scheduled_sampling': False},        # teacher forcing only
}
# The three columns of the paper's Table 1 as config fields (`table1_sweep`, experiments/table1.py).
TABLE1_COLUMNS = {
    'baseline': MODIFIERS['baseline'],
    'vae': {'model.use_encoder': True, **MODIFIERS['no_ss']},
    'vae_ss': {'model.use_encoder': True, 'train.scheduled_sampling': True},
}
# The configs/ folder of this checkout: `from_file('melody2:small')` finds its files there.
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs')


def base_config() -> ml_collections.ConfigDict:
  """Every field with its default; presets override a few."""
  c = ml_collections.ConfigDict()
  c.family = ''                       # name of the config file's model family (melody2, trio16, ...)
  c.preset = ''                       # preset and modifiers this config was made from

  c.data = ml_collections.ConfigDict()
  c.data.source = 'folk'              # folk | freedoom | folder (a folder of the user's MIDI files)
  c.data.kind = 'mel_2bar'            # window kind = TFDS BuilderConfig name (see data_pipelines.encoding.KINDS)
  c.data.mode = 'paper'               # paper (130 melody classes) | magenta (90, the reference's rules)
  c.data.midi_dir = ''                # for source=folder: the root of the MIDI files (searched recursively)
  c.data.data_dir = ''                # TFDS data dir; '' = $TFDS_DATA_DIR or ~/tensorflow_datasets
  c.data.augment = True               # random transposition per example per epoch (never drums)
  c.data.shift_min = -5               # semitones, inclusive
  c.data.shift_max = 6                # semitones, inclusive
  c.data.workers = 0                  # processes for building a missing dataset (0 = all cores)

  c.model = ml_collections.ConfigDict()
  c.model.part_vocab = (130,)         # output classes per part
  c.model.part_is_drums = (False,)    # drums parts get the 10-value roll as encoder input
  c.model.z_size = 256                # latent dimensions
  c.model.enc_sizes = (2048,)         # stacked bidirectional LSTM layer sizes (hier: of each level)
  c.model.encoder = 'flat'            # flat | hier (a BiLSTM per segment, then one over the segments)
  c.model.enc_segments = None         # hier encoder only: its segments (None = model.num_segments)
  c.model.decoder = 'flat'            # flat | hier
  c.model.dec_sizes = (2048, 2048, 2048)  # flat decoder, or each bottom decoder of a hier decoder
  c.model.conductor_sizes = (1024, 1024)  # hier only
  c.model.num_segments = 16           # hier only: segments per sequence
  c.model.embedding_size = 512        # hier only: conductor output projection (None = raw top h)
  c.model.use_encoder = True          # False = Table 1 baseline: decoder alone, no z
  c.model.sigma_param = 'softplus'    # softplus (reference) | exp2 (paper appendix)
  c.model.dtype = 'float32'           # matmul dtype; bfloat16 on GPU/TPU
  c.model.unroll = 1                  # lax.scan unroll of the recurrences
  c.model.forget_bias = 0.0           # run-time forget-gate bias (the reference: 1.0, bias params start at 0)
  c.model.drum_input = 'roll'         # encoder input of drums parts: roll (10 values) | one_hot (512; the reference's trio)

  c.loss = ml_collections.ConfigDict()
  c.loss.free_bits = 48.0             # bits of KL per example that are not penalised
  c.loss.max_beta = 0.2               # final KL weight
  c.loss.beta_rate = 0.99999          # beta(step) = (1 - beta_rate**step) * max_beta; 0 = constant max_beta

  c.optim = ml_collections.ConfigDict()
  c.optim.learning_rate = 1e-3        # initial learning rate
  c.optim.min_learning_rate = 1e-5    # floor of the exponential decay
  c.optim.decay_rate = 0.9999         # per-step decay factor
  c.optim.grad_clip = 1.0             # global-norm clipping
  c.optim.clip_to_zero_norm = 1e4     # zero the update when the gradient norm reaches this (reference)
  c.optim.encoder_lr_scale = 1.0      # encoder's learning rate = this x the schedule's (not in the paper)

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 512            # global batch, split over all devices of all hosts
  c.train.num_steps = 100_000
  c.train.seed = 0
  c.train.scheduled_sampling = True   # inverse-sigmoid schedule of the sampling probability
  c.train.ss_rate = 1000.0            # k in p = 1 - k / (k + exp(step / k))
  c.train.log_every_steps = 100
  c.train.checkpoint_every_steps = 1000
  c.train.keep_checkpoints = 3
  c.train.init_from = ''              # run directory whose latest parameters start this run (fine-tuning)

  c.eval = ml_collections.ConfigDict()
  c.eval.every_steps = 1000           # periodic evaluation on the eval split (0 = none: no eval split needed)
  c.eval.num_batches = 8              # batches per periodic evaluation (0 = the whole split)
  c.eval.batch_size = 512
  return c


def _set(config: ml_collections.ConfigDict, overrides: dict[str, Any]) -> None:
  """Sets {'section.field': value} on an unlocked config; a field it lacks is a ConfigError."""
  known = leaves(config)
  for key, value in overrides.items():
    if key not in known:
      raise ConfigError(unknown_field_message(key, config))
    node = config
    *path, leaf = key.split('.')
    for p in path:
      node = node[p]
    node[leaf] = tuple(value) if isinstance(value, list) else value


def build(family: str, presets: dict[str, dict[str, Any]], arg: str | None,
          default: str = 'paper') -> ml_collections.ConfigDict:
  """Builds a locked config from a preset table.

  Args:
    family: config family name, written into the config.
    presets: preset name -> {'section.field': value} overrides of `base_config()`. Each preset is
      applied on top of the family's 'common' entry when there is one.
    arg: 'preset[,modifier...]' with modifiers from MODIFIERS: `baseline` (no encoder: Table 1's
      first column), `no_ss` (teacher forcing only: the VAE column without scheduled sampling).
    default: preset used when arg is empty.
  """
  names = [a.strip() for a in (arg or default).split(',') if a.strip()]
  preset, mods = names[0], names[1:]
  if preset not in presets or preset == 'common':
    choices = sorted(p for p in presets if p != 'common')
    raise ValueError(f'unknown preset {preset!r} for {family}; choose one of {choices}')
  for m in mods:
    if m not in MODIFIERS:
      raise ValueError(f'unknown modifier {m!r}; choose from {tuple(MODIFIERS)}')
  c = base_config()
  c.family = family
  c.preset = ','.join(names)
  _set(c, copy.deepcopy(presets.get('common', {})))
  _set(c, copy.deepcopy(presets[preset]))
  c.model.part_vocab = kinds.part_vocab(c.data.kind, c.data.mode)
  c.model.part_is_drums = kinds.part_is_drums(c.data.kind)
  if all(c.model.part_is_drums):  # drums are never transposed
    c.data.augment = False
  for m in mods:
    _set(c, MODIFIERS[m])
  return c.lock()


def table1_sweep() -> list[dict[str, Any]]:
  """The three Table 1 columns as a config file's `sweep()` (see launch/sweep.py)."""
  return [dict(fields) for fields in TABLE1_COLUMNS.values()]


# ----------------------------------------------------------------------------- loading

def config_path(spec: str) -> str:
  """The file of `spec`'s config part: `configs/melody2.py` (a path) or `melody2` (a family in
  `CONFIG_DIR`)."""
  name = spec.partition(':')[0]
  if name.endswith('.py') or os.sep in name:
    return os.path.abspath(name)
  return os.path.join(CONFIG_DIR, f'{name}.py')


def config_module(spec: str) -> Any:
  """The config file of `spec` as a module (its `get_config`, `PRESETS`, `sweep`)."""
  import importlib.util
  path = config_path(spec)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'no config file {path}')
  stem = os.path.splitext(os.path.basename(path))[0]
  module_spec = importlib.util.spec_from_file_location(f'mvae_config_{stem}', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


def from_file(spec: str, overrides: dict[str, Any] | None = None) -> ml_collections.ConfigDict:
  """`configs/melody2.py:small,baseline` (or `melody2:small`) with dotted `overrides` applied.

  What `--config=<spec> --config.a.b=v` gives on a command line; returns a locked config. An
  override naming no field is a ConfigError (with a suggestion).
  """
  arg = spec.partition(':')[2]
  config = config_module(spec).get_config(arg or None)
  return apply_overrides(config, overrides or {})


def parse_value(text: str) -> Any:
  """A value written on a command line: a Python literal (1e-3, (256, 256), None, True), else
  the text itself (a path, a name). Never evaluates anything but literals."""
  import ast
  try:
    value = ast.literal_eval(text.strip())
  except (ValueError, SyntaxError):
    return text
  return tuple(value) if isinstance(value, list) else value


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
  """`['train.num_steps=500', 'model.dec_sizes=(64,)']` -> {'train.num_steps': 500, ...}."""
  out = {}
  for item in items or ():
    key, sep, value = item.partition('=')
    if not sep or '.' not in key:
      raise ConfigError(f'expected section.field=value, got {item!r}')
    out[key.strip()] = parse_value(value)
  return out


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: dict[str, Any]) -> ml_collections.ConfigDict:
  """A locked copy of `config` with {'section.field': value} applied (lists become tuples)."""
  config = copy.deepcopy(config)
  with config.unlocked():
    _set(config, overrides)
  return config.lock()


# Size tables shared by the config files; each file adds what is particular to it.
FLAT_PAPER = {  # appendix: 2-bar melody and drums
    'model.enc_sizes': (2048,), 'model.z_size': 256, 'model.dec_sizes': (2048, 2048, 2048),
    'loss.free_bits': 48.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.99999,
    'train.batch_size': 512, 'train.num_steps': 100_000,
}
# The reference's (Magenta 2.1.4 configs.py) released configs, hparam for hparam: sizes, loss,
# schedules (learning rate 1e-3 -> 1e-5 at 0.9999, clip 1.0, zero above 1e4: the base_config
# defaults), batch 512 (trio 256), run-time forget bias 1.0. num_steps is ours (Magenta's trainer
# takes it as a flag).
FLAT_MAGENTA = {  # the reference's cat-*_2bar_small
    'data.mode': 'magenta', 'model.forget_bias': 1.0, 'model.embedding_size': None,  # (hier only)
    'model.enc_sizes': (512,), 'model.z_size': 256, 'model.dec_sizes': (256, 256),
    'train.batch_size': 512, 'train.num_steps': 100_000,
    'train.scheduled_sampling': True, 'train.ss_rate': 1000.0,  # inverse_sigmoid, rate 1000
}
FLAT_MAGENTA_BIG = {  # the reference's cat-*_2bar_big
    **FLAT_MAGENTA,
    'model.enc_sizes': (2048,), 'model.z_size': 512, 'model.dec_sizes': (2048, 2048, 2048),
}
FLAT_SMALL = {
    # Chosen by experiments/learning_speed.py (docs/results/learning_speed.md): at equal CPU time, batch 16
    # at learning rate 3e-3 learns far faster than batch 64 at 1e-3 (2-bar melodies, 3 CPU-minutes:
    # eval loss 19.3 against 34.2 nats, greedy Recon 0.80 against 0.67). A step costs ~0.03 s on
    # one core. Schedules shrunk with the step budget: beta reaches 95% of its maximum near the end
    # and the sampling probability passes 0.99 at half the steps (the paper's rates assume 100k+).
    'model.enc_sizes': (128,), 'model.z_size': 64, 'model.dec_sizes': (256,),
    'loss.free_bits': 48.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.9996,
    'optim.learning_rate': 3e-3,
    'train.batch_size': 16, 'train.num_steps': 8000, 'train.ss_rate': 380.0,
    'train.log_every_steps': 200, 'train.checkpoint_every_steps': 1000,
    'eval.every_steps': 2000, 'eval.batch_size': 256,
}
HIER_PAPER = {  # appendix: 32-bar melody and 16-bar trio (conductor, 16 embeddings of 512)
    'model.decoder': 'hier', 'model.num_segments': 16,
    'model.enc_sizes': (2048,), 'model.z_size': 512, 'model.conductor_sizes': (1024, 1024),
    'model.embedding_size': 512, 'model.dec_sizes': (1024, 1024), 'loss.free_bits': 256.0,
    'train.batch_size': 512,
}
HIER_MAGENTA = {  # the reference's hierdec-mel_16bar / hierdec-trio_16bar: teacher forcing only
    'data.mode': 'magenta', 'data.augment': False, 'model.forget_bias': 1.0,
    'model.decoder': 'hier', 'model.num_segments': 16,
    'model.enc_sizes': (2048, 2048), 'model.z_size': 512, 'model.conductor_sizes': (1024, 1024),
    'model.embedding_size': None, 'model.dec_sizes': (1024, 1024),
    'loss.free_bits': 256.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.0,
    'train.scheduled_sampling': False,
}
# The reference's hier-mel_16bar / hier-trio_16bar: the hierarchical encoder (one 1024 BiLSTM
# per level), otherwise hierdec's; magenta.js's hierarchical checkpoints have this structure.
HIER_ENC_MAGENTA = {**HIER_MAGENTA, 'model.encoder': 'hier', 'model.enc_sizes': (1024,)}
HIER_SMALL = {
    'model.decoder': 'hier', 'model.num_segments': 16,
    'model.enc_sizes': (256,), 'model.z_size': 128, 'model.conductor_sizes': (256,),
    'model.embedding_size': 128, 'model.dec_sizes': (256,),
    # beta = 0.2 from step 1 (the reference's hierdec setting): with the paper's annealing
    # (beta ~0 for the first hundreds of steps) a KL spike saturated the conductor and every
    # trio / 32-bar VAE collapsed at this size and batch (docs/RESULTS.md); with the constant
    # beta 1 run in 7 still did (a spike at step 450). Learning rate: the paper's 1e-3 (3e-3, the
    # 2-bar choice, collapsed too).
    'loss.free_bits': 64.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.0,
    # The encoder learns at a tenth of that rate: the collapse was traced to one ordinary update
    # of the encoder's recurrent kernel that sent several windows' codes to one attractor, after
    # which Adam saturated the conductor (docs/RESULTS.md, "the collapse"); with 0.1 the collapsed
    # seed trained normally and seed 0 was not hurt. Not in the paper; its presets keep 1.0.
    'optim.encoder_lr_scale': 0.1,
    'train.num_steps': 2000, 'train.ss_rate': 100.0,
    'train.log_every_steps': 50, 'train.checkpoint_every_steps': 500,
    'eval.every_steps': 500, 'eval.num_batches': 4,
}


SMOKE = {
    # seconds on a CPU: for tests and for checking an installation. Trains on the Freedoom songs.
    'data.source': 'freedoom',
    'model.z_size': 8,
    'model.enc_sizes': (16,),
    'model.dec_sizes': (16,),
    'model.conductor_sizes': (16,),
    'model.embedding_size': 8,
    'train.batch_size': 8,
    'train.num_steps': 4,
    'train.ss_rate': 2.0,
    'train.log_every_steps': 1,
    'train.checkpoint_every_steps': 2,
    'eval.every_steps': 2,
    'eval.num_batches': 2,
    'eval.batch_size': 8,
}
HIER_SMOKE = {**SMOKE, 'model.decoder': 'hier', 'model.num_segments': 16}
HIER_ENC_SMOKE = {**HIER_SMOKE, 'model.encoder': 'hier'}


def as_plain(node: Any) -> Any:
  """ConfigDict / lists -> dicts / tuples, for comparison and for model constructors."""
  if isinstance(node, (ml_collections.ConfigDict, dict)):
    return {k: as_plain(v) for k, v in (node.items() if isinstance(node, dict) else node.items())}
  if isinstance(node, (list, tuple)):
    return tuple(as_plain(v) for v in node)
  return node


# ----------------------------------------------------------------------------- validation

class ConfigError(ValueError):
  """A config value that cannot work; the message is one line naming the field."""


# The config family (configs/<family>.py) made for each window kind.
FAMILY_OF_KIND = {'mel_2bar': 'melody2', 'drums_2bar': 'drums2', 'mel_16bar': 'melody16',
                  'mel_32bar': 'melody32', 'trio_16bar': 'trio16', 'mel_4bar': 'melody4',
                  'drums_4bar': 'drums4', 'trio_4bar': 'trio4'}
_CHOICES = {
    'data.source': kinds.SOURCES, 'data.kind': kinds.KINDS, 'data.mode': kinds.MODES,
    'model.decoder': ('flat', 'hier'), 'model.encoder': ('flat', 'hier'),
    'model.sigma_param': ('softplus', 'exp2'),
    'model.dtype': ('float32', 'bfloat16', 'float16'), 'model.drum_input': ('roll', 'one_hot'),
}
# (field, lowest allowed value, whether the bound itself is allowed)
_LOWER = {
    'data.workers': (0, True), 'model.z_size': (1, True), 'model.num_segments': (1, True),
    'model.embedding_size': (1, True), 'model.unroll': (1, True),
    'loss.free_bits': (0, True), 'loss.max_beta': (0, True), 'loss.beta_rate': (0, True),
    'optim.learning_rate': (0, False), 'optim.min_learning_rate': (0, True),
    'optim.decay_rate': (0, False), 'optim.grad_clip': (0, False),
    'optim.clip_to_zero_norm': (0, False), 'optim.encoder_lr_scale': (0, False),
    'train.batch_size': (1, True), 'train.num_steps': (1, True), 'train.seed': (0, True),
    'train.ss_rate': (0, False), 'train.log_every_steps': (1, True),
    'train.checkpoint_every_steps': (1, True), 'train.keep_checkpoints': (1, True),
    'eval.every_steps': (0, True), 'eval.num_batches': (0, True), 'eval.batch_size': (1, True),
}
_UPPER = {'loss.beta_rate': 1.0, 'optim.decay_rate': 1.0}
_SIZE_LISTS = ('model.enc_sizes', 'model.dec_sizes', 'model.conductor_sizes')


def leaves(node: Any, prefix: str = '') -> dict[str, Any]:
  """{'section.field': value} of a (nested) ConfigDict."""
  out = {}
  for k, v in node.items():
    key = f'{prefix}{k}'
    if isinstance(v, (ml_collections.ConfigDict, dict)):
      out.update(leaves(v, key + '.'))
    else:
      out[key] = v
  return out


def _type_ok(value: Any, default: Any) -> bool:
  if default is None or value is None:
    return True  # fields whose default is None take anything; None is checked by the ranges
  if isinstance(default, bool):
    return isinstance(value, bool)
  if isinstance(default, int):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
  if isinstance(default, float):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
  if isinstance(default, str):
    return isinstance(value, str)
  if isinstance(default, (tuple, list)):
    return isinstance(value, (tuple, list))
  return True


def _type_name(default: Any) -> str:
  if isinstance(default, bool):
    return 'true or false'
  if isinstance(default, (tuple, list)):
    return 'a list such as (256, 256)'
  return {int: 'an integer', float: 'a number', str: 'a string'}.get(type(default), 'a value')


def unknown_field_message(path: str, known: Any = None) -> str:
  """`unknown config field train.batchsize; did you mean train.batch_size?`"""
  import difflib
  fields = sorted(leaves(known if known is not None else base_config()))
  close = difflib.get_close_matches(path, fields, n=1, cutoff=0.6)
  if not close:  # match the last part alone: `train.batchsize` -> any `*.batch_size`
    leaf = path.rsplit('.', 1)[-1]
    by_leaf = {f.rsplit('.', 1)[-1]: f for f in fields}
    hit = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.6)
    close = [by_leaf[hit[0]]] if hit else []
  hint = f'; did you mean {close[0]}?' if close else ''
  return f'unknown config field {path}{hint}'


def validate(config: ml_collections.ConfigDict, num_devices: int = 1,
             process_count: int = 1) -> None:
  """Checks every field before anything is written or built; raises ConfigError (one line).

  Checks: no unknown fields; each field's type (that of its default in `base_config`) and range;
  `data.source`; `data.kind` and `data.mode` against the model the config file made (the output
  classes depend on both: a melody config cannot train on drums windows); the hierarchical
  decoder's segments; the folder source's `midi_dir`; both batch sizes against the device and
  process counts.
  """
  defaults = leaves(base_config())
  values = leaves(config)
  for path in values:
    if path not in defaults:
      raise ConfigError(unknown_field_message(path))
  for path, value in values.items():
    default = defaults[path]
    if not _type_ok(value, default):
      raise ConfigError(f'config field {path} must be {_type_name(default)}, got {value!r}')
    # NaN passes every comparison below and inf most of them: a float field is finite first.
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
      raise ConfigError(f'config field {path} must be a finite number, got {value!r}')
    if path in _CHOICES and value not in _CHOICES[path]:
      raise ConfigError(f'config field {path} is {value!r}; choose one of {list(_CHOICES[path])}')
    if path in _LOWER and value is not None:
      low, inclusive = _LOWER[path]
      if value < low or (value == low and not inclusive):
        bound = f'>= {low}' if inclusive else f'> {low}'
        raise ConfigError(f'config field {path} must be {bound}, got {value!r}')
    if path in _UPPER and value is not None and value > _UPPER[path]:
      raise ConfigError(f'config field {path} must be <= {_UPPER[path]}, got {value!r}')
  for path in _SIZE_LISTS:
    sizes = values[path]
    if not sizes or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                            for s in sizes):
      raise ConfigError(f'config field {path} must be a non-empty list of positive integers, '
                        f'got {sizes!r}')
  data, model = config.data, config.model
  if not data.shift_min <= 0 <= data.shift_max:
    raise ConfigError(f'data.shift_min {data.shift_min} and data.shift_max {data.shift_max} must '
                      'include 0 (no transposition)')
  if data.source == 'folk' and data.kind not in kinds.FOLK_KINDS:
    raise ConfigError(f'data.source=folk has melodies only; data.kind {data.kind!r} needs '
                      "data.source=freedoom or folder")
  if data.source == 'folder':
    if not data.midi_dir:
      raise ConfigError('data.source=folder needs --config.data.midi_dir=<folder of MIDI files>')
    if not os.path.isdir(data.midi_dir):
      raise ConfigError(f'data.midi_dir {data.midi_dir} is not a folder')
  init_from = config.train.get('init_from', '')
  if init_from and not os.path.isfile(os.path.join(init_from, 'config.json')):
    raise ConfigError(f'train.init_from {init_from} is not a run directory (no config.json there)')
  want_vocab, want_drums = kinds.part_vocab(data.kind, data.mode), kinds.part_is_drums(data.kind)
  if tuple(model.part_vocab) != want_vocab or tuple(model.part_is_drums) != want_drums:
    made_for = FAMILY_OF_KIND.get(data.kind)
    if config.family and FAMILY_OF_KIND.get(data.kind) != config.family:
      raise ConfigError(
          f'data.kind {data.kind!r} does not fit this {config.family} config (its model is made '
          f'for {_kind_of_family(config.family)} windows); use configs/{made_for}.py')
    raise ConfigError(
        f'data.kind {data.kind!r} with data.mode {data.mode!r} needs model.part_vocab '
        f'{want_vocab}, but the config has {tuple(model.part_vocab)}; set data.mode in the preset '
        'rather than on the command line')
  steps = kinds.time_steps(data.kind)
  if model.decoder == 'hier' and steps % model.num_segments:
    raise ConfigError(f'model.num_segments {model.num_segments} does not divide the '
                      f'{steps} steps of {data.kind} windows')
  enc_segments = model.get('enc_segments')
  if enc_segments is not None and (not isinstance(enc_segments, (int, np.integer))
                                   or isinstance(enc_segments, bool) or enc_segments < 1):
    raise ConfigError(f'config field model.enc_segments must be None or an integer >= 1, got '
                      f'{enc_segments!r}')
  if model.get('encoder', 'flat') == 'hier':
    segments = enc_segments or model.num_segments
    if steps % segments:
      field = 'model.enc_segments' if enc_segments else 'model.num_segments (the encoder\'s too)'
      raise ConfigError(f'{field} {segments} does not divide the {steps} steps of {data.kind} '
                        'windows')
  for path in ('train.batch_size', 'eval.batch_size'):
    batch = values[path]
    if batch % num_devices:
      raise ConfigError(f'{path} {batch} is not divisible by the {num_devices} devices; '
                        f'set --config.{path} to a multiple of {num_devices}')
    if batch % process_count:
      raise ConfigError(f'{path} {batch} does not split over the {process_count} processes')


def _kind_of_family(family: str) -> str:
  return {v: k for k, v in FAMILY_OF_KIND.items()}.get(family, '?')


