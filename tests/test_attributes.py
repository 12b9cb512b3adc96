"""Attribute functions, attribute vectors, `transform` and the attributes CLI.

The attribute functions are checked against values worked out by hand on tiny token arrays;
vectors, transforms and the change matrix run on `smoke` checkpoints: melody2 trained a few steps
on the Freedoom windows (vectors from its dataset split), drums2 and the trio freshly initialised
(vectors from a folder of two Freedoom songs, so no further dataset is built).
"""
import json
import math
import os
import shutil

import numpy as np
import pytest

from mvae_jax import attributes as A
from mvae_jax.attributes import __main__ as attributes_cli
from mvae_jax import generate
from tests.test_generate import INPUT_A, INPUT_B, check_midi, smoke_run
from mvae_jax import trained_model
from mvae_jax import input_pipeline

nan = math.nan


@pytest.fixture(scope='module')
def root(tmp_path_factory, tfds_dir):
  del tfds_dir  # exports TFDS_DATA_DIR, where the Freedoom datasets are built
  return tmp_path_factory.mktemp('attribute_runs')


@pytest.fixture(scope='module')
def two_songs(tmp_path_factory):
  """A folder with two Freedoom songs that have melody, drum and trio windows."""
  d = tmp_path_factory.mktemp('two_songs')
  for f in (INPUT_A, INPUT_B):
    shutil.copy(f, d / f.name)
  return str(d)


# ----------------------------------------------------------------------------- by hand

def _melody():
  """2 bars: C4 at step 0 (held to 2), D4 at 3 (odd 16th, held over 4), C#4 at 6 (off-beat 8th,
  held over 7 and 8), NOTE_OFF at 9, G4 at 16, NOTE_OFF at 18."""
  t = np.zeros((1, 32), np.int64)
  t[0, 0], t[0, 3], t[0, 6], t[0, 9], t[0, 16], t[0, 18] = 62, 64, 63, 1, 69, 1
  return t


def test_melody_attributes_by_hand():
  got = A.melody_attributes(_melody())
  want = {
      'note_density': 4 / 2,                  # 4 onsets in 2 bars
      'average_interval': (2 + 1 + 6) / 3,    # |62-60|, |61-62|, |67-61|
      'syncopation_16th': 1 / 4,              # D4 at step 3
      'syncopation_8th': 1 / 4,               # C#4 at step 6
      'c_diatonic': 3 / 4,                    # C, D, G in C major; C# not
      'pitch_range': 7.0,                     # G4 - C4
      'rest_fraction': 21 / 32,               # sounding: steps 0..8 and 16..17
  }
  assert list(got) == [n for n, _ in A.MELODY_ATTRIBUTES]
  for k, v in want.items():
    assert got[k][0] == pytest.approx(v), k


def test_melody_attribute_edge_cases():
  t = np.zeros((4, 32), np.int64)
  # Row 1: one note at the last step (odd 16th, no next step: not syncopated).
  t[1, 31] = 2 + 60
  # Row 2: a note at step 1 cut by a new note at 2 (not held: not syncopated), NOTE_OFF at 4.
  t[2, 1], t[2, 2], t[2, 4] = 2 + 60, 2 + 72, 1
  # Row 3: an off-beat 8th (step 2) held only one step (NOTE_OFF at 4): not 8th-syncopated, and
  # a 16th at 5 held over 6: 16th-syncopated.
  t[3, 2], t[3, 4], t[3, 5], t[3, 7] = 2 + 64, 1, 2 + 65, 1
  got = A.melody_attributes(t)
  np.testing.assert_allclose(got['note_density'], [0, 0.5, 1, 1])
  np.testing.assert_allclose(got['average_interval'], [nan, nan, 12, 1])
  np.testing.assert_allclose(got['syncopation_16th'], [nan, 0, 0, 0.5])
  np.testing.assert_allclose(got['syncopation_8th'], [nan, 0, 0, 0])
  np.testing.assert_allclose(got['c_diatonic'], [nan, 1, 1, 1])
  np.testing.assert_allclose(got['pitch_range'], [nan, 0, 12, 1])
  np.testing.assert_allclose(got['rest_fraction'], [1, 31 / 32, 29 / 32, 28 / 32])
  # Magenta mode: class 2 is MIDI pitch 21, so class 2 + 60 - 21 is C4 (in the scale) and
  # class 2 + 61 - 21 is C#4 (not).
  m = np.zeros((1, 32), np.int64)
  m[0, 0], m[0, 4] = 2 + 60 - 21, 2 + 62 - 21
  assert A.melody_attributes(m, min_pitch=21)['c_diatonic'][0] == 1.0  # C4, D4
  assert A.melody_attributes(m, min_pitch=0)['c_diatonic'][0] == 0.5  # read as D#2, F2


def test_drum_attributes_by_hand():
  kick, snare, closed, opened, ride = 1, 2, 4, 8, 256
  t = np.zeros((2, 32), np.int64)
  t[0, 0], t[0, 2], t[0, 4], t[0, 6] = kick | closed, closed, snare | closed, closed | opened
  t[0, 17] = ride
  got = A.drum_attributes(t)
  assert list(got) == [n for n, _ in A.DRUM_ATTRIBUTES]
  np.testing.assert_allclose(got['hits_per_bar'], [8 / 2, 0])
  np.testing.assert_allclose(got['offbeat_fraction'], [4 / 8, nan])  # steps 2, 6 (x2), 17
  np.testing.assert_allclose(got['kick_density'], [0.5, 0])
  np.testing.assert_allclose(got['snare_density'], [0.5, 0])
  np.testing.assert_allclose(got['hihat_density'], [5 / 2, 0])


def test_trio_attributes_are_per_part():
  rng = np.random.default_rng(0)
  t = np.stack([rng.integers(0, 130, (3, 256)), rng.integers(0, 130, (3, 256)),
                rng.integers(0, 512, (3, 256))], -1)
  got = A.compute_attributes(t, ('lead', 'bass', 'drums'), (False, False, True))
  names = A.attribute_names(('lead', 'bass', 'drums'), (False, False, True))
  assert list(got) == names
  assert names[0] == 'lead/note_density' and 'bass/pitch_range' in names
  assert 'drums/kick_density' in names and 'drums/c_diatonic' not in names
  for part, p in (('lead', 0), ('bass', 1)):
    for k, v in A.melody_attributes(t[..., p]).items():
      np.testing.assert_array_equal(got[f'{part}/{k}'], v)
  for k, v in A.drum_attributes(t[..., 2]).items():
    np.testing.assert_array_equal(got[f'drums/{k}'], v)
  assert A.attribute_names(('melody',), (False,))[0] == 'note_density'


def test_attribute_vectors_by_hand():
  # 8 windows; z dim 0 is attribute a, dim 1 is noise. Quartiles: the 2 lowest and 2 highest.
  a = np.arange(8.0)
  mu = np.stack([a, np.array([5, 1, 0, 0, 0, 0, 2, 4.0])], 1)
  sparse = np.array([0, 0, 0, 0, 0, 0, 0, 3.0])  # 0 fills both quartiles
  full = np.array([0.5, 1, 1, 1, 1, 1, 1, 1])     # so does the maximum
  res = A.attribute_vectors(mu, {'a': a, 'flat': np.ones(8), 'holes': np.where(a < 4, nan, a),
                                 'sparse': sparse, 'full': full})
  np.testing.assert_allclose(res['vectors'][0], [6.5 - 0.5, 3 - 3])
  np.testing.assert_allclose(res['vectors'][1], 0)  # no spread: no direction
  np.testing.assert_allclose(res['vectors'][2], [7 - 4, 4 - 0])  # nan windows left out
  # Ties across the boundary: 0 stays at the bottom (windows 0, 1), the top keeps window 7 only;
  # 1.0 stays at the top (windows 6, 7), the bottom keeps window 0 only.
  np.testing.assert_allclose(res['vectors'][3], mu[7] - mu[[0, 1]].mean(0))
  np.testing.assert_allclose(res['vectors'][4], mu[[6, 7]].mean(0) - mu[0])
  assert res['low_size'].tolist() == [2, 0, 1, 2, 1]
  assert res['high_size'].tolist() == [2, 0, 1, 1, 2]
  assert res['count'].tolist() == [8, 8, 4, 8, 8]
  np.testing.assert_allclose(res['low_mean'], [0.5, nan, 4, 0, 0.5])
  np.testing.assert_allclose(res['high_mean'], [6.5, nan, 7, 3, 1])
  with pytest.raises(ValueError, match='fraction'):
    A.attribute_vectors(mu, {'a': a}, fraction=0.7)


def test_parse_amounts():
  assert A.parse_amounts('1.5') == [1.5]
  assert A.parse_amounts('-1, 0,2') == [-1.0, 0.0, 2.0]
  for bad in ('nan', 'inf', 'abc', '1e9', ''):
    with pytest.raises(ValueError, match='--amount'):
      A.parse_amounts(bad)


# ----------------------------------------------------------------------------- on models

def test_vectors_of_a_trained_melody_run(root, capsys):
  workdir = smoke_run('melody2', root, trained=True)
  model = trained_model.Model.load(workdir)
  with pytest.raises(A.VectorsMissingError, match='attributes compute'):
    A.attribute_vector(model, 'note_density')
  vecs = A.compute_attribute_vectors(model, split='train', progress=False)
  train_windows = input_pipeline.split_windows(model.config.data, 'train')
  assert vecs.num_windows == len(train_windows) > 1000  # every Freedoom training window
  assert vecs.names == A.attribute_names(('melody',), (False,))
  assert vecs.vectors.shape == (7, model.z_size) and np.isfinite(vecs.vectors).all()
  values = A.window_attributes(model, train_windows)
  for i, name in enumerate(vecs.names):
    ok = np.isfinite(values[name])
    assert vecs.count[i] == ok.sum()
    assert vecs.mean[i] == pytest.approx(values[name][ok].mean())
    assert vecs.low_mean[i] < vecs.mean[i] < vecs.high_mean[i], name
  # The vector is exactly the difference of the group means of mu.
  mu, _ = model.encode(train_windows)
  v = values['note_density']
  order = np.argsort(v, kind='stable')
  k = len(v) // 4
  assert vecs.low_size[0] == vecs.high_size[0] == k  # no tie across the quartiles here
  np.testing.assert_allclose(vecs.vector('note_density'),
                             mu[order[-k:]].mean(0) - mu[order[:k]].mean(0), atol=1e-5)
  # Written to the run and read back.
  again = A.load_attribute_vectors(workdir)
  assert again.names == vecs.names and again.step == model.step is not None
  np.testing.assert_array_equal(again.vectors, vecs.vectors)
  np.testing.assert_array_equal(again.values, vecs.values)
  np.testing.assert_array_equal(A.attribute_vector(model, 'pitch_range'),
                                vecs.vector('pitch_range'))
  with pytest.raises(A.VectorsMissingError, match='no attribute vector'):
    A.attribute_vector(model, 'kick_density')


def test_transform_writes_midi_and_pictures(root, tmp_path):
  model = trained_model.Model.load(smoke_run('melody2', root, trained=True))
  if not os.path.exists(A.vectors_path(model.workdir)):
    A.compute_attribute_vectors(model, progress=False)
  x, out = A.transform_tokens(model, INPUT_A, 'note_density', [-3, 0, 3])
  assert x.shape == (1, 32, 1) and out.shape == (3, 1, 32, 1)
  # Amount 0 is the plain greedy reconstruction.
  np.testing.assert_array_equal(out[1], model.reconstruct_tokens(INPUT_A))
  # Another z: mu + 3 v decodes as model.decode_tokens(mu + 3 v).
  mu, _ = model.encode(INPUT_A)
  np.testing.assert_array_equal(out[2], model.decode_tokens(
      mu + 3 * A.attribute_vector(model, 'note_density'), greedy=True))
  paths = A.write_transform(model, str(INPUT_A), 'note_density', '-1.5,1.5', str(tmp_path))
  names = sorted(os.path.basename(p) for p in paths)
  assert names == sorted(['input.mid', 'input.png', 'reconstruction.mid', 'reconstruction.png',
                          'transform_minus1p5.mid',
                          'transform_minus1p5.png', 'transform_plus1p5.mid',
                          'transform_plus1p5.png', 'transform.mid', 'transform.png'])
  for p in paths:
    assert os.path.getsize(p) > 0
    if p.endswith('.png'):
      with open(p, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  check_midi(tmp_path / 'input.mid', model.spec, expected_tokens=x[0])
  check_midi(tmp_path / 'transform.mid', model.spec, num_windows=4)
  with pytest.raises(A.VectorsMissingError):
    A.write_transform(model, str(INPUT_A), 'no_such_thing', 1.0, str(tmp_path / 'x'))


def test_attributes_cli(root, tmp_path, capsys):
  workdir = smoke_run('melody2', root, trained=True)
  assert attributes_cli.main(['list', f'--workdir={workdir}']) == 0
  assert 'syncopation_8th' in capsys.readouterr().out
  assert attributes_cli.main(['compute', f'--workdir={workdir}', '--attributes=note_density,pitch_range',
                 '--max_windows=200']) == 0
  out = capsys.readouterr()
  assert out.out.strip().splitlines()[-1] == os.path.join(workdir, 'attributes.npz')
  vecs = A.load_attribute_vectors(workdir)
  assert vecs.names == ['note_density', 'pitch_range'] and vecs.num_windows == 200
  stem = str(tmp_path / 'matrix')
  assert attributes_cli.main(['matrix', f'--workdir={workdir}', '--num=8', f'--out={stem}']) == 0
  for ext in ('.md', '.json', '.png'):
    assert os.path.getsize(stem + ext) > 0
  with open(stem + '.json') as f:
    res = json.load(f)
  assert res['names'] == ['note_density', 'pitch_range'] and res['num_windows'] == 8
  assert np.asarray(res['relative'], float).shape == (2, 2, 2)  # amounts x vectors x attributes
  assert '| +1 x note_density |' in open(stem + '.md').read()
  # Bad command lines and inputs: one line, no traceback.
  assert attributes_cli.main(['compute', f'--workdir={workdir}', '--fraction=0.9']) == 2
  assert attributes_cli.main(['compute', f'--workdir={tmp_path / "nope"}']) == 1
  assert attributes_cli.main(['compute', f'--workdir={workdir}', '--attributes=tempo']) == 1
  err = capsys.readouterr().err
  assert 'error: --fraction' in err and 'no such run directory' in err
  assert "error: unknown attribute(s) tempo" in err and 'Traceback' not in err
  A.compute_attribute_vectors(trained_model.Model.load(workdir), progress=False)  # all, for others


def test_baseline_has_no_vectors(root):
  model = trained_model.Model.load(smoke_run('melody2,baseline', root))
  with pytest.raises(ValueError, match='baseline'):
    A.compute_attribute_vectors(model, progress=False)


@pytest.mark.parametrize('family', ['drums2', 'trio16'])
def test_vectors_and_transform_from_a_folder(family, root, two_songs, tmp_path):
  model = trained_model.Model.load(smoke_run(family, root))
  vecs = A.compute_attribute_vectors(model, midi_dir=two_songs, progress=False)
  windows = np.concatenate([model.windows(os.path.join(two_songs, f)).tokens
                            for f in sorted(os.listdir(two_songs))])
  assert vecs.num_windows == len(windows) and vecs.source.startswith('midi_dir:')
  assert vecs.names == A.model_attribute_names(model)
  name = 'drums/kick_density' if family == 'trio16' else 'kick_density'
  assert name in vecs.names
  if family == 'trio16':
    assert 'lead/note_density' in vecs.names and 'bass/c_diatonic' in vecs.names
  x, out = A.transform_tokens(model, INPUT_A, name, [2.0])
  assert out.shape == (1,) + x.shape
  paths = A.write_transform(model, str(INPUT_A), name, 2.0, str(tmp_path))
  assert os.path.join(str(tmp_path), 'transform_plus2.mid') in paths
  check_midi(tmp_path / 'transform_plus2.mid', model.spec, expected_tokens=out[0, 0])


def test_generate_transform_and_sample_nearest(root, tmp_path, capsys):
  from tests.test_generate import run_cli
  workdir = smoke_run('melody2', root, trained=True)
  model = trained_model.Model.load(workdir)
  if not os.path.exists(A.vectors_path(workdir)):
    A.compute_attribute_vectors(model, progress=False)
  out = tmp_path / 'tr'
  assert run_cli(generate, ['transform', f'--workdir={workdir}', f'--input={INPUT_A}',
                            '--attribute=note_density', '--amount=-1,1', f'--out={out}']) == 0
  assert {'input.mid', 'reconstruction.mid', 'transform_minus1.mid', 'transform_plus1.mid',
          'transform.png'} <= set(os.listdir(out))
  np.testing.assert_array_equal(model.transform(INPUT_A, 'note_density', [1.0]),
                                A.transform_tokens(model, INPUT_A, 'note_density', 1.0)[1])
  assert model.attribute_vector('note_density').shape == (model.z_size,)
  s = model.score(INPUT_A, samples=10, window=0)
  assert s['log_p'].shape == (1,) and s['log_p'][0] >= s['elbo'][0] - 50
  assert run_cli(generate, ['sample', f'--workdir={workdir}', '--num=3', '--nearest',
                            f'--out={tmp_path / "s"}']) == 0
  err = capsys.readouterr().err
  assert err.count('nearest training window:') == 3
  assert os.path.exists(tmp_path / 's' / 'nearest.json')
  # Bad inputs: one line each.
  assert run_cli(generate, ['transform', f'--workdir={workdir}', f'--input={INPUT_A}',
                            '--attribute=note_density', '--amount=1,x']) == 2
  assert run_cli(generate, ['transform', f'--workdir={workdir}', f'--input={INPUT_A}']) == 2
  err = capsys.readouterr().err
  assert "error: --amount: 'x' is not a number" in err and 'needs --attribute' in err
