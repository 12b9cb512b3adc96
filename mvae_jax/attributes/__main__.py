r"""`python -m mvae_jax.attributes compute|matrix|list --workdir=RUN [--midi_dir=DIR]`: the
command line of `mvae_jax.attributes` (see its docstring)."""
from __future__ import annotations

if __name__ == '__main__':  # before JAX loads: TCMalloc where installed (see mvae_jax.machine)
  from mvae_jax import machine  # pylint: disable=g-import-not-at-top
  machine.use_fast_allocator()

import argparse
import math
import os
import shlex
import sys
import time
from typing import Sequence

import numpy as np

from data_pipelines import console, inputs
from mvae_jax import attributes as A
from mvae_jax import checkpoints, input_pipeline
from mvae_jax.trained_model import Model


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog='python -m mvae_jax.attributes',
      description='Attribute vectors of a trained MusicVAE (see the module docstring).')
  p.add_argument('command', choices=A.COMMANDS)
  p.add_argument('--workdir', required=True, help='run directory of a trained model')
  p.add_argument('--checkpoint_step', type=int, default=None, help='default: the latest')
  p.add_argument('--split', default=None, choices=('train', 'eval'),
                 help='compute: dataset split (default train); matrix: held-out windows '
                 '(default eval)')
  p.add_argument('--midi_dir', default=None,
                 help='compute / matrix: windows of the MIDI files in this folder instead')
  p.add_argument('--attributes', default=None,
                 help='compute: comma-separated names (default: all of the family)')
  p.add_argument('--fraction', type=float, default=A.DEFAULT_FRACTION,
                 help='compute: top and bottom group size (default: quartiles)')
  p.add_argument('--max_windows', type=int, default=None,
                 help='compute: a seeded random subset of this many windows (default: all)')
  p.add_argument('--num', type=int, default=512, help='matrix: held-out windows (at most)')
  p.add_argument('--batch_size', type=int, default=None)
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--out', default=None, help='matrix: output stem (default '
                 '<workdir>/attribute_matrix); writes .md, .json, .png')
  p.add_argument('--title', default=None, help='matrix: title of the table and picture')
  return p


def run(args: argparse.Namespace, argv: Sequence[str] = ()) -> int:
  for name in ('batch_size', 'num', 'max_windows'):
    v = getattr(args, name)
    if v is not None and v < 1:
      print(f'error: --{name} must be positive, got {v}', file=sys.stderr)
      return 2
  if not (math.isfinite(args.fraction) and 0 < args.fraction <= 0.5):
    print(f'error: --fraction must be in (0, 0.5], got {args.fraction}', file=sys.stderr)
    return 2
  if args.midi_dir and args.split:
    print('error: give --split or --midi_dir, not both', file=sys.stderr)
    return 2
  if not os.path.isdir(args.workdir):
    print(f'error: {args.workdir}: no such run directory', file=sys.stderr)
    return 1
  model = Model.load(args.workdir, args.checkpoint_step)
  name = f'{model.config.family}:{model.config.preset} step {model.step}'
  if args.command == 'list':
    for a in A.model_attribute_names(model):
      print(f'{a}  ({A.attribute_unit(a)})')
    return 0
  if not model.use_encoder:
    print(f'error: {args.workdir} is a baseline run (no encoder): it has no latent codes',
          file=sys.stderr)
    return 1
  if args.command == 'compute':
    attrs = [a.strip() for a in args.attributes.split(',')] if args.attributes else None
    t0 = time.monotonic()
    vecs = A.compute_attribute_vectors(model, split=args.split or 'train', midi_dir=args.midi_dir,
                                     attributes=attrs, fraction=args.fraction,
                                     max_windows=args.max_windows, seed=args.seed,
                                     batch_size=args.batch_size)
    print(f'{name}: attribute vectors from {vecs.num_windows} windows ({vecs.source}), '
          f'{time.monotonic() - t0:.0f} s', file=sys.stderr)
    for line in vecs.describe():
      print(line)
    print(A.vectors_path(model.workdir))
    return 0
  vecs = A.model_vectors(model)
  if args.midi_dir:
    tokens = inputs.folder_windows(args.midi_dir, model.spec, progress=True).tokens
    if len(tokens) > args.num:
      tokens = tokens[np.sort(np.random.default_rng(args.seed).choice(len(tokens), args.num,
                                                                       False))]
  else:
    tokens = input_pipeline.split_windows(model.config.data, args.split or 'eval', limit=args.num,
                                          seed=args.seed)
  res = A.attribute_change_matrix(model, tokens, vecs, batch_size=args.batch_size, progress=True)
  stem = args.out or os.path.join(model.workdir, 'attribute_matrix')
  title = args.title or f'Attribute vectors of {name} ({os.path.basename(model.workdir)})'
  command = 'python -m mvae_jax.attributes ' + shlex.join(argv)
  paths = A.write_matrix(res, stem, title, command)
  dom = res['diagonal_dominates']
  print(f'{name}: diagonal dominates in {int(dom.sum())} of {dom.size} rows', file=sys.stderr)
  for p in paths:
    print(os.path.abspath(p))
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  args = _parser().parse_args(argv)
  console.setup(args.workdir if os.path.isdir(args.workdir) else None, 'attributes')
  try:
    return run(args, argv)
  except (FileNotFoundError, ValueError, checkpoints.DamagedCheckpointError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1


if __name__ == '__main__':
  sys.exit(main())
