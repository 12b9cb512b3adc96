r"""Table 1 metrics of a trained run: `python -m mvae_jax.eval --workdir=runs/mel2 --recon_accuracy`.

`--midi_dir=DIR` scores the run on any folder of MIDI files instead of its dataset: every window of
the model's kind and mode, extracted now (nothing is written but the results); files that cannot
be read are skipped and named. Without it, a missing dataset is built first (one line says what
and about how long before it starts): an imported Magenta model gets data of its own kind.

The command line only; the metrics, their names and the evaluation step are
`mvae_jax.evaluation` (`evaluate_run(workdir, ...)`). Prints every metric, then a row in the
layout of the paper's Table 1, then writes the JSON (default `<workdir>/eval_<step>.json`).
"""
from __future__ import annotations

if __name__ == '__main__':  # before JAX loads: TCMalloc where installed (see mvae_jax.machine)
  from mvae_jax import machine  # pylint: disable=g-import-not-at-top
  machine.use_fast_allocator()

import os
from typing import Sequence

import jax
from absl import app, flags

from data_pipelines import console
from mvae_jax import checkpoints, cli, evaluation, parallel
from mvae_jax import run as run_lib

FLAGS = flags.FLAGS


def define_flags(fv: flags.FlagValues = FLAGS) -> None:
  """The command's flags, defined in `fv` (the program's flags unless a test passes its own)."""
  flags.DEFINE_string('workdir', None, 'Run directory of a trained model.', flag_values=fv)
  flags.DEFINE_integer('checkpoint_step', None, 'Checkpoint step (default: the latest).', flag_values=fv)
  flags.DEFINE_integer('seed', 0, 'Random seed of z draws and sampled tokens.', flag_values=fv)
  flags.DEFINE_bool('recon_accuracy', False, 'Also the free-running reconstruction accuracies '
                    '(slower).', flag_values=fv)
  flags.DEFINE_integer('num_batches', 0, 'Global batches to evaluate (0 = the whole split).', flag_values=fv)
  flags.DEFINE_integer('batch_size', 0, 'Global batch (0 = config.eval.batch_size).', flag_values=fv)
  flags.DEFINE_string('split', 'eval', 'Dataset split: eval or train.', flag_values=fv)
  flags.DEFINE_string('midi_dir', None, 'Score the windows of every MIDI file under this folder '
                      '(the model\'s kind and mode, extracted now) instead of the dataset.',
                      flag_values=fv)
  flags.DEFINE_integer('workers', 0, 'Worker processes for --midi_dir (0 = all cores).',
                       flag_values=fv)
  flags.DEFINE_string('output', None, 'JSON file (default <workdir>/eval_<step>.json); the table '
                      'is printed first, so a failed write loses nothing.', flag_values=fv)


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    return cli.error(f'unexpected arguments {list(argv[1:])}', cli.EXIT_USAGE)
  if not FLAGS.workdir:
    return cli.error('--workdir is required', cli.EXIT_USAGE)
  for flag, value, lowest in (('num_batches', FLAGS.num_batches, 0),
                              ('batch_size', FLAGS.batch_size, 0)):
    if value < lowest:
      return cli.error(f'--{flag} must be >= {lowest}, got {value}', cli.EXIT_USAGE)
  if FLAGS.split not in ('eval', 'train'):
    return cli.error(f'--split must be eval or train, got {FLAGS.split!r}', cli.EXIT_USAGE)
  if FLAGS.workers < 0:
    return cli.error(f'--workers must be >= 0, got {FLAGS.workers}', cli.EXIT_USAGE)
  if FLAGS.midi_dir is not None and not os.path.isdir(FLAGS.midi_dir):
    return cli.error(f'--midi_dir {FLAGS.midi_dir} is not a folder', cli.EXIT_USAGE)
  # Library logging goes to <workdir>/eval.log only when --workdir is a run: a mistyped folder
  # gets nothing written into it.
  console.setup(FLAGS.workdir if cli.is_run_dir(FLAGS.workdir) else None, 'eval')
  parallel.maybe_initialize_distributed()
  try:
    results = evaluation.evaluate_run(
        FLAGS.workdir, step=FLAGS.checkpoint_step, recon_accuracy=FLAGS.recon_accuracy,
        num_batches=FLAGS.num_batches, batch_size=FLAGS.batch_size or None, seed=FLAGS.seed,
        split=FLAGS.split, verbose=True, midi_dir=FLAGS.midi_dir, workers=FLAGS.workers or None)
  except (FileNotFoundError, run_lib.CheckpointMismatchError, checkpoints.DamagedCheckpointError,
          ValueError) as e:
    return cli.error(str(e))
  except KeyboardInterrupt:
    return cli.interrupted()
  if jax.process_index() == 0:
    # The table first: a failed write (read-only run directory, full disk) loses nothing shown.
    print(evaluation.details(results))
    print('| run | Next / Recon / KL |')
    print('|---|---|')
    print(evaluation.table1_row(results), flush=True)
    path = os.path.abspath(FLAGS.output or evaluation.default_output(results))
    try:
      evaluation.write_json(results, path)
    except OSError as e:
      return cli.error(f'cannot write {path} ({e}); the results are printed above; pass '
                       '--output=<file> to write them elsewhere')
    print(f'wrote {path}')
  return 0


if __name__ == '__main__':
  define_flags()
  app.run(main)
