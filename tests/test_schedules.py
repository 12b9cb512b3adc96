"""Schedules against hand-computed numbers."""

import math

import jax.numpy as jnp
import pytest

from mvae_jax import schedules


def test_learning_rate():
  lr = schedules.learning_rate_schedule()
  assert float(lr(0)) == pytest.approx(1e-3, rel=1e-6)
  assert float(lr(1)) == pytest.approx(0.99e-3 * 0.9999 + 1e-5, rel=1e-6)
  assert float(lr(10_000)) == pytest.approx(0.99e-3 * 0.9999 ** 10_000 + 1e-5, rel=1e-5)
  assert float(lr(10 ** 8)) == pytest.approx(1e-5, rel=1e-6)
  custom = schedules.learning_rate_schedule(init=2.0, min=1.0, decay_rate=0.5)
  assert float(custom(jnp.int32(3))) == pytest.approx(1.125)


def test_beta():
  assert float(schedules.beta(0, 0.2, 0.99999)) == 0.0
  assert float(schedules.beta(100_000, 0.2, 0.99999)) == pytest.approx(
      0.2 * (1 - 0.99999 ** 100_000), rel=1e-5)
  assert float(schedules.beta(100_000, 0.2, 0.99999)) == pytest.approx(0.2 * 0.632, rel=1e-3)
  for rate in (None, 0, 0.0):
    assert float(schedules.beta(0, 1.0, rate)) == 1.0
    assert float(schedules.beta(5, 0.2, rate)) == pytest.approx(0.2)


def test_sampling_probability():
  k = 1000.0
  assert float(schedules.sampling_probability(0)) == pytest.approx(1 - k / (k + 1), rel=1e-5)
  for step in (1000, 6907, 10_000):
    expected = 1 - k / (k + math.exp(step / k))
    assert float(schedules.sampling_probability(step)) == pytest.approx(expected, rel=1e-5)
  assert float(schedules.sampling_probability(15_000)) > 0.99
  big = schedules.sampling_probability(jnp.int32(2 ** 30))  # exp(step / k) would overflow
  assert float(big) == 1.0
  assert float(schedules.sampling_probability(2_000, rate=100.0)) == pytest.approx(
      1 - 100 / (100 + math.exp(20)), rel=1e-6)
  off = schedules.sampling_probability(10_000, enabled=False)
  assert off == 0.0 and isinstance(off, float)  # python 0.0: the model's teacher-forced path
