r"""The main job, end to end: `python -m mvae_jax.quickstart [--workdir=runs/melody2_small]`.

1. builds the embedded melody dataset (folk tunes from music21's corpus) the first time;
2. trains `configs/melody2.py:small` (8000 steps at batch 16; resumes if the run directory exists);
3. evaluates the checkpoint on the held-out split (Table 1 metrics, beside the majority-class level);
4. writes 4 samples (temperature 0.5) and a 7-step interpolation between two held-out melodies,
   as MIDI and piano-roll PNG, into new folders under `<workdir>/samples/`, and prints where
   (absolute paths).

Any other config works too: `--config=configs/drums2.py:small`.

The dataset is written under `~/tensorflow_datasets` unless `TFDS_DATA_DIR` or
`--config.data.data_dir` says otherwise; the quickstart prints where. Library logging goes to
`<workdir>/quickstart.log` (see `mvae_jax.logs`); the console shows the progress, the metrics and
every path written (absolute), then the total time and what to run next.
"""
from __future__ import annotations

import json
import os
import pathlib
import sys
import time

if __name__ == '__main__':
  # First, before JAX loads: re-run with TCMalloc preloaded where the system has it (faster CPU
  # steps; `mvae_jax.machine.use_fast_allocator`, MVAE_ALLOCATOR=system turns it off).
  from mvae_jax import machine  # pylint: disable=g-import-not-at-top
  machine.use_fast_allocator()

from absl import app, flags

from data_pipelines import console
from mvae_jax import cli, config_lib, evaluation, generation, parallel, preemption, trainer

_DEFAULT = str(pathlib.Path(__file__).resolve().parents[1] / 'configs' / 'melody2.py') + ':small'
FLAGS = flags.FLAGS


def define_flags(fv: flags.FlagValues = FLAGS) -> None:
  """`--config` and `--workdir` as `mvae_jax.train` has them, with the quickstart's defaults."""
  cli.define_config_flags(_DEFAULT, 'runs/melody2_small', fv=fv)
  flags.DEFINE_integer('num_samples', 4, 'Samples to write.', flag_values=fv)
  flags.DEFINE_integer('interpolation_steps', 7, 'Points of the interpolation, endpoints '
                       'included.', flag_values=fv)


def dataset_location(config) -> str:
  """Absolute folder the run's dataset is (or will be) written to."""
  from data_pipelines import conversion  # pylint: disable=g-import-not-at-top
  return os.path.abspath(config.data.data_dir or conversion.default_data_dir())


def run(config, workdir: str, num_samples: int = 4, interpolation_steps: int = 7) -> dict:
  """Train, evaluate, generate; returns {'eval': results, 'outputs': {name: [paths]}}."""
  t0 = time.time()
  workdir = os.path.abspath(workdir)
  data_dir = dataset_location(config)
  print(f'dataset: {config.data.source} {config.data.kind} ({config.data.mode}) in {data_dir} '
        '(default ~/tensorflow_datasets; set TFDS_DATA_DIR or --config.data.data_dir to change)')
  print(f'run directory: {workdir}')
  trainer.train_and_evaluate(config, workdir)
  results = evaluation.evaluate_run(workdir, recon_accuracy=True)
  eval_path = evaluation.write_json(results, evaluation.default_output(results))
  print(evaluation.details(results))
  print(evaluation.table1_row(results))
  outputs = {'eval': [eval_path]}
  outputs['samples'] = generation.run_command('sample', workdir=workdir, num=num_samples)
  if config.model.use_encoder:
    outputs['interpolation'] = generation.run_command(
        'interpolate', workdir=workdir, from_eval='0,1', steps=interpolation_steps)
  print('\nwritten:')
  for line in written_lines(outputs):
    print(f'  {line}')
  seconds = time.time() - t0
  print(f'\ndone in {console.duration(seconds)}. Next:')
  for line in next_steps(workdir, config.model.use_encoder):
    print(f'  {line}')
  return {'eval': results, 'outputs': outputs, 'dataset_dir': data_dir, 'seconds': seconds}


def written_lines(outputs: dict[str, list[str]]) -> list[str]:
  """What the quickstart wrote, one line per kind, absolute paths: a folder of many files is
  shown as the folder (and its main picture), not file by file."""
  lines = []
  for name, paths in outputs.items():
    paths = [os.path.abspath(p) for p in paths]
    folder = os.path.dirname(paths[0])
    if len(paths) == 1:
      lines.append(f'{name:14s} {paths[0]}')
      continue
    mids = sum(p.endswith('.mid') for p in paths)
    pngs = sum(p.endswith('.png') for p in paths)
    lines.append(f'{name:14s} {folder}{os.sep}  ({mids} MIDI files, {pngs} piano-roll PNGs)')
    main = [p for p in paths if os.path.basename(p) == f'{name}.png']
    if main:
      lines.append(f'{"":14s} {main[0]}  (the whole {name} in one picture)')
  if console.log_path():
    lines.append(f'{"library log":14s} {console.log_path()}')
  return lines


def _python() -> str:
  """The absolute path of this Python, so the printed commands run from any folder and with
  or without an activated venv."""
  return os.path.abspath(sys.executable)


def next_steps(workdir: str, use_encoder: bool) -> list[str]:
  """Commands a user runs next on the quickstart's run directory."""
  py = _python()
  lines = [f'{py} -m mvae_jax.generate sample --workdir={workdir} --num=8',
           f'{py} -m mvae_jax.eval --workdir={workdir} --recon_accuracy']
  if use_encoder:
    lines.insert(1, f'{py} -m mvae_jax.generate reconstruct --workdir={workdir} '
                 '--input=YOUR.mid')
  return lines


def main(argv):
  del argv
  console.setup(FLAGS.workdir, 'quickstart')
  parallel.maybe_initialize_distributed()  # first: it installs JAX's SIGTERM notifier
  with preemption.handle_signals():  # SIGTERM / Ctrl-C: the step being trained is saved
    try:
      out = run(FLAGS.config, FLAGS.workdir, FLAGS.num_samples, FLAGS.interpolation_steps)
      with open(os.path.join(FLAGS.workdir, 'quickstart.json'), 'w') as f:
        json.dump(out, f, indent=2, default=str)
    except preemption.Interrupted as e:
      print(str(e), file=sys.stderr, flush=True)
      return e.exit_code
    except Exception as e:  # pylint: disable=broad-except
      line = cli.failure_message(e, os.path.abspath(FLAGS.workdir))
      if line is None:
        raise
      return cli.error(line, cli.EXIT_USAGE if isinstance(e, config_lib.ConfigError)
                       else cli.EXIT_FAILED)
  return 0


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.cli_flags_parser)
