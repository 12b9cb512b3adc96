"""Multi-device and multi-process training on CPU."""
import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_step_on_8_devices_equals_step_on_1_device():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8', JAX_PLATFORMS='cpu')
  proc = subprocess.run([sys.executable, str(ROOT / 'tests/scripts/sharded_step.py'), str(ROOT),
                         'melody2,trio16'], env=env, capture_output=True, text=True, timeout=600,
                        cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  for family, r in result.items():
    assert r['n_leaves'] > 5
    # Same global batch, same RNG: only the order of the cross-device sums differs.
    assert abs(r['loss_1'] - r['loss_8']) <= 1e-4 * max(1.0, abs(r['loss_1'])), (family, r)
    assert r['param_diff'] < 1e-5, (family, r)


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_two_processes_on_localhost_train_and_checkpoint(tmp_path, tfds_dir, make_config):
  # Build the dataset once up front so the two processes only read it.
  from mvae_jax import input_pipeline
  input_pipeline.get_source(make_config('melody2:smoke').data, 'train')
  port = _free_port()
  workdir = tmp_path / 'run'
  procs = []
  for pid in range(2):
    env = dict(os.environ, JAX_PLATFORMS='cpu', MVAE_COORDINATOR_ADDRESS=f'127.0.0.1:{port}',
               MVAE_NUM_PROCESSES='2', MVAE_PROCESS_ID=str(pid), TFDS_DATA_DIR=tfds_dir)
    env.pop('XLA_FLAGS', None)
    procs.append(subprocess.Popen(
        [sys.executable, '-m', 'mvae_jax.train', '--config=configs/melody2.py:smoke',
         f'--workdir={workdir}', f'--config.data.data_dir={tfds_dir}'],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outs = []
  for p in procs:
    try:
      outs.append(p.communicate(timeout=400)[0])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail('two-process training did not finish in 400 s')
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  assert '2 devices' in outs[0]  # process 0 reports the global mesh
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['2', '4']
  steps = [json.loads(l)['step'] for l in open(workdir / 'metrics.jsonl') if 'train/loss' in l]
  assert steps == [1, 2, 3, 4]  # written by process 0 only
