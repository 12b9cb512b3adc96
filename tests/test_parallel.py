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


def test_sigterm_to_one_of_two_processes_stops_both_at_one_saved_step(tmp_path, make_config):
  """Multi-host safety: a MIDI folder's fingerprint is taken on process 0 and given to the other;
  SIGTERM to process 0 alone reaches process 1 through the training step, so both save the same
  step, which is sealed, and both stop (no process waits forever in a save)."""
  import re
  import signal
  import time
  from data_pipelines import conversion
  from mvae_jax import checkpoints
  from mvae_jax import run as run_lib
  folder, data_dir = tmp_path / 'midi', tmp_path / 'tfds'
  folder.mkdir()
  for name in ('freedoom1_D_E1M1.mid', 'freedoom1_D_E1M2.mid'):
    (folder / name).write_bytes((pathlib.Path(conversion.FREEDOOM_DIR) / name).read_bytes())
  overrides = {'data.source': 'folder', 'data.midi_dir': str(folder),
               'data.data_dir': str(data_dir), 'eval.every_steps': 0}
  from mvae_jax import input_pipeline
  input_pipeline.get_source(make_config('melody2:smoke', **overrides).data, 'train')
  port = _free_port()
  workdir = tmp_path / 'run'
  procs = []
  for pid in range(2):
    env = dict(os.environ, JAX_PLATFORMS='cpu', MVAE_COORDINATOR_ADDRESS=f'127.0.0.1:{port}',
               MVAE_NUM_PROCESSES='2', MVAE_PROCESS_ID=str(pid))
    env.pop('XLA_FLAGS', None)
    procs.append(subprocess.Popen(
        [sys.executable, '-m', 'mvae_jax.train', '--config=configs/melody2.py:smoke',
         f'--workdir={workdir}', '--config.train.num_steps=100000',
         '--config.train.checkpoint_every_steps=5', '--config.train.log_every_steps=100000',
         *[f'--config.{k}={v}' for k, v in overrides.items()]],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  try:
    deadline = time.time() + 400
    ckpt = workdir / 'checkpoints'
    while not (ckpt.exists() and any(d.isdigit() for d in os.listdir(ckpt))):
      assert time.time() < deadline and all(p.poll() is None for p in procs), 'no checkpoint'
      time.sleep(0.2)
    procs[0].send_signal(signal.SIGTERM)
    errs = [p.communicate(timeout=300)[1] for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  lines = [[line for line in err.splitlines() if line.startswith('interrupted')] for err in errs]
  assert [p.returncode for p in procs] == [143, 143], errs
  assert lines[0] == lines[1] and len(lines[0]) == 1, errs
  step = int(re.fullmatch(r'interrupted at step (\d+); saved; rerun the same command to resume',
                          lines[0][0]).group(1))
  steps = sorted(int(d) for d in os.listdir(workdir / 'checkpoints') if d.isdigit())
  assert steps[-1] == step
  for s in steps:
    assert checkpoints.verify(str(workdir / 'checkpoints' / str(s))) is None
  record = run_lib.load_dataset_record(str(workdir))
  assert record['fingerprint'] == conversion.folder_fingerprint(str(folder), str(data_dir)).value
