r"""Where a training step's time goes: times jitted pieces of the step separately.

  python benchmarks/profile_step.py --config=configs/melody2.py:magenta --batch=64 [--steps=10]
      [--set model.unroll=2 ...] [--json=OUT.json]

Pieces (each its own jitted program, median wall and process-CPU seconds over `--steps` calls,
pieces interleaved round by round so load changes hit them alike):
  step        the full `trainer.train_step` (what benchmarks/train_step.py times)
  grad        value_and_grad of `trainer.loss_fn` (no optimizer)
  enc_fwd     encoder forward (mu, sigma)
  enc_grad    gradient of sum(mu + sigma) w.r.t. the encoder's parameters
  dec_grad    gradient of the reconstruction loss w.r.t. the decoder (given z), as configured
              (scheduled sampling when the config has it on)
  dec_tf_grad the same, teacher forced
  opt         optimizer update + apply_updates alone
  matmul      one [batch, H_enc] @ [H_enc, 4 H_enc] float32 product (the encoder's per-step
              recurrent matmul), to compare with the roofline
Prints one JSON line per piece and a summary.
"""
import argparse
import functools
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mvae_jax import config_lib  # noqa: E402
import train_step as bench  # noqa: E402

from mvae_jax import losses  # noqa: E402
from mvae_jax.models import lstm  # noqa: E402
from mvae_jax import run as run_lib
from mvae_jax import trainer


def _timer(fn, args, steps):
  out = fn(*args)
  jax.block_until_ready(out)

  def once():
    t, c = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t, time.process_time() - c
  return once


def pieces(config, batch):
  model = run_lib.create_model(config.model)
  optimizer = run_lib.create_optimizer(config)
  tokens = jnp.asarray(bench.synthetic_tokens(config, batch))
  state = jax.jit(functools.partial(run_lib.init_state, model=model, optimizer=optimizer,
                                    shape=(1,) + tokens.shape[1:]))(jax.random.PRNGKey(0))
  params = state.params
  rng = jax.random.PRNGKey(1)
  step_no = jnp.asarray(3000, jnp.int32)
  p_ss = trainer._schedule_values(step_no, config)[0]  # pylint: disable=protected-access
  out = {}

  step = jax.jit(functools.partial(trainer.train_step, model=model, optimizer=optimizer,
                                   cfg=config))
  out['step'] = (step, (state, {'tokens': tokens}, rng))
  grad = jax.jit(jax.value_and_grad(functools.partial(trainer.loss_fn, model=model, cfg=config),
                                    has_aux=True))
  out['grad'] = (grad, (params, tokens, step_no, rng))
  if config.model.use_encoder:
    enc = lambda p, t: model.apply({'params': p}, t, method=model.encode)
    out['enc_fwd'] = (jax.jit(enc), (params, tokens))
    enc_loss = lambda p, t: sum(x.sum() for x in enc(p, t))
    out['enc_grad'] = (jax.jit(jax.grad(enc_loss)), (params, tokens))
    z = jnp.zeros((batch, config.model.z_size))
  else:
    z = None

  def dec_loss(p, t, z, p_sample):
    logits = model.apply({'params': p}, t, z, p_sample=p_sample, rngs={'sample': rng},
                         method=model.decode_teacher_forced)
    return losses.reconstruction_loss(logits, t).mean()
  if config.train.scheduled_sampling:
    out['dec_grad'] = (jax.jit(jax.grad(dec_loss)), (params, tokens, z, p_ss))
  out['dec_tf_grad'] = (jax.jit(jax.grad(functools.partial(dec_loss, p_sample=0.0))),
                        (params, tokens, z))

  def opt(g, s, p):
    import optax  # pylint: disable=import-outside-toplevel
    u, s = optimizer.update(g, s, p)
    return optax.apply_updates(p, u), s
  out['opt'] = (jax.jit(opt), (params, state.opt_state, params))
  h = config.model.enc_sizes[0] if config.model.use_encoder else config.model.dec_sizes[0]
  a = jnp.ones((batch, h), jnp.float32)
  w = jnp.ones((h, 4 * h), jnp.float32)
  out['matmul'] = (jax.jit(jnp.dot), (a, w))
  return out


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--config', required=True)
  ap.add_argument('--batch', type=int, default=64)
  ap.add_argument('--steps', type=int, default=10)
  ap.add_argument('--only', default='', help='comma-separated piece names')
  ap.add_argument('--reference_lstm', action='store_true',
                  help='also time every piece with lstm.run_layer_reference (autodiff through '
                       'the scan), interleaved, as "<piece>:ref"')
  ap.add_argument('--json', default=None)
  ap.add_argument('--set', nargs='*', default=[], help='section.field=value overrides')
  a = ap.parse_args(argv)
  config = config_lib.from_file(a.config, {**config_lib.parse_overrides(a.set),
                                           'train.batch_size': a.batch})
  ps = pieces(config, a.batch)
  if a.reference_lstm:
    ps.pop('matmul')
    fast = lstm.run_layer
    lstm.run_layer = lstm.run_layer_reference
    try:
      ref = pieces(config, a.batch)
      ref.pop('matmul')
      # jit traces lazily: compile the reference pieces while the patch is in place.
      ref = {k + ':ref': (jax.jit(fn).lower(*args).compile(), args) for k, (fn, args) in ref.items()}
    finally:
      lstm.run_layer = fast
    ps = {k: v for pair in zip(ps.items(), ref.items()) for k, v in pair}
  if a.only:
    ps = {k: v for k, v in ps.items() if k.split(':')[0] in a.only.split(',')}
  timers = {}
  for name, (fn, args) in ps.items():
    t = time.perf_counter()
    timers[name] = _timer(fn, args, a.steps)
    print(f'# compiled {name} in {time.perf_counter() - t:.1f}s', file=sys.stderr, flush=True)
  wall = {k: [] for k in timers}
  cpu = {k: [] for k in timers}
  for _ in range(a.steps):
    for name, once in timers.items():
      w, c = once()
      wall[name].append(w)
      cpu[name].append(c)
  rows = []
  for name in timers:
    row = {'piece': name, 'config': a.config, 'batch': a.batch, 'overrides': a.set,
           'median_s': round(float(np.median(wall[name])), 5),
           'min_s': round(float(np.min(wall[name])), 5),
           'median_cpu_s': round(float(np.median(cpu[name])), 5),
           'loadavg_1m': round(os.getloadavg()[0], 2)}
    rows.append(row)
    print(json.dumps(row), flush=True)
  if a.json:
    with open(a.json, 'a') as f:
      for row in rows:
        f.write(json.dumps(row) + '\n')


if __name__ == '__main__':
  sys.exit(main())
