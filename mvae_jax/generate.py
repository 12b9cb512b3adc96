r"""Sampling, interpolation and reconstruction from the command line.

  python -m mvae_jax.generate sample --workdir=runs/mel2 --num=8 [--temperature=0.5 | --greedy]
  python -m mvae_jax.generate interpolate --workdir=runs/mel2 --a=A.mid --b=B.mid --steps=7
  python -m mvae_jax.generate interpolate --workdir=runs/mel2 --from_eval=3,17
  python -m mvae_jax.generate reconstruct --workdir=runs/mel2 --input=X.mid [--window=bar:9]
  python -m mvae_jax.generate transform --workdir=runs/mel2 --input=X.mid --attribute=note_density \
      --amount=1.5          (a comma-separated list of amounts gives a sweep)
  python -m mvae_jax.generate sample --workdir=runs/mel2 --num=8 --nearest

Each command writes MIDI files and piano-roll PNGs (add `--wav` for audio) into a new folder
`<workdir>/samples/<command>[-<input>-bar<N>]-step<step>-<T0.5|greedy>-seed<seed>[-<k>]/` (the
next free index `-2`, `-3`, ... when the name is taken; or `--out`, refused when it holds files
unless `--overwrite`) and prints their absolute paths.

An input MIDI file's windows are numbered in time order. The command says how many the file has,
which one it used (its bars) and how to pick another: `--window=K` (the K-th, from 0) or
`--window=bar:N` (the window starting at bar N, counted from 1). The default is the first window
with note onsets in every bar (trios: in every part), never a silent or all-hold window while a
better one exists.

The command line only: the work is `mvae_jax.generation.run_command`, on the Python API
`mvae_jax.trained_model.Model`.
"""
from __future__ import annotations

if __name__ == '__main__':  # before JAX loads: TCMalloc where installed (see mvae_jax.machine)
  from mvae_jax import machine  # pylint: disable=g-import-not-at-top
  machine.use_fast_allocator()

from typing import Sequence

from absl import app, flags

from data_pipelines import console
from data_pipelines.inputs import InputError
from mvae_jax import checkpoints, cli
from mvae_jax import run as run_lib
from mvae_jax.generation import COMMANDS, ArgumentError, check_arguments, run_command
from mvae_jax.trained_model import DEFAULT_TEMPERATURE

FLAGS = flags.FLAGS


def define_flags(fv: flags.FlagValues = FLAGS) -> None:
  """The command's flags, defined in `fv` (the program's flags unless a test passes its own)."""
  flags.DEFINE_string('workdir', None, 'Run directory of a trained model.', flag_values=fv)
  flags.DEFINE_integer('checkpoint_step', None, 'Checkpoint step (default: the latest).', flag_values=fv)
  flags.DEFINE_integer('seed', 0, 'Random seed (z and sampling noise).', flag_values=fv)
  flags.DEFINE_string('out', None, 'Output folder (default <workdir>/samples/<command>-...).', flag_values=fv)
  flags.DEFINE_integer('num', 8, 'sample: number of pieces.', flag_values=fv)
  flags.DEFINE_float('temperature', DEFAULT_TEMPERATURE, 'Softmax temperature of the samples '
                     '(> 0; 0 = greedy, as --greedy).', flag_values=fv)
  flags.DEFINE_bool('greedy', None, 'Argmax decoding (default: sample and interpolate sample at '
                    '--temperature, reconstruct is greedy).', flag_values=fv)
  flags.DEFINE_string('a', None, 'interpolate: first MIDI file.', flag_values=fv)
  flags.DEFINE_string('b', None, 'interpolate: second MIDI file.', flag_values=fv)
  flags.DEFINE_string('from_eval', None, 'interpolate: "I,J" / reconstruct: "I": take eval-split '
                      'examples instead of MIDI files.', flag_values=fv)
  flags.DEFINE_integer('steps', 7, 'interpolate: points from a to b, endpoints included.', flag_values=fv)
  flags.DEFINE_bool('with_inputs', True, 'interpolate / reconstruct: put the inputs (black in the '
                    'PNG) around the decoded pieces in the combined MIDI and PNG.', flag_values=fv)
  flags.DEFINE_string('input', None, 'reconstruct / transform: MIDI file.', flag_values=fv)
  flags.DEFINE_string('attribute', None, 'transform: attribute vector to add (python -m '
                      'mvae_jax.attributes list --workdir=RUN names them).', flag_values=fv)
  flags.DEFINE_string('amount', '1.0', 'transform: multiple of the vector to add; a comma-'
                      'separated list gives a sweep (e.g. -1.5,-0.5,0.5,1.5).', flag_values=fv)
  flags.DEFINE_bool('nearest', False, "sample: also report each sample's nearest training "
                    'window (Hamming distance, file and bar): does the model copy its data?',
                    flag_values=fv)
  flags.DEFINE_string('window', None, 'Which window of an input MIDI file: K (the K-th in time, '
                      'from 0) or bar:N (the one starting at bar N, from 1). Default: the first '
                      'with note onsets in every bar. interpolate: for both files unless '
                      '--window_a / --window_b.', flag_values=fv)
  flags.DEFINE_string('window_a', None, 'interpolate: window of --a (default --window).', flag_values=fv)
  flags.DEFINE_string('window_b', None, 'interpolate: window of --b (default --window).', flag_values=fv)
  flags.DEFINE_integer('track', None, 'Melody models: take the windows of this track of the '
                       'input file(s) only (the numbers the command prints with the windows).',
                       flag_values=fv)
  flags.DEFINE_bool('any_program', False, 'A magenta-mode 2-bar melody model (trained on GM '
                    'programs 0..31, the reference\'s rule) also takes notes of other programs.',
                    flag_values=fv)
  flags.DEFINE_bool('wav', False, 'Also render every MIDI file to WAV (needs midirenderer).', flag_values=fv)
  flags.DEFINE_bool('overwrite', False, 'Write into --out even if it already holds files.', flag_values=fv)


def main(argv: Sequence[str]) -> int:
  # Library logging goes to <workdir>/generate.log only when --workdir is a run: a mistyped
  # folder gets nothing written into it.
  console.setup(FLAGS.workdir if cli.is_run_dir(FLAGS.workdir) else None, 'generate')
  if len(argv) != 2 or argv[1] not in COMMANDS:
    return cli.error(f'usage: python -m mvae_jax.generate {{{"|".join(COMMANDS)}}} '
                     f'--workdir=RUN [flags]; got {list(argv[1:])}', cli.EXIT_USAGE)
  if not FLAGS.workdir:
    return cli.error('--workdir is required', cli.EXIT_USAGE)
  try:
    check_arguments(argv[1], num=FLAGS.num, temperature=FLAGS.temperature, steps=FLAGS.steps,
                    a=FLAGS.a, b=FLAGS.b, from_eval=FLAGS.from_eval, input_path=FLAGS.input)
  except ArgumentError as e:
    return cli.error(str(e), cli.EXIT_USAGE)
  try:
    paths = run_command(
        argv[1], workdir=FLAGS.workdir, step=FLAGS.checkpoint_step, out=FLAGS.out,
        seed=FLAGS.seed, num=FLAGS.num, temperature=FLAGS.temperature, greedy=FLAGS.greedy,
        a=FLAGS.a, b=FLAGS.b, from_eval=FLAGS.from_eval, steps=FLAGS.steps,
        with_inputs=FLAGS.with_inputs, input_path=FLAGS.input, window=FLAGS.window,
        window_a=FLAGS.window_a, window_b=FLAGS.window_b, wav=FLAGS.wav,
        overwrite=FLAGS.overwrite, track=FLAGS.track, any_program=FLAGS.any_program,
        attribute=FLAGS.attribute, amount=FLAGS.amount, nearest=FLAGS.nearest)
  except ArgumentError as e:
    return cli.error(str(e), cli.EXIT_USAGE)
  except (FileNotFoundError, InputError, run_lib.CheckpointMismatchError, ImportError,
          ValueError, checkpoints.DamagedCheckpointError) as e:
    return cli.error(cli.one_line(e))
  except KeyboardInterrupt:
    return cli.interrupted()
  for p in paths:
    print(p)
  return 0


if __name__ == '__main__':
  define_flags()
  app.run(main)
