"""What a command prints, and where everything else goes; shared by every command line.

`setup(log_dir, name)`: every command line entry point (train, eval, generate, quickstart,
`data_pipelines.build`, ...) calls it first. The console then holds our own lines only (progress
with ETA, metrics, results, our warnings, errors); library logging (Orbax, absl, TFDS, JAX's
backend probing, Python warnings), at every level, goes to `<log_dir>/<name>.log`, and so do the
tracebacks Python would print for exceptions in background threads and in `__del__` methods
(Orbax's asyncio machinery on a full disk or a damaged checkpoint): a failure is reported by our
own one `error:` line, with the details in the log. When the log file itself cannot be written (a
full disk), library records are dropped silently instead of printing `--- Logging error ---`
tracebacks. With `--verbosity=N` (absl's flag; `-v`) the library lines are shown on the console
too. Progress bars of libraries (TFDS's tqdm) are off unless verbose on a terminal; our
own progress lines use no escape codes when stdout / stderr is not a terminal.
"""
from __future__ import annotations

import logging as py_logging
import math
import os
import sys
import tempfile
import threading
import time
from typing import TextIO

from absl import flags, logging


def duration(seconds: float) -> str:
  """`7m20s`, `1h05m`."""
  if not math.isfinite(seconds):
    return '?'
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f'{h}h{m:02d}m' if h else f'{m}m{s:02d}s'


_STATE = {'verbose': False, 'handler': None, 'path': None}
_QUIET = py_logging.CRITICAL + 1  # a handler level that lets no record through


class _LogFile(py_logging.FileHandler):
  """The library log file. A record that cannot be written (full disk, file removed) is
  dropped, and the file given up, instead of a traceback on the console for every record."""

  broken = False

  def emit(self, record: py_logging.LogRecord) -> None:
    if not self.broken:
      super().emit(record)

  def handleError(self, record: py_logging.LogRecord) -> None:  # noqa: N802 (logging's name)
    del record
    self.broken = True
    try:
      self.close()
    except Exception:  # pylint: disable=broad-except
      pass


def _to_log(what: str, exc_type, exc_value, exc_tb) -> None:
  py_logging.getLogger('mvae_jax.uncaught').warning(
      '%s', what, exc_info=(exc_type, exc_value, exc_tb))


def _unraisable_hook(unraisable) -> None:
  """`Exception ignored in ...` (e.g. Orbax's event loop closed under a failed save): logged."""
  _to_log(f'exception ignored in {unraisable.object!r}: {unraisable.err_msg or ""}',
          unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback)


def _thread_hook(args) -> None:
  """An exception that ended a background thread (a library's): logged, not printed."""
  if args.exc_type is SystemExit:
    return
  name = args.thread.name if args.thread is not None else '?'
  _to_log(f'exception in thread {name}', args.exc_type, args.exc_value, args.exc_traceback)
_FORMAT = '%(levelname).1s%(asctime)s %(name)s %(filename)s:%(lineno)d] %(message)s'


def _verbosity_given() -> bool:
  """True when the user passed absl's --verbosity / -v (after flags are parsed)."""
  try:
    return bool(flags.FLAGS['verbosity'].present)
  except KeyError:
    return False


def setup(log_dir: str | None, name: str, verbose: bool | None = None) -> str:
  """Sends library logging to `<log_dir>/<name>.log` (appended); returns that path (absolute).

  Args:
    log_dir: the run directory (train, eval, generate, quickstart) or the data directory (build);
      created if missing. None, or a directory that cannot be written: a file in the temp dir.
    name: the command, the log file's stem.
    verbose: also show library logging on the console; None = whether --verbosity was given.
  """
  verbose = _verbosity_given() if verbose is None else verbose
  _STATE['verbose'] = verbose
  path = None
  for folder in ([log_dir] if log_dir else []) + [tempfile.gettempdir()]:
    candidate = os.path.abspath(os.path.join(
        folder, f'{name}.log' if folder == log_dir else f'mvae_jax-{name}.log'))
    try:
      os.makedirs(folder, exist_ok=True)
      handler = _LogFile(candidate, mode='a', encoding='utf-8')
      path = candidate
      break
    except OSError:
      continue
  root = py_logging.getLogger()
  if _STATE['handler'] is not None:
    root.removeHandler(_STATE['handler'])
    _STATE['handler'].close()
    _STATE['handler'] = None
  if path is not None:
    handler.setFormatter(py_logging.Formatter(_FORMAT))
    handler.setLevel(py_logging.DEBUG if verbose else py_logging.INFO)
    root.addHandler(handler)
    _STATE['handler'], _STATE['path'] = handler, path
    try:
      handler.stream.write(f'==== {name} started {time.strftime("%Y-%m-%d %H:%M:%S")} '
                           f'(pid {os.getpid()}): {" ".join(sys.argv)}\n')
    except OSError:
      handler.handleError(None)
  if not verbose:
    # absl's verbosity is also the absl logger's level: INFO, so that the file gets it.
    logging.set_verbosity(logging.INFO)
    root.setLevel(py_logging.INFO)
  absl_handler = logging.get_absl_handler()
  absl_handler.setLevel(py_logging.NOTSET if verbose else _QUIET)
  # Any other console handler on the root logger (e.g. a library's basicConfig) too.
  for h in root.handlers:
    if (h is not _STATE['handler'] and h is not absl_handler
        and isinstance(h, py_logging.StreamHandler)
        and not isinstance(h, py_logging.FileHandler)):
      h.setLevel(py_logging.NOTSET if verbose else _QUIET)
  py_logging.captureWarnings(True)  # library warnings -> logger 'py.warnings' -> the file
  if not verbose:
    sys.unraisablehook = _unraisable_hook
    threading.excepthook = _thread_hook
  else:
    sys.unraisablehook, threading.excepthook = sys.__unraisablehook__, threading.__excepthook__
  return path or ''


def is_verbose() -> bool:
  """Whether library logging is shown on the console (see `setup`)."""
  return _STATE['verbose']


def log_path() -> str | None:
  """The file `setup` sends library logging to (None before `setup`)."""
  return _STATE['path']


def is_terminal(stream: TextIO | None = None) -> bool:
  stream = sys.stderr if stream is None else stream
  return bool(getattr(stream, 'isatty', None) and stream.isatty())


class Progress:
  """Progress of a long loop: `[label] 1200/5000 windows, 52.1 windows/s, 23 s elapsed, ETA 73 s`
  (with an optional note after the count: `, 3 skipped`), on stderr: one updating line on a
  terminal, a line every 15 s otherwise (no escape codes in logs). Work that ends within
  `quiet_s` seconds prints nothing; the last line is written when the count reaches `total`
  (or at `close`)."""

  def __init__(self, label: str, total: int, unit: str = 'items', *, quiet_s: float = 0.0,
               stream: TextIO | None = None, enabled: bool = True):
    self.label, self.total, self.unit = label, total, unit
    self.stream = stream or sys.stderr
    self.tty = is_terminal(self.stream)
    self.quiet_s, self.enabled = quiet_s, enabled
    self.t0 = self.last = time.monotonic()
    self.done, self.note, self.shown, self.final = 0, '', False, False

  def update(self, n: int = 1, note: str | None = None) -> None:
    """`n` more done; `note` replaces the text after the count."""
    self.done += n
    if note is not None:
      self.note = note
    now = time.monotonic()
    if not self.enabled or now - self.t0 < self.quiet_s:
      return
    finished = self.done >= self.total
    if not finished and now - self.last < (0.5 if self.tty else 15.0):
      return
    self._write(now, finished)

  def close(self) -> None:
    """Writes the last line, if any line was shown and the last one was not."""
    if self.enabled and self.shown and not self.final:
      self._write(time.monotonic(), True)

  def _write(self, now: float, final: bool) -> None:
    self.last, self.shown, self.final = now, True, final
    elapsed = now - self.t0
    rate = self.done / max(elapsed, 1e-9)
    eta = max(self.total - self.done, 0) / max(rate, 1e-9)
    note = f', {self.note}' if self.note else ''
    line = (f'[{self.label}] {self.done}/{self.total} {self.unit}{note}, {rate:.1f} '
            f'{self.unit}/s, {elapsed:.0f} s elapsed, ETA {eta:.0f} s')
    if self.tty:
      self.stream.write('\r' + line + ('\n' if final else ''))
    else:
      self.stream.write(line + '\n')
    self.stream.flush()
