"""magenta.js (TensorFlow.js) checkpoints read without TensorFlow reproduce the reference.

Fixtures (tests/fixtures/magenta_checkpoints/, see its README): `tfjs/<config>/{f32,q2,q1}` are the
TF fixtures' weights written by tensorflowjs's own writer (float32, 2-byte and 1-byte quantized),
each with a magenta.js config.json; q2/q1 carry `dequantized.npz`, what tensorflowjs's own reader
returns. `tfjs/cat-mel_2bar_small/f32_release_layout` is the f32 form re-sharded the way the 2018
releases are (two files without `.bin`, cut inside a tensor); `tfjs/released_mel_2bar_small` is the
real release's manifest and config without its shards.
"""
import json
import os
import pathlib
import re
import shutil

import numpy as np
import pytest

from mvae_jax import import_magenta, tfjs_checkpoint
from mvae_jax.tfjs_checkpoint import TfjsCheckpointError

FIXTURES = pathlib.Path(__file__).resolve().parent / 'fixtures' / 'magenta_checkpoints'
TFJS = FIXTURES / 'tfjs'
CONVERTED = ['cat-mel_2bar_small', 'cat-drums_2bar_small', 'hierdec-mel_16bar',
             'hierdec-trio_16bar']  # structures import_magenta converts today
NEW = ['cat-mel_4bar', 'cat-drums_4bar', 'hier-mel_4bar', 'hier-trio_4bar', 'hier-mel_16bar']
ALL = CONVERTED + NEW
ATOL = 1e-5


def _tf_variables(case):
  want = np.load(FIXTURES / case / 'variables.npz')
  return {k: want[k] for k in want.files if k != 'global_step'}


def _assert_same(got, want):
  assert sorted(got) == sorted(want)
  for name in want:
    assert got[name].dtype == np.float32 and got[name].shape == want[name].shape, name
    np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_fixtures_are_complete():
  assert sorted(p.name for p in TFJS.iterdir()) == sorted(ALL + ['released_mel_2bar_small'])
  for case in ALL:
    for variant in ('f32', 'q2', 'q1'):
      names = {p.name for p in (TFJS / case / variant).iterdir()}
      assert {'weights_manifest.json', 'config.json', 'group1-shard1of1.bin'} <= names
      assert ('dequantized.npz' in names) == (variant != 'f32')


@pytest.mark.parametrize('case', ALL)
def test_f32_form_holds_exactly_the_tf_variables(case):
  got, config = tfjs_checkpoint.read_tfjs(str(TFJS / case / 'f32'))
  _assert_same(got, _tf_variables(case))  # magenta.js leaves global_step out
  spec = tfjs_checkpoint.converter_spec(config)
  hparams = json.loads((FIXTURES / case / 'hparams.json').read_text())
  assert spec.num_steps == hparams['time_steps']
  assert list(spec.part_depths) == hparams['part_depths']


@pytest.mark.parametrize('variant, qdtype', [('q2', 'uint16'), ('q1', 'uint8')])
@pytest.mark.parametrize('case', ALL)
def test_quantized_forms_dequantize_exactly_as_tensorflowjs(case, variant, qdtype):
  folder = TFJS / case / variant
  manifest = json.loads((folder / 'weights_manifest.json').read_text())
  assert {w['quantization']['dtype'] for g in manifest for w in g['weights']} == {qdtype}
  got, _ = tfjs_checkpoint.read_tfjs(str(folder))
  want = np.load(folder / 'dequantized.npz')
  _assert_same(got, {k: want[k] for k in want.files})
  # Not the float32 weights, but within a quantization step of them (half a step from rounding,
  # up to half a step more where the writer nudged the range so that 0 is a grid point).
  exact = _tf_variables(case)
  steps = {w['name']: w['quantization']['scale'] for g in manifest for w in g['weights']}
  assert any(not np.array_equal(got[k], exact[k]) for k in exact)
  for k in exact:
    assert np.abs(got[k] - exact[k]).max() <= steps[k] * (1 + 1e-6) + 1e-7, k


def test_float16_quantization_and_int32(tmp_path):
  """The other encodings the format allows: float16 copies of float32 weights, int32 weights
  plain and uint8-quantized (rounded to the nearest integer), in two groups."""
  rng = np.random.default_rng(0)
  a = rng.standard_normal((3, 5)).astype(np.float32)
  q = np.array([0, 7, 255], np.uint8)
  manifest = [
      {'paths': ['group1-shard1of1.bin'], 'weights': [
          {'name': 'a', 'shape': [3, 5], 'dtype': 'float32',
           'quantization': {'dtype': 'float16', 'original_dtype': 'float32'}},
          {'name': 'global_step', 'shape': [], 'dtype': 'int32'}]},
      {'paths': ['group2-shard1of1.bin'], 'weights': [
          {'name': 'n', 'shape': [3], 'dtype': 'int32',
           'quantization': {'dtype': 'uint8', 'min': -3.0, 'scale': 0.3}}]}]
  (tmp_path / 'weights_manifest.json').write_text(json.dumps(manifest))
  (tmp_path / 'group1-shard1of1.bin').write_bytes(
      a.astype('<f2').tobytes() + np.array(4242, '<i4').tobytes())
  (tmp_path / 'group2-shard1of1.bin').write_bytes(q.tobytes())
  got, config = tfjs_checkpoint.read_tfjs(str(tmp_path / 'weights_manifest.json'))
  assert config is None
  np.testing.assert_array_equal(got['a'], a.astype(np.float16).astype(np.float32))
  assert got['a'].dtype == np.float32
  assert got['global_step'].dtype == np.int32 and int(got['global_step']) == 4242
  np.testing.assert_array_equal(got['n'], np.round(q * 0.3 - 3.0).astype(np.int32))
  assert got['n'].tolist() == [-3, -1, 74]


def test_release_shard_layout_two_files_cut_inside_a_tensor():
  folder = TFJS / 'cat-mel_2bar_small' / 'f32_release_layout'
  manifest = json.loads((folder / 'weights_manifest.json').read_text())
  assert manifest[0]['paths'] == ['group1-shard1of2', 'group1-shard2of2']
  cut = os.path.getsize(folder / 'group1-shard1of2')
  ends = np.cumsum([4 * int(np.prod(w['shape'])) for w in manifest[0]['weights']])
  assert cut % 4 and cut not in ends  # inside a float inside a tensor
  got, _ = tfjs_checkpoint.read_tfjs(str(folder))
  _assert_same(got, _tf_variables('cat-mel_2bar_small'))


def test_released_mel_2bar_small_manifest(tmp_path):
  """The real release: names, shapes and dtypes are the reference's cat-mel_2bar_small graph's
  minus global_step; it has five shards named without .bin and no config-independent surprises.
  Its shards are not in the repository: reading it is the one-line missing-shard error, and with
  stand-in shards of the sizes tensorflowjs writes (4 MiB each but the last) it reads fully."""
  src = TFJS / 'released_mel_2bar_small'
  groups = tfjs_checkpoint.read_manifest(str(src))
  ref = json.loads((FIXTURES / 'real_sizes' / 'vars_cat-mel_2bar_small.json').read_text())
  want = {n: tuple(s) for n, s in ref['variables_train'] if n != 'global_step'}
  assert {w.name: w.shape for g in groups for w in g.weights} == want
  assert {w.dtype for g in groups for w in g.weights} == {'float32'}
  assert groups[0].paths == tuple(f'group1-shard{i}of5' for i in range(1, 6))
  spec = tfjs_checkpoint.converter_spec(json.loads((src / 'config.json').read_text()))
  assert (spec.kind, spec.num_steps, spec.num_segments, spec.melody_pitch) == (
      'melody', 32, None, (21, 108))
  with pytest.raises(TfjsCheckpointError) as e:
    tfjs_checkpoint.read_tfjs(str(src))
  msg = str(e.value)
  assert '\n' not in msg and msg.startswith(f'{src / "group1-shard1of5"}: missing shard')

  folder = tmp_path / 'mel_2bar_small'
  shutil.copytree(src, folder)
  total = 4 * ref['num_params']  # float32; num_params counts no global_step
  mib4 = 4 * 1024 * 1024
  sizes = [mib4] * 4 + [total - 4 * mib4]
  assert 0 < sizes[-1] <= mib4
  for i, size in enumerate(sizes, 1):
    with open(folder / f'group1-shard{i}of5', 'wb') as f:
      f.truncate(size)  # zeros
  variables, spec2, layout = tfjs_checkpoint.read_magenta_js(str(folder))
  assert spec2 == spec and {k: v.shape for k, v in variables.items()} == want
  assert (layout.encoder, layout.encoder_layers, layout.conductor, layout.part_depths) == (
      'flat', 1, False, (90,))
  # And the converter takes it at the released size.
  config, _, step = import_magenta.convert(variables, 'cat-mel_2bar_small', str(folder))
  assert step == 0 and list(config.model.enc_sizes) == ref['hparams']['enc_rnn_size'] == [512]


@pytest.mark.parametrize('case, encoder, layers', [
    ('cat-mel_2bar_small', 'flat', 1), ('cat-mel_4bar', 'flat', 1), ('cat-drums_4bar', 'flat', 1),
    ('hierdec-mel_16bar', 'flat', 2), ('hierdec-trio_16bar', 'flat', 2),
    ('hier-mel_4bar', 'hierarchical', 2), ('hier-trio_4bar', 'hierarchical', 2),
    ('hier-mel_16bar', 'hierarchical', 2)])
def test_layout_and_spec_of_every_fixture(case, encoder, layers):
  variables, spec, layout = tfjs_checkpoint.read_magenta_js(str(TFJS / case / 'q1'))
  assert (layout.encoder, layout.encoder_layers) == (encoder, layers)
  assert layout.conductor == (spec.num_segments is not None) == ('hier' in case)
  hparams = json.loads((FIXTURES / case / 'hparams.json').read_text())
  inputs = np.load(FIXTURES / case / 'inputs.npz')
  assert inputs['tokens'].shape[1:] == (spec.num_steps, len(spec.part_depths))
  assert spec.num_steps == 16 * int(re.search(r'_(\d+)bar', case).group(1))
  if spec.num_segments:
    lengths = hparams.get('level_lengths', [16, 16])  # not kept in the hierdec-* hparams.json
    assert lengths == [spec.num_segments, spec.num_steps // spec.num_segments]
  if encoder == 'hierarchical':
    # Magenta's encoder reads its level_lengths bottom-up: segments of num_steps / numSegments
    # steps, then numSegments of them, as magenta.js splits the window.
    assert hparams['encoder_level_lengths'] == [spec.num_steps // spec.num_segments,
                                                spec.num_segments]
  if spec.kind == 'trio':
    assert layout.part_prefixes == tuple(f'core_decoder/core_decoder_{p}/decoder'
                                         for p in range(3))
  assert 'global_step' not in variables


# ----------------------------------------------------------------------------- bad input

def _copy(tmp_path, case='cat-mel_2bar_small', variant='q2'):
  dest = tmp_path / f'{case}-{variant}'
  shutil.copytree(TFJS / case / variant, dest)
  return dest


def _error(folder, *match):
  with pytest.raises(TfjsCheckpointError) as e:
    tfjs_checkpoint.read_magenta_js(str(folder))
  msg = str(e.value)
  assert '\n' not in msg, msg
  for m in match:
    assert m in msg, msg
  return msg


def _edit_manifest(folder, fn):
  path = folder / 'weights_manifest.json'
  manifest = json.loads(path.read_text())
  fn(manifest)
  path.write_text(json.dumps(manifest))


def test_missing_folder_manifest_and_bad_json(tmp_path):
  _error(tmp_path / 'nothing', str(tmp_path / 'nothing'), 'no such folder')
  folder = _copy(tmp_path)
  manifest = folder / 'weights_manifest.json'
  text = manifest.read_text()
  manifest.write_text(text[:-40])
  _error(folder, str(manifest), 'not valid JSON', 'line 1')
  manifest.write_text('{"paths": []}')
  _error(folder, str(manifest), 'expected a non-empty list of weight groups')
  os.remove(manifest)
  _error(folder, str(manifest), 'no such file')
  manifest.write_text(text)
  (folder / 'config.json').write_text('{"type": "MusicVAE", ')
  _error(folder, str(folder / 'config.json'), 'not valid JSON')
  os.remove(folder / 'config.json')
  _error(folder, str(folder / 'config.json'), 'no such file')


@pytest.mark.parametrize('variant', ['f32', 'q1'])
def test_truncated_and_overlong_shards(tmp_path, variant):
  folder = _copy(tmp_path, variant=variant)
  shard = folder / 'group1-shard1of1.bin'
  data = shard.read_bytes()
  shard.write_bytes(data[:-3])
  _error(folder, f'{shard}: short or truncated shard', f'= {len(data) - 3} bytes',
         f'need {len(data)}')
  shard.write_bytes(data + b'\0' * 8)
  _error(folder, str(shard), 'extra bytes')
  os.remove(shard)
  _error(folder, str(shard), 'missing shard')


def test_short_shard_in_a_multi_shard_group_is_named(tmp_path):
  folder = _copy(tmp_path, variant='f32_release_layout')
  first, second = folder / 'group1-shard1of2', folder / 'group1-shard2of2'
  size1, size2 = first.stat().st_size, second.stat().st_size
  second.write_bytes(second.read_bytes()[:-1])
  _error(folder, f'{second}: short or truncated shard',
         f'group1-shard1of2 ({size1}) + group1-shard2of2 ({size2 - 1}) = {size1 + size2 - 1} bytes')
  second.write_bytes(b'')
  _error(folder, f'{second}: short or truncated shard', 'group1-shard2of2 (0)')


@pytest.mark.parametrize('edit, match', [
    (lambda m: m[0]['weights'][0].update(dtype='float64'), "dtype 'float64'"),
    (lambda m: m[0]['weights'][0].update(dtype='string'), "dtype 'string'"),
    (lambda m: m[0]['weights'][0]['quantization'].update(dtype='int4'), 'quantization'),
    (lambda m: m[0]['weights'][0]['quantization'].pop('scale'), 'needs finite "min" and "scale"'),
    (lambda m: m[0]['weights'][0]['quantization'].update(min=float('nan')),
     'needs finite "min" and "scale"'),
    (lambda m: m[0]['weights'][0].update(shape=[64, -1]), 'non-negative integers'),
    (lambda m: m[0]['weights'][1].update(name=m[0]['weights'][0]['name']), 'more than once'),
    (lambda m: m[0]['weights'].pop(), 'extra bytes'),
    (lambda m: m[0]['weights'][0].update(shape=[65]), 'short or truncated shard'),
    (lambda m: m[0].update(paths=['../elsewhere.bin']), 'outside the checkpoint folder'),
    (lambda m: m[0].update(paths='group1-shard1of1.bin'), 'is not {"paths"'),
    (lambda m: m[0]['weights'][0].pop('name'), 'without a name'),
])
def test_manifest_errors_are_one_line_naming_the_manifest(tmp_path, edit, match):
  folder = _copy(tmp_path)
  _edit_manifest(folder, edit)
  msg = _error(folder, match)
  assert str(folder) in msg


def test_non_finite_weights_are_refused(tmp_path):
  folder = _copy(tmp_path, variant='f32')
  shard = folder / 'group1-shard1of1.bin'
  data = bytearray(shard.read_bytes())
  data[8:12] = np.array(np.nan, '<f4').tobytes()  # inside the first weight
  shard.write_bytes(bytes(data))
  name = json.loads((folder / 'weights_manifest.json').read_text())[0]['weights'][0]['name']
  _error(folder, str(shard), name, 'NaN or infinite')


# ----------------------------------------------------------------------------- config.json

@pytest.mark.parametrize('config, match', [
    ({'type': 'MusicRNN'}, "'MusicRNN', expected \"MusicVAE\""),
    ({'type': 'MusicVAE', 'dataConverter': {'type': 'MultitrackConverter', 'args': {}}},
     "'MultitrackConverter' has no mvae_jax model"),
    ({'type': 'MusicVAE', 'dataConverter': {'type': 'GrooveConverter', 'args': {}}},
     'GrooveConverter'),
    ({'type': 'MusicVAE', 'dataConverter': {'type': 'DrumsConverter', 'args': {}}},
     'numSteps is None'),
    ({'type': 'MusicVAE', 'dataConverter': {'type': 'DrumsConverter',
                                            'args': {'numSteps': 64, 'numSegments': 5}}},
     'not a multiple of numSegments 5'),
    ({'type': 'MusicVAE', 'dataConverter': {'type': 'MelodyConverter',
                                            'args': {'numSteps': 32, 'minPitch': 60}}},
     'maxPitch=None'),
    ({'type': 'MusicVAE', 'dataConverter': {'type': 'MelodyConverter',
                                            'args': {'numSteps': 32, 'minPitch': 70,
                                                     'maxPitch': 60}}}, 'minPitch <= maxPitch'),
    ({'type': 'MusicVAE', 'dataConverter': {'type': 'TrioConverter',
                                            'args': {'numSteps': 64, 'melArgs': {}}}},
     'TrioConverter melArgs'),
    ({'type': 'MusicVAE', 'dataConverter': {'type': 'DrumsConverter',
                                            'args': {'numSteps': 32, 'pitchClasses': [[]]}}},
     'pitchClasses'),
])
def test_bad_configs(config, match):
  with pytest.raises(TfjsCheckpointError, match=match) as e:
    tfjs_checkpoint.converter_spec(config, 'ckpt/config.json')
  assert str(e.value).startswith('ckpt/config.json: ')


def test_converter_spec_fields():
  spec = tfjs_checkpoint.converter_spec(
      {'type': 'MusicVAE', 'dataConverter': {'type': 'DrumRollConverter', 'args': {
          'numSteps': 32, 'pitchClasses': [[36], [38, 40], [42]]}}})
  assert (spec.kind, spec.drum_pitch_classes, spec.part_depths) == (
      'drums', ((36,), (38, 40), (42,)), (3,))
  trio = tfjs_checkpoint.converter_spec(json.loads(
      (TFJS / 'hier-trio_4bar' / 'f32' / 'config.json').read_text()))
  assert (trio.num_steps, trio.num_segments, trio.part_depths) == (64, 4, (90, 90, 512))
  assert trio.drum_pitch_classes == tfjs_checkpoint.DEFAULT_DRUM_PITCH_CLASSES
  assert len(trio.drum_pitch_classes) == 9


def test_config_and_weights_that_disagree(tmp_path):
  # A hierarchical config on flat weights, and the other way round.
  folder = _copy(tmp_path, 'cat-mel_4bar', 'q1')
  (folder / 'config.json').write_text((TFJS / 'hier-mel_4bar' / 'q1' / 'config.json').read_text())
  _error(folder, 'numSegments 4 (a hierarchical decoder)', 'no conductor')
  folder = _copy(tmp_path, 'hier-mel_4bar', 'q1')
  (folder / 'config.json').write_text((TFJS / 'cat-mel_4bar' / 'q1' / 'config.json').read_text())
  _error(folder, 'no numSegments', 'have a conductor')
  # A melody config on drum weights: the output layer has 512 classes, not 90.
  folder = _copy(tmp_path, 'cat-drums_4bar', 'q1')
  (folder / 'config.json').write_text((TFJS / 'cat-mel_4bar' / 'q1' / 'config.json').read_text())
  _error(folder, 'MelodyConverter has 1 part(s) of [90] classes', '[512]')
  # A melody range that does not match the output layer.
  config = json.loads((TFJS / 'cat-mel_4bar' / 'q1' / 'config.json').read_text())
  config['dataConverter']['args']['maxPitch'] = 96
  folder = _copy(tmp_path, 'cat-mel_4bar', 'q2')
  (folder / 'config.json').write_text(json.dumps(config))
  _error(folder, '[78] classes', 'decoder/output_projection/bias')
  # Chord conditioning.
  config = json.loads((TFJS / 'cat-mel_4bar' / 'q1' / 'config.json').read_text())
  config['chordEncoder'] = 'PitchChordEncoder'
  (folder / 'config.json').write_text(json.dumps(config))
  _error(folder, 'chord-conditioned', 'no such model')


def test_weight_sets_that_are_no_musicvae():
  variables, _ = tfjs_checkpoint.read_tfjs(str(TFJS / 'cat-drums_4bar' / 'q1'))
  spec = tfjs_checkpoint.converter_spec(json.loads(
      (TFJS / 'cat-drums_4bar' / 'q1' / 'config.json').read_text()))
  nade = {**variables, 'decoder/nade/w_enc': np.zeros((9, 4, 1), np.float32)}
  with pytest.raises(TfjsCheckpointError, match='NADE decoder'):
    tfjs_checkpoint.check_layout(spec, tfjs_checkpoint.weight_layout(nade, 'x'), 'x')
  no_encoder = {k: v for k, v in variables.items() if not k.startswith('encoder/cell_')}
  with pytest.raises(TfjsCheckpointError, match='found neither'):
    tfjs_checkpoint.weight_layout(no_encoder, 'x')
  no_output = {k: v for k, v in variables.items() if 'output_projection' not in k}
  with pytest.raises(TfjsCheckpointError, match='no decoder output layer'):
    tfjs_checkpoint.weight_layout(no_output, 'x')
