"""The bounded worker pool (data_pipelines/workers.py): one bad item costs its limit, not the run."""

import dataclasses
import os
import time

from data_pipelines import workers


@dataclasses.dataclass(frozen=True)
class Job:
  path: str
  action: str
  file_id: str = ''


def run_job(job: Job, scale: int) -> dict:
  """The pool's task function (imported by name in the workers)."""
  if job.action == 'hang':
    time.sleep(3600)
  if job.action == 'raise':
    raise ValueError('bad input')
  if job.action == 'die':
    os._exit(3)  # pylint: disable=protected-access
  if job.action == 'alloc':
    try:
      bytearray(4 * 2**30)  # over the 1 GiB cap
    except MemoryError:
      return {'path': job.path, 'reason': 'memory', 'detail': ''}
  return {'path': job.path, 'reason': None, 'detail': '', 'value': len(job.path) * scale}


def test_pool_survives_hangs_crashes_errors_and_memory():
  jobs = [Job('ok1', 'ok'), Job('hang', 'hang'), Job('raise', 'raise'), Job('die', 'die'),
          Job('alloc', 'alloc'), Job('ok22', 'ok')]
  t0 = time.monotonic()
  with workers.WorkerPool('tests.test_workers:run_job', (10,), workers=2, timeout_s=3.0,
                          memory_gb=1.0) as pool:
    got = dict(pool.imap(jobs))
  assert time.monotonic() - t0 < 60
  assert sorted(got) == list(range(len(jobs)))
  reasons = {jobs[i].path: r['reason'] for i, r in got.items()}
  assert reasons == {'ok1': None, 'hang': 'timeout', 'raise': 'error', 'die': 'crashed',
                     'alloc': 'memory', 'ok22': None}
  assert got[0]['value'] == 30 and got[5]['value'] == 40
  assert 'bad input' in got[2]['detail']
  # Every result carries its time; the hanging item ran its full limit.
  assert all(r['seconds'] is not None and r['seconds'] >= 0 for r in got.values())
  assert got[1]['seconds'] >= 3.0
