"""What a user sees: the console of a smoke training run holds our lines only.

The run builds its dataset into a fresh data directory, so the console of the dataset build is
covered too. Library logging (Orbax, absl, TFDS, JAX's backend probing, Python warnings) must be
in `<workdir>/train.log`, not on the console.
"""
import os
import re
import subprocess
import sys
from data_pipelines import console

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ABSL_LINE = re.compile(r'^[IWEF]\d{4} ', re.M)  # absl's record format: I1201 02:28:00.83 ...


def test_smoke_training_console_holds_our_lines_only(tmp_path):
  workdir, data_dir = tmp_path / 'run', tmp_path / 'tfds'
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
  env.pop('JAX_PLATFORMS', None)  # let JAX probe its backends, as on a user's machine
  env.pop('TFDS_DATA_DIR', None)
  proc = subprocess.run(
      [sys.executable, '-m', 'mvae_jax.train', '--config=configs/melody2.py:smoke',
       f'--workdir={workdir}', f'--config.data.data_dir={data_dir}',
       '--config.data.workers=1'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  console = proc.stdout + proc.stderr
  assert proc.returncode == 0, console
  # Ours: where the dataset goes, the build's progress and report, the training lines.
  assert f'dataset (once) in {data_dir}' in console
  assert '[freedoom paper] 67/67 files' in console
  assert re.search(r'^train step 4/4 \| loss ', console, re.M)
  assert re.search(r'^eval step 4/4 \| ', console, re.M)
  assert f'library log in {workdir / "train.log"}' in console
  # Not theirs.
  for noise in ('ffmpeg', 'Downloading and preparing', 'downloaded and prepared',
                'Variant folder', "Unable to initialize backend", 'Metadata file does not exist',
                'checkpoint_manager', 'Orbax', 'orbax', 'RuntimeWarning', 'examples/s'):
    assert noise not in console, noise
  assert not ABSL_LINE.search(console), ABSL_LINE.search(console).group(0)
  assert not re.search(r'^(INFO|WARNING|DEBUG)[:\s]', console, re.M)
  assert '\x1b' not in console and '\r' not in console  # no escape codes in a pipe
  assert len(console.splitlines()) < 25, console
  # The library lines are in the run's log file.
  log = (workdir / 'train.log').read_text()
  assert 'CheckpointManager' in log and '==== train started' in log


def test_quickstart_prints_levels_paths_time_and_next_steps(make_config, tfds_dir, tmp_path,
                                                            capsys):
  from mvae_jax import quickstart
  workdir = tmp_path / 'qs'
  config = make_config('melody2:smoke')
  out = quickstart.run(config, str(workdir), num_samples=2, interpolation_steps=3)
  printed = capsys.readouterr().out
  assert f'dataset: freedoom mel_2bar (paper) in {os.path.abspath(tfds_dir)}' in printed
  assert out['dataset_dir'] == os.path.abspath(tfds_dir)
  majority = out['eval']['metrics']['majority_accuracy']
  assert re.search(rf'^majority class level +{majority:.3f}  <- ', printed, re.M)
  written = printed.split('\nwritten:\n')[1].split('\n\n')[0].splitlines()
  assert written[0].split() == ['eval', str(workdir / 'eval_4.json')]
  samples = workdir / 'samples' / 'sample-step4-T0.5-seed0'
  assert written[1].split()[:2] == ['samples', f'{samples}{os.sep}']
  assert '(2 MIDI files, 2 piano-roll PNGs)' in written[1]
  interp = workdir / 'samples' / 'interpolate-eval0-eval1-step4-T0.5-seed0'
  assert str(interp / 'interpolation.png') in written[3]
  for line in written:  # every line names an absolute path that exists
    [path] = [t for t in line.split() if os.sep in t]
    assert os.path.isabs(path) and os.path.exists(path), line
  assert re.search(r'^done in \dm\d\ds\. Next:$', printed, re.M)
  assert f'-m mvae_jax.generate sample --workdir={workdir}' in printed
  # The interpreter by its absolute path: the commands run from any folder, venv or not.
  nexts = printed.split('Next:\n')[1].splitlines()
  assert nexts and all(line.split()[0] == os.path.abspath(sys.executable) for line in nexts)


def test_setup_sends_library_logging_to_the_file(tmp_path):
  import logging
  from absl import logging as absl_logging
  path = console.setup(str(tmp_path / 'run'), 'generate', verbose=False)
  assert path == str(tmp_path / 'run' / 'generate.log') and console.log_path() == path
  logging.getLogger('some.library').info('a library line')
  absl_logging.info('an absl line')
  text = open(path).read()
  assert 'a library line' in text and 'an absl line' in text
  assert not console.is_verbose()
  # The console: none of the libraries' records, errors included (our own lines report
  # failures; the details are in the file).
  assert absl_logging.get_absl_handler().level > logging.CRITICAL
  console.setup(str(tmp_path / 'run'), 'generate', verbose=True)
  assert console.is_verbose() and absl_logging.get_absl_handler().level == logging.NOTSET
  console.setup(str(tmp_path / 'run'), 'generate', verbose=False)


def test_a_log_file_that_cannot_be_written_is_given_up_silently(tmp_path, capfd):
  import logging
  path = console.setup(str(tmp_path / 'run'), 'train', verbose=False)
  handler = next(h for h in logging.getLogger().handlers
                 if getattr(h, 'baseFilename', None) == path)
  handler.stream.close()  # as on a full disk: every write fails
  handler.stream = open('/dev/full', 'w')
  capfd.readouterr()
  for i in range(5):
    logging.getLogger('orbax').error('write failed %d', i)
  assert capfd.readouterr().err == ''  # no '--- Logging error ---' tracebacks
  assert handler.broken
