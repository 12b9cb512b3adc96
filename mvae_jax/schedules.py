"""Pure functions of the training step: learning rate, KL weight beta, sampling probability.
(The optimizer that uses the learning rate is `mvae_jax.optimizer`.)

Rates are python floats. Powers `rate^step` are computed as exp(step * ln(rate)) with ln(rate)
taken in float64: float32 cannot hold 0.99999 exactly, and its error grows with the exponent
(0.99999^100000 in float32 arithmetic is off by 0.1%).
"""

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp


def learning_rate_schedule(init: float = 1e-3, min: float = 1e-5,  # pylint: disable=redefined-builtin
                           decay_rate: float = 0.9999) -> Callable[[Any], jax.Array]:
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
