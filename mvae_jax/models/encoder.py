"""Bidirectional LSTM encoder: tokens -> (mu, sigma) of q(z | x)."""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mvae_jax.models import lstm

NUM_DRUM_CLASSES = 9
DRUM_ROLL_WIDTH = NUM_DRUM_CLASSES + 1  # 9 class bits + a "no hit" bit


def drum_roll(tokens: jax.Array) -> jax.Array:
  """512-class drum indices -> the reference's 10-value encoder input.

  Args:
    tokens: int [...], bit i set = drum class i hit on that step.
  Returns:
    float32 [..., 10]: the 9 class bits (bit 0 first), then 1.0 where nothing is hit.
  """
  bits = (tokens[..., None] >> jnp.arange(NUM_DRUM_CLASSES)) & 1
  no_hit = (tokens == 0)[..., None]
  return jnp.concatenate([bits, no_hit], axis=-1).astype(jnp.float32)


DRUM_INPUTS = ('roll', 'one_hot')


def input_widths(part_vocab: Sequence[int], part_is_drums: Sequence[bool],
                 drum_input: str = 'roll') -> tuple[int, ...]:
  """Encoder input width of every part: the vocab (one-hot) or 10 (drum roll, for drums parts
  when `drum_input` is 'roll')."""
  return tuple(DRUM_ROLL_WIDTH if drums and drum_input == 'roll' else vocab
               for vocab, drums in zip(part_vocab, part_is_drums))


def _reverse_within_length(x: jax.Array, lengths: jax.Array) -> jax.Array:
  """Reverses each sequence's first `length` steps; steps past the length stay in place.

  Args:
    x: [time, batch, ...] (time-major).
    lengths: int [batch].
  Returns:
    x with x'[t, b] = x[length_b - 1 - t, b] for t < length_b. Applying it twice is identity.
  """
  t = jnp.arange(x.shape[0])[:, None]
  idx = jnp.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
  idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
  return jnp.take_along_axis(x, idx, axis=0)


def _last_valid(hs: jax.Array, lengths: jax.Array) -> jax.Array:
  """hs [time, batch, H] -> hs[length_b - 1, b], [batch, H]."""
  idx = jnp.clip(lengths - 1, 0, hs.shape[0] - 1)[None, :, None]
  return jnp.take_along_axis(hs, idx, axis=0)[0]


class BidirectionalLSTMEncoder(nn.Module):
  """Stacked BiLSTM over the input tokens -> (mu, sigma), each float32 [batch, z_size].

  The input of every step is the concatenation over parts of a one-hot over the part's vocab
  (or the 10-value drum roll for drums parts when `drum_input='roll'`). Layer k > 0 reads concat(fwd h, bwd h) of layer
  k - 1. The summary is concat(final fwd h, final bwd h) of the top layer, where the backward
  direction starts at each sequence's last valid step.

  Attributes:
    part_vocab: classes per part, e.g. (130,) or (130, 130, 512).
    part_is_drums: which parts are drums (512-class index -> drum roll input).
    drum_input: how drums parts are read: 'roll' (9 hit bits + no-hit, the reference's 2-bar
      drums models) or 'one_hot' (the 512-class one-hot, the reference's trio encoder).
    sizes: hidden size of each BiLSTM layer (per direction).
    z_size: latent size.
    sigma_param: 'softplus' (sigma = softplus(pre), reference) or 'exp2' (sigma = exp(2 pre),
      the paper's appendix).
    dtype: matmul dtype.
    unroll: scan unroll.
  Parameters: `fwd_{k}`, `bwd_{k}` (LSTMLayer), `mu`, `sigma` (Linear, kernels N(0, 0.001^2)).
  """
  part_vocab: Sequence[int]
  part_is_drums: Sequence[bool]
  sizes: Sequence[int] = (2048,)
  z_size: int = 256
  sigma_param: str = 'softplus'
  dtype: Any = jnp.float32
  unroll: int = 1
  drum_input: str = 'roll'
  forget_bias: float = 0.0

  def setup(self):
    if self.sigma_param not in ('softplus', 'exp2'):
      raise ValueError(f'sigma_param must be softplus or exp2, got {self.sigma_param!r}')
    if self.drum_input not in DRUM_INPUTS:
      raise ValueError(f'drum_input must be one of {DRUM_INPUTS}, got {self.drum_input!r}')
    in_size = sum(input_widths(self.part_vocab, self.part_is_drums, self.drum_input))
    fwd, bwd = [], []
    for k, size in enumerate(self.sizes):
      fwd.append(lstm.LSTMLayer(size, in_size, self.dtype, self.forget_bias, name=f'fwd_{k}'))
      bwd.append(lstm.LSTMLayer(size, in_size, self.dtype, self.forget_bias, name=f'bwd_{k}'))
      in_size = 2 * size
    self.fwd, self.bwd = fwd, bwd
    init = nn.initializers.normal(0.001)
    self.mu = lstm.Linear(self.z_size, in_size, self.dtype, kernel_init=init, name='mu')
    self.sigma = lstm.Linear(self.z_size, in_size, self.dtype, kernel_init=init, name='sigma')

  def _input_gates(self, layer: lstm.LSTMLayer, tokens_tm: jax.Array) -> jax.Array:
    """tokens_tm int [time, batch, parts] -> float32 [time, batch, 4H] (`x @ W_in + b`)."""
    gates, offset = layer.bias, 0
    widths = input_widths(self.part_vocab, self.part_is_drums, self.drum_input)
    for p, (vocab, drums, width) in enumerate(zip(self.part_vocab, self.part_is_drums, widths)):
      tok = tokens_tm[..., p]
      if drums and self.drum_input == 'roll':
        gates = gates + layer.project(drum_roll(tok), slice(offset, offset + width), bias=False)
      else:
        gates = gates + layer.gather(tok, offset, vocab)
      offset += width
    return gates

  def summary(self, tokens: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """tokens int [batch, time, parts], lengths int [batch] or None -> float32 [batch, 2H_top]."""
    tokens = jnp.swapaxes(tokens.astype(jnp.int32), 0, 1)  # [time, batch, parts]
    batch = tokens.shape[1]
    if lengths is not None:
      lengths = lengths.astype(jnp.int32)
      rev_tokens = _reverse_within_length(tokens, lengths)
    hs = None
    for k, (fwd, bwd) in enumerate(zip(self.fwd, self.bwd)):
      if k == 0:
        gx_f = self._input_gates(fwd, tokens)
        gx_b = self._input_gates(bwd, tokens if lengths is None else rev_tokens)
      else:
        gx_f = fwd.project(hs)
        gx_b = bwd.project(hs if lengths is None else _reverse_within_length(hs, lengths))
      run = lambda layer, gx, rev: lstm.run_layer(  # pylint: disable=g-long-lambda
          gx, layer.zero_carry(batch), layer.recurrent_kernel, self.dtype, self.unroll, rev)
      if lengths is None:
        (_, h_f), hs_f = run(fwd, gx_f, False)
        (_, h_b), hs_b = run(bwd, gx_b, True)
      else:
        _, hs_f = run(fwd, gx_f, False)
        _, hs_b_rev = run(bwd, gx_b, False)  # forward in time over the reversed sequences
        h_f, h_b = _last_valid(hs_f, lengths), _last_valid(hs_b_rev, lengths)
        hs_b = _reverse_within_length(hs_b_rev, lengths)
      hs = jnp.concatenate([hs_f, hs_b], axis=-1)
    return jnp.concatenate([h_f, h_b], axis=-1)

  def __call__(self, tokens: jax.Array,
               lengths: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """tokens int [batch, time, parts] -> (mu, sigma), float32 [batch, z_size] each."""
    h = self.summary(tokens, lengths)
    mu = self.mu(h)
    pre = self.sigma(h)
    sigma = jax.nn.softplus(pre) if self.sigma_param == 'softplus' else jnp.exp(2.0 * pre)
    return mu, sigma
