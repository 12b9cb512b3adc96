r"""The paper's Table 1 on our data: one model family, its columns trained and evaluated alike.

  python experiments/table1.py --family=melody2            # 2-bar melody (folk), small sizes
  python experiments/table1.py --family=drums2             # 2-bar drums (Freedoom)
  python experiments/table1.py --family=melody16           # 16-bar melody: flat vs hierarchical
  python experiments/table1.py --family=trio16             # 16-bar trio (Freedoom), per instrument
  python experiments/table1.py --family=melody32           # 32-bar melody: 3 columns + flat decoder
  python experiments/table1.py --render_only               # docs/results/table1.md from docs/results/table1.json

Flags: --preset=small (any preset of the config file), --steps=N (default: the preset's
train.num_steps), --ss_rate=K (default: scaled to the step budget, see below),
--root=runs/table1, --out_json=docs/results/table1.json, --out_md=docs/results/table1_<family>.md,
--set section.field=value (repeatable; applied to every column), --columns=a,b (a subset),
--flat_dec_sizes=256,256 (melody16's flat column), --baseline_ss (scheduled sampling for the
baseline too; default teacher forcing), --eval_num_batches / --eval_batch_size / --eval_seed.

Columns (identical data, sizes, step budget, seed and schedules apart from what names them):
  melody2, drums2: baseline (decoder only, no encoder or z, teacher forced), vae (teacher forced),
                   vae_ss (inverse-sigmoid scheduled sampling).
  trio16:          baseline, vae, vae_ss as above (hierarchical decoder), with Next and Recon
                   per instrument (lead, bass, drums), each beside its own majority level.
  melody16:        flat (flat LSTM decoder, --flat_dec_sizes) and hier (conductor + bottom
                   decoder of the preset), both VAE + scheduled sampling.
  melody32:        baseline, vae, vae_ss (hierarchical decoder, the paper's row 3) and flat (the
                   same encoder and z with a flat LSTM decoder of --flat_dec_sizes, VAE + SS):
                   vae_ss against flat is the paper's claim that a flat decoder does not scale.

Each column trains in `<root>/<family>/<column>/` with `mvae_jax.trainer.train_and_evaluate`, one
after another. Resuming is free: a column whose final checkpoint and evaluation are on disk is
skipped; an interrupted one resumes from its latest checkpoint (train.py's resume, data position
included). A column directory made with a different config (other than a larger step budget) is
refused rather than silently mixed. Every kept checkpoint (the last `train.keep_checkpoints`) is
evaluated with `mvae_jax.evaluation.evaluate_run(recon_accuracy=True)` on the eval split; evaluations
are cached in `<workdir>/table1_eval_<step>.json`, so the ordering can be checked over the end of
training as well as at the final step. After every column the family's entry is merged into
--out_json (read-modify-write under a lock; other families are kept) and --out_md is rewritten.

Scheduled-sampling rate. The sampling probability is p(step) = 1 - k / (k + exp(step / k))
= sigmoid(step / k - ln k). It reaches p* at step s* = k (ln k + logit p*). The paper's k = 1000
puts p = 0.99 at step ~11.5k, which assumes 100k+ steps. The default here solves
k (ln k + ln 99) = steps / 2 for k (bisection; floored at 1), so p passes 0.99 at half the budget
and the second half trains (almost) free-running: k ~ 155 for 3000 steps, ~108 for 2000.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import pathlib
import sys
import time
from typing import Any, Sequence

if __name__ == '__main__':
  # As `python -m mvae_jax.train` runs: TCMalloc preloaded where installed (mvae_jax.machine).
  from mvae_jax import machine  # pylint: disable=g-import-not-at-top
  machine.use_fast_allocator()

from data_pipelines import kinds
from mvae_jax import config_lib, evaluation, schedules, trainer
from mvae_jax import run as run_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / 'configs'
if str(ROOT) not in sys.path:  # run as a script from anywhere
  sys.path.insert(0, str(ROOT))

# ----------------------------------------------------------------------------- families / columns

FAMILIES: dict[str, dict[str, Any]] = {
    'melody2': {'config': 'melody2', 'label': '2-bar melody',
                'columns': ('baseline', 'vae', 'vae_ss')},
    'drums2': {'config': 'drums2', 'label': '2-bar drums',
               'columns': ('baseline', 'vae', 'vae_ss')},
    'melody16': {'config': 'melody16', 'label': '16-bar melody',
                 'columns': ('flat', 'hier')},
    'trio16': {'config': 'trio16', 'label': '16-bar trio',
               'columns': ('baseline', 'vae', 'vae_ss')},
    'melody32': {'config': 'melody32', 'label': '32-bar melody',
                 'columns': ('baseline', 'vae', 'vae_ss', 'flat')},
}

COLUMN_TITLES = {'baseline': 'Baseline', 'vae': 'VAE', 'vae_ss': 'VAE + sched. sampling',
                 'flat': 'Flat decoder (VAE + SS)', 'hier': 'Hierarchical decoder (VAE + SS)'}

# The paper's Table 1 (SPEC.md section 7), trained on 1.5M MIDI files. melody16 has no paper row:
# the nearest is the 32-bar melody, hierarchical decoder (the paper gives no flat-decoder numbers
# for long sequences, only that it "does not scale well").
PAPER = {
    'drums2': {'label': '2-bar drums',
               'baseline': {'next': 0.722, 'recon': 0.395},
               'vae': {'next': 0.979, 'recon': 0.917, 'kl': 70.7},
               'vae_ss': {'next': 0.972, 'recon': 0.963, 'kl': 73.5}},
    'melody2': {'label': '2-bar melody',
                'baseline': {'next': 0.723, 'recon': 0.619},
                'vae': {'next': 0.986, 'recon': 0.951, 'kl': 72.9},
                'vae_ss': {'next': 0.989, 'recon': 0.987, 'kl': 76.2}},
    'melody16': {'label': '32-bar melody (hierarchical; paper has no flat or 16-bar row)',
                 'hier': {'next': 0.724, 'recon': 0.722, 'kl': 343.8}},
    'melody32': {'label': '32-bar melody',
                 'baseline': {'next': 0.736, 'recon': 0.579},
                 'vae': {'next': 0.824, 'recon': 0.674, 'kl': 173.2},
                 'vae_ss': {'next': 0.724, 'recon': 0.722, 'kl': 343.8}},
    # Per instrument (lead, bass, drums); the KL is the whole trio's.
    'trio16': {'label': '16-bar trio',
               'baseline': {'parts': {'lead': {'next': 0.735, 'recon': 0.423},
                                      'bass': {'next': 0.781, 'recon': 0.414},
                                      'drums': {'next': 0.810, 'recon': 0.221}}},
               'vae': {'kl': 177.4, 'parts': {'lead': {'next': 0.818, 'recon': 0.653},
                                              'bass': {'next': 0.882, 'recon': 0.692},
                                              'drums': {'next': 0.926, 'recon': 0.808}}},
               'vae_ss': {'kl': 811.6, 'parts': {'lead': {'next': 0.763, 'recon': 0.761},
                                                 'bass': {'next': 0.824, 'recon': 0.823},
                                                 'drums': {'next': 0.871, 'recon': 0.868}}}},
}

TRIO_PARTS = ('lead', 'bass', 'drums')

# Config fields a column may differ in from the run directory it resumes: everything else in
# model / data / loss / optim / train must match.
_RESUMABLE_TRAIN_FIELDS = ('num_steps', 'log_every_steps', 'checkpoint_every_steps',
                           'keep_checkpoints')


def ss_rate_for_budget(steps: int, p: float = 0.99, at: float = 0.5) -> float:
  """k of the inverse-sigmoid schedule such that p(at * steps) = p; at least 1.

  p(s) = sigmoid(s / k - ln k), so p(s) = p  <=>  s = k (ln k + logit p). The right side increases
  with k for k > exp(-1 - logit p), so bisection finds the unique root.
  """
  target = at * steps
  logit = math.log(p / (1 - p))
  f = lambda k: k * (math.log(k) + logit) - target  # noqa: E731
  if f(1.0) >= 0:
    return 1.0
  lo, hi = 1.0, max(2.0, float(target))
  while f(hi) < 0:
    hi *= 2
  for _ in range(200):
    mid = 0.5 * (lo + hi)
    lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
  return round(0.5 * (lo + hi), 2)


def sampling_probability(step: float, k: float) -> float:
  """p(step) of the inverse-sigmoid schedule with rate k (`schedules.sampling_probability`)."""
  return float(schedules.sampling_probability(step, rate=k))


def column_overrides(family: str, column: str, *, baseline_ss: bool,
                     flat_dec_sizes: tuple[int, ...]) -> dict[str, Any]:
  """The config fields that make a column what it is (applied last)."""
  if column == 'flat' and 'flat' in FAMILIES[family]['columns']:
    return {'model.decoder': 'flat', 'model.dec_sizes': tuple(flat_dec_sizes),
            'model.use_encoder': True, 'train.scheduled_sampling': True}
  if family == 'melody16':
    if column == 'hier':
      return {'model.decoder': 'hier', 'model.use_encoder': True,
              'train.scheduled_sampling': True}
  elif column in config_lib.TABLE1_COLUMNS:
    fields = dict(config_lib.TABLE1_COLUMNS[column])
    if column == 'baseline':
      fields['train.scheduled_sampling'] = bool(baseline_ss)
    return fields
  raise ValueError(f'unknown column {column!r} for {family}; choose from '
                   f'{FAMILIES[family]["columns"]}')


# ----------------------------------------------------------------------------- configs

def column_config(family: str, column: str, *, preset: str, steps: int | None,
                  ss_rate: float | None, sets: dict[str, Any], baseline_ss: bool,
                  flat_dec_sizes: tuple[int, ...]):
  """(config, steps, ss_rate) of one column: preset -> budget -> --set -> the column's fields."""
  base = config_lib.from_file(f"{FAMILIES[family]['config']}:{preset}")
  budget = int(steps if steps is not None else sets.get('train.num_steps', base.train.num_steps))
  if ss_rate is None:
    ss_rate = sets.get('train.ss_rate', ss_rate_for_budget(budget))
  rate = float(ss_rate)
  overrides = {**sets, 'train.num_steps': budget, 'train.ss_rate': rate}
  overrides.update(column_overrides(family, column, baseline_ss=baseline_ss,
                                    flat_dec_sizes=flat_dec_sizes))
  return config_lib.apply_overrides(base, overrides), budget, rate


def check_resumable(config, workdir: str) -> None:
  """Refuses a run directory whose saved config differs in more than the step budget."""
  if not os.path.exists(os.path.join(workdir, 'config.json')):
    return
  old = config_lib.as_plain(run_lib.load_config(workdir))
  new = config_lib.as_plain(config)
  diff = {}
  for section in ('model', 'data', 'loss', 'optim', 'train'):
    a, b = old.get(section, {}), new.get(section, {})
    for k in sorted(set(a) | set(b)):
      if section == 'train' and k in _RESUMABLE_TRAIN_FIELDS:
        continue
      if a.get(k) != b.get(k):
        diff[f'{section}.{k}'] = (a.get(k), b.get(k))
  if diff:
    raise SystemExit(f'error: {workdir} was trained with a different config {diff} (saved, '
                     'requested); use another --root or delete that directory')


# ----------------------------------------------------------------------------- one column

def checkpoint_steps(workdir: str) -> list[int]:
  d = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(d):
    return []
  return sorted(int(x) for x in os.listdir(d) if x.isdigit())


def _read_json(path: str) -> Any:
  try:
    with open(path) as f:
      return json.load(f)
  except (FileNotFoundError, json.JSONDecodeError):
    return None


def _write_json(path: str, data: Any) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)) or '.', exist_ok=True)
  tmp = f'{path}.tmp{os.getpid()}'
  with open(tmp, 'w') as f:
    json.dump(data, f, indent=2, sort_keys=True)
    f.write('\n')
  os.replace(tmp, path)


def count_params(model_cfg, kind: str) -> dict[str, int]:
  """{'total', 'encoder', 'decoder'} parameter counts, from shapes only (nothing computed)."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  model = run_lib.create_model(model_cfg)
  shape = (1, kinds.time_steps(kind), len(model_cfg.part_vocab))
  variables = jax.eval_shape(lambda: model.init(
      {'params': jax.random.PRNGKey(0), 'z': jax.random.PRNGKey(1),
       'sample': jax.random.PRNGKey(2)}, jnp.zeros(shape, jnp.int32)))
  out = {'total': 0}
  for name, sub in variables['params'].items():
    n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(sub))
    out[name] = out.get(name, 0) + n
    out['total'] += n
  return out


def evaluate_column(workdir: str, step: int, eval_opts: dict[str, Any]) -> dict[str, Any]:
  """evaluate_run at `step`, cached in <workdir>/table1_eval_<step>.json (same options only)."""
  path = os.path.join(workdir, f'table1_eval_{step}.json')
  cached = _read_json(path)
  if cached is not None and cached.get('table1_eval_options') == eval_opts:
    cached['cached'] = True
    return cached
  results = evaluation.evaluate_run(workdir, step=step, recon_accuracy=True,
                                   num_batches=eval_opts['num_batches'],
                                   batch_size=eval_opts['batch_size'] or None,
                                   seed=eval_opts['seed'])
  results['table1_eval_options'] = eval_opts
  evaluation.write_json(results, path)
  results['cached'] = False
  return results


def _summary(results: dict[str, Any]) -> dict[str, Any]:
  """Next / Recon / Recon greedy / KL of one evaluation; for several parts also 'parts':
  {name: {next, recon, recon_greedy, majority, next_event, recon_greedy_event}}."""
  m = results['metrics']
  out = {'next': m.get('next_accuracy'), 'recon': m.get('recon_accuracy'),
         'recon_greedy': m.get('recon_greedy_accuracy'), 'kl': m.get('kl'),
         'recon_greedy_event': m.get('recon_greedy_event_accuracy'),
         'recon_loss': m.get('recon_loss')}
  parts = results.get('parts') or []
  if len(parts) > 1:
    out['parts'] = {p: {'next': m.get(f'next_accuracy/{p}'),
                        'recon': m.get(f'recon_accuracy/{p}'),
                        'recon_greedy': m.get(f'recon_greedy_accuracy/{p}'),
                        'majority': m.get(f'majority_accuracy/{p}'),
                        'next_event': m.get(f'next_event_accuracy/{p}'),
                        'recon_greedy_event': m.get(f'recon_greedy_event_accuracy/{p}')}
                    for p in parts}
  return out


def run_column(family: str, column: str, config, workdir: str, eval_opts: dict[str, Any],
               log=print) -> tuple[dict[str, Any], str]:
  """Trains (or resumes, or skips) one column and evaluates it. Returns (JSON entry, action)
  with action one of 'trained', 'resumed', 'evaluated' (training was complete) or 'cached'."""
  from mvae_jax import input_pipeline
  workdir = os.path.abspath(workdir)
  budget = int(config.train.num_steps)
  check_resumable(config, workdir)
  kept = checkpoint_steps(workdir)
  if kept and kept[-1] > budget:
    raise SystemExit(f'error: {workdir} already holds checkpoint {kept[-1]} > --steps={budget}; '
                     'use another --root for a smaller budget')
  # Counted first, which also builds a missing dataset outside the timed training.
  train_windows = len(input_pipeline.get_source(config.data, 'train'))
  eval_windows = len(input_pipeline.get_source(config.data, 'eval'))
  timing_path = os.path.join(workdir, 'table1_timing.json')
  timing = _read_json(timing_path) or {'train_wall_s': 0.0, 'sessions': []}

  action = 'cached'
  if not kept or kept[-1] < budget:
    action = 'resumed' if kept else 'trained'
    log(f'[{family}/{column}] {"resuming" if kept else "training"} to step {budget} in '
        f'{workdir}' + (f' from step {kept[-1]}' if kept else ''))
    os.makedirs(workdir, exist_ok=True)
    t0 = time.time()
    start = kept[-1] if kept else 0
    try:
      trainer.train_and_evaluate(config, workdir)
    finally:  # an interrupted session's time counts too (its unsaved steps are redone)
      elapsed = time.time() - t0
      timing['train_wall_s'] = round(timing['train_wall_s'] + elapsed, 2)
      timing['sessions'].append({'from_step': start, 'to_step': (checkpoint_steps(workdir) or
                                                                 [0])[-1],
                                 'wall_s': round(elapsed, 2),
                                 'ended': datetime.datetime.now().isoformat(timespec='seconds')})
      _write_json(timing_path, timing)

  steps = [s for s in checkpoint_steps(workdir) if s <= budget]
  if not steps or steps[-1] != budget:
    raise RuntimeError(f'{workdir}: no checkpoint for step {budget} after training (have {steps})')
  t0 = time.time()
  evals = {s: evaluate_column(workdir, s, eval_opts) for s in steps}
  final = evals[budget]
  if action == 'cached' and not final['cached']:
    action = 'evaluated'
  eval_wall = round(sum(float(r.get('seconds') or 0.0) for r in evals.values()), 2)

  params = count_params(config.model, config.data.kind)
  m = final['metrics']
  entry = {
      **_summary(final),
      'steps': budget,
      'train_windows': train_windows,
      'eval_windows': eval_windows,
      'eval_examples': final['examples'],
      'majority': m.get('majority_accuracy'),
      'next_event': m.get('next_event_accuracy'),
      'recon_event': m.get('recon_event_accuracy'),
      'recon_greedy_event': m.get('recon_greedy_event_accuracy'),
      'recon_loss': m.get('recon_loss'),
      'trend': {str(s): _summary(r) for s, r in sorted(evals.items())},
      'ss_rate': float(config.train.ss_rate),
      'scheduled_sampling': bool(config.train.scheduled_sampling),
      'p_sample_final': (round(sampling_probability(budget, config.train.ss_rate), 4)
                         if config.train.scheduled_sampling else 0.0),
      'use_encoder': bool(config.model.use_encoder),
      'decoder': config.model.decoder,
      'sizes': {'enc_sizes': list(config.model.enc_sizes), 'z_size': config.model.z_size,
                'dec_sizes': list(config.model.dec_sizes),
                **({'conductor_sizes': list(config.model.conductor_sizes),
                    'embedding_size': config.model.embedding_size,
                    'num_segments': config.model.num_segments}
                   if config.model.decoder == 'hier' else {})},
      'params': params,
      'preset': config.preset,
      'data': {'source': config.data.source, 'kind': config.data.kind, 'mode': config.data.mode},
      'batch_size': int(config.train.batch_size),
      'beta': {'max_beta': config.loss.max_beta, 'beta_rate': config.loss.beta_rate,
               'free_bits': config.loss.free_bits},
      'seed': int(config.train.seed),
      'train_wall_s': timing['train_wall_s'],
      'eval_wall_s': eval_wall,  # all kept checkpoints' evaluations, when they were computed
      'eval': dict(eval_opts, split='eval'),
      'workdir': os.path.relpath(workdir, ROOT) if workdir.startswith(str(ROOT)) else workdir,
  }
  log(f'[{family}/{column}] step {budget}: next {_f(entry["next"])} recon {_f(entry["recon"])} '
      f'recon_greedy {_f(entry["recon_greedy"])} kl {_f(entry["kl"], 1)} ({action}; eval '
      f'{time.time() - t0:.1f}s)')
  return entry, action


# ----------------------------------------------------------------------------- JSON / markdown

@contextlib.contextmanager
def _locked(path: str):
  """An exclusive lock beside `path`, so two families run at once do not lose each other's
  entries."""
  os.makedirs(os.path.dirname(os.path.abspath(path)) or '.', exist_ok=True)
  with open(path + '.lock', 'w') as f:
    try:
      import fcntl
      fcntl.flock(f, fcntl.LOCK_EX)
    except ImportError:  # not POSIX: no lock
      pass
    yield


def merge_json(path: str, family: str, columns: dict[str, Any]) -> dict[str, Any]:
  """Merges `{family: columns}` into the JSON file (keeps other families and other columns)."""
  with _locked(path):
    data = _read_json(path) or {}
    data.setdefault(family, {}).update(columns)
    _write_json(path, data)
  return data


def _f(v: Any, digits: int = 3) -> str:
  return '-' if v is None else f'{v:.{digits}f}'


def _cells(entry: dict[str, Any] | None, kl: bool) -> list[str]:
  if entry is None:
    return ['', ''] + ([''] if kl else [])
  out = [_f(entry.get('next')), _f(entry.get('recon'))]
  if kl:
    out.append(_f(entry.get('kl'), 1))
  return out


def _claim(metric: str, lo: str, hi: str, a_col: dict[str, Any], b_col: dict[str, Any],
           part: str | None = None) -> str | None:
  """'- metric: lo a < hi b? yes/NO (margin; held at n/m kept checkpoints)' or None."""
  def get(entry):
    if entry is None:
      return None
    if part is not None:
      entry = (entry.get('parts') or {}).get(part)
      if entry is None:
        return None
    return entry.get(metric)
  a, b = get(a_col), get(b_col)
  if a is None or b is None:
    return None
  steps = sorted(set(a_col.get('trend', {})) & set(b_col.get('trend', {})), key=int)
  held = [s for s in steps
          if None not in (get(a_col['trend'][s]), get(b_col['trend'][s]))
          and get(b_col['trend'][s]) > get(a_col['trend'][s])]
  name = f'{part} {metric}' if part else metric
  return (f'- {name}: {lo} {_f(a)} < {hi} {_f(b)}? **{"yes" if b > a else "NO"}** (margin '
          f'{b - a:+.3f}; held at {len(held)}/{len(steps)} kept checkpoints {", ".join(steps)})')


def _ordering(family: str, cols: dict[str, Any]) -> list[str]:
  """Plain-language checks of the paper's claims, at the final step and over the kept
  checkpoints: baseline < VAE < VAE + SS on Recon (per instrument for trios), and for the long
  melodies the hierarchical decoder above the flat one."""
  lines = []
  if family == 'melody16':
    pairs = [('flat', 'hier')]
  elif family == 'melody32':
    pairs = [('baseline', 'vae'), ('vae', 'vae_ss'), ('flat', 'vae_ss')]
  else:
    pairs = [('baseline', 'vae'), ('vae', 'vae_ss')]
  parts = TRIO_PARTS if family == 'trio16' else (None,)
  for metric in ('recon', 'recon_greedy'):
    for lo, hi in pairs:
      if lo not in cols or hi not in cols:
        continue
      for part in parts:
        line = _claim(metric, lo, hi, cols[lo], cols[hi], part)
        if line:
          lines.append(line)
  if family == 'melody32' and 'flat' in cols and 'vae_ss' in cols:
    for metric in ('recon_greedy_event',):
      a, b = cols['flat'].get(metric), cols['vae_ss'].get(metric)
      if a is not None and b is not None:
        lines.append(f'- {metric} (non-hold steps): flat {_f(a)} < hier {_f(b)}? '
                     f'**{"yes" if b > a else "NO"}** (margin {b - a:+.3f})')
    a, b = cols['flat'].get('recon_loss'), cols['vae_ss'].get('recon_loss')
    if a is not None and b is not None:
      lines.append(f'- eval loss (nats per sequence): hier {b:.1f} < flat {a:.1f}? '
                   f'**{"yes" if b < a else "NO"}**')
  if family != 'melody16' and 'vae' in cols and 'vae_ss' in cols:
    a, b = cols['vae'].get('kl'), cols['vae_ss'].get('kl')
    if a is not None and b is not None:
      lines.append(f'- kl: vae {a:.1f} < vae_ss {b:.1f}? **{"yes" if b > a else "NO"}** '
                   '(the paper: scheduled sampling raises the KL)')
  return lines


def _trio_rows(label: str, cols: dict[str, Any], ours: bool) -> list[str]:
  """One Markdown row per instrument: Next / Recon of each column (and the KL on the lead row)."""
  rows = []
  for i, part in enumerate(TRIO_PARTS):
    cells = []
    for column, kl in (('baseline', False), ('vae', True), ('vae_ss', True)):
      entry = cols.get(column)
      p = ((entry or {}).get('parts') or {}).get(part)
      cells += [_f((p or {}).get('next')), _f((p or {}).get('recon'))] if p else ['', '']
      if kl:
        cells.append(_f(entry.get('kl'), 1) if entry and i == 0 else '')
    majority = ''
    if ours:
      any_entry = next((cols[c] for c in ('vae_ss', 'vae', 'baseline') if c in cols), {})
      majority = _f(((any_entry.get('parts') or {}).get(part) or {}).get('majority'))
    rows.append(f'| {label} {part} | ' + ' | '.join(cells) + f' | {majority} |')
  return rows


def render_family(family: str, cols: dict[str, Any]) -> str:
  """Markdown for one family: the Table-1-shaped table (paper row beside ours) and the details."""
  label = FAMILIES.get(family, {}).get('label', family)
  paper = PAPER.get(family, {})
  order = [c for c in FAMILIES.get(family, {}).get('columns', ()) if c in cols]
  order += [c for c in cols if c not in order]
  any_col = cols[order[0]] if order else {}
  lines = [f'### {label} (`{family}`)', '']
  ours = (f'ours ({any_col.get("data", {}).get("source", "?")}, {any_col.get("preset", "?")}, '
          f'{any_col.get("steps", "?")} steps)')
  if family == 'trio16':
    lines += ['| Model | Baseline Next | Baseline Recon | VAE Next | VAE Recon | VAE KL | '
              'VAE+SS Next | VAE+SS Recon | VAE+SS KL | majority |',
              '|---|---|---|---|---|---|---|---|---|---|']
    if paper:
      lines += _trio_rows(f'paper: {paper["label"]}', paper, ours=False)
    lines += _trio_rows(ours, cols, ours=True)
  elif family == 'melody16':
    lines += ['| Model | Flat Next | Flat Recon | Flat KL | Hier Next | Hier Recon | Hier KL |',
              '|---|---|---|---|---|---|---|']
    if paper:
      lines.append(f'| paper: {paper["label"]} | n/a | n/a | n/a | '
                   + ' | '.join(_cells(paper.get('hier'), True)) + ' |')
    lines.append(f'| {ours} | ' + ' | '.join(_cells(cols.get('flat'), True) +
                                             _cells(cols.get('hier'), True)) + ' |')
  else:
    lines += ['| Model | Baseline Next | Baseline Recon | VAE Next | VAE Recon | VAE KL | '
              'VAE+SS Next | VAE+SS Recon | VAE+SS KL |',
              '|---|---|---|---|---|---|---|---|---|']
    if paper:
      lines.append(f'| paper: {paper["label"]} | '
                   + ' | '.join(_cells(paper.get('baseline'), False) + _cells(paper.get('vae'), True)
                                + _cells(paper.get('vae_ss'), True)) + ' |')
    lines.append(f'| {ours} | ' + ' | '.join(
        _cells(cols.get('baseline'), False) + _cells(cols.get('vae'), True)
        + _cells(cols.get('vae_ss'), True)) + ' |')
    if 'flat' in cols:
      lines += ['', f'Flat decoder (VAE + SS, same encoder, z and budget): Next '
                f'{_f(cols["flat"].get("next"))}, Recon {_f(cols["flat"].get("recon"))}, KL '
                f'{_f(cols["flat"].get("kl"), 1)}.']
  lines += ['', 'Recon = free-running decode, fed-back tokens sampled at temperature 1, z drawn '
            'from q(z|x) (the reference\'s eval); Recon greedy = z = mu, argmax fed back. '
            'Majority = always predicting the most common class.', '',
            '| column | Next | Recon | Recon greedy | KL | Next (events) | Recon greedy (events) '
            '| majority | SS rate k | p_sample at end | params (dec) | batch | steps | train / '
            'eval windows | train wall | eval wall |',
            '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
  for c in order:
    e = cols[c]
    p = e.get('params', {})
    ss = f'{e["ss_rate"]:g}' if e.get('scheduled_sampling') else 'off'
    lines.append(
        f'| {c} | {_f(e.get("next"))} | {_f(e.get("recon"))} | {_f(e.get("recon_greedy"))} | '
        f'{_f(e.get("kl"), 1)} | {_f(e.get("next_event"))} | {_f(e.get("recon_greedy_event"))} | '
        f'{_f(e.get("majority"))} | {ss} | {_f(e.get("p_sample_final"), 3)} | '
        f'{p.get("total", 0):,} ({p.get("decoder", 0):,}) | {e.get("batch_size")} | '
        f'{e.get("steps")} | {e.get("train_windows", 0):,} / {e.get("eval_windows", 0):,} | '
        f'{_duration(e.get("train_wall_s"))} | {_duration(e.get("eval_wall_s"))} |')
  trend_steps = sorted({s for c in order for s in cols[c].get('trend', {})}, key=int)
  if len(trend_steps) > 1:
    lines += ['', 'Recon (sampled / greedy) at the kept checkpoints:', '',
              '| step | ' + ' | '.join(order) + ' |', '|---|' + '---|' * len(order)]
    for s in trend_steps:
      row = []
      for c in order:
        t = cols[c].get('trend', {}).get(s)
        row.append('' if t is None else f'{_f(t.get("recon"))} / {_f(t.get("recon_greedy"))}')
      lines.append(f'| {s} | ' + ' | '.join(row) + ' |')
    if 'flat' in order:
      lines += ['', 'Recon greedy on non-hold steps / eval loss (nats per sequence) at the kept '
                'checkpoints:', '', '| step | ' + ' | '.join(order) + ' |',
                '|---|' + '---|' * len(order)]
      for s in trend_steps:
        row = []
        for c in order:
          t = cols[c].get('trend', {}).get(s)
          row.append('' if t is None else
                     f'{_f(t.get("recon_greedy_event"))} / {_f(t.get("recon_loss"), 1)}')
        lines.append(f'| {s} | ' + ' | '.join(row) + ' |')
  checks = _ordering(family, cols)
  if checks:
    lines += ['', 'The paper\'s orderings on our run:', ''] + checks
  return '\n'.join(lines) + '\n'


def _duration(seconds: Any) -> str:
  if seconds is None:
    return '-'
  seconds = float(seconds)
  if seconds < 120:
    return f'{seconds:.0f}s'
  return f'{seconds / 60:.1f} min'


# The paper's six Table 1 rows, in its order: (label, family, trio part or None).
SIX_ROWS = (('2-bar drums', 'drums2', None), ('2-bar melody', 'melody2', None),
            ('32-bar melody', 'melody32', None), ('16-bar trio lead', 'trio16', 'lead'),
            ('16-bar trio bass', 'trio16', 'bass'), ('16-bar trio drums', 'trio16', 'drums'))


def render_six_rows(data: dict[str, Any]) -> str:
  """The paper's Table 1 layout, each of its six rows beside ours ("no result" where `data` has
  no entry for the family). Next / Recon per column, the KL (the whole model's, on the first
  trio row), and our majority level (always predicting the most common class) per row."""
  lines = ['| Model | | Baseline Next / Recon | VAE Next / Recon / KL | '
           'VAE + SS Next / Recon / KL | majority |', '|---|---|---|---|---|---|']

  def cells(cols: dict[str, Any], part: str | None, first: bool) -> list[str]:
    out = []
    for column in ('baseline', 'vae', 'vae_ss'):
      e = cols.get(column)
      if not e:
        out.append('')
        continue
      m = ((e.get('parts') or {}).get(part) or {}) if part else e
      cell = f'{_f(m.get("next"))} / {_f(m.get("recon"))}'
      if column != 'baseline':
        cell += f' / {_f(e.get("kl"), 1)}' if first and e.get('kl') is not None else ''
      out.append(cell)
    return out

  for label, family, part in SIX_ROWS:
    first = part in (None, 'lead')
    paper, ours = PAPER.get(family, {}), data.get(family, {})
    lines.append(f'| {label} | paper | ' + ' | '.join(cells(paper, part, first)) + ' | |')
    if ours:
      any_col = next((ours[c] for c in ('vae_ss', 'vae', 'baseline') if c in ours), {})
      maj = (((any_col.get('parts') or {}).get(part) or {}).get('majority') if part
             else any_col.get('majority'))
      steps = any_col.get('steps', '?')
      lines.append(f'| | ours ({any_col.get("preset", "?")}, {steps} steps) | '
                   + ' | '.join(cells(ours, part, first)) + f' | {_f(maj)} |')
    else:
      lines.append('| | ours | no result | | | |')
  return '\n'.join(lines) + '\n'


def render_all(data: dict[str, Any]) -> str:
  order = [f for f in FAMILIES if f in data] + [f for f in data if f not in FAMILIES]
  head = '### Table 1: the paper\'s six rows beside ours\n\n' + render_six_rows(data) + '\n'
  return head + '\n'.join(render_family(f, data[f]) for f in order)


# ----------------------------------------------------------------------------- CLI

def _sizes(text: str) -> tuple[int, ...]:
  return tuple(int(x) for x in text.replace('(', '').replace(')', '').split(',') if x.strip())


def build_parser() -> argparse.ArgumentParser:
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--family', choices=sorted(FAMILIES))
  ap.add_argument('--preset', default='small', help='preset of configs/<family>.py')
  ap.add_argument('--steps', type=int, default=None,
                  help="step budget of every column (default: the preset's train.num_steps)")
  ap.add_argument('--ss_rate', type=float, default=None,
                  help='k of the inverse-sigmoid schedule (default: p = 0.99 at half the budget)')
  ap.add_argument('--root', default='runs/table1', help='run directories: ROOT/FAMILY/COLUMN')
  ap.add_argument('--out_json', default='docs/results/table1.json')
  ap.add_argument('--out_md', default=None,
                  help='default docs/results/table1_<family>.md (docs/results/table1.md with --render_only)')
  ap.add_argument('--set', action='append', default=[], metavar='SECTION.FIELD=VALUE',
                  help='config override for every column (repeatable)')
  ap.add_argument('--columns', default='', help='comma-separated subset of the columns')
  ap.add_argument('--flat_dec_sizes', type=_sizes, default=(256, 256),
                  help="melody16's flat decoder layers (default 256,256: the hier column's "
                  'conductor + bottom widths, ~23%% more decoder parameters)')
  ap.add_argument('--baseline_ss', action='store_true',
                  help='train the baseline with scheduled sampling too (default: teacher forced)')
  ap.add_argument('--eval_num_batches', type=int, default=0, help='0 = the whole eval split')
  ap.add_argument('--eval_batch_size', type=int, default=0, help="0 = the config's eval batch")
  ap.add_argument('--eval_seed', type=int, default=0)
  ap.add_argument('--render_only', action='store_true',
                  help='only write markdown for every family in --out_json')
  return ap


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Runs the CLI; returns {'family', 'columns': {column: entry}, 'actions': {column: action},
  'json', 'md', 'seconds'} (or {'md', 'json'} with --render_only)."""
  args = build_parser().parse_args(argv)
  t_start = time.time()
  if args.render_only:
    data = _read_json(args.out_json)
    if data is None:
      raise SystemExit(f'error: {args.out_json} not found or not JSON')
    md = render_all(data)
    out_md = args.out_md or os.path.join(os.path.dirname(args.out_json) or '.', 'table1.md')
    with open(out_md, 'w') as f:
      f.write(md)
    print(md)
    return {'md': out_md, 'json': args.out_json}
  if not args.family:
    raise SystemExit('error: --family is required (or --render_only)')
  family = args.family
  columns = FAMILIES[family]['columns']
  if args.columns:
    wanted = [c.strip() for c in args.columns.split(',') if c.strip()]
    bad = [c for c in wanted if c not in columns]
    if bad:
      raise SystemExit(f'error: unknown columns {bad} for {family}; choose from {columns}')
    columns = tuple(c for c in columns if c in wanted)
  try:
    sets = config_lib.parse_overrides(args.set)
  except config_lib.ConfigError as e:
    raise SystemExit(f'error: --set: {e}') from e
  out_md = args.out_md or os.path.join(os.path.dirname(args.out_json) or '.',
                                       f'table1_{family}.md')
  eval_opts = {'num_batches': args.eval_num_batches, 'batch_size': args.eval_batch_size,
               'seed': args.eval_seed}

  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.ERROR)  # orbax logs every save / restore otherwise

  configs = {}
  for column in columns:
    configs[column], budget, rate = column_config(
        family, column, preset=args.preset, steps=args.steps, ss_rate=args.ss_rate, sets=sets,
        baseline_ss=args.baseline_ss, flat_dec_sizes=args.flat_dec_sizes)
  print(f'[{family}] preset {args.preset}, {budget} steps per column, ss_rate k = {rate:g} '
        f'(p_sample {sampling_probability(budget / 2, rate):.3f} at step {budget // 2}, '
        f'{sampling_probability(budget, rate):.4f} at {budget}); columns {", ".join(columns)}',
        flush=True)

  entries, actions = {}, {}
  data: dict[str, Any] = {}
  for column in columns:
    workdir = os.path.join(args.root, family, column)
    entries[column], actions[column] = run_column(
        family, column, configs[column], workdir, eval_opts,
        log=lambda s: print(s, flush=True))
    data = merge_json(args.out_json, family, {column: entries[column]})
    with open(out_md, 'w') as f:
      f.write(render_family(family, data[family]))
  md = render_family(family, data.get(family, entries))
  print(md)
  print(f'wrote {args.out_json} and {out_md} ({time.time() - t_start:.1f}s)', flush=True)
  return {'family': family, 'columns': entries, 'actions': actions, 'json': args.out_json,
          'md': out_md, 'seconds': time.time() - t_start}


if __name__ == '__main__':
  main()
