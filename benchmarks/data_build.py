r"""Data building throughput: MIDI (or ABC) files/s and windows/s, building into a temporary data dir.

  python benchmarks/data_build.py --source=freedoom --kinds=all --mode=magenta [--json=OUT.json]
  python benchmarks/data_build.py --source=folk --kinds=mel_2bar --mode=paper  # ~7 min on 2 cores

Runs `data_pipelines.build.build_all` (conversion in worker processes, dedup, TFDS array_record
writing) into a fresh temporary directory that is deleted afterwards, so nothing is cached
between runs. Reports the wall time, files/s (files read or skipped, i.e. every file looked at)
and windows/s (windows extracted before dedup, over all kinds; windows kept after dedup/caps are
reported too). One JSON line.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step as bench  # noqa: E402
from data_pipelines import build as build_lib  # noqa: E402
from data_pipelines import encoding


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


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--source', required=True, choices=build_lib.SOURCES)
  ap.add_argument('--kinds', default='all', help='comma-separated kinds or "all"')
  ap.add_argument('--mode', default='paper', choices=encoding.MODES)
  ap.add_argument('--workers', type=int, default=None, help='default: all CPUs')
  ap.add_argument('--json', default=None)
  a = ap.parse_args(argv)
  if a.kinds == 'all':
    kinds = build_lib.FOLK_KINDS if a.source == 'folk' else encoding.KINDS
  else:
    kinds = tuple(k.strip() for k in a.kinds.split(','))
  load0 = round(os.getloadavg()[0], 2)
  result = benchmark(a.source, kinds, a.mode, a.workers)
  result['loadavg_1m_start'] = load0
  bench.emit(result, a.json)


if __name__ == '__main__':
  sys.exit(main())
