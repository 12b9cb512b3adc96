r"""Training: `train_and_evaluate(config, workdir)` (the command line is `mvae_jax.train`).

One code path serves 1 CPU, every GPU or TPU core of a host, and many hosts: the step is `jax.jit`
over a 1-D device mesh with the batch sharded on the `data` axis and the state replicated. A run
directory (`mvae_jax.run`) holds `config.json`, `checkpoints/` (Orbax), `tensorboard/` and
`metrics.jsonl`; starting again on the same directory resumes from its latest healthy checkpoint,
data position included.

What a run guarantees (docs/USAGE.md, "When something goes wrong", lists the messages):
- the config is validated (`config_lib.validate`) before anything is written or built, and
  `config.json` is written only when training starts;
- one training per directory (`runlock`: a second one stops at once naming the first's pid);
- every step's loss and global parameter / optimizer-state norms are checked (inside the jitted
  step), so a diverged state is never saved;
- a checkpoint is sealed with its checksums as part of its commit; a damaged or unsealed one is
  reported and the previous healthy one used (`checkpoints.restore_good`);
- SIGTERM / SIGINT (under `preemption.handle_signals()`) save the current step and stop;
- periodic evaluation is `evaluation.evaluate` (the eval command's step and metric names, under
  `eval/`), on the first `eval.num_batches` batches of the eval split.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from data_pipelines import console
from mvae_jax import (checkpoints, config_lib, evaluation, input_pipeline, losses, machine,
                      metrics, parallel, preemption, runlock, schedules)
from mvae_jax import run as run_lib
from mvae_jax.logs import MetricWriter
from mvae_jax.models import MusicVAE


class NonFiniteLossError(FloatingPointError):
  pass


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


def train_step(state: run_lib.TrainState, batch: dict[str, jax.Array], rng: jax.Array, *,
               model: MusicVAE, optimizer: optax.GradientTransformation,
               cfg: ml_collections.ConfigDict) -> tuple[run_lib.TrainState, dict[str, jax.Array]]:
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
  if 'stop' in batch:
    # Any process asked to stop (SIGTERM / SIGINT, see `preemption`): every process reads the
    # same value at the same step, so all of them save that step and stop together.
    m['stop'] = jnp.max(batch['stop'])
  return run_lib.TrainState(step=state.step + 1, params=params, opt_state=opt_state), m


def _float_norm(tree: Any) -> jax.Array:
  """Global L2 norm of the floating-point leaves (an optimizer state also holds step counts)."""
  leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
  if not leaves:
    return jnp.zeros((), jnp.float32)
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))


class DataError(ValueError):
  """The dataset cannot serve this run (e.g. no eval split); one line for the user."""


@dataclasses.dataclass
class _Resumed:
  """Where a resumed run started: the checkpoint it restored and whether its checksums proved
  it intact. A run that diverges before its next save blames that checkpoint first."""
  step: int
  verified: bool
  workdir: str
  next_save: int  # the first step saved after the resume


def _check_finite(done: int, m: dict[str, Any], resume_from: int,
                  resumed: _Resumed | None = None) -> bool:
  """Raises NonFiniteLossError when step `done` (counted from 1, as the console does) diverged;
  returns whether any process asked to stop (`preemption`) at that step."""
  flags = jax.device_get({k: m[k] for k in ('finite', 'stop') if k in m})
  if bool(flags['finite']):
    return bool(flags.get('stop', 0))
  host = {k: float(v) for k, v in jax.device_get(m).items()}
  values = (f'loss {host["loss"]:.4g}, recon {host["recon"]:.4g}, kl {host["kl"]:.4g}, parameter '
            f'norm {host["param_norm"]:.4g}, optimizer-state norm {host["opt_state_norm"]:.4g}')
  if resumed is not None and done <= resumed.next_save and not resumed.verified:
    # Diverged at once after resuming from a checkpoint that has no checksums: the checkpoint,
    # not the training, is the suspect. It is moved aside, so the rerun takes the previous one.
    where = checkpoints.set_aside(resumed.workdir, [resumed.step])
    raise NonFiniteLossError(
        f'training diverged at step {done} ({values}), {done - resumed.step} step(s) after '
        f'resuming from checkpoint {resumed.step}, which has no checksums to prove it intact: '
        f'that checkpoint is the suspect. It was moved to {where}/{resumed.step}; rerun the same '
        'command to resume from the checkpoint before it (move it back to try it again).')
  resume = (f'a rerun resumes from checkpoint {resume_from}' if resume_from
            else 'no checkpoint was saved yet, so a rerun starts over')
  intact = ''
  if resumed is not None and done <= resumed.next_save:
    intact = (f' Checkpoint {resumed.step}, resumed {done - resumed.step} step(s) before, '
              'matches its checksums: the divergence is the training\'s own, not the '
              'checkpoint\'s.')
  raise NonFiniteLossError(
      f'training diverged at step {done} ({values}); stopped before saving it, {resume}.{intact} '
      'Lower --config.optim.learning_rate or check the data.')


def _eval_source(config: ml_collections.ConfigDict, fingerprint: str | None = None) -> Any:
  """The eval split, or None with `eval.every_steps=0`; a missing split is a one-line DataError."""
  if not config.eval.every_steps:
    return None
  try:
    return input_pipeline.get_source(config.data, 'eval', fingerprint)
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
  run_lib.check_config_fits(config, workdir)
  with runlock.hold(workdir, jax.process_index(), jax.process_count()):
    return _train_locked(config, workdir, mesh)


def _train_locked(config: ml_collections.ConfigDict, workdir: str, mesh: Any) -> dict[str, float]:
  # The dataset this run trains on: for a MIDI folder, the one of the fingerprint the run
  # recorded when it started (docs/DATA.md), so a resumed run never switches data.
  recorded = run_lib.load_dataset_record(workdir)
  dataset = input_pipeline.prepare(config.data, recorded.get('fingerprint') if recorded else None)
  train_source = input_pipeline.get_source(config.data, 'train', dataset.fingerprint)
  eval_source = _eval_source(config, dataset.fingerprint)
  init_rng, train_rng, eval_rng = jax.random.split(jax.random.PRNGKey(config.train.seed), 3)
  mgr, state, start, verified = run_lib.start_state(config, workdir, mesh, init_rng)
  try:
    loop = _Loop(config=config, workdir=workdir, mesh=mesh, mgr=mgr, train_rng=train_rng,
                 eval_rng=eval_rng, train_source=train_source, eval_source=eval_source,
                 dataset=dataset.record())
    out = loop.run(state, start, verified)
    mgr.wait_until_finished()
    return out
  finally:
    _finish_saves(mgr, workdir)


def _finish_saves(mgr: Any, workdir: str) -> None:
  """Lets a pending asynchronous save commit (or removes what it left) and closes the manager;
  never raises, so the error that got us here is the one reported. A save seals itself as it
  commits (`checkpoints.manager`), so nothing is sealed here: a step nobody verified never gets
  checksums."""
  try:
    mgr.wait_until_finished()
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


@dataclasses.dataclass
class _Loop:
  """The training loop of one run: what stays fixed while steps go by."""
  config: ml_collections.ConfigDict
  workdir: str
  mesh: Any
  mgr: Any                 # the run's checkpoint manager
  train_rng: jax.Array
  eval_rng: jax.Array
  train_source: Any
  eval_source: Any         # None: no periodic evaluation
  dataset: dict            # what `run.write_dataset_record` keeps of the dataset

  def run(self, state: run_lib.TrainState, start: int, verified: bool = True
          ) -> dict[str, float]:
    """Steps start..num_steps: log, evaluate and save on schedule; returns the last metrics.

    `verified`: whether the checkpoint resumed from (step `start`) matched its checksums. A
    SIGTERM / SIGINT under `preemption.handle_signals()` saves the step being trained and
    raises `preemption.Interrupted`.
    """
    config = self.config
    if start >= config.train.num_steps:
      if jax.process_index() == 0:
        print(f'{self.workdir} is complete: trained {start} of {config.train.num_steps} steps, '
              f'nothing to do. To train longer, run the same command with '
              f'--config.train.num_steps=N (N > {start}); it resumes from step {start}.',
              flush=True)
      return {}
    with preemption.deferred():
      return self._run(state, start, verified)

  def _run(self, state: run_lib.TrainState, start: int, verified: bool) -> dict[str, float]:
    config, mesh = self.config, self.mesh
    model, optim = run_lib.create_model(config.model), run_lib.create_optimizer(config)
    repl, data_sh = parallel.replicated(mesh), parallel.batch_sharded(mesh)
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))
    augment = None
    if config.data.augment:
      augment = input_pipeline.Augment(tuple(config.model.part_vocab),
                                       tuple(config.model.part_is_drums),
                                       config.data.shift_min, config.data.shift_max)
    train_ds = input_pipeline.train_dataset(self.train_source, global_batch=config.train.batch_size,
                                            seed=config.train.seed, augment=augment)
    batches = input_pipeline.train_iterator(train_ds, start)
    p_train_step = jax.jit(
        functools.partial(train_step, model=model, optimizer=optim, cfg=config),
        in_shardings=(repl, data_sh, repl), out_shardings=(repl, repl), donate_argnums=0)

    run_lib.write_config(config, self.workdir, dataset=self.dataset)  # training really starts
    writer = MetricWriter(self.workdir, config.train.num_steps, start_step=start)
    last_saved = start
    every_save = config.train.checkpoint_every_steps
    resumed = None
    if start:
      resumed = _Resumed(step=start, verified=verified, workdir=self.workdir,
                         next_save=min(config.train.num_steps,
                                       (start // every_save + 1) * every_save))
    local_rows = config.train.batch_size // jax.process_count()
    done = start
    try:
      if start == 0 and jax.process_index() == 0:
        n_eval = f'{len(self.eval_source):,}' if self.eval_source is not None else 'no'
        print(f'{config.family}:{config.preset} | {n_params:,} parameters | '
              f'{len(self.train_source):,} train / {n_eval} eval windows | '
              f'{mesh.devices.size} devices | global batch {config.train.batch_size}', flush=True)
        if config.preset.split(',')[0] == 'smoke' and config.train.num_steps > SMOKE_STEPS:
          print(f'note: the smoke preset is for tests: it logs every '
                f'{config.train.log_every_steps}, evaluates every {config.eval.every_steps} and '
                f'saves every {config.train.checkpoint_every_steps} steps, which dominates a '
                f'{config.train.num_steps}-step run; use the small preset, or set '
                '--config.train.log_every_steps, --config.eval.every_steps and '
                '--config.train.checkpoint_every_steps', flush=True)
        if emulated_bfloat16(config.model.dtype, jax.default_backend()):
          print('note: this CPU has no native bfloat16 products (avx512_bf16 / amx_bf16): '
                'model.dtype=bfloat16 is emulated here and not expected to beat float32',
                flush=True)
      last_train: dict[str, float] = {}
      last_eval: dict[str, float] = {}
      pending = None  # (step, metrics) of the previous step: checked while the next one runs
      every_eval = config.eval.every_steps
      t_start = time.time()
      for step in range(start, config.train.num_steps):
        local = dict(next(batches))
        local['stop'] = np.full(local_rows, preemption.requested() is not None, np.int32)
        batch = parallel.global_batch_array(local, mesh)
        state, m = p_train_step(state, batch, self.train_rng)
        stop = False
        if pending is not None:
          stop = _check_finite(*pending, last_saved, resumed)
        done = step + 1
        pending = (done, m)
        last = done == config.train.num_steps
        do_log = done % config.train.log_every_steps == 0 or last
        do_eval = bool(every_eval) and (done % every_eval == 0 or last)
        do_save = done % every_save == 0 or last
        if do_log or do_eval or do_save or stop:
          stop = _check_finite(*pending, last_saved, resumed) or stop
          pending = None
        # Stopping (a signal, on any process): this step is saved; no evaluation, the grace
        # period is short. Every process decides alike: `stop` comes out of the step.
        do_eval = do_eval and not stop
        do_save = do_save or stop
        if do_log:
          host = {k: float(v) for k, v in jax.device_get(m).items() if k != 'finite'}
          last_train = {f'train/{_metric_name(k)}': v for k, v in host.items()}
          writer.write(done, last_train)
          writer.console(done, {k: last_train[k] for k in ('train/loss', 'train/loss/recon',
                                                           'train/loss/kl', 'train/accuracy')})
        if do_eval:
          values = evaluation.evaluate(
              state.params, self.eval_source, model=model, mesh=mesh,
              rng=jax.random.fold_in(self.eval_rng, done), batch_size=config.eval.batch_size,
              num_batches=config.eval.num_batches)
          last_eval = {f'eval/{k}': v for k, v in values.items()}
          writer.write(done, last_eval)
          writer.console(done, {f'eval/{k}': last_eval[f'eval/{k}'] for k in EVAL_CONSOLE
                                if f'eval/{k}' in last_eval}, 'eval')
        if do_save:
          checkpoints.save(self.mgr, done, state, {'next_batch': done})
          last_saved = done
        if stop and not last:
          self.mgr.wait_until_finished()  # committed and sealed before we say so
          signum = preemption.requested() or signal.SIGTERM  # another process's signal
          raise preemption.Interrupted(
              signum, f'interrupted at step {done}; saved; rerun the same command to resume')
      if pending is not None:
        _check_finite(*pending, last_saved, resumed)
    except preemption.Interrupted as e:
      if 'saved;' in str(e):
        raise
      since = f'from checkpoint {last_saved}' if last_saved else 'from the start (no checkpoint)'
      raise preemption.Interrupted(e.signum, f'interrupted ({preemption.signal_name(e.signum)}) '
                                   f'at step {done}, before it was saved; rerun the same command '
                                   f'to resume {since}') from None
    finally:
      writer.close()
    if jax.process_index() == 0 and start < config.train.num_steps:
      log = console.log_path()
      print(f'trained steps {start}..{config.train.num_steps} in {time.time() - t_start:.1f}s; '
            f'checkpoints in {os.path.join(self.workdir, "checkpoints")}'
            + (f'; library log in {log}' if log else ''), flush=True)
    return {**last_train, **last_eval}


SMOKE_STEPS = 100  # beyond this, a smoke-preset run is told its intervals are for tests

# The periodic evaluation's metrics shown on the console (all are written to metrics.jsonl).
EVAL_CONSOLE = ('recon_loss', 'kl', 'next_accuracy')


def _metric_name(key: str) -> str:
  """Loss parts under loss/ (train/loss/kl); the total stays train/loss."""
  return f'loss/{key}' if key in ('recon', 'kl', 'kl_cost') else key
