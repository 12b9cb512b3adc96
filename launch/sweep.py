r"""Expands a config file's `sweep()` into training runs, one `--config.x=y` set each.

  python launch/sweep.py --config=configs/melody2.py:small --workdir=runs/mel2_sweep [--dry_run]
      [--launcher="launch/single_host.sh"] [-- --config.train.num_steps=500]

`sweep()` returns a list of {'section.field': value} dicts; run i goes to WORKDIR/<i>-<name> where
the name is made from its overrides. Runs go one after another; each resumes if it was interrupted.
"""
import argparse
import shlex
import subprocess
import sys

from mvae_jax import config_lib


def run_name(i: int, overrides: dict) -> str:
  parts = [f'{k.split(".")[-1]}={v}' for k, v in overrides.items()] or ['default']
  return f'{i}-' + ','.join(parts).replace('/', '_').replace(' ', '')


def commands(config: str, workdir: str, launcher: str, extra: list[str]) -> list[list[str]]:
  path = config.split(':', 1)[0]
  module = config_lib.config_module(path)
  if not hasattr(module, 'sweep'):
    raise SystemExit(f'{path} defines no sweep()')
  out = []
  for i, overrides in enumerate(module.sweep()):
    flags = [f'--config.{k}={v}' for k, v in overrides.items()]
    out.append(shlex.split(launcher) + [config, f'{workdir}/{run_name(i, overrides)}'] + flags + extra)
  return out


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument('--config', required=True)
  ap.add_argument('--workdir', required=True)
  ap.add_argument('--launcher', default='bash launch/single_host.sh')
  ap.add_argument('--dry_run', action='store_true', help='print the commands only')
  args, extra = ap.parse_known_args(argv)
  extra = [e for e in extra if e != '--']
  for cmd in commands(args.config, args.workdir, args.launcher, extra):
    print(shlex.join(cmd), flush=True)
    if not args.dry_run:
      subprocess.run(cmd, check=True)


if __name__ == '__main__':
  sys.exit(main())
