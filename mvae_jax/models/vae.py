"""MusicVAE: BiLSTM encoder (flat or hierarchical) -> z -> flat or hierarchical decoder
(Roberts et al., 2018).

`use_encoder=False` gives Table 1's baseline: the same decoder with no encoder and no z.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from data_pipelines.kinds import part_names as default_part_names
from mvae_jax.models import decoders
from mvae_jax.models import encoder as encoder_lib


class MusicVAE(nn.Module):
  """The model; `config.model` holds exactly these keyword arguments.

  Attributes:
    part_vocab: output classes per part: (130,), (512,), (130, 130, 512).
    part_is_drums: drums parts (encoder input is the 10-value roll).
    z_size: latent size.
    enc_sizes: stacked BiLSTM layer sizes (per direction); for 'hier', those of each level.
    encoder: 'flat' (one BiLSTM over the window, the paper's) | 'hier' (a BiLSTM per segment,
      then one over the segment summaries: the reference's `HierarchicalLstmEncoder`, which
      magenta.js's hierarchical checkpoints have).
    enc_segments: 'hier' encoder only: its level-0 segments; None = `num_segments` (what
      magenta.js does).
    decoder: 'flat' | 'hier'.
    dec_sizes: flat decoder, or each bottom decoder.
    conductor_sizes: hier only.
    num_segments: hier only; time must be a multiple.
    embedding_size: hier: Dense size of the conductor output (paper 512); None = raw top h.
    use_encoder: False = baseline (no encoder, no z).
    sigma_param: 'softplus' | 'exp2'.
    dtype: matmul dtype name ('float32', 'bfloat16'); state, logits and loss stay float32.
    unroll: scan unroll.
    forget_bias: added to every LSTM's forget gate at run time, as TensorFlow's
      `LSTMBlockCell(forget_bias=1.0)` in the reference (Magenta) does; the `bias` parameters
      then start at 0. 0.0 (our default): no run-time add, the parameters start at +1.0 on the
      forget gate instead. Same function at init; only the meaning of the stored bias differs.
    drum_input: encoder input of drums parts: 'roll' (the 10-value roll, the reference's 2-bar
      drums) or 'one_hot' (512-class one-hot, the reference's trio encoder). Unlike
      `part_is_drums`, it changes nothing else (transposition, parameter names).

  Parameter tree: `encoder/{fwd_k, bwd_k, mu, sigma}` (hier: `encoder/{level_0, level_1}/{fwd_k,
  bwd_k}`, `encoder/{mu, sigma}`); `decoder/<part>/{lstm_k, initial_state,
  logits}` with <part> from `default_part_names`; hier adds `decoder/conductor/{initial_state,
  rnn/lstm_k, embedding}`.
  """
  part_vocab: Sequence[int]
  part_is_drums: Sequence[bool]
  z_size: int = 256
  enc_sizes: Sequence[int] = (2048,)
  decoder: str = 'flat'
  dec_sizes: Sequence[int] = (2048, 2048, 2048)
  conductor_sizes: Sequence[int] = (1024, 1024)
  num_segments: int = 16
  embedding_size: int | None = 512
  use_encoder: bool = True
  sigma_param: str = 'softplus'
  dtype: str = 'float32'
  unroll: int = 1
  forget_bias: float = 0.0
  drum_input: str = 'roll'
  encoder: str = 'flat'
  enc_segments: int | None = None

  def setup(self):
    if len(self.part_vocab) != len(self.part_is_drums):
      raise ValueError('part_vocab and part_is_drums must have the same length')
    dtype = jnp.dtype(self.dtype)
    z_size = self.z_size if self.use_encoder else 0
    names = default_part_names(self.part_is_drums)
    if self.use_encoder:
      enc = dict(part_vocab=tuple(self.part_vocab), part_is_drums=tuple(self.part_is_drums),
                 sizes=tuple(self.enc_sizes), z_size=self.z_size, sigma_param=self.sigma_param,
                 dtype=dtype, unroll=self.unroll, drum_input=self.drum_input,
                 forget_bias=self.forget_bias, name='encoder')
      if self.encoder == 'flat':
        self.enc = encoder_lib.BidirectionalLSTMEncoder(**enc)
      elif self.encoder == 'hier':
        self.enc = encoder_lib.HierarchicalLSTMEncoder(
            num_segments=self.enc_segments or self.num_segments, **enc)
      else:
        raise ValueError(f"encoder must be 'flat' or 'hier', got {self.encoder!r}")
    shared = dict(part_vocab=tuple(self.part_vocab), part_names=names,
                  sizes=tuple(self.dec_sizes), z_size=z_size, dtype=dtype, unroll=self.unroll,
                  forget_bias=self.forget_bias, name='decoder')
    if self.decoder == 'flat':
      self.dec = decoders.FlatDecoder(**shared)
    elif self.decoder == 'hier':
      self.dec = decoders.HierarchicalDecoder(
          conductor_sizes=tuple(self.conductor_sizes), num_segments=self.num_segments,
          embedding_size=self.embedding_size, **shared)
    else:
      raise ValueError(f"decoder must be 'flat' or 'hier', got {self.decoder!r}")

  def encode(self, tokens: jax.Array,
             lengths: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """tokens int [batch, time, parts], lengths int [batch] or None (full) ->
    (mu, sigma), float32 [batch, z_size] each."""
    if not self.use_encoder:
      raise ValueError('the baseline (use_encoder=False) has no encoder')
    return self.enc(tokens, lengths)

  def __call__(self, tokens: jax.Array, lengths: jax.Array | None = None, *,
               p_sample: Any = 0.0) -> tuple[tuple[jax.Array, ...], dict[str, jax.Array]]:
    """Training forward pass.

    Args:
      tokens: int [batch, time, parts].
      lengths: int [batch] or None (= full); only the encoder reads it (the loss masks).
      p_sample: scheduled-sampling probability, python float or traced scalar. The python
        value 0 (or 0.0) takes the teacher-forced fast path; anything else the step-by-step
        path (rng 'sample').
    Returns:
      (logits tuple, float32 [batch, time, vocab_p] per part,
       aux {'mu', 'sigma', 'z'} float32 [batch, z_size], empty for the baseline).
      Needs rng 'z' (reparameterisation noise) unless baseline.
    """
    aux = {}
    z = None
    if self.use_encoder:
      mu, sigma = self.encode(tokens, lengths)
      z = mu + sigma * jax.random.normal(self.make_rng('z'), mu.shape, mu.dtype)
      aux = {'mu': mu, 'sigma': sigma, 'z': z}
    return self.decode_teacher_forced(tokens, z, p_sample=p_sample), aux

  def decode_teacher_forced(self, tokens: jax.Array, z: jax.Array | None, *,
                            p_sample: Any = 0.0) -> tuple[jax.Array, ...]:
    """Next-step logits for a given z (None for the baseline).

    tokens int [batch, time, parts] -> tuple of float32 [batch, time, vocab_p]. `p_sample` as
    in `__call__` (non-zero: scheduled sampling, rng 'sample')."""
    if isinstance(p_sample, (int, float)) and p_sample == 0:
      return self.dec.teacher_forced(tokens, z)
    return self.dec.scheduled_sampling(tokens, z, p_sample)

  def decode(self, z: jax.Array | None, *, batch_size: int, time: int, temperature: Any = 0.5,
             greedy: bool = False, targets: jax.Array | None = None,
             p_sample: Any = 1.0) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    """Free-running generation (rng 'sample', unless greedy without targets).

    Args:
      z: float [batch, z_size], or None (baseline).
      batch_size, time: output size (time a multiple of num_segments for 'hier').
      temperature: softmax temperature of the samples (paper: 0.5).
      greedy: argmax instead of sampling.
      targets: optional int [batch, time, parts]; with it each fed-back token is the target with
        probability 1 - p_sample (per example and step), else the model's own.
      p_sample: see `targets`.
    Returns:
      (tokens int32 [batch, time, parts], the model's own outputs;
       logits tuple, float32 [batch, time, vocab_p] per part).
    """
    if z is not None and not self.use_encoder:
      raise ValueError('the baseline takes z=None')
    if z is None and self.use_encoder:
      raise ValueError('decode needs z (e.g. jax.random.normal(rng, (batch, z_size)))')
    return self.dec.decode(z, batch_size=batch_size, time=time, temperature=temperature,
                           greedy=greedy, targets=targets, p_sample=p_sample)
