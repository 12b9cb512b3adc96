"""What every command line shares: flag parsing that ends in one line, the failure policy.

A command (`python -m mvae_jax.train`, `eval`, `generate`, ...) is a thin module: its flags are
defined by a `define_flags()` function that runs only when the module is the program (never on
import), and its `main` calls library functions. An expected failure ends in one `error:` line on
stderr: exit status 2 (`EXIT_USAGE`) for a bad command line or config, 1 (`EXIT_FAILED`) for a
run that started (or could not) and stopped; a bug keeps its traceback.
"""
from __future__ import annotations

import errno
import os
import sys

from absl import flags

from mvae_jax import config_lib

EXIT_USAGE = 2   # the config or command line is wrong: nothing was written
EXIT_FAILED = 1  # the run started (or could not) and stopped; the message says why


def define_config_flags(default_config: str | None = None, default_workdir: str | None = None,
                        fv: flags.FlagValues = flags.FLAGS) -> None:
  """`--config` (a config file with dotted `--config.x.y=` overrides, locked) and `--workdir`."""
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file('config', default_config,
                                  'Config file, e.g. configs/melody2.py:small', flag_values=fv,
                                  lock_config=True)
  flags.DEFINE_string('workdir', default_workdir,
                      'Run directory (created; resumed when it has checkpoints).', flag_values=fv)


def is_run_dir(path: str | None) -> bool:
  """Whether `path` is a run directory (holds `config.json`): commands that read a run write
  their log there, and nothing into a folder that is not one."""
  return bool(path) and os.path.isfile(os.path.join(path, 'config.json'))


def interrupted(message: str = 'interrupted (SIGINT); nothing was written') -> int:
  """What a command that only reads a run (eval, generate) prints on Ctrl-C: one line, no
  traceback; returns 130 (128 + SIGINT)."""
  print(message, file=sys.stderr, flush=True)
  return 130


def one_line(e: BaseException) -> str:
  """An exception's message on one line."""
  return ' '.join(str(e).split())


def error(message: str, status: int = EXIT_FAILED) -> int:
  """Prints `error: <message>` on stderr; returns `status` for `main` to return."""
  print(f'error: {message}', file=sys.stderr, flush=True)
  return status


def failure_message(e: BaseException, workdir: str) -> str | None:
  """The one line a user sees for an expected failure, or None for a bug (traceback wanted)."""
  chain, seen = [], e
  while seen is not None and len(chain) < 20:
    chain.append(seen)
    seen = seen.__cause__ or seen.__context__
  for err in chain:
    if (isinstance(err, OSError) and err.errno == errno.ENOSPC) or (
        'No space left on device' in str(err)):
      where = os.path.dirname(err.filename) if getattr(err, 'filename', None) else workdir
      return f'no space left on device in {where}'
  from mvae_jax import checkpoints, runlock, trainer  # pylint: disable=g-import-not-at-top
  if isinstance(e, (config_lib.ConfigError, runlock.RunLockedError, trainer.NonFiniteLossError,
                    checkpoints.DamagedCheckpointError, trainer.DataError, FileNotFoundError,
                    PermissionError)):
    return one_line(e)
  if isinstance(e, ValueError) and type(e).__module__.startswith(('data_pipelines', 'mvae_jax')):
    return one_line(e)  # our own error classes (e.g. a build that found nothing)
  return None


def check_overrides(argv: list[str]) -> str | None:
  """The problem with the first `--config.<field>=` argument that names no config field, or None."""
  known = config_lib.leaves(config_lib.base_config())
  sections = {p.split('.', 1)[0] for p in known}
  for arg in argv[1:]:
    if not arg.startswith('--config.'):
      continue
    path = arg[len('--config.'):].split('=', 1)[0]
    if path not in known and path not in sections:
      return config_lib.unknown_field_message(path)
  return None


def cli_flags_parser(argv: list[str]) -> list[str]:
  """`app.run(main, flags_parser=cli_flags_parser)`: a bad command line or config file ends in
  one `error:` line on stderr and exit status 2 instead of a traceback."""
  problem = check_overrides(argv)
  if problem is None:
    try:
      rest = flags.FLAGS(argv)
    except Exception as e:  # pylint: disable=broad-except
      problem = _flag_error(e)
    else:
      try:  # a config file that failed to load only says so when first used
        config = flags.FLAGS['config'].value if 'config' in flags.FLAGS else None
        if hasattr(config, 'keys'):  # a config file (import_magenta's --config is a name)
          list(config.keys())
        return rest
      except Exception as e:  # pylint: disable=broad-except
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        problem = f'cannot load the config file: {lines[-1] if lines else type(e).__name__}'
  print(f'error: {problem}', file=sys.stderr, flush=True)
  sys.exit(2)


def _flag_error(e: BaseException) -> str:
  """One line from absl / ml_collections' parse errors (which carry the cause in a chain)."""
  msg = str(e).strip()
  cause = e.__cause__ or e.__context__
  if cause is not None and str(cause).strip() and str(cause).strip() not in msg:
    msg += f' ({str(cause).strip()})'
  lines = [line.strip() for line in msg.splitlines() if line.strip()]
  if any(line.startswith('Traceback') for line in lines):  # a config file that raised: its last line
    head = next(line for line in lines if not line.startswith('Traceback'))
    head = head.split('Traceback', 1)[0].rstrip(' :')
    lines = [head, lines[-1]]
  return ': '.join(lines)[:400] if len(lines) == 2 else ' '.join(lines)[:400]
