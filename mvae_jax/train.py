r"""Training: `python -m mvae_jax.train --config=configs/melody2.py:small --workdir=runs/mel2`.

The command line only; the work is `mvae_jax.trainer.train_and_evaluate(config, workdir)`.
`--config.<section>.<field>=value` overrides any config field (`--config.model.z_size=256`).
An expected failure ends in one `error:` line (exit status 2 for a bad config or command line,
1 otherwise) after any pending save has finished or been cleaned up. SIGTERM / SIGINT save the
step being trained and end with `interrupted at step N; saved; rerun the same command to resume`
(exit status 143 / 130; `mvae_jax.preemption`).
"""
from __future__ import annotations

import os
import sys

if __name__ == '__main__':
  # First, before JAX loads: re-run with TCMalloc preloaded where the system has it (faster CPU
  # steps; `mvae_jax.machine.use_fast_allocator`, MVAE_ALLOCATOR=system turns it off).
  from mvae_jax import machine  # pylint: disable=g-import-not-at-top
  machine.use_fast_allocator()

import jax
from absl import app, flags

from data_pipelines import console
from mvae_jax import cli, config_lib, parallel, preemption, trainer
from mvae_jax import run as run_lib

FLAGS = flags.FLAGS


def define_flags(fv: flags.FlagValues = FLAGS) -> None:
  cli.define_config_flags(fv=fv)


def main(argv) -> int:
  del argv
  if FLAGS.config is None or FLAGS.workdir is None:
    return cli.error('--config and --workdir are required', cli.EXIT_USAGE)
  workdir = os.path.abspath(FLAGS.workdir)
  # Library logging goes to a file from the start (a temporary one while the run directory is
  # not a run: a bad config must create nothing), then to <workdir>/train.log once the config is
  # known to be good.
  console.setup(workdir if cli.is_run_dir(workdir) else None, 'train')
  # SIGTERM (preemption) and SIGINT (Ctrl-C): the step being trained is saved, one line, exit
  # 143 / 130 (see mvae_jax.preemption).
  # The distributed runtime first: it installs JAX's own SIGTERM notifier, which ours replaces.
  parallel.maybe_initialize_distributed()
  with preemption.handle_signals():
    try:
      config_lib.validate(FLAGS.config, num_devices=jax.device_count(),
                          process_count=jax.process_count())
      run_lib.check_config_fits(FLAGS.config, workdir)
      console.setup(workdir, 'train')
      trainer.train_and_evaluate(FLAGS.config, workdir)
    except preemption.Interrupted as e:
      print(str(e), file=sys.stderr, flush=True)
      return e.exit_code
    except config_lib.ConfigError as e:
      return cli.error(str(e), cli.EXIT_USAGE)
    except Exception as e:  # pylint: disable=broad-except
      line = cli.failure_message(e, workdir)
      if line is None:
        raise
      return cli.error(line)
  return 0


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.cli_flags_parser)
