"""ELBO and importance-sampled log p(x) (`mvae_jax.score`) on `smoke` checkpoints.

The bound and the estimator are checked against their definitions: a baseline's log p(x) is the
teacher-forced cross-entropy computed here from `Model.logits`; log p(x|z) at z = mu equals the
same cross-entropy given mu; the estimate is the log-mean-exp of the per-sample weights, at least
the ELBO on average, tighter with more samples, and independent of batching. Real windows are
compared with uniformly random tokens (a model trained for a few steps already tells them
apart); real against time-shuffled windows needs a trained model and is measured on the
quickstart-size runs in docs/RESULTS.md.
"""
import csv
import json
import math
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvae_jax import score as S
from mvae_jax.score import __main__ as score_cli
from tests.conftest import load_config
from tests.test_generate import INPUT_A, INPUT_B, smoke_run
from mvae_jax import trained_model
from mvae_jax import trainer


@pytest.fixture(scope='module')
def root(tmp_path_factory, tfds_dir):
  del tfds_dir  # exports TFDS_DATA_DIR, where the Freedoom datasets are built
  return tmp_path_factory.mktemp('score_runs')


@pytest.fixture(scope='module')
def vae(root):
  """melody2:smoke trained 30 steps at a high learning rate on the Freedoom windows: enough to
  tell real windows from random tokens (4 steps at the default rate is not)."""
  workdir = os.path.join(str(root), 'melody2_30')
  config = load_config('melody2:smoke', None, **{
      'train.num_steps': 30, 'optim.learning_rate': 1e-2, 'train.checkpoint_every_steps': 30,
      'eval.every_steps': 30, 'train.log_every_steps': 30})
  trainer.train_and_evaluate(config, workdir)
  return trained_model.Model.load(workdir)


def _windows(model, n=16):
  return model.windows(INPUT_A).tokens[:n].astype(np.int32)


def _cross_entropy(model, tokens, z=None):
  """Teacher-forced -log p(x|z) per window, from Model.logits, in numpy (nats)."""
  total = np.zeros(len(tokens))
  for p, lg in enumerate(model.logits(tokens, z)):
    lg = lg.astype(np.float64)
    m = lg.max(-1, keepdims=True)
    log_softmax = lg - m - np.log(np.exp(lg - m).sum(-1, keepdims=True))
    total -= np.take_along_axis(log_softmax, tokens[..., p:p + 1], -1)[..., 0].sum(1)
  return total


def test_baseline_log_p_is_exact(root):
  model = trained_model.Model.load(smoke_run('melody2,baseline', root))
  x = _windows(model)
  s = S.score_tokens(model, x, samples=5)
  want = _cross_entropy(model, x)
  np.testing.assert_allclose(s['recon'], want, rtol=1e-5)
  np.testing.assert_allclose(s['log_p'], -want, rtol=1e-5)
  np.testing.assert_array_equal(s['elbo'], s['log_p'])
  np.testing.assert_array_equal(s['kl'], 0)
  np.testing.assert_allclose(s['bits_per_step'], want / (32 * math.log(2)), rtol=1e-5)


def test_log_p_x_given_mu_is_the_teacher_forced_cross_entropy(vae):
  x = _windows(vae)
  mu, sigma = vae.encode(x)
  log_px_z, _ = S.jitted_log_weights(vae.module)(
      vae.params, jnp.asarray(x), jnp.asarray(mu), jnp.zeros_like(jnp.asarray(sigma)),
      jnp.asarray(S.window_keys(x)), jnp.arange(10), jax.random.PRNGKey(0))
  want = -_cross_entropy(vae, x, mu)
  for k in range(10):  # sigma 0: every z_k is mu
    np.testing.assert_allclose(np.asarray(log_px_z)[:, k], want, rtol=1e-5)


def test_estimate_is_the_log_mean_of_the_weights(vae):
  x = _windows(vae, 5)
  k = 100
  s = S.score_tokens(vae, x, samples=k, seed=3)
  mu, sigma = vae.encode(x)
  lpx, lw = S.jitted_log_weights(vae.module)(
      vae.params, jnp.asarray(x), jnp.asarray(mu), jnp.asarray(sigma),
      jnp.asarray(S.window_keys(x)), jnp.arange(k), jax.random.PRNGKey(3))
  lpx, lw = np.asarray(lpx, np.float64), np.asarray(lw, np.float64)
  w = lpx + lw
  m = w.max(1)
  np.testing.assert_allclose(s['log_p'], m + np.log(np.exp(w - m[:, None]).mean(1)), rtol=1e-5)
  np.testing.assert_allclose(s['recon'], -lpx.mean(1), rtol=1e-5)
  np.testing.assert_allclose(s['elbo'], -(s['recon'] + s['kl']))
  # E_q[log p(z) - log q(z|x)] = -KL: the K = 1 estimate's expectation is the ELBO.
  se = lw.std(1) / math.sqrt(k)
  assert (np.abs(lw.mean(1) + s['kl']) < 5 * se + 1e-3).all(), (lw.mean(1), s['kl'], se)
  # Jensen, window by window: log-mean-exp >= mean.
  assert (s['log_p'] >= w.mean(1) - 1e-6).all()


def test_estimate_bounds_the_elbo_and_tightens_with_k(vae):
  x = _windows(vae, 16)
  runs = {k: S.score_tokens(vae, x, samples=k, seed=0) for k in (1, 10, 100)}
  elbo = runs[100]['elbo'].mean()
  means = {k: r['log_p'].mean() for k, r in runs.items()}
  assert means[10] >= elbo and means[100] >= elbo
  assert means[1] <= means[10] <= means[100], means
  assert means[100] - elbo > 0.1  # a real gap on a barely trained model
  # The K = 1 estimate is the ELBO up to sampling noise.
  assert abs(means[1] - runs[1]['elbo'].mean()) < 0.5 * abs(elbo)


def test_batching_does_not_change_scores(vae):
  x = _windows(vae)
  a = S.score_tokens(vae, x, samples=10, seed=1)
  b = S.score_tokens(vae, x, samples=10, seed=1, batch_size=32)  # 3 windows x 10 codes a call
  c = S.score_tokens(vae, x[::-1], samples=10, seed=1)  # in another order
  d = S.score_tokens(vae, x, samples=10, seed=2)
  for f in S.FIELDS:
    np.testing.assert_allclose(a[f], b[f], rtol=1e-5)
    np.testing.assert_allclose(a[f][::-1], c[f], rtol=1e-5)
  assert not np.allclose(a['log_p'], d['log_p'])  # the seed matters


def test_real_windows_beat_random_tokens(vae):
  x = _windows(vae, 16)
  noise = np.random.default_rng(0).integers(0, vae.part_vocab[0], x.shape).astype(np.int32)
  real = S.score_tokens(vae, x, samples=10)
  rand = S.score_tokens(vae, noise, samples=10)
  assert (real['log_p'] > rand['log_p']).all()
  assert real['bits_per_step'].mean() < rand['bits_per_step'].mean() - 0.5


def test_shuffle_time_keeps_the_tokens():
  x = np.random.default_rng(0).integers(0, 9, (5, 32, 3))
  y = S.shuffle_time(x, seed=1)
  assert y.shape == x.shape and not np.array_equal(x, y)
  for i in range(5):  # a permutation of whole steps: every step's parts stay together
    assert sorted(map(tuple, x[i])) == sorted(map(tuple, y[i]))


def test_score_api_takes_files(vae):
  one = S.score(vae, INPUT_A, samples=10, window=2)
  same = S.score_tokens(vae, vae.windows(INPUT_A).tokens[2:3], samples=10)
  assert len(one['log_p']) == 1 and one['log_p'][0] == same['log_p'][0]
  with pytest.raises(ValueError, match='samples'):
    S.score_tokens(vae, _windows(vae, 2), samples=0)


def test_score_cli(vae, tmp_path, capsys):
  folder = tmp_path / 'songs'
  folder.mkdir()
  shutil.copy(INPUT_B, folder / INPUT_B.name)
  (folder / 'notes.txt').write_text('not music')
  (folder / 'broken.mid').write_bytes(b'MThd junk')
  out = tmp_path / 'out'
  assert score_cli.main([f'--workdir={vae.workdir}', str(INPUT_A), str(folder), '--samples=10',
                 f'--out={out}']) == 0
  cap = capsys.readouterr()
  assert 'skipped' in cap.err and 'broken.mid' in cap.err and 'Traceback' not in cap.err
  assert '| freedoom1_D_E1M1.mid |' in cap.out and '| freedoom1_D_E1M2.mid |' in cap.out
  with open(out / 'scores.csv') as f:
    rows = list(csv.DictReader(f))
  n_a, n_b = len(vae.windows(INPUT_A)), len(vae.windows(INPUT_B))
  assert len(rows) == n_a + n_b
  assert {'log_p_nats', 'elbo_nats', 'bits_per_step', 'kl_nats'} <= set(rows[0])
  data = json.load(open(out / 'scores.json'))
  assert data['settings']['samples'] == 10 and len(data['files']) == 2
  assert [len(f['windows']) for f in data['files']] == [n_a, n_b]
  assert data['skipped'][0]['file'].endswith('broken.mid')
  first = data['files'][0]['windows'][0]
  api = S.score_tokens(vae, vae.windows(INPUT_A).tokens[:1], samples=10)  # alone, same value
  assert first['log_p'] == pytest.approx(float(api['log_p'][0]), rel=1e-5)
  assert first['bar'] == int(vae.windows(INPUT_A).bars[0])
  # A split with its time-shuffled copy.
  assert score_cli.main([f'--workdir={vae.workdir}', '--split=eval', '--max_windows=6', '--samples=2',
                 '--shuffle_time', f'--out={tmp_path / "split"}']) == 0
  data = json.load(open(tmp_path / 'split' / 'scores.json'))
  assert [f['file'] for f in data['files']] == ['eval split',
                                                'eval split, steps shuffled in time']
  assert all(len(f['windows']) == 6 for f in data['files'])
  capsys.readouterr()
  # Bad command lines: exit 2; bad inputs: exit 1; one line each, no traceback.
  assert score_cli.main([f'--workdir={vae.workdir}', str(INPUT_A), '--samples=0']) == 2
  assert score_cli.main([f'--workdir={vae.workdir}']) == 2
  assert score_cli.main([f'--workdir={vae.workdir}', str(tmp_path / 'missing.mid')]) == 1
  assert score_cli.main([f'--workdir={vae.workdir}', str(folder / 'broken.mid')]) == 1
  assert score_cli.main([f'--workdir={vae.workdir}', str(INPUT_A), f'--out={out}']) == 1  # not empty
  err = capsys.readouterr().err
  assert 'error: --samples' in err and 'missing.mid: no such file' in err
  assert 'no input had a usable window' in err and 'already holds files' in err
  assert 'Traceback' not in err


def test_trio_and_drums_scores(root):
  for family, steps in (('trio16', 256), ('drums2', 32)):
    model = trained_model.Model.load(smoke_run(family, root))
    x = model.windows(INPUT_A).tokens[:2]
    s = S.score_tokens(model, x, samples=2)
    assert all(s[f].shape == (2,) and np.isfinite(s[f]).all() for f in S.FIELDS)
    np.testing.assert_allclose(s['bits_per_step'], -s['log_p'] / (steps * math.log(2)))
    assert (s['kl'] > 0).all() and (s['recon'] > 0).all()
