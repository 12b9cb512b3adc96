"""Pure functions of the training step: learning rate, KL weight beta, sampling probability;
and the optimizer they feed.

Rates are python floats. Powers `rate^step` are computed as exp(step * ln(rate)) with ln(rate)
taken in float64: float32 cannot hold 0.99999 exactly, and its error grows with the exponent
(0.99999^100000 in float32 arithmetic is off by 0.1%).
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax


def learning_rate_schedule(init: float = 1e-3, min: float = 1e-5,  # pylint: disable=redefined-builtin
                           decay_rate: float = 0.9999) -> optax.Schedule:
  """lr(step) = (init - min) * decay_rate^step + min (exponential decay towards `min`)."""
  log_rate = math.log(decay_rate)

  def schedule(step):
    return (init - min) * _power(log_rate, step) + min
  return schedule


def _power(log_rate: float, step: Any) -> jax.Array:
  """rate^step as float32, from ln(rate) computed in float64."""
  return jnp.exp(jnp.asarray(step, jnp.float32) * jnp.float32(log_rate))


def beta(step: Any, max_beta: float, rate: float | None) -> jax.Array:
  """KL weight: (1 - rate^step) * max_beta, annealed from 0 towards max_beta.

  `rate` None or 0 means a constant max_beta from step 0 on (0^0 would otherwise give beta 0
  at step 0 only).
  """
  if not rate:
    return jnp.asarray(max_beta, jnp.float32)
  return (1.0 - _power(math.log(rate), step)) * max_beta


def sampling_probability(step: Any, rate: float = 1000.0, enabled: bool = True):
  """Scheduled-sampling probability, inverse sigmoid: 1 - k / (k + exp(step / k)), k = rate.

  Computed as sigmoid(step / k - ln k), which is the same value and never overflows.
  Rises from 1 / (1 + k) at step 0 through 0.5 at step k ln k (about 6.9k for k = 1000) to
  about 1 by 15k. With `enabled=False` returns the python float 0.0, which makes the model
  take its teacher-forced fast path.
  """
  if not enabled:
    return 0.0
  step = jnp.asarray(step, jnp.float32)
  return jax.nn.sigmoid(step / rate - jnp.log(jnp.float32(rate)))


_global_norm = optax.tree.norm if hasattr(optax, 'tree') else optax.global_norm


def skip_large_updates(inner: optax.GradientTransformation,
                       max_norm: float) -> optax.GradientTransformation:
  """Wraps `inner`; when the raw gradient's global norm is >= max_norm (or not finite), the
  update is zero and `inner`'s state (Adam moments, step count) is left as it was."""

  def init(params):
    return inner.init(params)

  def update(grads, state, params=None):
    norm = _global_norm(grads)
    updates, new_state = inner.update(grads, state, params)
    ok = norm < max_norm  # False for NaN too
    updates = jax.tree_util.tree_map(lambda u: jnp.where(ok, u, jnp.zeros_like(u)), updates)
    new_state = jax.tree_util.tree_map(lambda n, o: jnp.where(ok, n, o), new_state, state)
    return updates, new_state

  return optax.GradientTransformation(init, update)


def scale_subtree(inner: optax.GradientTransformation, key: str,
                  factor: float) -> optax.GradientTransformation:
  """Wraps `inner`; its updates under top-level key `key` of the parameter dict are multiplied
  by `factor` (others, and trees without `key`, pass unchanged). The state is `inner`'s own, so
  a run can resume with another factor."""

  def scale(path, u):
    top = path[0] if path else None
    return u * factor if getattr(top, 'key', None) == key else u

  def update(grads, state, params=None):
    updates, state = inner.update(grads, state, params)
    return jax.tree_util.tree_map_with_path(scale, updates), state

  return optax.GradientTransformation(inner.init, update)


def make_optimizer(*, learning_rate: float = 1e-3, min_learning_rate: float = 1e-5,
                   decay_rate: float = 0.9999, grad_clip: float = 1.0,
                   clip_to_zero_norm: float | None = 1e4, b1: float = 0.9,
                   b2: float = 0.999, eps: float = 1e-8,
                   encoder_lr_scale: float = 1.0) -> optax.GradientTransformation:
  """Global-norm clipping to `grad_clip`, then Adam with `learning_rate_schedule`.

  Like the reference, a step whose raw gradient norm is >= `clip_to_zero_norm` changes
  nothing. Unlike the reference (which feeds zero gradients to Adam, so its momentum still
  moves the weights), here such a step is skipped outright: zero update and unchanged
  optimizer state; non-finite gradients are skipped too. None disables the check.

  `encoder_lr_scale` multiplies the learning rate of the parameters under the top-level key
  'encoder' (the BiLSTM encoder and its mu / sigma layers); the optimizer state is the same
  whatever its value.
  """
  lr = learning_rate_schedule(learning_rate, min_learning_rate, decay_rate)
  tx = optax.chain(optax.clip_by_global_norm(grad_clip),
                   optax.adam(lr, b1=b1, b2=b2, eps=eps))
  if encoder_lr_scale != 1.0:
    tx = scale_subtree(tx, 'encoder', encoder_lr_scale)
  if clip_to_zero_norm:
    tx = skip_large_updates(tx, clip_to_zero_norm)
  return tx
