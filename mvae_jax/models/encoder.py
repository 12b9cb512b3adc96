"""Bidirectional LSTM encoders: tokens -> (mu, sigma) of q(z | x).

`BidirectionalLSTMEncoder` (the paper's, and Magenta's `BidirectionalLstmEncoder`) runs a stacked
BiLSTM over the whole window; `HierarchicalLSTMEncoder` (Magenta's `HierarchicalLstmEncoder`, what
magenta.js's hierarchical checkpoints have) runs one over each segment and a second one over the
segment summaries.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

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


def token_gates(layer: lstm.LSTMLayer, tokens_tm: jax.Array, part_vocab: Sequence[int],
                part_is_drums: Sequence[bool], drum_input: str) -> lstm.TokenGates:
  """First-layer input gates of token windows, `x @ W_in + b` with x the concatenation over
  parts of a one-hot (or the drum roll), as tables of every token's gates (`lstm.TokenGates`)
  that `lstm.run_layer` gathers from inside its loop; the bias is in part 0's table.

  Args:
    tokens_tm: int [time, batch, parts] (time-major).
  """
  widths = input_widths(part_vocab, part_is_drums, drum_input)
  tables, rows, offset = [], [], 0
  steps = tokens_tm.shape[0] * tokens_tm.shape[1]
  for p, (vocab, drums, width) in enumerate(zip(part_vocab, part_is_drums, widths)):
    inputs, part_rows = None, tokens_tm[..., p]
    if drums and drum_input == 'roll':
      if steps < vocab:
        # Fewer steps than classes (a user's one or two drum loops): the table holds the
        # steps' own rolls, row i for step i in time-major order (then token -1's, unused),
        # instead of all 512 classes' (a [513, 10] x [10, 4H] product that took 0.3-1.1 ms of
        # a 4.1 ms encode at batch 1; docs/PERFORMANCE.md). The same values either way.
        codes = jnp.concatenate([part_rows.reshape(-1), jnp.array([-1], part_rows.dtype)])
        part_rows = jnp.arange(steps, dtype=part_rows.dtype).reshape(part_rows.shape)
      else:  # every class's roll, then token -1's
        codes = jnp.concatenate([jnp.arange(vocab), jnp.array([-1])])
      inputs = drum_roll(codes)
    tables.append(layer.token_table(offset, vocab, inputs))
    rows.append(part_rows)
    offset += width
  tables[0] = layer.bias + tables[0]  # the order the gates were summed in: bias, part 0, ...
  return lstm.TokenGates(tuple(tables), jnp.stack(rows, axis=-1))


def bidirectional_summary(fwd: Sequence[lstm.LSTMLayer], bwd: Sequence[lstm.LSTMLayer],
                          x_tm: jax.Array, first_gates: Callable[[lstm.LSTMLayer, jax.Array],
                                                                 jax.Array],
                          lengths: jax.Array | None, dtype: Any, unroll: int) -> jax.Array:
  """A stacked BiLSTM's summary: concat(final fwd h, final bwd h) of the top layer.

  Layer k > 0 reads concat(fwd h, bwd h) of layer k - 1 (the backward outputs in input order);
  the backward direction starts at each sequence's last valid step.

  Args:
    fwd, bwd: the layers of each direction, bottom first.
    x_tm: the first layer's input, [time, batch, ...] (time-major).
    first_gates: (layer, x_tm) -> the first layer's input gates as `lstm.run_layer` takes them
      (`token_gates`, or an array).
    lengths: int [batch] or None (all `time` steps valid).
  Returns:
    float32 [batch, 2 H_top].
  """
  batch = x_tm.shape[1]
  if lengths is not None:
    lengths = lengths.astype(jnp.int32)
    rev_x = _reverse_within_length(x_tm, lengths)
  hs = None
  for k, (f, b) in enumerate(zip(fwd, bwd)):
    if k == 0:
      gx_f = first_gates(f, x_tm)
      gx_b = first_gates(b, x_tm if lengths is None else rev_x)
    else:
      gx_f = f.project(hs)
      gx_b = b.project(hs if lengths is None else _reverse_within_length(hs, lengths))
    run = lambda layer, gx, rev: lstm.run_layer(  # pylint: disable=g-long-lambda
        gx, layer.zero_carry(batch), layer.recurrent_kernel, dtype, unroll, rev)
    if lengths is None:
      (_, h_f), hs_f = run(f, gx_f, False)
      (_, h_b), hs_b = run(b, gx_b, True)
    else:
      _, hs_f = run(f, gx_f, False)
      _, hs_b_rev = run(b, gx_b, False)  # forward in time over the reversed sequences
      h_f, h_b = _last_valid(hs_f, lengths), _last_valid(hs_b_rev, lengths)
      hs_b = _reverse_within_length(hs_b_rev, lengths)
    hs = jnp.concatenate([hs_f, hs_b], axis=-1)
  return jnp.concatenate([h_f, h_b], axis=-1)


def _make_layers(sizes: Sequence[int], in_size: int, dtype: Any,
                 forget_bias: float) -> tuple[list[lstm.LSTMLayer], list[lstm.LSTMLayer], int]:
  """The `fwd_k` / `bwd_k` layers of a stacked BiLSTM (created inside a `setup`) and the width
  of its summary."""
  fwd, bwd = [], []
  for k, size in enumerate(sizes):
    fwd.append(lstm.LSTMLayer(size, in_size, dtype, forget_bias, name=f'fwd_{k}'))
    bwd.append(lstm.LSTMLayer(size, in_size, dtype, forget_bias, name=f'bwd_{k}'))
    in_size = 2 * size
  return fwd, bwd, in_size


def _posterior(h: jax.Array, mu: lstm.Linear, sigma: lstm.Linear,
               sigma_param: str) -> tuple[jax.Array, jax.Array]:
  pre = sigma(h)
  return mu(h), (jax.nn.softplus(pre) if sigma_param == 'softplus' else jnp.exp(2.0 * pre))


def _check(sigma_param: str, drum_input: str) -> None:
  if sigma_param not in ('softplus', 'exp2'):
    raise ValueError(f'sigma_param must be softplus or exp2, got {sigma_param!r}')
  if drum_input not in DRUM_INPUTS:
    raise ValueError(f'drum_input must be one of {DRUM_INPUTS}, got {drum_input!r}')


class BidirectionalLSTMEncoder(nn.Module):
  """Stacked BiLSTM over the input tokens -> (mu, sigma), each float32 [batch, z_size].

  The input of every step is the concatenation over parts of a one-hot over the part's vocab
  (or the 10-value drum roll for drums parts when `drum_input='roll'`). Layer k > 0 reads
  concat(fwd h, bwd h) of layer k - 1. The summary is concat(final fwd h, final bwd h) of the top
  layer, where the backward direction starts at each sequence's last valid step.

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
    _check(self.sigma_param, self.drum_input)
    in_size = sum(input_widths(self.part_vocab, self.part_is_drums, self.drum_input))
    self.fwd, self.bwd, out = _make_layers(self.sizes, in_size, self.dtype, self.forget_bias)
    init = nn.initializers.normal(0.001)
    self.mu = lstm.Linear(self.z_size, out, self.dtype, kernel_init=init, name='mu')
    self.sigma = lstm.Linear(self.z_size, out, self.dtype, kernel_init=init, name='sigma')

  def _gates(self, layer: lstm.LSTMLayer, tokens_tm: jax.Array) -> jax.Array:
    return token_gates(layer, tokens_tm, self.part_vocab, self.part_is_drums, self.drum_input)

  def summary(self, tokens: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """tokens int [batch, time, parts], lengths int [batch] or None -> float32 [batch, 2H_top]."""
    tokens = jnp.swapaxes(tokens.astype(jnp.int32), 0, 1)  # [time, batch, parts]
    return bidirectional_summary(self.fwd, self.bwd, tokens, self._gates, lengths, self.dtype,
                                 self.unroll)

  def __call__(self, tokens: jax.Array,
               lengths: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """tokens int [batch, time, parts] -> (mu, sigma), float32 [batch, z_size] each."""
    return _posterior(self.summary(tokens, lengths), self.mu, self.sigma, self.sigma_param)


class _BiLSTMLevel(nn.Module):
  """One level of `HierarchicalLSTMEncoder`: a stacked BiLSTM's parameters (`fwd_k`, `bwd_k`)."""
  sizes: Sequence[int]
  in_size: int
  dtype: Any = jnp.float32
  forget_bias: float = 0.0
  unroll: int = 1

  def setup(self):
    self.fwd, self.bwd, _ = _make_layers(self.sizes, self.in_size, self.dtype, self.forget_bias)

  def __call__(self, x_tm: jax.Array, first_gates: Callable[..., jax.Array]) -> jax.Array:
    """x_tm [time, batch, ...] -> summary float32 [batch, 2 H_top] (every step valid)."""
    return bidirectional_summary(self.fwd, self.bwd, x_tm, first_gates, None, self.dtype,
                                 self.unroll)


class HierarchicalLSTMEncoder(nn.Module):
  """Two-level BiLSTM encoder (the reference's `HierarchicalLstmEncoder`) -> (mu, sigma).

  Level 0 splits the window into `num_segments` equal segments and runs a stacked BiLSTM over
  each one on its own (from a zero state), giving one summary per segment (concat of the final
  fwd and bwd h); level 1 runs a second stacked BiLSTM of the same sizes over the
  `num_segments` summaries; mu and sigma come from its summary. Inputs as in
  `BidirectionalLSTMEncoder`. magenta.js's hierarchical models have one layer per level and
  as many level-0 segments as conductor steps (its `numSegments`).

  Attributes: as `BidirectionalLSTMEncoder`, plus
    num_segments: level-0 segments per window (time must be a multiple).
  Parameters: `level_0/{fwd_k, bwd_k}`, `level_1/{fwd_k, bwd_k}` (LSTMLayer), `mu`, `sigma`.
  """
  part_vocab: Sequence[int]
  part_is_drums: Sequence[bool]
  sizes: Sequence[int] = (1024,)
  z_size: int = 512
  num_segments: int = 16
  sigma_param: str = 'softplus'
  dtype: Any = jnp.float32
  unroll: int = 1
  drum_input: str = 'roll'
  forget_bias: float = 0.0

  def setup(self):
    _check(self.sigma_param, self.drum_input)
    in_size = sum(input_widths(self.part_vocab, self.part_is_drums, self.drum_input))
    shared = dict(sizes=tuple(self.sizes), dtype=self.dtype, forget_bias=self.forget_bias,
                  unroll=self.unroll)
    self.level_0 = _BiLSTMLevel(in_size=in_size, name='level_0', **shared)
    out = 2 * self.sizes[-1]
    self.level_1 = _BiLSTMLevel(in_size=out, name='level_1', **shared)
    init = nn.initializers.normal(0.001)
    self.mu = lstm.Linear(self.z_size, out, self.dtype, kernel_init=init, name='mu')
    self.sigma = lstm.Linear(self.z_size, out, self.dtype, kernel_init=init, name='sigma')

  def summary(self, tokens: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """tokens int [batch, time, parts] -> float32 [batch, 2H_top]; whole windows only."""
    if lengths is not None:
      raise ValueError('the hierarchical encoder reads whole windows (lengths=None)')
    batch, time, parts = tokens.shape
    if time % self.num_segments:
      raise ValueError(f'time {time} is not a multiple of the encoder\'s {self.num_segments} '
                       'segments')
    seg = time // self.num_segments
    # [batch, segments, seg, parts] -> [seg, batch * segments, parts]: every segment a sequence.
    x = tokens.astype(jnp.int32).reshape(batch * self.num_segments, seg, parts)
    gates = lambda layer, t: token_gates(  # pylint: disable=g-long-lambda
        layer, t, self.part_vocab, self.part_is_drums, self.drum_input)
    h = self.level_0(jnp.swapaxes(x, 0, 1), gates)            # [batch * segments, 2H]
    h = jnp.swapaxes(h.reshape(batch, self.num_segments, -1), 0, 1)  # [segments, batch, 2H]
    return self.level_1(h, lambda layer, e: layer.project(e))

  def __call__(self, tokens: jax.Array,
               lengths: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """tokens int [batch, time, parts] -> (mu, sigma), float32 [batch, z_size] each."""
    return _posterior(self.summary(tokens, lengths), self.mu, self.sigma, self.sigma_param)
