r"""Does training with bfloat16 matrix products (float32 accumulation) match float32?

  python benchmarks/bf16_accuracy.py --config=configs/melody2.py:magenta --batch=64 --steps=200 \
      [--eval_batches=8] [--json=benchmarks/results/bf16_accuracy.json] [--set section.field=value]

`model.dtype=bfloat16` casts the operands of every matrix product to bfloat16 and accumulates in
float32; parameters, optimizer state, LSTM cell and hidden states and all elementwise work stay
float32. This script measures what that costs in accuracy, on real windows of the config's dataset
(built on first use, like training):

1. Gradients at the same initial parameters and the same real batch: the global relative error
   |g_bf16 - g_f32| / |g_f32|, the lowest per-tensor cosine similarity, and the two losses.
2. Training: both dtypes from the same initial parameters on the same batches (same data order,
   same RNG) for --steps steps with the real `mvae_jax.trainer.train_step`, then the eval split's
   loss and next-step accuracy (`mvae_jax.evaluation.evaluate`, --eval_batches batches) for each, and
   the median relative gap of the training losses over the last quarter of the steps, and the
   training-loss curve (block means). Both dtypes also run from a second seed (initial
   parameters and step RNG) on the same batches: the noise level to read the bf16 gap against.
3. Median step time of each (wall and process CPU), measured in the same run.

Prints one JSON object; --json also writes it. The answer to read: the eval metrics of the two
and float32 runs should differ by no more than two runs of one dtype from different seeds do.
"""
import argparse
import functools
import json
import os
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mvae_jax import config_lib, evaluation, input_pipeline, parallel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mvae_jax.machine import cpu_info  # noqa: E402  pylint: disable=g-import-not-at-top
from mvae_jax import run as run_lib
from mvae_jax import trainer

# (name, matmul dtype, seed of the initial parameters and of the step RNG). The seed-1 runs give
# the noise level: the same dtype from another seed, on the same batches.
RUNS = (('float32', 'float32', 0), ('bfloat16', 'bfloat16', 0), ('float32_seed1', 'float32', 1),
        ('bfloat16_seed1', 'bfloat16', 1))


def _cosine(a: jax.Array, b: jax.Array) -> float:
  a, b = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
  na, nb = np.linalg.norm(a), np.linalg.norm(b)
  return 1.0 if na == nb == 0 else float(a @ b / max(na * nb, 1e-30))


def gradient_agreement(grads: dict[str, Any]) -> dict[str, float]:
  """Global relative error and the lowest per-tensor cosine of bf16 gradients vs float32."""
  g32, g16 = jax.tree.leaves(grads['float32']), jax.tree.leaves(grads['bfloat16'])
  diff = np.sqrt(sum(float(jnp.sum((a - b) ** 2)) for a, b in zip(g32, g16)))
  norm = np.sqrt(sum(float(jnp.sum(a ** 2)) for a in g32))
  return {'relative_error': float(diff / max(norm, 1e-30)),
          'min_tensor_cosine': min(_cosine(a, b) for a, b in zip(g32, g16))}


def run(config, steps: int, eval_batches: int) -> dict:
  mesh = parallel.make_mesh()
  repl, data_sh = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  train_source = input_pipeline.get_source(config.data, 'train')
  eval_source = input_pipeline.get_source(config.data, 'eval')
  optimizer = run_lib.create_optimizer(config)
  models, steps_fn, states, grads, losses0 = {}, {}, {}, {}, {}
  shape = (1, *input_pipeline._tokens(train_source[0]).shape)  # pylint: disable=protected-access
  ds = input_pipeline.train_dataset(train_source, global_batch=config.train.batch_size,
                                    seed=config.train.seed, augment=None)
  batches = [parallel.global_batch_array(b, mesh)
             for b, _ in zip(input_pipeline.train_iterator(ds, 0), range(steps))]
  first = batches[0]
  rngs = {}
  for name, dtype, seed in RUNS:
    rngs[name] = jax.random.PRNGKey(config.train.seed + seed)
    cfg = config.copy_and_resolve_references()
    cfg.model.dtype = dtype
    model = run_lib.create_model(cfg.model)
    models[name] = (model, cfg)
    init = jax.jit(functools.partial(run_lib.init_state, model=model, optimizer=optimizer,
                                     shape=shape), out_shardings=repl)
    states[name] = init(jax.random.PRNGKey(seed))  # dtype does not change the parameters
    grad_fn = jax.jit(jax.grad(functools.partial(trainer.loss_fn, model=model, cfg=cfg),
                               has_aux=True))
    grads[name], m = grad_fn(states[name].params, first['tokens'], jnp.zeros((), jnp.int32),
                             rngs[name])
    losses0[name] = float(m['loss'])
    steps_fn[name] = jax.jit(
        functools.partial(trainer.train_step, model=model, optimizer=optimizer, cfg=cfg),
        in_shardings=(repl, data_sh, repl), out_shardings=(repl, repl), donate_argnums=0)
  out = {'gradients_at_init': {**gradient_agreement(grads),
                               'loss_float32': losses0['float32'],
                               'loss_bfloat16': losses0['bfloat16']}}
  names = [r[0] for r in RUNS]
  train_losses = {d: [] for d in names}
  times = {d: [] for d in names}
  cpu = {d: [] for d in names}
  for i, batch in enumerate(batches):
    for name in (names if i % 2 == 0 else names[::-1]):  # alternate who goes first
      t0, c0 = time.perf_counter(), time.process_time()
      states[name], m = steps_fn[name](states[name], batch, rngs[name])
      loss = float(m['loss'])  # waits for the step
      times[name].append(time.perf_counter() - t0)
      cpu[name].append(time.process_time() - c0)
      train_losses[name].append(loss)
  tail = slice(len(batches) * 3 // 4, None)
  block = max(1, len(batches) // 20)
  l32, l16 = np.array(train_losses['float32'][tail]), np.array(train_losses['bfloat16'][tail])
  l32b = np.array(train_losses['float32_seed1'][tail])
  l16b = np.array(train_losses['bfloat16_seed1'][tail])
  out['train'] = {'steps': steps, 'batch': config.train.batch_size,
                  'median_relative_loss_gap_last_quarter': float(np.median(np.abs(l16 - l32) / l32)),
                  'median_relative_loss_gap_last_quarter_seed1': float(
                      np.median(np.abs(l32b - l32) / l32)),
                  'median_relative_loss_gap_last_quarter_bfloat16_seed1': float(
                      np.median(np.abs(l16b - l16) / l16)),
                  'median_relative_loss_gap_last_quarter_seed1_bfloat16_vs_float32': float(
                      np.median(np.abs(l16b - l32b) / l32b)),
                  'mean_loss_last_quarter': {n: float(np.mean(train_losses[n][tail]))
                                             for n in names},
                  # mean training loss of each block of `block` steps, per run
                  'loss_curve_block': block,
                  'loss_curve': {n: [float(np.mean(train_losses[n][i:i + block]))
                                     for i in range(0, len(batches), block)] for n in names}}
  out['eval'] = {}
  for name in names:
    model, cfg = models[name]
    out['eval'][name] = {f'eval/{k}': float(v) for k, v in evaluation.evaluate(
        states[name].params, eval_source, model=model, mesh=mesh, rng=jax.random.PRNGKey(7),
        batch_size=cfg.eval.batch_size, num_batches=eval_batches).items()}
  warm = slice(2, None)  # the first steps include compilation
  out['step_time'] = {d: {'median_s': float(np.median(times[d][warm])),
                          'median_cpu_s': float(np.median(cpu[d][warm]))} for d in names}
  out['step_time']['speedup_bfloat16'] = (out['step_time']['float32']['median_s']
                                          / out['step_time']['bfloat16']['median_s'])
  return out


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--config', default='configs/melody2.py:magenta')
  ap.add_argument('--batch', type=int, default=64)
  ap.add_argument('--steps', type=int, default=200)
  ap.add_argument('--eval_batches', type=int, default=8)
  ap.add_argument('--json', default='')
  ap.add_argument('--set', nargs='*', default=[], help='section.field=value overrides')
  a = ap.parse_args(argv)
  if a.steps < 4:
    ap.error('--steps must be at least 4')
  config = config_lib.from_file(a.config, {**config_lib.parse_overrides(a.set),
                                           'train.batch_size': a.batch})
  out = {'config': a.config, 'overrides': a.set, 'jax': jax.__version__, **cpu_info(),
         'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
         **run(config, a.steps, a.eval_batches)}
  print(json.dumps(out, indent=1), flush=True)
  if a.json:
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, 'w') as f:
      json.dump(out, f, indent=1)


if __name__ == '__main__':
  sys.exit(main())
