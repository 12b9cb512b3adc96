r"""Where a hierarchical VAE's signal path saturates, checkpoint by checkpoint.

  python experiments/collapse_probe.py --workdir=runs/collapse_diag/seed1_vae [--batch=64]
      [--steps=400,425,450] [--out_json=runs/collapse_diag/seed1_vae/probe.json]

For every kept checkpoint of a run (hierarchical decoder with an encoder) and the first `--batch`
windows of the eval split, the posterior mean z = mu is pushed through the model and each stage
of the path z -> conductor -> c_i -> bottom decoder is measured:

  kl          mean KL(q(z|x) || N(0, I)) per window, nats
  mu_abs      mean |mu|;  sigma: mean sigma
  cond_sat    fraction of the conductor's initial-state pre-activations Dense(z) with |.| > 3
              (tanh slope < 0.01: no gradient reaches the encoder through them)
  c_abs       mean |c_i| of the segment embeddings; c_spread: their standard deviation across
              the batch, averaged over units and segments (0: every window gets the same c_i)
  bot_init_sat  fraction of the bottom decoders' initial-state pre-activations Dense(c_i) with
              |.| > 3
  bot_gate_sat  fraction of the bottom decoders' layer-0 gate contributions W_c c_i + b with
              |.| > 5 (sigmoid / tanh slope < 0.007)
  loss, acc   teacher-forced cross-entropy (nats per window) and next-step accuracy on the batch

It reads checkpoints only (no training); one line per checkpoint and a JSON list at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import numpy as np

from mvae_jax import input_pipeline
from mvae_jax import losses
from mvae_jax import metrics
from mvae_jax.models import vae as vae_lib
from mvae_jax.models.vae import MusicVAE
from data_pipelines import console
from mvae_jax import run as run_lib


def kept_steps(workdir: str) -> list[int]:
  """Sorted checkpoint steps on disk."""
  ckpt = os.path.join(workdir, 'checkpoints')
  return sorted(int(d) for d in os.listdir(ckpt) if d.isdigit())


def probe(model: MusicVAE, params, tokens: np.ndarray) -> dict[str, float]:
  """The measurements above for one parameter set and one batch of tokens [batch, time, parts]."""
  if not model.use_encoder or model.decoder != 'hier':
    raise ValueError('the probe needs a hierarchical VAE (decoder=hier, use_encoder=True)')
  variables = {'params': params}
  tokens = jnp.asarray(tokens)
  mu, sigma = model.apply(variables, tokens, method=MusicVAE.encode)
  kl = losses.kl_divergence(mu, sigma)
  dec = params['decoder']
  init = dec['conductor']['initial_state']
  cond_pre = mu @ init['kernel'] + init['bias']
  c = model.apply(variables, mu, tokens.shape[0],
                  method=lambda m, z, b: m.dec.conditioning(z, b))  # [batch, segments, emb]
  out = {
      'kl': float(jnp.mean(kl)), 'mu_abs': float(jnp.mean(jnp.abs(mu))),
      'sigma': float(jnp.mean(sigma)),
      'cond_sat': float(jnp.mean(jnp.abs(cond_pre) > 3)),
      'c_abs': float(jnp.mean(jnp.abs(c))), 'c_spread': float(jnp.mean(jnp.std(c, axis=0))),
  }
  init_sat, gate_sat = [], []
  for name in vae_lib.default_part_names(model.part_is_drums):
    part = dec[name]
    vocab = part['logits']['kernel'].shape[-1]
    pre = c @ part['initial_state']['kernel'] + part['initial_state']['bias']
    init_sat.append(jnp.mean(jnp.abs(pre) > 3))
    layer = part['lstm_0']
    gates = c @ layer['input_kernel'][vocab:] + layer['bias']
    gate_sat.append(jnp.mean(jnp.abs(gates) > 5))
  out['bot_init_sat'] = float(jnp.mean(jnp.stack(init_sat)))
  out['bot_gate_sat'] = float(jnp.mean(jnp.stack(gate_sat)))
  logits = model.apply(variables, tokens, mu, method=MusicVAE.decode_teacher_forced)
  counts = metrics.accuracy_counts(logits, tokens)
  out['loss'] = float(jnp.mean(losses.reconstruction_loss(logits, tokens)))
  out['acc'] = float(jnp.sum(counts['correct']) / jnp.sum(counts['total']))
  return out


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  ap.add_argument('--workdir', required=True)
  ap.add_argument('--batch', type=int, default=64)
  ap.add_argument('--steps', default='', help='comma-separated checkpoint steps (default: all)')
  ap.add_argument('--out_json', default='')
  args = ap.parse_args(argv)
  console.setup(args.workdir, 'collapse_probe', verbose=False)
  steps = [int(s) for s in args.steps.split(',') if s] or kept_steps(args.workdir)
  first = run_lib.load(args.workdir, steps[0])
  config, model = first.config, first.model
  source = input_pipeline.get_source(config.data, 'eval')
  tokens = next(input_pipeline.eval_batches(source, global_batch=min(args.batch, len(source)),
                                            num_batches=1, process_index=0,
                                            process_count=1))['tokens']
  rows = []
  for step in steps:
    params = run_lib.load(args.workdir, step).params
    row = {'step': step, **probe(model, params, tokens)}
    rows.append(row)
    print(' '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}'
                   for k, v in row.items()), flush=True)
  if args.out_json:
    with open(args.out_json, 'w') as f:
      json.dump(rows, f, indent=1)
  return 0


if __name__ == '__main__':
  sys.exit(main())
