r"""Training-step and sampling throughput of every family on one accelerator, float32 and bfloat16.

  python benchmarks/gpu_bench.py --out=benchmarks/results/gpu            # on a GPU (via gpu.sh)
  python benchmarks/gpu_bench.py --dry_run --out=/tmp/gpu_dry            # the same code on the CPU

For each family (melody2, drums2, melody16, melody32, trio16) at the `magenta` and `paper` presets,
in float32 and bfloat16 (`model.dtype`; products in that dtype, float32 accumulation and
parameters): examples/s, median step time, compile time, peak device memory and MFU, the counted
matrix-product FLOPs of a training step (benchmarks/flops.py) per second against the device's
peak for that dtype. Then sampling throughput (free-running decode at temperature 0.5).

The first measurement is the headline: `melody16:magenta` (= Magenta's hierdec-mel_16bar) at batch
512 in bfloat16 (target: 40% MFU). Then generation at the released configs' sizes (the `magenta`
presets of melody2, drums2, melody16 and trio16 = cat-mel_2bar_small, cat-drums_2bar_small,
hierdec-mel_16bar, hierdec-trio_16bar), float32 as the released weights are, at batch 1 and 64.
The rest follow in order until `--budget_s` is spent; what did not fit is listed as skipped, never
silently dropped. `--dry_run` runs the same code path on the CPU at the `smoke` presets, batch 4
(generation: 1 and 4), 2 steps, so the script is checked before a GPU is lent.

Imports only the model, trainer and config code (no MIDI or dataset packages): gpu.sh --offline
brings ml-collections alone.

Writes `<out>/gpu_bench.json` (one record per measurement, with the device and software) and
`<out>/gpu_bench.md` (the table).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sample as sample_bench  # noqa: E402
from mvae_jax import config_lib  # noqa: E402
import train_step as bench  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILIES = ('melody16', 'melody2', 'drums2', 'melody32', 'trio16')
RELEASED = ('melody2', 'drums2', 'melody16', 'trio16')  # the released configs' families
SAMPLE_BATCHES = (1, 64)
PRESETS = ('magenta', 'paper')
DTYPES = ('bfloat16', 'float32')

# Dense peak FLOP/s by device name (vendor datasheets, SXM parts). float32 products run as TF32
# on these chips under JAX's default matmul precision, so float32 MFU is against the TF32 peak.
PEAKS = {
    'H100': {'bfloat16': 989e12, 'float32': 495e12},
    'H200': {'bfloat16': 989e12, 'float32': 495e12},
    'A100': {'bfloat16': 312e12, 'float32': 156e12},
}


def device_peak(dtype: str) -> float | None:
  kind = jax.local_devices()[0].device_kind
  for name, peaks in PEAKS.items():
    if name in kind:
      return peaks[dtype] * jax.local_device_count()
  return None


def peak_memory_gib() -> float | None:
  stats = jax.local_devices()[0].memory_stats()
  if not stats or 'peak_bytes_in_use' not in stats:
    return None
  return round(stats['peak_bytes_in_use'] / 2**30, 3)


def plan(dry_run: bool) -> list[tuple[str, str, str]]:
  """(family, preset, dtype) in the order they are measured: the headline first."""
  presets = ('smoke',) if dry_run else PRESETS
  out = [(f, p, d) for p in presets for f in FAMILIES for d in DTYPES]
  return sorted(out, key=lambda x: (x != ('melody16', presets[0], 'bfloat16'),
                                    PRESETS.index(x[1]) if x[1] in PRESETS else 0))


def measure_train(family: str, preset: str, dtype: str, *, batch: int | None, steps: int) -> dict:
  config = config_lib.from_file(f'{family}:{preset}', {'model.dtype': dtype})
  b = int(batch or config.train.batch_size)
  config = config_lib.apply_overrides(config, {'train.batch_size': b})
  r = bench.benchmark(config, b, steps, warmup=1)
  peak = device_peak(dtype)
  r.update({'kind': 'train_step', 'family': family, 'preset': preset,
            'peak_memory_gib': peak_memory_gib(),
            'mfu': round(r['gflop_per_s'] * 1e9 / peak, 4) if peak else None,
            'device_peak_tflops': peak / 1e12 if peak else None})
  return r


def measure_sample(family: str, preset: str, dtype: str, *, batch: int, calls: int) -> dict:
  config = config_lib.from_file(f'{family}:{preset}', {'model.dtype': dtype})
  r = sample_bench.benchmark(config, batch, calls)
  r.update({'kind': 'sample', 'family': family, 'preset': preset, 'dtype': dtype})
  return r


def markdown(records: list[dict], skipped: list[str]) -> str:
  dev = records[0]['devices'][0] if records else '?'
  lines = [f'Device: {dev} x {len(records[0]["devices"]) if records else 0}; jax '
           f'{jax.__version__}; {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}', '',
           '| config | dtype | batch | examples/s | step (ms) | compile (s) | peak mem (GiB) | '
           'GFLOP/s (counted) | MFU |', '|---|---|---|---|---|---|---|---|---|']
  for r in records:
    if r['kind'] != 'train_step':
      continue
    mfu = '-' if r.get('mfu') is None else f'{100 * r["mfu"]:.1f}%'
    mem = '-' if r.get('peak_memory_gib') is None else f'{r["peak_memory_gib"]:.2f}'
    lines.append(f'| {r["config"]} | {r["dtype"]} | {r["batch"]} | {r["examples_per_s"]:,.0f} | '
                 f'{1000 * r["median_step_s"]:.1f} | {r["compile_s"]:.1f} | {mem} | '
                 f'{r["gflop_per_s"]:,.0f} | {mfu} |')
  samples = [r for r in records if r['kind'] == 'sample']
  if samples:
    lines += ['', '| sampling (T = 0.5) | dtype | batch | sequences/s | call (ms) | compile (s) |',
              '|---|---|---|---|---|---|']
    for r in samples:
      lines.append(f'| {r["config"]} | {r["dtype"]} | {r["batch"]} | {r["sequences_per_s"]:,.1f} | '
                   f'{1000 * r["median_call_s"]:.2f} | {r["compile_s"]:.1f} |')
  if skipped:
    lines += ['', f'Not measured (time budget spent or failed): {", ".join(skipped)}.']
  return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--out', required=True, help='folder for gpu_bench.json and gpu_bench.md')
  ap.add_argument('--dry_run', action='store_true', help='CPU, smoke presets, batch 4, 2 steps')
  ap.add_argument('--steps', type=int, default=10)
  ap.add_argument('--batch', type=int, default=0, help="0 = each preset's train.batch_size")
  ap.add_argument('--sample_batches', default=','.join(map(str, SAMPLE_BATCHES)))
  ap.add_argument('--budget_s', type=float, default=180.0,
                  help='start no new measurement after this many seconds')
  a = ap.parse_args(argv)
  steps, batch = (2, 4) if a.dry_run else (a.steps, a.batch or None)
  sample_batches = [1, 4] if a.dry_run else [int(b) for b in a.sample_batches.split(',')]
  os.makedirs(a.out, exist_ok=True)
  records, skipped = [], []
  t0 = time.time()
  train = [('train', *x, None) for x in plan(a.dry_run)]
  samples = [('sample', f, 'smoke' if a.dry_run else 'magenta', 'float32', b)
             for f in RELEASED for b in sample_batches]
  todo = train[:1] + samples + train[1:]  # the headline, generation, then the other steps
  for what, family, preset, dtype, sample_batch in todo:
    name = f'{what} {family}:{preset} {dtype}' + (f' batch {sample_batch}' if sample_batch else '')
    if time.time() - t0 > a.budget_s:
      skipped.append(name)
      continue
    try:
      if what == 'train':
        r = measure_train(family, preset, dtype, batch=batch, steps=steps)
      else:
        r = measure_sample(family, preset, dtype, batch=sample_batch, calls=5)
    except Exception as e:  # an out-of-memory config must not cost the others
      print(f'{name}: failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}', flush=True)
      skipped.append(f'{name} ({type(e).__name__})')
      continue
    records.append(r)
    print(f'{name}: ' + (f'{r["examples_per_s"]:,.0f} examples/s, MFU {r.get("mfu")}'
                         if what == 'train' else f'{r["sequences_per_s"]:,.0f} sequences/s'),
          flush=True)
  with open(os.path.join(a.out, 'gpu_bench.json'), 'w') as f:
    json.dump({'records': records, 'skipped': skipped, 'dry_run': a.dry_run,
               'seconds': round(time.time() - t0, 1)}, f, indent=1)
  md = markdown(records, skipped)
  with open(os.path.join(a.out, 'gpu_bench.md'), 'w') as f:
    f.write(md)
  print(md)
  return 0 if records else 1


if __name__ == '__main__':
  sys.exit(main())
