"""Loss functions against hand-computed numbers."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from mvae_jax import losses

LN3 = math.log(3.0)


def two_class_logits():
  # Every step: p(class 0) = 1/4, p(class 1) = 3/4.
  return jnp.broadcast_to(jnp.array([0.0, LN3]), (2, 3, 2))


def test_reconstruction_loss_masks_and_sums():
  tokens = jnp.array([[1, 0, 1], [0, 0, 1]])[..., None]
  lengths = jnp.array([3, 2])
  recon = losses.reconstruction_loss((two_class_logits(),), tokens, lengths)
  a, b = -math.log(0.75), math.log(4.0)
  np.testing.assert_allclose(recon, [2 * a + b, 2 * b], rtol=1e-6)
  full = losses.reconstruction_loss(two_class_logits(), tokens, None)  # bare array, no mask
  np.testing.assert_allclose(full, [2 * a + b, 2 * b + a], rtol=1e-6)


def test_reconstruction_loss_sums_parts():
  tokens = jnp.stack([jnp.ones((2, 3), jnp.int32), jnp.zeros((2, 3), jnp.int32)], axis=-1)
  uniform = jnp.zeros((2, 3, 5))
  recon = losses.reconstruction_loss((two_class_logits(), uniform), tokens, jnp.array([1, 3]))
  a = -math.log(0.75)
  np.testing.assert_allclose(recon, [a + math.log(5), 3 * (a + math.log(5))], rtol=1e-6)


def test_kl_divergence():
  mu = jnp.array([[1.0, 0.0], [0.0, 0.0]])
  sigma = jnp.array([[1.0, 2.0], [1.0, 1.0]])
  # dim 1: 0.5 * (1 + 1 - 1 - 0) = 0.5; dim 2: 0.5 * (0 + 4 - 1 - 2 ln 2) = 1.5 - ln 2.
  np.testing.assert_allclose(losses.kl_divergence(mu, sigma), [2.0 - math.log(2.0), 0.0],
                             atol=1e-6)


def test_free_bits():
  kl = jnp.array([10.0, 1.0])
  np.testing.assert_allclose(losses.free_bits_kl_cost(kl, 4.0), [10.0 - 4 * math.log(2), 0.0],
                             rtol=1e-6)
  np.testing.assert_allclose(losses.free_bits_kl_cost(kl, 0.0), kl)


def test_vae_loss():
  tokens = jnp.array([[1, 0, 1], [0, 0, 1]])[..., None]
  lengths = jnp.array([3, 2])
  mu = jnp.array([[1.0, 0.0], [3.0, 0.0]])
  sigma = jnp.ones((2, 2))
  loss, m = losses.vae_loss((two_class_logits(),), tokens, lengths, mu, sigma, beta=0.5,
                            free_bits=1.0)
  a, b = -math.log(0.75), math.log(4.0)
  recon = ((2 * a + b) + 2 * b) / 2
  kl = (0.5 + 4.5) / 2
  kl_cost = (0.0 + (4.5 - math.log(2))) / 2  # the first example is within its free bit
  assert m['recon'] == pytest.approx(recon, rel=1e-6)
  assert m['kl'] == pytest.approx(kl, rel=1e-6)
  assert m['kl_cost'] == pytest.approx(kl_cost, rel=1e-6)
  assert m['beta'] == pytest.approx(0.5)
  assert float(loss) == pytest.approx(recon + 0.5 * kl_cost, rel=1e-6)
  assert m['loss'] == loss


def test_vae_loss_baseline_has_no_kl():
  tokens = jnp.array([[1, 0, 1], [0, 0, 1]])[..., None]
  loss, m = losses.vae_loss((two_class_logits(),), tokens, None, None, None, beta=1.0,
                            free_bits=0.0)
  assert float(m['kl']) == 0.0 and float(m['kl_cost']) == 0.0
  assert float(loss) == pytest.approx(float(m['recon']))
