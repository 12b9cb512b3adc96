"""The optimizer: global-norm clipping and Adam on the learning-rate schedule, with the
reference's skip of huge updates and an optional smaller learning rate for the encoder."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from mvae_jax.schedules import learning_rate_schedule

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


def from_config(cfg: Any) -> optax.GradientTransformation:
  """The optimizer of a run config (`config.optim`)."""
  return make_optimizer(
      learning_rate=cfg.optim.learning_rate, min_learning_rate=cfg.optim.min_learning_rate,
      decay_rate=cfg.optim.decay_rate, grad_clip=cfg.optim.grad_clip,
      clip_to_zero_norm=cfg.optim.clip_to_zero_norm,
      encoder_lr_scale=cfg.optim.get('encoder_lr_scale', 1.0))
