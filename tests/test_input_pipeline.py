"""The loader: augmentation limits, determinism by step, resumption, process slices."""
import os

import numpy as np
import pytest

from mvae_jax import input_pipeline as ip


def melody_source(n=40, t=32, vocab=130, seed=0):
  rng = np.random.default_rng(seed)
  rows = rng.integers(0, vocab, size=(n, t)).astype(np.int16)
  return [{'tokens': r} for r in rows]


def test_valid_shifts_keep_notes_in_range():
  tok = np.array([[0], [2], [1], [129]], np.int32)  # pitch 0 and pitch 127 present: no shift
  assert ip.valid_shifts(tok, [0], [130], -5, 6) == (0, 0)
  tok = np.array([[0], [5], [1], [120]], np.int32)  # pitches 3 .. 118
  assert ip.valid_shifts(tok, [0], [130], -5, 6) == (-3, 6)
  silent = np.zeros((8, 1), np.int32)
  assert ip.valid_shifts(silent, [0], [130], -5, 6) == (-5, 6)


def test_transpose_moves_only_note_ons_of_melody_parts():
  tok = np.array([[0, 0, 3], [10, 20, 7], [1, 1, 0]], np.int32)
  out = ip.transpose(tok, 2, [0, 1])
  np.testing.assert_array_equal(out, [[0, 0, 3], [12, 22, 7], [1, 1, 0]])


def test_augment_trio_moves_lead_and_bass_together_never_drums():
  aug = ip.Augment((130, 130, 512), (False, False, True))
  tok = np.array([[40, 30, 5], [0, 1, 511], [50, 35, 0]], np.int32)
  seen = set()
  for seed in range(40):
    out = aug(tok, np.random.default_rng(seed))
    shift = out[0, 0] - tok[0, 0]
    seen.add(int(shift))
    assert -5 <= shift <= 6
    np.testing.assert_array_equal(out[:, 1][tok[:, 1] >= 2] - tok[:, 1][tok[:, 1] >= 2], shift)
    np.testing.assert_array_equal(out[:, 2], tok[:, 2])
    np.testing.assert_array_equal(out[1, :2], [0, 1])
  assert len(seen) > 5  # the shift really varies


def test_train_stream_is_a_function_of_step_and_resumes_exactly():
  src = melody_source()
  aug = ip.Augment((130,), (False,))
  ds = ip.train_dataset(src, global_batch=8, seed=3, augment=aug, process_index=0, process_count=1)
  it = ip.train_iterator(ds, 0)
  first = [next(it)['tokens'] for _ in range(12)]  # 12 * 8 = 96 elements: more than 2 epochs
  assert first[0].shape == (8, 32, 1) and first[0].dtype == np.int32
  resumed = ip.train_iterator(ds, 7)
  for k in range(7, 12):
    np.testing.assert_array_equal(next(resumed)['tokens'], first[k])
  # each epoch is a new order and new shifts: epochs 0 and 1 differ
  assert not np.array_equal(np.concatenate(first[:5]), np.concatenate(first[5:10]))


def test_process_slices_partition_the_global_batch():
  src = melody_source()
  full = ip.train_dataset(src, global_batch=8, seed=1, augment=None, process_index=0,
                          process_count=1)
  halves = [ip.train_dataset(src, global_batch=8, seed=1, augment=None, process_index=p,
                             process_count=2) for p in range(2)]
  for step in range(6):
    joined = np.concatenate([h[step]['tokens'] for h in halves])
    np.testing.assert_array_equal(joined, full[step]['tokens'])
  with pytest.raises(ValueError, match='does not split'):
    ip.train_dataset(src, global_batch=9, seed=1, augment=None, process_index=0, process_count=2)


def test_eval_batches_cover_the_split_once_with_padding_weights():
  src = melody_source(n=21)
  batches = list(ip.eval_batches(src, global_batch=8, process_index=0, process_count=1))
  assert len(batches) == 3
  assert [b['weights'].sum() for b in batches] == [8, 8, 5]
  got = np.concatenate([b['tokens'][b['weights'] > 0] for b in batches])[..., 0]
  np.testing.assert_array_equal(got, np.stack([s['tokens'] for s in src]))
  assert len(list(ip.eval_batches(src, global_batch=8, num_batches=2, process_index=0,
                                  process_count=1))) == 2


def test_two_processes_needing_one_missing_dataset_build_it_once(tmp_path):
  """Two trainings started together on a fresh data dir: one builds, the other waits, both read."""
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  code = ('import ml_collections, sys; from mvae_jax import input_pipeline; '
          'd = ml_collections.ConfigDict(dict(source="freedoom", kind="drums_2bar", mode="paper", '
          f'data_dir={str(tmp_path)!r}, midi_dir="", workers=1)); '
          'print("windows", len(input_pipeline.get_source(d, "train")))')
  env = dict(os.environ, PYTHONPATH=root, JAX_PLATFORMS='cpu', PYTHONWARNINGS='ignore')
  procs = [subprocess.Popen([sys.executable, '-c', code], cwd=root, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
  stdout = [o[0] for o in outs]
  assert sum('building the freedoom drums_2bar' in s for s in stdout) == 1, stdout
  counts = {line for s in stdout for line in s.splitlines() if line.startswith('windows ')}
  assert len(counts) == 1 and int(next(iter(counts)).split()[1]) > 0, stdout
