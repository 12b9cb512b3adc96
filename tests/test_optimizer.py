"""The optimizer against hand-computed numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mvae_jax import optimizer


def test_optimizer_clips_and_uses_schedule():
  tx = optimizer.make_optimizer()
  params = {'w': jnp.zeros(3)}
  state = tx.init(params)
  grads = {'w': jnp.array([3.0, -4.0, 0.0])}  # norm 5, clipped to 1
  updates, state = tx.update(grads, state, params)
  # Adam's first step: m_hat / sqrt(v_hat) = sign(g) (eps aside), times lr(0) = 1e-3.
  np.testing.assert_allclose(updates['w'], [-1e-3, 1e-3, 0.0], atol=1e-8)
  updates, state = tx.update(grads, state, params)
  np.testing.assert_allclose(updates['w'], [-(0.99e-3 * 0.9999 + 1e-5),
                                            0.99e-3 * 0.9999 + 1e-5, 0.0], rtol=1e-4)


def test_optimizer_skips_huge_and_nonfinite_gradients():
  tx = optimizer.make_optimizer()
  params = {'w': jnp.zeros(2)}
  state = tx.init(params)
  _, state = tx.update({'w': jnp.array([1.0, 1.0])}, state, params)
  for bad in ([1e4, 0.0], [jnp.nan, 0.0]):
    updates, new_state = tx.update({'w': jnp.array(bad)}, state, params)
    np.testing.assert_array_equal(updates['w'], [0.0, 0.0])
    for a, b in zip(jax.tree_util.tree_leaves(new_state), jax.tree_util.tree_leaves(state)):
      np.testing.assert_array_equal(a, b)
  updates, _ = tx.update({'w': jnp.array([9999.0, 0.0])}, state, params)
  assert float(updates['w'][0]) < 0
  plain = optimizer.make_optimizer(clip_to_zero_norm=None)
  updates, _ = plain.update({'w': jnp.array([1e5, 0.0])}, plain.init(params), params)
  assert float(updates['w'][0]) < 0
  jax.jit(tx.update)({'w': jnp.ones(2)}, state, params)  # traceable
  assert isinstance(tx, optax.GradientTransformation)


def test_encoder_lr_scale_scales_only_the_encoder():
  params = {'encoder': {'w': jnp.zeros(2)}, 'decoder': {'w': jnp.zeros(2)}}
  grads = {'encoder': {'w': jnp.array([1.0, -1.0])}, 'decoder': {'w': jnp.array([1.0, -1.0])}}
  full = optimizer.make_optimizer()
  scaled = optimizer.make_optimizer(encoder_lr_scale=0.1)
  u_full, _ = full.update(grads, full.init(params), params)
  u_scaled, state = jax.jit(scaled.update)(grads, scaled.init(params), params)
  np.testing.assert_allclose(u_scaled['encoder']['w'], 0.1 * u_full['encoder']['w'], rtol=1e-6)
  np.testing.assert_allclose(u_scaled['decoder']['w'], u_full['decoder']['w'], rtol=1e-6)
  # Same optimizer state whatever the factor: a run resumes with another one.
  assert (jax.tree_util.tree_structure(full.init(params))
          == jax.tree_util.tree_structure(scaled.init(params)))
  # The baseline has no encoder: its updates pass unchanged.
  dec_only = {'decoder': params['decoder']}
  u, _ = scaled.update({'decoder': grads['decoder']}, scaled.init(dec_only), dec_only)
  np.testing.assert_allclose(u['decoder']['w'], u_full['decoder']['w'], rtol=1e-6)


def test_encoder_lr_scale_on_frozen_params():
  from flax.core import frozen_dict
  params = frozen_dict.freeze({'encoder': {'w': jnp.zeros(2)}, 'decoder': {'w': jnp.zeros(2)}})
  grads = frozen_dict.freeze({'encoder': {'w': jnp.ones(2)}, 'decoder': {'w': jnp.ones(2)}})
  tx = optimizer.make_optimizer(encoder_lr_scale=0.5)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates['encoder']['w'], 0.5 * updates['decoder']['w'], rtol=1e-6)
