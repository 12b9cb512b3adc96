"""Shared pieces of the `configs/*.py` files: the config skeleton, presets and modifiers.

A config file calls `build(family=..., presets=..., arg=arg)`; `arg` is what follows the colon in
`--config=configs/melody2.py:small,baseline`: one preset name, then optional comma-separated modifiers.

Sections, in this order: data, model, loss, optim, train, eval. `config.model` is exactly the keyword
arguments of `mvae_jax.models.MusicVAE`. The returned config is locked, so a mistyped
`--config.x.y=` override is an error instead of a silently ignored new key.
"""
from __future__ import annotations

import copy
import os
from typing import Any

import ml_collections
import numpy as np

MODIFIERS = ('baseline', 'no_ss')

# Output classes per part for each window kind, by data mode. Drums always have 512 classes.
_MELODY_VOCAB = {'paper': 130, 'magenta': 90}


def part_vocab(kind: str, mode: str) -> tuple[int, ...]:
  mel = _MELODY_VOCAB[mode]
  if kind == 'drums_2bar':
    return (512,)
  if kind == 'trio_16bar':
    return (mel, mel, 512)
  return (mel,)


def part_is_drums(kind: str) -> tuple[bool, ...]:
  if kind == 'drums_2bar':
    return (True,)
  if kind == 'trio_16bar':
    return (False, False, True)
  return (False,)


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
  c.model.enc_sizes = (2048,)         # stacked bidirectional LSTM layer sizes
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


def _apply(c: ml_collections.ConfigDict, overrides: dict[str, Any]) -> None:
  for key, value in overrides.items():
    node = c
    *path, leaf = key.split('.')
    for p in path:
      node = node[p]
    if leaf not in node:
      raise KeyError(f'preset sets unknown config field {key!r}')
    node[leaf] = value


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
      raise ValueError(f'unknown modifier {m!r}; choose from {MODIFIERS}')
  c = base_config()
  c.family = family
  c.preset = ','.join(names)
  _apply(c, copy.deepcopy(presets.get('common', {})))
  _apply(c, copy.deepcopy(presets[preset]))
  c.model.part_vocab = part_vocab(c.data.kind, c.data.mode)
  c.model.part_is_drums = part_is_drums(c.data.kind)
  if c.data.kind == 'drums_2bar':
    c.data.augment = False
  if 'baseline' in mods:
    c.model.use_encoder = False
  if 'no_ss' in mods:
    c.train.scheduled_sampling = False
  return c.lock()


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
    # Chosen by experiments/learning_speed.py (docs/learning_speed.md): at equal CPU time, batch 16
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


_TIME_STEPS = {'mel_2bar': 32, 'drums_2bar': 32, 'mel_16bar': 256, 'mel_32bar': 512,
               'trio_16bar': 256}


def time_steps(kind: str) -> int:
  """Sixteenth-note steps of a window kind."""
  if kind not in _TIME_STEPS:
    raise ValueError(f'unknown window kind {kind!r}; choose from {sorted(_TIME_STEPS)}')
  return _TIME_STEPS[kind]


def as_plain(node: Any) -> Any:
  """ConfigDict / lists -> dicts / tuples, for comparison and for model constructors."""
  if isinstance(node, (ml_collections.ConfigDict, dict)):
    return {k: as_plain(v) for k, v in (node.items() if isinstance(node, dict) else node.items())}
  if isinstance(node, (list, tuple)):
    return tuple(as_plain(v) for v in node)
  return node


def model_kwargs(model_cfg: ml_collections.ConfigDict) -> dict[str, Any]:
  """`config.model` as the MusicVAE constructor's keyword arguments."""
  return as_plain(model_cfg)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a run directory was trained with (`<workdir>/config.json`)."""
  import json
  import os
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: {workdir} is not a mvae_jax run directory')
  with open(path) as f:
    raw = json.load(f)
  # A run written before a field existed gets the field's default, which is what it ran with
  # (e.g. model.forget_bias), so it still loads and resumes.
  for section, fields in base_config().items():
    if isinstance(fields, ml_collections.ConfigDict) and isinstance(raw.get(section), dict):
      for key, value in fields.items():
        raw[section].setdefault(key, value)
  c = ml_collections.ConfigDict(as_plain(raw))
  return c.lock()


# ----------------------------------------------------------------------------- validation

class ConfigError(ValueError):
  """A config value that cannot work; the message is one line naming the field."""


SOURCES = ('folk', 'freedoom', 'folder')
FOLK_KINDS = ('mel_2bar', 'mel_16bar', 'mel_32bar')
_FAMILY_OF_KIND = {'mel_2bar': 'melody2', 'drums_2bar': 'drums2', 'mel_16bar': 'melody16',
                   'mel_32bar': 'melody32', 'trio_16bar': 'trio16'}
_CHOICES = {
    'data.source': SOURCES, 'data.kind': tuple(_TIME_STEPS), 'data.mode': tuple(_MELODY_VOCAB),
    'model.decoder': ('flat', 'hier'), 'model.sigma_param': ('softplus', 'exp2'),
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


def _leaves(node: Any, prefix: str = '') -> dict[str, Any]:
  """{'section.field': value} of a (nested) ConfigDict."""
  out = {}
  for k, v in node.items():
    key = f'{prefix}{k}'
    if isinstance(v, (ml_collections.ConfigDict, dict)):
      out.update(_leaves(v, key + '.'))
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
  fields = sorted(_leaves(known if known is not None else base_config()))
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
  defaults = _leaves(base_config())
  values = _leaves(config)
  for path in values:
    if path not in defaults:
      raise ConfigError(unknown_field_message(path))
  for path, value in values.items():
    default = defaults[path]
    if not _type_ok(value, default):
      raise ConfigError(f'config field {path} must be {_type_name(default)}, got {value!r}')
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
  if data.source == 'folk' and data.kind not in FOLK_KINDS:
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
  want_vocab, want_drums = part_vocab(data.kind, data.mode), part_is_drums(data.kind)
  if tuple(model.part_vocab) != want_vocab or tuple(model.part_is_drums) != want_drums:
    made_for = _FAMILY_OF_KIND.get(data.kind)
    if config.family and _FAMILY_OF_KIND.get(data.kind) != config.family:
      raise ConfigError(
          f'data.kind {data.kind!r} does not fit this {config.family} config (its model is made '
          f'for {_kind_of_family(config.family)} windows); use configs/{made_for}.py')
    raise ConfigError(
        f'data.kind {data.kind!r} with data.mode {data.mode!r} needs model.part_vocab '
        f'{want_vocab}, but the config has {tuple(model.part_vocab)}; set data.mode in the preset '
        'rather than on the command line')
  if model.decoder == 'hier' and time_steps(data.kind) % model.num_segments:
    raise ConfigError(f'model.num_segments {model.num_segments} does not divide the '
                      f'{time_steps(data.kind)} steps of {data.kind} windows')
  for path in ('train.batch_size', 'eval.batch_size'):
    batch = values[path]
    if batch % num_devices:
      raise ConfigError(f'{path} {batch} is not divisible by the {num_devices} devices; '
                        f'set --config.{path} to a multiple of {num_devices}')
    if batch % process_count:
      raise ConfigError(f'{path} {batch} does not split over the {process_count} processes')


def _kind_of_family(family: str) -> str:
  return {v: k for k, v in _FAMILY_OF_KIND.items()}.get(family, '?')


def check_overrides(argv: list[str]) -> str | None:
  """The problem with the first `--config.<field>=` argument that names no config field, or None."""
  known = _leaves(base_config())
  sections = {p.split('.', 1)[0] for p in known}
  for arg in argv[1:]:
    if not arg.startswith('--config.'):
      continue
    path = arg[len('--config.'):].split('=', 1)[0]
    if path not in known and path not in sections:
      return unknown_field_message(path)
  return None


def cli_flags_parser(argv: list[str]) -> list[str]:
  """`app.run(main, flags_parser=cli_flags_parser)`: a bad command line or config file ends in
  one `error:` line on stderr and exit status 2 instead of a traceback."""
  import sys
  from absl import flags
  problem = check_overrides(argv)
  if problem is None:
    try:
      rest = flags.FLAGS(argv)
    except Exception as e:  # pylint: disable=broad-except
      problem = _flag_error(e)
    else:
      try:  # a config file that failed to load only says so when first used
        if 'config' in flags.FLAGS and flags.FLAGS.config is not None:
          list(flags.FLAGS.config.keys())
        return rest
      except Exception as e:  # pylint: disable=broad-except
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        problem = f'cannot load the config file: {lines[-1] if lines else type(e).__name__}'
  print(f'error: {problem}', file=sys.stderr, flush=True)
  sys.exit(2)


def _flag_error(e: BaseException) -> str:
  """One line from absl / ml_collections' parse errors (which carry the cause in a chain)."""
  msg = str(e).strip()
  cause = e.__cause__ or e.__context__
  if cause is not None and str(cause).strip() and str(cause).strip() not in msg:
    msg += f' ({str(cause).strip()})'
  lines = [line.strip() for line in msg.splitlines() if line.strip()]
  if any(line.startswith('Traceback') for line in lines):  # a config file that raised: its last line
    head = next(line for line in lines if not line.startswith('Traceback'))
    head = head.split('Traceback', 1)[0].rstrip(' :')
    lines = [head, lines[-1]]
  return ': '.join(lines)[:400] if len(lines) == 2 else ' '.join(lines)[:400]
