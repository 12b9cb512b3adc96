r"""What makes a small model learn fastest per CPU-minute: variants trained for the same CPU time.

  XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
  taskset -c 0 python experiments/learning_speed.py --worker=0/2 &   # one core per worker
  XLA_FLAGS=... taskset -c 1 python experiments/learning_speed.py --worker=1/2 &
  wait; python experiments/learning_speed.py --render_only

Every variant is `--config` (default `configs/melody2.py:small`, VAE + scheduled sampling) with
the overrides of its row in VARIANTS. Its step budget is the same CPU time for all: the
variant's training step is timed first (`benchmarks/train_step.py`'s `benchmark`, process CPU
seconds per step, synthetic batch), then steps = cpu_minutes * 60 / cpu_s_per_step. The
schedules follow the budget, as in experiments/table1.py: the sampling rate k puts
p_sample = 0.99 at half the steps, and beta_rate = 0.05 ** (1 / steps) brings beta to 95% of its
maximum at the end. Each variant then trains with `mvae_jax.trainer.train_and_evaluate` in
`<root>/<name>/` (resumable) and is evaluated with `mvae_jax.evaluation.evaluate_run` (Recon, Recon
greedy, Next, KL, eval loss) on the first --eval_num_batches batches of the held-out split.
Results go to `<root>/<name>/learning_speed.json`; --render_only collects them into --out_json
and --out_md.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time
from typing import Any, Sequence

ROOT = pathlib.Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / 'experiments', ROOT / 'benchmarks'):
  if str(p) not in sys.path:
    sys.path.insert(0, str(p))

import table1  # noqa: E402  pylint: disable=g-import-not-at-top
from mvae_jax.machine import cpu_info  # noqa: E402  pylint: disable=g-import-not-at-top
from mvae_jax import config_lib, evaluation
from mvae_jax import trainer

# name -> overrides of the base config. Learning rates are the initial rate of the decay.
VARIANTS: dict[str, dict[str, Any]] = {
    'preset (b64, lr 1e-3)': {},
    'b64, lr 3e-3': {'optim.learning_rate': 3e-3},
    'b16, lr 1e-3': {'train.batch_size': 16},
    'b16, lr 3e-3': {'train.batch_size': 16, 'optim.learning_rate': 3e-3},
    'b256, lr 3e-3': {'train.batch_size': 256, 'optim.learning_rate': 3e-3},
    'b64, lr 3e-3, free bits 128': {'optim.learning_rate': 3e-3, 'loss.free_bits': 128.0},
    'b64, lr 3e-3, narrow (enc 64, dec 128)': {'optim.learning_rate': 3e-3,
                                               'model.enc_sizes': (64,),
                                               'model.dec_sizes': (128,)},
    'b64, lr 3e-3, wide (enc 256, dec 512)': {'optim.learning_rate': 3e-3,
                                              'model.enc_sizes': (256,),
                                              'model.dec_sizes': (512,)},
}


def slug(name: str) -> str:
  return ''.join(c if c.isalnum() else '_' for c in name).strip('_').replace('__', '_')


def variant_config(base: str, overrides: dict[str, Any], cpu_s_per_step: float | None,
                   cpu_minutes: float):
  name, _, preset = base.partition(':')
  config = config_lib.from_file(f'{name}:{preset or "small"}', overrides)
  if cpu_s_per_step is not None:
    steps = max(50, int(cpu_minutes * 60 / cpu_s_per_step))
    config = config_lib.apply_overrides(config, {
        'train.num_steps': steps, 'train.ss_rate': table1.ss_rate_for_budget(steps),
        'loss.beta_rate': round(0.05 ** (1.0 / steps), 8),
        'train.checkpoint_every_steps': steps, 'eval.every_steps': steps,
        'train.log_every_steps': max(1, steps // 10)})
  return config


def _time_step(config) -> dict[str, Any]:
  import train_step as bench  # benchmarks/train_step.py
  return bench.benchmark(config, config.train.batch_size, steps=6, warmup=2)


def run_one(name: str, args) -> dict[str, Any]:
  workdir = os.path.join(args.root, slug(name))
  out_path = os.path.join(workdir, 'learning_speed.json')
  done = table1._read_json(out_path)  # pylint: disable=protected-access
  if done is not None:
    print(f'[{name}] done before: {out_path}', flush=True)
    return done
  os.makedirs(workdir, exist_ok=True)
  timing_path = os.path.join(workdir, 'step_timing.json')
  timing = table1._read_json(timing_path)  # pylint: disable=protected-access
  if timing is None:
    timing = _time_step(variant_config(args.config, VARIANTS[name], None, args.cpu_minutes))
    table1._write_json(timing_path, timing)  # pylint: disable=protected-access
  config = variant_config(args.config, VARIANTS[name], timing['cpu_s_per_step'],
                          args.cpu_minutes)
  print(f'[{name}] {timing["cpu_s_per_step"]:.3f} CPU-s/step -> {config.train.num_steps} steps '
        f'(batch {config.train.batch_size})', flush=True)
  c0, t0 = time.process_time(), time.time()
  trainer.train_and_evaluate(config, os.path.join(workdir, 'run'))
  train_cpu, train_wall = time.process_time() - c0, time.time() - t0
  res = evaluation.evaluate_run(os.path.join(workdir, 'run'), recon_accuracy=True,
                               num_batches=args.eval_num_batches, seed=0)
  m = res['metrics']
  out = {'name': name, 'overrides': {k: list(v) if isinstance(v, tuple) else v
                                     for k, v in VARIANTS[name].items()},
         'cpu_s_per_step': timing['cpu_s_per_step'], 'steps': config.train.num_steps,
         'batch': config.train.batch_size, 'examples_seen': config.train.num_steps *
         config.train.batch_size, 'train_cpu_s': round(train_cpu, 1),
         'train_wall_s': round(train_wall, 1), 'eval_examples': res['examples'],
         'next': m.get('next_accuracy'), 'recon': m.get('recon_accuracy'),
         'recon_greedy': m.get('recon_greedy_accuracy'),
         'recon_greedy_event': m.get('recon_greedy_event_accuracy'),
         'majority': m.get('majority_accuracy'), 'kl': m.get('kl'),
         'eval_loss': m.get('recon_loss'), 'cpu': args.cpu_model, 'cpu_minutes': args.cpu_minutes}
  table1._write_json(out_path, out)  # pylint: disable=protected-access
  print(json.dumps(out), flush=True)
  return out


def render(results: list[dict[str, Any]], cpu_minutes: float) -> str:
  cpu = results[0]['cpu'] if results else cpu_info()['cpu_model']
  lines = [f'### Learning per CPU-minute: `melody2:small` (VAE + SS), {cpu_minutes:g} CPU-minutes '
           f'per variant, one core each ({cpu})', '',
           'Recon greedy = z = mu, argmax fed back; Recon = the reference eval (sampled); '
           'eval loss = teacher-forced cross-entropy (nats per 2-bar window).', '',
           '| variant | CPU-s/step (timed) | steps | examples | train CPU-min (measured) | Next | '
           'Recon | Recon greedy | Recon greedy (events) | KL | eval loss |',
           '|---|---|---|---|---|---|---|---|---|---|---|']
  for r in sorted(results, key=lambda r: -(r['recon_greedy'] or 0)):
    lines.append(f"| {r['name']} | {r['cpu_s_per_step']:.3f} | {r['steps']} | "
                 f"{r['examples_seen']:,} | {r['train_cpu_s'] / 60:.1f} | {r['next']:.3f} | {r['recon']:.3f} | "
                 f"{r['recon_greedy']:.3f} | {r['recon_greedy_event']:.3f} | {r['kl']:.1f} | "
                 f"{r['eval_loss']:.2f} |")
  if results:
    lines += ['', f"Majority level: {results[0]['majority']:.3f}; eval examples: "
              f"{results[0]['eval_examples']:,}."]
  return '\n'.join(lines) + '\n'


def main(argv: Sequence[str] | None = None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument('--config', default='configs/melody2.py:small')
  ap.add_argument('--cpu_minutes', type=float, default=3.0)
  ap.add_argument('--root', default='runs/learning_speed')
  ap.add_argument('--worker', default='0/1', help='i/n: run every n-th variant from the i-th')
  ap.add_argument('--only', default='', help='comma-separated variant names')
  ap.add_argument('--eval_num_batches', type=int, default=4)
  ap.add_argument('--out_json', default='docs/results/learning_speed.json')
  ap.add_argument('--out_md', default='docs/results/learning_speed.md')
  ap.add_argument('--render_only', action='store_true')
  args = ap.parse_args(argv)
  args.cpu_model = cpu_info()['cpu_model']
  names = list(VARIANTS)
  if args.only:
    names = [n for n in names if n in args.only.split(',')]
  if not args.render_only:
    i, n = (int(x) for x in args.worker.split('/'))
    for name in names[i::n]:
      run_one(name, args)
  results = [r for r in (table1._read_json(os.path.join(  # pylint: disable=protected-access
      args.root, slug(name), 'learning_speed.json')) for name in names) if r]
  if args.render_only:
    table1._write_json(args.out_json, results)  # pylint: disable=protected-access
    with open(args.out_md, 'w') as f:
      f.write(render(results, args.cpu_minutes))
    print(render(results, args.cpu_minutes))


if __name__ == '__main__':
  main()
