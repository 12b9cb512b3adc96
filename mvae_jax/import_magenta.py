r"""Imports a Magenta MusicVAE checkpoint into an ordinary mvae_jax run directory.

  python -m mvae_jax.import_magenta --checkpoint=cat-mel_2bar_big.tar --config=cat-mel_2bar_big \
      --workdir=runs/cat-mel_2bar_big

`--checkpoint` is a checkpoint prefix (`.../model.ckpt-12345`), a directory with a `checkpoint`
state file, or the `.tar` Magenta distributes; `--config` one of `CONFIGS`. The config name gives
the structure (window kind, flat or hierarchical decoder, the `magenta` preset it starts from);
every size (encoder and decoder layers, conductor, z) is read from the checkpoint's shapes, so a
checkpoint of the same structure at other sizes (one trained with Magenta's own trainer, say)
imports too. The run directory gets `config.json` and an Orbax checkpoint at the imported
global step, so `mvae_jax.eval`, `mvae_jax.generate`, `Model.load` and
`mvae_jax.train --config.train.init_from=RUN` (fine-tuning) work on it unchanged.

The weight mapping (docs/ARCHITECTURE.md, "Magenta checkpoints"): TensorFlow's fused LSTM
`kernel` [in + H, 4H] (rows [x ; h]) splits into our `input_kernel` / `recurrent_kernel` (same
gate order i, j, f, o); biases are copied unchanged, since the imported model adds the forget
bias at run time as Magenta does (`model.forget_bias=1.0`); the conductor's first layer has a
one-row input kernel that only ever multiplies a constant zero and is dropped. Optimiser slots
(`*/Adam`, `*/Adam_1`, `beta1_power`, `beta2_power`) are ignored. A variable that is missing,
unexpected or of the wrong shape is a one-line error naming it, the expected and the found shape.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from data_pipelines import console
from mvae_jax import checkpoints, cli, config_lib, tf_checkpoint
from mvae_jax import run as run_lib
from mvae_jax.models import default_part_names


class ImportMismatchError(ValueError):
  """The checkpoint's variables do not fit the named config's structure."""


@dataclasses.dataclass(frozen=True)
class Structure:
  """What a released config name fixes: where our preset lives and how its graph is laid out."""
  family: str           # configs/<family>.py
  preset: str           # its preset for this config
  decoder: str          # flat | hier
  core_prefixes: tuple[str, ...]  # TF scope of each part's (bottom) decoder


CONFIGS = {
    'cat-mel_2bar_small': Structure('melody2', 'magenta', 'flat', ('decoder',)),
    'cat-mel_2bar_big': Structure('melody2', 'magenta_big', 'flat', ('decoder',)),
    'cat-drums_2bar_small': Structure('drums2', 'magenta', 'flat', ('decoder',)),
    'cat-drums_2bar_big': Structure('drums2', 'magenta_big', 'flat', ('decoder',)),
    'hierdec-mel_16bar': Structure('melody16', 'magenta', 'hier', ('core_decoder/decoder',)),
    'hierdec-trio_16bar': Structure('trio16', 'magenta', 'hier', tuple(
        f'core_decoder/core_decoder_{p}/decoder' for p in range(3))),
}
CONDUCTOR = 'decoder/hierarchical_level_0'


def _enc_cell(k: int, direction: str) -> str:
  return f'encoder/cell_{k}/bidirectional_rnn/{direction}/multi_rnn_cell/cell_0/lstm_cell'


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


def model_sizes(v: _Variables, structure: Structure) -> dict[str, Any]:
  """`config.model` fields read from the checkpoint's shapes."""
  enc = v.layer_sizes(_enc_cell('{k}', 'fw'))
  z = v.vars.get('encoder/mu/bias')
  if z is None or z.ndim != 1:
    raise ImportMismatchError(f'{v.source}: variable encoder/mu/bias: expected shape [z], found '
                              f'{list(z.shape) if z is not None else "no such variable"}')
  sizes = {'enc_sizes': tuple(enc), 'z_size': int(z.shape[0]),
           'dec_sizes': v.layer_sizes(structure.core_prefixes[0]
                                      + '/multi_rnn_cell/cell_{k}/lstm_cell')}
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


def map_parameters(v: _Variables, structure: Structure, abstract: dict[str, Any],
                   part_names: tuple[str, ...]) -> dict[str, Any]:
  """Our parameter tree (numpy float32) from the checkpoint's variables."""
  enc = abstract['encoder']
  params = {'encoder': {'mu': _dense(v, 'encoder/mu', enc['mu']),
                        'sigma': _dense(v, 'encoder/sigma', enc['sigma'])}}
  for name, ours in enc.items():
    if name.startswith(('fwd_', 'bwd_')):
      k, direction = int(name[4:]), 'fw' if name.startswith('fwd') else 'bw'
      params['encoder'][name] = _lstm(v, _enc_cell(k, direction), ours)
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


def build_config(config_name: str, sizes: dict[str, Any]) -> Any:
  """The `magenta` preset of the config name, with the checkpoint's sizes."""
  structure = CONFIGS[config_name]
  config = config_lib.from_file(f'{structure.family}:{structure.preset}')
  with config.unlocked():
    for key, value in sizes.items():
      config.model[key] = value
    config.model.forget_bias = 1.0
    config.model.embedding_size = None
    config.preset = f'{structure.preset} (imported {config_name})'
  return config


def convert(variables: dict[str, np.ndarray], config_name: str,
            source: str = 'checkpoint') -> tuple[Any, dict[str, Any], int]:
  """(config, our parameter tree of numpy arrays, global step) from a checkpoint's variables.

  Args:
    variables: {TF name: array}, e.g. `tf_checkpoint.read_checkpoint(path)`; optimiser slots
      are ignored.
    config_name: one of `CONFIGS`.
    source: the checkpoint's path, for error messages.
  Raises:
    ImportMismatchError: a variable missing, unexpected or of the wrong shape (one line).
  """
  if config_name not in CONFIGS:
    raise ValueError(f'unknown --config {config_name!r}; choose one of {sorted(CONFIGS)}')
  structure = CONFIGS[config_name]
  v = _Variables(variables, config_name, source)
  config = build_config(config_name, model_sizes(v, structure))
  abstract = run_lib.abstract_params(run_lib.create_model(config.model), config)
  params = map_parameters(v, structure, abstract,
                          default_part_names(tuple(config.model.part_is_drums)))
  step = int(np.asarray(variables.get('global_step', 0)))
  return config, params, step


def import_checkpoint(checkpoint: str, config_name: str, workdir: str, *,
                      verify: bool = True) -> tuple[Any, int]:
  """Converts `checkpoint` and writes the run directory `workdir`; returns (config, step).
  `verify` checks every tensor's crc32c (about 10 s per GB).

  Raises:
    tf_checkpoint.CheckpointError: unreadable checkpoint.
    ImportMismatchError: variables that do not fit `config_name`.
    ValueError: unknown config name, or a workdir that already holds checkpoints.
  """
  if config_name not in CONFIGS:
    raise ValueError(f'unknown --config {config_name!r}; choose one of {sorted(CONFIGS)}')
  workdir = os.path.abspath(workdir)
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  if os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
    raise ValueError(f'{workdir} already holds checkpoints; import into a new --workdir')
  variables = tf_checkpoint.read_checkpoint(checkpoint, verify=verify, skip_optimizer=True)
  config, params, step = convert(variables, config_name, checkpoint)
  params = jax.tree.map(jnp.asarray, params)
  optimizer = run_lib.create_optimizer(config)
  state = run_lib.TrainState(step=jnp.asarray(step, jnp.int32), params=params,
                             opt_state=optimizer.init(params))
  run_lib.write_config(config, workdir)
  mgr = checkpoints.manager(workdir, keep=config.train.keep_checkpoints, async_save=False)
  checkpoints.save(mgr, step, state, {'next_batch': step})
  mgr.wait_until_finished()
  mgr.close()
  return config, step


FLAGS = flags.FLAGS


def define_flags(fv: flags.FlagValues = FLAGS) -> None:
  """`--config` here is a released config name (`mvae_jax.train`'s is a config file)."""
  flags.DEFINE_string('checkpoint', None, 'Magenta checkpoint: prefix, directory or .tar.',
                      flag_values=fv)
  flags.DEFINE_enum('config', None, sorted(CONFIGS), 'The released config it was trained with.',
                    flag_values=fv)
  flags.DEFINE_string('workdir', None, 'New run directory to write.', flag_values=fv)
  flags.DEFINE_bool('verify', True, "Check every tensor's crc32c (about 10 s per GB).",
                    flag_values=fv)


def main(argv):
  del argv
  if not (FLAGS.checkpoint and FLAGS.config and FLAGS.workdir):
    return cli.error('usage: python -m mvae_jax.import_magenta --checkpoint=PATH --config=NAME '
                     '--workdir=RUN', cli.EXIT_USAGE)
  # Library logging to a file in the temp dir: the import writes only config.json and the checkpoint.
  console.setup(None, 'import_magenta')
  try:
    config, step = import_checkpoint(FLAGS.checkpoint, FLAGS.config, FLAGS.workdir,
                                     verify=FLAGS.verify)
  except (tf_checkpoint.CheckpointError, ImportMismatchError, ValueError) as e:
    return cli.error(str(e))
  m = config.model
  sizes = f'enc {list(m.enc_sizes)}, z {m.z_size}, dec {list(m.dec_sizes)}'
  if m.decoder == 'hier':
    sizes += f', conductor {list(m.conductor_sizes)}'
  print(f'imported {FLAGS.config} ({sizes}) at step {step} into {os.path.abspath(FLAGS.workdir)}')
  return 0


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.cli_flags_parser)  # a mistyped --config: one line, exit 2
