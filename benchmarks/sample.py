r"""Sampling throughput (sequences/s): z ~ N(0, I) -> free-running decode at temperature 0.5.

  python benchmarks/sample.py --config=configs/melody2.py:magenta --batch=64 --calls=5 \
      [--op=sample|encode] [--top_ops=N] [--json=OUT.json] [--set model.unroll=2 ...]
  python benchmarks/sample.py --all --json=benchmarks/results/sample.json   # every family, small + magenta

Times the decoder's free-running decode, tokens only (the path `mvae_jax.trained_model` jits), or
with `--op=encode` the encoder (tokens -> mu, sigma, random tokens), on random parameters
(`init`; throughput does not depend on their values) and reports the median over `--calls` calls
after one warm-up call, with the compile time apart. `--top_ops=N` also traces two calls with
JAX's profiler and lists the N XLA operations that took longest (ms per call), as
benchmarks/train_step.py does for the training step. One JSON line per config.
"""
import argparse
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mvae_jax import config_lib  # noqa: E402
import train_step as bench  # noqa: E402

from data_pipelines import kinds
from mvae_jax import run as run_lib

FAMILIES = ('melody2', 'drums2', 'melody16', 'melody32', 'trio16')
PRESETS = ('small', 'magenta')


def _tokens_only(module, z, **kwargs):
  """The decoder's tokens alone, as `mvae_jax.trained_model` generates (no logits kept)."""
  return module.dec.decode(z, with_logits=False, **kwargs)[0]


def _decode(params, z, rng, *, model, batch, time_steps):
  return model.apply({'params': params}, z, batch_size=batch, time=time_steps, temperature=0.5,
                     rngs={'sample': rng}, method=_tokens_only)


def _encode(params, tokens, *, model):
  return model.apply({'params': params}, tokens, method=lambda m, x: m.encode(x))


def benchmark(config, batch: int, calls: int, op: str = 'sample', top: int = 0) -> dict:
  model = run_lib.create_model(config.model)
  t = kinds.time_steps(config.data.kind)
  tokens = jnp.zeros((1, t, len(config.model.part_vocab)), jnp.int32)
  rng = jax.random.PRNGKey(0)
  params = jax.jit(model.init)({'params': rng, 'z': rng, 'sample': rng}, tokens)['params']
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  if op == 'encode':
    gen = np.random.default_rng(0)
    x = jnp.asarray(np.stack([gen.integers(0, v, size=(batch, t))
                              for v in config.model.part_vocab], -1).astype(np.int32))
    fn = jax.jit(functools.partial(_encode, model=model))
    args = lambda i: (params, x)  # pylint: disable=unused-argument
  else:
    z = (jax.random.normal(rng, (batch, config.model.z_size))
         if config.model.use_encoder else None)
    fn = jax.jit(functools.partial(_decode, model=model, batch=batch, time_steps=t))
    args = lambda i: (params, z, jax.random.fold_in(rng, i))
  t0 = time.perf_counter()
  compiled = fn.lower(*args(0)).compile()
  compile_s = time.perf_counter() - t0
  jax.block_until_ready(compiled(*args(0)))
  times = []
  c0 = time.process_time()
  for i in range(calls):
    t1 = time.perf_counter()
    jax.block_until_ready(compiled(*args(i)))
    times.append(time.perf_counter() - t1)
  cpu = (time.process_time() - c0) / calls
  med = float(np.median(times))
  ops = (bench.top_ops(bench.trace_events(lambda i: (i + 1, compiled(*args(i))), 0, 2), 2, top)
         if top else None)
  return {
      'config': f'{config.family}:{config.preset}', 'op': op, 'batch': batch, 'time_steps': t,
      'calls': calls, 'median_call_s': round(med, 5), 'sequences_per_s': round(batch / med, 1),
      'steps_per_s': round(batch * t / med, 1), 'cpu_s_per_call': round(cpu, 5),
      'compile_s': round(compile_s, 2), 'params': n_params,
      'devices': [d.device_kind for d in jax.local_devices()], 'jax': jax.__version__,
      **bench.machine_info(), **({'top_ops': ops} if ops else {}),
  }


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--config', default=None)
  ap.add_argument('--all', action='store_true', help='every family at the small and magenta presets')
  ap.add_argument('--batch', type=int, default=64)
  ap.add_argument('--calls', type=int, default=5)
  ap.add_argument('--op', choices=('sample', 'encode'), default='sample')
  ap.add_argument('--top_ops', type=int, default=0,
                  help='also list the N XLA operations that took longest (profiler trace)')
  ap.add_argument('--json', default=None)
  ap.add_argument('--set', nargs='*', default=[], help='section.field=value overrides')
  a = ap.parse_args(argv)
  if a.all == bool(a.config):
    ap.error('give exactly one of --config and --all')
  here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  specs = ([f'{here}/configs/{f}.py:{p}' for f in FAMILIES for p in PRESETS] if a.all
           else [a.config])
  for spec in specs:
    config = config_lib.from_file(spec, config_lib.parse_overrides(a.set))
    result = benchmark(config, a.batch, a.calls, a.op, a.top_ops)
    result['overrides'] = a.set
    bench.emit(result, a.json)


if __name__ == '__main__':
  sys.exit(main())
