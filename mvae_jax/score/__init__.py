r"""How likely is a piece under a trained model: the ELBO and an importance-sampled log p(x).

  python -m mvae_jax.score --workdir=RUN song.mid more/ [--samples=100] [--seed=0] [--out=DIR]
  python -m mvae_jax.score --workdir=RUN --split=eval [--max_windows=1000] [--shuffle_time]

For every window of every MIDI file (a folder: every .mid / .midi under it), or of a dataset
split, it prints and writes (`scores.csv`, one row per window; `scores.json`, per file and per
window) in nats and in bits per step:

  recon      E_q[-log p(x|z)]: the teacher-forced cross-entropy of the window, summed over its
             steps and parts, averaged over the K codes z_k ~ q(z|x).
  kl         KL(q(z|x) || N(0, I)), exact.
  elbo       -(recon + kl), a lower bound of log p(x) (true beta 1, no free bits: not the
             training loss).
  log_p      log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x): the importance-sampled
             estimate of log p(x) (Burda et al. 2016). With K = 1 its expectation is the ELBO;
             it never falls below the ELBO on average and tightens towards log p(x) as K grows.
  bits_per_step  -log_p / (time steps x ln 2) (all parts of a trio step together);
             elbo_bits_per_step the same for -elbo.

A baseline run (no encoder) is an ordinary autoregressive model: log p(x) = -recon exactly,
kl = 0 and K is ignored. Higher log p (fewer bits per step) means more typical of the training
data: sort a collection by it to find outliers, or compare two models on the same files (the
same windows only: windows differ between window kinds).

Python API: `score_tokens(model, tokens, samples=K)` -> {name: float [n]};
`score(model, x, samples=K)` for a MIDI file / NoteSequence (all its windows) or tokens.
"""
from __future__ import annotations

import csv
import functools
import json
import math
import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mvae_jax import attributes as attr_lib
from mvae_jax.attributes import batches
from mvae_jax import losses
from data_pipelines import console
from mvae_jax import input_pipeline

LN2 = math.log(2.0)
LOG_2PI = math.log(2.0 * math.pi)
DEFAULT_SAMPLES = 100
MAX_SAMPLES = 100_000
FIELDS = ('recon', 'kl', 'elbo', 'log_p', 'elbo_bits_per_step', 'bits_per_step')


# ----------------------------------------------------------------------------- jitted pieces

def log_weights(params: Any, tokens: jax.Array, mu: jax.Array, sigma: jax.Array,
                row_ids: jax.Array, sample_ids: jax.Array, key: jax.Array, *,
                module: Any) -> tuple[jax.Array, jax.Array]:
  """log p(x|z_k) and log p(z_k) - log q(z_k|x) for codes z_k ~ q(z|x).

  The noise of z_k depends only on (key, row_ids[b], sample_ids[k]); `score_tokens` passes a
  hash of each window's tokens as its row id, so a window's estimate is the same whatever the
  batch, chunk or company it is scored in.

  Args:
    tokens: int [B, time, parts]; mu, sigma: float [B, z] (q(z|x)).
    row_ids: int [B]; sample_ids: int [k].
  Returns:
    (log p(x|z) float32 [B, k], log p(z) - log q(z|x) float32 [B, k]), in nats.
  """
  b, k = tokens.shape[0], sample_ids.shape[0]
  z_size = mu.shape[-1]

  def noise(row, sample):
    return jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, row), sample), (z_size,))

  eps = jax.vmap(lambda r: jax.vmap(lambda s: noise(r, s))(sample_ids))(row_ids)  # [B, k, z]
  z = mu[:, None] + sigma[:, None] * eps
  tiled = jnp.repeat(tokens, k, axis=0)
  logits = module.apply({'params': params}, tiled, z.reshape(b * k, z_size),
                        method=module.decode_teacher_forced)
  log_px_z = -losses.reconstruction_loss(logits, tiled).reshape(b, k)
  log_pz = -0.5 * jnp.sum(z ** 2, -1) - 0.5 * z_size * LOG_2PI
  log_qz = (-0.5 * jnp.sum(eps ** 2, -1) - jnp.sum(jnp.log(sigma), -1)[:, None]
            - 0.5 * z_size * LOG_2PI)
  return log_px_z, log_pz - log_qz


def baseline_log_p(params: Any, tokens: jax.Array, *, module: Any) -> jax.Array:
  """Exact log p(x) of a decoder-only run: float32 [B] (nats)."""
  logits = module.apply({'params': params}, tokens, None, method=module.decode_teacher_forced)
  return -losses.reconstruction_loss(logits, tokens)


@functools.lru_cache(maxsize=16)
def _jit(fn: Any, module: Any) -> Any:
  return jax.jit(functools.partial(fn, module=module))


def jitted_log_weights(module: Any) -> Any:
  """`log_weights` bound to `module` and jitted (one compiled function per module and shape)."""
  return _jit(log_weights, module)


# ----------------------------------------------------------------------------- scoring

_HASH_PRIME = 2_147_483_647  # 2**31 - 1


def window_keys(tokens: np.ndarray) -> np.ndarray:
  """A 31-bit hash of each window's tokens, int32 [n]: the row id that keys its noise."""
  flat = np.asarray(tokens, np.int64).reshape(len(tokens), -1) + 1
  powers = np.ones(flat.shape[1], np.int64)
  for i in range(1, flat.shape[1]):
    powers[i] = powers[i - 1] * 1_000_003 % _HASH_PRIME
  acc = np.zeros(len(flat), np.int64)
  for a, b in batches(flat.shape[1], 64):  # partial sums stay below 2**63
    acc = (acc + (flat[:, a:b] * powers[a:b]).sum(1)) % _HASH_PRIME
  return acc.astype(np.int32)


def _check_samples(samples: int) -> int:
  if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or not (
      1 <= samples <= MAX_SAMPLES):
    raise ValueError(f'samples must be a whole number in 1..{MAX_SAMPLES}, got {samples!r}')
  return int(samples)


def score_tokens(model: Any, tokens: np.ndarray, samples: int = DEFAULT_SAMPLES, seed: int = 0,
                 batch_size: int | None = None, progress: str | None = None
                 ) -> dict[str, np.ndarray]:
  """The scores of windows int [n, time, parts]: {field: float64 [n]} for `FIELDS` (nats,
  except the bits-per-step fields). See the module docstring for the definitions."""
  samples = _check_samples(samples)
  tokens = model.tokens(tokens)  # validates the shape and every token's range
  n, steps = len(tokens), tokens.shape[1]
  rows_budget = batch_size or attr_lib.default_batch_size(model)
  recon = np.zeros(n)
  kl = np.zeros(n)
  log_p = np.zeros(n)
  if not model.use_encoder:
    fn = _jit(baseline_log_p, model.module)
    bar = console.Progress(progress or 'scoring', n, 'windows', quiet_s=3.0,
                           enabled=progress is not None)
    for a, b in attr_lib.batches(n, rows_budget):
      lp = np.asarray(fn(model.params, jnp.asarray(attr_lib.pad_rows(tokens[a:b], rows_budget))))
      recon[a:b] = -lp[:b - a]
      bar.update(b - a)
    bar.close()
    log_p = -recon
  else:
    mu, sigma = attr_lib.encode_all(model, tokens, batch_size)
    kl = np.asarray(losses.kl_divergence(jnp.asarray(mu), jnp.asarray(sigma)), np.float64)
    # Rows of one call: windows x codes; a chunk of up to `rows_budget` codes per window.
    chunk = min(samples, rows_budget)
    rows = max(1, rows_budget // chunk)
    rows = min(rows, n)
    fn = jitted_log_weights(model.module)
    key = jax.random.PRNGKey(seed)
    keys = window_keys(tokens)
    bar = console.Progress(progress or 'scoring', n * samples, 'window-samples', quiet_s=3.0,
                            enabled=progress is not None)
    for a, b in attr_lib.batches(n, rows):
      t = jnp.asarray(attr_lib.pad_rows(tokens[a:b], rows))
      m = jnp.asarray(attr_lib.pad_rows(mu[a:b], rows))
      s = jnp.asarray(attr_lib.pad_rows(sigma[a:b], rows) + (np.arange(rows) >= b - a)[:, None])
      ids = jnp.asarray(attr_lib.pad_rows(keys[a:b], rows))
      lse = np.full(b - a, -np.inf)
      total = np.zeros(b - a)
      for k0 in range(0, samples, chunk):
        sample_ids = np.arange(k0, k0 + chunk)
        valid = sample_ids < samples
        lpx, lw = fn(model.params, t, m, s, ids, jnp.asarray(sample_ids), key)
        lpx = np.asarray(lpx, np.float64)[:b - a]
        w = lpx + np.asarray(lw, np.float64)[:b - a]
        w[:, ~valid] = -np.inf
        lse = np.logaddexp(lse, _logsumexp(w))
        total += lpx[:, valid].sum(1)
        bar.update((b - a) * int(valid.sum()))
      recon[a:b] = -total / samples
      log_p[a:b] = lse - math.log(samples)
    bar.close()
  elbo = -(recon + kl)
  return {'recon': recon, 'kl': kl, 'elbo': elbo, 'log_p': log_p,
          'elbo_bits_per_step': -elbo / (steps * LN2), 'bits_per_step': -log_p / (steps * LN2)}


def _logsumexp(w: np.ndarray) -> np.ndarray:
  """Row-wise logsumexp of float [n, k] (rows of -inf give -inf)."""
  m = w.max(1)
  safe = np.where(np.isfinite(m), m, 0.0)
  with np.errstate(divide='ignore'):
    return safe + np.log(np.exp(w - safe[:, None]).sum(1))


def score(model: Any, x: Any, samples: int = DEFAULT_SAMPLES, seed: int = 0,
          window: Any = 'all', batch_size: int | None = None) -> dict[str, np.ndarray]:
  """`score_tokens` of a MIDI file / NoteSequence (every window, or the one `window` picks as in
  `Model.tokens`) or of tokens [batch, time, parts] (Model.score)."""
  if isinstance(x, (str, os.PathLike)) or type(x).__name__ == 'NoteSequence':
    tokens = model.windows(x).tokens if window == 'all' else model.tokens(x, window)
  else:
    tokens = model.tokens(x)
  return score_tokens(model, tokens, samples, seed, batch_size)


def shuffle_time(tokens: np.ndarray, seed: int = 0) -> np.ndarray:
  """Each window with its steps in a random order (all parts of a step move together): the same
  notes, no musical time. int [n, time, parts] -> the same shape."""
  tokens = np.asarray(tokens)
  rng = np.random.default_rng(seed)
  order = np.argsort(rng.random(tokens.shape[:2]), axis=1)
  return np.take_along_axis(tokens, order[..., None], axis=1)


# ----------------------------------------------------------------------------- files

MIDI_EXTENSIONS = ('.mid', '.midi')


def expand_inputs(inputs: Sequence[str]) -> list[str]:
  """Files as given, folders as every MIDI file under them (sorted); FileNotFoundError for a
  path that does not exist."""
  out = []
  for p in inputs:
    if os.path.isdir(p):
      found = []
      for root, dirs, files in os.walk(p):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files)
                  if f.lower().endswith(MIDI_EXTENSIONS)]
      if not found:
        raise FileNotFoundError(f'{p}: no MIDI files (.mid, .midi) in this folder')
      out += found
    elif os.path.isfile(p):
      out.append(p)
    else:
      raise FileNotFoundError(f'{p}: no such file or folder')
  return out


def score_files(model: Any, paths: Sequence[str], samples: int = DEFAULT_SAMPLES,
                seed: int = 0, batch_size: int | None = None, progress: bool = True
                ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
  """Scores every window of every file, all windows in one batched pass.

  Returns:
    (per scored file {'file', 'windows': [{'window', 'bar', FIELDS...}], 'mean': {FIELDS...}},
     skipped [(file, why)]) in the order of `paths`.
  """
  samples = _check_samples(samples)
  found, skipped = [], []
  for p in paths:
    try:
      found.append((p, model.windows(p)))
    except ValueError as e:  # inputs.InputError: unreadable, or no usable window
      skipped.append((p, str(e)))
  if not found:
    return [], skipped
  tokens = np.concatenate([w.tokens for _, w in found]).astype(np.int32)
  s = score_tokens(model, tokens, samples, seed, batch_size,
                   progress='scoring' if progress else None)
  records, start = [], 0
  for p, w in found:
    stop = start + len(w)
    rows = [{'window': i, 'bar': int(w.bars[i]), **{f: float(s[f][start + i]) for f in FIELDS}}
            for i in range(len(w))]
    records.append({'file': p, 'windows': rows,
                    'mean': {f: float(s[f][start:stop].mean()) for f in FIELDS}})
    start = stop
  return records, skipped


def split_records(model: Any, split: str, max_windows: int | None, samples: int, seed: int,
                  shuffle: bool, batch_size: int | None = None) -> list[dict[str, Any]]:
  """Scores a dataset split's windows (and, with `shuffle`, their time-shuffled copies) as
  records like `score_files`' (one per split, windows numbered by their index in the split)."""
  tokens, index, paths = input_pipeline.split_windows(
      model.config.data, split, limit=max_windows, seed=seed, with_paths=True, progress=True)
  sets = [(f'{split} split', tokens)]
  if shuffle:
    sets.append((f'{split} split, steps shuffled in time', shuffle_time(tokens, seed)))
  out = []
  for label, t in sets:
    s = score_tokens(model, t, samples, seed, batch_size, progress=f'scoring ({label})')
    rows = [{'window': int(index[i]), 'bar': None, 'source': paths[i],
             **{f: float(s[f][i]) for f in FIELDS}} for i in range(len(t))]
    out.append({'file': label, 'windows': rows,
                'mean': {f: float(s[f].mean()) for f in FIELDS}})
  return out


def write_scores(records: Sequence[dict[str, Any]], out_dir: str, settings: dict[str, Any],
                 skipped: Sequence[tuple[str, str]] = ()) -> list[str]:
  """`scores.csv` (one row per window) and `scores.json` (settings, per file, per window)."""
  os.makedirs(out_dir, exist_ok=True)
  csv_path = os.path.join(out_dir, 'scores.csv')
  with open(csv_path, 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(['file', 'window', 'bar', 'source'] + [
        f'{k}_nats' if 'bits' not in k else k for k in FIELDS])
    for r in records:
      for row in r['windows']:
        w.writerow([r['file'], row['window'], '' if row['bar'] is None else row['bar'],
                    row.get('source', '')] + [f'{row[k]:.4f}' for k in FIELDS])
  json_path = os.path.join(out_dir, 'scores.json')
  with open(json_path, 'w') as f:
    json.dump({'settings': settings, 'units': {k: 'bits per step' if 'bits' in k else 'nats'
                                              for k in FIELDS},
               'files': list(records),
               'skipped': [{'file': p, 'why': why} for p, why in skipped]}, f, indent=1)
  return [csv_path, json_path]


def table(records: Sequence[dict[str, Any]], steps: int) -> str:
  """A per-file table (means over each file's windows)."""
  head = ('| file | windows | recon (nats) | KL (nats) | ELBO (nats) | log p (nats) | '
          'bits/step (ELBO) | bits/step (log p) |')
  lines = [head, '|---|---:|---:|---:|---:|---:|---:|---:|']
  for r in records:
    m = r['mean']
    lines.append(f'| {os.path.basename(r["file"]) if os.path.exists(r["file"]) else r["file"]} '
                 f'| {len(r["windows"])} | {m["recon"]:.2f} | {m["kl"]:.2f} | {m["elbo"]:.2f} | '
                 f'{m["log_p"]:.2f} | {m["elbo_bits_per_step"]:.3f} | {m["bits_per_step"]:.3f} |')
  return '\n'.join(lines)


def next_free(base: str) -> str:
  if not os.path.exists(base):
    return base
  k = 2
  while os.path.exists(f'{base}-{k}'):
    k += 1
  return f'{base}-{k}'


# ----------------------------------------------------------------------------- the CLI
