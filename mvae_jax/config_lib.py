"""Shared pieces of the `configs/*.py` files: the config skeleton, presets and modifiers.

A config file calls `build(family=..., presets=..., arg=arg)`; `arg` is what follows the colon in
`--config=configs/melody2.py:small,baseline`: one preset name, then optional comma-separated modifiers.

Sections, in this order: data, model, loss, optim, train, eval. `config.model` is exactly the keyword
arguments of `mvae_jax.models.MusicVAE`. The returned config is locked, so a mistyped
`--config.x.y=` override is an error instead of a silently ignored new key.
"""
from __future__ import annotations

import copy
from typing import Any

import ml_collections

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
  c.eval.every_steps = 1000           # periodic evaluation on the eval split during training
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
    # Measured: 0.13-0.15 s per step at batch 64 on 2 cores (benchmarks/RESULTS.md). Schedules shrunk
    # with the step budget: beta reaches 95% of its maximum by step 3000 and the sampling
    # probability passes 0.99 near step 1500 (the paper's rates assume 100k+ steps).
    'model.enc_sizes': (128,), 'model.z_size': 64, 'model.dec_sizes': (256,),
    'loss.free_bits': 48.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.999,
    'train.batch_size': 64, 'train.num_steps': 3000, 'train.ss_rate': 150.0,
    'train.log_every_steps': 50, 'train.checkpoint_every_steps': 500,
    'eval.every_steps': 500, 'eval.batch_size': 256,
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
    'loss.free_bits': 64.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.999,
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
