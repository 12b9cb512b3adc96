r"""Our training step beside the reference's (Magenta's TF MusicVAE), alternating, same config.

  python benchmarks/compare_reference.py [--batches=64,512] [--rounds=3] [--steps=10] \
      [--ref_python=/tmp/magenta_tf215/bin/python] [--ref_script=PATH/bench_train.py] \
      [--json=benchmarks/results/compare_reference.json]

For each batch size and round, runs `benchmarks/train_step.py --config=configs/melody2.py:magenta`
(ours) and `../shared/tools/magenta/bench_train.py --config cat-mel_2bar_small` (the reference,
installed by `bash ../shared/tools/magenta/setup.sh /tmp/magenta_tf215`), each as its own process,
in alternating order (ours first in odd rounds, the reference first in even ones) so load changes
hit both alike. Both time the full step (loss, gradients, global-norm clipping, Adam) with
scheduled sampling on, on synthetic batches, 4,423,770 parameters each. Writes every run and a
summary (medians over rounds of the per-run median step time, their ratio, and the step's share
of the matrix-product roofline) as one JSON object.

The reference is never imported: it runs in its own virtual environment as a separate command.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import cpu_info  # noqa: E402  pylint: disable=g-import-not-at-top

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REF_SCRIPT = os.path.normpath(os.path.join(ROOT, '..', 'shared', 'tools', 'magenta',
                                           'bench_train.py'))

# FLOPs per example per training step of cat-mel_2bar_small (the count, which the
# reference's graph does: one-hot input products included): forward 0.23 GFLOP (encoder 0.16,
# decoder 0.07), backward twice that.
GFLOP_PER_EXAMPLE = 0.7
# A large float32 matrix product on this machine's 2 cores (numpy, 4096 x 4096, quiet machine).
ROOFLINE_GFLOPS = 205.0


def _last_json(text: str) -> dict:
  for line in reversed(text.strip().splitlines()):
    line = line.strip()
    if line.startswith('{'):
      return json.loads(line)
  raise ValueError(f'no JSON line in output:\n{text[-2000:]}')


def run_ours(batch: int, steps: int) -> dict:
  cmd = [sys.executable, os.path.join(HERE, 'train_step.py'),
         '--config=' + os.path.join(ROOT, 'configs', 'melody2.py') + ':magenta',
         f'--batch={batch}', f'--steps={steps}']
  out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
  return _last_json(out.stdout)


def run_reference(python: str, batch: int, steps: int, script: str = REF_SCRIPT) -> dict:
  cmd = [python, script, '--config', 'cat-mel_2bar_small', '--batch', str(batch),
         '--steps', str(steps), '--warmup', '2']
  out = subprocess.run(cmd, capture_output=True, text=True, check=True)
  return _last_json(out.stdout)


def summarise(runs: list[dict]) -> dict:
  """Per batch: medians over rounds for each side, and the ratios reference / ours. The paired
  ratio (same round, run back to back) is the one to quote when the load changes between rounds."""
  summary = {}
  for batch in sorted({r['batch'] for r in runs}):
    s = {}
    for who in ('ours', 'reference'):
      rows = [r for r in runs if r['batch'] == batch and r['who'] == who]
      step = float(np.median([r['median_step_s'] for r in rows]))
      gflop = GFLOP_PER_EXAMPLE * batch
      s[who] = {'median_step_s': round(step, 4), 'examples_per_s': round(batch / step, 1),
                'median_cpu_s_per_step': round(float(np.median([r['cpu_s_per_step'] for r in rows])), 4),
                'gflop_per_step': round(gflop, 1),
                'roofline_fraction': round(gflop / step / ROOFLINE_GFLOPS, 3),
                'loadavg_1m': [r['loadavg_1m_before'] for r in rows]}
    s['speedup_vs_reference'] = round(s['reference']['median_step_s'] / s['ours']['median_step_s'], 3)
    s['cpu_speedup_vs_reference'] = round(
        s['reference']['median_cpu_s_per_step'] / s['ours']['median_cpu_s_per_step'], 3)
    paired, paired_cpu = [], []
    for r in sorted({r['round'] for r in runs if r['batch'] == batch}):
      pair = {x['who']: x for x in runs if x['batch'] == batch and x['round'] == r}
      if len(pair) == 2:
        paired.append(round(pair['reference']['median_step_s'] / pair['ours']['median_step_s'], 3))
        paired_cpu.append(round(pair['reference']['cpu_s_per_step'] / pair['ours']['cpu_s_per_step'], 3))
    s['paired_speedups'] = paired
    s['median_paired_speedup'] = round(float(np.median(paired)), 3) if paired else None
    s['paired_cpu_speedups'] = paired_cpu
    summary[str(batch)] = s
  return summary


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--batches', default='64,512')
  ap.add_argument('--rounds', type=int, default=3)
  ap.add_argument('--steps', type=int, default=10)
  ap.add_argument('--ref_python', default='/tmp/magenta_tf215/bin/python')
  ap.add_argument('--ref_script', default=REF_SCRIPT,
                  help="the reference's bench_train.py (default: ../shared/tools/magenta beside the "
                       'checkout; pass /work/shared/tools/magenta/bench_train.py from a worktree)')
  ap.add_argument('--json', default=os.path.join(HERE, 'results', 'compare_reference.json'))
  ap.add_argument('--resummarise', action='store_true',
                  help='only recompute the summary of an existing --json file')
  a = ap.parse_args(argv)
  if a.resummarise:
    with open(a.json) as f:
      out = json.load(f)
    out['summary'] = summarise(out['runs'])
    with open(a.json, 'w') as f:
      json.dump(out, f, indent=1)
    print(json.dumps({'summary': out['summary']}, indent=1))
    return
  if not os.path.exists(a.ref_python):
    sys.exit(f'{a.ref_python} not found: bash {os.path.dirname(a.ref_script)}/setup.sh first')
  if not os.path.exists(a.ref_script):
    sys.exit(f'{a.ref_script} not found: pass --ref_script=PATH/bench_train.py')
  runs = []
  for batch in [int(b) for b in a.batches.split(',')]:
    for r in range(a.rounds):
      order = ('ours', 'reference') if r % 2 == 0 else ('reference', 'ours')
      for who in order:
        load = os.getloadavg()[0]
        res = (run_ours(batch, a.steps) if who == 'ours'
               else run_reference(a.ref_python, batch, a.steps, a.ref_script))
        row = {'who': who, 'batch': batch, 'round': r, 'median_step_s': res['median_step_s'],
               'cpu_s_per_step': res.get('cpu_s_per_step'), 'params': res.get('params'),
               'loadavg_1m_before': round(load, 2), 'raw': res}
        runs.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != 'raw'}), flush=True)
  summary = summarise(runs)
  out = {'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
         'machine': platform.machine(), **cpu_info(),
         'xla_flags': os.environ.get('XLA_FLAGS', ''),
         'config': 'ours melody2:magenta vs reference cat-mel_2bar_small', 'steps': a.steps,
         'rounds': a.rounds, 'gflop_per_example': GFLOP_PER_EXAMPLE,
         'roofline_gflops': ROOFLINE_GFLOPS, 'summary': summary, 'runs': runs}
  print(json.dumps({'summary': summary}, indent=1), flush=True)
  if a.json:
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, 'w') as f:
      json.dump(out, f, indent=1)


if __name__ == '__main__':
  sys.exit(main())
