"""A bounded worker pool: one bad input file can cost its time limit, never the build.

`WorkerPool(func, args, workers, timeout_s, memory_gb).imap(items)` calls `func(item, *args)` for
every item in worker processes and yields `(index, result)` in completion order:

- each worker is a fresh interpreter (`python -c ...`), not a fork: nothing of the caller
  (threads, JAX, its `__main__`) is inherited or re-imported, so it is safe to use from anywhere;
- each worker has an address-space cap (`resource.setrlimit(RLIMIT_AS)`, `memory_gb`): a file
  that needs more gets a `MemoryError` inside `func` (which reports it) instead of taking the
  machine down;
- each item has a wall-clock limit (`timeout_s`): a worker that runs over is killed and replaced,
  and the item yields `failed(item, 'timeout', ...)`; a worker that dies (segfault, OOM kill)
  is replaced and the item yields `failed(item, 'crashed', ...)`;
- workers die with the parent (`PR_SET_PDEATHSIG`) and talk to it over two pipes with
  `multiprocessing.connection` framing; the clock of an item starts when it is sent (imports are
  done before a worker reports ready).

`func` is named as `'package.module:function'` so that a worker imports it itself; it must never
raise for bad input (a raise is reported as reason 'error'). Results are dicts with at least
`path`, `reason`, `detail`; `failed()` makes one for an item the pool had to give up on.
"""

from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.connection
import os
import resource
import signal
import subprocess
import sys
import time


def failed(item, reason: str, detail: str) -> dict:
  """The result of an item whose worker ran over its time or died."""
  return {'path': item.path, 'file_id': item.file_id, 'reason': reason, 'detail': detail,
          'windows': {}, 'hashes': {}, 'counts': {}, 'seconds': None}


def _worker_main(read_fd, write_fd, memory_bytes):
  """Entry point of a worker process: gets (func, args), then converts items until None."""
  # Ctrl-C reaches every process of the terminal's group: the parent decides (it stops the pool),
  # so a worker prints no traceback of its own.
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  try:  # Linux: die with the parent, even when stuck inside an item.
    import ctypes  # pylint: disable=g-import-not-at-top
    ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
  except Exception:  # pylint: disable=broad-except
    pass
  conn_in = multiprocessing.connection.Connection(read_fd, writable=False)
  conn_out = multiprocessing.connection.Connection(write_fd, readable=False)
  func_name, args = conn_in.recv()
  module, name = func_name.split(':')
  func = getattr(importlib.import_module(module), name)
  if memory_bytes:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
  # Imports are done: from now on the parent's per-item clock measures only the work.
  conn_out.send(('ready', None))
  while True:
    try:
      msg = conn_in.recv()
    except (EOFError, KeyboardInterrupt):
      return
    if msg is None:
      return
    idx, item = msg
    t0 = time.monotonic()
    try:
      res = func(item, *args)
    except BaseException as e:  # pylint: disable=broad-except
      res = failed(item, 'error', f'{type(e).__name__}: {e}'[:300])
    res['seconds'] = time.monotonic() - t0
    conn_out.send((idx, res))


class WorkerPool:
  """Worker processes with a per-item timeout and memory cap; dead workers are replaced."""

  def __init__(self, func: str, args: tuple, workers: int, timeout_s: float,
               memory_gb: float | None):
    self._init = (func, tuple(args))
    self._memory = int(memory_gb * 2**30) if memory_gb else 0
    self._timeout = timeout_s
    self._workers = [self._spawn() for _ in range(workers)]

  def _spawn(self):
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    code = ('import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); '
            'from data_pipelines.workers import _worker_main; '
            f'_worker_main({to_child_r}, {from_child_w}, {self._memory})')
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env['PYTHONPATH'] = root + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    proc = subprocess.Popen([sys.executable, '-c', code], pass_fds=(to_child_r, from_child_w),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
    os.close(to_child_r)
    os.close(from_child_w)
    send = multiprocessing.connection.Connection(to_child_w, readable=False)
    try:
      send.send(self._init)
    except (BrokenPipeError, OSError):
      pass  # reported when the worker fails to say it is ready
    return {'proc': proc, 'send': send,
            'conn': multiprocessing.connection.Connection(from_child_r, writable=False),
            'task': None, 'since': 0.0, 'ready': False}

  def _replace(self, w):
    try:
      w['proc'].kill()
    except Exception:  # pylint: disable=broad-except
      pass
    w['proc'].wait()
    w['send'].close()
    w['conn'].close()
    i = self._workers.index(w)
    self._workers[i] = self._spawn()

  def imap(self, items):
    """Yields (index, result) for every item, in completion order."""
    todo = list(enumerate(items))[::-1]
    while todo or any(w['task'] is not None for w in self._workers):
      for w in self._workers:
        if w['task'] is None and todo and w['ready']:
          idx, item = todo.pop()
          try:
            w['send'].send((idx, item))
          except (BrokenPipeError, OSError):
            todo.append((idx, item))
            self._replace(w)
            continue
          w['task'], w['since'] = (idx, item), time.monotonic()
      starting = [w for w in self._workers if not w['ready']]
      busy = [w for w in self._workers if w['task'] is not None]
      ready = multiprocessing.connection.wait([w['conn'] for w in busy + starting], timeout=0.25)
      for w in starting:
        if w['conn'] in ready:
          try:
            w['conn'].recv()  # the worker's ('ready', None)
            w['ready'] = True
          except (EOFError, OSError) as e:
            w['proc'].wait()
            raise RuntimeError(f'a conversion worker died while starting (exit code '
                               f'{w["proc"].returncode}): cannot build') from e
      now = time.monotonic()
      for w in busy:
        idx, item = w['task']
        if w['conn'] in ready:
          try:
            got_idx, res = w['conn'].recv()
            assert got_idx == idx
            w['task'] = None
            yield idx, res
            continue
          except (EOFError, OSError):
            try:
              code = w['proc'].wait(5)
            except subprocess.TimeoutExpired:
              code = None
            w['task'] = None
            self._replace(w)
            res = failed(item, 'crashed', f'worker exit code {code}')
            res['seconds'] = now - w['since']
            yield idx, res
            continue
        if now - w['since'] > self._timeout:
          w['task'] = None
          self._replace(w)
          res = failed(item, 'timeout', f'> {self._timeout:.0f} s')
          res['seconds'] = now - w['since']
          yield idx, res

  def close(self):
    for w in self._workers:
      try:
        w['send'].send(None)
      except (BrokenPipeError, OSError):
        pass
    for w in self._workers:
      try:
        w['proc'].wait(5)
      except subprocess.TimeoutExpired:
        w['proc'].kill()
        w['proc'].wait()
      w['send'].close()
      w['conn'].close()
    self._workers = []

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
