"""One train step of a smoke model on 1 device and on all (8 fake CPU) devices, same global batch.

Run with XLA_FLAGS=--xla_force_host_platform_device_count=8; prints JSON with the largest
differences between the two, which tests/test_parallel.py checks.
"""
import functools
import json
import sys

import jax
import numpy as np

sys.path.insert(0, sys.argv[1])  # repo root, for tests.conftest
from tests.conftest import load_config  # noqa: E402
from mvae_jax import parallel  # noqa: E402
from data_pipelines import kinds
from mvae_jax import run as run_lib
from mvae_jax import trainer


def run(config, devices, tokens):
  mesh = parallel.make_mesh(devices)
  model = run_lib.create_model(config.model)
  opt = run_lib.create_optimizer(config)
  repl, data = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  init = jax.jit(functools.partial(run_lib.init_state, model=model, optimizer=opt,
                                   shape=(1,) + tokens.shape[1:]), out_shardings=repl)
  state = init(jax.random.PRNGKey(0))
  step = jax.jit(functools.partial(trainer.train_step, model=model, optimizer=opt, cfg=config),
                 in_shardings=(repl, data, repl), out_shardings=(repl, repl))
  batch = {'tokens': jax.device_put(tokens, data)}
  for _ in range(2):
    state, m = step(state, batch, jax.random.PRNGKey(1))
  return jax.device_get(state.params), jax.device_get(m)


def main():
  assert len(jax.devices()) == 8, jax.devices()
  out = {}
  for family in sys.argv[2].split(','):
    config = load_config(f'{family}:smoke')
    t = kinds.time_steps(config.data.kind)
    vocab = config.model.part_vocab
    rng = np.random.default_rng(0)
    tokens = np.stack([rng.integers(0, v, size=(16, t)) for v in vocab], -1).astype(np.int32)
    p1, m1 = run(config, jax.devices()[:1], tokens)
    p8, m8 = run(config, jax.devices(), tokens)
    diff = max(float(np.max(np.abs(a - b))) for a, b in
               zip(jax.tree.leaves(p1), jax.tree.leaves(p8)))
    out[family] = {'param_diff': diff, 'loss_1': float(m1['loss']), 'loss_8': float(m8['loss']),
                   'n_leaves': len(jax.tree.leaves(p1))}
  print(json.dumps(out))


if __name__ == '__main__':
  main()
