r"""Time of the structure measures (mvae_jax.structure) on thousands of pieces.

  python benchmarks/structure.py [--pieces=5000] [--json=benchmarks/results/structure.json]

Synthetic pieces (seeded; the measures' cost does not depend on the notes): 32-bar melodies
(about one note-on in three steps, a few NOTE_OFFs, pitches 48..84) and 16-bar trios (lead and
bass like the melodies, drums random 9-bit masks on half the steps). Reports, per kind, the wall
and process (CPU) seconds of `measure_set` (every measure, summaries, mean similarity matrix)
and of `shuffle_bars`, best of --repeats, with the CPU model and the load average, so numbers
from a shared machine can be read for what they are.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mvae_jax import structure  # noqa: E402
from mvae_jax import machine


def melodies(rng, n, steps):
  u = rng.random((n, steps))
  pitch = rng.integers(48, 85, (n, steps)) + 2
  return np.where(u < 0.33, pitch, np.where(u < 0.38, 1, 0)).astype(np.int64)


def timed(fn, repeats):
  best = None
  for _ in range(repeats):
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    w, c = time.perf_counter() - w0, time.process_time() - c0
    best = (w, c) if best is None or w < best[0] else best
  return {'wall_s': round(best[0], 3), 'cpu_s': round(best[1], 3)}


def cpu_model() -> str:
  return machine.cpu_info()['cpu_model']


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--pieces', type=int, default=5000)
  p.add_argument('--repeats', type=int, default=2)
  p.add_argument('--json', default=None)
  args = p.parse_args()
  rng = np.random.default_rng(0)
  n = args.pieces
  mel = melodies(rng, n, 512)
  drums = np.where(rng.random((n, 256)) < 0.5, rng.integers(1, 512, (n, 256)), 0)
  trio = np.stack([melodies(rng, n, 256), melodies(rng, n, 256), drums], -1)
  results = {'command': ' '.join([sys.executable.split('/')[-1]] + sys.argv),
             'cpu': cpu_model(), 'cpu_count': os.cpu_count(),
             'load_average_before': list(os.getloadavg()), 'pieces': n, 'runs': {}}
  for name, tokens, drums_flags in (('mel_32bar', mel, (False,)),
                                    ('trio_16bar', trio, (False, False, True))):
    results['runs'][name] = {
        'measure_set': timed(lambda: structure.measure_set(tokens, drums_flags), args.repeats),
        'shuffle_bars': timed(lambda: structure.shuffle_bars(tokens, np.random.default_rng(1),
                                                             drums_flags), args.repeats)}
    print(name, json.dumps(results['runs'][name]), flush=True)
  results['load_average_after'] = list(os.getloadavg())
  if args.json:
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=1)
    print('wrote', os.path.abspath(args.json))


if __name__ == '__main__':
  main()
