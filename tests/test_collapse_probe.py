"""experiments/collapse_probe.py: the saturation measurements behind docs/RESULTS.md's collapse
analysis, on a real (smoke-size, 2-step) hierarchical trio run."""
import json
import pathlib
import sys

import jax
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments import collapse_probe  # pylint: disable=g-import-not-at-top
from mvae_jax import input_pipeline
from mvae_jax import run as run_lib
from mvae_jax import trainer


@pytest.fixture(scope='module')
def trio_run(make_config, tmp_path_factory):
  config = make_config('trio16:smoke', **{'train.num_steps': 2, 'train.checkpoint_every_steps': 1,
                                          'train.keep_checkpoints': 2, 'eval.every_steps': 0})
  workdir = str(tmp_path_factory.mktemp('probe') / 'run')
  trainer.train_and_evaluate(config, workdir)
  return workdir


def test_probe_every_checkpoint_to_json(trio_run, tmp_path, capsys):
  out = tmp_path / 'probe.json'
  assert collapse_probe.main([f'--workdir={trio_run}', '--batch=4', f'--out_json={out}']) == 0
  rows = json.loads(out.read_text())
  assert [r['step'] for r in rows] == [1, 2]
  for r in rows:
    for key in ('cond_sat', 'bot_init_sat', 'bot_gate_sat', 'acc'):
      assert 0.0 <= r[key] <= 1.0, key
    assert r['kl'] >= 0 and r['sigma'] > 0 and r['loss'] > 0
    # A fresh model starts near the zero state: nothing saturated yet.
    assert r['bot_init_sat'] == 0.0 and r['bot_gate_sat'] == 0.0
  assert capsys.readouterr().out.count('step=') == 2


def test_probe_sees_a_saturated_decoder(trio_run):
  """Blowing up the conductor's embedding layer (what a collapse does) shows as saturation."""
  loaded = run_lib.load(trio_run)
  config, model, params = loaded.config, loaded.model, loaded.params
  source = input_pipeline.get_source(config.data, 'train')
  tokens = next(input_pipeline.eval_batches(source, global_batch=4, num_batches=1,
                                            process_index=0, process_count=1))['tokens']
  healthy = collapse_probe.probe(model, params, tokens)
  emb = params['decoder']['conductor']['embedding']
  broken = jax.tree_util.tree_map(lambda x: x, params)
  broken['decoder']['conductor']['embedding'] = {**emb, 'bias': emb['bias'] + 50.0}
  sick = collapse_probe.probe(model, broken, tokens)
  assert sick['c_abs'] > healthy['c_abs'] + 40
  assert sick['bot_gate_sat'] > 0.5  # layer 0's gates take c through weights of O(0.1)
  # the initial-state kernel starts at N(0, 0.001^2): after 2 steps even c ~ 50 stays below 3
  assert sick['bot_init_sat'] >= healthy['bot_init_sat']
  np.testing.assert_allclose(sick['kl'], healthy['kl'], rtol=1e-5)  # the encoder is untouched
  assert sick['c_spread'] == pytest.approx(healthy['c_spread'], abs=1e-4)


def test_probe_refuses_a_flat_model(make_config, tmp_path):
  config = make_config('melody2:smoke')
  model = run_lib.create_model(config.model)
  with pytest.raises(ValueError, match='hierarchical'):
    collapse_probe.probe(model, {}, np.zeros((1, 32, 1), np.int32))
