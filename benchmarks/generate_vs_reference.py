r"""Generation beside the reference's: sample, encode and interpolate, same weights, alternating.

  python benchmarks/generate_vs_reference.py [--configs=cat-mel_2bar_small,...] [--batches=1,64] \
      [--rounds=3] [--calls=20] [--hier_calls=3] [--work=/work/genbench_tools] \
      [--ref_python=/tmp/magenta_tf215/bin/python] [--json=benchmarks/results/generate_vs_reference.json] \
      [--results_md=benchmarks/RESULTS.md]
  python benchmarks/generate_vs_reference.py --dry_run --json=/tmp/gen.json   # ours only, smoke size

For each released config (cat-mel_2bar_small, cat-drums_2bar_small, hierdec-mel_16bar,
hierdec-trio_16bar) at its released sizes: a checkpoint with random weights written by the
reference's own graph code (`benchmarks/reference_generate.py make_checkpoint`, in the reference's
environment), imported on our side through the TF checkpoint path (`python -m
mvae_jax.import_magenta`), so both sides hold the same weights. Then per batch size and round two
processes, ours and the reference's, in alternating order (ours first in even rounds), each
timing through its public API:
  sample       ours `Model.sample_tokens(batch, T)`; the reference's
               `TrainedModel.decode_to_tensors(z ~ N(0, I), length, T)` (T = 0.5)
  encode       ours `Model.encode(tokens [batch, time, parts])`; the reference's `encode_tensors`
  interpolate  max(1, batch // 7) interpolations (encode the 2 endpoints, slerp to 7 points,
               decode them; batch 1: one, 7 points; batch 64: nine, 63 points):
               ours `Model.interpolate_pairs_tokens(a, b, 7, T)`; the reference encodes and
               decodes through `TrainedModel` at batch 2 * pairs and 7 * pairs (its batch size
               is fixed per graph: it gets the best one for each), slerp in numpy between.
Each process reports per operation the setup (ours: `Model.load`; the reference: building and
restoring its graphs), the first call (ours: compilation, or a read of the persistent compilation
cache), the median of `--calls` calls after one more warm-up call (wall) and the process CPU time
per call (all threads; the robust figure when the machine is shared). Inputs are random tokens
(their one-hot tensors on the reference's side); time does not depend on their values.

Writes every run, a summary (per config, batch and operation: medians over rounds, the paired
wall and CPU ratios reference / ours) and the table as Markdown beside the JSON; with
`--results_md` the table also replaces the block between the generate_vs_reference markers of
that file. The reference is never imported: it runs in its own environment as a separate command.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
from mvae_jax.machine import cpu_info  # noqa: E402  (imports nothing heavy)

CONFIGS = ('cat-mel_2bar_small', 'cat-drums_2bar_small', 'hierdec-mel_16bar',
           'hierdec-trio_16bar')
OPS = ('sample', 'encode', 'interpolate')
TEMPERATURE = 0.5
STEPS = 7  # interpolation points, endpoints included
REF_TOOLS = '/work/shared/tools/magenta'
MARK_START = '<!-- generate_vs_reference:start -->'
MARK_END = '<!-- generate_vs_reference:end -->'


def _last_json(text: str) -> dict:
  for line in reversed(text.strip().splitlines()):
    if line.strip().startswith('{'):
      return json.loads(line)
  raise ValueError(f'no JSON line in output:\n{text[-3000:]}')


# ----------------------------------------------------------------------------- our side

def interpolation_pairs(batch: int) -> int:
  """Interpolations per call at a batch size: as many 7-point interpolations as fit in `batch`
  decoded sequences, at least one (batch 1: one interpolation, 64: nine, 63 points)."""
  return max(1, batch // STEPS)


def sequences_per_call(op: str, batch: int) -> int:
  """Output sequences of one call: samples, encoded inputs, or decoded interpolation points."""
  return interpolation_pairs(batch) * STEPS if op == 'interpolate' else batch


def time_ours(run_dir: str | None, batch: int, ops: list[str], calls: int, warmup: int = 1,
              config_spec: str | None = None) -> dict:
  """Times our public API in this process: `Model.load(run_dir)` (or, for a dry run, random
  parameters of `config_spec`), then per operation the first call, `warmup` more and `calls`
  timed ones."""
  t0 = time.perf_counter()
  import jax  # pylint: disable=g-import-not-at-top
  from mvae_jax import config_lib, trained_model  # pylint: disable=g-import-not-at-top
  from mvae_jax import run as run_lib  # pylint: disable=g-import-not-at-top
  import_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  if run_dir:
    model = trained_model.Model.load(run_dir)
  else:
    config = config_lib.from_file(config_spec)
    module = run_lib.create_model(config.model)
    tokens = jax.numpy.zeros(run_lib.input_shape(config), jax.numpy.int32)
    keys = dict(zip(('params', 'z', 'sample'), jax.random.split(jax.random.PRNGKey(0), 3)))
    params = jax.jit(module.init)(keys, tokens)['params']
    model = trained_model.Model(config, module, params)
  setup = time.perf_counter() - t0
  rng = np.random.default_rng(0)

  def tokens(n):
    return np.stack([rng.integers(0, v, size=(n, model.time)) for v in model.part_vocab],
                    -1).astype(np.int32)

  pairs = interpolation_pairs(batch)
  x, a, b = tokens(batch), tokens(pairs), tokens(pairs)
  seed = iter(range(10**6))
  if hasattr(model, 'interpolate_pairs_tokens'):
    interpolate = lambda: model.interpolate_pairs_tokens(a, b, STEPS, TEMPERATURE,
                                                         seed=next(seed))
  else:  # code from before interpolate_pairs_tokens (measuring a change): one pair at a time
    interpolate = lambda: [model.interpolate_tokens(a[i:i + 1], b[i:i + 1], STEPS, TEMPERATURE,
                                                    seed=next(seed)) for i in range(pairs)]
  fns = {
      'sample': lambda: model.sample_tokens(batch, TEMPERATURE, seed=next(seed)),
      'encode': lambda: model.encode(x),
      'interpolate': interpolate,
  }
  out = {'who': 'ours', 'batch': batch, 'temperature': TEMPERATURE, 'steps': STEPS,
         'calls': calls, 'import_s': round(import_s, 3), 'setup_s': round(setup, 3),
         'compilation_cache': jax.config.jax_compilation_cache_dir, 'jax': jax.__version__,
         'ops': {}}
  for op in ops:
    fn = fns[op]
    t1 = time.perf_counter()
    fn()
    first = time.perf_counter() - t1
    for _ in range(warmup):
      fn()
    times, c0 = [], time.process_time()
    for _ in range(calls):
      t1 = time.perf_counter()
      fn()
      times.append(time.perf_counter() - t1)
    cpu = (time.process_time() - c0) / calls
    out['ops'][op] = {'first_call_s': round(first, 5),
                      'median_call_s': round(float(np.median(times)), 6),
                      'cpu_s_per_call': round(cpu, 6), 'times_s': [round(t, 6) for t in times]}
  return out


# ----------------------------------------------------------------------------- the driver

def prepare(config: str, work: str, ref_python: str, ref_tools: str) -> tuple[str, str]:
  """The random-weight checkpoint (reference side) and its import (ours), made once."""
  ckpt, run = os.path.join(work, 'ckpt', config), os.path.join(work, 'runs', config)
  if not os.path.exists(os.path.join(ckpt, 'checkpoint')):
    subprocess.run([ref_python, os.path.join(HERE, 'reference_generate.py'), 'make_checkpoint',
                    f'--config={config}', f'--out={ckpt}', f'--tools={ref_tools}'],
                   check=True, capture_output=True, text=True)
  if not os.path.exists(os.path.join(run, 'config.json')):
    subprocess.run([sys.executable, '-m', 'mvae_jax.import_magenta', f'--checkpoint={ckpt}',
                    f'--config={config}', f'--workdir={run}'], cwd=ROOT, check=True,
                   capture_output=True, text=True)
  return ckpt, run


def run_ours(run_dir: str, batch: int, ops: list[str], calls: int, warmup: int,
             cache: str | None) -> dict:
  env = dict(os.environ)
  if cache:
    env['MVAE_JAX_COMPILATION_CACHE'] = cache
  cmd = [sys.executable, os.path.abspath(__file__), '--_ours', f'--run={run_dir}',
         f'--batches={batch}', f'--ops={",".join(ops)}', f'--calls={calls}',
         f'--warmup={warmup}']
  out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
  if out.returncode:
    raise RuntimeError(f'ours failed:\n{out.stderr[-3000:]}')
  return _last_json(out.stdout)


def run_reference(ref_python: str, ref_tools: str, config: str, ckpt: str, batch: int,
                  ops: list[str], calls: int, warmup: int) -> dict:
  cmd = [ref_python, os.path.join(HERE, 'reference_generate.py'), 'time', f'--config={config}',
         f'--checkpoint={ckpt}', f'--batch={batch}', f'--ops={",".join(ops)}',
         f'--calls={calls}', f'--warmup={warmup}', f'--tools={ref_tools}',
         f'--temperature={TEMPERATURE}',
         f'--steps={STEPS}']
  out = subprocess.run(cmd, capture_output=True, text=True)
  if out.returncode:
    raise RuntimeError(f'reference failed:\n{out.stderr[-3000:]}')
  return _last_json(out.stdout)


def summarise(runs: list[dict]) -> dict:
  """Per 'config/batch/op': each side's medians over rounds and the paired ratios."""
  summary = {}
  keys = sorted({(r['config'], r['batch']) for r in runs}, key=lambda k: (
      CONFIGS.index(k[0]) if k[0] in CONFIGS else 99, k[0], k[1]))
  for config, batch in keys:
    rows = [r for r in runs if r['config'] == config and r['batch'] == batch]
    ops = [op for op in OPS if any(op in r['ops'] for r in rows)]
    for op in ops:
      s = {}
      for who in ('ours', 'reference'):
        mine = [r for r in rows if r['who'] == who and op in r['ops']]
        if not mine:
          continue
        med = float(np.median([r['ops'][op]['median_call_s'] for r in mine]))
        s[who] = {
            'median_call_ms': round(1000 * med, 3),
            'sequences_per_s': round(sequences_per_call(op, batch) / med, 1),
            'cpu_ms_per_call': round(1000 * float(np.median(
                [r['ops'][op]['cpu_s_per_call'] for r in mine])), 3),
            'first_call_s': [r['ops'][op]['first_call_s'] for r in mine],
            'rounds': [r['round'] for r in mine],
            # ours: imports + Model.load per process; the reference: imports per process and
            # building + restoring the graphs this operation needs
            'import_s': [r.get('import_s') for r in mine],
            'setup_s': [r['ops'][op].get('setup_s', r.get('setup_s')) for r in mine],
            'loadavg_1m_before': [r.get('loadavg_1m_before') for r in mine]}
      paired, paired_cpu = [], []
      for rnd in sorted({r['round'] for r in rows}):
        pair = {r['who']: r['ops'][op] for r in rows if r['round'] == rnd and op in r['ops']}
        if 'ours' in pair and 'reference' in pair:
          paired.append(round(pair['reference']['median_call_s'] / pair['ours']['median_call_s'], 3))
          paired_cpu.append(round(pair['reference']['cpu_s_per_call']
                                  / pair['ours']['cpu_s_per_call'], 3))
      if paired:
        s.update(paired_speedups=paired, paired_cpu_speedups=paired_cpu,
                 median_paired_speedup=round(float(np.median(paired)), 3),
                 median_paired_cpu_speedup=round(float(np.median(paired_cpu)), 3))
      summary[f'{config}/{batch}/{op}'] = s
  return summary


def _med(xs: list) -> float:
  xs = [x for x in xs if x is not None]
  return float(np.median(xs)) if xs else float('nan')


def markdown(out: dict) -> str:
  """The comparison tables (steady state; first calls) with the machine, load and command."""
  loads = [r.get('loadavg_1m_before') for r in out['runs'] if r.get('loadavg_1m_before') is not None]
  lines = [f"Machine: {out.get('cpu_model', '?')}, {out.get('cpus', '?')} cores, ISA "
           f"{' '.join(out.get('isa_flags', [])) or '?'}; jax {out.get('jax', '?')}; "
           f"{out.get('date', '')}; {out.get('rounds')} rounds; medians of {out.get('calls')} calls "
           f"after the first and {out.get('warmup')} more (hierdec: {out.get('hier_calls')} after "
           f"the first and {out.get('hier_warmup')} more); 1-minute load average "
           f"before each run {min(loads, default=0):.1f}-{max(loads, default=0):.1f}.",
           f"Command: `{out.get('command', '')}`", '',
           '| config | batch | op | ours ms/call | ref ms/call | wall ratio (per round) '
           '| ours CPU ms | ref CPU ms | CPU ratio (per round) | ours seq/s | ref seq/s |',
           '|---|---|---|---|---|---|---|---|---|---|---|']
  firsts = ['', 'First calls (seconds; ours: round 0 compiles, later rounds read the persistent '
            'compilation cache; the reference builds and restores its graph, then runs):', '',
            '| config | batch | op | ours first call, cold | ours first call, cached '
            '| ref graph build + restore | ref first call |', '|---|---|---|---|---|---|---|']
  procs = {}
  for key, s in out['summary'].items():
    config, batch, op = key.split('/')
    o, r = s.get('ours'), s.get('reference')
    if not o:
      continue
    walls = ', '.join(f'{x:.2f}' for x in s.get('paired_speedups', []))
    cpus = ', '.join(f'{x:.2f}' for x in s.get('paired_cpu_speedups', []))
    if r:
      lines.append(
          f"| {config} | {batch} | {op} | {o['median_call_ms']:.2f} | {r['median_call_ms']:.2f} | "
          f"**{s['median_paired_speedup']:.2f}x** ({walls}) | {o['cpu_ms_per_call']:.2f} | "
          f"{r['cpu_ms_per_call']:.2f} | **{s['median_paired_cpu_speedup']:.2f}x** ({cpus}) | "
          f"{o['sequences_per_s']:,.1f} | {r['sequences_per_s']:,.1f} |")
    else:
      lines.append(f"| {config} | {batch} | {op} | {o['median_call_ms']:.2f} | - | - | "
                   f"{o['cpu_ms_per_call']:.2f} | - | - | {o['sequences_per_s']:,.1f} | - |")
    cold = [f for f, rnd in zip(o['first_call_s'], o['rounds']) if rnd == 0]
    warm = [f for f, rnd in zip(o['first_call_s'], o['rounds']) if rnd > 0]
    firsts.append(
        f"| {config} | {batch} | {op} | {_med(cold):.2f} | "
        f"{_med(warm):.2f} | " + (f"{_med(r['setup_s']):.2f} | {_med(r['first_call_s']):.2f} |"
                                  if r else '- | - |'))
    procs.setdefault(config, {'ours_import': [], 'ours_load': [], 'ref_import': []})
    procs[config]['ours_import'] += o['import_s']
    procs[config]['ours_load'] += o['setup_s']
    if r:
      procs[config]['ref_import'] += r['import_s']
  firsts += ['', 'Per process (seconds, medians): ' + '; '.join(
      f"{c}: ours imports {_med(p['ours_import']):.1f} + Model.load {_med(p['ours_load']):.1f}, "
      f"the reference's imports {_med(p['ref_import']):.1f}" for c, p in procs.items()) + '.']
  return '\n'.join(lines + firsts) + '\n'


def write_results_md(path: str, table: str) -> None:
  """Replaces the text between the markers in `path` by `table` (the markers must exist)."""
  with open(path) as f:
    text = f.read()
  if MARK_START not in text or MARK_END not in text:
    raise ValueError(f'{path} has no {MARK_START} ... {MARK_END} block')
  head, rest = text.split(MARK_START, 1)
  _, tail = rest.split(MARK_END, 1)
  with open(path, 'w') as f:
    f.write(f'{head}{MARK_START}\n{table}{MARK_END}{tail}')


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--configs', default=','.join(CONFIGS))
  ap.add_argument('--batches', default='1,64')
  ap.add_argument('--ops', default=','.join(OPS))
  ap.add_argument('--rounds', type=int, default=3)
  ap.add_argument('--calls', type=int, default=20, help='timed calls per operation (2-bar)')
  ap.add_argument('--hier_calls', type=int, default=2, help='timed calls per operation (hierdec)')
  ap.add_argument('--warmup', type=int, default=1,
                  help='untimed calls after the first, per operation (2-bar)')
  ap.add_argument('--hier_warmup', type=int, default=0,
                  help='untimed calls after the first, per operation (hierdec)')
  ap.add_argument('--work', default='/work/genbench_tools',
                  help='checkpoints (ckpt/NAME), imported runs (runs/NAME), compilation cache')
  ap.add_argument('--ref_python', default='/tmp/magenta_tf215/bin/python')
  ap.add_argument('--ref_tools', default=REF_TOOLS, help='the folder holding magenta_compat.py')
  ap.add_argument('--json', default=os.path.join(HERE, 'results', 'generate_vs_reference.json'))
  ap.add_argument('--results_md', default=None,
                  help='also write the table into this file between the markers')
  ap.add_argument('--dry_run', action='store_true',
                  help='ours only, random parameters of the smoke presets, 2 calls')
  ap.add_argument('--resummarise', action='store_true',
                  help='only recompute the summary and table of an existing --json file')
  ap.add_argument('--_ours', action='store_true', help=argparse.SUPPRESS)
  ap.add_argument('--run', default=None, help=argparse.SUPPRESS)
  ap.add_argument('--config_spec', default=None, help=argparse.SUPPRESS)
  a = ap.parse_args(argv)
  batches = [int(b) for b in a.batches.split(',')]
  ops = a.ops.split(',')
  if any(b < 1 for b in batches) or not set(ops) <= set(OPS) or a.rounds < 1 or a.calls < 1:
    ap.error(f'batches must be >= 1, ops among {",".join(OPS)}, rounds and calls >= 1')
  if a._ours:  # one process of ours (called by the driver)
    out = time_ours(a.run, batches[0], ops, a.calls, a.warmup, config_spec=a.config_spec)
    print(json.dumps(out), flush=True)
    return 0
  if a.resummarise:
    with open(a.json) as f:
      out = json.load(f)
    out['summary'] = summarise(out['runs'])
    _write(out, a.json, a.results_md)
    return 0

  machine = cpu_info()
  runs = []
  command = 'python benchmarks/generate_vs_reference.py ' + ' '.join(
      x for x in (argv if argv is not None else sys.argv[1:]))
  if a.dry_run:
    for spec in ('melody2:smoke', 'melody16:smoke'):
      for batch in batches:
        res = time_ours(None, batch, ops, 2, config_spec=spec)
        res.update(config=spec, round=0, loadavg_1m_before=round(os.getloadavg()[0], 2))
        runs.append(res)
        print(json.dumps({k: v for k, v in res.items()}), flush=True)
  else:
    if not os.path.exists(a.ref_python):
      print(f'error: {a.ref_python} not found: bash {a.ref_tools}/setup.sh first', file=sys.stderr)
      return 1
    # Emptied first, so that round 0's first calls compile (a new user's first call) and later
    # rounds' read the persistent compilation cache (every later process of that user).
    cache = os.path.join(a.work, 'jax_cache')
    shutil.rmtree(cache, ignore_errors=True)
    configs = a.configs.split(',')
    for config in configs:
      if config not in CONFIGS:
        ap.error(f'unknown config {config}; one of {",".join(CONFIGS)}')
      ckpt, run = prepare(config, a.work, a.ref_python, a.ref_tools)
      hier = config.startswith('hierdec')
      calls, warmup = (a.hier_calls, a.hier_warmup) if hier else (a.calls, a.warmup)
      for batch in batches:
        for rnd in range(a.rounds):
          for who in (('ours', 'reference') if rnd % 2 == 0 else ('reference', 'ours')):
            load = round(os.getloadavg()[0], 2)
            res = (run_ours(run, batch, ops, calls, warmup, cache) if who == 'ours' else
                   run_reference(a.ref_python, a.ref_tools, config, ckpt, batch, ops, calls,
                                 warmup))
            res.update(config=config, round=rnd, loadavg_1m_before=load)
            runs.append(res)
            print(json.dumps({k: v for k, v in res.items()
                              if k not in ('ops',)} | {'ops': {
                                  op: {k: v for k, v in d.items() if k != 'times_s'}
                                  for op, d in res['ops'].items()}}), flush=True)
  import jax  # pylint: disable=g-import-not-at-top  (only for the version)
  out = {'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
         'machine': platform.machine(), **machine, 'jax': jax.__version__,
         'xla_flags': os.environ.get('XLA_FLAGS', ''), 'command': command.strip(),
         'rounds': 1 if a.dry_run else a.rounds, 'calls': 2 if a.dry_run else a.calls,
         'hier_calls': 2 if a.dry_run else a.hier_calls, 'dry_run': a.dry_run,
         'warmup': a.warmup, 'hier_warmup': a.hier_warmup,
         'temperature': TEMPERATURE, 'interpolation_steps': STEPS,
         'summary': summarise(runs), 'runs': runs}
  _write(out, a.json, a.results_md)
  return 0


def _write(out: dict, path: str | None, results_md: str | None) -> None:
  table = markdown(out)
  print(table, flush=True)
  if path:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
      json.dump(out, f, indent=1)
    with open(os.path.splitext(path)[0] + '.md', 'w') as f:
      f.write(table)
  if results_md:
    write_results_md(results_md, table)


if __name__ == '__main__':
  sys.exit(main())
