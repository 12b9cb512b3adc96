"""Table 1 metric counts and slerp against hand-computed numbers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvae_jax import metrics


def logits_for(pred, vocab):
  """Logits whose argmax is `pred` (int [batch, time])."""
  return jax.nn.one_hot(jnp.asarray(pred), vocab) * 5.0


def test_accuracy_counts_single_part():
  target = jnp.array([[0, 0, 2, 3], [1, 0, 0, 2]])
  pred = jnp.array([[0, 0, 2, 1], [1, 3, 0, 0]])
  counts = metrics.accuracy_counts(logits_for(pred, 4), target[..., None], jnp.array([4, 3]))
  # Valid: row 0 all 4 (3 right), row 1 first 3 (2 right: steps 0, 2).
  np.testing.assert_array_equal(counts['correct'], [5])
  np.testing.assert_array_equal(counts['total'], [7])
  # Non-NO_EVENT targets: (0,2) right, (0,3) wrong, (1,0) right; (1,3) is padding.
  np.testing.assert_array_equal(counts['event_correct'], [2])
  np.testing.assert_array_equal(counts['event_total'], [3])
  np.testing.assert_array_equal(counts['class_total'][0], [4, 1, 1, 1])
  np.testing.assert_array_equal(counts['class_correct'][0], [3, 1, 1, 0])
  s = metrics.summarize(counts)
  assert s['accuracy'] == pytest.approx(5 / 7)
  assert s['event_accuracy'] == pytest.approx(2 / 3)
  assert s['class_accuracy'] == pytest.approx((1 + 1 + 0) / 3)
  assert set(s) == {'accuracy', 'event_accuracy', 'class_accuracy'}


def test_hold_only_model_does_not_look_good():
  target = jnp.array([[0, 0, 0, 5, 0, 0, 0, 7]])
  counts = metrics.accuracy_counts(logits_for(jnp.zeros_like(target), 8), target[..., None])
  s = metrics.summarize(counts)
  assert s['accuracy'] == pytest.approx(0.75)
  assert s['event_accuracy'] == 0.0 and s['class_accuracy'] == 0.0


def test_counts_per_part_and_summable():
  lead_t, drum_t = jnp.array([[1, 0, 2]]), jnp.array([[0, 5, 5]])
  tokens = jnp.stack([lead_t, drum_t], axis=-1)
  logits = (logits_for([[1, 0, 0]], 3), logits_for([[0, 5, 1]], 8))
  counts = metrics.accuracy_counts(logits, tokens)
  np.testing.assert_array_equal(counts['correct'], [2, 2])
  np.testing.assert_array_equal(counts['event_total'], [2, 2])
  total = metrics.add_counts(counts, counts)
  np.testing.assert_array_equal(total['total'], [6, 6])
  s = metrics.summarize(total, ('lead', 'drums'))
  assert s['accuracy'] == pytest.approx(8 / 12)
  assert s['accuracy/lead'] == pytest.approx(4 / 6)
  assert s['event_accuracy/lead'] == pytest.approx(0.5)
  assert s['event_accuracy/drums'] == pytest.approx(0.5)
  assert s['class_accuracy/drums'] == pytest.approx(0.5)
  assert s['class_accuracy'] == pytest.approx((1 + 0 + 0.5) / 3)  # lead 1, lead 2, drums 5


def test_empty_counts_are_nan():
  counts = metrics.accuracy_counts(jnp.zeros((1, 2, 3)), jnp.zeros((1, 2, 1), jnp.int32),
                                   jnp.array([0]))
  s = metrics.summarize(counts)
  assert all(math.isnan(v) for v in s.values())


def test_slerp_endpoints_and_midpoint():
  a = jnp.array([1.0, 0.0, 0.0])
  b = jnp.array([0.0, 2.0, 0.0])
  out = metrics.slerp(a, b, jnp.linspace(0.0, 1.0, 5))
  assert out.shape == (5, 3)
  np.testing.assert_array_equal(out[0], a)
  np.testing.assert_array_equal(out[-1], b)
  # Orthogonal: sin(pi/4) / sin(pi/2) = 1/sqrt(2) of each endpoint at t = 1/2.
  np.testing.assert_allclose(out[2], [1 / math.sqrt(2), 2 / math.sqrt(2), 0.0], rtol=1e-6)
  unit = metrics.slerp(a, b / 2, 0.3)
  assert float(jnp.linalg.norm(unit)) == pytest.approx(1.0, rel=1e-6)  # stays on the sphere
  np.testing.assert_allclose(unit, [math.cos(0.3 * math.pi / 2), math.sin(0.3 * math.pi / 2),
                                    0.0], rtol=1e-6)


def test_slerp_identical_and_antipodal():
  a = jnp.array([0.6, -0.8])
  same = metrics.slerp(a, a, jnp.linspace(0.0, 1.0, 4))
  assert bool(jnp.all(jnp.isfinite(same)))
  np.testing.assert_allclose(same, jnp.broadcast_to(a, (4, 2)), rtol=1e-6)
  anti = metrics.slerp(a, -a, jnp.linspace(0.0, 1.0, 5))
  assert bool(jnp.all(jnp.isfinite(anti)))
  np.testing.assert_array_equal(anti[0], a)
  np.testing.assert_array_equal(anti[-1], -a)
  np.testing.assert_allclose(anti[2], [0.0, 0.0], atol=1e-7)  # documented: straight line


def test_slerp_batched_latents():
  a = jax.random.normal(jax.random.PRNGKey(0), (4, 8))
  b = jax.random.normal(jax.random.PRNGKey(1), (4, 8))
  out = metrics.slerp(a, b, jnp.array([0.0, 0.5, 1.0]))
  assert out.shape == (3, 4, 8)
  np.testing.assert_array_equal(out[0], a)
  np.testing.assert_array_equal(out[2], b)
  for i in range(4):
    np.testing.assert_allclose(out[1, i], metrics.slerp(a[i], b[i], 0.5), rtol=1e-5)
