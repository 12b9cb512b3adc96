r"""Training-step throughput of any config on synthetic batches of the right shapes.

  python benchmarks/train_step.py --config=configs/melody2.py:magenta --batch=64 --steps=20 \
      [--json=OUT.json] [--top_ops=N] [--set model.dtype=bfloat16 ...]

The step is the real one (`mvae_jax.trainer.train_step`: loss, gradients, clipping, Adam, scheduled
sampling as configured), jitted over all local devices. Compile time is measured apart from the
median step time; `cpu_s_per_step` is process CPU time (the fairer figure on a shared machine);
`gflop_per_example` / `roofline_fraction` count matrix-product FLOPs (benchmarks/flops.py) against
the 205 GFLOP/s measured for a large product on the 2-core machine. `--top_ops=N` also traces
three steps with JAX's profiler and lists the N XLA operations that took longest (ms per step);
`--places` splits the wall time of the median of the three traced steps into "a matrix product
is running", "only other ops are running" (by their place in the model, read from the optimised
HLO's op_name metadata: encoder / decoder, forward / backward, inside a loop or not) and
"nothing is running".
`allocator` says which malloc the process ran with. Prints one JSON line; --json appends it to a
file.
"""
import argparse
import collections
import datetime
import functools
import glob
import gzip
import json
import os
import platform
import re
import sys
import tempfile
import time

if __name__ == '__main__':
  # As `python -m mvae_jax.train` runs: TCMalloc preloaded where the system has it.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from mvae_jax import machine  # pylint: disable=g-import-not-at-top
  machine.use_fast_allocator()

import jax
import numpy as np

from mvae_jax import config_lib, machine, parallel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flops  # noqa: E402  pylint: disable=g-import-not-at-top
from data_pipelines import kinds
from mvae_jax import run as run_lib
from mvae_jax import trainer


def synthetic_tokens(config, batch: int, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  t = kinds.time_steps(config.data.kind)
  return np.stack([rng.integers(0, v, size=(batch, t)) for v in config.model.part_vocab],
                  -1).astype(np.int32)


def trace_events(step, state, steps: int) -> list[dict]:
  """Runs `state, metrics = step(state)` `steps` times under JAX's profiler; the Perfetto
  trace's complete events (XLA:CPU records one per executed op)."""
  with tempfile.TemporaryDirectory() as tmp:
    jax.profiler.start_trace(tmp, create_perfetto_trace=True)
    for _ in range(steps):
      state, m = step(state)
      jax.block_until_ready(m)
    jax.profiler.stop_trace()
    path = glob.glob(os.path.join(tmp, '**', 'perfetto_trace.json.gz'), recursive=True)[0]
    with gzip.open(path) as f:
      events = json.load(f)
  events = events['traceEvents'] if isinstance(events, dict) else events
  return [e for e in events if e.get('ph') == 'X']


# Python frames, the executor's own spans and thread-pool bookkeeping enclose or mark the ops.
_NOT_OPS = ('$', 'ThunkExecutor', 'PjitFunction', 'ThreadpoolListener', 'end:',
            'SlinkyThreadPool')
_PRODUCTS = ('ynn_fusion', 'dot')  # XLA:CPU's matrix products (YNNPACK fusions, plain dots)


def top_ops(events: list[dict], steps: int, top: int) -> list[dict]:
  """The `top` XLA operations (fusions, products, copies, loops) by time per step."""
  total, count = collections.Counter(), collections.Counter()
  for e in events:
    name = e.get('name', '')
    if name.startswith(_NOT_OPS[:3]):
      continue
    total[name] += e['dur']
    count[name] += 1
  return [{'op': name, 'ms_per_step': round(us / steps / 1e3, 2),
           'calls_per_step': count[name] // steps} for name, us in total.most_common(top)]


def _op_places(hlo_text: str) -> dict[str, str]:
  """Optimised HLO instruction name -> its place in the model, from its `op_name` metadata:
  encoder / decoder / other, forward / backward, in a loop or not (e.g. 'encoder.bwd.loop')."""
  places = {}
  for m in re.finditer(r'^\s*(?:ROOT )?%([\w.\-]+) = .*?op_name="([^"]*)"', hlo_text, re.M):
    op = m.group(2)
    part = 'encoder' if 'encode' in op else 'decoder' if 'decode' in op else 'other'
    places.setdefault(m.group(1), f"{part}.{'bwd' if 'transpose(' in op else 'fwd'}."
                                  f"{'loop' if '/while/' in op else 'flat'}")
  return places


def _step_windows(events: list[dict]) -> list[tuple[float, float]]:
  """(start, end) of each executed program, in microseconds: its executor's "wait for completion"
  span, from the start of the executor's own call that precedes it on the same thread (the
  executor runs the first thunks in the caller before it waits: on a loaded machine, a whole
  loop). Loops and small programs are programs too: the steps are the longest."""
  calls = [e for e in events if e['name'] == 'ThunkExecutor::Execute']
  windows, last_end = [], collections.defaultdict(lambda: float('-inf'))
  for w in sorted((e for e in events if e['name'].startswith('ThunkExecutor::Execute (wait')),
                  key=lambda e: e['ts']):
    starts = [c['ts'] for c in calls
              if c['tid'] == w['tid'] and last_end[w['tid']] < c['ts'] <= w['ts']]
    windows.append((min(starts + [w['ts']]), w['ts'] + w['dur']))
    last_end[w['tid']] = w['ts'] + w['dur']
  return windows


def step_places(events: list[dict], hlo_text: str, steps: int) -> dict:
  """Where the wall time of a traced step (the one of median length) went: with a matrix
  product running, with only other ops running (by place in the model, `_op_places`; 'unknown'
  where XLA kept no metadata; two such ops running at once on two threads each count), and with
  nothing running (between ops: the loops' per-iteration hand-over), ms."""
  t0, t1 = sorted(_step_windows(events), key=lambda w: w[1] - w[0])[-steps:][steps // 2]
  ops = [e for e in events if t0 <= e['ts'] <= t1 and not e['name'].startswith(_NOT_OPS)]
  res = 10.0  # microseconds per bin
  n = int((t1 - t0) / res) + 1
  product, other = np.zeros(n, bool), np.zeros(n, bool)
  bins = lambda e: slice(int((e['ts'] - t0) / res), int((e['ts'] + e['dur'] - t0) / res))  # pylint: disable=g-long-lambda
  for e in ops:
    (product if e['name'].startswith(_PRODUCTS) else other)[bins(e)] = True
  places = _op_places(hlo_text)
  alone = collections.Counter()
  for e in ops:
    if not e['name'].startswith(_PRODUCTS):
      alone[places.get(e['name'], 'unknown')] += float(np.sum(~product[bins(e)])) * res / 1e3
  ms = lambda x: round(float(np.sum(x)) * res / 1e3, 1)  # pylint: disable=g-long-lambda
  return {'step_ms': round((t1 - t0) / 1e3, 1), 'product_running_ms': ms(product),
          'only_other_ops_ms': ms(other & ~product), 'nothing_running_ms': ms(~other & ~product),
          'only_other_ops_by_place_ms': {k: round(v, 1) for k, v in sorted(alone.items())}}


def benchmark(config, batch: int, steps: int, warmup: int = 2, top: int = 0,
              places: bool = False) -> dict:
  mesh = parallel.make_mesh()
  model = run_lib.create_model(config.model)
  optimizer = run_lib.create_optimizer(config)
  repl, data = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  tokens = synthetic_tokens(config, batch)
  init = jax.jit(functools.partial(run_lib.init_state, model=model, optimizer=optimizer,
                                   shape=(1,) + tokens.shape[1:]), out_shardings=repl)
  state = init(jax.random.PRNGKey(0))
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))
  step = jax.jit(functools.partial(trainer.train_step, model=model, optimizer=optimizer, cfg=config),
                 in_shardings=(repl, data, repl), out_shardings=(repl, repl), donate_argnums=0)
  b = {'tokens': jax.device_put(tokens, data)}
  rng = jax.random.PRNGKey(1)
  t0 = time.perf_counter()
  compiled = step.lower(state, b, rng).compile()
  compile_s = time.perf_counter() - t0
  for _ in range(warmup):
    state, m = compiled(state, b, rng)
  jax.block_until_ready(m)
  times = []
  c0 = time.process_time()
  for _ in range(steps):
    t = time.perf_counter()
    state, m = compiled(state, b, rng)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t)
  cpu_s = (time.process_time() - c0) / steps
  med = float(np.median(times))
  ops = where = None
  if top or places:
    events = trace_events(lambda s: compiled(s, b, rng), state, 3)
    ops = top_ops(events, 3, top) if top else None
    where = step_places(events, compiled.as_text(), 3) if places else None
  gflop = flops.train_gflop_per_example(config)
  return {
      'config': f'{config.family}:{config.preset}', 'batch': batch, 'steps': steps,
      'median_step_s': round(med, 5), 'examples_per_s': round(batch / med, 1),
      'p10_step_s': round(float(np.percentile(times, 10)), 5),
      'p90_step_s': round(float(np.percentile(times, 90)), 5),
      'cpu_s_per_step': round(cpu_s, 5), 'compile_s': round(compile_s, 2), 'params': n_params,
      # Matrix-product FLOPs counted like the reference's graph (benchmarks/flops.py).
      'gflop_per_example': round(gflop, 4), 'gflop_per_s': round(gflop * batch / med, 1),
      'roofline_fraction': round(gflop * batch / med / flops.ROOFLINE_GFLOPS, 3),
      'scheduled_sampling': bool(config.train.scheduled_sampling), 'dtype': config.model.dtype,
      'final_loss': float(m['loss']), 'devices': [d.device_kind for d in jax.local_devices()],
      'jax': jax.__version__, 'machine': platform.machine(), 'cpus': os.cpu_count(),
      'loadavg_1m': round(os.getloadavg()[0], 2),
      'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
      'allocator': machine.allocator_in_use(),
      **({'top_ops': ops} if ops else {}), **({'places': where} if where else {}),
  }


def machine_info() -> dict:
  """Where and when a figure was measured: every benchmark's JSON carries these fields."""
  return {'machine': platform.machine(), 'cpus': os.cpu_count(),
          'loadavg_1m': round(os.getloadavg()[0], 2),
          'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}


def emit(result: dict, json_path: str | None) -> None:
  """Prints one JSON line and appends it to `json_path` (if given): every benchmark's output."""
  line = json.dumps(result)
  print(line, flush=True)
  if json_path:
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    with open(json_path, 'a') as f:
      f.write(line + '\n')


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--config', required=True)
  ap.add_argument('--batch', type=int, default=64)
  ap.add_argument('--steps', type=int, default=20)
  ap.add_argument('--warmup', type=int, default=2)
  ap.add_argument('--json', default=None)
  ap.add_argument('--top_ops', type=int, default=0,
                  help='also trace 3 steps and report the N most expensive XLA ops per step')
  ap.add_argument('--places', action='store_true',
                  help='also trace 3 steps and split the median one\'s wall time: products running, '
                       'only other ops running (by place in the model), nothing running')
  ap.add_argument('--set', nargs='*', default=[], help='section.field=value overrides')
  a = ap.parse_args(argv)
  config = config_lib.from_file(a.config, {**config_lib.parse_overrides(a.set),
                                           'train.batch_size': a.batch})
  result = benchmark(config, a.batch, a.steps, a.warmup, a.top_ops, a.places)
  result['overrides'] = a.set
  emit(result, a.json)


if __name__ == '__main__':
  sys.exit(main())
