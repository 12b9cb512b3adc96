"""Autoregressive decoders: flat (2-bar loops) and hierarchical (conductor + bottom decoders).

Both decoders see one picture: the sequence is cut into `num_segments` segments of equal
length (one segment for the flat decoder), each part (melody; or lead, bass, drums) has its own
bottom decoder, and every segment of every part is decoded by that part's stacked LSTM with its
state reset to tanh(Dense(c_i)) and c_i concatenated to the previous token at every step. For
the flat decoder c_0 = z; for the hierarchical decoder c_i is the conductor's i-th embedding.

Inputs are "previous tokens": at step t the input is the token of step t - 1, and at t = 0
no token (an all-zero one-hot, written as index -1). The first input of segment i > 0 is the
last token of segment i - 1.

Three ways to run a decoder:
  * `teacher_forced`: the inputs are the targets; every segment is independent given c_i, so all
    [batch * segments] segments run as one batch, layer by layer with hoisted input matmuls.
  * `scheduled_sampling`: like teacher forcing (segments batched, the first input of a segment
    is the ground truth), but within a segment each step's input is, with probability
    `p_sample` per example, a token sampled (temperature 1) from the previous step's output.
  * `decode`: free running, segment after segment, feeding back what it sampled (softmax at
    `temperature`, or argmax when `greedy`), optionally mixed with `targets` like above.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mvae_jax.models import lstm

NO_TOKEN = -1  # "previous token" of the very first step: all-zero one-hot


def shift_right(tokens: jax.Array) -> jax.Array:
  """Previous-token inputs: int [batch, time, ...] -> same shape, NO_TOKEN at t = 0."""
  pad = jnp.full_like(tokens[:, :1], NO_TOKEN)
  return jnp.concatenate([pad, tokens[:, :-1]], axis=1)


class PartDecoder(nn.Module):
  """One part's autoregressive stacked LSTM, conditioned on one vector per segment.

  Attributes:
    vocab: output classes (and one-hot input width).
    sizes: hidden size of each layer.
    cond_size: width of the conditioning vector (z or conductor embedding); 0 = unconditioned
      (the flat baseline: zero initial state, input = previous token only).
    dtype: matmul dtype.
    unroll: scan unroll.
    forget_bias: run-time forget-gate bias of every layer (`lstm.LSTMLayer`).
  Parameters: `lstm_{k}` (layer 0's input kernel rows = [vocab one-hot | cond]),
    `initial_state` (when conditioned), `logits`.
  """
  vocab: int
  sizes: Sequence[int]
  cond_size: int = 0
  dtype: Any = jnp.float32
  unroll: int = 1
  forget_bias: float = 0.0

  def setup(self):
    layers, in_size = [], self.vocab + self.cond_size
    for k, size in enumerate(self.sizes):
      layers.append(lstm.LSTMLayer(size, in_size, self.dtype, self.forget_bias, name=f'lstm_{k}'))
      in_size = size
    self.layers = layers
    if self.cond_size:
      self.initial_state = lstm.InitialState(self.sizes, self.cond_size, self.dtype,
                                             name='initial_state')
    self.logits = lstm.Linear(self.vocab, self.sizes[-1], self.dtype, name='logits')

  def _initial_carry(self, cond: jax.Array | None, batch_size: int) -> tuple[lstm.Carry, ...]:
    """Per layer (c, h) float32 [..., H]: tanh(Dense(cond)), or zeros [batch_size, H]."""
    if self.cond_size:
      return self.initial_state(cond)
    return tuple(layer.zero_carry(batch_size) for layer in self.layers)

  def _cond_gates(self, cond: jax.Array | None) -> jax.Array:
    """Layer 0's gate contribution of the conditioning vector plus bias: [..., 4H] float32."""
    layer = self.layers[0]
    if self.cond_size:
      return layer.project(cond, slice(self.vocab, None))
    return layer.bias

  def teacher_forced(self, prev_tokens: jax.Array, cond: jax.Array | None) -> jax.Array:
    """Next-step logits given the inputs, layer by layer with hoisted input projections.

    Args:
      prev_tokens: int [n, length], the input token of every step (NO_TOKEN = none).
      cond: float [n, cond_size] (one segment per row), or None when unconditioned.
    Returns:
      float32 [n, length, vocab].
    """
    n = prev_tokens.shape[0]
    carries = self._initial_carry(cond, n)
    prev_tm = jnp.swapaxes(prev_tokens, 0, 1)  # [length, n]
    hs = None
    for k, layer in enumerate(self.layers):
      # What is the same at every step (the conditioning's projection, the bias) enters the
      # recurrence apart from the per-step inputs (`run_layer`'s step_gates: cheaper gradient).
      if k == 0:
        gx = layer.token_gates(prev_tm, 0, self.vocab, bias=False)  # rows gathered in the loop
        step_gates = self._cond_gates(cond)
      else:
        gx, step_gates = layer.project(hs, bias=False), layer.bias
      _, hs = lstm.run_layer(gx, carries[k], layer.recurrent_kernel, self.dtype, self.unroll,
                             step_gates=step_gates)
    return self.logits(jnp.swapaxes(hs, 0, 1))

  def free_running(self, cond: jax.Array | None, first_input: jax.Array, *, num_segments: int,
                   length: int, rng: jax.Array, targets: jax.Array | None = None,
                   p_sample: Any = 1.0, temperature: Any = 1.0, greedy: bool = False,
                   with_logits: bool = True,
                   shared_noise: bool = False) -> tuple[jax.Array, jax.Array | None]:
    """Step-by-step decoding that feeds back its own tokens, segment after segment.

    The state is reset to tanh(Dense(cond[:, s])) at the start of every segment s; the input of
    a step is the token fed back at the previous step (across segment boundaries too), and
    `first_input` for the very first step. The fed-back token is the sampled token, or, when
    `targets` is given, per example with probability 1 - p_sample the target instead.

    Sampling is Gumbel-max, argmax(g + logits / temperature) with g the Gumbel noise of
    `jax.random.categorical` at that step's key: the same draws as calling it step by step, but
    the noise and coin flips of a whole segment are drawn before its steps run (one vectorised
    draw instead of one per step).

    Args:
      cond: float [n, num_segments, cond_size], or None when unconditioned.
      first_input: int [n], input of the first step (NO_TOKEN = none).
      num_segments: segments to decode.
      length: steps per segment.
      rng: key for sampling and for the p_sample coin flips.
      targets: int [n, num_segments * length] or None.
      p_sample: probability (python or traced scalar) of feeding back the own token.
      temperature: softmax temperature of the samples (ignored when greedy).
      greedy: take the argmax instead of sampling.
      with_logits: also return every step's logits (False: generation, which needs only tokens).
      shared_noise: every row gets the noise of row 0 of a batch of one (an interpolation's
        points differ only through their conditioning); without targets only.
    Returns:
      (tokens int32 [n, num_segments, length], the decoder's own outputs;
       logits float32 [n, num_segments, length, vocab], or None without `with_logits`).
    """
    n = first_input.shape[0]
    dtype = self.dtype
    layers = self.layers
    if shared_noise and targets is not None:
      raise ValueError('shared_noise is for free generation, without targets')
    token_table = layers[0].input_kernel[:self.vocab].astype(dtype)
    w_rec = [lstm.step_kernel(layer.recurrent_kernel, n, dtype) for layer in layers]
    w_in = [None] + [lstm.step_kernel(layer.input_kernel, n, dtype) for layer in layers[1:]]
    bias = [None] + [layer.bias for layer in layers[1:]]
    w_out, b_out = lstm.step_kernel(self.logits.kernel, n, dtype), self.logits.bias

    if cond is None:
      seg_gates = jnp.broadcast_to(self._cond_gates(None), (num_segments, n, 4 * self.sizes[0]))
      carries = self._initial_carry(None, n)
      seg_carries = jax.tree_util.tree_map(
          lambda x: jnp.broadcast_to(x, (num_segments,) + x.shape), carries)
    else:
      cond_sm = jnp.swapaxes(cond, 0, 1)  # [segments, n, cond_size]
      seg_gates = self._cond_gates(cond_sm)
      seg_carries = self._initial_carry(cond_sm, n)

    keys = jax.random.split(rng, num_segments * length)
    keys = keys.reshape((num_segments, length) + keys.shape[1:])
    if targets is None:
      tgt = jnp.zeros((num_segments, length, 1), jnp.int32)  # unused placeholder
    else:
      tgt = jnp.transpose(targets.astype(jnp.int32).reshape(n, num_segments, length), (1, 2, 0))
    noise_rows = 1 if shared_noise else n

    def draws(seg_keys):
      """One segment's Gumbel noise float32 [length, rows, vocab] and coin flips bool
      [length, n] (True: feed the own sample), from each step's key as the step would."""
      step_keys = jax.vmap(jax.random.split)(seg_keys)  # [length, 2, ...]: sample, coin
      noise = coins = None
      if not greedy:
        noise = jax.vmap(lambda k: jax.random.gumbel(k, (noise_rows, self.vocab)))(
            step_keys[:, 0])
      if targets is not None:
        coins = jax.vmap(lambda k: jax.random.uniform(k, (n,)))(step_keys[:, 1]) < p_sample
      return noise, coins

    def step(state, xs, cond_gates):
      carries, prev = state
      noise, coin, target = xs
      x = lstm.gather_rows(token_table, prev) + cond_gates
      new_carries = []
      for k in range(len(layers)):
        gx = x if k == 0 else w_in[k](x) + bias[k]
        carry = lstm.lstm_cell(carries[k], gx, w_rec[k], dtype)
        new_carries.append(carry)
        x = carry[1]
      logits = w_out(x) + b_out
      scores = jax.lax.stop_gradient(logits)
      if greedy:
        sample = jnp.argmax(scores, axis=-1).astype(jnp.int32)
      else:  # = jax.random.categorical(key, scores / temperature) with this noise
        sample = jnp.argmax(noise + scores / temperature, axis=-1).astype(jnp.int32)
      fed = sample if targets is None else jnp.where(coin, sample, target)
      return (tuple(new_carries), fed), ((sample, logits) if with_logits else sample)

    def segment(prev, xs):
      carries, cond_gates, seg_keys, seg_targets = xs
      noise, coins = draws(seg_keys)
      (_, prev), outs = jax.lax.scan(
          lambda s, x: step(s, x, cond_gates), (carries, prev), (noise, coins, seg_targets),
          unroll=self.unroll)
      return prev, outs

    _, outs = jax.lax.scan(
        segment, first_input.astype(jnp.int32), (seg_carries, seg_gates, keys, tgt))
    # [segments, length, n, ...] -> [n, segments, length, ...]
    if not with_logits:
      return jnp.transpose(outs, (2, 0, 1)), None
    tokens, logits = outs
    return jnp.transpose(tokens, (2, 0, 1)), jnp.transpose(logits, (2, 0, 1, 3))


class _ConductorCell(nn.Module):
  """One conductor step: a stacked LSTM with a constant zero input (layer 0 has only a bias)."""
  sizes: Sequence[int]
  dtype: Any = jnp.float32
  forget_bias: float = 0.0

  @nn.compact
  def __call__(self, carries: tuple[lstm.Carry, ...], _) -> tuple[tuple[lstm.Carry, ...], jax.Array]:
    x, new = None, []
    for k, size in enumerate(self.sizes):
      layer = lstm.LSTMLayer(size, 0 if k == 0 else self.sizes[k - 1], self.dtype,
                             self.forget_bias, name=f'lstm_{k}')
      gx = layer.bias if k == 0 else layer.project(x)
      carry = lstm.lstm_cell(carries[k], gx, layer.recurrent_kernel, self.dtype)
      new.append(carry)
      x = carry[1]
    return tuple(new), x


class Conductor(nn.Module):
  """z -> one embedding per segment.

  The LSTM stack starts at tanh(Dense(z)) (zeros when `z_size` is 0: the baseline), reads a zero
  vector and runs `num_segments` steps (an `nn.scan`); each step's top h, optionally projected
  by Dense(embedding_size) (the paper) or raw (the reference), is that segment's c_i.

  Parameters: `initial_state`, `rnn/lstm_{k}`, `embedding`.
  """
  sizes: Sequence[int] = (1024, 1024)
  z_size: int = 512
  num_segments: int = 16
  embedding_size: int | None = 512
  dtype: Any = jnp.float32
  unroll: int = 1
  forget_bias: float = 0.0

  def setup(self):
    if self.z_size:
      self.initial_state = lstm.InitialState(self.sizes, self.z_size, self.dtype,
                                             name='initial_state')
    self.rnn = nn.scan(_ConductorCell, variable_broadcast='params', split_rngs={'params': False},
                       length=self.num_segments, unroll=self.unroll, out_axes=1)(
                           self.sizes, self.dtype, self.forget_bias, name='rnn')
    if self.embedding_size:
      self.embedding = lstm.Linear(self.embedding_size, self.sizes[-1], self.dtype,
                                   name='embedding')

  @property
  def output_size(self) -> int:
    return self.embedding_size or self.sizes[-1]

  def __call__(self, z: jax.Array | None, batch_size: int) -> jax.Array:
    """z float [batch, z_size] or None -> embeddings float32 [batch, num_segments, output_size]."""
    if self.z_size:
      carries = self.initial_state(z)
    else:
      carries = tuple((jnp.zeros((batch_size, s)), jnp.zeros((batch_size, s)))
                      for s in self.sizes)
    _, hs = self.rnn(carries, None)
    return self.embedding(hs) if self.embedding_size else hs


class _SegmentedDecoder(nn.Module):
  """Shared driver: subclasses define `parts`, `num_segments` and `conditioning(z, batch)`."""

  def conditioning(self, z, batch_size):
    raise NotImplementedError

  def _segments(self, tokens):
    batch, time, num_parts = tokens.shape
    if num_parts != len(self.parts):
      raise ValueError(f'tokens have {num_parts} parts, the decoder {len(self.parts)}')
    if time % self.num_segments:
      raise ValueError(f'time {time} is not a multiple of num_segments {self.num_segments}')
    return batch, time, time // self.num_segments

  def _flat_cond(self, cond):
    return None if cond is None else cond.reshape(-1, cond.shape[-1])

  def teacher_forced(self, tokens: jax.Array, z: jax.Array | None) -> tuple[jax.Array, ...]:
    """tokens int [batch, time, parts], z [batch, z_size] or None ->
    logits tuple, float32 [batch, time, vocab_p] per part. All segments run as one batch."""
    tokens = tokens.astype(jnp.int32)
    batch, time, length = self._segments(tokens)
    cond = self._flat_cond(self.conditioning(z, batch))
    prev = shift_right(tokens)
    out = []
    for p, part in enumerate(self.parts):
      logits = part.teacher_forced(prev[..., p].reshape(-1, length), cond)
      out.append(logits.reshape(batch, time, -1))
    return tuple(out)

  def scheduled_sampling(self, tokens: jax.Array, z: jax.Array | None,
                         p_sample: Any) -> tuple[jax.Array, ...]:
    """Like `teacher_forced`, but within each segment every step's input is, with probability
    `p_sample` (per example and step), a token sampled at temperature 1 from the previous
    step's output instead of the target. Needs rng 'sample'."""
    tokens = tokens.astype(jnp.int32)
    batch, time, length = self._segments(tokens)
    cond = self.conditioning(z, batch)
    cond = None if cond is None else cond.reshape(-1, 1, cond.shape[-1])
    prev = shift_right(tokens)
    rng = self.make_rng('sample')
    out = []
    for p, part in enumerate(self.parts):
      _, logits = part.free_running(
          cond, prev[:, ::length, p].reshape(-1), num_segments=1, length=length,
          rng=jax.random.fold_in(rng, p), targets=tokens[..., p].reshape(-1, length),
          p_sample=p_sample, temperature=1.0)
      out.append(logits.reshape(batch, time, -1))
    return tuple(out)

  def decode(self, z: jax.Array | None, *, batch_size: int, time: int, temperature: Any = 0.5,
             greedy: bool = False, targets: jax.Array | None = None, p_sample: Any = 1.0,
             with_logits: bool = True,
             shared_noise: bool = False) -> tuple[jax.Array, tuple[jax.Array, ...] | None]:
    """Free-running decoding, segment after segment (see `PartDecoder.free_running`).

    Args:
      z: float [batch, z_size], or None (baseline).
      batch_size, time: output size; time must be a multiple of num_segments.
      temperature: softmax temperature of the samples.
      greedy: argmax instead of sampling.
      targets: optional int [batch, time, parts] mixed into the fed-back tokens: per example
        and step the target is fed with probability 1 - p_sample.
      p_sample: see `targets`; irrelevant without targets.
      with_logits: False: return None for the logits (generation; less to store).
      shared_noise: every row is decoded with the sampling noise of a batch of one (the
        points of an interpolation differ only through z).
    Returns:
      (tokens int32 [batch, time, parts], logits tuple float32 [batch, time, vocab_p] or None).
      Needs rng 'sample' unless greedy without targets.
    """
    if time % self.num_segments:
      raise ValueError(f'time {time} is not a multiple of num_segments {self.num_segments}')
    length = time // self.num_segments
    cond = self.conditioning(z, batch_size)
    if greedy and targets is None:
      rng = jax.random.PRNGKey(0)  # unused: nothing random happens
    else:
      rng = self.make_rng('sample')
    first = jnp.full((batch_size,), NO_TOKEN, jnp.int32)
    tokens, logits = [], []
    for p, part in enumerate(self.parts):
      tok, lg = part.free_running(
          cond, first, num_segments=self.num_segments, length=length,
          rng=jax.random.fold_in(rng, p),
          targets=None if targets is None else targets[..., p].reshape(batch_size, time),
          p_sample=p_sample, temperature=temperature, greedy=greedy, with_logits=with_logits,
          shared_noise=shared_noise)
      tokens.append(tok.reshape(batch_size, time))
      if with_logits:
        logits.append(lg.reshape(batch_size, time, -1))
    return jnp.stack(tokens, axis=-1), tuple(logits) if with_logits else None


class FlatDecoder(_SegmentedDecoder):
  """2-bar decoder: one stacked LSTM per part conditioned on z (one segment = the sequence).

  Attributes:
    part_vocab: classes per part.
    part_names: parameter names of the part decoders.
    sizes: LSTM layer sizes.
    z_size: latent size; 0 = the baseline (zero initial state, input = previous token only).
  """
  part_vocab: Sequence[int]
  part_names: Sequence[str]
  sizes: Sequence[int] = (2048, 2048, 2048)
  z_size: int = 256
  dtype: Any = jnp.float32
  unroll: int = 1
  forget_bias: float = 0.0

  num_segments = 1

  def setup(self):
    self.parts = [PartDecoder(vocab=vocab, sizes=self.sizes, cond_size=self.z_size,
                              dtype=self.dtype, unroll=self.unroll,
                              forget_bias=self.forget_bias, name=name)
                  for vocab, name in zip(self.part_vocab, self.part_names)]

  def conditioning(self, z, batch_size):
    """z [batch, z_size] -> [batch, 1, z_size] (None for the baseline)."""
    del batch_size
    return None if not self.z_size else z[:, None, :]


class HierarchicalDecoder(_SegmentedDecoder):
  """Conductor + one bottom decoder per part, all fed the same segment embeddings c_i.

  Attributes:
    part_vocab, part_names: as FlatDecoder.
    sizes: bottom decoder layer sizes.
    conductor_sizes: conductor layer sizes.
    num_segments: conductor steps; time must be a multiple.
    embedding_size: Dense size of c_i, or None for the conductor's raw top h.
    z_size: latent size; 0 = baseline (the conductor starts from the zero state).
  """
  part_vocab: Sequence[int]
  part_names: Sequence[str]
  sizes: Sequence[int] = (1024, 1024)
  conductor_sizes: Sequence[int] = (1024, 1024)
  num_segments: int = 16
  embedding_size: int | None = 512
  z_size: int = 512
  dtype: Any = jnp.float32
  unroll: int = 1
  forget_bias: float = 0.0

  def setup(self):
    self.conductor = Conductor(sizes=self.conductor_sizes, z_size=self.z_size,
                               num_segments=self.num_segments,
                               embedding_size=self.embedding_size, dtype=self.dtype,
                               unroll=self.unroll, forget_bias=self.forget_bias,
                               name='conductor')
    cond_size = self.embedding_size or self.conductor_sizes[-1]
    self.parts = [PartDecoder(vocab=vocab, sizes=self.sizes, cond_size=cond_size,
                              dtype=self.dtype, unroll=self.unroll,
                              forget_bias=self.forget_bias, name=name)
                  for vocab, name in zip(self.part_vocab, self.part_names)]

  def conditioning(self, z, batch_size):
    """z [batch, z_size] or None -> c float32 [batch, num_segments, embedding]."""
    return self.conductor(z, batch_size)
