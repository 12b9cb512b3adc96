r"""The measurements of docs/RESULTS.md "Latent-space tools" for one trained run.

  python experiments/latent_tools.py --workdir=/work/runs_shared/melody2_small --name=melody2_small
      [--num=512] [--score_windows=256] [--ks=1,10,100] [--samples=16]

1. Attribute vectors from the run's training split (`attributes compute`; reused if
   `<run>/attributes.npz` is already there at the same step).
2. The attribute-change matrix (the paper's Figure 6): every vector at +1 and -1 on up to
   `--num` held-out windows -> docs/results/attribute_matrix_<name>.{md,json,png}.
3. Score sanity: the ELBO and the importance-sampled log p(x) of up to `--score_windows` held-out
   windows and of the same windows with their steps shuffled in time, for each K of `--ks`
   -> docs/results/score_sanity_<name>.{md,json}.
4. Novelty: `--samples` prior samples (T 0.5) and their nearest training windows, with the time
   the search took -> in the score_sanity files.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

import numpy as np  # pylint: disable=g-import-not-at-top

from mvae_jax import attributes as A  # pylint: disable=g-import-not-at-top
from mvae_jax import novelty  # pylint: disable=g-import-not-at-top
from mvae_jax import score as S  # pylint: disable=g-import-not-at-top
from data_pipelines import console
from data_pipelines import inputs
from mvae_jax import input_pipeline
from mvae_jax import machine


def cpu_model() -> str:
  return machine.cpu_info()['cpu_model']


def main(argv=None) -> int:
  p = argparse.ArgumentParser()
  p.add_argument('--workdir', required=True)
  p.add_argument('--name', required=True)
  p.add_argument('--num', type=int, default=512)
  p.add_argument('--score_windows', type=int, default=256)
  p.add_argument('--ks', default='1,10,100')
  p.add_argument('--samples', type=int, default=16)
  p.add_argument('--out_dir', default=str(ROOT / 'docs' / 'results'))
  p.add_argument('--skip_matrix', action='store_true')
  p.add_argument('--vectors_midi_dir', default=None,
                 help='vectors from this folder of MIDI files instead of the training split')
  p.add_argument('--heldout_midi_dir', default=None,
                 help='held-out windows from this folder instead of the eval split (no '
                 'novelty search then: it needs the training split)')
  args = p.parse_args(argv)
  command = 'python experiments/latent_tools.py ' + shlex.join(sys.argv[1:] if argv is None
                                                                else argv)
  console.setup(args.workdir, 'latent_tools')
  from mvae_jax.trained_model import Model
  model = Model.load(args.workdir)
  name = f'{model.config.family}:{model.config.preset} step {model.step}'
  print(f'{name} ({args.workdir}) on {cpu_model()}', flush=True)
  out = {'command': command, 'run': args.workdir, 'model': name, 'cpu': cpu_model()}

  if model.use_encoder and not args.skip_matrix:
    t0 = time.monotonic()
    try:
      vecs = A.load_attribute_vectors(args.workdir)
      want = (f'midi_dir:{os.path.abspath(args.vectors_midi_dir)}' if args.vectors_midi_dir
              else 'split:train')
      if vecs.step != model.step or vecs.source != want:
        raise FileNotFoundError
    except FileNotFoundError:
      vecs = A.compute_attribute_vectors(model, split='train', midi_dir=args.vectors_midi_dir)
    print('\n'.join(vecs.describe()), flush=True)
    out['vectors_seconds'] = round(time.monotonic() - t0, 1)
    held = heldout(model, args, args.num)
    t0 = time.monotonic()
    res = A.attribute_change_matrix(model, held, vecs, progress=True)
    out['matrix_seconds'] = round(time.monotonic() - t0, 1)
    paths = A.write_matrix(res, os.path.join(args.out_dir, f'attribute_matrix_{args.name}'),
                           f'Attribute vectors of {name} ({args.name}) at +1 / -1',
                           command)
    print('\n'.join(paths), flush=True)

  # Score sanity: real held-out windows against the same windows shuffled in time.
  held = heldout(model, args, args.score_windows)
  shuffled = S.shuffle_time(held, seed=0)
  rows = []
  for k in [int(v) for v in args.ks.split(',')]:
    if not model.use_encoder and k > 1:
      continue
    t0 = time.monotonic()
    real = S.score_tokens(model, held, samples=k, seed=0, progress=f'K={k} real')
    shuf = S.score_tokens(model, shuffled, samples=k, seed=0, progress=f'K={k} shuffled')
    rows.append({
        'samples': k, 'seconds': round(time.monotonic() - t0, 1),
        **{f'real_{f}': float(real[f].mean()) for f in S.FIELDS},
        **{f'shuffled_{f}': float(shuf[f].mean()) for f in S.FIELDS},
        'real_better_fraction': float((real['log_p'] > shuf['log_p']).mean()),
        'bound_holds_fraction': float((real['log_p'] >= real['elbo']).mean()),
    })
    print(json.dumps(rows[-1]), flush=True)
  out['score'] = {'windows': int(len(held)), 'time_steps': model.time, 'rows': rows}

  stem = os.path.join(args.out_dir, f'score_sanity_{args.name}')
  if args.heldout_midi_dir:
    out['heldout'] = os.path.abspath(args.heldout_midi_dir)
  else:
    novelty_part(model, args, out)
  with open(stem + '.json', 'w') as f:
    json.dump(out, f, indent=1)
  with open(stem + '.md', 'w') as f:
    f.write(sanity_markdown(out, args.name))
  print(stem + '.md')
  return 0


def heldout(model, args, num: int) -> np.ndarray:
  """Up to `num` held-out windows: the eval split, or the windows of --heldout_midi_dir."""
  if not args.heldout_midi_dir:
    return input_pipeline.split_windows(model.config.data, 'eval', limit=num, seed=0)
  tokens = inputs.folder_windows(args.heldout_midi_dir, model.spec).tokens
  if len(tokens) > num:
    tokens = tokens[np.sort(np.random.default_rng(0).choice(len(tokens), num, False))]
  return tokens


def novelty_part(model, args, out: dict) -> None:
  """Prior samples and their nearest training windows, with the search's time."""
  t0 = time.monotonic()
  smp = model.sample_tokens(args.samples, 0.5, False, 0)
  t_sample = time.monotonic() - t0
  t0 = time.monotonic()
  train_tokens, _ = novelty.training_windows(model)
  t_read = time.monotonic() - t0
  t0 = time.monotonic()
  index, dist = novelty.nearest_windows(smp, train_tokens)
  t_search = time.monotonic() - t0
  report = novelty.nearest_training_windows(model, smp)  # cached split: adds the file lookups
  out['novelty'] = {
      'samples': args.samples, 'train_windows': int(len(train_tokens)),
      'cells': int(np.prod(smp.shape[1:])), 'distances': dist.tolist(),
      'copies': int((dist == 0).sum()), 'read_seconds': round(t_read, 2),
      'search_seconds': round(t_search, 3), 'sample_seconds': round(t_sample, 1),
      'nearest': [{k: v for k, v in r.items() if k != 'window'} for r in report]}
  print('\n'.join(novelty.describe(report)), flush=True)


def sanity_markdown(out: dict, name: str) -> str:
  sc = out['score']
  lines = [f'# Score sanity and novelty: {out["model"]} ({name})', '', 'Command:', '', '```',
           out['command'], '```', '', f'CPU: {out["cpu"]}.', '',
           f'{sc["windows"]} held-out windows ({sc["time_steps"]} steps each) and the same '
           'windows with their steps shuffled in time (same tokens, no musical time). Means '
           'over the windows, nats per window (bits per step in the last columns).', '',
           '| K | set | recon | KL | ELBO | log p (IS) | bits/step (ELBO) | bits/step (IS) | '
           'real > shuffled | log p >= ELBO | seconds |',
           '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
  for r in sc['rows']:
    for which in ('real', 'shuffled'):
      g = lambda f: r[f'{which}_{f}']  # noqa: E731
      extra = (f'{r["real_better_fraction"]:.0%} | {r["bound_holds_fraction"]:.0%} | '
               f'{r["seconds"]:.0f}' if which == 'real' else ' | | ')
      lines.append(f'| {r["samples"]} | {which} | {g("recon"):.2f} | {g("kl"):.2f} | '
                   f'{g("elbo"):.2f} | {g("log_p"):.2f} | {g("elbo_bits_per_step"):.3f} | '
                   f'{g("bits_per_step"):.3f} | {extra} |')
  if 'novelty' not in out:
    return '\n'.join(lines + ['', f'Held-out windows: the MIDI files of {out["heldout"]}.']) + '\n'
  nv = out['novelty']
  d = np.asarray(nv['distances'])
  lines += ['', '## Novelty of samples', '',
            f'{nv["samples"]} prior samples (temperature 0.5) against {nv["train_windows"]} '
            f'training windows ({nv["cells"]} tokens each): search {nv["search_seconds"]} s '
            f'(reading the split {nv["read_seconds"]} s). Exact copies: {nv["copies"]}; '
            f'Hamming distance to the nearest window: median {np.median(d):.0f}, min '
            f'{d.min()}, max {d.max()} tokens.', '',
            '| sample | nearest training window | bar | distance |', '|---:|---|---:|---:|']
  for r in nv['nearest']:
    lines.append(f'| {r["sample"]} | {r["path"]} | {r["bar"] if r["bar"] else "?"} | '
                 f'{r["distance"]} / {r["cells"]} |')
  return '\n'.join(lines) + '\n'


if __name__ == '__main__':
  sys.exit(main())
