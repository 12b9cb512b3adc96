"""Model tests: shapes, parameter trees and counts, and the decoders' equivalences (CPU, tiny)."""

import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvae_jax.models import MusicVAE
from mvae_jax.models import encoder as encoder_lib



@pytest.fixture(autouse=True, scope='module')
def _fast_compile():
  """XLA's CPU optimisation passes dominate these tests' run time (tiny models, many distinct
  programs); turning them off makes compiles ~3x faster and changes no result we check."""
  previous = jax.config.read('jax_disable_most_optimizations')
  jax.config.update('jax_disable_most_optimizations', True)
  yield
  jax.config.update('jax_disable_most_optimizations', previous)


RNGS = {'params': jax.random.PRNGKey(0), 'z': jax.random.PRNGKey(1),
        'sample': jax.random.PRNGKey(2)}
TIME = 8

TINY = {
    'melody_flat': dict(part_vocab=(12,), part_is_drums=(False,), z_size=4, enc_sizes=(8,),
                        dec_sizes=(8, 8)),
    'drums_flat': dict(part_vocab=(512,), part_is_drums=(True,), z_size=4, enc_sizes=(8,),
                       dec_sizes=(8,)),
    'melody_hier': dict(part_vocab=(12,), part_is_drums=(False,), z_size=4, enc_sizes=(8, 6),
                        decoder='hier', dec_sizes=(8, 8), conductor_sizes=(8, 8), num_segments=4,
                        embedding_size=5),
    'trio_hier': dict(part_vocab=(12, 11, 512), part_is_drums=(False, False, True), z_size=4,
                      enc_sizes=(8,), decoder='hier', dec_sizes=(8,), conductor_sizes=(8,),
                      num_segments=2, embedding_size=None),
    # The hierarchical encoder: 4 segments of 2 steps, two layers per level (conductor: 2).
    'trio_hier_enc': dict(part_vocab=(12, 11, 512), part_is_drums=(False, False, True), z_size=4,
                          enc_sizes=(8, 6), encoder='hier', enc_segments=4, decoder='hier',
                          dec_sizes=(8,), conductor_sizes=(8,), num_segments=2,
                          embedding_size=None),
    'baseline_flat': dict(part_vocab=(12,), part_is_drums=(False,), use_encoder=False,
                          dec_sizes=(8, 8)),
    'baseline_hier': dict(part_vocab=(12,), part_is_drums=(False,), use_encoder=False,
                          decoder='hier', dec_sizes=(8,), conductor_sizes=(8,), num_segments=4,
                          embedding_size=5),
}


def random_tokens(kw, batch=3, time=TIME, seed=1):
  keys = jax.random.split(jax.random.PRNGKey(seed), len(kw['part_vocab']))
  return jnp.stack([jax.random.randint(k, (batch, time), 0, v)
                    for k, v in zip(keys, kw['part_vocab'])], axis=-1)


# Everything below runs jitted: eager `apply` re-traces and re-compiles every scan body on each
# call, which is far slower on CPU than one compile per (model, method, static arguments).
@functools.lru_cache(maxsize=None)
def built(name):
  """(model, variables, tokens). The parameters are numpy-random with the shapes `init` gives
  (compiling every `init` would cost more than the rest); `test_init` checks the real one."""
  kw = TINY[name]
  model = MusicVAE(**kw)
  tokens = random_tokens(kw)
  shapes = jax.eval_shape(model.init, RNGS, tokens)
  rs = np.random.RandomState(0)
  variables = jax.tree_util.tree_map(
      lambda s: jnp.asarray(rs.uniform(-0.4, 0.4, s.shape), s.dtype), shapes)
  return model, variables, tokens


@functools.lru_cache(maxsize=None)
def real_init(name):
  model, _, tokens = built(name)
  return jax.jit(model.init)(RNGS, tokens)


_JITTED = {}


def apply(name, method=None, *args, rngs=None, **kwargs):
  """model.apply(variables, *args, method=method, **kwargs), jitted; python scalars, bools and
  None in kwargs are static, arrays are traced."""
  model, variables, _ = built(name)
  static = {k: v for k, v in kwargs.items() if v is None or isinstance(v, (bool, int, float))}
  dynamic = {k: v for k, v in kwargs.items() if k not in static}
  key = (name, method, tuple(sorted(static.items())), tuple(sorted(dynamic)),
         tuple(a is None for a in args))
  if key not in _JITTED:
    nones = [a is None for a in args]

    def fn(variables, rngs, args, dynamic):
      full = iter(args)
      args = [None if n else next(full) for n in nones]
      return model.apply(variables, *args, rngs=rngs, method=method, **static, **dynamic)

    _JITTED[key] = jax.jit(fn)
  return _JITTED[key](variables, RNGS if rngs is None else rngs,
                      [a for a in args if a is not None], dynamic)


def get_z(name, model, variables, tokens):
  if not TINY[name].get('use_encoder', True):
    return None
  aux = apply(name, None, tokens)[1]  # shares the compiled training forward
  return aux['mu'] + 0.3 * aux['sigma']


def assert_logits_close(a, b, atol=1e-5):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-5)


@pytest.mark.parametrize('name', list(TINY))
def test_shapes(name):
  kw = TINY[name]
  model, variables, tokens = built(name)
  logits, aux = apply(name, None, tokens)
  assert [l.shape for l in logits] == [(3, TIME, v) for v in kw['part_vocab']]
  assert all(l.dtype == jnp.float32 for l in logits)
  if kw.get('use_encoder', True):
    assert {k: v.shape for k, v in aux.items()} == {k: (3, 4) for k in ('mu', 'sigma', 'z')}
    assert bool(jnp.all(aux['sigma'] > 0))
  else:
    assert aux == {}
  z = get_z(name, model, variables, tokens)
  out, dec_logits = apply(name, MusicVAE.decode, z, batch_size=3, time=TIME)
  assert out.shape == (3, TIME, len(kw['part_vocab'])) and out.dtype == jnp.int32
  assert [l.shape for l in dec_logits] == [l.shape for l in logits]
  for p, v in enumerate(kw['part_vocab']):
    assert int(out[..., p].min()) >= 0 and int(out[..., p].max()) < v


def _paths(variables):
  flat = flax.traverse_util.flatten_dict(variables['params'], sep='/')
  return {k: v.shape for k, v in flat.items()}


def test_param_tree_flat_melody():
  _, variables, _ = built('melody_flat')
  assert _paths(variables) == {
      'encoder/fwd_0/input_kernel': (12, 32), 'encoder/fwd_0/recurrent_kernel': (8, 32),
      'encoder/fwd_0/bias': (32,),
      'encoder/bwd_0/input_kernel': (12, 32), 'encoder/bwd_0/recurrent_kernel': (8, 32),
      'encoder/bwd_0/bias': (32,),
      'encoder/mu/kernel': (16, 4), 'encoder/mu/bias': (4,),
      'encoder/sigma/kernel': (16, 4), 'encoder/sigma/bias': (4,),
      'decoder/melody/initial_state/kernel': (4, 32), 'decoder/melody/initial_state/bias': (32,),
      'decoder/melody/lstm_0/input_kernel': (16, 32),
      'decoder/melody/lstm_0/recurrent_kernel': (8, 32), 'decoder/melody/lstm_0/bias': (32,),
      'decoder/melody/lstm_1/input_kernel': (8, 32),
      'decoder/melody/lstm_1/recurrent_kernel': (8, 32), 'decoder/melody/lstm_1/bias': (32,),
      'decoder/melody/logits/kernel': (8, 12), 'decoder/melody/logits/bias': (12,),
  }


def test_param_tree_trio_and_baselines():
  paths = _paths(built('trio_hier')[1])
  tops = {'/'.join(k.split('/')[:2]) for k in paths}
  assert tops == {'encoder/fwd_0', 'encoder/bwd_0', 'encoder/mu', 'encoder/sigma',
                  'decoder/conductor', 'decoder/lead', 'decoder/bass', 'decoder/drums'}
  assert paths['encoder/fwd_0/input_kernel'] == (12 + 11 + 10, 32)  # drums: 10-value roll
  assert paths['decoder/drums/lstm_0/input_kernel'] == (512 + 8, 32)  # raw conductor h (8)
  assert 'decoder/conductor/rnn/lstm_0/recurrent_kernel' in paths
  assert 'decoder/conductor/rnn/lstm_0/input_kernel' not in paths  # zero input
  assert 'decoder/conductor/initial_state/kernel' in paths
  assert not any('embedding' in k for k in paths)
  paths = _paths(built('baseline_flat')[1])
  assert not any(k.startswith('encoder') or 'initial_state' in k for k in paths)
  assert paths['decoder/melody/lstm_0/input_kernel'] == (12, 32)  # previous token only
  paths = _paths(built('baseline_hier')[1])
  assert 'decoder/conductor/initial_state/kernel' not in paths
  assert paths['decoder/conductor/embedding/kernel'] == (8, 5)


def test_init():
  variables = real_init('melody_flat')
  assert _paths(variables) == _paths(built('melody_flat')[1])
  assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(variables))
  bias = variables['params']['decoder']['melody']['lstm_0']['bias']
  np.testing.assert_array_equal(bias, np.r_[np.zeros(16), np.ones(8), np.zeros(8)])
  assert float(jnp.std(variables['params']['encoder']['mu']['kernel'])) < 0.01


def _lstm(i, h):
  return i * 4 * h + h * 4 * h + 4 * h


def _dense(i, o):
  return i * o + o


PAPER = {
    # name: (constructor kwargs, time, hand-counted parameters)
    'mel_2bar': (dict(part_vocab=(130,), part_is_drums=(False,), z_size=256, enc_sizes=(2048,),
                      dec_sizes=(2048,) * 3), 32,
                 2 * _lstm(130, 2048) + 2 * _dense(4096, 256) + _dense(256, 6 * 2048)
                 + _lstm(130 + 256, 2048) + 2 * _lstm(2048, 2048) + _dense(2048, 130)),
    'drums_2bar': (dict(part_vocab=(512,), part_is_drums=(True,), z_size=256, enc_sizes=(2048,),
                        dec_sizes=(2048,) * 3), 32,
                   2 * _lstm(10, 2048) + 2 * _dense(4096, 256) + _dense(256, 6 * 2048)
                   + _lstm(512 + 256, 2048) + 2 * _lstm(2048, 2048) + _dense(2048, 512)),
    'mel_32bar': (dict(part_vocab=(130,), part_is_drums=(False,), z_size=512, enc_sizes=(2048,),
                       decoder='hier', dec_sizes=(1024, 1024), conductor_sizes=(1024, 1024),
                       num_segments=16, embedding_size=512), 512,
                  2 * _lstm(130, 2048) + 2 * _dense(4096, 512)
                  + _dense(512, 4 * 1024) + (_lstm(0, 1024)) + _lstm(1024, 1024)
                  + _dense(1024, 512)
                  + _dense(512, 4 * 1024) + _lstm(130 + 512, 1024) + _lstm(1024, 1024)
                  + _dense(1024, 130)),
    'trio_16bar': (dict(part_vocab=(130, 130, 512), part_is_drums=(False, False, True),
                        z_size=512, enc_sizes=(2048,), decoder='hier', dec_sizes=(1024, 1024),
                        conductor_sizes=(1024, 1024), num_segments=16, embedding_size=512), 256,
                   2 * _lstm(270, 2048) + 2 * _dense(4096, 512)
                   + _dense(512, 4 * 1024) + _lstm(0, 1024) + _lstm(1024, 1024)
                   + _dense(1024, 512)
                   + sum(_dense(512, 4 * 1024) + _lstm(v + 512, 1024) + _lstm(1024, 1024)
                         + _dense(1024, v) for v in (130, 130, 512))),
}


@pytest.mark.parametrize('name', list(PAPER))
def test_paper_param_counts(name):
  kw, time, expected = PAPER[name]
  model = MusicVAE(**kw)
  tokens = jax.ShapeDtypeStruct((1, time, len(kw['part_vocab'])), jnp.int32)
  shapes = jax.eval_shape(lambda t: model.init(RNGS, t), tokens)
  count = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes))
  assert count == expected


def test_p_sample_zero_equals_teacher_forcing():
  for name in ('melody_flat', 'melody_hier', 'baseline_flat'):
    _, _, tokens = built(name)
    fast, _ = apply(name, None, tokens)  # python 0.0: teacher-forced path
    slow, _ = apply(name, None, tokens, p_sample=jnp.float32(0.0))
    assert_logits_close(fast, slow)


def test_p_sample_one_never_reads_targets():
  # Flat: the first input is "no token", so with p = 1 no target is ever read.
  model, variables, tokens = built('melody_flat')
  z = get_z('melody_flat', model, variables, tokens)
  run = lambda t, p: apply('melody_flat', MusicVAE.decode_teacher_forced, t, z, p_sample=p)
  other = (tokens + 5) % 12
  assert_logits_close(run(tokens, 1.0), run(other, 1.0), atol=0)
  assert not np.allclose(run(tokens, 0.0)[0], run(other, 0.0)[0])
  # Hier: only the segments' first inputs (ground truth of the previous segment's last step)
  # are read.
  model, variables, tokens = built('melody_hier')
  z = get_z('melody_hier', model, variables, tokens)
  length = TIME // TINY['melody_hier']['num_segments']
  boundary = (np.arange(TIME) % length) == length - 1
  other = jnp.where(boundary[None, :, None], tokens, (tokens + 5) % 12)
  run = lambda t: apply('melody_hier', MusicVAE.decode_teacher_forced, t, z, p_sample=1.0)
  assert_logits_close(run(tokens), run(other), atol=0)


def test_hier_state_resets_per_segment():
  name = 'melody_hier'
  model, variables, tokens = built(name)
  z = get_z(name, model, variables, tokens)
  length = TIME // TINY[name]['num_segments']
  # Change segment 0 except its last token (which is segment 1's first input).
  other = tokens.at[:, :length - 1].set((tokens[:, :length - 1] + 3) % 12)
  a = apply(name, MusicVAE.decode_teacher_forced, tokens, z)[0]
  b = apply(name, MusicVAE.decode_teacher_forced, other, z)[0]
  assert not np.allclose(a[:, :length], b[:, :length])
  np.testing.assert_array_equal(a[:, length:], b[:, length:])


def _reference_hier_logits(params, tokens, z, kw):
  """Plain per-segment, per-step loop with explicit one-hot concat matmuls (single part)."""
  p = jax.tree_util.tree_map(np.asarray, params)
  sig = lambda x: 1 / (1 + np.exp(-x))

  def cell(layer, x, c, h):
    gates = layer['bias'] + h @ layer['recurrent_kernel']
    if x is not None:
      gates = gates + x @ layer['input_kernel']
    i, g, f, o = np.split(gates, 4, axis=-1)
    c = sig(f) * c + sig(i) * np.tanh(g)
    return c, sig(o) * np.tanh(c)

  def init(dense, x, sizes):
    flat = np.tanh(x @ dense['kernel'] + dense['bias'])
    out, s = [], 0
    for size in sizes:
      out.append([flat[:, s:s + size], flat[:, s + size:s + 2 * size]])
      s += 2 * size
    return out

  cond = p['decoder']['conductor']
  state = init(cond['initial_state'], np.asarray(z), kw['conductor_sizes'])
  embeddings = []
  for _ in range(kw['num_segments']):
    x = None
    for k in range(len(kw['conductor_sizes'])):
      state[k] = list(cell(cond['rnn'][f'lstm_{k}'], x, *state[k]))
      x = state[k][1]
    embeddings.append(x @ cond['embedding']['kernel'] + cond['embedding']['bias'])
  dec = p['decoder']['melody']
  vocab = kw['part_vocab'][0]
  tokens = np.asarray(tokens)[..., 0]
  batch, time = tokens.shape
  length = time // kw['num_segments']
  logits = []
  for s, emb in enumerate(embeddings):
    state = init(dec['initial_state'], emb, kw['dec_sizes'])
    for t in range(s * length, (s + 1) * length):
      prev = np.zeros((batch, vocab))
      if t > 0:
        prev[np.arange(batch), tokens[:, t - 1]] = 1.0
      x = np.concatenate([prev, emb], axis=-1)
      for k in range(len(kw['dec_sizes'])):
        state[k] = list(cell(dec[f'lstm_{k}'], x, *state[k]))
        x = state[k][1]
      logits.append(x @ dec['logits']['kernel'] + dec['logits']['bias'])
  return np.stack(logits, axis=1)


def test_batched_segments_equal_sequential_loop():
  name = 'melody_hier'
  model, variables, tokens = built(name)
  z = get_z(name, model, variables, tokens)
  expected = _reference_hier_logits(variables['params'], tokens, z, TINY[name])
  batched = apply(name, MusicVAE.decode_teacher_forced, tokens, z)
  np.testing.assert_allclose(batched[0], expected, atol=1e-5, rtol=1e-5)
  # The sequential segment-after-segment decoder fed the targets gives the same logits.
  _, sequential = apply(name, MusicVAE.decode, z, batch_size=3, time=TIME, targets=tokens,
                        p_sample=0.0)
  np.testing.assert_allclose(sequential[0], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('name', ['melody_flat', 'trio_hier', 'baseline_hier'])
def test_greedy_decode_deterministic_and_self_consistent(name):
  model, variables, tokens = built(name)
  z = get_z(name, model, variables, tokens)
  decode = lambda seed: apply(name, MusicVAE.decode, z, batch_size=3, time=TIME, greedy=True,
                              rngs={'sample': jax.random.PRNGKey(seed)})
  out_a, logits_a = decode(0)
  out_b, _ = decode(7)
  np.testing.assert_array_equal(out_a, out_b)
  for p, lg in enumerate(logits_a):
    np.testing.assert_array_equal(out_a[..., p], jnp.argmax(lg, axis=-1))
  # Teacher forcing on the generated tokens reproduces the free-running logits, including
  # at segment boundaries (fed the previous segment's generated last token).
  tf = apply(name, MusicVAE.decode_teacher_forced, out_a, z)
  assert_logits_close(tf, logits_a)


def test_sampled_decode_depends_on_rng():
  model, variables, tokens = built('drums_flat')
  z = get_z('drums_flat', model, variables, tokens)
  decode = lambda seed: apply('drums_flat', MusicVAE.decode, z, batch_size=3, time=TIME,
                              temperature=1.0, rngs={'sample': jax.random.PRNGKey(seed)})[0]
  np.testing.assert_array_equal(decode(3), decode(3))
  assert not np.array_equal(decode(3), decode(4))


def test_encoder_honours_lengths():
  model, variables, tokens = built('melody_hier')  # two stacked BiLSTM layers
  lengths = jnp.array([TIME, 5, 2])
  name = 'melody_hier'
  mu, sigma = apply(name, MusicVAE.encode, tokens, lengths)
  garbage = jnp.where(jnp.arange(TIME)[None, :, None] >= lengths[:, None, None],
                      (tokens + 7) % 12, tokens)
  mu2, sigma2 = apply(name, MusicVAE.encode, garbage, lengths)
  np.testing.assert_allclose(mu, mu2, atol=1e-6)
  np.testing.assert_allclose(sigma, sigma2, atol=1e-6)
  # Full lengths take the other code path (reverse scan) and agree with it.
  full, _ = apply(name, MusicVAE.encode, tokens, jnp.full((3,), TIME))
  none, _ = apply(name, MusicVAE.encode, tokens, None)
  np.testing.assert_allclose(full, none, atol=1e-6)
  # A truncated sequence encodes like the same prefix given as a shorter array.
  short, _ = apply(name, MusicVAE.encode, tokens[1:2, :5], None)
  np.testing.assert_allclose(mu[1:2], short, atol=1e-6)


def _np_lstm_summary(x, params, sizes):
  """A stacked BiLSTM in numpy (float64): x [batch, time, in] -> concat(final fwd h, final bwd
  h) of the top layer; layer k > 0 reads concat(fwd hs, bwd hs) of layer k - 1."""
  sig = lambda v: 1.0 / (1.0 + np.exp(-v))

  def run(x, p, reverse):
    w_in, w_h, b = (np.asarray(p[k], np.float64) for k in
                    ('input_kernel', 'recurrent_kernel', 'bias'))
    h = np.zeros((x.shape[0], w_h.shape[0]))
    c, hs = np.zeros_like(h), [None] * x.shape[1]
    for t in (reversed(range(x.shape[1])) if reverse else range(x.shape[1])):
      i, g, f, o = np.split(x[:, t] @ w_in + h @ w_h + b, 4, axis=1)
      c = sig(f) * c + sig(i) * np.tanh(g)
      h = sig(o) * np.tanh(c)
      hs[t] = h
    return h, np.stack(hs, 1)

  for k in range(len(sizes)):
    h_f, hs_f = run(x, params[f'fwd_{k}'], False)
    h_b, hs_b = run(x, params[f'bwd_{k}'], True)
    x = np.concatenate([hs_f, hs_b], -1)
  return np.concatenate([h_f, h_b], -1)


def test_hierarchical_encoder_is_a_bilstm_per_segment_then_one_over_the_summaries():
  kw = TINY['trio_hier_enc']
  _, variables, tokens = built('trio_hier_enc')
  enc = variables['params']['encoder']
  paths = _paths(variables)
  assert paths['encoder/level_0/fwd_0/input_kernel'] == (12 + 11 + 10, 32)  # drums: the roll
  assert paths['encoder/level_0/fwd_1/input_kernel'] == (16, 24)
  assert paths['encoder/level_1/fwd_0/input_kernel'] == (12, 32)  # 2 x level 0's top (6)
  assert paths['encoder/mu/kernel'] == (12, 4)
  assert not any(k.startswith(('encoder/fwd', 'encoder/bwd')) for k in paths)
  # Level 0 on each segment alone is the flat encoder with level 0's weights on that segment.
  flat = encoder_lib.BidirectionalLSTMEncoder(
      part_vocab=kw['part_vocab'], part_is_drums=kw['part_is_drums'], sizes=kw['enc_sizes'],
      z_size=4)
  flat_params = {**enc['level_0'], 'mu': enc['mu'], 'sigma': enc['sigma']}
  summaries = [flat.apply({'params': flat_params}, tokens[:, 2 * s:2 * s + 2],
                          method=encoder_lib.BidirectionalLSTMEncoder.summary)
               for s in range(4)]
  top = _np_lstm_summary(np.stack([np.asarray(h, np.float64) for h in summaries], 1),
                         enc['level_1'], kw['enc_sizes'])
  mu, sigma = apply('trio_hier_enc', MusicVAE.encode, tokens)
  np.testing.assert_allclose(mu, top @ enc['mu']['kernel'] + enc['mu']['bias'], atol=1e-5)
  pre = top @ enc['sigma']['kernel'] + enc['sigma']['bias']
  np.testing.assert_allclose(sigma, np.log1p(np.exp(pre)), atol=1e-5)
  with pytest.raises(ValueError, match='whole windows'):
    apply('trio_hier_enc', MusicVAE.encode, tokens, jnp.full((3,), TIME))


def test_drum_roll():
  roll = encoder_lib.drum_roll(jnp.array([0, 1, 5, 256, 511]))
  expected = np.zeros((5, 10))
  expected[0, 9] = 1
  expected[1, 0] = 1
  expected[2, [0, 2]] = 1
  expected[3, 8] = 1
  expected[4, :9] = 1
  np.testing.assert_array_equal(roll, expected)


def test_bfloat16_and_sigma_exp2():
  _, _, tokens = built('melody_flat')
  variables = real_init('melody_flat')  # neither option changes the parameters
  model = MusicVAE(**dict(TINY['melody_flat'], dtype='bfloat16', sigma_param='exp2'))
  logits, aux = jax.jit(lambda v, t: model.apply(v, t, rngs=RNGS))(variables, tokens)
  assert logits[0].dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(logits[0])))
  np.testing.assert_allclose(aux['sigma'], 1.0, atol=0.05)  # exp(2 * ~0)


def test_scheduled_sampling_is_differentiable():
  model, variables, tokens = built('melody_flat')

  def loss(params, p):
    logits, _ = model.apply({'params': params}, tokens, rngs=RNGS, p_sample=p)
    return sum(jnp.mean(l ** 2) for l in logits)

  grads = jax.jit(jax.grad(loss))(variables['params'], jnp.float32(0.5))
  norms = [float(jnp.linalg.norm(g)) for g in jax.tree_util.tree_leaves(grads)]
  assert all(np.isfinite(norms)) and sum(n > 0 for n in norms) > len(norms) // 2


def _sub_jaxprs(eqn):
  for v in eqn.params.values():
    if hasattr(v, 'jaxpr') and hasattr(v.jaxpr, 'eqns'):  # ClosedJaxpr
      yield v.jaxpr
    elif hasattr(v, 'eqns'):  # Jaxpr
      yield v


def _count_dots(jx):
  return sum((eqn.primitive.name == 'dot_general') + sum(map(_count_dots, _sub_jaxprs(eqn)))
             for eqn in jx.eqns)


def _scan_matmul_counts(jx):
  """Number of dot_generals in the body of every scan in a jaxpr, recursively."""
  counts = []
  for eqn in jx.eqns:
    if eqn.primitive.name == 'scan':
      counts.append(_count_dots(eqn.params['jaxpr'].jaxpr))
    for sub in _sub_jaxprs(eqn):
      counts += _scan_matmul_counts(sub)
  return counts


def test_teacher_forced_recurrence_only_multiplies_h():
  """The input projections are hoisted: each time-step scan body does one matmul (h @ W_h)."""
  for name in ('melody_flat', 'melody_hier', 'trio_hier'):
    kw = TINY[name]
    model, variables, tokens = built(name)
    jaxpr = jax.make_jaxpr(lambda v, t: model.apply(v, t, rngs=RNGS))(variables, tokens)
    counts = _scan_matmul_counts(jaxpr.jaxpr)
    expected = [1] * (2 * len(kw['enc_sizes']) + len(kw['dec_sizes']) * len(kw['part_vocab']))
    if kw.get('decoder') == 'hier':  # one conductor step: h @ W_h per layer + inputs above 0
      expected.append(2 * len(kw['conductor_sizes']) - 1)
    assert sorted(counts) == sorted(expected)


@pytest.mark.parametrize('reverse', [False, True])
@pytest.mark.parametrize('dtype', ['float32', 'bfloat16'])
def test_run_layer_custom_gradient_equals_autodiff(reverse, dtype):
  """`run_layer`'s hand-written backward pass gives autodiff's values and gradients, with and
  without per-step constant gates (`step_gates`, [batch, 4H] and [4H])."""
  from mvae_jax.models import lstm  # pylint: disable=import-outside-toplevel
  time, batch, h = 7, 3, 5
  k = jax.random.split(jax.random.PRNGKey(0), 6)
  gx = jax.random.normal(k[0], (time, batch, 4 * h))
  c0 = 0.5 * jax.random.normal(k[1], (batch, h))
  h0 = 0.5 * jax.random.normal(k[2], (batch, h))
  w = 0.5 * jax.random.normal(k[3], (h, 4 * h))
  proj = jax.random.normal(k[4], (time, batch, h))
  step = jax.random.normal(k[5], (batch, 4 * h))

  for step_gates in (None, step, step[0]):
    def loss(run, step_gates=step_gates):
      def f(gx, c0, h0, w, sg):
        (c, hl), hs = run(gx, (c0, h0), w, jnp.dtype(dtype), 1, reverse, sg)
        return jnp.sum(hs * proj) + jnp.sum(jnp.sin(c)) + 0.7 * jnp.sum(hl)
      return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2, 3) + ((4,) if step_gates is not None
                                                                   else ())))

    v_fast, g_fast = loss(lstm.run_layer)(gx, c0, h0, w, step_gates)
    v_ref, g_ref = loss(lstm.run_layer_reference)(gx, c0, h0, w, step_gates)
    tol = 1e-5 if dtype == 'float32' else 2e-2
    np.testing.assert_allclose(v_fast, v_ref, rtol=tol, atol=tol)
    assert len(g_fast) == (4 if step_gates is None else 5)
    for a, b in zip(g_fast, g_ref):
      assert a.shape == b.shape
      np.testing.assert_allclose(a, b, rtol=tol, atol=tol * float(jnp.max(jnp.abs(b))))


@pytest.mark.parametrize('parts', [1, 3])
@pytest.mark.parametrize('dtype', ['float32', 'bfloat16'])
def test_token_gates_recurrence_equals_the_dense_gates(dtype, parts):
  """`run_layer` over `TokenGates` (rows gathered inside the loop, the tables' gradients one
  scatter-add each) gives bit for bit the values of the same gates as one dense array, and the
  same gradients, in both directions, with and without step gates; so does the value path."""
  from mvae_jax.models import lstm  # pylint: disable=import-outside-toplevel
  time, batch, h = 7, 5, 8
  classes = (6, 4, 9)[:parts]
  k = jax.random.split(jax.random.PRNGKey(3), 6 + 2 * parts)
  tables = tuple(jax.random.normal(k[6 + p], (n + 1, 4 * h)) for p, n in enumerate(classes))
  tokens = jnp.stack([jax.random.randint(k[6 + parts + p], (time, batch), -1, n)
                      for p, n in enumerate(classes)], axis=-1)
  assert int(jnp.sum(tokens == -1)) > 0  # "no token" reads the last row
  c0, h0 = (0.5 * jax.random.normal(k[i], (batch, h)) for i in (0, 1))
  w = 0.5 * jax.random.normal(k[2], (h, 4 * h))
  proj = jax.random.normal(k[3], (time, batch, h))
  step = jax.random.normal(k[4], (batch, 4 * h))
  dense = lstm.TokenGates(tables, tokens).dense()
  expect = 0.0
  for p, t in enumerate(tables):
    expect = expect + jnp.where((tokens[..., p] >= 0)[..., None],
                                t[jnp.maximum(tokens[..., p], 0)], t[-1])
  np.testing.assert_array_equal(dense, expect)

  for reverse in (False, True):
    for step_gates in (None, step):
      def loss(tokens_form, step_gates=step_gates, reverse=reverse):
        def f(tables, c0, h0, w):
          gates = lstm.TokenGates(tables, tokens)
          (c, hl), hs = lstm.run_layer(gates if tokens_form else gates.dense(), (c0, h0), w,
                                       jnp.dtype(dtype), 1, reverse, step_gates)
          return jnp.sum(hs * proj) + jnp.sum(jnp.sin(c)) + 0.7 * jnp.sum(hl)
        return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2, 3)))(tables, c0, h0, w)

      (v_tok, g_tok), (v_dense, g_dense) = loss(True), loss(False)
      assert float(v_tok) == float(v_dense)
      for a, b in zip(jax.tree.leaves(g_tok), jax.tree.leaves(g_dense)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
      assert all(float(jnp.max(jnp.abs(g))) > 0 for g in g_tok[0])
      run = lambda t, dense_form, sg=step_gates, r=reverse: lstm.run_layer(  # pylint: disable=g-long-lambda
          lstm.TokenGates(t, tokens).dense() if dense_form else lstm.TokenGates(t, tokens),
          (c0, h0), w, jnp.dtype(dtype), 1, r, sg)[1]
      np.testing.assert_array_equal(jax.jit(run, static_argnums=1)(tables, False),
                                    jax.jit(run, static_argnums=1)(tables, True))


@pytest.mark.parametrize('time,batch', [(6, 4), (6, 100)])
def test_encoder_token_tables_give_the_inputs_products_gates(time, batch):
  """`encoder.token_gates`' tables hold `x @ W_in + b` of every token's input (one-hots and the
  drum roll, as the 2-bar drum and trio encoders read them; token -1 included), so the gathered
  gates equal the product of the windows' input vectors with the kernel; the drum table holds
  every class's roll, or each step's own where there are fewer steps than classes."""
  from mvae_jax.models import encoder as enc, lstm  # pylint: disable=import-outside-toplevel
  part_vocab, drums = (90, 90, 512), (False, False, True)
  widths = enc.input_widths(part_vocab, drums, 'roll')
  layer = lstm.LSTMLayer(16, sum(widths), jnp.float32, 1.0)
  rng = jax.random.PRNGKey(5)
  params = layer.init(rng, jnp.zeros((1, sum(widths))), method=lambda m, x: m.project(x))
  tokens = jnp.stack([jax.random.randint(jax.random.PRNGKey(p), (time, batch), -1, v)
                      for p, v in enumerate(part_vocab)], axis=-1)
  token_gates = layer.apply(params, method=lambda m: enc.token_gates(
      m, tokens, part_vocab, drums, 'roll'))
  assert [t.shape[0] for t in token_gates.tables] == [91, 91, min(time * batch, 512) + 1]
  gates = token_gates.dense()
  x = jnp.concatenate([jax.nn.one_hot(tokens[..., 0], 90), jax.nn.one_hot(tokens[..., 1], 90),
                       enc.drum_roll(tokens[..., 2])], axis=-1)
  expect = layer.apply(params, x, method=lambda m, x: m.project(x))
  np.testing.assert_allclose(gates, expect, rtol=1e-5, atol=1e-5)


def test_step_kernel_layout_follows_the_measured_rule_and_keeps_the_products():
  """Large kernels are read transposed ([out, in]) for one row everywhere and for 2-32 rows only
  on CPUs without AVX-512, and block by block for two rows with AVX-512 (docs/PERFORMANCE.md);
  every way the products are `x @ kernel`."""
  from mvae_jax.models import lstm  # pylint: disable=import-outside-toplevel
  big, small = 64 * 2**20, 4 * 2**20
  avx2, avx512 = ('avx', 'avx2', 'fma'), ('avx', 'avx2', 'fma', 'avx512f', 'avx512bw')
  faster = lstm.transposed_reads_faster
  assert faster(1, big, avx2) and faster(1, big, avx512)
  assert faster(4, big, avx2) and not faster(4, big, avx512)
  assert not faster(33, big, avx2) and not faster(1, small, avx2)
  # Two rows of a kernel larger than the L3 cache: block by block, on CPUs with AVX-512 only.
  blocked = lstm.blocked_reads_faster
  assert blocked(2, big, avx512) and not blocked(2, big, avx2)
  assert not blocked(1, big, avx512) and not blocked(3, big, avx512)
  assert not blocked(2, 16 * 2**20, avx512)
  kernel = jax.random.normal(jax.random.PRNGKey(0), (2048, 8192))  # 64 MB
  for rows in (1, 2, 3):
    x = jax.random.normal(jax.random.PRNGKey(rows), (rows, 2048))
    k = lstm.step_kernel(kernel, rows, jnp.float32)
    assert k.blocked == lstm.blocked_reads_faster(rows, 64 * 2**20)
    assert k.transposed == (not k.blocked and lstm.transposed_reads_faster(rows, 64 * 2**20))
    np.testing.assert_allclose(k(x), x @ kernel, rtol=1e-4, atol=1e-3)
  # The blocked product itself, whatever this CPU would choose: the same values as whole.
  w = kernel.reshape(2048, lstm.BLOCKS, -1).transpose(1, 0, 2)
  x = jax.random.normal(jax.random.PRNGKey(7), (2, 2048))
  np.testing.assert_allclose(lstm.StepKernel(w, False, jnp.float32, blocked=True)(x), x @ kernel,
                             rtol=1e-4, atol=1e-3)
  # ... and the same gradients (scheduled sampling differentiates the sampling decoder's steps).
  small = jax.random.normal(jax.random.PRNGKey(8), (64, 256))
  loss = lambda k, x: jnp.sum(jnp.tanh(k(x)) ** 2)
  blocked_grads = jax.grad(lambda w, x: loss(lstm.StepKernel(w, False, jnp.float32, True), x),
                           argnums=(0, 1))(small.reshape(64, lstm.BLOCKS, -1).transpose(1, 0, 2),
                                           x[:, :64])
  whole_grads = jax.grad(lambda w, x: loss(lstm.StepKernel(w, False, jnp.float32), x),
                         argnums=(0, 1))(small, x[:, :64])
  np.testing.assert_allclose(blocked_grads[0].transpose(1, 0, 2).reshape(64, 256),
                             whole_grads[0], rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(blocked_grads[1], whole_grads[1], rtol=1e-4, atol=1e-4)


def test_lstm_cell_gate_blocks_give_the_whole_array_values_bit_for_bit():
  """`lstm_cell` with the gates in four blocks (what `run_layer_reference` passes, split before
  its scan) computes exactly what it computes from the [batch, 4H] array, and
  `run_layer_reference` equals a plain Python loop over the array form."""
  from mvae_jax.models import lstm  # pylint: disable=import-outside-toplevel
  time, batch, h = 6, 3, 5
  k = jax.random.split(jax.random.PRNGKey(1), 5)
  gx = jax.random.normal(k[0], (time, batch, 4 * h))
  c0, h0 = (0.5 * jax.random.normal(k[i], (batch, h)) for i in (1, 2))
  w = 0.5 * jax.random.normal(k[3], (h, 4 * h))
  step = jax.random.normal(k[4], (batch, 4 * h))
  cell = jax.jit(lstm.lstm_cell, static_argnums=3)
  whole = cell((c0, h0), gx[0], w, jnp.float32)
  blocks = cell((c0, h0), lstm.split_gates(gx[0]), w, jnp.float32)
  for a, b in zip(whole, blocks):
    np.testing.assert_array_equal(a, b)
  for reverse in (False, True):
    (c, hl), hs = jax.jit(lstm.run_layer_reference, static_argnums=(3, 4, 5))(
        gx, (c0, h0), w, jnp.float32, 1, reverse, step)
    carry, expect = (c0, h0), [None] * time
    for t in (reversed(range(time)) if reverse else range(time)):
      carry = cell(carry, gx[t] + step, w, jnp.float32)
      expect[t] = carry[1]
    np.testing.assert_allclose(hs, jnp.stack(expect), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(c, carry[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(hl, carry[1], rtol=1e-6, atol=1e-6)


def _free_running(name, z, rng, **kwargs):
  """Part 0's `PartDecoder.free_running` with an explicit key (flat decoders: one segment)."""
  model, variables, _ = built(name)

  def fn(module, z, rng):
    return module.dec.parts[0].free_running(
        z[:, None, :], jnp.full((z.shape[0],), -1, jnp.int32), num_segments=1, length=TIME,
        rng=rng, **kwargs)

  return jax.jit(lambda v, z, rng: model.apply(v, z, rng, method=fn))(variables, z, rng)


def test_sampling_draws_are_categorical_step_by_step():
  """The segment's noise is drawn before its steps run, but every sample is what
  jax.random.categorical(step key, logits / T) gives, the key of step t being
  split(split(rng, steps)[t])[0] as in a step-by-step loop."""
  name = 'drums_flat'
  model, variables, tokens = built(name)
  z = get_z(name, model, variables, tokens)
  rng, temperature = jax.random.PRNGKey(11), 0.7
  samples, logits = _free_running(name, z, rng, temperature=temperature)
  keys = jax.random.split(rng, TIME)
  for t in range(TIME):
    sample_key = jax.random.split(keys[t])[0]
    want = jax.random.categorical(sample_key, logits[:, 0, t] / temperature)
    np.testing.assert_array_equal(samples[:, 0, t], want)
  # Without logits kept (generation), the same tokens.
  alone, none = _free_running(name, z, rng, temperature=temperature, with_logits=False)
  assert none is None
  np.testing.assert_array_equal(alone, samples)
  # Shared noise: every row draws what a batch of one draws (row 0's noise).
  same_z = jnp.broadcast_to(z[1:2], z.shape)
  shared, _ = _free_running(name, same_z, rng, temperature=temperature, shared_noise=True)
  one, _ = _free_running(name, z[1:2], rng, temperature=temperature)
  for row in shared:
    np.testing.assert_array_equal(row, one[0])
