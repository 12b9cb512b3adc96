"""Nothing silently wrong (issue 25): a MIDI folder's dataset is named by its content, a checkpoint
is sealed as it commits and an unsealed one is never trusted, SIGTERM / SIGINT save the step being
trained, every float of a config is finite, generation arguments are checked first, and a full
disk is one line. `smoke` runs of a few steps; the faults hit real processes and real files.
"""
import hashlib
import importlib.util
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from data_pipelines import build, conversion
from mvae_jax import (checkpoints, config_lib, generate, input_pipeline, parallel,
                      trained_model, trainer)
from mvae_jax import run as run_lib
from tests.test_generate import run_cli as run_cli_in_process
from tests.test_generate import smoke_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONWARNINGS='ignore', PYTHONPATH=ROOT)


def steps_of(workdir):
  folder = os.path.join(workdir, 'checkpoints')
  return sorted(int(d) for d in os.listdir(folder) if d.isdigit())


def params_of(workdir):
  loaded = run_lib.load(str(workdir))
  return loaded.step, jax.device_get(loaded.params)


def assert_same_params(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


# ----------------------------------------------------------------------------- 1. folders

def _train_side_files(n):
  """n Freedoom files (name, bytes) with 2-bar melody windows that the 10% eval rule puts in the
  train split, so a folder of them always has a train split."""
  out = []
  for name in sorted(os.listdir(conversion.FREEDOOM_DIR)):
    data = open(os.path.join(conversion.FREEDOOM_DIR, name), 'rb').read()
    if not conversion.is_eval(hashlib.md5(data).hexdigest()) and name.startswith('freedoom1'):
      out.append((name, data))
  return out[:n]


def test_each_folder_builds_its_own_dataset_and_a_run_keeps_its_own(make_config, tmp_path,
                                                                      capsys):
  files = _train_side_files(5)
  folders = {}
  for label, chosen in (('A', files[:2]), ('B', files[2:4])):
    folder = tmp_path / label
    folder.mkdir()
    for name, data in chosen:
      (folder / name).write_bytes(data)
    folders[label] = str(folder)
  data_dir = str(tmp_path / 'tfds')

  def config(label, steps):
    return make_config('melody2:smoke', **{
        'data.source': 'folder', 'data.midi_dir': folders[label], 'data.data_dir': data_dir,
        'data.workers': 1, 'train.num_steps': steps, 'eval.every_steps': 0})

  def paths(fingerprint):
    src = build.data_source('folder', 'mel_2bar', 'paper', 'train', data_dir,
                            fingerprint=fingerprint)
    return {bytes(src[i]['path']).decode() for i in range(len(src))}

  run_a, run_b = str(tmp_path / 'run_a'), str(tmp_path / 'run_b')
  build.build_all('folder', ['mel_2bar'], 'paper', data_dir, folders['A'], workers=0)
  trainer.train_and_evaluate(config('A', 2), run_a)
  trainer.train_and_evaluate(config('B', 2), run_b)  # the same data dir: not A's windows
  rec_a, rec_b = run_lib.load_dataset_record(run_a), run_lib.load_dataset_record(run_b)
  assert rec_a['fingerprint'] != rec_b['fingerprint'] and rec_a['path'] != rec_b['path']
  assert rec_a['midi_dir'] == folders['A'] and rec_b['midi_dir'] == folders['B']
  assert paths(rec_a['fingerprint']) == set(os.listdir(folders['A']))
  assert paths(rec_b['fingerprint']) == set(os.listdir(folders['B']))
  meta = build.data_source_builder('folder', 'mel_2bar', 'paper', data_dir,
                                   fingerprint=rec_b['fingerprint']).info.metadata
  assert meta['fingerprint'] == rec_b['fingerprint'] and meta['midi_dir'] == folders['B']
  assert not [f for f in os.listdir(data_dir) if f.endswith('.lock')]  # build locks removed

  # Building B again converts nothing and says so.
  rep = build.build_all('folder', ['mel_2bar'], 'paper', data_dir, folders['B'], workers=0)
  assert list(rep['already_built']) == ['mel_2bar'] and rep['kinds'] == {}

  # A changes (a file added): a new build of A is a new dataset ...
  name, data = files[4]
  (tmp_path / 'A' / name).write_bytes(data)
  now = conversion.folder_fingerprint(folders['A'], data_dir).value
  assert now != rec_a['fingerprint']
  rep = build.build_all('folder', ['mel_2bar'], 'paper', data_dir, folders['A'], workers=0)
  assert rep['fingerprint'] == now and not rep['already_built']
  assert paths(now) == set(os.listdir(folders['A']))
  # ... and run A keeps its own: resuming (and eval, generate) open the recorded dataset, and
  # say that the folder changed.
  capsys.readouterr()
  dataset = input_pipeline.prepare(config('A', 3).data, rec_a['fingerprint'])
  assert dataset.fingerprint == rec_a['fingerprint'] and dataset.path == rec_a['path']
  assert (f'{folders["A"]} changed since this run started (fingerprint {rec_a["fingerprint"]}, '
          f'now {now}); the run keeps its own dataset') in capsys.readouterr().err
  source = input_pipeline.get_source(config('A', 3).data, 'train', rec_a['fingerprint'])
  assert {bytes(source[i]['path']).decode() for i in range(len(source))} == {
      n for n, _ in files[:2]}

  # Its dataset gone and the folder changed: no silent switch to other data.
  shutil.rmtree(os.path.dirname(rec_a['path']))
  with pytest.raises(input_pipeline.DatasetChangedError, match='has changed since'):
    trainer.train_and_evaluate(config('A', 4), run_a)
  assert steps_of(run_a)[-1] == 2
  assert run_lib.load_dataset_record(run_a) == rec_a


def test_fingerprint_is_the_content_not_the_times(tmp_path):
  [(name, data)] = _train_side_files(1)
  a, b = tmp_path / 'a', tmp_path / 'b'
  a.mkdir()
  (a / name).write_bytes(data)
  first = conversion.folder_fingerprint(str(a), str(tmp_path))
  assert first.hashed == 1
  again = conversion.folder_fingerprint(str(a), str(tmp_path))
  assert again.value == first.value and again.hashed == 0  # the cache: nothing read
  shutil.copytree(a, b)  # a copy: other times, same content
  os.utime(b / name, (1, 1))
  assert conversion.folder_fingerprint(str(b), str(tmp_path)).value == first.value
  raw = bytearray(data)
  raw[-5] ^= 1  # same size, one bit
  stat = os.stat(a / name)
  (a / name).write_bytes(bytes(raw))
  os.utime(a / name, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime too
  assert conversion.folder_fingerprint(str(a), str(tmp_path)).value != first.value
  filtered = conversion.ConvertOptions(filters=conversion.midi.Filters(max_parts=3))
  assert conversion.folder_fingerprint(str(b), str(tmp_path), filtered).value != first.value


# ----------------------------------------------------------------------------- 2. sealing

@pytest.fixture(scope='module')
def trained(make_config, tmp_path_factory):
  """A 4-step melody2:smoke run with checkpoints 2 and 4 (copy it before changing it)."""
  workdir = str(tmp_path_factory.mktemp('trained'))
  trainer.train_and_evaluate(make_config('melody2:smoke', **{'eval.every_steps': 0}), workdir)
  return workdir


def copy_run(src, dst):
  shutil.copytree(src, dst)
  return str(dst)


def _flip_bytes(workdir, step):
  """Four bytes in the middle of the step's biggest file, each with one bit flipped: the values
  stay finite (the weights just change), as a bad disk or a stray write would leave them."""
  folder = os.path.join(workdir, 'checkpoints', str(step), 'state')
  files = [os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs]
  biggest = max(files, key=os.path.getsize)
  with open(biggest, 'r+b') as f:
    f.seek(os.path.getsize(biggest) // 2)
    raw = f.read(4)
    f.seek(os.path.getsize(biggest) // 2)
    f.write(bytes(b ^ 1 for b in raw))


def test_an_unsealed_newest_step_with_flipped_bytes_is_never_used(trained, make_config, tmp_path,
                                                                  capsys):
  for step in steps_of(trained):  # sealed as they committed, not at the next save
    assert checkpoints.verify(os.path.join(trained, 'checkpoints', str(step))) is None
  workdir = copy_run(trained, tmp_path / 'run')
  _, healthy = params_of(workdir)
  # As a run of an older version killed before it sealed step 4, which then got damaged.
  os.remove(os.path.join(workdir, 'checkpoints', '4', checkpoints.CHECKSUMS))
  _flip_bytes(workdir, 4)
  capsys.readouterr()

  assert run_lib.load(workdir).step == 2  # eval's and generate's way in
  warned = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
  assert len(warned) == 1 and 'checkpoints/4 is not sealed' in warned[0]
  assert warned[0].endswith('using step 2')
  assert trained_model.Model.load(workdir).step == 2

  # Training resumes from 2, sets 4 aside and reaches exactly the uninterrupted step 4.
  trainer.train_and_evaluate(make_config('melody2:smoke', **{'eval.every_steps': 0}), workdir)
  assert os.listdir(os.path.join(workdir, checkpoints.DAMAGED_DIR)) == ['4']
  step, params = params_of(workdir)
  assert step == 4
  assert_same_params(params, healthy)
  assert checkpoints.verify(os.path.join(workdir, 'checkpoints', '4')) is None


def test_divergence_right_after_resuming_an_unverified_step_blames_it(trained, make_config,
                                                                      tmp_path):
  workdir = copy_run(trained, tmp_path / 'run')
  config = run_lib.load_config(workdir)
  model = run_lib.create_model(config.model)
  abstract = run_lib._abstract_state(  # pylint: disable=protected-access
      config, model, parallel.replicated(parallel.make_mesh()))
  mgr = checkpoints.manager(workdir, async_save=False)
  state, data, _ = checkpoints.restore(mgr, abstract, 4)
  mgr.close()
  shutil.rmtree(os.path.join(workdir, 'checkpoints', '4'))
  mgr = checkpoints.manager(workdir, async_save=False)
  # Finite but absurd weights (their squared norm overflows): the next step cannot be finite.
  checkpoints.save(mgr, 4, state.replace(params=jax.tree.map(lambda x: x * 1e37, state.params)),
                   data)
  mgr.wait_until_finished()
  mgr.close()
  for step in (2, 4):  # no sealed step at all: the newest unsealed one is used, unverified
    os.remove(os.path.join(workdir, 'checkpoints', str(step), checkpoints.CHECKSUMS))
  more = make_config('melody2:smoke', **{'eval.every_steps': 0, 'train.num_steps': 6})
  with pytest.raises(trainer.NonFiniteLossError,
                     match=r'1 step\(s\) after resuming from checkpoint 4, which has no checksums.*'
                           r'is the suspect.*rerun the same command to resume from the '
                           r'checkpoint before it'):
    trainer.train_and_evaluate(more, workdir)
  assert os.listdir(os.path.join(workdir, checkpoints.DAMAGED_DIR)) == ['4']
  assert steps_of(workdir) == [2]


# ----------------------------------------------------------------------------- 3. signals

def _start_training(workdir, tfds_dir, log_every):
  cmd = [sys.executable, '-m', 'mvae_jax.train', '--config=configs/melody2.py:smoke',
         f'--workdir={workdir}', f'--config.data.data_dir={tfds_dir}',
         '--config.train.num_steps=100000', '--config.train.checkpoint_every_steps=5',
         '--config.eval.every_steps=0', f'--config.train.log_every_steps={log_every}']
  return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _interrupt_after(proc, workdir, step, signum):
  """Sends `signum` once a checkpoint beyond `step` exists; returns (exit status, stderr)."""
  deadline = time.time() + 300
  ckpt = workdir / 'checkpoints'
  try:
    while time.time() < deadline:
      if ckpt.exists() and any(d.isdigit() and int(d) > step for d in os.listdir(ckpt)):
        break
      assert proc.poll() is None, proc.communicate()[1]
      time.sleep(0.2)
    else:
      pytest.fail('no checkpoint within 300 s')
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  return proc.returncode, err


def test_sigterm_and_sigint_save_the_current_step_and_resume_exactly(make_config, tfds_dir,
                                                                     tmp_path):
  workdir = tmp_path / 'run'
  saved = []
  # Logging every step (the second run) checks each step's stop flag at once; logging rarely
  # (the first) checks it one step late.
  for signum, status, log_every in ((signal.SIGTERM, 143, 100000), (signal.SIGINT, 130, 1)):
    code, err = _interrupt_after(_start_training(workdir, tfds_dir, log_every), workdir,
                                 saved[-1] if saved else 0, signum)
    lines = [line for line in err.splitlines()
             if line.strip() and not line.startswith('[freedoom ')]  # a first build's progress
    assert code == status and len(lines) == 1, err  # no traceback
    hit = re.fullmatch(r'interrupted at step (\d+); saved; rerun the same command to resume',
                       lines[0])
    assert hit, lines
    saved.append(int(hit.group(1)))
    assert steps_of(workdir)[-1] == saved[-1]  # the step it was training, not the last multiple
    for step in steps_of(workdir):
      assert checkpoints.verify(str(workdir / 'checkpoints' / str(step))) is None
    assert not (workdir / 'train.lock').exists()
  assert saved[1] > saved[0]
  target = saved[1] + 2
  overrides = {'train.num_steps': target, 'train.checkpoint_every_steps': 5,
               'eval.every_steps': 0}
  trainer.train_and_evaluate(make_config('melody2:smoke', **overrides), str(workdir))
  trainer.train_and_evaluate(make_config('melody2:smoke', **overrides), str(tmp_path / 'whole'))
  (step_a, a), (step_b, b) = params_of(workdir), params_of(tmp_path / 'whole')
  assert step_a == step_b == target
  assert_same_params(a, b)


# ----------------------------------------------------------------------------- 4. configs

FLOAT_FIELDS = sorted(path for path, value in config_lib.leaves(config_lib.base_config()).items()
                      if isinstance(value, float))


@pytest.mark.parametrize('value', [math.nan, math.inf, -math.inf])
def test_every_float_field_must_be_finite(value, make_config):
  assert 'optim.decay_rate' in FLOAT_FIELDS and 'train.ss_rate' in FLOAT_FIELDS
  for path in FLOAT_FIELDS:
    config = make_config('melody2:smoke', **{path: value})
    with pytest.raises(config_lib.ConfigError,
                       match=rf'^config field {re.escape(path)} must be a finite number'):
      config_lib.validate(config)


def test_nan_on_the_command_line_is_one_line_and_writes_nothing(tmp_path, tfds_dir):
  workdir = tmp_path / 'run'
  proc = subprocess.run(
      [sys.executable, '-m', 'mvae_jax.train', '--config=configs/melody2.py:smoke',
       f'--workdir={workdir}', f'--config.data.data_dir={tfds_dir}',
       '--config.optim.decay_rate=nan'], cwd=ROOT, env=ENV, capture_output=True, text=True,
      timeout=300)
  assert proc.returncode == 2
  assert proc.stderr.strip() == ('error: config field optim.decay_rate must be a finite number, '
                                 'got nan')
  assert not workdir.exists()


# ----------------------------------------------------------------------------- 5. generation

@pytest.fixture(scope='module')
def runs_root(tmp_path_factory):
  return tmp_path_factory.mktemp('smoke_runs')


def test_generation_arguments_are_checked_before_any_work(runs_root, tmp_path, capsys):
  workdir = smoke_run('melody2', runs_root)
  samples = os.path.join(workdir, 'samples')
  for args, expected in (
      (['sample', '--temperature=-1'], '--temperature must be a finite number >= 0'),
      (['sample', '--temperature=nan'], '--temperature must be a finite number >= 0'),
      (['sample', '--temperature=inf'], '--temperature must be a finite number >= 0'),
      (['sample', '--num=0'], '--num must be a whole number >= 1'),
      (['sample', '--num=-3'], '--num must be a whole number >= 1'),
      (['interpolate', '--from_eval=0,1', '--steps=1'], '--steps must be a whole number >= 2'),
      (['reconstruct'], 'reconstruct needs --input')):
    assert run_cli_in_process(generate, [*args, f'--workdir={workdir}']) == 2, args
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith('error: ') and expected in err[0], err
  assert not os.path.exists(samples)  # nothing written

  # --temperature=0 is greedy decoding, and says so.
  for flag, out in (('--temperature=0', 't0'), ('--greedy', 'greedy')):
    assert run_cli_in_process(generate, ['sample', f'--workdir={workdir}', '--num=3', flag,
                                         f'--out={tmp_path / out}']) == 0
  assert 'greedy decoding' in capsys.readouterr().err
  for name in ('sample_000.mid', 'sample_001.mid', 'sample_002.mid'):
    assert (tmp_path / 't0' / name).read_bytes() == (tmp_path / 'greedy' / name).read_bytes()
  model = trained_model.Model.load(workdir)
  np.testing.assert_array_equal(model.sample_tokens(3, temperature=0),
                                model.sample_tokens(3, greedy=True))
  with pytest.raises(ValueError, match='temperature must be a finite number'):
    model.sample(1, temperature=math.nan)
  with pytest.raises(ValueError, match='num must be a whole number >= 1'):
    model.sample(0)

  # A command that fails after choosing its folder leaves no folder behind.
  if importlib.util.find_spec('midirenderer') is None:
    assert run_cli_in_process(generate, ['sample', f'--workdir={workdir}', '--num=1', '--wav',
                                         f'--out={tmp_path / "wav"}']) == 1
    assert 'midirenderer' in capsys.readouterr().err
    assert not (tmp_path / 'wav').exists()


# ----------------------------------------------------------------------------- full disk

def _tmpfs_works():
  if not shutil.which('unshare'):
    return False
  probe = subprocess.run(['unshare', '-rm', 'sh', '-c', 'mount -t tmpfs -o size=64k tmpfs /mnt'],
                         capture_output=True)
  return probe.returncode == 0


@pytest.mark.skipif(not _tmpfs_works(), reason='needs unshare and a tmpfs mount')
def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path, tfds_dir):
  """A real full filesystem (a 1.2 MB tmpfs in a private mount namespace): the train.log writes,
  Orbax's writers and our own files all fail; the console gets one line."""
  mount, out = tmp_path / 'mnt', tmp_path / 'out'
  mount.mkdir()
  out.mkdir()
  run = mount / 'run'
  train = ' '.join([sys.executable, '-m', 'mvae_jax.train', '--config=configs/melody2.py:smoke',
                    f'--workdir={run}', f'--config.data.data_dir={tfds_dir}',
                    '--config.train.num_steps=60', '--config.train.checkpoint_every_steps=1',
                    '--config.train.keep_checkpoints=100', '--config.eval.every_steps=0'])
  script = (f'mount -t tmpfs -o size=1200k tmpfs {mount} && cd {ROOT} && '
            f'{train} > {out}/stdout 2> {out}/stderr; echo $? > {out}/status; '
            f'cp -a {run} {out}/run')
  subprocess.run(['unshare', '-rm', 'sh', '-c', script], env=ENV, timeout=600, check=True)
  stderr = (out / 'stderr').read_text()
  assert (out / 'status').read_text().strip() == '1'
  assert stderr.splitlines() == [f'error: no space left on device in {run}'], stderr
  left = [os.path.join(r, f) for r, ds, fs in os.walk(out / 'run') for f in fs + ds
          if '.tmp' in f or 'orbax-checkpoint-tmp' in f or f.endswith('.lock')]
  assert not left, left
  for step in steps_of(out / 'run'):  # every step there was committed and sealed
    assert checkpoints.verify(str(out / 'run' / 'checkpoints' / str(step))) is None
