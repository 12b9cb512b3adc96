"""Metric logging of a training run (`MetricWriter`): from process 0, TensorBoard event files
(tensorboardX, no TensorFlow), JSON lines (`metrics.jsonl`), and one console line per log step.

Where library logging goes and what the console shows is `data_pipelines.console`.
"""
from __future__ import annotations

import json
import os
import time
from typing import Mapping

import jax

from data_pipelines.console import duration


class MetricWriter:
  """Writes scalars named with slashes (`train/loss/kl`); a no-op on processes other than 0."""

  def __init__(self, workdir: str, total_steps: int, start_step: int | None = None):
    """`start_step`: the step a run resumes from. Steps after it that an interrupted run had
    already logged are replayed, so they are dropped from `metrics.jsonl` and purged from
    TensorBoard (its `purge_step`); each step then appears once."""
    self.active = jax.process_index() == 0
    self.total_steps = total_steps
    self._last = None  # (time, step) of the previous console line
    self._tb = None
    self._jsonl = None
    if self.active:
      os.makedirs(workdir, exist_ok=True)
      from tensorboardX import SummaryWriter
      path = os.path.join(workdir, 'metrics.jsonl')
      purge = None
      if start_step is not None:
        purge = start_step + 1
        drop_steps_after(path, start_step)
      self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'), purge_step=purge)
      self._jsonl = open(path, 'a')

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self.active:
      return
    scalars = {k: float(v) for k, v in scalars.items()}
    for k, v in scalars.items():
      self._tb.add_scalar(k, v, step)
    self._jsonl.write(json.dumps({'step': step, **scalars}) + '\n')
    self._jsonl.flush()
    self._tb.flush()

  def console(self, step: int, scalars: Mapping[str, float], prefix: str = 'train') -> None:
    """`step 1200/3000 | loss 12.3 recon 10.1 kl 30.2 | 4.1 steps/s | ETA 7m20s`."""
    if not self.active:
      return
    now = time.time()
    rate = None
    if self._last is not None and step > self._last[1]:
      rate = (step - self._last[1]) / max(now - self._last[0], 1e-9)
    self._last = (now, step)
    shown = ' '.join(f'{k.split("/", 1)[-1]} {v:.4g}' for k, v in scalars.items())
    line = f'{prefix} step {step}/{self.total_steps} | {shown}'
    if rate:
      eta = (self.total_steps - step) / rate
      line += f' | {rate:.2f} steps/s | ETA {duration(eta)}'
    print(line, flush=True)

  def close(self) -> None:
    if self.active:
      self._tb.close()
      self._jsonl.close()


def drop_steps_after(path: str, step: int) -> None:
  """Rewrites the JSON-lines file `path` without its records of steps after `step` (and without
  a torn last line). Only regular files are rewritten."""
  if not os.path.isfile(path):
    return
  keep, changed = [], False
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except ValueError:
        changed = True
        continue
      if int(record.get('step', 0)) > step:
        changed = True
        continue
      keep.append(line if line.endswith('\n') else line + '\n')
  if changed:
    with open(path + '.tmp', 'w') as f:
      f.writelines(keep)
    os.replace(path + '.tmp', path)
