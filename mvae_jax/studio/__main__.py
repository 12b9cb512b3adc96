r"""Starts the studio: a local web page to play with trained MusicVAE runs.

  python -m mvae_jax.studio --workdir=runs/mel2 [--workdir=runs/drums2 ...] [--port=8765]

Loads every run once, prints the address and serves until Ctrl-C. Binds to 127.0.0.1 (this
machine only) unless --host says otherwise, with a warning: the studio has no login.
Library logging goes to <first workdir>/studio.log.
"""
from __future__ import annotations

if __name__ == '__main__':  # before JAX loads: TCMalloc where installed (see mvae_jax.machine)
  from mvae_jax import machine  # pylint: disable=g-import-not-at-top
  machine.use_fast_allocator()

import argparse
import errno
import ipaddress
import os
import socket
import sys
from typing import Sequence

DEFAULT_PORT = 8765


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog='python -m mvae_jax.studio',
      description='Play with trained MusicVAE runs in the browser: sample, interpolate, '
      'reconstruct, listen, download MIDI.')
  p.add_argument('--workdir', action='append', required=True, metavar='RUN',
                 help='run directory (trained, or an imported Magenta checkpoint); repeat for '
                 'several runs, the page lists them')
  p.add_argument('--checkpoint_step', type=int, default=None,
                 help='checkpoint step of every run (default: the latest of each)')
  p.add_argument('--host', default='127.0.0.1',
                 help='address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: '
                 'every network interface, with a warning)')
  p.add_argument('--port', type=int, default=DEFAULT_PORT,
                 help=f'port (default {DEFAULT_PORT}; 0 = any free port)')
  p.add_argument('--max_upload_mb', type=float, default=4.0,
                 help='largest MIDI file accepted, in MB (default 4)')
  p.add_argument('--warmup', action=argparse.BooleanOptionalAction, default=True,
                 help="compile the page's default operations right after starting (default on)")
  return p


def _is_loopback(host: str) -> bool:
  if host == 'localhost':
    return True
  try:
    return ipaddress.ip_address(host.strip('[]')).is_loopback
  except ValueError:
    return False


def _bind(host: str, port: int) -> socket.socket:
  """A listening socket (so that --port=0 can print the port it got)."""
  family = socket.AF_INET6 if ':' in host else socket.AF_INET
  sock = socket.socket(family, socket.SOCK_STREAM)
  sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  sock.bind((host.strip('[]'), port))
  sock.listen(128)
  sock.setblocking(False)
  return sock


def main(argv: Sequence[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  # Check the command line before loading anything.
  if not 0 <= args.port <= 65535:
    print(f'error: --port={args.port} is not a port number (0..65535)', file=sys.stderr)
    return 2
  if not (args.max_upload_mb > 0 and args.max_upload_mb <= 1024):
    print(f'error: --max_upload_mb={args.max_upload_mb:g} must be in (0, 1024]', file=sys.stderr)
    return 2
  for w in args.workdir:
    if not os.path.isdir(w):
      print(f'error: --workdir={w}: no such directory', file=sys.stderr)
      return 2
  # Listen first (a port in use is known at once, before seconds of loading).
  try:
    sock = _bind(args.host, args.port)
  except OSError as e:
    why = ('it is in use; pass --port=N, or --port=0 for any free port'
           if e.errno == errno.EADDRINUSE else e.strerror)
    print(f'error: cannot listen on {args.host}:{args.port}: {why}', file=sys.stderr)
    return 1
  loopback = _is_loopback(args.host)
  if not loopback:
    print(f'warning: --host={args.host} makes the studio reachable from other machines; it has '
          'no login: anyone who can reach this port can use the models and upload files',
          file=sys.stderr, flush=True)
  try:
    import uvicorn  # pylint: disable=g-import-not-at-top
    from mvae_jax.studio import server  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    sock.close()
    print(f'error: the studio needs its extra packages ({e.name} is missing): '
          'pip install -e ".[studio]"', file=sys.stderr)
    return 1
  from data_pipelines import console  # pylint: disable=g-import-not-at-top
  from mvae_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from mvae_jax import run as run_lib  # pylint: disable=g-import-not-at-top
  from mvae_jax.studio import engine  # pylint: disable=g-import-not-at-top
  log_path = console.setup(args.workdir[0], 'studio', verbose=False)

  def loaded(workdir, model):
    cfg = model.config
    print(f'loaded {workdir}: {cfg.get("family", "")}:{cfg.get("preset", "")} '
          f'({model.spec.kind}, {model.spec.mode} mode), step {model.step}', flush=True)

  try:
    studio = engine.Studio(args.workdir, max_upload_bytes=int(args.max_upload_mb * 2**20),
                           step=args.checkpoint_step, on_load=loaded)
  except (FileNotFoundError, run_lib.CheckpointMismatchError, ValueError, ImportError,
          checkpoints.DamagedCheckpointError) as e:
    print(f'error: {e}', file=sys.stderr)
    sock.close()
    return 1
  app = server.create_app(studio, allowed_hosts=server.LOOPBACK_HOSTS if loopback else None)
  # The upload worker imports the model code: start it now, not on the first upload.
  studio.uploads.start_pool()
  if args.warmup:
    for rid in studio.runs:
      studio.warmup(rid)
  port = sock.getsockname()[1]
  shown = f'[{args.host.strip("[]")}]' if ':' in args.host else args.host
  if args.host in ('0.0.0.0', '::'):  # every interface: this machine's own address works
    shown = '127.0.0.1' if args.host == '0.0.0.0' else '[::1]'
  print(f'mvae_jax studio: {len(studio.runs)} run{"s" if len(studio.runs) != 1 else ""} at '
        f'http://{shown}:{port}/  (API: http://{shown}:{port}/api/docs; log: {log_path}; '
        'Ctrl-C stops it)', flush=True)
  config = uvicorn.Config(app, log_level='warning', access_log=False, log_config=None,
                          timeout_graceful_shutdown=2)
  try:
    uvicorn.Server(config).run(sockets=[sock])
  except KeyboardInterrupt:  # Ctrl-C: uvicorn has stopped serving; re-raised by asyncio
    pass
  finally:
    studio.close()
    sock.close()
  print('mvae_jax studio: stopped', flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
