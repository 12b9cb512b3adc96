"""VAE objective: reconstruction cross-entropy, KL to N(0, I), free bits. Units: nats.

Shapes: `logits` is a tuple with one float [batch, time, vocab_p] per part (a bare array is
taken as a single part), `tokens` int [batch, time, parts], `lengths` int [batch] or None (full).
"""

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax

LN2 = math.log(2.0)


def _as_parts(logits: jax.Array | Sequence[jax.Array]) -> tuple[jax.Array, ...]:
  return (logits,) if hasattr(logits, 'ndim') else tuple(logits)


def sequence_mask(lengths: jax.Array | None, batch: int, time: int) -> jax.Array:
  """float32 [batch, time]: 1 on steps t < length (all steps when lengths is None)."""
  if lengths is None:
    return jnp.ones((batch, time), jnp.float32)
  return (jnp.arange(time)[None, :] < jnp.asarray(lengths)[:, None]).astype(jnp.float32)


def reconstruction_loss(logits, tokens: jax.Array,
                        lengths: jax.Array | None = None) -> jax.Array:
  """Cross-entropy per example, summed over valid steps and over parts (nats).

  Returns:
    float32 [batch].
  """
  parts = _as_parts(logits)
  batch, time = tokens.shape[:2]
  mask = sequence_mask(lengths, batch, time)
  total = jnp.zeros((batch,), jnp.float32)
  for p, part_logits in enumerate(parts):
    xent = optax.softmax_cross_entropy_with_integer_labels(
        part_logits.astype(jnp.float32), tokens[..., p].astype(jnp.int32))
    total = total + jnp.sum(xent * mask, axis=1)
  return total


def kl_divergence(mu: jax.Array, sigma: jax.Array) -> jax.Array:
  """KL(N(mu, diag(sigma^2)) || N(0, I)) per example, summed over z dims (nats).

  mu, sigma: float [batch, z]. Returns float32 [batch].
  """
  mu = mu.astype(jnp.float32)
  sigma = sigma.astype(jnp.float32)
  return 0.5 * jnp.sum(mu ** 2 + sigma ** 2 - 1.0 - 2.0 * jnp.log(sigma), axis=-1)


def free_bits_kl_cost(kl: jax.Array, free_bits: float) -> jax.Array:
  """max(KL - free_bits * ln 2, 0): KL below the free-bits budget (in bits) costs nothing."""
  return jnp.maximum(kl - free_bits * LN2, 0.0)


def vae_loss(logits, tokens: jax.Array, lengths: jax.Array | None, mu: jax.Array | None,
             sigma: jax.Array | None, *, beta: Any,
             free_bits: float) -> tuple[jax.Array, dict[str, jax.Array]]:
  """loss = mean(recon) + beta * mean(kl_cost).

  Args:
    logits, tokens, lengths: see the module docstring.
    mu, sigma: float [batch, z] or None (baseline: KL is 0).
    beta: KL weight (python or traced scalar).
    free_bits: free-bits budget in bits per example.
  Returns:
    (scalar loss, {'recon', 'kl', 'kl_cost', 'beta', 'loss'}: batch means, float32 scalars;
     'kl' is before free bits).
  """
  recon = reconstruction_loss(logits, tokens, lengths)
  if mu is None:
    kl = jnp.zeros_like(recon)
  else:
    kl = kl_divergence(mu, sigma)
  kl_cost = free_bits_kl_cost(kl, free_bits)
  beta = jnp.asarray(beta, jnp.float32)
  loss = jnp.mean(recon) + beta * jnp.mean(kl_cost)
  metrics = {'recon': jnp.mean(recon), 'kl': jnp.mean(kl), 'kl_cost': jnp.mean(kl_cost),
             'beta': beta, 'loss': loss}
  return loss, metrics
