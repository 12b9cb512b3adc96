"""Table 1 evaluation (`mvae_jax.eval`) on `smoke` checkpoints and on hand-made batches.

The pure metric functions (`metrics.accuracy_counts`, `summarize`, `slerp`) have their
hand-computed tests in test_metrics.py; here: that `eval_sums` weights padding rows out, that
batches add up exactly, that the free-running greedy variant agrees with `trained_model.Model`, the
trio's per-instrument numbers, the baseline's missing KL, determinism, the Table 1 row and the CLI.
"""
import json
import os
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mvae_jax import eval as eval_lib
from mvae_jax import input_pipeline, parallel
from tests.test_generate import check_midi, run_cli, smoke_run
from data_pipelines import inputs
from mvae_jax import evaluation
from mvae_jax import generation
from mvae_jax import trained_model
from mvae_jax import run as run_lib


@pytest.fixture(scope='session')
def eval_runs_root(tmp_path_factory, tfds_dir):
  del tfds_dir  # exports TFDS_DATA_DIR, where get_source builds the Freedoom datasets
  return tmp_path_factory.mktemp('eval_runs')


def test_padding_rows_count_nothing(eval_runs_root):
  """Rows of weight 0 (the padding of the last batch) count nothing, whatever they hold."""
  loaded = run_lib.load(smoke_run('melody2', eval_runs_root))
  model, params = loaded.model, loaded.params
  step = evaluation._jitted_eval_sums(model, True, parallel.make_mesh())  # as evaluate_run
  rng = np.random.default_rng(0)
  real = rng.integers(0, 130, (4, 32, 1)).astype(np.int32)
  weights = jnp.asarray([1.0] * 4 + [0.0] * 4)
  key = jax.random.PRNGKey(0)
  sums = [step(params, {'tokens': jnp.asarray(np.concatenate(
      [real, rng.integers(0, 130, (4, 32, 1)).astype(np.int32)])), 'weights': weights}, key)
          for _ in range(2)]
  for padded in sums:
    assert float(padded['examples']) == 4.0
    for group in ('next', 'recon', 'recon_greedy'):
      assert float(padded[group]['total'].sum()) == 4 * 32
      assert float(padded[group]['event_total'].sum()) == float((real != 0).sum())
      np.testing.assert_array_equal(padded[group]['class_total'][0],
                                    np.bincount(real.ravel(), minlength=130))
    assert float(padded['kl']) > 0
  # Different junk in the padding rows changes nothing at all.
  for group in ('next', 'recon', 'recon_greedy'):
    for k in ('correct', 'event_correct'):
      np.testing.assert_array_equal(sums[0][group][k], sums[1][group][k])
  np.testing.assert_allclose(float(sums[0]['recon_loss']), float(sums[1]['recon_loss']))
  np.testing.assert_allclose(float(sums[0]['kl']), float(sums[1]['kl']))


def test_evaluate_run_melody2(eval_runs_root, tmp_path, capsys):
  workdir = smoke_run('melody2', eval_runs_root)
  a = evaluation.evaluate_run(workdir, recon_accuracy=True, batch_size=8, num_batches=2, seed=0)
  m = a['metrics']
  assert a['examples'] == 16 and a['step'] == 1 and a['parts'] == ['melody']
  assert not a['baseline']
  for key in ('next_accuracy', 'next_event_accuracy', 'next_class_accuracy', 'recon_accuracy',
              'recon_event_accuracy', 'recon_class_accuracy', 'recon_greedy_accuracy',
              'recon_greedy_event_accuracy', 'recon_greedy_class_accuracy'):
    assert 0.0 <= m[key] <= 1.0, key
  assert m['kl'] > 0 and m['recon_loss'] > 0

  # A fixed seed gives the same numbers twice; summing 2 batches of 8 equals 1 batch of 16
  # for the deterministic greedy variant.
  b = evaluation.evaluate_run(workdir, recon_accuracy=True, batch_size=8, num_batches=2, seed=0)
  assert b['metrics'] == m
  c = evaluation.evaluate_run(workdir, recon_accuracy=True, batch_size=16, num_batches=1, seed=0)
  assert c['examples'] == 16
  assert c['metrics']['recon_greedy_accuracy'] == pytest.approx(m['recon_greedy_accuracy'],
                                                                abs=1e-6)

  # The same 16 eval windows through the generation API (encode -> mu -> greedy decode).
  config = run_lib.load(workdir).config
  source = input_pipeline.get_source(config.data, 'eval')
  targets = np.stack([input_pipeline.to_parts(source[i]['tokens']) for i in range(16)])
  model = trained_model.Model.load(workdir)
  rec = model.reconstruct_tokens(targets)
  assert m['recon_greedy_accuracy'] == pytest.approx(float((rec == targets).mean()), abs=0.01)
  event = targets != 0
  assert m['recon_greedy_event_accuracy'] == pytest.approx(
      float((rec == targets)[event].mean()), abs=0.02)

  # Generation from eval-split examples (--from_eval) uses the same windows.
  paths = generation.run_command('interpolate', workdir=workdir, from_eval='0,1', steps=3,
                               greedy=True, out=str(tmp_path / 'interp'))
  assert len([p for p in paths if p.endswith('.mid')]) == 6
  check_midi(tmp_path / 'interp' / 'input_a.mid', model.spec, expected_tokens=targets[0])
  check_midi(tmp_path / 'interp' / 'input_b.mid', model.spec, expected_tokens=targets[1])
  paths = generation.run_command('reconstruct', workdir=workdir, from_eval='2',
                               out=str(tmp_path / 'recon'))
  assert any(p.endswith('reconstruction.mid') for p in paths)
  with pytest.raises(inputs.InputError, match='does not exist'):
    generation.run_command('reconstruct', workdir=workdir, from_eval='100000')

  # The CLI prints a Table 1 row and writes JSON next to the checkpoints.
  assert run_cli(eval_lib, [f'--workdir={workdir}', '--recon_accuracy', '--batch_size=8',
                            '--num_batches=2']) == 0
  out = capsys.readouterr().out
  assert evaluation.table1_row(a) in out
  # The majority-class level is printed beside the accuracies, and the JSON path is absolute.
  assert re.search(rf'^majority class level +{m["majority_accuracy"]:.3f}  <- always predicting '
                   'the most common class', out, re.M)
  assert f'wrote {os.path.join(os.path.abspath(workdir), "eval_1.json")}' in out
  saved = json.load(open(os.path.join(workdir, 'eval_1.json')))
  assert saved['metrics'] == m
  path = tmp_path / 'x' / 'r.json'
  assert run_cli(eval_lib, [f'--workdir={workdir}', '--batch_size=8', '--num_batches=1',
                            f'--output={path}']) == 0
  assert 'recon_accuracy' not in json.load(open(path))['metrics']


def test_evaluate_trio_per_instrument(eval_runs_root):
  r = evaluation.evaluate_run(smoke_run('trio16', eval_runs_root), recon_accuracy=True,
                            batch_size=8, num_batches=1)
  m = r['metrics']
  assert r['parts'] == ['lead', 'bass', 'drums']
  for group in ('next', 'recon', 'recon_greedy'):
    for kind in ('accuracy', 'event_accuracy', 'class_accuracy'):
      for part in ('', '/lead', '/bass', '/drums'):
        value = m[f'{group}_{kind}{part}']
        assert value is None or 0.0 <= value <= 1.0
  row = evaluation.table1_row(r)
  assert row.startswith('| trio16:smoke (step 1) | lead ') and ', bass ' in row
  assert ', drums ' in row and '(KL ' in row


def test_evaluate_baseline_has_no_kl(eval_runs_root):
  r = evaluation.evaluate_run(smoke_run('melody2,baseline', eval_runs_root), recon_accuracy=True,
                            batch_size=8, num_batches=1)
  assert r['baseline'] and r['metrics']['kl'] is None
  assert 0.0 <= r['metrics']['recon_accuracy'] <= 1.0  # free-running generation vs targets
  assert evaluation.table1_row(r).count('/') == 1  # Next / Recon, no KL


def test_table1_row_layout():
  base = {'family': 'melody2', 'preset': 'small', 'step': 3000, 'parts': ['melody']}
  row = evaluation.table1_row(dict(base, metrics={'next_accuracy': 0.9861, 'recon_accuracy': 0.951,
                                                'kl': 72.94}))
  assert row == '| melody2:small (step 3000) | 0.986 / 0.951 / 72.9 |'
  row = evaluation.table1_row(dict(base, metrics={'next_accuracy': 0.7231, 'kl': None}))
  assert row == '| melody2:small (step 3000) | 0.723 / - |'
  trio = dict(base, family='trio16', parts=['lead', 'bass', 'drums'], metrics={
      'next_accuracy/lead': 0.818, 'recon_accuracy/lead': 0.653, 'next_accuracy/bass': 0.882,
      'recon_accuracy/bass': 0.692, 'next_accuracy/drums': 0.926, 'recon_accuracy/drums': 0.808,
      'kl': 177.4})
  assert evaluation.table1_row(trio) == ('| trio16:small (step 3000) | lead 0.818 / 0.653, bass '
                                       '0.882 / 0.692, drums 0.926 / 0.808 (KL 177.4) |')


def test_cli_errors(eval_runs_root, tmp_path, capsys):
  assert run_cli(eval_lib, [f'--workdir={tmp_path / "nowhere"}']) == 1
  assert 'not a mvae_jax run directory' in capsys.readouterr().err
  workdir = smoke_run('melody2', eval_runs_root)
  empty = tmp_path / 'empty'
  empty.mkdir()
  shutil.copy(os.path.join(workdir, 'config.json'), empty / 'config.json')
  assert run_cli(eval_lib, [f'--workdir={empty}']) == 1
  assert 'holds no checkpoint' in capsys.readouterr().err
  edited = tmp_path / 'edited'
  shutil.copytree(workdir, edited)
  config = json.loads((edited / 'config.json').read_text())
  config['model']['z_size'] = 12
  (edited / 'config.json').write_text(json.dumps(config))
  assert run_cli(eval_lib, [f'--workdir={edited}']) == 1
  err = capsys.readouterr().err
  assert 'does not match the model' in err and 'encoder/mu/kernel' in err
  assert run_cli(eval_lib, ['--workdir', str(workdir), 'extra']) == 2


def test_a_folder_that_is_not_a_run_gets_nothing_and_results_are_never_overwritten(
    eval_runs_root, tmp_path, capsys):
  stray = tmp_path / 'not_a_run'
  stray.mkdir()
  assert run_cli(eval_lib, [f'--workdir={stray}']) == 1
  assert os.listdir(stray) == []  # no eval.log written into it
  assert run_cli(eval_lib, [f'--workdir={stray}', '--num_batches=-1']) == 2
  assert '--num_batches must be >= 0' in capsys.readouterr().err
  workdir = shutil.copytree(smoke_run('melody2', eval_runs_root), tmp_path / 'run',
                            ignore=shutil.ignore_patterns('eval_*.json'))
  for expected in ('eval_1.json', 'eval_1-2.json'):
    assert run_cli(eval_lib, [f'--workdir={workdir}', '--num_batches=1']) == 0
    assert f'wrote {workdir / expected}' in capsys.readouterr().out
  assert json.load(open(workdir / 'eval_1.json'))['step'] == 1
