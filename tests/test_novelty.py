"""Nearest training windows of samples (`mvae_jax.novelty`): the vectorised search against a
brute-force loop, and a training window planted among samples found at distance 0 with its file
and bar, on the Freedoom melody windows."""
import json
import os

import numpy as np
import pytest

from mvae_jax import novelty
from tests.test_generate import FREEDOOM, smoke_run
from mvae_jax import trained_model
from mvae_jax import input_pipeline


def test_nearest_windows_matches_brute_force():
  rng = np.random.default_rng(0)
  train = rng.integers(0, 4, (101, 8, 2))
  samples = rng.integers(0, 4, (5, 8, 2))
  samples[2] = train[57]
  for chunk in (None, 1, 7, 1000):
    index, dist = novelty.nearest_windows(samples, train, chunk=chunk)
    for i, s in enumerate(samples):
      d = (train != s).sum((1, 2))
      assert dist[i] == d.min() and index[i] == np.flatnonzero(d == d.min())[0]
  assert dist[2] == 0 and index[2] == 57
  with pytest.raises(ValueError, match='tokens per window'):
    novelty.nearest_windows(samples, train[:, :4])


def test_planted_training_window_is_found_with_file_and_bar(tfds_dir, tmp_path_factory,
                                                            tmp_path):
  del tfds_dir  # exports TFDS_DATA_DIR, where the Freedoom windows are built
  model = trained_model.Model.load(smoke_run('melody2', tmp_path_factory.mktemp('novelty')))
  train, index, paths = input_pipeline.split_windows(model.config.data, 'train', with_paths=True)
  # The fast record parser reads what TFDS's own decoding gives.
  source = input_pipeline.get_source(model.config.data, 'train')
  keys = [0, 7, len(source) - 1]
  for k, ex in zip(keys, source.__getitems__(keys)):
    np.testing.assert_array_equal(train[k, :, 0], ex['tokens'])
    assert paths[k] == ex['path'].decode()
  j = len(train) // 3
  rng = np.random.default_rng(1)
  samples = rng.integers(0, model.part_vocab[0], (4,) + train.shape[1:]).astype(np.int32)
  samples[1] = train[j]
  samples[3, :, 0] = train[j + 1, :, 0]
  samples[3, 5, 0] = (samples[3, 5, 0] + 7) % model.part_vocab[0]  # one token off
  report = novelty.nearest_training_windows(model, samples)
  assert [r['sample'] for r in report] == [0, 1, 2, 3]
  hit = report[1]
  assert hit['distance'] == 0 and hit['index'] == j and hit['path'] == paths[j]
  # The bar, read independently through the generation API's windows of that file.
  windows = model.windows(str(FREEDOOM / paths[j]))
  rows = np.flatnonzero((windows.tokens == train[j]).all((1, 2)))
  assert len(rows) == 1 and hit['bar'] == int(windows.bars[rows[0]])
  assert report[3]['distance'] <= 1
  assert report[0]['distance'] > 0 and report[0]['cells'] == 32
  lines = novelty.describe(report)
  assert f'{paths[j]} bar {hit["bar"]}' in lines[1] and 'a copy of a training window' in lines[1]
  # What `generate sample --nearest` writes.
  lines, written = novelty.write_nearest(model, samples, str(tmp_path))
  assert [os.path.basename(p) for p in written] == ['nearest.json', 'nearest.png']
  data = json.load(open(tmp_path / 'nearest.json'))
  assert data['samples'][1]['distance'] == 0 and data['samples'][1]['bar'] == hit['bar']
