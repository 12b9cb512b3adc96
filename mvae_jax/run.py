"""A run directory: its config, its model, its state; written once, loaded by every command.

Layout: `<workdir>/config.json` (the resolved config), `dataset.json` (the dataset it trains on),
`checkpoints/<step>/` (Orbax, with our checksums, see `checkpoints`), `metrics.jsonl`, `tensorboard/`, logs, `eval_<step>.json`,
`samples/`. Made by `mvae_jax.train` or `mvae_jax.import_magenta`.

- `create_model`, `create_optimizer`, `init_state`: what a config makes.
- `write_config` / `load_config` / `check_config_fits`: `config.json`; `load_dataset_record`:
  `dataset.json`, the dataset (for a MIDI folder, its fingerprint) the run trains on.
- `load(workdir, step=None) -> Run`: the one way to open a trained run (eval, generate, `Model`,
  fine-tuning's `init_from`, the experiments): the newest healthy checkpoint (a damaged newer one
  is reported in one line and skipped) or exactly `step`, checked against config.json's model.
- `start_state`: what training starts from: the newest healthy checkpoint (damaged newer ones
  set aside), else fresh parameters or those of `train.init_from`.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging

from data_pipelines import kinds
from mvae_jax import checkpoints, config_lib, optimizer, parallel
from mvae_jax.models import MusicVAE


@flax.struct.dataclass
class TrainState:
  step: jax.Array      # int32 scalar: completed optimizer steps
  params: Any
  opt_state: Any


class CheckpointMismatchError(ValueError):
  """A checkpoint whose parameters do not fit the model its run's config.json describes."""


def create_model(model_cfg: ml_collections.ConfigDict) -> MusicVAE:
  """`config.model` is exactly the constructor's keyword arguments."""
  return MusicVAE(**config_lib.as_plain(model_cfg))


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  return optimizer.from_config(config)


def input_shape(config: ml_collections.ConfigDict, batch: int = 1) -> tuple[int, int, int]:
  """[batch, time, parts] of the run's token batches."""
  return (batch, kinds.time_steps(config.data.kind), len(config.model.part_vocab))


def init_state(rng: jax.Array, *, model: MusicVAE, optimizer: optax.GradientTransformation,
               shape: tuple[int, ...]) -> TrainState:
  """Fresh parameters for token batches of `shape` = [batch, time, parts]."""
  k_params, k_z, k_sample = jax.random.split(rng, 3)
  tokens = jnp.zeros(shape, jnp.int32)
  params = model.init({'params': k_params, 'z': k_z, 'sample': k_sample}, tokens)['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))


def abstract_params(model: MusicVAE, config: ml_collections.ConfigDict) -> Any:
  """The parameter tree's shapes and dtypes (nothing computed)."""
  return jax.eval_shape(lambda: model.init(
      {'params': jax.random.PRNGKey(0), 'z': jax.random.PRNGKey(1),
       'sample': jax.random.PRNGKey(2)}, jnp.zeros(input_shape(config), jnp.int32)))['params']


# ----------------------------------------------------------------------------- config.json

def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a run directory was trained with (`<workdir>/config.json`), locked."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: {workdir} is not a mvae_jax run directory')
  with open(path) as f:
    raw = json.load(f)
  # A run written before a field existed gets the field's default, which is what it ran with
  # (e.g. model.forget_bias), so it still loads and resumes.
  for section, fields in config_lib.base_config().items():
    if isinstance(fields, ml_collections.ConfigDict) and isinstance(raw.get(section), dict):
      for key, value in fields.items():
        raw[section].setdefault(key, value)
  return ml_collections.ConfigDict(config_lib.as_plain(raw)).lock()


def check_config_fits(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses (ConfigError) a run directory whose `config.json` has a different model or data."""
  if not os.path.exists(os.path.join(workdir, 'config.json')):
    return
  old = load_config(workdir)
  for section in ('model', 'data'):
    a, b = config_lib.as_plain(old[section]), config_lib.as_plain(config[section])
    if section == 'data':  # how many processes build a missing dataset changes no window
      a, b = ({k: v for k, v in d.items() if k != 'workers'} for d in (a, b))
    if a != b:
      diff = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
      raise config_lib.ConfigError(f'{workdir} holds a run with a different config.{section}: '
                                   f'{diff} (saved, requested); use a new --workdir')


def write_config(config: ml_collections.ConfigDict, workdir: str,
                 dataset: dict[str, Any] | None = None) -> None:
  """Writes `config.json` (checked by `check_config_fits` first) and, when given and not yet
  recorded, `dataset.json`: which dataset the run trains on (`input_pipeline.Dataset.record`;
  for a MIDI folder, its fingerprint). A resumed run keeps the record of its first start."""
  check_config_fits(config, workdir)
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    _write_json(os.path.join(workdir, 'config.json'),
                config.to_json_best_effort(indent=2, sort_keys=True))
    if dataset is not None and load_dataset_record(workdir) is None:
      _write_json(os.path.join(workdir, DATASET_RECORD), json.dumps(dataset, indent=2))


DATASET_RECORD = 'dataset.json'


def load_dataset_record(workdir: str) -> dict[str, Any] | None:
  """The run's `dataset.json` ({'source', 'kind', 'mode', 'dataset_dir', 'fingerprint', ...}),
  or None for a new run or one trained before runs recorded it."""
  path = os.path.join(workdir, DATASET_RECORD)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _write_json(path: str, text: str) -> None:
  """Writes `text` to `path` through a temporary file that never stays behind (a full disk
  included)."""
  try:
    with open(path + '.tmp', 'w') as f:
      f.write(text)
    os.replace(path + '.tmp', path)
  except BaseException:
    try:
      os.remove(path + '.tmp')
    except OSError:
      pass
    raise


# ----------------------------------------------------------------------------- loading

@dataclasses.dataclass
class Run:
  """A trained run, loaded: what eval, generate and `Model` work on."""
  config: ml_collections.ConfigDict
  model: MusicVAE
  params: Any
  step: int
  workdir: str


def _shape_tree(tree: Any) -> dict[str, tuple[int, ...]]:
  """{'encoder/fwd_0/kernel': shape, ...} of a nested dict of arrays / array metadata."""
  out = {}

  def visit(node, prefix):
    if isinstance(node, dict) or hasattr(node, 'items') and not hasattr(node, 'shape'):
      for k, v in node.items():
        visit(v, f'{prefix}/{k}' if prefix else str(k))
    else:
      out[prefix] = tuple(getattr(node, 'shape', ()) or ())
  visit(tree, '')
  return out


def _stored_param_shapes(workdir: str, step: int) -> dict[str, tuple[int, ...]] | None:
  """Parameter shapes saved in a checkpoint (from Orbax metadata, nothing loaded), or None
  when the metadata cannot be read."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  path = os.path.join(workdir, 'checkpoints', str(step), 'state')
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      meta = checkpointer.metadata(path)
  except Exception:  # pylint: disable=broad-except
    return None
  tree = getattr(meta, 'item_metadata', meta)
  tree = getattr(tree, 'tree', tree)
  params = tree.get('params') if hasattr(tree, 'get') else None
  return None if params is None else _shape_tree(params)


def _mismatch_message(workdir, step, want, have) -> str:
  lines = []
  for k in sorted(set(want) | set(have)):
    if want.get(k) != have.get(k):
      lines.append(f'  {k}: config.json {want.get(k, "(absent)")}, checkpoint '
                   f'{have.get(k, "(absent)")}')
  shown = '\n'.join(lines[:8]) + (f'\n  ... and {len(lines) - 8} more' if len(lines) > 8 else '')
  return (f'the checkpoint {workdir}/checkpoints/{step} does not match the model in '
          f'{workdir}/config.json (was config.json changed or copied from another run?). '
          f'Parameter shapes that differ:\n{shown}')


def _abstract_state(config: ml_collections.ConfigDict, model: MusicVAE, sharding: Any) -> Any:
  init_fn = functools.partial(init_state, model=model, optimizer=create_optimizer(config),
                              shape=input_shape(config))
  return checkpoints.abstract_like(jax.eval_shape(init_fn, jax.random.PRNGKey(0)), sharding)


def load(workdir: str, step: int | None = None) -> Run:
  """The run in `workdir` at its newest healthy checkpoint (or exactly `step`).

  Raises:
    FileNotFoundError: no config.json, no checkpoint, or no checkpoint for `step`.
    checkpoints.DamagedCheckpointError: `step` (or every checkpoint) fails its checksums, cannot
      be restored or holds non-finite values. Without `step`, a damaged newest checkpoint is
      reported on stderr in one line and the newest healthy one is used.
    CheckpointMismatchError: the checkpoint's parameters do not have the shapes that
      config.json's model section gives (e.g. a config.json edited or copied from another run).
  """
  workdir = os.path.abspath(workdir)
  config = load_config(workdir)  # FileNotFoundError with a clear message
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  steps = []
  if os.path.isdir(ckpt_dir):
    steps = sorted(int(d) for d in os.listdir(ckpt_dir) if d.isdigit())
  if not steps:
    raise FileNotFoundError(f'{workdir} holds no checkpoint (nothing in {ckpt_dir}): train it '
                            'first with python -m mvae_jax.train')
  if step is not None and step not in steps:
    raise FileNotFoundError(f'{workdir} has no checkpoint for step {step}; available: {steps}')
  try:
    model = create_model(config.model)
    want = _shape_tree(abstract_params(model, config))
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointMismatchError(f'{workdir}/config.json does not describe a valid model: '
                                  f'{type(e).__name__}: {e}') from e
  newest = steps[-1] if step is None else step
  have = _stored_param_shapes(workdir, newest)
  if have is not None and have != want:
    raise CheckpointMismatchError(_mismatch_message(workdir, newest, want, have))
  mgr = checkpoints.manager(workdir, read_only=True, async_save=False)
  try:
    abstract = _abstract_state(config, model, parallel.replicated(parallel.make_mesh()))
    restored = checkpoints.restore_good(mgr, abstract, step)
  except (FileNotFoundError, checkpoints.DamagedCheckpointError):
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointMismatchError(
        f'{workdir}/checkpoints/{newest} cannot be restored for the model in '
        f'{workdir}/config.json (did the config change after training?): '
        f'{type(e).__name__}: {str(e)[:500]}') from e
  finally:
    mgr.close()
  if restored is None:
    raise FileNotFoundError(f'{workdir}/checkpoints holds no checkpoint: train it first')
  return Run(config=config, model=model, params=restored.state.params, step=int(restored.step),
             workdir=workdir)


def _encoder_segments(model_cfg: Any) -> int | None:
  """Level-0 segments of a hierarchical encoder (None for a flat one): same shapes for any
  count, so a fine-tune must keep it."""
  if model_cfg.get('encoder', 'flat') != 'hier':
    return None
  return model_cfg.get('enc_segments') or model_cfg.get('num_segments')


def init_params_from(run: str, like: Any, expect_model: Any = None) -> Any:
  """The latest parameters of run directory `run`, checked against the tree of `like`.

  Fine-tuning (`config.train.init_from`): the new run starts from these parameters with a fresh
  optimizer state at step 0; the rest of `run` (its optimizer state, step, data position) is not
  used. Raises ValueError (one line) when a parameter is missing, extra or of another shape,
  or when `expect_model` (this run's config.model) reads the parameters differently
  (`forget_bias`, `sigma_param`, a hierarchical encoder's segments).
  """
  try:
    source = load(run)
  except FileNotFoundError as e:
    raise FileNotFoundError(f'config.train.init_from={run}: {e}') from e
  if expect_model is not None:
    # Fields that change what the parameters mean without changing their shapes.
    for field in ('forget_bias', 'sigma_param'):
      have_v = source.config.model.get(field, MusicVAE.__dataclass_fields__[field].default)
      want_v = expect_model.get(field, MusicVAE.__dataclass_fields__[field].default)
      if have_v != want_v:
        raise ValueError(f'config.train.init_from={run}: its model.{field} is {have_v!r}, this '
                         f'config has {want_v!r}; set --config.model.{field}={have_v}')
    have_s, want_s = _encoder_segments(source.config.model), _encoder_segments(expect_model)
    if have_s != want_s and None not in (have_s, want_s):
      raise ValueError(f'config.train.init_from={run}: its hierarchical encoder reads {have_s} '
                       f'segments, this config\'s {want_s}; set --config.model.enc_segments='
                       f'{have_s}')
  want = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(like)}
  have = {jax.tree_util.keystr(k): v.shape
          for k, v in jax.tree_util.tree_leaves_with_path(source.params)}
  for key in sorted(set(want) | set(have)):
    if want.get(key) != have.get(key):
      raise ValueError(
          f'config.train.init_from={run}: parameter {key} has shape '
          f'{have.get(key, "(absent)")} there, this config expects {want.get(key, "(absent)")}; '
          'the model section must describe the same architecture')
  return source.params


# ----------------------------------------------------------------------------- training

def start_state(config: ml_collections.ConfigDict, workdir: str, mesh: Any, init_rng: jax.Array
                ) -> tuple[Any, TrainState, int, bool]:
  """(checkpoint manager, state, first step, verified) that training starts from.

  The newest healthy sealed checkpoint of `workdir` (newer steps that are damaged or unsealed are
  reported and moved to `checkpoints.damaged/`, out of the way of retention and new saves; the
  run then trains those steps again, exactly); without one, fresh parameters, or those of
  `config.train.init_from` with a fresh optimizer state at step 0. `verified` is False when the
  state comes from a checkpoint without checksums (no sealed one was healthy).
  """
  model, optim = create_model(config.model), create_optimizer(config)
  repl = parallel.replicated(mesh)
  init_fn = jax.jit(functools.partial(init_state, model=model, optimizer=optim,
                                      shape=input_shape(config)), out_shardings=repl)
  keep = config.train.keep_checkpoints
  mgr = checkpoints.manager(workdir, keep=keep)
  try:
    return _restore_or_init(config, workdir, mgr, init_fn, init_rng, optim, repl)
  except BaseException:
    mgr.close()
    raise


def _restore_or_init(config, workdir, mgr, init_fn, init_rng, optim, repl):
  abstract = checkpoints.abstract_like(jax.eval_shape(init_fn, init_rng), repl)
  restored = checkpoints.restore_good(mgr, abstract)
  if restored is not None and restored.skipped:
    mgr.close()
    if jax.process_count() > 1:  # every process has checked them before any is moved
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      multihost_utils.sync_global_devices('damaged checkpoints found')
    checkpoints.set_aside(workdir, restored.skipped)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices('damaged checkpoints set aside')
    mgr = checkpoints.manager(workdir, keep=config.train.keep_checkpoints)
  if restored is not None:
    start = int(restored.data.get('next_batch', restored.step))
    logging.info('resumed %s from step %d', workdir, start)
    if jax.process_index() == 0 and start < config.train.num_steps:
      print(f'resuming {workdir} from step {start}', flush=True)
    return mgr, restored.state, start, restored.verified
  state = init_fn(init_rng)
  if config.train.init_from:
    params = init_params_from(config.train.init_from, state.params, config.model)
    state = jax.jit(lambda p: TrainState(step=jnp.zeros((), jnp.int32), params=p,
                                         opt_state=optim.init(p)),
                    out_shardings=repl)(jax.device_put(params, repl))
    logging.info('initialised %s from the parameters of %s', workdir, config.train.init_from)
  else:
    logging.info('initialised a new model in %s', workdir)
  return mgr, state, 0, True
