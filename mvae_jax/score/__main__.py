r"""`python -m mvae_jax.score --workdir=RUN FILES_OR_DIRS [--samples=K]`: the command line of
`mvae_jax.score` (see its docstring)."""
from __future__ import annotations

if __name__ == '__main__':  # before JAX loads: TCMalloc where installed (see mvae_jax.machine)
  from mvae_jax import machine  # pylint: disable=g-import-not-at-top
  machine.use_fast_allocator()

import argparse
import os
import sys
import time
from typing import Sequence

from data_pipelines import console
from mvae_jax import checkpoints
from mvae_jax import score as S
from mvae_jax.trained_model import Model


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog='python -m mvae_jax.score',
      description='ELBO and importance-sampled log p(x) of MIDI files under a trained model.')
  p.add_argument('inputs', nargs='*', help='MIDI files or folders')
  p.add_argument('--workdir', required=True, help='run directory of a trained model')
  p.add_argument('--checkpoint_step', type=int, default=None)
  p.add_argument('--samples', type=int, default=S.DEFAULT_SAMPLES,
                 help=f'K codes z_k ~ q(z|x) per window (default {S.DEFAULT_SAMPLES})')
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--split', choices=('train', 'eval'), default=None,
                 help='score the windows of this dataset split instead of files')
  p.add_argument('--max_windows', type=int, default=None,
                 help='--split: a seeded random subset of this many windows')
  p.add_argument('--shuffle_time', action='store_true',
                 help='--split: also score each window with its steps shuffled in time')
  p.add_argument('--batch_size', type=int, default=None, help='rows per model call')
  p.add_argument('--out', default=None, help='output folder (default '
                 '<workdir>/scores/score-step<S>-K<K>-seed<seed>, next free index if taken)')
  return p


def run(args: argparse.Namespace) -> int:
  if not 1 <= args.samples <= S.MAX_SAMPLES:
    print(f'error: --samples must be in 1..{S.MAX_SAMPLES}, got {args.samples}', file=sys.stderr)
    return 2
  for name in ('batch_size', 'max_windows'):
    v = getattr(args, name)
    if v is not None and v < 1:
      print(f'error: --{name} must be positive, got {v}', file=sys.stderr)
      return 2
  if bool(args.inputs) == bool(args.split):
    print('error: give MIDI files / folders, or --split=train|eval (not both)', file=sys.stderr)
    return 2
  if (args.max_windows or args.shuffle_time) and not args.split:
    print('error: --max_windows and --shuffle_time go with --split', file=sys.stderr)
    return 2
  if not os.path.isdir(args.workdir):
    print(f'error: {args.workdir}: no such run directory', file=sys.stderr)
    return 1
  paths = S.expand_inputs(args.inputs) if args.inputs else []
  model = Model.load(args.workdir, args.checkpoint_step)
  samples = 1 if not model.use_encoder else args.samples
  if not model.use_encoder and args.samples != 1:
    print('baseline run (no encoder): log p(x) is exact, --samples is not used', file=sys.stderr)
  t0 = time.monotonic()
  if args.split:
    records = S.split_records(model, args.split, args.max_windows, samples, args.seed,
                            args.shuffle_time, args.batch_size)
    skipped = []
  else:
    records, skipped = S.score_files(model, paths, samples, args.seed, args.batch_size)
  for p, why in skipped:
    print(f'skipped {why}', file=sys.stderr)
  if not records:
    print('error: no input had a usable window for this model', file=sys.stderr)
    return 1
  settings = {'workdir': model.workdir, 'step': model.step, 'family': model.config.family,
              'preset': model.config.preset, 'kind': model.config.data.kind,
              'samples': samples, 'seed': args.seed, 'time_steps': model.time,
              'baseline': not model.use_encoder, 'split': args.split,
              'max_windows': args.max_windows, 'seconds': round(time.monotonic() - t0, 1)}
  base = args.out or os.path.join(model.workdir, 'scores',
                                  f'score-step{model.step}-K{samples}-seed{args.seed}')
  out = os.path.abspath(base if args.out else S.next_free(base))
  if args.out and os.path.isdir(out) and os.listdir(out):
    print(f'error: {out} already holds files; choose another --out', file=sys.stderr)
    return 1
  written = S.write_scores(records, out, settings, skipped)
  print(f'{model.config.family}:{model.config.preset} step {model.step}, K={samples}, '
        f'{sum(len(r["windows"]) for r in records)} windows, {settings["seconds"]:.0f} s')
  print(S.table(records, model.time))
  for p in written:
    print(p)
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  console.setup(args.workdir if os.path.isdir(args.workdir) else None, 'score')
  try:
    return run(args)
  except (FileNotFoundError, ValueError, checkpoints.DamagedCheckpointError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1


if __name__ == '__main__':
  sys.exit(main())
