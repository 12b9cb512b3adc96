"""The studio's engine: loaded runs, uploaded MIDI files, held-out examples and model jobs.

No web code here: `server.py` maps HTTP requests onto `Studio`'s methods, and a notebook can use
`Studio` directly. What it guarantees:

* Every model computation runs on ONE thread (`Studio._compute`, a single-thread executor), in
  arrival order. XLA on the CPU already spreads one call over every core, so two calls at once
  gain nothing; and one thread means each jitted function is compiled once per shape, never
  twice by two requests that miss the compile cache together. Batch sizes are padded to powers
  of two by `Model`, so sample 3 and sample 4 share one compiled function.
* Every operation is a `Job` with a stage ('waiting: 2 jobs ahead', 'compiling for this size
  (once)', 'decoding 7 points', ...) and, once an operation of the same size has run, an
  estimate of its duration, so a page can show progress while it waits.
* Uploaded files are bounded in size (`max_upload_bytes`) and parsed in a worker process of
  `data_pipelines.workers.WorkerPool` with the data builders' limits (`FILE_TIMEOUT_S` of wall
  clock, `WORKER_MEMORY_GB` of address space): a file that hangs or explodes the parser costs its
  time limit and a worker, never the server. Bad input raises `StudioError` with a message that
  names the file and the reason, and the HTTP status to answer with.

Pieces are returned as JSON-ready dicts (see `Studio.piece`):

  {'label': 'sample 0', 'steps': 32,
   'tokens': [[t_part0, t_part1, ...], ...],          # int [time][parts], the model's classes
   'notes': [{'part': 0, 'pitch': 62, 'start': 0, 'end': 3}, ...  # steps (16ths), end exclusive
             {'part': 2, 'pitch': 36, 'row': 0, 'start': 4, 'end': 5}, ...]}  # drums: row = class

and a run's description (`Studio.run_info`) names the parts, the drum rows and the pitch range.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import itertools
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import traceback
from typing import Any, Callable, Sequence

import numpy as np

from data_pipelines import encoding
from data_pipelines.conversion import FILE_TIMEOUT_S, WORKER_MEMORY_GB
from data_pipelines import inputs
from data_pipelines.inputs import InputError, InputWindows
from mvae_jax import attributes, metrics, plotting
from mvae_jax.trained_model import (DEFAULT_TEMPERATURE, Model, concatenate, slerp_points,
                                    to_midi)

log = logging.getLogger('mvae_jax.studio')

# Bounds of every request (the API's schema uses the same numbers).
MAX_UPLOAD_BYTES = 4 * 2**20   # MIDI files are rarely above 200 KB; the largest Lakh files ~2 MB
MAX_NUM = 64                   # pieces per sample request
MAX_STEPS = 33                 # points of an interpolation, endpoints included
MAX_TEMPERATURE = 10.0
MAX_SEED = 2**31 - 1
MAX_MIDI_PIECES = 128          # pieces in one MIDI download
QPM_MIN, QPM_MAX = 20.0, 300.0
KEEP_UPLOADS = 64              # uploads kept (oldest forgotten first)
KEEP_JOBS = 64                 # finished jobs kept for polling (with their results)

DRUM_ROWS = tuple({'name': n, 'pitch': p} for n, p in
                  zip(plotting.DRUM_NAMES, encoding.DRUM_OUTPUT_PITCHES))


class StudioError(Exception):
  """A request the studio cannot serve; `status` is the HTTP status to answer with."""

  def __init__(self, message: str, status: int = 422):
    super().__init__(message)
    self.status = status


# ----------------------------------------------------------------------------- uploads

def safe_name(name: str) -> str:
  """An uploaded file's name as a plain file name: `../My Song (v2).mid` -> `My Song _v2_.mid`."""
  base = re.split(r'[\\/]', name or '')[-1]
  base = re.sub(r'[^A-Za-z0-9._ -]+', '_', base).strip(' .')[:100]
  return base or 'upload.mid'


@dataclasses.dataclass
class Upload:
  id: str
  name: str                  # safe_name of the uploaded name
  location: str
  size: int
  windows: dict = dataclasses.field(default_factory=dict)  # spec -> InputWindows | StudioError


class Uploads:
  """Uploaded files on disk (a temporary folder), parsed per window spec in a worker pool."""

  def __init__(self, folder: str, *, max_bytes: int = MAX_UPLOAD_BYTES,
               timeout_s: float = FILE_TIMEOUT_S, memory_gb: float | None = WORKER_MEMORY_GB,
               keep: int = KEEP_UPLOADS):
    self.folder, self.max_bytes, self.timeout_s, self.memory_gb = folder, max_bytes, timeout_s, \
        memory_gb
    self.keep = keep
    self._uploads: collections.OrderedDict[str, Upload] = collections.OrderedDict()
    self._ids = itertools.count(1)
    self._lock = threading.Lock()  # the dict
    # The pool is made and used on this one long-lived thread only: a worker dies with the
    # thread that started it (PR_SET_PDEATHSIG), and the pool is not thread-safe.
    self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='studio-uploads')
    self._pool = None

  def start_pool(self) -> concurrent.futures.Future:
    """Starts the parsing worker (it imports the model code: seconds) before the first upload."""
    return self._thread.submit(self._start_pool)

  def _start_pool(self) -> None:
    if self._pool is None:
      from data_pipelines import workers  # pylint: disable=g-import-not-at-top
      self._pool = workers.WorkerPool('data_pipelines.inputs:parse_upload', (), 1,
                                      self.timeout_s, self.memory_gb)

  def too_big(self, size: int, name: str) -> StudioError:
    return StudioError(f'{safe_name(name)} is {size / 2**20:.1f} MB; the studio takes MIDI files '
                       f'up to {self.max_bytes / 2**20:g} MB (start it with --max_upload_mb to '
                       'change that)', 413)

  def add(self, name: str, data: bytes) -> Upload:
    if len(data) > self.max_bytes:
      raise self.too_big(len(data), name)
    if not data:
      raise StudioError(f'{safe_name(name)} is empty (0 bytes)')
    with self._lock:
      uid = f'u{next(self._ids)}'
    folder = os.path.join(self.folder, uid)
    os.makedirs(folder)
    up = Upload(uid, safe_name(name), os.path.join(folder, safe_name(name)), len(data))
    with open(up.location, 'wb') as f:
      f.write(data)
    with self._lock:
      self._uploads[uid] = up
      while len(self._uploads) > self.keep:
        _, old = self._uploads.popitem(last=False)
        shutil.rmtree(os.path.dirname(old.location), ignore_errors=True)
    return up

  def get(self, uid: str) -> Upload:
    with self._lock:
      up = self._uploads.get(uid)
      if up is None:
        raise StudioError(f'no upload {uid!r} (uploads are kept while the studio runs, the '
                          f'last {self.keep}); upload the file again', 404)
      self._uploads.move_to_end(uid)
      return up

  def windows(self, up: Upload, spec: encoding.WindowSpec) -> InputWindows:
    """The file's windows for `spec`, parsed once per spec in the worker. Raises StudioError."""
    got = up.windows.get(spec)
    if got is None:
      got = self._parse(up, spec)
      up.windows[spec] = got
    if isinstance(got, StudioError):
      raise got
    return got

  def _parse(self, up: Upload, spec: encoding.WindowSpec) -> InputWindows | StudioError:
    return self._thread.submit(self._parse_in_thread, up, spec).result()

  def _parse_in_thread(self, up: Upload, spec: encoding.WindowSpec
                       ) -> InputWindows | StudioError:
    try:
      self._start_pool()
      [(_, res)] = list(self._pool.imap([inputs.UploadItem(up.name, up.id, up.location, spec)]))
    except RuntimeError as e:  # the worker could not start
      if self._pool is not None:
        self._pool.close()
      self._pool = None
      return StudioError(f'{up.name}: cannot parse uploads: {e}', 500)
    reason = res['reason']
    if reason == 'unusable':
      return StudioError(res['detail'])
    if reason == 'timeout':
      return StudioError(f'{up.name}: reading it took longer than {self.timeout_s:g} s (the '
                         'limit per file of the data builders), so it was stopped')
    if reason == 'crashed':
      return StudioError(f'{up.name}: the MIDI reader crashed on it ({res["detail"]})')
    if reason:  # 'error': an exception inside the reader, MemoryError included
      detail = res['detail']
      if detail.startswith('MemoryError'):
        return StudioError(f'{up.name}: reading it needs more than the '
                           f'{self.memory_gb:g} GB a reader may use')
      return StudioError(f'{up.name}: cannot read it ({detail})')
    return InputWindows(label=up.name, tokens=res['tokens'], bars=res['bars'],
                        seconds=res['start_seconds'], num_bars=res['num_bars'],
                        default=res['default'], complete_bars=res['complete_bars'],
                        track=res.get('track'), track_names=res.get('track_names', {}))

  def close(self) -> None:
    def stop():
      if self._pool is not None:
        self._pool.close()
        self._pool = None
    self._thread.submit(stop).result()
    self._thread.shutdown(wait=True)


# ----------------------------------------------------------------------------- jobs

@dataclasses.dataclass
class Job:
  """One model operation. `state`: queued -> running -> done | error."""
  id: str
  op: str
  run: str
  key: tuple                   # what makes two jobs the same size (for the duration estimate)
  created: float = dataclasses.field(default_factory=time.time)
  state: str = 'queued'
  stage: str = 'queued'
  started: float | None = None
  finished: float | None = None
  estimate_s: float | None = None
  result: Any = None
  error: str | None = None
  status: int = 200
  future: concurrent.futures.Future | None = None

  def progress(self) -> float | None:
    """0..1 when the duration can be estimated (a job of the same size ran before), else None."""
    if self.state in ('done', 'error'):
      return 1.0
    if self.state != 'running' or not self.estimate_s:
      return 0.0 if self.state == 'queued' else None
    return min(0.95, (time.time() - self.started) / self.estimate_s)

  def describe(self, ahead: int = 0, with_result: bool = True) -> dict:
    now = time.time()
    out = {'id': self.id, 'op': self.op, 'run': self.run, 'state': self.state,
           'stage': f'waiting: {ahead} job{"s" if ahead != 1 else ""} ahead'
                    if self.state == 'queued' and ahead else self.stage,
           'progress': self.progress(), 'estimate_s': self.estimate_s,
           'elapsed_s': round((self.finished or now) - (self.started or self.created), 3)}
    if self.state == 'error':
      out['error'], out['status'] = self.error, self.status
    if self.state == 'done' and with_result:
      out['result'] = self.result
    return out


# ----------------------------------------------------------------------------- runs

@dataclasses.dataclass
class Run:
  id: str
  model: Model
  eval_source: Any = None      # random-access eval split, once loaded
  eval_error: str | None = None
  attributes: list | None = None


def _run_ids(workdirs: Sequence[str]) -> list[str]:
  """Short unique ids from the run folders' names: `runs/mel2` -> `mel2` (`mel2-2` if taken)."""
  ids = []
  for w in workdirs:
    base = re.sub(r'[^A-Za-z0-9_.-]+', '-', os.path.basename(os.path.normpath(w))).strip('-.')
    base = base or 'run'
    rid, k = base, 2
    while rid in ids:
      rid, k = f'{base}-{k}', k + 1
    ids.append(rid)
  return ids


def load_attribute_vectors(workdir: str, z_size: int) -> list[dict]:
  """The run's attribute vectors (`mvae_jax.attributes`, `<run>/attributes.npz`): [{'name',
  'vector': float32 [z_size], 'low', 'high'}] ([] if the run has none, or a file that does not
  fit the model: the page then hides its Attributes panel)."""
  try:
    vecs = attributes.load_attribute_vectors(workdir)
  except FileNotFoundError:
    return []
  except (OSError, KeyError, ValueError) as e:
    log.warning('%s: cannot read attribute vectors: %s', workdir, e)
    return []
  vectors = np.asarray(vecs.vectors, np.float32)
  if vectors.shape != (len(vecs.names), z_size) or not np.isfinite(vectors).all():
    log.warning('%s: vectors of shape %s do not fit this model (z_size %d)', workdir,
                vectors.shape, z_size)
    return []
  return [{'name': n, 'vector': v, 'low': float(lo), 'high': float(hi)}
          for n, v, lo, hi in zip(vecs.names, vectors, vecs.low_mean, vecs.high_mean)]


class Studio:
  """Loaded runs, uploads and the model thread. `close()` when done (stops the upload worker,
  removes the temporary folder)."""

  def __init__(self, runs: Sequence[str | Model], *, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               upload_timeout_s: float = FILE_TIMEOUT_S,
               upload_memory_gb: float | None = WORKER_MEMORY_GB, step: int | None = None,
               on_load: Callable[[str, Model], None] | None = None):
    """Loads every run (raises what `Model.load` raises for a bad one).

    Args:
      runs: run directories (trained, or imported Magenta checkpoints), or loaded `Model`s (a
        notebook's, or one with random parameters for a benchmark).
      max_upload_bytes: the largest MIDI file accepted.
      upload_timeout_s, upload_memory_gb: limits of the parsing worker per file.
      step: checkpoint step of every run directory (default: the latest of each).
      on_load: called with (workdir, model) after each run directory is loaded (progress lines).
    """
    if not runs:
      raise ValueError('no run directory given')
    names = [r if isinstance(r, str) else (r.workdir or f'model{k}') for k, r in enumerate(runs)]
    self.runs: dict[str, Run] = {}
    for rid, w, r in zip(_run_ids(names), names, runs):
      model = Model.load(w, step) if isinstance(r, str) else r
      self.runs[rid] = Run(rid, model)
      if on_load and isinstance(r, str):
        on_load(w, model)
    self._tmp = tempfile.mkdtemp(prefix='mvae_studio_')
    self.uploads = Uploads(os.path.join(self._tmp, 'uploads'), max_bytes=max_upload_bytes,
                           timeout_s=upload_timeout_s, memory_gb=upload_memory_gb)
    self._compute = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='studio-model')
    self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
    self._jobs_lock = threading.Lock()
    self._job_ids = itertools.count(1)
    self._durations: dict[tuple, float] = {}  # job key -> seconds of the last such job
    self._compiled: set[tuple] = set()        # job keys run at least once
    self._eval_lock = threading.Lock()
    self.started = time.time()

  # -- runs
  def run(self, run_id: str) -> Run:
    run = self.runs.get(run_id)
    if run is None:
      raise StudioError(f'no run {run_id!r}; this studio has {", ".join(self.runs)}', 404)
    return run

  def run_info(self, run_id: str) -> dict:
    run = self.run(run_id)
    m = run.model
    cfg = m.config
    spec = m.spec
    parts = []
    for k, (name, drums) in enumerate(zip(m.part_names, m.part_is_drums)):
      part = {'name': name, 'drums': bool(drums)}
      if not drums:
        part.update(min_pitch=spec.min_pitch, max_pitch=spec.max_pitch,
                    voice='bass' if name == 'bass' else 'piano')
      parts.append(part)
    return {
        'id': run.id, 'name': os.path.basename(m.workdir or run.id), 'workdir': m.workdir,
        'family': cfg.get('family', ''), 'preset': cfg.get('preset', ''),
        'kind': spec.kind, 'mode': spec.mode, 'step': m.step,
        'hierarchical': cfg.model.get('decoder', 'flat') == 'hier',
        'num_bars': spec.num_bars, 'steps_per_bar': spec.steps_per_bar,
        'steps_per_quarter': spec.steps_per_quarter, 'time': m.time,
        'parts': parts, 'drum_rows': list(DRUM_ROWS), 'use_encoder': m.use_encoder,
        'z_size': m.z_size, 'default_temperature': DEFAULT_TEMPERATURE,
    }

  def info(self) -> dict:
    return {'runs': [self.run_info(r) for r in self.runs],
            'limits': {'max_upload_bytes': self.uploads.max_bytes, 'max_num': MAX_NUM,
                       'max_steps': MAX_STEPS, 'max_temperature': MAX_TEMPERATURE,
                       'max_seed': MAX_SEED, 'qpm': [QPM_MIN, QPM_MAX],
                       'upload_timeout_s': self.uploads.timeout_s}}

  # -- pieces
  def piece(self, run: Run, tokens: np.ndarray, label: str) -> dict:
    """One piece int [time, parts] as JSON-ready notes and tokens (see the module docstring)."""
    m = run.model
    tokens = np.asarray(tokens).reshape(m.time, -1)
    notes = []
    for p, drums in enumerate(m.part_is_drums):
      if drums:
        rows, steps = np.nonzero(plotting.drum_hits(tokens[:, p]))
        notes += [{'part': p, 'pitch': encoding.DRUM_OUTPUT_PITCHES[r], 'row': r, 'start': s,
                   'end': s + 1} for r, s in zip(rows.tolist(), steps.tolist())]
      else:
        notes += [{'part': p, 'pitch': m.spec.min_pitch + k, 'start': s, 'end': e}
                  for s, e, k in plotting.melody_notes(tokens[:, p])]
    notes.sort(key=lambda n: (n['start'], n['part']))
    return {'label': label, 'steps': int(m.time), 'tokens': tokens.astype(int).tolist(),
            'notes': notes}

  def _tokens(self, run: Run, tokens: Any) -> np.ndarray:
    """Token lists from a client -> int32 [1, time, parts], or StudioError saying why not."""
    try:
      arr = np.asarray(tokens)
    except ValueError:  # numpy refuses ragged nested lists
      raise StudioError('tokens must be a [time][parts] array of integers; got ragged lists '
                        '(rows of different lengths)') from None
    if arr.dtype == object or arr.ndim != 2:
      raise StudioError(f'tokens must be a [time][parts] array of integers; got '
                        f'{"ragged lists" if arr.dtype == object else f"shape {arr.shape}"}')
    try:
      return run.model.tokens(arr[None])
    except InputError as e:
      raise StudioError(str(e)) from e

  def resolve(self, run_id: str, ref: dict) -> tuple[np.ndarray, str]:
    """An input of an operation -> (int32 [1, time, parts], label).

    `ref`: {'upload': ID, 'window': K | 'bar:N' | None} (a file's window; None = the default,
    the CLI's), {'eval': I} (a held-out example), or {'tokens': [[...]]} (any piece, e.g. one the
    page shows); 'label' names it in the result.
    """
    run = self.run(run_id)
    given = [k for k in ('upload', 'eval', 'tokens') if ref.get(k) is not None]
    if len(given) != 1:
      raise StudioError('an input is one of {"upload": id, "window": K}, {"eval": index} or '
                        f'{{"tokens": [[...]]}}; got '
                        f'{sorted(k for k in ref if ref[k] is not None)}')
    label = ref.get('label')
    if given == ['upload']:
      up = self.uploads.get(str(ref['upload']))
      windows = self.uploads.windows(up, run.model.spec)
      try:
        i = windows.select(ref.get('window'))
      except InputError as e:
        raise StudioError(str(e).replace('--window=', 'window ')) from e
      return windows.tokens[i:i + 1].astype(np.int32), label or (
          f'{up.name} bars {windows.bars[i]}-{windows.bars[i] + windows.num_bars - 1}')
    if given == ['eval']:
      i = int(ref['eval'])
      return self._eval_tokens(run, i)[None], label or f'held-out example {i}'
    return self._tokens(run, ref['tokens']), label or 'piece'

  # -- uploads
  def add_upload(self, run_id: str, name: str, data: bytes) -> dict:
    """Stores an uploaded file and lists its windows for the run (StudioError if it has none:
    the upload is kept, another run may use it)."""
    self.run(run_id)
    up = self.uploads.add(name, data)
    return self.upload_info(run_id, up.id)

  def upload_info(self, run_id: str, upload_id: str) -> dict:
    """An upload's windows for a run: [{'index', 'bars': [first, last], 'seconds', 'label'}],
    the default window (the CLI's), and the CLI's summary line."""
    run = self.run(run_id)
    up = self.uploads.get(upload_id)
    try:
      w = self.uploads.windows(up, run.model.spec)
    except StudioError as e:
      e.upload = up.id
      raise
    return {'upload': up.id, 'name': up.name, 'bytes': up.size, 'num_bars': w.num_bars,
            'default': w.default,
            'windows': [{'index': i, 'bars': [int(b), int(b) + w.num_bars - 1],
                         'seconds': round(float(s), 2), 'label': w.describe(i)}
                        for i, (b, s) in enumerate(zip(w.bars, w.seconds))],
            'summary': w.summary(w.default).replace('--window=', 'window ')}

  def upload_window(self, run_id: str, upload_id: str, window: str | int | None) -> dict:
    tokens, label = self.resolve(run_id, {'upload': upload_id, 'window': window})
    return self.piece(self.run(run_id), tokens[0], label)

  # -- held-out examples
  def _eval_split(self, run: Run):
    with self._eval_lock:
      if run.eval_source is None and run.eval_error is None:
        data = run.model.config.data
        try:
          from data_pipelines import build  # pylint: disable=g-import-not-at-top
          build.dataset_dir(data.source, data.kind, data.mode, data.data_dir or None)
          run.eval_source = build.data_source(data.source, data.kind, data.mode, 'eval',
                                              data.data_dir or None)
        except (FileNotFoundError, ValueError, KeyError, OSError) as e:
          run.eval_error = (f'no held-out examples for this run: {e}' if not isinstance(
              e, KeyError) else f'no held-out examples: unknown data source {data.source!r}')
      if run.eval_error:
        raise StudioError(run.eval_error)
      return run.eval_source

  def eval_info(self, run_id: str) -> dict:
    """{'available': bool, 'count': n, 'reason': why not}; never raises for a missing split."""
    run = self.run(run_id)
    try:
      return {'available': True, 'count': len(self._eval_split(run)), 'reason': None}
    except StudioError as e:
      return {'available': False, 'count': 0, 'reason': str(e)}

  def _eval_tokens(self, run: Run, i: int) -> np.ndarray:
    source = self._eval_split(run)
    if not 0 <= i < len(source):
      raise StudioError(f'held-out example {i} does not exist (the eval split has '
                        f'{len(source)}: 0..{len(source) - 1})', 404)
    ex = source[i]
    t = np.asarray(ex['tokens'] if isinstance(ex, dict) else ex, np.int32)
    return t[:, None] if t.ndim == 1 else t

  def eval_piece(self, run_id: str, i: int) -> dict:
    run = self.run(run_id)
    return self.piece(run, self._eval_tokens(run, i), f'held-out example {i}')

  # -- MIDI
  def midi(self, run_id: str, pieces: Sequence[Any], qpm: float = 120.0) -> bytes:
    """Pieces (token lists [time][parts]) one after another as one standard MIDI file."""
    run = self.run(run_id)
    _check_range('qpm', qpm, QPM_MIN, QPM_MAX)
    if not 1 <= len(pieces) <= MAX_MIDI_PIECES:
      raise StudioError(f'a MIDI download holds 1..{MAX_MIDI_PIECES} pieces, got {len(pieces)}')
    tokens = np.concatenate([self._tokens(run, p) for p in pieces])
    ns = concatenate(run.model.to_note_sequences(tokens, qpm=float(qpm)))
    fd, path = tempfile.mkstemp(suffix='.mid', dir=self._tmp)
    os.close(fd)
    try:
      to_midi(ns, path)
      with open(path, 'rb') as f:
        return f.read()
    finally:
      os.remove(path)

  # -- attributes (see the hook above)
  def attributes(self, run_id: str) -> list[dict]:
    run = self.run(run_id)
    if run.attributes is None:
      run.attributes = load_attribute_vectors(run.model.workdir, run.model.z_size) \
          if run.model.use_encoder and run.model.workdir else []
    return [{'name': a['name'], 'norm': float(np.linalg.norm(a['vector'])),
             'low': a['low'] if np.isfinite(a['low']) else None,
             'high': a['high'] if np.isfinite(a['high']) else None} for a in run.attributes]

  # -- model operations (each one a job on the model thread)
  def _sample(self, job: Job, run: Run, num: int, temperature: float, greedy: bool,
              seed: int) -> dict:
    job.stage = f'decoding {num} piece{"s" if num != 1 else ""}'
    tokens = run.model.sample_tokens(num, temperature, greedy, seed)
    return {'pieces': [self.piece(run, t, f'sample {i}') for i, t in enumerate(tokens)]}

  def _interpolate(self, job: Job, run: Run, a: dict, b: dict, steps: int, temperature: float,
                   greedy: bool, seed: int) -> dict:
    job.stage = 'reading the inputs'
    (ta, la), (tb, lb) = self.resolve(run.id, a), self.resolve(run.id, b)
    job.stage = 'encoding A and B'
    # Both in one call (Model.interpolation_z encodes them one by one): on a large encoder the
    # encoding is most of the time, and one batch of 2 costs about what a batch of 1 does.
    mu, _ = run.model.encode(np.concatenate([ta, tb]))
    z = slerp_points(mu[0], mu[1], steps)
    job.stage = f'decoding {steps} points'
    tokens = run.model.decode_tokens(z, temperature=temperature, greedy=greedy, seed=seed,
                                     shared_noise=not greedy)
    t = np.linspace(0.0, 1.0, steps)
    return {'inputs': [self.piece(run, ta[0], la), self.piece(run, tb[0], lb)],
            'pieces': [self.piece(run, x, f'{k}/{steps - 1}') for k, x in enumerate(tokens)],
            't': t.tolist(), 'z_a': z[0].tolist(), 'z_b': z[-1].tolist()}

  def _point(self, job: Job, run: Run, z_a: Sequence[float], z_b: Sequence[float], t: float,
             temperature: float, greedy: bool, seed: int) -> dict:
    za, zb = (np.asarray(v, np.float32) for v in (z_a, z_b))
    for name, v in (('z_a', za), ('z_b', zb)):
      if v.shape != (run.model.z_size,) or not np.isfinite(v).all():
        raise StudioError(f'{name} must be {run.model.z_size} finite numbers (the run\'s '
                          f'z_size), got {v.shape[0] if v.ndim == 1 else v.shape}')
    job.stage = 'decoding the point'
    z = np.asarray(metrics.slerp(za, zb, float(t)), np.float32)[None]
    tokens = run.model.decode_tokens(z, temperature=temperature, greedy=greedy, seed=seed,
                                     shared_noise=not greedy)
    return {'piece': self.piece(run, tokens[0], f't = {t:.2f}'), 't': float(t)}

  def _reconstruct(self, job: Job, run: Run, input: dict,  # pylint: disable=redefined-builtin
                   temperature: float, greedy: bool, seed: int) -> dict:
    job.stage = 'reading the input'
    tx, label = self.resolve(run.id, input)
    job.stage = 'encoding and decoding'
    rec = run.model.reconstruct_tokens(tx, temperature, greedy, seed)[0]
    return {'input': self.piece(run, tx[0], label),
            'output': self.piece(run, rec, f'reconstruction of {label}'),
            'equal_steps': float((rec == tx[0]).mean())}

  def _apply_attributes(self, job: Job, run: Run,
                        input: dict,  # pylint: disable=redefined-builtin
                        amounts: dict, temperature: float, greedy: bool, seed: int) -> dict:
    self.attributes(run.id)
    vectors = {a['name']: a['vector'] for a in run.attributes}
    unknown = sorted(set(amounts) - set(vectors))
    if unknown:
      raise StudioError(f'unknown attribute(s) {", ".join(unknown)}; this run has '
                        f'{", ".join(vectors) or "none"}')
    for name, a in amounts.items():
      _check_range(f'amount of {name}', a, -10.0, 10.0)
    job.stage = 'reading the input'
    tx, label = self.resolve(run.id, input)
    job.stage = 'encoding'
    mu, _ = run.model.encode(tx)
    z = mu + sum((float(a) * vectors[n] for n, a in amounts.items()), np.zeros_like(mu))
    job.stage = 'decoding'
    tokens = run.model.decode_tokens(z, temperature=temperature, greedy=greedy, seed=seed)
    shown = ', '.join(f'{n} {a:+g}' for n, a in amounts.items() if a) or 'unchanged'
    return {'input': self.piece(run, tx[0], label),
            'piece': self.piece(run, tokens[0], f'{label}: {shown}')}

  OPS = ('sample', 'interpolate', 'point', 'reconstruct', 'apply_attributes')

  def _validate(self, op: str, run: Run, kw: dict) -> tuple:
    """Checks the arguments before any work; returns the job's size key."""
    if op not in self.OPS:
      raise StudioError(f'unknown operation {op!r}; one of {", ".join(self.OPS)}', 404)
    if 'temperature' in kw:
      _check_range('temperature', kw['temperature'], 1e-6, MAX_TEMPERATURE)
    if 'seed' in kw:
      _check_int('seed', kw['seed'], 0, MAX_SEED)
    if op != 'sample' and not run.model.use_encoder:
      raise StudioError(f'{op} needs an encoder, but run {run.id} is a baseline '
                        '(model.use_encoder=False): it can only sample')
    size = 1
    if op == 'sample':
      size = _check_int('num', kw['num'], 1, MAX_NUM)
    elif op == 'interpolate':
      size = _check_int('steps', kw['steps'], 2, MAX_STEPS)
    elif op == 'point':
      _check_range('t', kw['t'], 0.0, 1.0)
    # Sizes share a compiled function within a power-of-two bucket (Model pads batches).
    return (run.id, op, max(4, 1 << (size - 1).bit_length()), bool(kw.get('greedy')))

  def submit(self, op: str, run_id: str, **kwargs) -> Job:
    """Queues operation `op` (`OPS`) on the model thread; returns its Job at once. Bad
    arguments raise StudioError before anything is queued."""
    run = self.run(run_id)
    key = self._validate(op, run, kwargs)
    with self._jobs_lock:
      job = Job(f'j{next(self._job_ids)}', op, run.id, key)
      self._jobs[job.id] = job
      while len(self._jobs) > KEEP_JOBS:
        oldest = next(iter(self._jobs.values()))
        if oldest.state not in ('done', 'error'):
          break
        self._jobs.popitem(last=False)
    job.future = self._compute.submit(self._execute, job, getattr(self, f'_{op}'), run, kwargs)
    return job

  def _execute(self, job: Job, fn: Callable, run: Run, kwargs: dict) -> None:
    job.state, job.started = 'running', time.time()
    job.estimate_s = self._durations.get(job.key)
    first = job.key not in self._compiled
    try:
      job.stage = 'compiling for this size (once)' if first else 'starting'
      result = fn(_Staged(job, first), run, **kwargs)
      job.result, job.state = result, 'done'
    except StudioError as e:
      job.error, job.status, job.state = str(e), e.status, 'error'
    except (InputError, ValueError) as e:
      job.error, job.status, job.state = str(e), 422, 'error'
    except Exception as e:  # pylint: disable=broad-except
      log.error('job %s (%s on %s) failed:\n%s', job.id, job.op, job.run, traceback.format_exc())
      job.error, job.status, job.state = f'internal error: {type(e).__name__}: {e}', 500, 'error'
    finally:
      job.finished = time.time()
      job.stage = 'done' if job.state == 'done' else 'failed'
      if job.state == 'done':
        # The first run of a size includes compiling: no estimate of the next one.
        if not first:
          self._durations[job.key] = job.finished - job.started
        self._compiled.add(job.key)

  def job(self, job_id: str) -> Job:
    with self._jobs_lock:
      job = self._jobs.get(job_id)
    if job is None:
      raise StudioError(f'no job {job_id!r} (finished jobs are kept for the last '
                        f'{KEEP_JOBS})', 404)
    return job

  def describe(self, job: Job, with_result: bool = True) -> dict:
    with self._jobs_lock:
      ahead = sum(1 for j in self._jobs.values()
                  if j.state in ('queued', 'running') and j.created < job.created
                  and j is not job) if job.state == 'queued' else 0
    return job.describe(ahead, with_result)

  def call(self, op: str, run_id: str, **kwargs) -> dict:
    """Runs an operation and waits for it: its result, or StudioError."""
    job = self.submit(op, run_id, **kwargs)
    job.future.result()
    if job.state == 'error':
      raise StudioError(job.error, job.status)
    return job.result

  def warmup(self, run_id: str) -> list[Job]:
    """Queues the page's default operations once, so they are compiled before a user asks:
    sample 4, and for a VAE an interpolation of 7 points, a point between, a reconstruction."""
    run = self.run(run_id)
    jobs = [self.submit('sample', run_id, num=4, temperature=DEFAULT_TEMPERATURE, greedy=False,
                        seed=0)]
    if run.model.use_encoder:
      x = {'tokens': np.zeros((run.model.time, len(run.model.part_vocab)), int).tolist()}
      z = [0.0] * run.model.z_size
      jobs += [self.submit('interpolate', run_id, a=x, b=x, steps=7,
                           temperature=DEFAULT_TEMPERATURE, greedy=False, seed=0),
               self.submit('point', run_id, z_a=z, z_b=z, t=0.5,
                           temperature=DEFAULT_TEMPERATURE, greedy=False, seed=0),
               self.submit('reconstruct', run_id, input=x, temperature=DEFAULT_TEMPERATURE,
                           greedy=True, seed=0)]
    return jobs

  def status(self) -> dict:
    with self._jobs_lock:
      active = [j for j in self._jobs.values() if j.state in ('queued', 'running')]
    return {'uptime_s': round(time.time() - self.started, 1),
            'jobs': [self.describe(j, with_result=False) for j in active]}

  def close(self) -> None:
    self._compute.shutdown(wait=True, cancel_futures=True)
    self.uploads.close()
    shutil.rmtree(self._tmp, ignore_errors=True)


class _Staged:
  """The job handle an operation sees: setting `stage` keeps the 'compiling' note on the first
  run of a size."""

  def __init__(self, job: Job, first: bool):
    self._job, self._first = job, first

  @property
  def stage(self) -> str:
    return self._job.stage

  @stage.setter
  def stage(self, text: str) -> None:
    self._job.stage = text + (' (compiling for this size, once)' if self._first else '')


def _check_range(name: str, value: Any, lo: float, hi: float) -> float:
  try:
    v = float(value)
  except (TypeError, ValueError):
    raise StudioError(f'{name} must be a number, got {value!r}') from None
  if not np.isfinite(v) or not lo <= v <= hi:
    raise StudioError(f'{name} must be a finite number in [{lo:g}, {hi:g}], got {value!r}')
  return v


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise StudioError(f'{name} must be a whole number, got {value!r}')
  if not lo <= value <= hi:
    raise StudioError(f'{name} must be in {lo}..{hi}, got {value}')
  return int(value)
