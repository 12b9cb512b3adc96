r"""XLA's own matrix-product rate at the shapes of the `melody2:magenta` training step (issue 27's
"physical limit"), beside numpy's large float32 product, on the machine at hand.

  python benchmarks/product_rate.py [--batch=512] [--dtypes=float32,bfloat16] \
      [--json=benchmarks/results/product_rate.json]

Shapes at batch B (cat-mel_2bar_small: encoder H = 512 per direction, so 4H = 2048):
  recurrence   [B, 512] x [512, 2048]      every step's h @ W_h of the encoder, forward
  recurrence_t [B, 2048] x [2048, 512]     the backward's dgates @ W_h^T
  fused_input  [B, 1114] x [1114, 2048]    the two wider products issue 27 measured XLA at
  projection   [32 B, 602] x [602, 2048]   (a fused [x, h] kernel; all 32 steps' inputs at once)
Each product is jitted alone, operands in `dtype`, accumulated in float32 (as `lstm.matmul`),
repeated for about --gflop=20 GFLOP per timing, median of 5 timings. Run it on a quiet machine with the
allocator the step runs with (`python -m mvae_jax.train` preloads TCMalloc where installed; so
does this script, through `mvae_jax.machine.use_fast_allocator`).
"""
import argparse
import json
import os
import sys
import time

if __name__ == '__main__':
  from mvae_jax import machine  # pylint: disable=g-import-not-at-top
  machine.use_fast_allocator()

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np

from mvae_jax.machine import cpu_info

HERE = os.path.dirname(os.path.abspath(__file__))


def shapes(batch: int) -> dict[str, tuple[int, int, int]]:
  return {'recurrence': (batch, 512, 2048), 'recurrence_t': (batch, 2048, 512),
          'fused_input': (batch, 1114, 2048), 'projection': (32 * batch, 602, 2048)}


def product_gflops(m: int, k: int, n: int, dtype, timings: int = 5, gflop: float = 20.0) -> float:
  a, b = jnp.ones((m, k), dtype), jnp.ones((k, n), dtype)
  f = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
  f(a, b).block_until_ready()
  reps = max(3, int(gflop * 1e9 / (2 * m * k * n)))
  times = []
  for _ in range(timings):
    t = time.perf_counter()
    for _ in range(reps):
      r = f(a, b)
    r.block_until_ready()
    times.append((time.perf_counter() - t) / reps)
  return 2 * m * k * n / float(np.median(times)) / 1e9


def numpy_gflops(n: int = 4096, reps: int = 3) -> float:
  a = np.ones((n, n), np.float32)
  a @ a
  t = time.perf_counter()
  for _ in range(reps):
    a @ a
  return reps * 2 * n ** 3 / (time.perf_counter() - t) / 1e9


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--batch', type=int, default=512)
  ap.add_argument('--dtypes', default='float32,bfloat16')
  ap.add_argument('--gflop', type=float, default=20.0, help='work per timing')
  ap.add_argument('--numpy_n', type=int, default=4096)
  ap.add_argument('--json', default=os.path.join(HERE, 'results', 'product_rate.json'))
  a = ap.parse_args(argv)
  rates = {}
  for name, (m, k, n) in shapes(a.batch).items():
    for dtype in a.dtypes.split(','):
      rates[f'{name} [{m},{k}]x[{k},{n}] {dtype}'] = round(product_gflops(m, k, n, dtype, gflop=a.gflop), 1)
  out = {'batch': a.batch, 'gflop_per_s': rates, 'numpy_4096_float32': round(numpy_gflops(a.numpy_n), 1),
         'machine': cpu_info(), 'loadavg_1m': os.getloadavg()[0], 'jax': jax.__version__,
         'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}
  os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
  with open(a.json, 'w') as f:
    json.dump(out, f, indent=1)
  for key, value in rates.items():
    print(f'{key:55s} {value:8.1f} GFLOP/s')
  print(f'numpy 4096^3 float32{"":35s} {out["numpy_4096_float32"]:8.1f} GFLOP/s')
  return out


if __name__ == '__main__':
  sys.exit(0 if main() else 1)
