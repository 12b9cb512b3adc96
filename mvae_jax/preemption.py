r"""Stopping a run on SIGTERM or SIGINT: the current step is saved, the exit status is 143 / 130.

A cloud scheduler that preempts a machine sends SIGTERM, then SIGKILL after a grace period
(usually 30 s); Ctrl-C sends SIGINT. `handle_signals()` (the train and quickstart commands run
inside it) installs a handler for both:

- inside the training loop (`deferred()`), a signal only records a stop request: the loop ends
  the step it is in, saves that step (after any pending asynchronous save has committed), waits
  for the save to commit and raises `Interrupted('interrupted at step N; saved; ...')`;
- anywhere else (building the dataset, restoring a checkpoint, evaluating at the end), the signal
  raises `Interrupted` at once, as Ctrl-C raises KeyboardInterrupt, and the `finally` blocks
  finish or remove a save under way;
- a second signal while a stop is pending raises at once (the user insists).

Multi-process runs: every process must save the same step, or one would wait forever in a save
the others never make. The stop request therefore travels inside the training step (each process
sets a flag in its slice of the batch and the step returns their maximum, see
`trainer.train_step`): all processes see it at the same step, and save and stop together. A
signal that reaches a process outside the loop ends that process alone; schedulers signal every
process of a job, and the others then stop the same way. `jax.distributed.initialize` installs
JAX's own SIGTERM notifier (for its preemption sync points, which we do not use); the commands
therefore start the distributed runtime first and install these handlers after it, so SIGTERM
reaches ours.

Without `handle_signals()` (a notebook, a test) nothing changes: SIGINT is KeyboardInterrupt.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_STATE: dict = {'installed': False, 'deferring': False, 'requested': None}


class Interrupted(Exception):
  """The run was stopped by SIGTERM / SIGINT; the message says what was saved. `exit_code` is
  the shell's convention for a signal: 128 + its number (143 for SIGTERM, 130 for SIGINT)."""

  def __init__(self, signum: int, message: str):
    super().__init__(message)
    self.signum = signum
    self.exit_code = 128 + int(signum)


def signal_name(signum: int) -> str:
  return signal.Signals(signum).name


def _handler(signum, frame) -> None:
  del frame
  if _STATE['deferring'] and _STATE['requested'] is None:
    _STATE['requested'] = signum  # the loop saves and stops at the end of this step
    return
  # Outside the loop no trained step is unsaved (the loop saves before it ends).
  raise Interrupted(signum, f'interrupted ({signal_name(signum)}); no trained step was lost; '
                    'rerun the same command to continue')


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
  """Installs the SIGTERM / SIGINT handlers for the `with` block (main thread only; elsewhere
  nothing is installed) and restores the previous ones afterwards."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = {s: signal.signal(s, _handler) for s in _SIGNALS}
  _STATE.update(installed=True, deferring=False, requested=None)
  try:
    yield
  finally:
    for s, h in previous.items():
      # None: a handler installed outside Python (JAX's own SIGTERM notifier): left replaced.
      signal.signal(s, h if h is not None else signal.SIG_DFL)
    _STATE.update(installed=False, deferring=False, requested=None)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
  """While inside, a first signal only records a stop request (see `requested`)."""
  before = _STATE['deferring']
  _STATE['deferring'] = _STATE['installed']
  try:
    yield
  finally:
    _STATE['deferring'] = before


def requested() -> int | None:
  """The signal number of a pending stop request, or None."""
  return _STATE['requested']
