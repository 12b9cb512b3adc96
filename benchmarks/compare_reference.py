r"""Our training step beside the reference's (Magenta's TF MusicVAE), alternating, same config.

  python benchmarks/compare_reference.py [--batches=64,512] [--rounds=3] [--steps=10] \
      [--ref_python=/tmp/magenta_tf215/bin/python] [--ref_script=PATH/bench_train.py] \
      [--ours_dtypes=float32,bfloat16] [--ref_tcmalloc=auto|no] [--ours_system_malloc] \
      [--single_core] [--json=benchmarks/results/compare_reference.json]

For each batch size and round, runs `benchmarks/train_step.py --config=configs/melody2.py:magenta`
(ours) and `../shared/tools/magenta/bench_train.py --config cat-mel_2bar_small` (the reference,
installed by `bash ../shared/tools/magenta/setup.sh /tmp/magenta_tf215`), each as its own process,
in alternating order (ours first in even rounds, the reference first in odd ones) so load changes
hit both alike. Ours runs once per round for each of --ours_dtypes (the matrix products' operand
dtype, `model.dtype`; accumulation, states and elementwise work stay float32). The default is
float32, plus bfloat16 where the CPU multiplies bfloat16 natively (avx512_bf16 or amx_bf16 in
its flags): elsewhere bfloat16 products are emulated (not measured on such a CPU here; no gain
is expected), so they are only run when asked for. `benchmarks/bf16_accuracy.py` measures what
bfloat16 products cost in accuracy. Both sides time the full step (loss, gradients, global-norm
clipping, Adam) with scheduled sampling on, on synthetic batches, 4,423,770 parameters each.
Writes every run and a summary (medians over rounds of the per-run median step time, their ratio, and the step's share
of the matrix-product roofline) as one JSON object, and the table as Markdown beside it (.md).

Allocators: ours runs as `python -m mvae_jax.train` does, with TCMalloc preloaded where the
system has it (`mvae_jax.machine.use_fast_allocator`); the reference runs as installed (system
malloc) and, where TCMalloc is found, also with it preloaded (`reference_tcmalloc`), so the table
shows both the user-facing comparison and the one with the allocator held equal.
`--ours_system_malloc` adds ours with the system malloc; `--single_core` adds one run per side
and batch pinned to one core. Every run records the allocator it had.

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

from mvae_jax.machine import ALLOCATOR_ENV, cpu_info, find_tcmalloc, native_bfloat16

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


def default_dtypes(isa_flags) -> str:
  """float32, and bfloat16 too where the CPU has native bfloat16 products."""
  return 'float32,bfloat16' if native_bfloat16(isa_flags) else 'float32'


def run_ours(batch: int, steps: int, dtype: str = 'float32', allocator: str = 'auto',
             single_core: bool = False) -> dict:
  """Ours as `python -m mvae_jax.train` runs: TCMalloc preloaded where the system has it
  (`allocator='auto'`), or the system's malloc (`'system'`)."""
  cmd = [sys.executable, os.path.join(HERE, 'train_step.py'),
         '--config=' + os.path.join(ROOT, 'configs', 'melody2.py') + ':magenta',
         f'--batch={batch}', f'--steps={steps}', '--set', f'model.dtype={dtype}']
  env = dict(os.environ, **{ALLOCATOR_ENV: allocator})
  out = subprocess.run(_pinned(cmd, single_core), cwd=ROOT, capture_output=True, text=True,
                       check=True, env=env)
  return _last_json(out.stdout)


def run_reference(python: str, batch: int, steps: int, script: str = REF_SCRIPT,
                  preload: str | None = None, single_core: bool = False) -> dict:
  """The reference as installed (system malloc), or with `preload` in LD_PRELOAD. On one core it
  runs with one intra- and one inter-op thread (its fastest single-core setting)."""
  cmd = [python, script, '--config', 'cat-mel_2bar_small', '--batch', str(batch),
         '--steps', str(steps), '--warmup', '2']
  if single_core:
    cmd += ['--intra', '1', '--inter', '1']
  env = dict(os.environ)
  if preload:
    env['LD_PRELOAD'] = preload
    env.setdefault('TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD', str(1 << 40))
  out = subprocess.run(_pinned(cmd, single_core), capture_output=True, text=True, check=True,
                       env=env)
  return _last_json(out.stdout)


def _pinned(cmd: list[str], single_core: bool) -> list[str]:
  """`cmd` pinned to CPU 0 with taskset when `single_core`."""
  return ['taskset', '-c', '0', *cmd] if single_core else cmd


def summarise(runs: list[dict]) -> dict:
  """Per batch: medians over rounds for each side (`ours` is float32, `ours_<dtype>` the other
  product dtypes), and for each of ours the ratios reference / ours. The paired ratio (same
  round, run back to back) is the one to quote when the load changes between rounds."""
  summary = {}
  for batch in sorted({r['batch'] for r in runs}):
    s = {}
    whos = sorted({r['who'] for r in runs if r['batch'] == batch},
                  key=lambda w: (w == 'reference', w))
    for who in whos:
      rows = [r for r in runs if r['batch'] == batch and r['who'] == who]
      step = float(np.median([r['median_step_s'] for r in rows]))
      gflop = GFLOP_PER_EXAMPLE * batch
      s[who] = {'median_step_s': round(step, 4), 'examples_per_s': round(batch / step, 1),
                'median_cpu_s_per_step': round(float(np.median([r['cpu_s_per_step'] for r in rows])), 4),
                'gflop_per_step': round(gflop, 1),
                'roofline_fraction': round(gflop / step / ROOFLINE_GFLOPS, 3),
                'loadavg_1m': [r['loadavg_1m_before'] for r in rows]}
    refs = [w for w in whos if w.startswith('reference')]
    if not refs:
      summary[str(batch)] = s
      continue
    for who in whos:
      if who.startswith('reference'):
        continue
      for ref in refs:
        ratios = {'speedup_vs_reference': round(s[ref]['median_step_s']
                                                / s[who]['median_step_s'], 3),
                  'cpu_speedup_vs_reference': round(s[ref]['median_cpu_s_per_step']
                                                    / s[who]['median_cpu_s_per_step'], 3)}
        paired, paired_cpu = [], []
        for r in sorted({r['round'] for r in runs if r['batch'] == batch}):
          pair = {x['who']: x for x in runs if x['batch'] == batch and x['round'] == r}
          if who in pair and ref in pair:
            paired.append(round(pair[ref]['median_step_s'] / pair[who]['median_step_s'], 3))
            paired_cpu.append(round(pair[ref]['cpu_s_per_step'] / pair[who]['cpu_s_per_step'],
                                    3))
        ratios.update(paired_speedups=paired,
                      median_paired_speedup=round(float(np.median(paired)), 3) if paired else None,
                      paired_cpu_speedups=paired_cpu,
                      median_paired_cpu_speedup=(round(float(np.median(paired_cpu)), 3)
                                                 if paired_cpu else None))
        if who == 'ours' and ref == 'reference':  # the float32 ratios also at the top level
          s.update(ratios)
        s[f'{who}_vs_{ref}'] = ratios
    summary[str(batch)] = s
  return summary


def markdown(out: dict) -> str:
  """The comparison as a Markdown table, with the machine it ran on."""
  lines = [f"Machine: {out.get('cpu_model', '?')}, {out.get('cpus', '?')} cores, ISA "
           f"{' '.join(out.get('isa_flags', [])) or '?'}; XLA_FLAGS "
           f"'{out.get('xla_flags', '')}'; {out.get('date', '')}; {out.get('rounds')} rounds of "
           f"{out.get('steps')} steps (medians).", '',
           '| batch | ours | ours malloc | ref malloc | ours s/step | ref s/step '
           '| median paired wall ratio (per round) | median paired CPU ratio (per round) '
           '| ours ex/s |',
           '|---|---|---|---|---|---|---|---|---|']
  for batch, s in out['summary'].items():
    for key, ratios in s.items():
      if '_vs_reference' not in key or not isinstance(ratios, dict):
        continue
      name, ref = key.split('_vs_', 1)
      dtype = 'float32' if name in ('ours', 'ours_system') else name[len('ours_'):]
      malloc = 'system' if name.endswith('_system') else out.get('ours_allocator', 'auto')
      ref_malloc = 'tcmalloc' if ref.endswith('_tcmalloc') else 'system'
      walls = ', '.join(f'{x:.2f}' for x in ratios['paired_speedups'])
      cpus = ', '.join(f'{x:.2f}' for x in ratios['paired_cpu_speedups'])
      lines.append(f"| {batch} | {dtype} | {malloc} | {ref_malloc} | "
                   f"{s[name]['median_step_s']:.3f} | "
                   f"{s[ref]['median_step_s']:.3f} | **{ratios['median_paired_speedup']:.2f}x**"
                   f" ({walls}) | **{ratios['median_paired_cpu_speedup']:.2f}x** ({cpus}) | "
                   f"{s[name]['examples_per_s']:.0f} |")
  single = out.get('single_core')
  if single:
    lines += ['', 'One core (`taskset -c 0`; the reference with one intra- and one inter-op '
              'thread):',
              '', '| batch | who | s/step |', '|---|---|---|']
    lines += [f"| {r['batch']} | {r['who']} | {r['median_step_s']:.3f} |" for r in single]
  return '\n'.join(lines) + '\n'


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
  ap.add_argument('--ours_dtypes', default=None,
                  help='comma-separated model.dtype values to run ours with (default: float32, '
                       'plus bfloat16 where the CPU has native bfloat16 products)')
  ap.add_argument('--ref_tcmalloc', default='auto', choices=['auto', 'no'],
                  help='auto: where the system has TCMalloc, also run the reference with it '
                       'preloaded (the allocator ours runs with), as reference_tcmalloc')
  ap.add_argument('--ours_system_malloc', action='store_true',
                  help='also run ours (float32) with the system malloc, as ours_system')
  ap.add_argument('--single_core', action='store_true',
                  help='also run ours (float32) and the reference once per batch on one core')
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
    print(markdown(out))
    return
  if not os.path.exists(a.ref_python):
    sys.exit(f'{a.ref_python} not found: bash {os.path.dirname(a.ref_script)}/setup.sh first')
  if not os.path.exists(a.ref_script):
    sys.exit(f'{a.ref_script} not found: pass --ref_script=PATH/bench_train.py')
  machine = cpu_info()
  dtypes = (a.ours_dtypes or default_dtypes(machine['isa_flags'])).split(',')
  ours = {('ours' if d == 'float32' else f'ours_{d}'): d for d in dtypes}
  if a.ours_system_malloc:
    ours['ours_system'] = 'float32'
  tcmalloc = find_tcmalloc() if a.ref_tcmalloc == 'auto' else None
  refs = {'reference': None, **({'reference_tcmalloc': tcmalloc} if tcmalloc else {})}
  runs, single = [], []
  for batch in [int(b) for b in a.batches.split(',')]:
    for r in range(a.rounds):
      # Even rounds: ours (each variant) then the reference(s); odd rounds the mirror image.
      order = [*ours, *refs] if r % 2 == 0 else [*reversed(list(refs)), *reversed(list(ours))]
      for who in order:
        load = os.getloadavg()[0]
        res = (run_ours(batch, a.steps, ours[who],
                        'system' if who == 'ours_system' else 'auto') if who in ours
               else run_reference(a.ref_python, batch, a.steps, a.ref_script, refs[who]))
        row = {'who': who, 'batch': batch, 'round': r, 'median_step_s': res['median_step_s'],
               'cpu_s_per_step': res.get('cpu_s_per_step'), 'params': res.get('params'),
               'allocator': res.get('allocator', 'tcmalloc' if refs.get(who) else 'system'),
               'loadavg_1m_before': round(load, 2), 'raw': res}
        runs.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != 'raw'}), flush=True)
    if a.single_core:
      for who in ('ours', 'reference'):
        res = (run_ours(batch, a.steps, single_core=True) if who == 'ours'
               else run_reference(a.ref_python, batch, a.steps, a.ref_script, single_core=True))
        single.append({'who': who, 'batch': batch, 'median_step_s': res['median_step_s'],
                       'cpu_s_per_step': res.get('cpu_s_per_step')})
        print(json.dumps(single[-1]), flush=True)
  summary = summarise(runs)
  out = {'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
         'machine': platform.machine(), **machine, 'ours_dtypes': dtypes,
         'xla_flags': os.environ.get('XLA_FLAGS', ''),
         'config': 'ours melody2:magenta vs reference cat-mel_2bar_small', 'steps': a.steps,
         'rounds': a.rounds, 'gflop_per_example': GFLOP_PER_EXAMPLE,
         'roofline_gflops': ROOFLINE_GFLOPS,
         'ours_allocator': next((r['allocator'] for r in runs if r['who'] == 'ours'), None),
         'reference_tcmalloc': tcmalloc, 'summary': summary, 'single_core': single,
         'runs': runs}
  print(json.dumps({'summary': summary}, indent=1), flush=True)
  print(markdown(out), flush=True)
  if a.json:
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, 'w') as f:
      json.dump(out, f, indent=1)
    with open(os.path.splitext(a.json)[0] + '.md', 'w') as f:
      f.write(markdown(out))


if __name__ == '__main__':
  sys.exit(main())
