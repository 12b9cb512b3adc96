"""Runs you can trust (issue 15): one writer per run directory, no diverged or damaged checkpoint
used, configs checked before anything is written, one-line failures, folder data that says why.

Everything trains `melody2:smoke` for a few steps; command-line behaviour runs in subprocesses
(exit status, the single `error:` line on stderr).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from data_pipelines import build
from mvae_jax import checkpoints, config_lib, logs, runlock
from data_pipelines import conversion
from mvae_jax import evaluation
from mvae_jax import run as run_lib
from mvae_jax import trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(module, *args, timeout=300):
  env = dict(os.environ, PYTHONWARNINGS='ignore', PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, '-m', module, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def error_line(proc, progress=None):
  """The stderr of a failed command, which must be exactly one `error:` line (besides progress
  lines that start with `progress`)."""
  lines = [line for line in proc.stderr.splitlines()
           if line.strip() and not (progress and line.startswith(progress))]
  assert len(lines) == 1, proc.stderr
  assert lines[0].startswith('error: '), proc.stderr
  return lines[0]


def steps_of(workdir):
  folder = os.path.join(workdir, 'checkpoints')
  return sorted(int(d) for d in os.listdir(folder) if d.isdigit())


@pytest.fixture(scope='module')
def trained(make_config, tmp_path_factory):
  """A 4-step melody2:smoke run with checkpoints 2 and 4 (copy it before changing it)."""
  workdir = str(tmp_path_factory.mktemp('trained'))
  trainer.train_and_evaluate(make_config('melody2:smoke'), workdir)
  return workdir


def copy_run(src, dst):
  shutil.copytree(src, dst, ignore=shutil.ignore_patterns('train*.lock'))
  return str(dst)


# ----------------------------------------------------------------------------- configs

@pytest.mark.parametrize('override, expected', [
    ('train.batchsize=8',
     'error: unknown config field train.batchsize; did you mean train.batch_size?'),
    ('train.num_steps=0', 'train.num_steps must be >= 1'),
    ('train.num_steps=-5', 'train.num_steps must be >= 1'),
    ('train.batch_size=0', 'train.batch_size must be >= 1'),
    ('train.checkpoint_every_steps=0', 'train.checkpoint_every_steps must be >= 1'),
    ('eval.batch_size=0', 'eval.batch_size must be >= 1'),
    ('data.source=lakh', "data.source is 'lakh'; choose one of"),
    ('data.kind=drums_2bar', "data.kind 'drums_2bar' does not fit this melody2 config"),
    ('model.enc_sizes=abc', 'model.enc_sizes must be a non-empty list of positive integers'),
    ('train.ss_rate=nan', 'train.ss_rate must be a finite number, got nan'),
    ('train.batch_size=abc', '--config.train.batch_size=abc'),
])
def test_bad_config_exits_2_with_one_line_and_writes_nothing(override, expected, tmp_path,
                                                             tfds_dir):
  workdir = tmp_path / 'run'
  proc = run_cli('mvae_jax.train', '--config=configs/melody2.py:smoke', f'--workdir={workdir}',
                 f'--config.data.data_dir={tfds_dir}', f'--config.{override}')
  assert proc.returncode == 2, proc.stderr
  assert expected in error_line(proc)
  assert not workdir.exists()


def test_batch_sizes_are_checked_against_the_devices_naming_the_field(make_config):
  config = make_config('melody2:smoke', **{'train.batch_size': 6, 'eval.batch_size': 8})
  config_lib.validate(config, num_devices=2)
  with pytest.raises(config_lib.ConfigError, match=r'^eval\.batch_size 8 is not divisible by the '
                     r'3 devices; set --config\.eval\.batch_size'):
    config_lib.validate(config, num_devices=3)
  config = make_config('melody2:smoke', **{'train.batch_size': 9})
  with pytest.raises(config_lib.ConfigError, match=r'^train\.batch_size 9'):
    config_lib.validate(config, num_devices=2)


def test_folder_source_needs_an_existing_midi_dir(make_config, tmp_path):
  config = make_config('melody2:smoke', **{'data.source': 'folder'})
  with pytest.raises(config_lib.ConfigError, match='needs --config.data.midi_dir'):
    config_lib.validate(config)
  config = make_config('melody2:smoke', **{'data.source': 'folder',
                                           'data.midi_dir': str(tmp_path / 'nope')})
  with pytest.raises(config_lib.ConfigError, match='is not a folder'):
    config_lib.validate(config)


def test_every_shipped_preset_validates():
  for name in ('melody2', 'drums2', 'melody16', 'melody32', 'trio16'):
    module = config_lib.config_module(name)
    for preset in (p for p in module.PRESETS if p != 'common'):
      for arg in (preset, f'{preset},baseline', f'{preset},no_ss'):
        config_lib.validate(module.get_config(arg), num_devices=1)


def test_a_failed_start_leaves_no_config_json(make_config, tmp_path):
  """The data cannot be prepared: the corrected command must still find the directory free."""
  empty = tmp_path / 'empty'
  empty.mkdir()
  config = make_config('melody2:smoke', **{'data.source': 'folder', 'data.midi_dir': str(empty),
                                           'data.data_dir': str(tmp_path / 'tfds')})
  with pytest.raises(conversion.NothingFoundError, match=f'no MIDI files .* found under {empty}'):
    trainer.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run' / 'config.json').exists()


# ----------------------------------------------------------------------------- one writer

def test_second_training_on_a_busy_workdir_stops_at_once(tmp_path, tfds_dir):
  workdir = tmp_path / 'run'
  args = ['-m', 'mvae_jax.train', '--config=configs/melody2.py:smoke', f'--workdir={workdir}',
          f'--config.data.data_dir={tfds_dir}', '--config.train.num_steps=100000',
          '--config.eval.every_steps=0', '--config.train.checkpoint_every_steps=1000']
  env = dict(os.environ, PYTHONWARNINGS='ignore', PYTHONPATH=ROOT)
  first = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    metrics = workdir / 'metrics.jsonl'
    while not (metrics.exists() and metrics.read_text().strip()):  # the first run is training
      assert first.poll() is None, 'the first training died'
      time.sleep(0.2)
    second = run_cli('mvae_jax.train', *args[2:], '--config.optim.learning_rate=0.5')
  finally:
    first.kill()
    first.wait()
  assert second.returncode == 1
  line = error_line(second)
  assert f'in use by training process {first.pid}' in line
  assert json.load(open(workdir / 'config.json'))['optim']['learning_rate'] == 1e-3


def test_stale_lock_of_a_dead_process_is_taken_over(make_config, tmp_path):
  dead = subprocess.Popen([sys.executable, '-c', 'pass'])
  dead.wait()
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / 'train.lock').write_text(f'{dead.pid} somehost 0\n')
  trainer.train_and_evaluate(make_config('melody2:smoke', **{'train.num_steps': 2}), str(workdir))
  assert steps_of(workdir) == [2]
  assert not (workdir / 'train.lock').exists()  # a run that ends removes its lock file


def test_lock_refuses_a_second_holder_but_not_the_other_hosts_of_one_run(tmp_path):
  workdir = str(tmp_path)
  with runlock.hold(workdir, 0, 2), runlock.hold(workdir, 1, 2):  # two processes of one run
    with pytest.raises(runlock.RunLockedError, match=f'process {os.getpid()}'):
      with runlock.hold(workdir, 0, 2):
        pass
  with runlock.hold(workdir):  # released at the end of the block
    pass


# ----------------------------------------------------------------------------- divergence

def test_diverged_step_is_never_committed(make_config, tmp_path):
  workdir = str(tmp_path)
  trainer.train_and_evaluate(make_config('melody2:smoke', **{
      'train.num_steps': 2, 'train.checkpoint_every_steps': 1}), workdir)
  huge = make_config('melody2:smoke', **{
      'optim.learning_rate': 1e30, 'optim.min_learning_rate': 1e30,
      'optim.clip_to_zero_norm': 1e38, 'train.num_steps': 30, 'train.log_every_steps': 7,
      'train.checkpoint_every_steps': 1, 'eval.every_steps': 0})
  # Step 3's loss is finite (computed before the update); its parameters are not.
  with pytest.raises(trainer.NonFiniteLossError,
                     match=r'diverged at step 3 .*stopped before saving it, a rerun resumes '
                           r'from checkpoint 2\.'):
    trainer.train_and_evaluate(huge, workdir)
  assert steps_of(workdir) == [1, 2]
  loaded = run_lib.load(workdir)
  params, step = loaded.params, loaded.step
  assert step == 2
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(params)))


def test_divergence_before_any_checkpoint_says_the_rerun_starts_over(make_config, tmp_path):
  config = make_config('melody2:smoke', **{
      'optim.learning_rate': 1e30, 'optim.min_learning_rate': 1e30,
      'optim.clip_to_zero_norm': 1e38, 'train.num_steps': 6})
  with pytest.raises(trainer.NonFiniteLossError, match=r'at step 1 .*starts over'):
    trainer.train_and_evaluate(config, str(tmp_path))
  assert not os.path.exists(tmp_path / 'checkpoints') or steps_of(tmp_path) == []


def test_train_step_flags_a_non_finite_optimizer_state(make_config):
  """Damaged optimizer state with a finite loss: the step's `finite` flag is still False."""
  import functools
  import jax.numpy as jnp
  config = make_config('melody2:smoke')
  model, optimizer = run_lib.create_model(config.model), run_lib.create_optimizer(config)
  state = run_lib.init_state(jax.random.PRNGKey(0), model=model, optimizer=optimizer,
                           shape=(1, 32, 1))
  step = jax.jit(functools.partial(trainer.train_step, model=model, optimizer=optimizer, cfg=config))
  batch = {'tokens': jnp.asarray(np.random.default_rng(0).integers(0, 130, (8, 32, 1)), jnp.int32)}
  _, m = step(state, batch, jax.random.PRNGKey(1))
  assert bool(m['finite'])
  poisoned = state.replace(opt_state=jax.tree.map(
      lambda x: jnp.full_like(x, jnp.nan) if jnp.issubdtype(x.dtype, jnp.floating) else x,
      state.opt_state))
  _, m = step(poisoned, batch, jax.random.PRNGKey(1))
  assert np.isfinite(float(m['loss'])) and not bool(m['finite'])


# ----------------------------------------------------------------------------- damage

def _damage(workdir, step, how):
  folder = os.path.join(workdir, 'checkpoints', str(step), 'state')
  files = [os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs]
  biggest = max(files, key=os.path.getsize)
  size = os.path.getsize(biggest)
  if how == 'truncated':
    os.truncate(biggest, size // 2)
  else:  # 64 bytes overwritten in place: same size, same names
    with open(biggest, 'r+b') as f:
      f.seek(size // 2)
      f.write(bytes(range(64)))
  assert os.path.getsize(biggest) == (size // 2 if how == 'truncated' else size)


@pytest.mark.parametrize('how', ['truncated', 'overwritten'])
def test_damaged_newest_checkpoint_falls_back_to_the_previous(how, trained, make_config, tmp_path,
                                                              capsys):
  workdir = copy_run(trained, tmp_path / 'run')
  _damage(workdir, 4, how)
  capsys.readouterr()

  # eval (and generate, which loads the same way) uses step 2 and says why, in one line.
  results = evaluation.evaluate_run(workdir, recon_accuracy=False, num_batches=1)
  assert results['step'] == 2
  assert all(v is None or np.isfinite(v) for v in results['metrics'].values())
  warned = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
  assert len(warned) == 1 and warned[0].startswith('warning: checkpoint ')
  assert 'checkpoints/4 is damaged' in warned[0] and warned[0].endswith('using step 2')
  with pytest.raises(checkpoints.DamagedCheckpointError, match='checkpoints/4 is damaged'):
    run_lib.load(workdir, 4)

  # training resumes from step 2; the damaged step is set aside, never retained or reused.
  trainer.train_and_evaluate(make_config('melody2:smoke', **{
      'train.num_steps': 6, 'train.keep_checkpoints': 2}), workdir)
  assert steps_of(workdir) == [4, 6]
  assert os.listdir(os.path.join(workdir, checkpoints.DAMAGED_DIR)) == ['4']
  for s in (4, 6):
    assert checkpoints.verify(os.path.join(workdir, 'checkpoints', str(s))) is None


def test_checkpoint_with_non_finite_values_is_skipped(trained, tmp_path, capsys):
  """A NaN state saved by an older version (or by hand) is never restored."""
  workdir = copy_run(trained, tmp_path / 'run')
  params = run_lib.load(workdir).params
  config = run_lib.load_config(workdir)
  model, optimizer = run_lib.create_model(config.model), run_lib.create_optimizer(config)
  state = run_lib.init_state(jax.random.PRNGKey(0), model=model, optimizer=optimizer,
                           shape=(1, 32, 1))
  state = state.replace(params=jax.tree.map(lambda x: x * np.nan, state.params))
  mgr = checkpoints.manager(workdir, async_save=False)
  checkpoints.save(mgr, 6, state, {'next_batch': 6})
  mgr.close()
  capsys.readouterr()
  loaded = run_lib.load(workdir)
  restored, step = loaded.params, loaded.step
  assert step == 4
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored), jax.device_get(params))
  assert 'checkpoints/6 is damaged (holds non-finite values); using step 4' in capsys.readouterr().err


def test_every_checkpoint_damaged_is_one_error(trained, tmp_path):
  workdir = copy_run(trained, tmp_path / 'run')
  _damage(workdir, 2, 'truncated')
  _damage(workdir, 4, 'overwritten')
  with pytest.raises(checkpoints.DamagedCheckpointError, match='every checkpoint in .* is damaged'):
    run_lib.load(workdir)


# ----------------------------------------------------------------------------- failures

def test_full_disk_is_one_line_and_the_pending_save_commits(tmp_path, tfds_dir):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  os.symlink('/dev/full', workdir / 'metrics.jsonl')  # every write: ENOSPC
  proc = run_cli('mvae_jax.train', '--config=configs/melody2.py:smoke', f'--workdir={workdir}',
                 f'--config.data.data_dir={tfds_dir}', '--config.train.log_every_steps=3',
                 '--config.eval.every_steps=0')
  assert proc.returncode == 1
  assert error_line(proc) == f'error: no space left on device in {workdir}'
  # The save of step 2, started before the failing write of step 3, was finished and sealed.
  assert os.listdir(workdir / 'checkpoints') == ['2']
  assert checkpoints.verify(str(workdir / 'checkpoints' / '2')) is None
  assert os.path.exists(workdir / 'checkpoints' / '2' / checkpoints.CHECKSUMS)


def test_metrics_are_logged_once_per_step_after_a_resume(trained, make_config, tmp_path):
  workdir = copy_run(trained, tmp_path / 'run')
  # As if killed after logging steps 3 and 4 but before checkpoint 4 committed.
  shutil.rmtree(os.path.join(workdir, 'checkpoints', '4'))
  trainer.train_and_evaluate(make_config('melody2:smoke'), workdir)
  records = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  assert [r['step'] for r in records if 'train/loss' in r] == [1, 2, 3, 4]
  assert [r['step'] for r in records if 'eval/next_accuracy' in r] == [2, 4]
  # TensorBoard: the resumed writer's file starts by purging the replayed steps (3 and later).
  tb = os.path.join(workdir, 'tensorboard')
  newest = max((os.path.join(tb, f) for f in os.listdir(tb)), key=os.path.getmtime)
  purges = [e.step for e in _events(newest) if e.HasField('session_log')
            and e.session_log.status == e.session_log.START]
  assert purges == [3]


def _events(path):
  """The Event protos of a TensorBoard event file (TFRecord framing: length, crc, data, crc)."""
  import struct
  from tensorboardX.proto import event_pb2
  data = open(path, 'rb').read()
  pos, out = 0, []
  while pos + 12 <= len(data):
    (length,) = struct.unpack('<Q', data[pos:pos + 8])
    out.append(event_pb2.Event.FromString(data[pos + 12:pos + 12 + length]))
    pos += 12 + length + 4
  return out


def test_drop_steps_after_keeps_earlier_records_and_drops_a_torn_line(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  path.write_text('{"step": 1, "a": 1}\n{"step": 2, "a": 2}\n{"step": 3, "a": 3}\n{"step": 4,')
  logs.drop_steps_after(str(path), 2)
  assert path.read_text() == '{"step": 1, "a": 1}\n{"step": 2, "a": 2}\n'


def test_eval_prints_its_table_before_writing_and_takes_output(trained, tmp_path):
  bad = run_cli('mvae_jax.eval', f'--workdir={trained}', '--num_batches=1',
                '--output=/dev/null/eval.json')
  assert bad.returncode == 1
  assert '| melody2:smoke (step 4) |' in bad.stdout
  assert 'cannot write /dev/null/eval.json' in error_line(bad, progress='batch ')
  out = tmp_path / 'elsewhere' / 'eval.json'
  good = run_cli('mvae_jax.eval', f'--workdir={trained}', '--num_batches=1', f'--output={out}')
  assert good.returncode == 0, good.stderr
  assert json.load(open(out))['step'] == 4


# ----------------------------------------------------------------------------- folder data

def _freedoom_files(n, *, eval_side):
  """The n smallest Freedoom files whose content hash puts them on the given side of the
  folder builder's 10% eval rule."""
  out = []
  for name in sorted(os.listdir(conversion.FREEDOOM_DIR),
                     key=lambda f: os.path.getsize(os.path.join(conversion.FREEDOOM_DIR, f))):
    data = open(os.path.join(conversion.FREEDOOM_DIR, name), 'rb').read()
    if conversion.is_eval(hashlib.md5(data).hexdigest()) == eval_side and data not in out:
      out.append(data)
  return out[:n]


def test_nothing_found_lists_why(make_config, tmp_path):
  broken = tmp_path / 'broken'
  broken.mkdir()
  (broken / 'a.mid').write_bytes(b'MThd\x00\x00\x00\x06\x00\x01')
  (broken / 'b.mid').write_bytes(b'not a midi file at all')
  config = make_config('melody2:smoke', **{'data.source': 'folder', 'data.midi_dir': str(broken),
                                           'data.data_dir': str(tmp_path / 'tfds'),
                                           'data.workers': 1})
  with pytest.raises(conversion.NothingFoundError) as info:
    trainer.train_and_evaluate(config, str(tmp_path / 'run'))
  message = str(info.value)
  assert message.startswith(f'2 files under {broken}, none usable for mel_2bar: ')
  assert 'a.mid' in message and 'b.mid' in message and '\n' not in message


def test_small_folder_trains_without_eval_split(make_config, tmp_path):
  folder = tmp_path / 'midi'
  folder.mkdir()
  for i, data in enumerate(_freedoom_files(2, eval_side=False)):
    (folder / f'song{i}.mid').write_bytes(data)
  data_dir = tmp_path / 'tfds'
  fingerprint = conversion.folder_fingerprint(str(folder), str(data_dir)).value
  leftover = (data_dir / 'mvae_midi_folder' / build.folder_config_name('mel_2bar', 'paper',
                                                                        fingerprint)
              / 'incomplete.1234abcd_1.0.0')
  leftover.mkdir(parents=True)  # an interrupted earlier build
  base = {'data.source': 'folder', 'data.midi_dir': str(folder), 'data.data_dir': str(data_dir),
          'data.workers': 1, 'train.num_steps': 2}
  with pytest.raises(trainer.DataError, match=r'no eval files.*--config\.eval\.every_steps=0'):
    trainer.train_and_evaluate(make_config('melody2:smoke', **base), str(tmp_path / 'run'))
  assert not leftover.exists()  # the build itself succeeded and cleaned up
  out = trainer.train_and_evaluate(make_config('melody2:smoke', **base, **{'eval.every_steps': 0}),
                                 str(tmp_path / 'run'))
  assert np.isfinite(out['train/loss']) and not any(k.startswith('eval/') for k in out)
  assert steps_of(tmp_path / 'run') == [2]


def test_split_rule_gives_a_handful_of_files_an_eval_file(tmp_path):
  files = _freedoom_files(conversion.MIN_FILES_FOR_EVAL + 4, eval_side=False)  # some have no windows
  folder = tmp_path / 'midi'
  folder.mkdir()
  for i, data in enumerate(files):
    (folder / f'song{i}.mid').write_bytes(data)
  items = conversion.list_items('folder', str(folder))
  ext = conversion.extract('folder', ['mel_2bar'], 'paper', str(tmp_path), str(folder), workers=0,
                      items=items, progress=False)
  assert not ext.reused and ext.convert_s > 0
  sel = conversion.select(ext, 'mel_2bar')
  assert sel.stats['files_with_windows'] >= conversion.MIN_FILES_FOR_EVAL, sel.stats
  eval_files = set(sel.item[sel.is_eval].tolist())
  assert len(eval_files) == 1 and sel.stats['train'] > 0
  # A second build reuses the conversion: its report shows this build's time, none.
  again = conversion.extract('folder', ['mel_2bar'], 'paper', str(tmp_path), str(folder), workers=0,
                        items=items, progress=False)
  assert again.reused and again.convert_s == 0
  rep = conversion.report(again, {'mel_2bar': conversion.select(again, 'mel_2bar')})
  assert rep['convert_s'] == 0 and rep['conversion_reused']


def test_suggested_build_command_is_complete(tmp_path):
  with pytest.raises(FileNotFoundError, match=r'--source=folder --midi_dir=/music --kinds=mel_2bar'):
    build.dataset_dir('folder', 'mel_2bar', 'paper', str(tmp_path), midi_dir='/music')
  with pytest.raises(FileNotFoundError, match=r'--source=folder --midi_dir=/music --kinds=mel_2bar'):
    build.dataset_dir('folder', 'mel_2bar', 'paper', str(tmp_path), midi_dir='/music',
                      fingerprint='0123456789abcdef')
