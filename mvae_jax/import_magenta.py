r"""Imports a Magenta MusicVAE checkpoint (TensorFlow or magenta.js) into a mvae_jax run directory.

  python -m mvae_jax.import_magenta --checkpoint=cat-mel_2bar_big.tar --config=cat-mel_2bar_big \
      --workdir=runs/cat-mel_2bar_big
  python -m mvae_jax.import_magenta --checkpoint=checkpoints/mel_4bar_small_q2 \
      --workdir=runs/mel_4bar_small

`--checkpoint` is either
  * a TensorFlow checkpoint (Magenta's Python releases): a prefix (`.../model.ckpt-12345`), a
    directory with a `checkpoint` state file, or the `.tar` Magenta distributes. `--config` (one
    of `CONFIGS`) names its structure (window kind, flat or hierarchical encoder and decoder, the
    `magenta` preset it starts from);
  * a magenta.js (TensorFlow.js) checkpoint folder: `weights_manifest.json`, its shard files and
    `config.json` (`mvae_jax/tfjs_checkpoint.py` reads it, quantized forms included). The window
    kind comes from config.json's data converter (MelodyConverter / DrumsConverter /
    TrioConverter, `numSteps`, `numSegments`, pitch ranges), the rest of the structure from the
    variable names; `--config` is optional and, when given, must describe the same model.

Either way every size (encoder and decoder layers, conductor, z) is read from the checkpoint's
shapes, so a checkpoint of the same structure at other sizes imports too. Everything is checked
before anything is written: an unreadable checkpoint, a variable that is missing, unexpected or
of the wrong shape, or a structure mvae_jax has no model for is a one-line error naming the file
and the reason, and the run directory is not created. The run directory gets `config.json` and an
Orbax checkpoint at the imported global step (0 for magenta.js, whose checkpoints carry none), so
`mvae_jax.eval`, `mvae_jax.generate`, `Model.load` and `mvae_jax.train
--config.train.init_from=RUN` (fine-tuning) work on it unchanged.

The weight mapping (docs/ARCHITECTURE.md, "Magenta checkpoints"): TensorFlow's fused LSTM
`kernel` [in + H, 4H] (rows [x ; h]) splits into our `input_kernel` / `recurrent_kernel` (same
gate order i, j, f, o); biases are copied unchanged, since the imported model adds the forget
bias at run time as Magenta does (`model.forget_bias=1.0`); the conductor's first layer has a
one-row input kernel that only ever multiplies a constant zero and is dropped; a hierarchical
encoder's `encoder/hierarchical_level_{l}` becomes our `encoder/level_{l}`. Optimiser slots
(`*/Adam`, `*/Adam_1`, `beta1_power`, `beta2_power`) are ignored.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from data_pipelines import console, kinds
from mvae_jax import checkpoints, cli, config_lib, tf_checkpoint, tfjs_checkpoint
from mvae_jax import run as run_lib
from mvae_jax.models import default_part_names, encoder as encoder_lib


class ImportMismatchError(ValueError):
  """The checkpoint's variables do not fit the structure named or described."""


@dataclasses.dataclass(frozen=True)
class Structure:
  """What a checkpoint's model is, apart from its sizes: our window kind, where our preset lives,
  how its graph is laid out.

  name: for messages (a released config name, or what a magenta.js config.json describes).
  family / preset: configs/<family>.py and its preset that the imported config starts from.
  kind: the window kind (`data_pipelines.kinds`).
  encoder / decoder: 'flat' | 'hier' each.
  core_prefixes: the TF scope of each part's (bottom) decoder, in part order.
  num_segments: conductor steps of a hierarchical decoder, also the hierarchical encoder's
    level-0 segments; None keeps the preset's.
  """
  name: str
  family: str
  preset: str
  kind: str
  encoder: str
  decoder: str
  core_prefixes: tuple[str, ...]
  num_segments: int | None = None

  def describe(self) -> str:
    enc = 'hierarchical' if self.encoder == 'hier' else 'flat'
    dec = 'hierarchical' if self.decoder == 'hier' else 'flat'
    segments = f', {self.num_segments} segments' if self.num_segments else ''
    return f'{self.kind} windows, {enc} encoder, {dec} decoder{segments}'


_MEL_HIER = ('core_decoder/decoder',)
_TRIO_HIER = tuple(f'core_decoder/core_decoder_{p}/decoder' for p in range(3))
# Magenta 2.1.4's released TensorFlow configs, plus the two with a hierarchical encoder.
CONFIGS = {
    'cat-mel_2bar_small': Structure('cat-mel_2bar_small', 'melody2', 'magenta', 'mel_2bar',
                                    'flat', 'flat', ('decoder',)),
    'cat-mel_2bar_big': Structure('cat-mel_2bar_big', 'melody2', 'magenta_big', 'mel_2bar',
                                  'flat', 'flat', ('decoder',)),
    'cat-drums_2bar_small': Structure('cat-drums_2bar_small', 'drums2', 'magenta', 'drums_2bar',
                                      'flat', 'flat', ('decoder',)),
    'cat-drums_2bar_big': Structure('cat-drums_2bar_big', 'drums2', 'magenta_big', 'drums_2bar',
                                    'flat', 'flat', ('decoder',)),
    'hierdec-mel_16bar': Structure('hierdec-mel_16bar', 'melody16', 'magenta', 'mel_16bar',
                                   'flat', 'hier', _MEL_HIER, 16),
    'hierdec-trio_16bar': Structure('hierdec-trio_16bar', 'trio16', 'magenta', 'trio_16bar',
                                    'flat', 'hier', _TRIO_HIER, 16),
    'hier-mel_16bar': Structure('hier-mel_16bar', 'melody16', 'magenta_hier', 'mel_16bar',
                                'hier', 'hier', _MEL_HIER, 16),
    'hier-trio_16bar': Structure('hier-trio_16bar', 'trio16', 'magenta_hier', 'trio_16bar',
                                 'hier', 'hier', _TRIO_HIER, 16),
}
CONDUCTOR = 'decoder/hierarchical_level_0'
HIER_PRESET = 'magenta_hier'  # a family's preset with the hierarchical encoder, where it has one


def _enc_cell(k: int | str, direction: str, level: int | None = None) -> str:
  scope = 'encoder' if level is None else f'encoder/hierarchical_level_{level}'
  return f'{scope}/cell_{k}/bidirectional_rnn/{direction}/multi_rnn_cell/cell_0/lstm_cell'


class _Variables:
  """The checkpoint's variables; records which ones the mapping used."""

  def __init__(self, variables: dict[str, np.ndarray], config_name: str, source: str):
    self.vars, self.used = variables, {'global_step'}
    self.config_name, self.source = config_name, source

  def has(self, name: str) -> bool:
    return name in self.vars

  def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
    found = self.vars.get(name)
    if found is None or tuple(found.shape) != tuple(shape):
      raise ImportMismatchError(
          f'{self.source}: variable {name}: expected shape {list(shape)}, found '
          f'{list(found.shape) if found is not None else "no such variable"}: not a '
          f'{self.config_name} checkpoint (or a different structure)')
    if not np.issubdtype(found.dtype, np.floating):
      raise ImportMismatchError(f'{self.source}: variable {name} has dtype {found.dtype}, '
                                'expected a float')
    self.used.add(name)
    return np.asarray(found, np.float32)

  def units(self, name: str) -> int:
    """H of an LSTM from its bias [4H] (the sizes are read from the checkpoint)."""
    bias = self.vars.get(name)
    if bias is None or bias.ndim != 1 or bias.shape[0] % 4:
      raise ImportMismatchError(
          f'{self.source}: variable {name}: expected shape [4H], found '
          f'{list(bias.shape) if bias is not None else "no such variable"}: not a '
          f'{self.config_name} checkpoint')
    return bias.shape[0] // 4

  def layer_sizes(self, pattern: str) -> tuple[int, ...]:
    """Units of the LSTM layers `pattern.format(k=0, 1, ...)` (at least one must exist)."""
    sizes, k = [], 0
    while self.has(pattern.format(k=k) + '/bias') or k == 0:
      sizes.append(self.units(pattern.format(k=k) + '/bias'))
      k += 1
    return tuple(sizes)

  def check_all_used(self) -> None:
    extra = sorted(n for n in self.vars
                   if n not in self.used and not tf_checkpoint.is_optimizer_variable(n))
    if extra:
      shapes = ', '.join(f'{n} {list(self.vars[n].shape)}' for n in extra[:3])
      raise ImportMismatchError(
          f'{self.source}: {len(extra)} variable(s) that a {self.config_name} checkpoint does '
          f'not have (expected none), found: {shapes}' + (' ...' if len(extra) > 3 else ''))


def _drum_input(v: _Variables, structure: Structure, enc_sizes: tuple[int, ...]) -> str:
  """How the encoder reads drums parts, from its first kernel's input rows: the 10-value roll
  (the 2-bar drums models) or the 512-way one-hot (the trio)."""
  drums = kinds.part_is_drums(structure.kind)
  if not any(drums):
    return 'roll'
  level = 0 if structure.encoder == 'hier' else None
  name = _enc_cell(0, 'fw', level) + '/kernel'
  kernel = v.vars.get(name)
  vocab = kinds.part_vocab(structure.kind, 'magenta')
  widths = {d: sum(encoder_lib.input_widths(vocab, drums, d)) for d in encoder_lib.DRUM_INPUTS}
  rows = None if kernel is None or kernel.ndim != 2 else kernel.shape[0] - enc_sizes[0]
  for drum_input, width in widths.items():
    if rows == width:
      return drum_input
  expect = ' or '.join(f'[{w} + {enc_sizes[0]}, {4 * enc_sizes[0]}]' for w in widths.values())
  raise ImportMismatchError(
      f'{v.source}: variable {name}: expected shape {expect} (the {structure.kind} input read as '
      f'{" or ".join(widths)}), found '
      f'{list(kernel.shape) if kernel is not None else "no such variable"}: not a '
      f'{v.config_name} checkpoint')


def model_sizes(v: _Variables, structure: Structure) -> dict[str, Any]:
  """`config.model` fields read from the checkpoint's shapes."""
  if structure.encoder == 'hier':
    levels = [v.layer_sizes(_enc_cell('{k}', 'fw', level)) for level in (0, 1)]
    if levels[0] != levels[1]:
      raise ImportMismatchError(
          f'{v.source}: the hierarchical encoder\'s levels have layers {list(levels[0])} and '
          f'{list(levels[1])} (encoder/hierarchical_level_{{0,1}}); mvae_jax\'s has the same '
          'layers on both levels, as Magenta\'s')
    enc = levels[0]
  else:
    enc = v.layer_sizes(_enc_cell('{k}', 'fw'))
  z = v.vars.get('encoder/mu/bias')
  if z is None or z.ndim != 1:
    raise ImportMismatchError(f'{v.source}: variable encoder/mu/bias: expected shape [z], found '
                              f'{list(z.shape) if z is not None else "no such variable"}')
  sizes = {'enc_sizes': tuple(enc), 'z_size': int(z.shape[0]),
           'dec_sizes': v.layer_sizes(structure.core_prefixes[0]
                                      + '/multi_rnn_cell/cell_{k}/lstm_cell'),
           'drum_input': _drum_input(v, structure, tuple(enc))}
  if structure.decoder == 'hier':
    sizes['conductor_sizes'] = v.layer_sizes(CONDUCTOR + '/cell_{k}/lstm_cell')
  return sizes


def _lstm(v: _Variables, tf_scope: str, ours: dict[str, Any], skip_rows: int = 0) -> dict:
  """A TF fused LSTM cell -> our LSTMLayer parameters (shapes from `ours`, abstract)."""
  h = ours['recurrent_kernel'].shape[0]
  n_in = ours['input_kernel'].shape[0] if 'input_kernel' in ours else 0
  kernel = v.get(tf_scope + '/kernel', (skip_rows + n_in + h, 4 * h))
  out = {'recurrent_kernel': kernel[skip_rows + n_in:],
         'bias': v.get(tf_scope + '/bias', (4 * h,))}
  if n_in:
    out['input_kernel'] = kernel[skip_rows:skip_rows + n_in]
  return out


def _dense(v: _Variables, tf_scope: str, ours: dict[str, Any]) -> dict:
  return {'kernel': v.get(tf_scope + '/kernel', ours['kernel'].shape),
          'bias': v.get(tf_scope + '/bias', ours['bias'].shape)}


def _part_decoder(v: _Variables, prefix: str, ours: dict[str, Any]) -> dict:
  out = {'initial_state': _dense(v, prefix + '/z_to_initial_state', ours['initial_state']),
         'logits': _dense(v, prefix + '/output_projection', ours['logits'])}
  for name, abstract in ours.items():
    if name.startswith('lstm_'):
      out[name] = _lstm(v, f'{prefix}/multi_rnn_cell/cell_{name[5:]}/lstm_cell', abstract)
  return out


def _bilstm(v: _Variables, ours: dict[str, Any], level: int | None) -> dict:
  """Our `fwd_k` / `bwd_k` layers of one (level of the) encoder."""
  out = {}
  for name, abstract in ours.items():
    if name.startswith(('fwd_', 'bwd_')):
      direction = 'fw' if name.startswith('fwd') else 'bw'
      out[name] = _lstm(v, _enc_cell(int(name[4:]), direction, level), abstract)
  return out


def map_parameters(v: _Variables, structure: Structure, abstract: dict[str, Any],
                   part_names: tuple[str, ...]) -> dict[str, Any]:
  """Our parameter tree (numpy float32) from the checkpoint's variables."""
  enc = abstract['encoder']
  params = {'encoder': {'mu': _dense(v, 'encoder/mu', enc['mu']),
                        'sigma': _dense(v, 'encoder/sigma', enc['sigma'])}}
  if structure.encoder == 'hier':
    for level in (0, 1):
      params['encoder'][f'level_{level}'] = _bilstm(v, enc[f'level_{level}'], level)
  else:
    params['encoder'].update(_bilstm(v, enc, None))
  dec = abstract['decoder']
  params['decoder'] = {}
  for part, prefix in zip(part_names, structure.core_prefixes):
    params['decoder'][part] = _part_decoder(v, prefix, dec[part])
  if structure.decoder == 'hier':
    cond = dec['conductor']
    rnn = {}
    for name, ours in cond['rnn'].items():
      # Layer 0 reads a constant zero of width 1 in Magenta: its kernel row 0 is dropped.
      rnn[name] = _lstm(v, f'{CONDUCTOR}/cell_{name[5:]}/lstm_cell', ours,
                        skip_rows=1 if name == 'lstm_0' else 0)
    params['decoder']['conductor'] = {
        'initial_state': _dense(v, CONDUCTOR + '/initial_state', cond['initial_state']),
        'rnn': rnn}
  v.check_all_used()
  return params


def build_config(structure: Structure | str, sizes: dict[str, Any]) -> Any:
  """The structure's preset with the checkpoint's sizes and Magenta's structure options.

  Raises:
    config_lib.ConfigError: a structure the config cannot describe (one line).
  """
  if isinstance(structure, str):
    structure = CONFIGS[structure]
  config = config_lib.from_file(f'{structure.family}:{structure.preset}')
  with config.unlocked():
    for key, value in sizes.items():
      config.model[key] = value
    config.model.forget_bias = 1.0
    config.model.embedding_size = None
    config.model.encoder = structure.encoder
    config.model.enc_segments = None  # = num_segments, as magenta.js
    config.model.decoder = structure.decoder
    if structure.num_segments:
      config.model.num_segments = structure.num_segments
    config.preset = f'{structure.preset} (imported {structure.name})'
  config_lib.validate(config.lock())
  return config


def convert(variables: dict[str, np.ndarray], structure: Structure | str,
            source: str = 'checkpoint') -> tuple[Any, dict[str, Any], int]:
  """(config, our parameter tree of numpy arrays, global step) from a checkpoint's variables.

  Args:
    variables: {TF name: array}, e.g. `tf_checkpoint.read_checkpoint(path)` or
      `tfjs_checkpoint.read_tfjs(folder)[0]`; optimiser slots are ignored.
    structure: one of `CONFIGS` (by name), or a `Structure` (`tfjs_structure`).
    source: the checkpoint's path, for error messages.
  Raises:
    ImportMismatchError: a variable missing, unexpected or of the wrong shape (one line).
  """
  if isinstance(structure, str):
    if structure not in CONFIGS:
      raise ValueError(f'unknown --config {structure!r}; choose one of {sorted(CONFIGS)}')
    structure = CONFIGS[structure]
  v = _Variables(variables, structure.name, source)
  config = build_config(structure, model_sizes(v, structure))
  abstract = run_lib.abstract_params(run_lib.create_model(config.model), config)
  params = map_parameters(v, structure, abstract,
                          default_part_names(tuple(config.model.part_is_drums)))
  step = int(np.asarray(variables.get('global_step', 0)))
  return config, params, step


# ----------------------------------------------------------------------------- magenta.js

_PARTS = {'melody': ('melody',), 'drums': ('drums',), 'trio': ('melody', 'melody', 'drums')}


def tfjs_structure(spec: tfjs_checkpoint.ConverterSpec, layout: tfjs_checkpoint.WeightLayout,
                   source: str) -> Structure:
  """The structure of a magenta.js checkpoint: the window kind from its config.json's converter
  (`spec`), encoder and decoder layout from its variables (`layout`).

  Raises:
    ImportMismatchError: a converter setting or layout mvae_jax has no model for (one line).
  """
  where = os.path.join(source, tfjs_checkpoint.CONFIG)
  window_kind = next((k for k in kinds.KINDS if kinds.kind(k).parts == _PARTS[spec.kind]
                      and kinds.time_steps(k) == spec.num_steps), None)
  if window_kind is None:
    have = sorted(kinds.time_steps(k) for k in kinds.KINDS
                  if kinds.kind(k).parts == _PARTS[spec.kind])
    raise ImportMismatchError(f'{where}: a {spec.converter} of {spec.num_steps} steps: mvae_jax '
                              f'has {spec.kind} windows of {have} steps only')
  magenta_range = kinds.PITCH_RANGE['magenta']
  for what, pitch in (('minPitch/maxPitch', spec.melody_pitch),
                      ('bassArgs minPitch/maxPitch', spec.bass_pitch)):
    if pitch is not None and tuple(pitch) != magenta_range:
      raise ImportMismatchError(
          f'{where}: {spec.converter} {what} {pitch[0]}..{pitch[1]}: mvae_jax\'s magenta-mode '
          f'melodies span {magenta_range[0]}..{magenta_range[1]} (90 classes), as every released '
          'checkpoint')
  if spec.drum_pitch_classes is not None:
    if spec.converter == 'DrumRollConverter':
      raise ImportMismatchError(f'{where}: a DrumRollConverter (drum-roll output, one bit per '
                                'class): mvae_jax\'s drums decoders predict one of 512 classes')
    if spec.drum_pitch_classes != tfjs_checkpoint.DEFAULT_DRUM_PITCH_CLASSES:
      raise ImportMismatchError(f'{where}: custom drum pitchClasses: mvae_jax reads drums as the '
                                '9 standard classes only')
  conductor = layout.conductor
  if len(_PARTS[spec.kind]) > 1 and not conductor:
    raise ImportMismatchError(f'{source}: a trio without a conductor: mvae_jax (like magenta.js) '
                              'has trio models with the hierarchical decoder only')
  if not conductor:
    prefixes = ('decoder',)
  elif len(_PARTS[spec.kind]) > 1:
    prefixes = _TRIO_HIER
  else:
    prefixes = _MEL_HIER
  if tuple(layout.part_prefixes) != prefixes:
    raise ImportMismatchError(
        f'{source}: decoder output layers {", ".join(layout.part_prefixes)}, expected '
        f'{", ".join(prefixes)} for a {"hierarchical" if conductor else "flat"} {spec.kind} '
        'decoder')
  encoder = 'hier' if layout.encoder == 'hierarchical' else 'flat'
  if encoder == 'hier' and (not conductor or layout.encoder_layers != 2):
    raise ImportMismatchError(
        f'{source}: a hierarchical encoder with {layout.encoder_layers} level(s) and '
        f'{"a" if conductor else "no"} conductor: mvae_jax has 2-level hierarchical encoders with '
        'a hierarchical decoder only (as magenta.js)')
  family = config_lib.FAMILY_OF_KIND[window_kind]
  presets = config_lib.config_module(family).PRESETS
  preset = HIER_PRESET if encoder == 'hier' and HIER_PRESET in presets else 'magenta'
  name = f'magenta.js {spec.converter} ({window_kind}'
  name += f', {spec.num_segments} segments)' if spec.num_segments else ')'
  return Structure(name, family, preset, window_kind, encoder, 'hier' if conductor else 'flat',
                   prefixes, spec.num_segments)


def is_tfjs(path: str) -> bool:
  """Whether `path` is (meant as) a magenta.js checkpoint folder: its weights_manifest.json, or
  a folder with one or with a config.json (a folder missing its manifest is then reported as
  such)."""
  path = os.fspath(path)
  if os.path.basename(path) == tfjs_checkpoint.MANIFEST:
    return True
  return os.path.isdir(path) and any(
      os.path.isfile(os.path.join(path, f)) for f in (tfjs_checkpoint.MANIFEST,
                                                      tfjs_checkpoint.CONFIG))


def _check_named(named: Structure, found: Structure, source: str) -> Structure:
  """`--config` given for a magenta.js checkpoint: it must describe what config.json and the
  variables do; its preset is then used."""
  mine = (named.kind, named.encoder, named.decoder, named.num_segments)
  theirs = (found.kind, found.encoder, found.decoder, found.num_segments)
  if mine != theirs:
    raise ImportMismatchError(f'{source}: --config {named.name} is a model of {named.describe()}; '
                              f'the checkpoint (config.json and variables) has {found.describe()}')
  return dataclasses.replace(named, name=f'{named.name}, {found.name}')


# ----------------------------------------------------------------------------- the command

@dataclasses.dataclass(frozen=True)
class Imported:
  """What `import_checkpoint` wrote."""
  config: Any
  step: int
  structure: Structure
  source_format: str  # 'TensorFlow' | 'magenta.js'


def import_checkpoint(checkpoint: str, config_name: str | None, workdir: str, *,
                      verify: bool = True) -> Imported:
  """Converts `checkpoint` and writes the run directory `workdir`.

  Args:
    checkpoint: a TensorFlow checkpoint (prefix, directory or .tar) or a magenta.js folder.
    config_name: one of `CONFIGS`; required for TensorFlow, optional for magenta.js (checked
      against its config.json and variables).
    workdir: the new run directory; nothing is written unless the whole import succeeds.
    verify: check every TensorFlow tensor's crc32c (about 10 s per GB).
  Raises:
    tf_checkpoint.CheckpointError, tfjs_checkpoint.TfjsCheckpointError: unreadable checkpoint.
    ImportMismatchError: variables that do not fit the structure (or no structure we have).
    ValueError: unknown or missing config name, or a workdir that already holds checkpoints.
  """
  if config_name is not None and config_name not in CONFIGS:
    raise ValueError(f'unknown --config {config_name!r}; choose one of {sorted(CONFIGS)}')
  workdir = os.path.abspath(workdir)
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  if os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
    raise ValueError(f'{workdir} already holds checkpoints; import into a new --workdir')
  if is_tfjs(checkpoint):
    folder = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint) or '.'
    variables, spec, layout = tfjs_checkpoint.read_magenta_js(folder)
    structure = tfjs_structure(spec, layout, folder)
    if config_name is not None:
      structure = _check_named(CONFIGS[config_name], structure, folder)
    fmt, source = 'magenta.js', os.path.join(folder, tfjs_checkpoint.MANIFEST)
  else:
    if config_name is None:
      raise ValueError(f'{checkpoint} is a TensorFlow checkpoint (no '
                       f'{tfjs_checkpoint.MANIFEST}): --config must name its config, one of '
                       f'{", ".join(sorted(CONFIGS))}')
    variables = tf_checkpoint.read_checkpoint(checkpoint, verify=verify, skip_optimizer=True)
    structure, fmt, source = CONFIGS[config_name], 'TensorFlow', checkpoint
  config, params, step = convert(variables, structure, source)
  params = jax.tree.map(jnp.asarray, params)
  optimizer = run_lib.create_optimizer(config)
  state = run_lib.TrainState(step=jnp.asarray(step, jnp.int32), params=params,
                             opt_state=optimizer.init(params))
  run_lib.write_config(config, workdir)
  mgr = checkpoints.manager(workdir, keep=config.train.keep_checkpoints, async_save=False)
  checkpoints.save(mgr, step, state, {'next_batch': step})
  mgr.wait_until_finished()
  mgr.close()
  return Imported(config, step, structure, fmt)


def summary(imported: Imported, workdir: str) -> str:
  """The command's one line: what was imported, its sizes, where."""
  m = imported.config.model
  sizes = f'enc {list(m.enc_sizes)}, z {m.z_size}, dec {list(m.dec_sizes)}'
  if m.decoder == 'hier':
    sizes += f', conductor {list(m.conductor_sizes)}'
  s = imported.structure
  return (f'imported {s.name} ({sizes}) at step {imported.step} into '
          f'{os.path.abspath(workdir)}: {s.describe()}, from a {imported.source_format} checkpoint')


FLAGS = flags.FLAGS


def define_flags(fv: flags.FlagValues = FLAGS) -> None:
  """`--config` here is a released config name (`mvae_jax.train`'s is a config file)."""
  flags.DEFINE_string('checkpoint', None, 'Magenta checkpoint: TensorFlow prefix, directory or '
                      '.tar, or a magenta.js folder (weights_manifest.json + shards + '
                      'config.json).', flag_values=fv)
  flags.DEFINE_enum('config', None, sorted(CONFIGS), 'The released config it was trained with '
                    '(required for TensorFlow checkpoints; magenta.js ones say it in '
                    'config.json).', flag_values=fv)
  flags.DEFINE_string('workdir', None, 'New run directory to write.', flag_values=fv)
  flags.DEFINE_bool('verify', True, "Check every tensor's crc32c (TensorFlow; about 10 s per "
                    'GB).', flag_values=fv)


def main(argv):
  if len(argv) > 1:
    return cli.error(f'unexpected arguments {list(argv[1:])}', cli.EXIT_USAGE)
  if not (FLAGS.checkpoint and FLAGS.workdir):
    return cli.error('usage: python -m mvae_jax.import_magenta --checkpoint=PATH [--config=NAME] '
                     '--workdir=RUN  (--config is required for a TensorFlow checkpoint)',
                     cli.EXIT_USAGE)
  if FLAGS.config is None and not is_tfjs(FLAGS.checkpoint):
    if os.path.exists(FLAGS.checkpoint) or os.path.exists(FLAGS.checkpoint + '.index'):
      return cli.error(f'{FLAGS.checkpoint} is a TensorFlow checkpoint: --config is required '
                       f'(one of {", ".join(sorted(CONFIGS))})', cli.EXIT_USAGE)
    return cli.error(f'{FLAGS.checkpoint}: no such checkpoint (a magenta.js folder with '
                     f'{tfjs_checkpoint.MANIFEST}, or a TensorFlow checkpoint with --config)')
  # Library logging to a file in the temp dir: the import writes only config.json and the checkpoint.
  console.setup(None, 'import_magenta')
  try:
    imported = import_checkpoint(FLAGS.checkpoint, FLAGS.config, FLAGS.workdir,
                                 verify=FLAGS.verify)
  except (tf_checkpoint.CheckpointError, ImportMismatchError, ValueError) as e:
    return cli.error(cli.one_line(e))
  print(summary(imported, FLAGS.workdir))
  return 0


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.cli_flags_parser)  # a mistyped --config: one line, exit 2
