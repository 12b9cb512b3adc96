"""End-to-end training through `train_and_evaluate` on real (Freedoom) windows, `smoke` sizes."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from mvae_jax import checkpoints
from mvae_jax import trainer
from mvae_jax import run as run_lib

# trio4:smoke has the hierarchical encoder (4 one-bar segments).
FAMILIES = ('melody2', 'drums2', 'melody16', 'melody32', 'trio16', 'trio4')


def read_jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


@pytest.mark.parametrize('family', FAMILIES)
def test_smoke_train_evaluate_and_resume(family, make_config, tmp_path):
  config = make_config(f'{family}:smoke')
  out = trainer.train_and_evaluate(config, str(tmp_path))
  for key in ('train/loss', 'train/loss/recon', 'train/loss/kl', 'train/accuracy',
              'train/learning_rate', 'train/beta', 'train/p_sample', 'eval/recon_loss',
              'eval/next_accuracy'):
    assert key in out and np.isfinite(out[key]), key
  assert 0.0 <= out['eval/next_accuracy'] <= 1.0
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['2', '4']
  assert any(f.startswith('events') for f in os.listdir(tmp_path / 'tensorboard'))
  steps = [r['step'] for r in read_jsonl(tmp_path / 'metrics.jsonl') if 'train/loss' in r]
  assert steps == [1, 2, 3, 4]
  saved = json.load(open(tmp_path / 'config.json'))
  assert saved['model']['z_size'] == config.model.z_size

  # Asking for more steps resumes from step 4 instead of starting over.
  more = make_config(f'{family}:smoke', **{'train.num_steps': 6})
  trainer.train_and_evaluate(more, str(tmp_path))
  steps = [r['step'] for r in read_jsonl(tmp_path / 'metrics.jsonl') if 'train/loss' in r]
  assert steps == [1, 2, 3, 4, 5, 6]
  assert '6' in os.listdir(tmp_path / 'checkpoints')


def _params(workdir):
  loaded = run_lib.load(str(workdir))
  params, step = loaded.params, loaded.step
  return step, jax.device_get(params)


def test_resumed_run_equals_uninterrupted_run(make_config, tmp_path):
  whole = make_config('melody2:smoke', **{'train.num_steps': 4})
  trainer.train_and_evaluate(whole, str(tmp_path / 'whole'))
  first = make_config('melody2:smoke', **{'train.num_steps': 2})
  trainer.train_and_evaluate(first, str(tmp_path / 'split'))
  trainer.train_and_evaluate(whole, str(tmp_path / 'split'))
  step_a, a = _params(tmp_path / 'whole')
  step_b, b = _params(tmp_path / 'split')
  assert step_a == step_b == 4
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_changed_model_config_is_refused(make_config, tmp_path):
  trainer.train_and_evaluate(make_config('melody2:smoke'), str(tmp_path))
  other = make_config('melody2:smoke', **{'model.z_size': 12})
  with pytest.raises(ValueError, match='different config.model'):
    trainer.train_and_evaluate(other, str(tmp_path))


def test_non_finite_loss_stops_with_the_step(make_config, tmp_path):
  config = make_config('melody2:smoke', **{
      'optim.learning_rate': 1e30, 'optim.min_learning_rate': 1e30, 'optim.clip_to_zero_norm': 1e38,
      'train.num_steps': 6})
  with pytest.raises(trainer.NonFiniteLossError, match=r'at step \d'):
    trainer.train_and_evaluate(config, str(tmp_path))


def test_kill_9_then_resume_matches_uninterrupted(make_config, tmp_path, tfds_dir):
  """A run killed with SIGKILL continues from its last checkpoint with the same numbers."""
  workdir = tmp_path / 'killed'
  cmd = [sys.executable, '-m', 'mvae_jax.train', '--config=configs/melody2.py:smoke',
         f'--workdir={workdir}', f'--config.data.data_dir={tfds_dir}',
         '--config.train.num_steps=100000', '--config.train.checkpoint_every_steps=3',
         '--config.eval.every_steps=100000']
  proc = subprocess.Popen(cmd, cwd=os.path.dirname(os.path.dirname(__file__)),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  ckpt = workdir / 'checkpoints'
  try:
    while time.time() < deadline:
      done = [int(d) for d in os.listdir(ckpt) if d.isdigit()] if ckpt.exists() else []
      if any(d >= 6 for d in done):
        break
      assert proc.poll() is None, 'training process died'
      time.sleep(0.2)
    else:
      pytest.fail('no checkpoint within 300 s')
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  mgr = checkpoints.manager(str(workdir), read_only=True, async_save=False)
  last = mgr.latest_step()
  mgr.close()
  assert last is not None and last >= 6
  target = last + 2
  overrides = {'train.num_steps': target, 'train.checkpoint_every_steps': 3,
               'eval.every_steps': 100000}
  trainer.train_and_evaluate(make_config('melody2:smoke', **overrides), str(workdir))
  trainer.train_and_evaluate(make_config('melody2:smoke', **overrides), str(tmp_path / 'whole'))
  step_a, a = _params(workdir)
  step_b, b = _params(tmp_path / 'whole')
  assert step_a == step_b == target
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_bfloat16_emulation_is_named_only_on_cpus_without_native_support():
  assert trainer.emulated_bfloat16('bfloat16', 'cpu', ['avx2', 'fma'])
  assert not trainer.emulated_bfloat16('bfloat16', 'cpu', ['avx512f', 'avx512_bf16'])
  assert not trainer.emulated_bfloat16('bfloat16', 'cpu', ['amx_bf16'])
  assert not trainer.emulated_bfloat16('bfloat16', 'gpu', [])
  assert not trainer.emulated_bfloat16('float32', 'cpu', [])


def test_a_finished_run_says_it_is_complete(make_config, tmp_path, capsys):
  config = make_config('melody2:smoke', **{'train.num_steps': 2, 'eval.every_steps': 0})
  trainer.train_and_evaluate(config, str(tmp_path))
  capsys.readouterr()
  assert trainer.train_and_evaluate(config, str(tmp_path)) == {}
  out = capsys.readouterr().out
  assert 'resuming' not in out
  assert out.strip() == (f'{tmp_path} is complete: trained 2 of 2 steps, nothing to do. To train '
                         'longer, run the same command with --config.train.num_steps=N (N > 2); '
                         'it resumes from step 2.')
  assert not (tmp_path / 'train.lock').exists()
