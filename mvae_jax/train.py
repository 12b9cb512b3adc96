r"""Training: `python -m mvae_jax.train --config=configs/melody2.py:small --workdir=runs/mel2`.

All the work is in `train_and_evaluate(config, workdir)`. One code path serves 1 CPU, every GPU or
TPU core of a host, and many hosts: the step is `jax.jit` over a 1-D device mesh with the batch
sharded on the `data` axis and the state replicated. A run directory holds `config.json`,
`checkpoints/` (Orbax), `tensorboard/` and `metrics.jsonl`; starting again on the same directory
resumes from its latest checkpoint, data position included.
"""
from __future__ import annotations

import functools
import json
import os
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, flags, logging
from ml_collections import config_flags

from mvae_jax import checkpoints, config_lib, input_pipeline, losses, metrics, parallel, schedules
from mvae_jax.logs import MetricWriter
from mvae_jax.models import MusicVAE


@flax.struct.dataclass
class TrainState:
  step: jax.Array      # int32 scalar: completed optimizer steps
  params: Any
  opt_state: Any


class NonFiniteLossError(FloatingPointError):
  pass


def create_model(model_cfg: ml_collections.ConfigDict) -> MusicVAE:
  return MusicVAE(**config_lib.model_kwargs(model_cfg))


def create_optimizer(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  return schedules.make_optimizer(
      learning_rate=cfg.optim.learning_rate, min_learning_rate=cfg.optim.min_learning_rate,
      decay_rate=cfg.optim.decay_rate, grad_clip=cfg.optim.grad_clip,
      clip_to_zero_norm=cfg.optim.clip_to_zero_norm)


def init_state(rng: jax.Array, *, model: MusicVAE, optimizer: optax.GradientTransformation,
               shape: tuple[int, ...]) -> TrainState:
  """Fresh parameters for token batches of `shape` = [batch, time, parts]."""
  k_params, k_z, k_sample = jax.random.split(rng, 3)
  tokens = jnp.zeros(shape, jnp.int32)
  params = model.init({'params': k_params, 'z': k_z, 'sample': k_sample}, tokens)['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))


def _schedule_values(step: jax.Array, cfg: ml_collections.ConfigDict) -> tuple[Any, jax.Array]:
  """(sampling probability, beta) at `step`. Without scheduled sampling p is the Python float 0.0,
  which lets the decoder take its teacher-forced path."""
  if cfg.train.scheduled_sampling:
    p = schedules.sampling_probability(step, rate=cfg.train.ss_rate)
  else:
    p = 0.0
  beta = schedules.beta(step, max_beta=cfg.loss.max_beta, rate=cfg.loss.beta_rate)
  return p, beta


def loss_fn(params: Any, tokens: jax.Array, step: jax.Array, rng: jax.Array, *, model: MusicVAE,
            cfg: ml_collections.ConfigDict) -> tuple[jax.Array, dict[str, jax.Array]]:
  p, beta = _schedule_values(step, cfg)
  k_z, k_sample = jax.random.split(rng)
  logits, aux = model.apply({'params': params}, tokens, p_sample=p,
                            rngs={'z': k_z, 'sample': k_sample})
  loss, m = losses.vae_loss(logits, tokens, None, aux.get('mu'), aux.get('sigma'),
                            beta=beta, free_bits=cfg.loss.free_bits)
  counts = metrics.accuracy_counts(logits, tokens)
  m = dict(m, accuracy=counts['correct'].sum() / counts['total'].sum(),
           p_sample=jnp.asarray(p, jnp.float32))
  return loss, m


def train_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array, *,
               model: MusicVAE, optimizer: optax.GradientTransformation,
               cfg: ml_collections.ConfigDict) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on a global batch. The RNG is `fold_in(rng, step)`, never carried."""
  step_rng = jax.random.fold_in(rng, state.step)
  grad_fn = jax.value_and_grad(functools.partial(loss_fn, model=model, cfg=cfg), has_aux=True)
  (_, m), grads = grad_fn(state.params, batch['tokens'], state.step, step_rng)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  m = dict(m, grad_norm=optax.tree.norm(grads),
           learning_rate=schedules.learning_rate_schedule(
               cfg.optim.learning_rate, cfg.optim.min_learning_rate, cfg.optim.decay_rate)(state.step))
  return TrainState(step=state.step + 1, params=params, opt_state=opt_state), m


def eval_step(params: Any, batch: dict[str, jax.Array], rng: jax.Array, *, model: MusicVAE,
              cfg: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """Weighted sums over a batch, teacher forced, z drawn from q(z|x): add them up, then divide."""
  tokens, w = batch['tokens'], batch['weights']
  lengths = jnp.where(w > 0, tokens.shape[1], 0).astype(jnp.int32)  # padding rows count nothing
  k_z, k_sample = jax.random.split(rng)
  logits, aux = model.apply({'params': params}, tokens, p_sample=0.0,
                            rngs={'z': k_z, 'sample': k_sample})
  recon = losses.reconstruction_loss(logits, tokens, lengths)
  if aux.get('mu') is not None:
    kl = losses.kl_divergence(aux['mu'], aux['sigma'])
  else:
    kl = jnp.zeros_like(recon)
  counts = metrics.accuracy_counts(logits, tokens, lengths)
  return {'recon': recon.sum(), 'kl': (kl * w).sum(), 'examples': w.sum(),
          'correct': counts['correct'].sum(), 'steps': counts['total'].sum()}


def evaluate(params: Any, source: Any, *, model: MusicVAE, cfg: ml_collections.ConfigDict,
             mesh: Any, rng: jax.Array, p_eval_step: Any = None) -> dict[str, float]:
  """Loss, KL and next-step accuracy on (the first `eval.num_batches` batches of) the eval split."""
  if p_eval_step is None:
    p_eval_step = jax.jit(functools.partial(eval_step, model=model, cfg=cfg))
  total = None
  for i, local in enumerate(input_pipeline.eval_batches(
      source, global_batch=cfg.eval.batch_size, num_batches=cfg.eval.num_batches)):
    sums = p_eval_step(params, parallel.global_batch_array(local, mesh), jax.random.fold_in(rng, i))
    total = sums if total is None else jax.tree.map(jnp.add, total, sums)
  total = jax.device_get(total)
  n = float(total['examples'])
  return {'eval/loss/recon': total['recon'] / n, 'eval/loss/kl': total['kl'] / n,
          'eval/accuracy': total['correct'] / total['steps'], 'eval/examples': n}


def write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes `config.json`; refuses a run directory made with a different model or data."""
  path = os.path.join(workdir, 'config.json')
  if os.path.exists(path):
    old = config_lib.load_config(workdir)
    for section in ('model', 'data'):
      a, b = config_lib.as_plain(old[section]), config_lib.as_plain(config[section])
      if a != b:
        diff = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
        raise ValueError(f'{workdir} holds a run with a different config.{section}: {diff} '
                         '(saved, requested); use a new --workdir')
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(path + '.tmp', 'w') as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True))
    os.replace(path + '.tmp', path)


def _check_finite(step: int, m: dict[str, Any]) -> None:
  loss = float(m['loss'])
  if not np.isfinite(loss):
    raise NonFiniteLossError(
        f'loss is {loss} at step {step} (recon {float(m["recon"])}, kl {float(m["kl"])}); '
        'stopping. Lower the learning rate or check the data.')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains `config` in `workdir` (resuming from its latest checkpoint) and returns the last
  train and eval metrics."""
  workdir = os.path.abspath(workdir)
  write_config(config, workdir)
  mesh = parallel.make_mesh()
  parallel.check_batch(config.train.batch_size, mesh)
  parallel.check_batch(config.eval.batch_size, mesh)
  model = create_model(config.model)
  optimizer = create_optimizer(config)
  time_steps = config_lib.time_steps(config.data.kind)
  shape = (1, time_steps, len(config.model.part_vocab))

  rng = jax.random.PRNGKey(config.train.seed)
  init_rng, train_rng, eval_rng = jax.random.split(rng, 3)
  repl, data_sh = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  init_fn = jax.jit(functools.partial(init_state, model=model, optimizer=optimizer, shape=shape),
                    out_shardings=repl)

  mgr = checkpoints.manager(workdir, keep=config.train.keep_checkpoints)
  abstract = checkpoints.abstract_like(jax.eval_shape(init_fn, init_rng), repl)
  restored = checkpoints.restore(mgr, abstract)
  if restored is None:
    state, start = init_fn(init_rng), 0
    if config.train.init_from:
      params = init_params_from(config.train.init_from, state.params, config.model)
      state = jax.jit(lambda p: TrainState(step=jnp.zeros((), jnp.int32), params=p,
                                           opt_state=optimizer.init(p)),
                      out_shardings=repl)(jax.device_put(params, repl))
      logging.info('initialised %s from the parameters of %s', workdir, config.train.init_from)
    else:
      logging.info('initialised a new model in %s', workdir)
  else:
    state, position, start = restored
    start = int(position.get('next_batch', start))
    logging.info('resumed %s from step %d', workdir, start)
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))

  train_source = input_pipeline.get_source(config.data, 'train')
  eval_source = input_pipeline.get_source(config.data, 'eval')
  augment = None
  if config.data.augment:
    augment = input_pipeline.Augment(tuple(config.model.part_vocab),
                                     tuple(config.model.part_is_drums),
                                     config.data.shift_min, config.data.shift_max)
  train_ds = input_pipeline.train_dataset(train_source, global_batch=config.train.batch_size,
                                          seed=config.train.seed, augment=augment)
  batches = input_pipeline.train_iterator(train_ds, start)

  p_train_step = jax.jit(
      functools.partial(train_step, model=model, optimizer=optimizer, cfg=config),
      in_shardings=(repl, data_sh, repl), out_shardings=(repl, repl), donate_argnums=0)
  p_eval_step = jax.jit(functools.partial(eval_step, model=model, cfg=config),
                        in_shardings=(repl, data_sh, repl), out_shardings=repl)

  writer = MetricWriter(workdir, config.train.num_steps)
  if start == 0 and jax.process_index() == 0:
    print(f'{config.family}:{config.preset} | {n_params:,} parameters | {len(train_source):,} train '
          f'/ {len(eval_source):,} eval windows | {mesh.devices.size} devices | '
          f'global batch {config.train.batch_size}', flush=True)
  last_train: dict[str, float] = {}
  last_eval: dict[str, float] = {}
  pending = None  # (step, metrics) of the previous step: checked while the next one runs
  t_start = time.time()
  for step in range(start, config.train.num_steps):
    batch = parallel.global_batch_array(next(batches), mesh)
    state, m = p_train_step(state, batch, train_rng)
    if pending is not None:
      _check_finite(*pending)
    pending = (step, m)
    done = step + 1
    if done % config.train.log_every_steps == 0 or done == config.train.num_steps:
      host = {k: float(v) for k, v in jax.device_get(m).items()}
      _check_finite(step, host)
      last_train = {f'train/{_metric_name(k)}': v for k, v in host.items()}
      writer.write(done, last_train)
      writer.console(done, {k: last_train[k] for k in
                            ('train/loss', 'train/loss/recon', 'train/loss/kl', 'train/accuracy')})
    if done % config.eval.every_steps == 0 or done == config.train.num_steps:
      last_eval = evaluate(state.params, eval_source, model=model, cfg=config, mesh=mesh,
                           rng=jax.random.fold_in(eval_rng, done), p_eval_step=p_eval_step)
      writer.write(done, last_eval)
      writer.console(done, {k: v for k, v in last_eval.items() if k != 'eval/examples'}, 'eval')
    if done % config.train.checkpoint_every_steps == 0 or done == config.train.num_steps:
      checkpoints.save(mgr, done, state, {'next_batch': done})
  if pending is not None:
    _check_finite(*pending)
  mgr.wait_until_finished()
  mgr.close()
  writer.close()
  if jax.process_index() == 0 and start < config.train.num_steps:
    print(f'trained steps {start}..{config.train.num_steps} in {time.time() - t_start:.1f}s; '
          f'checkpoints in {os.path.join(workdir, "checkpoints")}', flush=True)
  return {**last_train, **last_eval}


def load_run(workdir: str, step: int | None = None
             ) -> tuple[ml_collections.ConfigDict, MusicVAE, Any, int]:
  """(config, model, params, step) of a run directory's latest (or given) checkpoint.

  Raises FileNotFoundError naming the directory when it has no config or no checkpoint.
  """
  workdir = os.path.abspath(workdir)
  config = config_lib.load_config(workdir)
  model = create_model(config.model)
  optimizer = create_optimizer(config)
  shape = (1, config_lib.time_steps(config.data.kind), len(config.model.part_vocab))
  mesh = parallel.make_mesh()
  init_fn = functools.partial(init_state, model=model, optimizer=optimizer, shape=shape)
  abstract = checkpoints.abstract_like(jax.eval_shape(init_fn, jax.random.PRNGKey(0)),
                                       parallel.replicated(mesh))
  if not os.path.isdir(os.path.join(workdir, 'checkpoints')):
    raise FileNotFoundError(f'{workdir} has no checkpoints/ directory: train it first')
  mgr = checkpoints.manager(workdir, read_only=True, async_save=False)
  try:
    restored = checkpoints.restore(mgr, abstract, step)
  finally:
    mgr.close()
  if restored is None:
    raise FileNotFoundError(f'{workdir}/checkpoints holds no checkpoint: train it first')
  state, _, step = restored
  return config, model, state.params, step


def init_params_from(run: str, like: Any, expect_model: Any = None) -> Any:
  """The latest parameters of run directory `run`, checked against the tree of `like`.

  Fine-tuning (`config.train.init_from`): the new run starts from these parameters with a fresh
  optimizer state at step 0; the rest of `run` (its optimizer state, step, data position) is not
  used. Raises ValueError (one line) when a parameter is missing, extra or of another shape,
  or when `expect_model` (this run's config.model) reads the parameters differently
  (`forget_bias`, `sigma_param`).
  """
  try:
    source_config, _, params, _ = load_run(run)
  except FileNotFoundError as e:
    raise FileNotFoundError(f'config.train.init_from={run}: {e}') from e
  if expect_model is not None:
    # Fields that change what the parameters mean without changing their shapes.
    for field in ('forget_bias', 'sigma_param'):
      have_v = source_config.model.get(field, MusicVAE.__dataclass_fields__[field].default)
      want_v = expect_model.get(field, MusicVAE.__dataclass_fields__[field].default)
      if have_v != want_v:
        raise ValueError(f'config.train.init_from={run}: its model.{field} is {have_v!r}, this '
                         f'config has {want_v!r}; set --config.model.{field}={have_v}')
  want = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(like)}
  have = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(params)}
  for key in sorted(set(want) | set(have)):
    if want.get(key) != have.get(key):
      raise ValueError(
          f'config.train.init_from={run}: parameter {key} has shape '
          f'{have.get(key, "(absent)")} there, this config expects {want.get(key, "(absent)")}; '
          'the model section must describe the same architecture')
  return params


def _metric_name(key: str) -> str:
  """Loss parts under loss/ (train/loss/kl); the total stays train/loss."""
  return f'loss/{key}' if key in ('recon', 'kl', 'kl_cost') else key


FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file, e.g. configs/melody2.py:small',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Run directory (created; resumed when it has checkpoints).')


def main(argv):
  del argv
  parallel.maybe_initialize_distributed()
  if FLAGS.config is None or FLAGS.workdir is None:
    raise app.UsageError('--config and --workdir are required')
  train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == '__main__':
  app.run(main)
