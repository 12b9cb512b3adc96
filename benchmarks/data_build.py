r"""Data building throughput: MIDI (or ABC) files/s and windows/s, into a temporary data dir.

  python benchmarks/data_build.py --source=freedoom --kinds=all --mode=magenta [--json=OUT.json]
  python benchmarks/data_build.py --source=folk --kinds=mel_2bar --mode=paper  # ~7 min on 2 cores

Runs `data_pipelines.build.build_all` (conversion in worker processes, dedup, TFDS array_record
writing) into a fresh temporary directory that is deleted afterwards, so nothing is cached
between runs. Reports the wall time, files/s (files read or skipped, i.e. every file looked at)
and windows/s (windows extracted before dedup, over all kinds; windows kept after dedup/caps are
reported too). One JSON line.

Side by side with the reference converters (magenta mode, all four reference kinds, one process
each, alternating order, medians over rounds):

  python benchmarks/data_build.py --compare_reference --ref_python=/work/magenta_venv/bin/python \
      [--midi_dir=data_pipelines/freedoom] [--rounds=5] \\
      [--json=benchmarks/results/data_vs_reference.json]

Each round runs our extraction (`data_pipelines.extract.extract_folder`: read, split, quantise,
the windows of mel_2bar, mel_16bar, drums_2bar and trio_16bar, sorted) and the reference's
(`benchmarks/reference_data_time.py` under the reference's python: one read per file, then its
four converters) as separate processes, and compares process CPU time of the conversion alone
(imports and TensorFlow start-up excluded on both sides): files per CPU-second and the ratio.
CPU time, not wall time, because the machine is shared; the order alternates so load changes hit
both sides alike. Also records the CPU model, its vector ISA flags and core count.

Start-up of the extract CLI (what a small folder feels), medians over rounds:

  python benchmarks/data_build.py --startup [--midi_dir=DIR] [--rounds=7] [--code_root=DIR]

CPU seconds (user + system) of whole `python -m data_pipelines.extract` processes: `--help`, and
an extraction of the first 3 files of --midi_dir (magenta mode, the four reference kinds).
--code_root runs another checkout's code (e.g. an older commit unpacked with `git archive`) for
before / after figures.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step as bench  # noqa: E402
from mvae_jax.machine import cpu_info  # noqa: E402  pylint: disable=g-import-not-at-top
from data_pipelines import build as build_lib  # noqa: E402
from data_pipelines import extract  # noqa: E402
from data_pipelines import conversion
from data_pipelines import kinds as kinds_lib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REF_TOOL = os.path.normpath(os.path.join(ROOT, '..', 'shared', 'tools', 'magenta', 'windows.py'))


def benchmark(source: str, kinds: tuple[str, ...], mode: str, workers: int | None) -> dict:
  tmp = tempfile.mkdtemp(prefix='mvae_data_bench_')
  try:
    t0, c0 = time.perf_counter(), time.process_time()
    rep = build_lib.build_all(source, kinds, mode, data_dir=tmp, workers=workers)
    wall = time.perf_counter() - t0
    parent_cpu = time.process_time() - c0
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  raw = sum(k['windows_before_dedup'] for k in rep['kinds'].values())
  kept = sum(k['windows'] for k in rep['kinds'].values())
  return {
      'source': source, 'kinds': list(kinds), 'mode': mode, 'workers': rep['workers'],
      'files_total': rep['files_total'], 'files_read': rep['files_read'],
      'windows_before_dedup': raw, 'windows_kept': kept,
      'per_kind': {k: {'windows_before_dedup': v['windows_before_dedup'], 'windows': v['windows']}
                   for k, v in rep['kinds'].items()},
      'total_s': round(wall, 1), 'convert_s': rep['convert_s'],
      'files_per_s': round(rep['files_total'] / wall, 2),
      'windows_per_s': round(raw / wall, 1), 'kept_windows_per_s': round(kept / wall, 1),
      'parent_cpu_s': round(parent_cpu, 1),
      **bench.machine_info(),
  }


def time_ours(midi_dir: str) -> dict:
  """CPU seconds of our magenta-mode extraction of the four reference kinds over `midi_dir`."""
  kinds = tuple(extract.REFERENCE_CONFIGS)
  t0 = time.process_time()
  files, result, skipped = extract.extract_folder(midi_dir, 'magenta', kinds, log=lambda _: None)
  cpu = time.process_time() - t0
  return {'who': 'ours', 'files': len(files), 'skipped': sum(skipped.values()),
          'windows': sum(len(w) for w, _ in result.values()), 'cpu_s': round(cpu, 3)}


def _run_json(cmd: list[str]) -> dict:
  env = dict(os.environ, PYTHONPATH=ROOT)
  out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
  if out.returncode:
    raise SystemExit(f'{cmd[0]} failed ({out.returncode}):\n{out.stderr[-2000:]}')
  return json.loads(out.stdout.strip().splitlines()[-1])


def compare_reference(ref_python: str, ref_tool: str, midi_dir: str, rounds: int) -> dict:
  """Alternating rounds of ours and the reference; medians and ratio of files per CPU-second."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  ours_cmd = [sys.executable, os.path.abspath(__file__), '--time_ours', midi_dir]
  ref_cmd = [ref_python, os.path.join(HERE, 'reference_data_time.py'), ref_tool, midi_dir]
  runs = []
  for r in range(rounds):
    for who in (('ours', 'reference') if r % 2 == 0 else ('reference', 'ours')):
      load = round(os.getloadavg()[0], 2)
      res = _run_json(ours_cmd if who == 'ours' else ref_cmd)
      res.update(round=r, loadavg_1m_before=load)
      runs.append(res)
      print(json.dumps(res), file=sys.stderr, flush=True)
  side = {}
  for who in ('ours', 'reference'):
    rows = [x for x in runs if x['who'] == who]
    cpu = float(np.median([x['cpu_s'] for x in rows]))
    side[who] = {'files': rows[0]['files'], 'windows': rows[0]['windows'],
                 'median_cpu_s': round(cpu, 3), 'files_per_cpu_s': round(rows[0]['files'] / cpu, 1)}
  paired = []
  for r in range(rounds):
    pair = {x['who']: x['cpu_s'] for x in runs if x['round'] == r}
    paired.append(round(pair['reference'] / pair['ours'], 2))
  return {'midi_dir': midi_dir, 'mode': 'magenta', 'kinds': list(extract.REFERENCE_CONFIGS),
          'rounds': rounds, **side,
          'ratio_files_per_cpu_s': round(side['reference']['median_cpu_s']
                                         / side['ours']['median_cpu_s'], 2),
          'paired_ratios': paired, 'runs': runs, **cpu_info(), **bench.machine_info()}


def _child_cpu(cmd: list[str], cwd: str, env: dict) -> float:
  """User + system CPU seconds of one child process run to completion."""
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def startup(midi_dir: str, rounds: int, code_root: str) -> dict:
  """CPU seconds of the extract CLI: `--help`, and 3 files of `midi_dir` (medians)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  small = tempfile.mkdtemp(prefix='mvae_startup_')
  try:
    for rel in extract.midi_files(midi_dir)[:3]:
      shutil.copy(os.path.join(midi_dir, rel), os.path.join(small, os.path.basename(rel)))
    env = dict(os.environ, PYTHONPATH=code_root)
    out = os.path.join(small, 'out.npz')
    cmds = {'help': [sys.executable, '-m', 'data_pipelines.extract', '--help'],
            'three_files': [sys.executable, '-m', 'data_pipelines.extract', '--mode=magenta',
                            f'--out={out}', small]}
    runs = {name: [] for name in cmds}
    for _ in range(rounds):
      for name, cmd in cmds.items():
        runs[name].append(round(_child_cpu(cmd, code_root, env), 3))
  finally:
    shutil.rmtree(small, ignore_errors=True)
  return {'code_root': code_root, 'midi_dir': midi_dir, 'rounds': rounds,
          **{f'{name}_median_cpu_s': round(float(np.median(v)), 3) for name, v in runs.items()},
          'runs': runs, **cpu_info(), **bench.machine_info()}


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--source', choices=kinds_lib.SOURCES)
  ap.add_argument('--compare_reference', action='store_true',
                  help='side by side with the reference converters (see above)')
  ap.add_argument('--ref_python', default='/work/magenta_venv/bin/python',
                  help='python of the reference environment (with --compare_reference)')
  ap.add_argument('--ref_tool', default=REF_TOOL,
                  help="the reference's windows.py (with --compare_reference)")
  ap.add_argument('--midi_dir', default=os.path.relpath(conversion.FREEDOOM_DIR, ROOT),
                  help='MIDI folder (with --compare_reference)')
  ap.add_argument('--rounds', type=int, default=5)
  ap.add_argument('--startup', action='store_true', help='start-up of the extract CLI (see above)')
  ap.add_argument('--code_root', default=ROOT, help='checkout whose code --startup runs')
  ap.add_argument('--time_ours', default=None, help=argparse.SUPPRESS)  # one side of a round
  ap.add_argument('--kinds', default='all', help='comma-separated kinds or "all"')
  ap.add_argument('--mode', default='paper', choices=kinds_lib.MODES)
  ap.add_argument('--workers', type=int, default=None, help='default: all CPUs')
  ap.add_argument('--json', default=None)
  a = ap.parse_args(argv)
  if a.time_ours:
    print(json.dumps(time_ours(a.time_ours)))
    return
  if a.startup:
    if a.rounds < 1 or not os.path.isdir(a.midi_dir) or not os.path.isdir(a.code_root):
      ap.error('--startup needs --rounds >= 1 and existing --midi_dir and --code_root folders')
    bench.emit(startup(a.midi_dir, a.rounds, os.path.abspath(a.code_root)), a.json)
    return
  if a.compare_reference:
    for flag, path in (('--ref_python', a.ref_python), ('--ref_tool', a.ref_tool)):
      if not os.path.exists(path):
        ap.error(f'{flag} {path} not found (the reference: ../shared/tools/magenta/setup.sh)')
    bench.emit(compare_reference(a.ref_python, a.ref_tool, a.midi_dir, a.rounds), a.json)
    return
  if not a.source:
    ap.error('--source is required (or --compare_reference)')
  if a.kinds == 'all':
    kinds = kinds_lib.FOLK_KINDS if a.source == 'folk' else kinds_lib.KINDS
  else:
    kinds = tuple(k.strip() for k in a.kinds.split(','))
  load0 = round(os.getloadavg()[0], 2)
  result = benchmark(a.source, kinds, a.mode, a.workers)
  result['loadavg_1m_start'] = load0
  bench.emit(result, a.json)


if __name__ == '__main__':
  sys.exit(main())
