"""LSTM layers whose input projection is hoisted out of the recurrence.

An `LSTMLayer` only owns parameters; the recurrence itself is a pure function (`run_layer`,
`lstm_cell`) over arrays fetched from the layer before the scan, so the same weights serve the
layer-by-layer teacher-forced path (one big input matmul per layer, then a scan that only does
`h @ recurrent_kernel`) and the step-by-step sampling path (all layers inside one scan).

Gates are fused: one `[in, 4 * features]` input kernel and one `[features, 4 * features]`
recurrent kernel, gate order (input, cell candidate, forget, output) along the last axis, the
same order as TensorFlow's LSTMCell (i, j, f, o). The forget-gate bias starts at +1.0, or, with
`forget_bias` set (TensorFlow's `LSTMBlockCell(forget_bias=1.0)`, which Magenta uses), the
parameter starts at 0 and `forget_bias` is added to the forget gate at run time: the same
function at init, and the parameter then equals the reference's `bias` variable.
Matmuls run in `dtype` (e.g. bfloat16) with float32 accumulation; cell and hidden states are
always float32. `run_layer` has a hand-written backward pass (the recurrent kernel's gradient
as one product after the backward scan); `run_layer_reference` is the plain autodiff version.
"""

import dataclasses
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mvae_jax import machine

# A layer's state: (c, h), each float32 [batch, features].
Carry = tuple[jax.Array, jax.Array]

NUM_GATES = 4
FORGET_GATE = 2  # index of the forget gate in the fused (i, g, f, o) layout


def matmul(x: jax.Array, w: jax.Array, dtype: Any) -> jax.Array:
  """`x @ w` with operands cast to `dtype` and the result accumulated in float32."""
  return jnp.dot(x.astype(dtype), w.astype(dtype), preferred_element_type=jnp.float32)


# Products of a few rows with a large kernel (the recurrences at small batch: a user's one
# sample) are bound by reading the kernel from memory, and how fast XLA:CPU's products read it
# depends on how it is stored and on the CPU (16 steps of [rows, 2048] x [2048, 8192], float32,
# inside a scan; docs/PERFORMANCE.md):
# - one row: a kernel stored [out, in] (contracting the last axes) as fast or faster everywhere
#   measured (AMD Zen 4 with AVX-512: 20-29 against 28-29 ms).
# - 2 to 32 rows: on an AMD EPYC with AVX2 only, [out, in] took half the CPU time of [in, out]
#   (rows 4: 0.12 against 0.24 s); on the Zen 4 with AVX-512, [out, in] was slower at every
#   such size (rows 2: 85-90 against 51-62 ms; rows 32: 163-165 against 138 ms), where it made
#   encoding two 16-bar melodies take three times as long as one. So [out, in] is used for 2-32
#   rows only on CPUs without AVX-512 (Intel's with AVX-512 were not measured).
# Small kernels (in cache) and large batches (bound by arithmetic) keep [in, out].
TRANSPOSE_MIN_BYTES = 16 * 2**20
TRANSPOSE_MAX_ROWS = 32
# Two rows on a CPU with AVX-512 (interpolation's two ends): neither layout came near one row's
# rate (4.2-5.5 ms against 1.9 ms per [2048, 8192] product on the Zen 4: XLA's small-row
# products read the kernel at 15-20 GB/s, its one-row product at 35-40); the same product
# over the kernel's column blocks in a loop, each block [in, out / BLOCKS] stored contiguously,
# took 2.9-4.0 ms, and encoding two 16-bar melodies 3.6-4.6 s against 4.8-5.1 s. Kernels of
# 16 MB (the 16-bar decoders', which the L3 cache holds) sampled 5% slower so: from 32 MB on.
BLOCKS = 16
BLOCKED_MIN_BYTES = 32 * 2**20


@functools.lru_cache(maxsize=None)
def _this_cpus_flags() -> tuple[str, ...]:
  return tuple(machine.cpu_info()['isa_flags'])


def _has_avx512(isa_flags: Sequence[str] | None) -> bool:
  return 'avx512f' in (_this_cpus_flags() if isa_flags is None else isa_flags)


def transposed_reads_faster(rows: int, kernel_bytes: int,
                            isa_flags: Sequence[str] | None = None) -> bool:
  """Whether products of `rows` rows read a kernel of `kernel_bytes` faster stored [out, in],
  on a CPU with `isa_flags` (default: this one's, `machine.cpu_info`)."""
  if kernel_bytes < TRANSPOSE_MIN_BYTES or rows > TRANSPOSE_MAX_ROWS:
    return False
  return rows == 1 or not _has_avx512(isa_flags)


def blocked_reads_faster(rows: int, kernel_bytes: int,
                         isa_flags: Sequence[str] | None = None) -> bool:
  """Whether products of `rows` rows read a kernel of `kernel_bytes` faster block by block
  (`BLOCKS` column blocks in a loop) than whole, on a CPU with `isa_flags`."""
  return rows == 2 and kernel_bytes >= BLOCKED_MIN_BYTES and _has_avx512(isa_flags)


@dataclasses.dataclass(frozen=True)
class StepKernel:
  """A kernel [in, out] prepared once for many products `x @ kernel` (a scan's steps).

  Attributes:
    w: the kernel cast to `dtype`, stored [in, out], or [out, in] when `transposed`, or as
      column blocks [blocks, in, out / blocks] when `blocked`.
    transposed: see `step_kernel`.
    dtype: matmul dtype.
    blocked: the product runs block by block in a loop (`blocked_reads_faster`).
  """
  w: jax.Array
  transposed: bool
  dtype: Any
  blocked: bool = False

  def __call__(self, x: jax.Array) -> jax.Array:
    """x [..., in] -> float32 [..., out], accumulated in float32."""
    if self.blocked:
      blocks, width = self.w.shape[0], self.w.shape[2]
      def block(k, out):
        return jax.lax.dynamic_update_index_in_dim(out, matmul(x, self.w[k], self.dtype), k, 0)
      out = jax.lax.fori_loop(0, blocks, block,
                              jnp.zeros((blocks,) + x.shape[:-1] + (width,), jnp.float32))
      return jnp.moveaxis(out, 0, -2).reshape(x.shape[:-1] + (blocks * width,))
    if not self.transposed:
      return matmul(x, self.w, self.dtype)
    return jax.lax.dot_general(x.astype(self.dtype), self.w, (((x.ndim - 1,), (1,)), ((), ())),
                               preferred_element_type=jnp.float32)


def step_kernel(kernel: jax.Array, rows: int, dtype: Any) -> StepKernel:
  """`kernel` [in, out] for products with `rows` rows at a time, stored as column blocks or
  transposed (a copy made once, outside the loop) where that reads it faster
  (`blocked_reads_faster`, `transposed_reads_faster`)."""
  w = kernel.astype(dtype)
  size = w.size * w.dtype.itemsize
  if blocked_reads_faster(rows, size) and w.shape[1] % BLOCKS == 0:
    blocks = w.reshape(w.shape[0], BLOCKS, -1).transpose(1, 0, 2)  # [BLOCKS, in, out / BLOCKS]
    return StepKernel(blocks, False, jnp.dtype(dtype), blocked=True)
  if transposed_reads_faster(rows, size):
    return StepKernel(w.T, True, jnp.dtype(dtype))
  return StepKernel(w, False, jnp.dtype(dtype))


def forget_bias_init(key, shape, dtype=jnp.float32):
  """Zero bias except +1.0 on the forget gate, so early training does not forget by default."""
  del key
  features = shape[-1] // NUM_GATES
  bias = jnp.zeros(shape, dtype)
  return bias.at[..., FORGET_GATE * features:(FORGET_GATE + 1) * features].set(1.0)


def gather_rows(table: jax.Array, tokens: jax.Array) -> jax.Array:
  """`one_hot(tokens) @ table` as a gather; token -1 gives a zero row.

  Args:
    table: [num_classes, width], typically an input-kernel block cast to the matmul dtype.
    tokens: int [...] in [-1, num_classes).
  Returns:
    float32 [..., width].
  """
  # Token -1 reads an appended zero row instead of being masked afterwards: the gradient is then
  # a plain scatter-add of the cotangent, without a masking pass over [..., width] (at batch 512
  # that pass cost 2 x 21 ms of a 2.2 s melody2:magenta step; benchmarks/RESULTS.md 1e).
  n = table.shape[0]
  padded = jnp.concatenate([table, jnp.zeros((1, table.shape[1]), table.dtype)], axis=0)
  index = jnp.where(tokens >= 0, jnp.minimum(tokens, n - 1), n)
  return jnp.take(padded, index, axis=0).astype(jnp.float32)


def split_gates(gates: jax.Array) -> tuple[jax.Array, ...]:
  """[..., 4H] -> the four gate blocks (i, g, f, o), each [..., H]."""
  return tuple(jnp.split(gates, NUM_GATES, axis=-1))


def lstm_cell(carry: Carry, gates_x: jax.Array | Sequence[jax.Array],
              recurrent_kernel: jax.Array | StepKernel, dtype: Any) -> Carry:
  """One LSTM step.

  Args:
    carry: (c, h), float32 [batch, features].
    gates_x: the input's contribution `x @ W_in + bias`: float32 [batch, 4 * features], or its
      four gate blocks (`split_gates`), each [batch, features]. Inside a scan over precomputed
      gates, pass the blocks, split before the scan (`run_layer_reference` does): XLA:CPU's
      fusions that slice the gates of a step out of the scanned [batch, 4H] array ran the gate
      arithmetic 3-4x slower than over whole arrays (the encoder at batch 64: 18% of its time;
      docs/PERFORMANCE.md, "generation, gate by gate"); the values are the same.
    recurrent_kernel: [features, 4 * features] (already cast to `dtype` ideally), or a
      `StepKernel` of it.
    dtype: matmul dtype.
  Returns:
    The new (c, h), float32.
  """
  c, h = carry
  rec = (recurrent_kernel(h) if isinstance(recurrent_kernel, StepKernel)
         else matmul(h, recurrent_kernel, dtype))
  if isinstance(gates_x, (tuple, list)):
    i, g, f, o = (x + r for x, r in zip(gates_x, split_gates(rec)))
  else:
    i, g, f, o = split_gates(gates_x + rec)
  c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  h = jax.nn.sigmoid(o) * jnp.tanh(c)
  return c, h


@dataclasses.dataclass(frozen=True)
class TokenGates:
  """A layer's input gates for token inputs, as tables to gather from inside the loop.

  Each part's input is a function of its token (a one-hot, or a drum roll: the 512 drum classes'
  bits), so its gate contribution `x @ W_in` takes one of num_classes + 1 values: a table.
  Step t's gates are the sum over parts of `tables[p][row]` for each batch entry's token (the
  bias is in part 0's table), added in part order. `run_layer` gathers the rows step by step
  from the small tables instead of reading a [time, batch, 4H] array made before the loop (and
  split into its gate blocks there): at batch 512 that array and its split copies are
  2 x 64 MB per layer, written and read again (benchmarks/RESULTS.md 1g).

  Attributes:
    tables: per part, float32 [num_classes + 1, 4H]: the gates of every class, then those of
      token -1 ("no token").
    tokens: int [time, batch, parts], part p in [-1, num_classes_p); -1 reads the last row.
  """
  tables: tuple[jax.Array, ...]
  tokens: jax.Array

  def index(self) -> jax.Array:
    """int [time, batch, parts]: the table row of every step, batch entry and part."""
    return jnp.stack([_row_index(self.tokens[..., p], t.shape[0] - 1)
                      for p, t in enumerate(self.tables)], axis=-1)

  def dense(self) -> jax.Array:
    """float32 [time, batch, 4H], the gates as one array (what the rows stand for)."""
    index = self.index()
    return functools.reduce(jnp.add, [jnp.take(t, index[..., p], axis=0)
                                      for p, t in enumerate(self.tables)])


def _row_index(tokens: jax.Array, num_classes: int) -> jax.Array:
  return jnp.where(tokens >= 0, jnp.minimum(tokens, num_classes - 1), num_classes)


def _split_inputs(gates_x: jax.Array | TokenGates):
  """(what the scan steps over, step input -> its four gate blocks)."""
  if isinstance(gates_x, TokenGates):
    # [num_classes + 1, H] per part and gate, split once.
    blocks = [split_gates(t) for t in gates_x.tables]

    def gates_of(rows):  # int [batch, parts]
      return tuple(functools.reduce(jnp.add, [
          jnp.take(b[k], rows[:, p], axis=0, mode='clip') for p, b in enumerate(blocks)])
                   for k in range(NUM_GATES))
    return gates_x.index(), gates_of
  # The gates split before the loop (see `lstm_cell`).
  return split_gates(gates_x), lambda gx: gx


def run_layer(gates_x: jax.Array | TokenGates, carry: Carry, recurrent_kernel: jax.Array,
              dtype: Any, unroll: int = 1, reverse: bool = False,
              step_gates: jax.Array | None = None) -> tuple[Carry, jax.Array]:
  """Runs one layer over precomputed input gates.

  Same values as `run_layer_reference` (plain `lax.scan` over `lstm_cell`), with a hand-written
  backward pass (`_recurrence`): the backward scan only does `dgates @ W_h^T` per step and the
  recurrent kernel's gradient is one [H, time * batch] x [time * batch, 4H] product after it,
  instead of time small accumulated products (docs/PERFORMANCE.md).

  Args:
    gates_x: float32 [time, batch, 4 * features] (time-major), `x @ W_in + bias` for every step,
      or a `TokenGates` (token inputs: the rows are gathered inside the loop, and each table's
      gradient is one scatter-add of the gates' gradient after the backward loop).
    carry: initial (c, h), float32 [batch, features].
    recurrent_kernel: [features, 4 * features].
    dtype: matmul dtype.
    unroll: `lax.scan` unroll factor.
    reverse: run from the last step to the first (outputs stay in input order).
    step_gates: float32 [batch, 4 * features] (or [4 * features]) added to every step's gates,
      or None: the part of the input that is the same at every step (a conditioning vector's
      projection, the bias).
      Passed apart, its gradient is summed inside the backward loop; added to `gates_x` instead,
      XLA:CPU sums the [time, batch, 4H] gradient after the loop as a product with a vector of
      ones (105 ms of a 590 ms teacher-forced decoder backward at batch 512,
      benchmarks/RESULTS.md 1e).
  Returns:
    (final carry, hs float32 [time, batch, features]).
  """
  c0, h0 = carry
  if step_gates is not None:
    step_gates = jnp.broadcast_to(step_gates.astype(jnp.float32), (c0.shape[0], 4 * c0.shape[1]))
  if isinstance(gates_x, TokenGates):
    return _token_recurrence(tuple(gates_x.tables), gates_x.index(), step_gates, c0, h0,
                             recurrent_kernel, jnp.dtype(dtype), unroll, reverse)
  return _recurrence(gates_x, step_gates, c0, h0, recurrent_kernel, jnp.dtype(dtype), unroll,
                     reverse)


def run_layer_reference(gates_x: jax.Array | TokenGates, carry: Carry,
                        recurrent_kernel: jax.Array, dtype: Any, unroll: int = 1,
                        reverse: bool = False,
                        step_gates: jax.Array | None = None) -> tuple[Carry, jax.Array]:
  """The straightforward `run_layer` (autodiff through `lax.scan`); tests compare the two.
  It is also `run_layer`'s value where nothing is differentiated (encoding)."""
  xs, gates_of = _split_inputs(gates_x)
  w = step_kernel(recurrent_kernel, carry[1].shape[0], dtype)
  blocks = split_gates(step_gates) if step_gates is not None else None

  def step(carry, x):
    gx = gates_of(x)
    if blocks is not None:
      gx = tuple(g + s for g, s in zip(gx, blocks))
    carry = lstm_cell(carry, gx, w, dtype)
    return carry, carry[1]

  return jax.lax.scan(step, carry, xs, unroll=unroll, reverse=reverse)


def _forward_scan(gates_x, step_gates, c0, h0, recurrent_kernel, dtype, unroll, reverse):
  """The recurrence, also returning what the backward pass needs: every step's c, the gate
  activations (sigmoid i, tanh g, sigmoid f, sigmoid o), float32 [time, batch, 4H], and every
  step's h transposed and cast to `dtype` (the kernel gradient's operand), [time, H, batch]: the
  kernel gradient contracts h over (time, batch), and XLA:CPU transposes [time, batch, H] for it
  in one slow copy after the loop (68 ms of a 2.2 s melody2:magenta step at batch 512), where
  writing each step's h transposed inside the loop costs little (benchmarks/RESULTS.md 1e)."""
  xs, gates_of = _split_inputs(gates_x)
  w = recurrent_kernel.astype(dtype)
  blocks = split_gates(step_gates) if step_gates is not None else None

  def step(carry, x):
    c, h = carry
    gx = gates_of(x)
    if blocks is not None:  # added in the order `run_layer_reference` adds them: same values
      gx = [g + s for g, s in zip(gx, blocks)]
    i, g, f, o = [a + r for a, r in zip(gx, split_gates(matmul(h, w, dtype)))]
    i, g, f, o = jax.nn.sigmoid(i), jnp.tanh(g), jax.nn.sigmoid(f), jax.nn.sigmoid(o)
    c = f * c + i * g
    h = o * jnp.tanh(c)
    return (c, h), (h, c, jnp.concatenate([i, g, f, o], axis=-1), h.T.astype(dtype))

  return jax.lax.scan(step, (c0, h0), xs, unroll=unroll, reverse=reverse)


def _previous(xs: jax.Array, x0: jax.Array, reverse: bool) -> jax.Array:
  """The value each step started from: x0 for the first step in scan order, else the
  neighbouring step's output."""
  if reverse:
    return jnp.concatenate([xs[1:], x0[None]], axis=0)
  return jnp.concatenate([x0[None], xs[:-1]], axis=0)


def _backward_scan(dtype, unroll, reverse, residuals, cotangents):
  """The backward pass of `_forward_scan`: (dgates float32 [time, batch, 4H], d step_gates or
  None, dc0, dh0, d recurrent_kernel)."""
  step_gates, c0, h0, recurrent_kernel, hs_t, cs, acts = residuals
  has_step_gates = step_gates is not None
  (dc_last, dh_last), dhs = cotangents
  w_t = recurrent_kernel.astype(dtype).T

  def step(carry, xs):
    dc, dh_rec, d_step = carry  # gradients w.r.t. this step's c and h from later steps
    dh_out, c, c_prev, a = xs
    i, g, f, o = jnp.split(a, NUM_GATES, axis=-1)
    dh = dh_out + dh_rec
    tanh_c = jnp.tanh(c)
    dc = dc + dh * o * (1.0 - tanh_c * tanh_c)
    dgates = jnp.concatenate([dc * g * i * (1.0 - i), dc * i * (1.0 - g * g),
                              dc * c_prev * f * (1.0 - f), dh * tanh_c * o * (1.0 - o)], axis=-1)
    if has_step_gates:
      d_step = d_step + dgates
    return (dc * f, matmul(dgates, w_t, dtype), d_step), dgates

  d_step0 = jnp.zeros_like(step_gates) if has_step_gates else None
  (dc0, dh0, d_step), dgates = jax.lax.scan(
      step, (dc_last, dh_last, d_step0), (dhs, cs, _previous(cs, c0, reverse), acts),
      unroll=unroll, reverse=not reverse)
  # sum_t h_{t-1}^T dgates_t as one product over (time, batch), h_{t-1} stored [time, H, batch].
  dw = jax.lax.dot_general(_previous(hs_t, h0.T.astype(dtype), reverse), dgates.astype(dtype),
                           (((0, 2), (0, 1)), ((), ())), preferred_element_type=jnp.float32)
  return dgates, d_step, dc0, dh0, dw.astype(recurrent_kernel.dtype)


def _residuals(step_gates, c0, h0, recurrent_kernel, forward):
  (c, h), (hs, cs, acts, hs_t) = forward
  return ((c, h), hs), (step_gates, c0, h0, recurrent_kernel, hs_t, cs, acts)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _recurrence(gates_x, step_gates, c0, h0, recurrent_kernel, dtype, unroll, reverse):
  # Without differentiation nothing needs the residuals.
  return run_layer_reference(gates_x, (c0, h0), recurrent_kernel, dtype, unroll, reverse,
                             step_gates)


def _recurrence_fwd(gates_x, step_gates, c0, h0, recurrent_kernel, dtype, unroll, reverse):
  return _residuals(step_gates, c0, h0, recurrent_kernel, _forward_scan(
      gates_x, step_gates, c0, h0, recurrent_kernel, dtype, unroll, reverse))


_recurrence.defvjp(_recurrence_fwd, _backward_scan)


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8))
def _token_recurrence(tables, index, step_gates, c0, h0, recurrent_kernel, dtype, unroll,
                      reverse):
  """`_recurrence` over `TokenGates(tables, ...)` rows (`index` [time, batch, parts])."""
  return run_layer_reference(_Rows(tables, index), (c0, h0), recurrent_kernel, dtype, unroll,
                             reverse, step_gates)


class _Rows(TokenGates):
  """A `TokenGates` whose rows are already indices into the table."""

  def index(self) -> jax.Array:
    return self.tokens


def _token_recurrence_fwd(tables, index, step_gates, c0, h0, recurrent_kernel, dtype, unroll,
                          reverse):
  out, residuals = _residuals(step_gates, c0, h0, recurrent_kernel, _forward_scan(
      _Rows(tables, index), step_gates, c0, h0, recurrent_kernel, dtype, unroll, reverse))
  return out, (index, tables, residuals)


def _token_recurrence_bwd(dtype, unroll, reverse, residuals, cotangents):
  index, tables, residuals = residuals
  dgates, d_step, dc0, dh0, dw = _backward_scan(dtype, unroll, reverse, residuals, cotangents)
  # Each table's gradient: every step's gate gradient added to its row, in float32.
  dgates = dgates.reshape(-1, dgates.shape[-1])
  d_tables = tuple(jnp.zeros_like(t).at[index[..., p].reshape(-1)].add(dgates)
                   for p, t in enumerate(tables))
  return d_tables, None, d_step, dc0, dh0, dw


_token_recurrence.defvjp(_token_recurrence_fwd, _token_recurrence_bwd)


class Linear(nn.Module):
  """Dense layer whose parameters (`kernel` [in, out], `bias` [out]) are declared up front.

  Declaring the input size lets a parent read `kernel` / `bias` before any call, which the
  scan bodies need (they close over arrays, not modules). Output is float32.
  """
  features: int
  in_features: int
  dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()

  def setup(self):
    self.kernel = self.param('kernel', self.kernel_init, (self.in_features, self.features))
    self.bias = self.param('bias', nn.initializers.zeros, (self.features,))

  def __call__(self, x: jax.Array) -> jax.Array:
    """[..., in_features] -> float32 [..., features]."""
    return matmul(x, self.kernel, self.dtype) + self.bias


class LSTMLayer(nn.Module):
  """Parameters of one fused-gate LSTM layer plus helpers to project inputs.

  Attributes:
    features: hidden size H.
    input_size: input width; 0 means the layer has no input (only bias drives it) and no
      `input_kernel` (the conductor's first layer, whose input is a constant zero vector).
    dtype: matmul dtype.
    forget_bias: added to the forget gate at run time (0.0: none; the parameter itself then
      starts at +1.0 on the forget gate). `self.bias` is the effective bias.
  Parameters: `input_kernel` [input_size, 4H], `recurrent_kernel` [H, 4H], `bias` [4H].
  """
  features: int
  input_size: int = 0
  dtype: Any = jnp.float32
  forget_bias: float = 0.0

  def setup(self):
    gates = NUM_GATES * self.features
    # Glorot-uniform over the combined [input_size + H, 4H] kernel, as TensorFlow initialises
    # its fused LSTM kernel, so the split kernels start at the reference's scale.
    limit = (6.0 / (self.input_size + self.features + gates)) ** 0.5
    init = lambda key, shape, dtype=jnp.float32: jax.random.uniform(  # pylint: disable=g-long-lambda
        key, shape, dtype, -limit, limit)
    if self.input_size:
      self.input_kernel = self.param('input_kernel', init, (self.input_size, gates))
    self.recurrent_kernel = self.param('recurrent_kernel', init, (self.features, gates))
    if self.forget_bias:
      bias = self.param('bias', nn.initializers.zeros, (gates,))
      forget = slice(FORGET_GATE * self.features, (FORGET_GATE + 1) * self.features)
      self.bias = bias.at[forget].add(self.forget_bias)
    else:
      self.bias = self.param('bias', forget_bias_init, (gates,))

  def project(self, x: jax.Array, rows: slice | None = None, bias: bool = True) -> jax.Array:
    """Input contribution to the gates, `x @ input_kernel[rows] (+ bias)`.

    Args:
      x: [..., n] where n is the number of selected kernel rows.
      rows: rows of the input kernel that `x` multiplies (default: all).
      bias: add the bias.
    Returns:
      float32 [..., 4H].
    """
    kernel = self.input_kernel if rows is None else self.input_kernel[rows]
    out = matmul(x, kernel, self.dtype)
    return out + self.bias if bias else out

  def token_table(self, offset: int, num_classes: int,
                  class_inputs: jax.Array | None = None) -> jax.Array:
    """One `TokenGates` table, without bias: float32 [num_classes + 1, 4H], the gates
    `x @ input_kernel` of every class's input x for the input-kernel rows from `offset`, then
    those of token -1, in the matmul dtype's products.

    Args:
      offset: the first input-kernel row of this part.
      num_classes: the part's classes.
      class_inputs: float [num_classes + 1, width]: the input vector of every class, then of
        token -1 (a drum roll, say), or None: a one-hot of width num_classes and zeros for -1
        (the kernel rows rounded to the matmul dtype: what a one-hot product gives).
    """
    if class_inputs is None:
      rows = self.input_kernel[offset:offset + num_classes].astype(self.dtype)
      return jnp.concatenate([rows.astype(jnp.float32),
                              jnp.zeros((1, rows.shape[1]), jnp.float32)], axis=0)
    return matmul(class_inputs, self.input_kernel[offset:offset + class_inputs.shape[-1]],
                  self.dtype)

  def token_gates(self, tokens: jax.Array, offset: int, num_classes: int,
                  bias: bool = True) -> TokenGates:
    """The gates of one one-hot input for `run_layer` (`token_table`, plus the bias).

    Args:
      tokens: int [time, batch] in [-1, num_classes).
    """
    table = self.token_table(offset, num_classes)
    return TokenGates((table + self.bias if bias else table,), tokens[..., None])

  def zero_carry(self, batch_size: int) -> Carry:
    z = jnp.zeros((batch_size, self.features), jnp.float32)
    return z, z


class InitialState(nn.Module):
  """tanh(Dense(x)) split into an LSTM stack's initial (c, h) pairs.

  Attributes:
    sizes: hidden size of every layer.
    in_features: width of the conditioning vector.
  Kernel starts N(0, 0.001^2), so every run starts near the zero state.
  """
  sizes: Sequence[int]
  in_features: int
  dtype: Any = jnp.float32

  def setup(self):
    self.kernel = self.param('kernel', nn.initializers.normal(0.001),
                             (self.in_features, 2 * sum(self.sizes)))
    self.bias = self.param('bias', nn.initializers.zeros, (2 * sum(self.sizes),))

  def __call__(self, x: jax.Array) -> tuple[Carry, ...]:
    """x: [..., in_features] -> per layer (c, h), each float32 [..., size]."""
    flat = jnp.tanh(matmul(x, self.kernel, self.dtype) + self.bias)
    carries, start = [], 0
    for size in self.sizes:
      c = flat[..., start:start + size]
      h = flat[..., start + size:start + 2 * size]
      carries.append((c, h))
      start += 2 * size
    return tuple(carries)
