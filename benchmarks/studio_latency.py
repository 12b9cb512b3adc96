r"""Latency of the studio's operations as a client sees them (HTTP API, in process).

  python benchmarks/studio_latency.py \
      --configs=configs/melody2.py:magenta,configs/melody16.py:small,configs/melody16.py:magenta \
      --repeats=3 --json=benchmarks/results/studio_latency.json

For each config: a model with random parameters (`init`; latency does not depend on their
values) served by `mvae_jax.studio` (its FastAPI app through the framework's test client, so the
JSON encoding of requests and answers counts), two Freedoom files uploaded (parsed in the worker
pool), then

  sample 8 (temperature 0.5), interpolate 7 steps between the two files' default windows,
  reconstruct the first file's default window (greedy), a point between (the page's slider),

each once to compile (reported as `first_s`) and then `--repeats` times (median, min, max in
seconds). `upload_s`: a Freedoom file uploaded and its windows listed (the first one also waits
for the parsing worker to start). One JSON line per config with the machine (CPU model, cores,
load average).
"""
import argparse
import os
import pathlib
import statistics
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step as bench  # noqa: E402

from fastapi.testclient import TestClient  # noqa: E402

from data_pipelines import kinds  # noqa: E402
from mvae_jax import config_lib, machine  # noqa: E402
from mvae_jax import run as run_lib  # noqa: E402
from mvae_jax.studio import engine, server  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES = [ROOT / 'data_pipelines' / 'freedoom' / n for n in ('freedoom1_D_E1M1.mid',
                                                            'freedoom1_D_E1M2.mid')]


def random_model(spec: str) -> engine.Model:
  """`configs/<family>.py:<preset>` with random parameters, as a studio `Model`."""
  config = config_lib.from_file(spec)
  module = run_lib.create_model(config.model)
  t = kinds.time_steps(config.data.kind)
  tokens = jax.numpy.zeros((1, t, len(config.model.part_vocab)), jax.numpy.int32)
  rng = jax.random.PRNGKey(0)
  params = jax.jit(module.init)({'params': rng, 'z': rng, 'sample': rng}, tokens)['params']
  return engine.Model(config, module, params, step=0)


def timed(call, repeats: int) -> dict:
  """Wall-clock seconds of the first call (compiling) and of `repeats` more; `cpu_s`: the
  median CPU seconds of this process (every thread) per call, which a loaded machine inflates
  far less than the wall clock."""
  t0 = time.perf_counter()
  call()
  first = time.perf_counter() - t0
  times, cpu = [], []
  for _ in range(repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    call()
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
  return {'first_s': round(first, 3), 'median_s': round(statistics.median(times), 3),
          'min_s': round(min(times), 3), 'max_s': round(max(times), 3),
          'cpu_s': round(statistics.median(cpu), 3)}


def ok(r):
  if r.status_code != 200:
    raise SystemExit(f'error: {r.request.url}: {r.status_code} {r.text}')
  return r.json()


def measure(spec: str, repeats: int) -> dict:
  model = random_model(spec)
  studio = engine.Studio([model])
  try:
    with TestClient(server.create_app(studio)) as c:
      run = next(iter(studio.runs))
      # The first upload waits for the parsing worker to start (it imports the model code).
      t0 = time.perf_counter()
      ok(c.post(f'/api/runs/{run}/uploads?name=first.mid', content=FILES[0].read_bytes()))
      first_upload_s = time.perf_counter() - t0
      t0 = time.perf_counter()
      ups = [ok(c.post(f'/api/runs/{run}/uploads?name={p.name}', content=p.read_bytes()))
             for p in FILES]
      upload_s = (time.perf_counter() - t0) / len(FILES)
      a, b = ({'upload': u['upload']} for u in ups)
      res = {}
      res['sample_8'] = timed(lambda: ok(c.post(f'/api/runs/{run}/sample', json={
          'num': 8, 'temperature': 0.5})), repeats)
      interp = {}

      def interpolate():
        interp.update(ok(c.post(f'/api/runs/{run}/interpolate', json={
            'a': a, 'b': b, 'steps': 7, 'temperature': 0.5})))
      res['interpolate_7'] = timed(interpolate, repeats)
      res['reconstruct'] = timed(lambda: ok(c.post(f'/api/runs/{run}/reconstruct', json={
          'input': a})), repeats)
      res['point'] = timed(lambda: ok(c.post(f'/api/runs/{run}/point', json={
          'z_a': interp['z_a'], 'z_b': interp['z_b'], 't': 0.5, 'temperature': 0.5})), repeats)
      res['upload_s'] = {'first_s': round(first_upload_s, 3), 'mean_s': round(upload_s, 3)}
  finally:
    studio.close()
  n_params = sum(x.size for x in jax.tree.leaves(model.params))
  return {'config': spec.split('/')[-1].replace('.py', ''), 'params': int(n_params),
          'time_steps': model.time, 'repeats': repeats, **res,
          'command': 'python ' + ' '.join(sys.argv), **machine.cpu_info(),
          **bench.machine_info()}


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--configs', default='configs/melody2.py:magenta,configs/melody16.py:small,'
                  'configs/melody16.py:magenta')
  ap.add_argument('--repeats', type=int, default=3)
  ap.add_argument('--json', default=None)
  a = ap.parse_args(argv)
  for spec in a.configs.split(','):
    bench.emit(measure(spec, a.repeats), a.json)


if __name__ == '__main__':
  main()
