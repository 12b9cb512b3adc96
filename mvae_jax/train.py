r"""Training: `python -m mvae_jax.train --config=configs/melody2.py:small --workdir=runs/mel2`.

All the work is in `train_and_evaluate(config, workdir)`. One code path serves 1 CPU, every GPU or
TPU core of a host, and many hosts: the step is `jax.jit` over a 1-D device mesh with the batch
sharded on the `data` axis and the state replicated. A run directory holds `config.json`,
`checkpoints/` (Orbax), `tensorboard/` and `metrics.jsonl`; starting again on the same directory
resumes from its latest healthy checkpoint, data position included.

What a run guarantees (docs/USAGE.md, "When something goes wrong", lists the messages):
- the config is validated (`config_lib.validate`) before anything is written or built, and
  `config.json` is written only when training starts;
- one training per directory (`runlock`: a second one stops at once naming the first's pid);
- every step's loss and global parameter / optimizer-state norms are checked (inside the jitted
  step), so a diverged state is never saved;
- checkpoints are checksummed once committed; a damaged one is reported and the previous healthy
  one used (`checkpoints.restore_good`);
- an expected failure ends in one `error:` line (exit status 2 for a bad config or command line,
  1 otherwise) after any pending save has finished or been cleaned up.
"""
from __future__ import annotations

import errno
import functools
import json
import os
import sys
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

from mvae_jax import (checkpoints, config_lib, input_pipeline, logs, losses, machine, metrics,
                      parallel, runlock, schedules)
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
      clip_to_zero_norm=cfg.optim.clip_to_zero_norm,
      encoder_lr_scale=cfg.optim.get('encoder_lr_scale', 1.0))


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
  param_norm, opt_norm = _float_norm(params), _float_norm(opt_state)
  m = dict(m, grad_norm=optax.tree.norm(grads), param_norm=param_norm, opt_state_norm=opt_norm,
           learning_rate=schedules.learning_rate_schedule(
               cfg.optim.learning_rate, cfg.optim.min_learning_rate, cfg.optim.decay_rate)(state.step))
  # Checked on every step (one scalar to the host): a diverged state is never saved.
  m['finite'] = jnp.isfinite(m['loss']) & jnp.isfinite(param_norm) & jnp.isfinite(opt_norm)
  return TrainState(step=state.step + 1, params=params, opt_state=opt_state), m


def _float_norm(tree: Any) -> jax.Array:
  """Global L2 norm of the floating-point leaves (an optimizer state also holds step counts)."""
  leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
  if not leaves:
    return jnp.zeros((), jnp.float32)
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))


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


def check_config_fits(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses (ConfigError) a run directory whose `config.json` has a different model or data."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return
  old = config_lib.load_config(workdir)
  for section in ('model', 'data'):
    a, b = config_lib.as_plain(old[section]), config_lib.as_plain(config[section])
    if a != b:
      diff = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
      raise config_lib.ConfigError(f'{workdir} holds a run with a different config.{section}: {diff} '
                       '(saved, requested); use a new --workdir')


def write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes `config.json` (checked by `check_config_fits` first)."""
  check_config_fits(config, workdir)
  path = os.path.join(workdir, 'config.json')
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(path + '.tmp', 'w') as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True))
    os.replace(path + '.tmp', path)


class DataError(ValueError):
  """The dataset cannot serve this run (e.g. no eval split); one line for the user."""


def _check_finite(done: int, m: dict[str, Any], resume_from: int) -> None:
  """Raises NonFiniteLossError when step `done` (counted from 1, as the console does) diverged."""
  if bool(m['finite']):
    return
  host = {k: float(v) for k, v in jax.device_get(m).items()}
  resume = (f'a rerun resumes from checkpoint {resume_from}' if resume_from
            else 'no checkpoint was saved yet, so a rerun starts over')
  raise NonFiniteLossError(
      f'training diverged at step {done} (loss {host["loss"]:.4g}, recon {host["recon"]:.4g}, '
      f'kl {host["kl"]:.4g}, parameter norm {host["param_norm"]:.4g}, optimizer-state norm '
      f'{host["opt_state_norm"]:.4g}); stopped before saving it, {resume}. Lower '
      '--config.optim.learning_rate or check the data.')


def _eval_source(config: ml_collections.ConfigDict) -> Any:
  """The eval split, or None with `eval.every_steps=0`; a missing split is a one-line DataError."""
  if not config.eval.every_steps:
    return None
  try:
    return input_pipeline.get_source(config.data, 'eval')
  except ValueError as e:
    if 'split' not in str(e):
      raise
    raise DataError(f'{e}; the dataset has no eval files, so train without periodic evaluation: '
                    '--config.eval.every_steps=0') from e


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains `config` in `workdir` (resuming from its latest healthy checkpoint) and returns the
  last train and eval metrics.

  Order: the config is validated and compared with the directory's `config.json` before anything
  is written; then the directory's lock is taken (one training per directory), the data prepared
  and the checkpoint restored; `config.json` is written just before the first step.
  """
  workdir = os.path.abspath(workdir)
  mesh = parallel.make_mesh()
  config_lib.validate(config, num_devices=mesh.devices.size, process_count=jax.process_count())
  check_config_fits(config, workdir)
  with runlock.hold(workdir, jax.process_index(), jax.process_count()):
    return _train_locked(config, workdir, mesh)


def _train_locked(config: ml_collections.ConfigDict, workdir: str, mesh: Any) -> dict[str, float]:
  train_source = input_pipeline.get_source(config.data, 'train')
  eval_source = _eval_source(config)
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
  try:
    abstract = checkpoints.abstract_like(jax.eval_shape(init_fn, init_rng), repl)
    restored = checkpoints.restore_good(mgr, abstract)
    if restored is not None and restored[3]:
      # Damaged newer steps go aside, so retention and the new saves of their numbers ignore them.
      mgr.close()
      if jax.process_count() > 1:  # every process has checked them before any is moved
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices('damaged checkpoints found')
      checkpoints.set_aside(workdir, restored[3])
      if jax.process_count() > 1:
        multihost_utils.sync_global_devices('damaged checkpoints set aside')
      mgr = checkpoints.manager(workdir, keep=config.train.keep_checkpoints)
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
      state, position, start, _ = restored
      start = int(position.get('next_batch', start))
      logging.info('resumed %s from step %d', workdir, start)
      if jax.process_index() == 0:
        print(f'resuming {workdir} from step {start}', flush=True)
    last_saved = start
    out = _train_loop(config, workdir, mesh, model, optimizer, state, start, last_saved, mgr,
                      train_source, eval_source, train_rng, eval_rng)
    mgr.wait_until_finished()
    checkpoints.seal(mgr)
    return out
  finally:
    _finish_saves(mgr, workdir)


def _finish_saves(mgr: Any, workdir: str) -> None:
  """Lets a pending asynchronous save commit (or removes what it left) and closes the manager;
  never raises, so the error that got us here is the one reported."""
  try:
    mgr.wait_until_finished()
    checkpoints.seal(mgr)
  except Exception:  # pylint: disable=broad-except
    logging.warning('pending checkpoint save failed', exc_info=True)
  try:
    mgr.close()
  except Exception:  # pylint: disable=broad-except
    logging.warning('closing the checkpoint manager failed', exc_info=True)
  checkpoints.remove_partial_saves(workdir)


def emulated_bfloat16(dtype: str, backend: str, isa_flags=None) -> bool:
  """Whether `model.dtype` asks for bfloat16 products that this CPU would emulate."""
  return dtype == 'bfloat16' and backend == 'cpu' and not machine.native_bfloat16(isa_flags)


def _train_loop(config, workdir, mesh, model, optimizer, state, start, last_saved, mgr,
                train_source, eval_source, train_rng, eval_rng) -> dict[str, float]:
  repl, data_sh = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))
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

  write_config(config, workdir)  # training really starts now
  writer = MetricWriter(workdir, config.train.num_steps, start_step=start)
  try:
    if start == 0 and jax.process_index() == 0:
      n_eval = f'{len(eval_source):,}' if eval_source is not None else 'no'
      print(f'{config.family}:{config.preset} | {n_params:,} parameters | {len(train_source):,} '
            f'train / {n_eval} eval windows | {mesh.devices.size} devices | '
            f'global batch {config.train.batch_size}', flush=True)
      if emulated_bfloat16(config.model.dtype, jax.default_backend()):
        print('note: this CPU has no native bfloat16 products (avx512_bf16 / amx_bf16): '
              'model.dtype=bfloat16 is emulated here and not expected to beat float32', flush=True)
    last_train: dict[str, float] = {}
    last_eval: dict[str, float] = {}
    pending = None  # (step, metrics) of the previous step: checked while the next one runs
    every_eval = config.eval.every_steps
    t_start = time.time()
    for step in range(start, config.train.num_steps):
      batch = parallel.global_batch_array(next(batches), mesh)
      state, m = p_train_step(state, batch, train_rng)
      if pending is not None:
        _check_finite(*pending, last_saved)
      done = step + 1
      pending = (done, m)
      last = done == config.train.num_steps
      do_log = done % config.train.log_every_steps == 0 or last
      do_eval = bool(every_eval) and (done % every_eval == 0 or last)
      do_save = done % config.train.checkpoint_every_steps == 0 or last
      if do_log or do_eval or do_save:
        _check_finite(*pending, last_saved)
        pending = None
      if do_log:
        host = {k: float(v) for k, v in jax.device_get(m).items() if k != 'finite'}
        last_train = {f'train/{_metric_name(k)}': v for k, v in host.items()}
        writer.write(done, last_train)
        writer.console(done, {k: last_train[k] for k in
                              ('train/loss', 'train/loss/recon', 'train/loss/kl', 'train/accuracy')})
      if do_eval:
        last_eval = evaluate(state.params, eval_source, model=model, cfg=config, mesh=mesh,
                             rng=jax.random.fold_in(eval_rng, done), p_eval_step=p_eval_step)
        writer.write(done, last_eval)
        writer.console(done, {k: v for k, v in last_eval.items() if k != 'eval/examples'}, 'eval')
      if do_save:
        checkpoints.save(mgr, done, state, {'next_batch': done})
        last_saved = done
    if pending is not None:
      _check_finite(*pending, last_saved)
  finally:
    writer.close()
  if jax.process_index() == 0 and start < config.train.num_steps:
    print(f'trained steps {start}..{config.train.num_steps} in {time.time() - t_start:.1f}s; '
          f'checkpoints in {os.path.join(workdir, "checkpoints")}'
          + (f'; library log in {logs.log_path()}' if logs.log_path() else ''), flush=True)
  return {**last_train, **last_eval}


def load_run(workdir: str, step: int | None = None
             ) -> tuple[ml_collections.ConfigDict, MusicVAE, Any, int]:
  """(config, model, params, step) of a run directory's latest healthy (or the given) checkpoint.

  A damaged newer checkpoint is reported on stderr (one line) and the previous healthy one used.
  Raises FileNotFoundError naming the directory when it has no config or no checkpoint, and
  checkpoints.DamagedCheckpointError when the given step (or every step) is damaged.
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
    restored = checkpoints.restore_good(mgr, abstract, step)
  finally:
    mgr.close()
  if restored is None:
    raise FileNotFoundError(f'{workdir}/checkpoints holds no checkpoint: train it first')
  state, _, step, _ = restored
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


def failure_message(e: BaseException, workdir: str) -> str | None:
  """The one line a user sees for an expected failure, or None for a bug (traceback wanted)."""
  chain, seen = [], e
  while seen is not None and len(chain) < 20:
    chain.append(seen)
    seen = seen.__cause__ or seen.__context__
  for err in chain:
    if (isinstance(err, OSError) and err.errno == errno.ENOSPC) or (
        'No space left on device' in str(err)):
      where = os.path.dirname(err.filename) if getattr(err, 'filename', None) else workdir
      return f'no space left on device in {where}'
  if isinstance(e, (config_lib.ConfigError, runlock.RunLockedError, NonFiniteLossError,
                    checkpoints.DamagedCheckpointError, DataError, FileNotFoundError,
                    PermissionError)):
    return ' '.join(str(e).split())
  if isinstance(e, ValueError) and type(e).__module__.startswith(('data_pipelines', 'mvae_jax')):
    return ' '.join(str(e).split())  # our own error classes (e.g. a build that found nothing)
  return None


EXIT_CONFIG = 2  # the config or command line is wrong: nothing was written
EXIT_FAILED = 1  # the run started (or could not) and stopped; the message says why


def main(argv):
  del argv
  if FLAGS.config is None or FLAGS.workdir is None:
    print('error: --config and --workdir are required', file=sys.stderr)
    return EXIT_CONFIG
  workdir = os.path.abspath(FLAGS.workdir)
  # Library logging goes to a file from the start (a temporary one while the run directory does
  # not exist: a bad config must create nothing), then to <workdir>/train.log once the config is
  # known to be good.
  logs.setup(workdir if os.path.isdir(workdir) else None, 'train')
  parallel.maybe_initialize_distributed()
  try:
    config_lib.validate(FLAGS.config, num_devices=jax.device_count(),
                        process_count=jax.process_count())
    check_config_fits(FLAGS.config, workdir)
    logs.setup(workdir, 'train')
    train_and_evaluate(FLAGS.config, workdir)
  except config_lib.ConfigError as e:
    print(f'error: {e}', file=sys.stderr, flush=True)
    return EXIT_CONFIG
  except Exception as e:  # pylint: disable=broad-except
    line = failure_message(e, workdir)
    if line is None:
      raise
    print(f'error: {line}', file=sys.stderr, flush=True)
    return EXIT_FAILED
  return 0


if __name__ == '__main__':
  app.run(main, flags_parser=config_lib.cli_flags_parser)
