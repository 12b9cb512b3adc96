r"""Table 1 metrics: one evaluation step and the metrics of a split, for the eval command
(`mvae_jax.eval`) and for training's periodic evaluation alike.

`evaluate_run` loads `<workdir>/config.json` and the latest (or `--checkpoint_step`) Orbax checkpoint, runs the
eval split (`--split`) and reports the paper's Table 1 metrics, per instrument for trios:

  next_accuracy          "Next": teacher forced, z drawn from q(z|x).
  recon_accuracy         "Recon", the reference's variant: the decoder runs free on its own tokens
                         sampled at temperature 1 (the training forward with p_sample = 1), z drawn
                         from q(z|x). The hierarchical decoder gets the ground-truth last token of
                         the previous segment at each segment start, as in the reference's eval.
  recon_greedy_accuracy  "Recon" as a user means it: z = mu, argmax fed back, and the hierarchical
                         decoder feeds its own last token across segment starts (`decode`).
  kl                     KL(q(z|x) || N(0, I)) in nats, before free bits, mean per example.
  *_event_accuracy       the same accuracy over the steps whose target is not NO_EVENT (class 0,
                         "hold" / "no hit"), so a model that only predicts "hold" cannot look good;
  *_class_accuracy       the mean over the classes other than NO_EVENT of each class's accuracy.
  majority_accuracy      what always predicting the split's most common class would score: the
                         level every accuracy above has to beat.

Baseline runs (`model.use_encoder=False`) have no KL; their Recon is free-running generation
(sampled at temperature 1, and greedy) scored against the targets.

With `--recon_accuracy` the free-running metrics are computed too (slower). Batches are sharded
over every device like training; sums (numerators and denominators) are added over batches and
divided once, with padding rows of the last batch masked out. A fixed `--seed` gives the same
numbers every time. Results are printed as a Table 1 row and written as JSON to `--output`
(default `<workdir>/eval_<step>.json`). The work is in `evaluate_run(workdir, ...)`.
"""
from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines import console
from mvae_jax import input_pipeline, losses, metrics, parallel
from mvae_jax import run as run_lib
from mvae_jax.models import MusicVAE, default_part_names


# ----------------------------------------------------------------------------- the metrics

def eval_sums(params: Any, batch: dict[str, jax.Array], rng: jax.Array, *, model: MusicVAE,
              recon_accuracy: bool) -> dict[str, Any]:
  """Sums over one global batch; padding rows (weight 0) count nothing.

  Returns {'next', 'recon', 'recon_greedy': `metrics.accuracy_counts` dicts,
  'kl', 'recon_loss', 'examples': float32 scalars (weighted sums)}.
  """
  tokens, w = batch['tokens'], batch['weights']
  size, steps = tokens.shape[:2]
  lengths = jnp.where(w > 0, steps, 0).astype(jnp.int32)  # masks whole padding rows
  k_z, k_sample, k_free = jax.random.split(rng, 3)
  variables = {'params': params}
  logits, aux = model.apply(variables, tokens, p_sample=0.0, rngs={'z': k_z, 'sample': k_sample})
  out = {'next': metrics.accuracy_counts(logits, tokens, lengths),
         'recon_loss': jnp.sum(losses.reconstruction_loss(logits, tokens) * w),
         'examples': jnp.sum(w)}
  if aux.get('mu') is not None:
    out['kl'] = jnp.sum(losses.kl_divergence(aux['mu'], aux['sigma']) * w)
  if recon_accuracy:
    decode = functools.partial(model.apply, variables, batch_size=size, time=steps,
                               method=MusicVAE.decode)
    if aux.get('mu') is not None:
      # Same z draw as above (same 'z' key); every fed-back token sampled at temperature 1.
      sampled, _ = model.apply(variables, tokens, p_sample=1.0,
                               rngs={'z': k_z, 'sample': k_free})
      _, greedy = decode(aux['mu'], greedy=True)
    else:
      _, sampled = decode(None, temperature=1.0, rngs={'sample': k_free})
      _, greedy = decode(None, greedy=True)
    out['recon'] = metrics.accuracy_counts(sampled, tokens, lengths)
    out['recon_greedy'] = metrics.accuracy_counts(greedy, tokens, lengths)
  return out


@functools.lru_cache(maxsize=16)
def _jitted_eval_sums(model: MusicVAE, recon_accuracy: bool, mesh: Any) -> Any:
  """One jitted `eval_sums` per (model, variant, mesh), so evaluating several checkpoints of a
  run compiles once."""
  repl, data_sh = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  return jax.jit(functools.partial(eval_sums, model=model, recon_accuracy=recon_accuracy),
                 in_shardings=(repl, data_sh, repl), out_shardings=repl)


def _finite_or_none(v: float) -> float | None:
  return None if v is None or not math.isfinite(v) else float(v)


def split_sums(params: Any, source: Any, *, model: MusicVAE, mesh: Any, batch_size: int,
               num_batches: int, rng: jax.Array, recon_accuracy: bool,
               progress: bool = False) -> tuple[dict[str, Any], list[np.ndarray]]:
  """`eval_sums` added over (the first `num_batches` global batches of) `source`, batch i with
  `fold_in(rng, i)`; and the targets' class counts per part (this host's rows), for the
  majority level. `params` must already be replicated over `mesh`."""
  step_fn = _jitted_eval_sums(model, recon_accuracy, mesh)
  total = None
  num = -(-len(source) // batch_size)
  if num_batches:
    num = min(num, num_batches)
  class_counts = [np.zeros(v, np.int64) for v in model.part_vocab]
  for i, local in enumerate(input_pipeline.eval_batches(source, global_batch=batch_size,
                                                        num_batches=num_batches)):
    real = local['tokens'][local['weights'] > 0]
    for p, v in enumerate(model.part_vocab):
      class_counts[p] += np.bincount(real[..., p].ravel(), minlength=v)
    sums = step_fn(params, parallel.global_batch_array(local, mesh), jax.random.fold_in(rng, i))
    total = sums if total is None else jax.tree.map(jnp.add, total, sums)
    if progress and console.is_terminal(sys.stderr):
      print(f'\rbatch {i + 1}/{num}', end='', file=sys.stderr, flush=True)
  if progress and console.is_terminal(sys.stderr):
    print(file=sys.stderr)
  return jax.device_get(total), class_counts


def metric_values(total: dict[str, Any], part_names: Sequence[str],
                  class_counts: Sequence[np.ndarray] | None = None) -> dict[str, float | None]:
  """The metrics of summed `eval_sums` (see `evaluate_run` for the names)."""
  n = float(total['examples'])
  out: dict[str, float | None] = {}
  for group in ('next', 'recon', 'recon_greedy'):
    if group in total:
      for k, v in metrics.summarize(total[group], part_names).items():
        key, _, part = k.partition('/')
        out[f'{group}_{key}' + (f'/{part}' if part else '')] = _finite_or_none(v)
  if class_counts is not None:
    # What "always predict the most common class" scores (per process: on this host's rows).
    out['majority_accuracy'] = _finite_or_none(
        sum(int(c.max()) for c in class_counts) / max(sum(int(c.sum()) for c in class_counts), 1))
    if len(part_names) > 1:
      for name, c in zip(part_names, class_counts):
        out[f'majority_accuracy/{name}'] = _finite_or_none(int(c.max()) / max(int(c.sum()), 1))
  out['kl'] = float(total['kl']) / n if 'kl' in total else None
  out['recon_loss'] = float(total['recon_loss']) / n
  return out


def evaluate(params: Any, source: Any, *, model: MusicVAE, mesh: Any, rng: jax.Array,
             batch_size: int, num_batches: int) -> dict[str, float]:
  """Training's periodic evaluation: the teacher-forced metrics (`next_*`, `kl`,
  `recon_loss`) and `examples`, on the first `num_batches` batches of `source` (0 = all)."""
  total, _ = split_sums(params, source, model=model, mesh=mesh, batch_size=batch_size,
                        num_batches=num_batches, rng=rng, recon_accuracy=False)
  values = metric_values(total, default_part_names(tuple(model.part_is_drums)))
  out = {k: v for k, v in values.items() if v is not None}
  out['examples'] = float(total['examples'])
  return out


def evaluate_run(workdir: str, *, step: int | None = None, recon_accuracy: bool = True,
                 num_batches: int = 0, batch_size: int | None = None, seed: int = 0,
                 split: str = 'eval', mesh: Any = None, verbose: bool = False,
                 midi_dir: str | None = None, workers: int | None = None) -> dict[str, Any]:
  """Table 1 metrics of a run's checkpoint on a split, or on a folder of MIDI files.

  Args:
    workdir: run directory (config.json + checkpoints/).
    step: checkpoint step; None = the latest.
    recon_accuracy: also the free-running metrics (recon_accuracy, recon_greedy_accuracy).
    num_batches: global batches to evaluate; 0 = the whole split.
    batch_size: global batch (default config.eval.batch_size); a multiple of the device count.
    seed: RNG seed of z and of the sampled tokens; batch i uses fold_in(seed, i).
    split: 'eval' (held out) or 'train'.
    mesh: device mesh (default: every device).
    verbose: progress on stderr, and what a missing dataset's build or the folder's extraction
      does (printed before it starts).
    midi_dir: instead of the run's dataset, every window of the model's kind and mode in the
      MIDI files under this folder, extracted now (`data_pipelines.inputs.folder_windows`, in
      `workers` processes; skipped files are named); `split` is then 'midi_dir'.
  Returns:
    {'workdir', 'step', 'split', 'family', 'preset', 'kind', 'mode', 'baseline', 'parts',
     'examples', 'batch_size', 'devices', 'seed', 'seconds', 'metrics': {name: float or None}};
    with `midi_dir`, also 'midi_dir' {'path', 'files', 'used', 'skipped' {path: reason},
    'no_windows' [paths]}.
    Metric names: '<group>_<accuracy|event_accuracy|class_accuracy>' with group next, recon,
    recon_greedy, plus '/<part>' per trio part; 'kl' (nats, None for a baseline) and
    'recon_loss' (teacher-forced cross-entropy, nats per example); 'majority_accuracy'.
  """
  t0 = time.time()
  loaded = run_lib.load(workdir, step)
  config, model = loaded.config, loaded.model
  mesh = parallel.make_mesh() if mesh is None else mesh
  batch_size_given = bool(batch_size)
  batch_size = int(batch_size or config.eval.batch_size)
  parallel.check_batch(batch_size, mesh, '--batch_size' if batch_size_given else
                       f'--batch_size (the default is {workdir}/config.json\'s eval.batch_size)')
  folder = None
  if midi_dir is not None:
    from data_pipelines import encoding, inputs  # pylint: disable=g-import-not-at-top
    spec = encoding.window_spec(config.data.kind, config.data.mode)
    if verbose:
      print(f'extracting {config.data.kind} ({config.data.mode} mode) windows from the MIDI '
            f'files under {os.path.abspath(midi_dir)}...', flush=True)
    folder = inputs.folder_windows(midi_dir, spec, workers=workers,
                                   progress=verbose and console.is_terminal(sys.stderr))
    if verbose:
      print(folder.describe(), flush=True)
    source, split = [{'tokens': t} for t in folder.tokens], 'midi_dir'
  else:
    # A MIDI-folder run is evaluated on the dataset it trained on (its recorded fingerprint).
    recorded = run_lib.load_dataset_record(loaded.workdir) or {}
    source = input_pipeline.get_source(config.data, split, recorded.get('fingerprint'))
  params = jax.device_put(loaded.params, parallel.replicated(mesh))
  total, class_counts = split_sums(params, source, model=model, mesh=mesh, batch_size=batch_size,
                                   num_batches=num_batches, rng=jax.random.PRNGKey(seed),
                                   recon_accuracy=recon_accuracy, progress=verbose)
  names = default_part_names(tuple(config.model.part_is_drums))
  extra = {} if folder is None else {'midi_dir': {
      'path': folder.midi_dir, 'files': folder.files, 'used': folder.used,
      'skipped': dict(folder.skipped), 'no_windows': list(folder.no_windows)}}
  return {
      **extra,
      'workdir': os.path.abspath(workdir), 'step': int(loaded.step), 'split': split,
      'family': config.family, 'preset': config.preset, 'kind': config.data.kind,
      'mode': config.data.mode, 'baseline': not config.model.use_encoder,
      'scheduled_sampling': bool(config.train.scheduled_sampling), 'parts': list(names),
      'examples': int(float(total['examples'])), 'batch_size': batch_size,
      'devices': int(mesh.devices.size), 'seed': seed, 'recon_accuracy': recon_accuracy,
      'seconds': round(time.time() - t0, 2),
      'metrics': metric_values(total, names, class_counts),
  }


def _fmt(v: float | None, digits: int = 3) -> str:
  return '-' if v is None else f'{v:.{digits}f}'


def table1_row(results: dict[str, Any]) -> str:
  """One Markdown row in the layout of the paper's Table 1 (and SPEC section 7):

  `| melody2:small (step 3000) | 0.986 / 0.951 / 72.9 |` = Next / Recon / KL; a baseline shows
  Next / Recon; a trio shows `lead 0.818 / 0.653, bass ..., drums ... (KL 177.4)`. Recon is the
  reference's variant (sampled feedback); '-' where it was not computed.
  """
  m = results['metrics']
  name = f'{results["family"]}:{results["preset"]} (step {results["step"]})'
  parts = results['parts']

  def cell(suffix: str) -> str:
    values = [_fmt(m.get(f'next_accuracy{suffix}')), _fmt(m.get(f'recon_accuracy{suffix}'))]
    return ' / '.join(values)

  if len(parts) > 1:
    body = ', '.join(f'{p} {cell("/" + p)}' for p in parts)
    if m.get('kl') is not None:
      body += f' (KL {m["kl"]:.1f})'
  else:
    body = cell('')
    if m.get('kl') is not None:
      body += f' / {m["kl"]:.1f}'
  return f'| {name} | {body} |'


def details(results: dict[str, Any]) -> str:
  """The other metrics, one line each, for the console."""
  m = results['metrics']
  folder = results.get('midi_dir')
  data = (f'{folder["path"]} ({folder["used"]} of {folder["files"]} MIDI files)' if folder
          else f'{results["split"]} split')
  header = (f'{results["family"]}:{results["preset"]} step {results["step"]} | {data}, '
            f'{results["examples"]} examples, {results["devices"]} device(s), '
            f'{results["seconds"]:.1f}s')
  lines = [header]
  cols = ('next', 'recon', 'recon_greedy')
  lines.append(f'{"":22s}' + ''.join(f'{c:>14s}' for c in cols))
  suffixes = [''] + (['/' + p for p in results['parts']] if len(results['parts']) > 1 else [])
  for kind in ('accuracy', 'event_accuracy', 'class_accuracy'):
    for suffix in suffixes:
      label = kind + suffix
      lines.append(f'{label:22s}' + ''.join(f'{_fmt(m.get(f"{c}_{kind}{suffix}")):>14s}'
                                            for c in cols))
  majority = f'{"majority class level":22s}{_fmt(m.get("majority_accuracy")):>14s}'
  if len(results['parts']) > 1:
    majority += '  (' + ', '.join(f'{p} {_fmt(m.get(f"majority_accuracy/{p}"))}'
                                  for p in results['parts']) + ')'
  lines.append(majority + '  <- always predicting the most common class; the accuracies '
               'must beat it')
  lines.append(f'KL {_fmt(m.get("kl"), 2)} nats | teacher-forced cross-entropy '
               f'{_fmt(m.get("recon_loss"), 2)} nats per example')
  return '\n'.join(lines)


def write_json(results: dict[str, Any], path: str) -> str:
  """Writes `results` to `path` (through a temporary file that never stays behind)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  try:
    with open(path + '.tmp', 'w') as f:
      json.dump(results, f, indent=2, sort_keys=True)
    os.replace(path + '.tmp', path)
  except BaseException:
    if os.path.exists(path + '.tmp'):
      os.remove(path + '.tmp')
    raise
  return path


def default_output(results: dict[str, Any]) -> str:
  """`<workdir>/eval_<step>[_<split>].json`, or, when an earlier evaluation wrote that file,
  the next free `eval_<step>[_<split>]-2.json`, `-3`, ...: earlier results are never overwritten."""
  suffix = '' if results['split'] == 'eval' else f'_{results["split"]}'
  base = os.path.join(results['workdir'], f'eval_{results["step"]}{suffix}')
  path, k = base + '.json', 2
  while os.path.exists(path):
    path, k = f'{base}-{k}.json', k + 1
  return path
