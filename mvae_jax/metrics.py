"""Table 1 metrics as exact counts, plus spherical interpolation of latent codes.

`accuracy_counts` serves both of the paper's accuracies: "Next" on teacher-forced logits and
"Recon" on the logits of a free-running decode. Counts are numerator / denominator pairs so
batches can be summed exactly (`add_counts`) before `summarize` divides.

Shapes: `logits` is a tuple with one float [batch, time, vocab_p] per part (a bare array is one
part), `tokens` int [batch, time, parts], `lengths` int [batch] or None (full).
"""

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines.kinds import NO_EVENT  # melody: continue / hold; drums: no hit


def accuracy_counts(logits, tokens: jax.Array,
                    lengths: jax.Array | None = None) -> dict[str, Any]:
  """Counts of argmax(logits) == target over valid steps.

  Returns a dict of float32 arrays:
    'correct', 'total': [parts], all valid steps.
    'event_correct', 'event_total': [parts], only steps whose target is not NO_EVENT (class 0),
      so predicting "hold" / "no hit" everywhere does not look good.
    'class_correct', 'class_total': tuple over parts of [vocab_p], per target class.
  """
  parts = (logits,) if hasattr(logits, 'ndim') else tuple(logits)
  batch, time = tokens.shape[:2]
  if lengths is None:
    mask = jnp.ones((batch, time), bool)
  else:
    mask = jnp.arange(time)[None, :] < jnp.asarray(lengths)[:, None]
  out = {k: [] for k in ('correct', 'total', 'event_correct', 'event_total',
                         'class_correct', 'class_total')}
  for p, part_logits in enumerate(parts):
    target = tokens[..., p].astype(jnp.int32)
    hit = (jnp.argmax(part_logits, axis=-1) == target) & mask
    event = mask & (target != NO_EVENT)
    out['correct'].append(jnp.sum(hit))
    out['total'].append(jnp.sum(mask))
    out['event_correct'].append(jnp.sum(hit & event))
    out['event_total'].append(jnp.sum(event))
    vocab = part_logits.shape[-1]
    zeros = jnp.zeros((vocab,), jnp.float32)
    out['class_correct'].append(zeros.at[target].add(hit.astype(jnp.float32)))
    out['class_total'].append(zeros.at[target].add(mask.astype(jnp.float32)))
  result = {k: jnp.stack(out[k]).astype(jnp.float32)
            for k in ('correct', 'total', 'event_correct', 'event_total')}
  result['class_correct'] = tuple(out['class_correct'])
  result['class_total'] = tuple(out['class_total'])
  return result


def add_counts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
  """Element-wise sum of two `accuracy_counts` results."""
  return jax.tree_util.tree_map(lambda x, y: x + y, a, b)


def _ratio(num, den) -> float:
  return float(num) / float(den) if float(den) > 0 else float('nan')


def summarize(counts: dict[str, Any], part_names: Sequence[str] | None = None) -> dict[str, float]:
  """Counts -> accuracies (python floats; NaN where nothing was counted).

  Keys: 'accuracy', 'event_accuracy' (targets other than NO_EVENT), 'class_accuracy' (mean over
  the classes other than NO_EVENT that occur as targets, of each class's accuracy; over all
  parts' classes for the overall value); with more than one part also '<key>/<part name>'.
  """
  correct = np.asarray(counts['correct'])
  num_parts = correct.shape[0]
  names = list(part_names) if part_names else [f'part{i}' for i in range(num_parts)]
  per_class = []
  for cc, ct in zip(counts['class_correct'], counts['class_total']):
    cc, ct = np.asarray(cc)[1:], np.asarray(ct)[1:]
    seen = ct > 0
    per_class.append(cc[seen] / ct[seen])
  out = {
      'accuracy': _ratio(correct.sum(), np.sum(counts['total'])),
      'event_accuracy': _ratio(np.sum(counts['event_correct']), np.sum(counts['event_total'])),
      'class_accuracy': (float(np.mean(np.concatenate(per_class)))
                         if sum(x.size for x in per_class) else float('nan')),
  }
  if num_parts > 1:
    for p, name in enumerate(names):
      out[f'accuracy/{name}'] = _ratio(counts['correct'][p], counts['total'][p])
      out[f'event_accuracy/{name}'] = _ratio(counts['event_correct'][p],
                                             counts['event_total'][p])
      out[f'class_accuracy/{name}'] = (float(np.mean(per_class[p])) if per_class[p].size
                                       else float('nan'))
  return out


def slerp(a: jax.Array, b: jax.Array, t: Any, eps: float = 1e-6) -> jax.Array:
  """Spherical linear interpolation between latent codes a and b.

  Args:
    a, b: float [..., d] (same shape).
    t: scalar or float [n] in [0, 1].
    eps: below this sin(angle), fall back to linear interpolation.
  Returns:
    float [..., d] for scalar t, [n, ..., d] for t of shape [n]; exactly a at t = 0 and b at
    t = 1. The angle is that between the directions of a and b, and the norm is interpolated
    along with the direction as in the reference (sin((1-t) w) a + sin(t w) b) / sin(w).
    Identical directions (sin w ~ 0) use linear interpolation, which is then the same
    curve. Antipodal vectors (w ~ pi) have no unique great circle; they also fall back to
    linear interpolation, a straight line through (or, for unequal norms, near) the origin,
    rather than returning NaN.
  """
  a = jnp.asarray(a, jnp.float32)
  b = jnp.asarray(b, jnp.float32)
  t = jnp.asarray(t, jnp.float32)
  t = t.reshape(t.shape + (1,) * a.ndim)
  na = jnp.linalg.norm(a, axis=-1, keepdims=True)
  nb = jnp.linalg.norm(b, axis=-1, keepdims=True)
  cos = jnp.sum(a * b, axis=-1, keepdims=True) / jnp.maximum(na * nb, 1e-30)
  omega = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
  so = jnp.sin(omega)
  small = so < eps
  safe_so = jnp.where(small, 1.0, so)
  spherical = (jnp.sin((1.0 - t) * omega) * a + jnp.sin(t * omega) * b) / safe_so
  linear = (1.0 - t) * a + t * b
  out = jnp.where(small, linear, spherical)
  out = jnp.where(t == 0.0, a, out)
  return jnp.where(t == 1.0, b, out)
