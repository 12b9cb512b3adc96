"""magenta.js (TensorFlow.js) checkpoints imported through `python -m mvae_jax.import_magenta`.

Fixtures (tests/fixtures/magenta_checkpoints/, see its README): `tfjs/<case>/{f32,q2,q1}` hold the
weights of the TF fixture `<case>` written by tensorflowjs (float32, 2-byte and 1-byte quantized)
with a magenta.js config.json; `<case>/outputs.npz` is the reference's output on `inputs.npz`.
Nine structures: the four released TF ones, flat 4-bar melody and drums, hierarchical (encoder
and decoder) 4-bar melody and trio, hierarchical 16-bar melody. Every form imports through the
command line; the runs are then opened with the public API (`Model.load`).

The hierarchical encoder's segments: magenta.js splits a window into `numSegments` level-0
segments (music_vae/model.ts: `HierarchicalEncoder(..., [numSegments, 1], ...)`), and so does the
import. The `hier-*` fixtures were written by Magenta's Python graph with the encoder level_lengths
that mean the same (bottom-up: [16, 4] on 4 bars, [16, 16] on 16), so the imports reproduce their
outputs with the default `model.enc_segments` (None = num_segments); a numpy transcription of
magenta.js's encoder checks that the fixtures are what magenta.js computes.
"""
import json
import os
import pathlib
import shutil

import jax
import numpy as np
import pytest

from data_pipelines import conversion, encoding, midi
from mvae_jax import config_lib, evaluation, generation, import_magenta, trainer
from mvae_jax import eval as eval_cli
from mvae_jax import run as run_lib
from mvae_jax.trained_model import Model
from tests.test_generate import run_cli
from tests.test_import_magenta import assert_reproduces_reference

FIXTURES = pathlib.Path(__file__).resolve().parent / 'fixtures' / 'magenta_checkpoints'
TFJS = FIXTURES / 'tfjs'
CASES = ['cat-mel_2bar_small', 'cat-drums_2bar_small', 'hierdec-mel_16bar', 'hierdec-trio_16bar',
         'cat-mel_4bar', 'cat-drums_4bar', 'hier-mel_4bar', 'hier-trio_4bar', 'hier-mel_16bar']
FORMS = ('f32', 'q2', 'q1')
# What each fixture is: window kind, encoder, decoder, segments.
STRUCTURE = {
    'cat-mel_2bar_small': ('mel_2bar', 'flat', 'flat', None),
    'cat-drums_2bar_small': ('drums_2bar', 'flat', 'flat', None),
    'hierdec-mel_16bar': ('mel_16bar', 'flat', 'hier', 16),
    'hierdec-trio_16bar': ('trio_16bar', 'flat', 'hier', 16),
    'cat-mel_4bar': ('mel_4bar', 'flat', 'flat', None),
    'cat-drums_4bar': ('drums_4bar', 'flat', 'flat', None),
    'hier-mel_4bar': ('mel_4bar', 'hier', 'hier', 4),
    'hier-trio_4bar': ('trio_4bar', 'hier', 'hier', 4),
    'hier-mel_16bar': ('mel_16bar', 'hier', 'hier', 16),
}
ATOL = 1e-5


@pytest.fixture(scope='module', autouse=True)
def highest_precision():
  with jax.default_matmul_precision('highest'):
    yield


def _import(checkpoint, workdir, *extra):
  return run_cli(import_magenta, [f'--checkpoint={checkpoint}', f'--workdir={workdir}', *extra])


@pytest.fixture(scope='module')
def imported(tmp_path_factory):
  """(case, form) -> run directory, imported once through the command line."""
  cache = {}

  def get(case, form):
    if (case, form) not in cache:
      run = tmp_path_factory.mktemp(f'{case}-{form}') / 'run'
      assert _import(TFJS / case / form, run) == 0
      cache[case, form] = run
    return cache[case, form]
  return get


def _tf_variables(case):
  want = np.load(FIXTURES / case / 'variables.npz')
  return {k: want[k] for k in want.files if k != 'global_step'}


@pytest.mark.parametrize('form', FORMS)
@pytest.mark.parametrize('case', CASES)
def test_every_form_imports_with_the_structure_config_json_gives(case, form, imported):
  run = imported(case, form)
  config = json.loads((run / 'config.json').read_text())
  kind, encoder, decoder, segments = STRUCTURE[case]
  m = config['model']
  assert (config['data']['kind'], config['data']['mode']) == (kind, 'magenta')
  assert (m['encoder'], m['decoder'], m['enc_segments']) == (encoder, decoder, None)
  assert config['family'] == config_lib.FAMILY_OF_KIND[kind]
  if segments:
    assert m['num_segments'] == segments
  hparams = json.loads((FIXTURES / case / 'hparams.json').read_text())
  sizes = hparams['overrides']
  assert (m['z_size'], list(m['dec_sizes'])) == (sizes['z_size'], sizes['dec_rnn_size'])
  assert list(m['enc_sizes']) == sizes['enc_rnn_size']
  assert m['drum_input'] == ('one_hot' if 'trio' in case else 'roll')
  # The run holds exactly the weights the reader returns: float32 for f32, tensorflowjs's own
  # dequantized values for q2 / q1 (mapped the same way).
  want = (_tf_variables(case) if form == 'f32' else
          dict(np.load(TFJS / case / form / 'dequantized.npz')))
  _, params, step = import_magenta.convert(want, import_magenta.tfjs_structure(
      *_spec_and_layout(case, form), str(TFJS / case / form)))
  model = Model.load(str(run))
  assert model.step == step == 0  # magenta.js checkpoints carry no global step
  got = jax.tree.map(np.asarray, model.params)
  assert jax.tree.structure(got) == jax.tree.structure(params)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(params)):
    np.testing.assert_array_equal(g, w)


def _spec_and_layout(case, form):
  from mvae_jax import tfjs_checkpoint
  _, spec, layout = tfjs_checkpoint.read_magenta_js(str(TFJS / case / form))
  return spec, layout


@pytest.mark.parametrize('case', CASES)
def test_f32_forms_reproduce_magenta(case, imported):
  """mu, sigma, teacher-forced logits and losses, greedy decodes: the reference's outputs."""
  model = Model.load(str(imported(case, 'f32')))
  assert_reproduces_reference(model, np.load(FIXTURES / case / 'inputs.npz')['tokens'],
                              np.load(FIXTURES / case / 'outputs.npz'))


@pytest.mark.parametrize('case', ['cat-mel_4bar', 'hier-mel_4bar', 'cat-drums_4bar',
                                  'hier-trio_4bar'])
def test_reference_4bar_windows_are_among_ours(case):
  """The fixtures' windows come from the reference's converters with 4-bar slices; our
  magenta-mode extraction of the same Freedoom files gives each of them."""
  kind = STRUCTURE[case][0]
  spec = encoding.window_spec(kind, 'magenta')
  inputs = np.load(FIXTURES / case / 'inputs.npz')
  for tokens, name in zip(inputs['tokens'], inputs['files']):
    ours = encoding.extract_windows(midi.read_midi(os.path.join(conversion.FREEDOOM_DIR,
                                                                str(name))), spec)
    want = tokens[:, 0] if len(spec.parts) == 1 else tokens
    assert any(np.array_equal(w, want) for w in ours), name


# ----------------------------------------------------------------------------- magenta.js's encoder

def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _js_bilstm(x, fw, bw):
  """magenta.js's BidirectonalLstmEncoder (no mu): tf.basicLSTMCell with forget bias 1.0 over
  x [batch, time, depth] forwards and backwards; concat of the two final h."""
  def run(steps, kernel, bias):
    h = np.zeros((x.shape[0], bias.shape[0] // 4))
    c = np.zeros_like(h)
    for t in steps:
      i, j, f, o = np.split(np.concatenate([x[:, t], h], 1) @ kernel + bias, 4, axis=1)
      c = c * _sigmoid(f + 1.0) + _sigmoid(i) * np.tanh(j)
      h = np.tanh(c) * _sigmoid(o)
    return h
  t = x.shape[1]
  return np.concatenate([run(range(t), *fw), run(reversed(range(t)), *bw)], 1)


def _js_hierarchical_mu(variables, one_hot, num_segments):
  """magenta.js's HierarchicalEncoder with numSteps [numSegments, 1], float64."""
  def cell(level, d):
    p = f'encoder/hierarchical_level_{level}/cell_0/bidirectional_rnn/{d}/multi_rnn_cell/' \
        'cell_0/lstm_cell/'
    return variables[p + 'kernel'].astype(np.float64), variables[p + 'bias'].astype(np.float64)
  x = one_hot
  for level, steps in enumerate((num_segments, 1)):
    pieces = np.split(x, steps, axis=1)
    x = np.stack([_js_bilstm(s, cell(level, 'fw'), cell(level, 'bw')) for s in pieces], 1)
  return x[:, 0] @ variables['encoder/mu/kernel'] + variables['encoder/mu/bias']


@pytest.mark.parametrize('case', ['hier-mel_4bar', 'hier-trio_4bar', 'hier-mel_16bar'])
def test_hierarchical_fixtures_are_what_magenta_js_computes(case, imported):
  """The reference's mu is magenta.js's encoder on the fixture's weights with the config.json's
  numSegments (and not with segments a quarter as long, the reading the 4-bar fixtures once had),
  and so is the import's."""
  args = json.loads((TFJS / case / 'f32' / 'config.json').read_text())['dataConverter']['args']
  num_steps, num_segments = args['numSteps'], args['numSegments']
  inputs = np.load(FIXTURES / case / 'inputs.npz')
  outputs = np.load(FIXTURES / case / 'outputs.npz')
  tokens = inputs['tokens'][:3]
  depths = [int(d) for d in outputs['part_depths']]
  one_hot = np.concatenate([np.eye(v)[tokens[..., p]] for p, v in enumerate(depths)], -1)
  assert one_hot.shape[1] == num_steps
  variables = _tf_variables(case)
  js = _js_hierarchical_mu(variables, one_hot, num_segments)
  np.testing.assert_allclose(js, outputs['mu'][:3], atol=ATOL, rtol=0)
  other = _js_hierarchical_mu(variables, one_hot, 4 * num_segments)
  assert not np.allclose(other, outputs['mu'][:3], atol=1e-3, rtol=0)
  mu, _ = Model.load(str(imported(case, 'f32'))).encode(tokens)
  np.testing.assert_allclose(mu, js, atol=ATOL, rtol=0)


# ----------------------------------------------------------------------------- bad input

def _copy(tmp_path, case='cat-mel_4bar', form='q2'):
  dest = tmp_path / f'{case}-{form}'
  shutil.copytree(TFJS / case / form, dest)
  return dest


def _fails(capsys, checkpoint, workdir, *match, extra=(), status=1):
  capsys.readouterr()
  assert _import(checkpoint, workdir, *extra) == status
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and err.startswith('error: '), err
  for m in match:
    assert m in err, err
  assert not os.path.exists(workdir)  # nothing written
  return err


def _edit(folder, name, fn):
  path = folder / name
  data = json.loads(path.read_text())
  fn(data)
  path.write_text(json.dumps(data))


def test_bad_checkpoints_are_one_line_errors_and_write_nothing(tmp_path, capsys):
  run = tmp_path / 'run'
  folder = _copy(tmp_path)
  shard = folder / 'group1-shard1of1.bin'
  data = shard.read_bytes()
  shard.write_bytes(data[:-5])  # short shard
  _fails(capsys, folder, run, f'{shard}: short or truncated shard')
  os.remove(shard)
  _fails(capsys, folder, run, f'{shard}: missing shard')
  shard.write_bytes(data)
  _edit(folder, 'weights_manifest.json',  # a manifest that does not match the bytes
        lambda m: m[0]['weights'][0].update(shape=[m[0]['weights'][0]['shape'][0] + 1] +
                                            m[0]['weights'][0]['shape'][1:]))
  _fails(capsys, folder, run, 'short or truncated shard', 'weights need')
  shutil.rmtree(folder)

  # Variables that fit no model: a renamed one, a NADE output layer.
  folder = _copy(tmp_path)
  _edit(folder, 'weights_manifest.json', lambda m: [
      w.update(name='decoder/extra/kernel') for w in m[0]['weights']
      if w['name'] == 'decoder/z_to_initial_state/kernel'])
  _fails(capsys, folder, run, str(folder / 'weights_manifest.json'),
         'decoder/z_to_initial_state/kernel', 'no such variable')
  shutil.rmtree(folder)
  folder = _copy(tmp_path, 'cat-drums_4bar', 'f32')
  extra = np.zeros((9, 4, 1), np.float32)
  _edit(folder, 'weights_manifest.json', lambda m: m[0]['weights'].append(
      {'name': 'decoder/nade/w_enc', 'shape': [9, 4, 1], 'dtype': 'float32'}))
  with open(folder / 'group1-shard1of1.bin', 'ab') as f:
    f.write(extra.tobytes())
  _fails(capsys, folder, run, 'NADE decoder', 'no such model')

  # config.json: missing, a length mvae_jax has no kind for, another pitch range.
  folder = _copy(tmp_path, 'cat-mel_4bar', 'q1')
  os.remove(folder / 'config.json')
  _fails(capsys, folder, run, str(folder / 'config.json'), 'no such file')
  shutil.copy(TFJS / 'cat-mel_4bar' / 'q1' / 'config.json', folder / 'config.json')
  _edit(folder, 'config.json', lambda c: c['dataConverter']['args'].update(numSteps=48))
  _fails(capsys, folder, run, 'MelodyConverter of 48 steps', '[32, 64, 256, 512]')
  _edit(folder, 'config.json', lambda c: c['dataConverter']['args'].update(
      numSteps=64, minPitch=0, maxPitch=87))
  _fails(capsys, folder, run, 'minPitch/maxPitch 0..87', '21..108')

  # --config that describes another model; a TF checkpoint needs --config (bad usage).
  _fails(capsys, TFJS / 'hier-mel_4bar' / 'q1', run, '--config cat-mel_2bar_small',
         'mel_2bar windows, flat encoder', 'mel_4bar windows, hierarchical encoder',
         extra=['--config=cat-mel_2bar_small'])
  _fails(capsys, FIXTURES / 'cat-mel_2bar_small' / 'checkpoint', run, '--config is required',
         status=2)
  _fails(capsys, tmp_path / 'nothing', run, str(tmp_path / 'nothing'), 'no such')


def test_config_named_for_a_magenta_js_checkpoint_picks_its_preset(tmp_path, capsys):
  run = tmp_path / 'run'
  assert _import(TFJS / 'hierdec-mel_16bar' / 'q1', run, '--config=hierdec-mel_16bar') == 0
  out = capsys.readouterr().out
  assert 'imported hierdec-mel_16bar, magenta.js MelodyConverter (mel_16bar, 16 segments)' in out
  assert 'from a magenta.js checkpoint' in out
  assert json.loads((run / 'config.json').read_text())['preset'].startswith('magenta (imported')


def test_released_shard_layout_imports(tmp_path):
  """Two shards without `.bin`, cut inside a float: the run equals the one-shard import."""
  run = tmp_path / 'run'
  assert _import(TFJS / 'cat-mel_2bar_small' / 'f32_release_layout', run) == 0
  got = Model.load(str(run)).params
  _, want, _ = import_magenta.convert(_tf_variables('cat-mel_2bar_small'), 'cat-mel_2bar_small')
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_array_equal(np.asarray(g), w)


@pytest.mark.parametrize('segments', [16, 4])
def test_16bar_trio_with_a_hierarchical_encoder(segments, tmp_path, capsys):
  """magenta.js's trio_16bar has the hierarchical encoder; its weights' shapes do not depend on
  the length, so the 4-bar trio's, with config.json saying 256 steps, stand in for it (with 16
  segments, and with the 4 that checkpoints.json's description mentions)."""
  folder = _copy(tmp_path, 'hier-trio_4bar', 'q1')
  _edit(folder, 'config.json', lambda c: c['dataConverter']['args'].update(
      numSteps=256, numSegments=segments))
  run = tmp_path / 'run'
  assert _import(folder, run) == 0
  assert f'trio_16bar windows, hierarchical encoder, hierarchical decoder, {segments} segments' \
      in capsys.readouterr().out
  config = json.loads((run / 'config.json').read_text())
  assert (config['family'], config['model']['num_segments']) == ('trio16', segments)
  assert config['preset'].startswith('magenta_hier (imported')
  model = Model.load(str(run))
  tokens = model.decode_tokens(np.zeros((1, model.z_size), np.float32), greedy=True)
  assert tokens.shape == (1, 256, 3)
  mu, _ = model.encode(tokens)
  assert mu.shape == (1, model.z_size) and np.isfinite(mu).all()


def test_fine_tuning_keeps_the_hierarchical_encoders_segments(imported):
  """The segment count changes what the encoder's parameters mean but not their shapes, so
  `init_from` refuses another one (and accepts the same count written out)."""
  run = imported('hier-mel_4bar', 'q1')
  model = Model.load(str(run))
  like = jax.tree.map(np.asarray, model.params)
  own = model.config.model.to_dict()
  own['enc_segments'] = 16
  with pytest.raises(ValueError, match=r'reads 4 segments, .* --config.model.enc_segments=4'):
    run_lib.init_params_from(str(run), like, own)
  own['enc_segments'] = 4  # = num_segments, what None means
  got = run_lib.init_params_from(str(run), like, own)
  assert all(jax.tree.leaves(jax.tree.map(np.array_equal, got, like)))


# ----------------------------------------------------------------------------- using the imports

def _finetune_config(make_config, run, spec, **overrides):
  """`spec` (a smoke preset of the same kind) with the imported run's model section, a fresh
  optimizer from its parameters: what `--config.train.init_from=RUN` does."""
  model = json.loads((run / 'config.json').read_text())['model']
  fields = {f'model.{k}': tuple(v) if isinstance(v, list) else v for k, v in model.items()}
  return make_config(spec, **fields, **{'data.mode': 'magenta', 'data.source': 'freedoom',
                                        'train.init_from': str(run), 'train.num_steps': 2,
                                        'eval.every_steps': 0, **overrides})


def _moved(tuned, run):
  after, before = run_lib.load(str(tuned)).params, Model.load(str(run)).params
  return max(jax.tree.leaves(jax.tree.map(
      lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()), after, before)))


def test_imported_4bar_trio_evaluates_generates_and_fine_tunes(imported, make_config, tmp_path,
                                                               tfds_dir, capsys):
  from data_pipelines import build
  run = imported('hier-trio_4bar', 'q1')
  try:
    build.dataset_dir('freedoom', 'trio_4bar', 'magenta', tfds_dir)
    missing = False
  except FileNotFoundError:
    missing = True
  # Its own kind of data: the Freedoom trio_4bar windows (magenta mode), built on first use after
  # a line saying so.
  capsys.readouterr()
  results = evaluation.evaluate_run(str(run), recon_accuracy=False, num_batches=1, batch_size=8)
  printed = capsys.readouterr().out
  assert ('building the freedoom trio_4bar (magenta) dataset (once) in ' in printed) == missing
  assert ('67 MIDI files, under a minute' in printed) == missing
  assert results['kind'] == 'trio_4bar' and 0 < results['examples'] <= 8
  assert 0.0 <= results['metrics']['next_accuracy/drums'] <= 1.0 and results['metrics']['kl'] > 0
  paths = generation.run_command('sample', workdir=str(run), num=2, out=str(tmp_path / 's'))
  assert sum(p.endswith('.mid') for p in paths) == 2
  tuned = tmp_path / 'tuned'
  trainer.train_and_evaluate(_finetune_config(make_config, run, 'trio4:smoke'), str(tuned))
  assert run_lib.load(str(tuned)).step == 2
  assert 0 < _moved(tuned, run) < 0.1  # started from the import, then trained


def test_imported_16bar_melody_eval_midi_dir_generate_fine_tune(imported, make_config, tmp_path,
                                                                capsys):
  run = imported('hier-mel_16bar', 'q2')
  out = tmp_path / 'eval.json'
  assert run_cli(eval_cli, [f'--workdir={run}', f'--midi_dir={conversion.FREEDOOM_DIR}',
                            '--batch_size=8', '--num_batches=1', '--workers=1',
                            f'--output={out}']) == 0
  printed = capsys.readouterr().out
  assert 'extracting mel_16bar (magenta mode) windows from the MIDI files under' in printed
  results = json.loads(out.read_text())
  assert results['split'] == 'midi_dir' and results['examples'] == 8
  folder = results['midi_dir']
  assert folder['files'] == 67 and 0 < folder['used'] <= 67 and folder['skipped'] == {}
  assert f'windows from {folder["used"]} of 67 MIDI files' in printed
  paths = generation.run_command('sample', workdir=str(run), num=1, out=str(tmp_path / 's'))
  assert sum(p.endswith('.mid') for p in paths) == 1
  tuned = tmp_path / 'tuned'
  trainer.train_and_evaluate(_finetune_config(make_config, run, 'melody16:smoke_hier'),
                             str(tuned))
  assert run_lib.load(str(tuned)).step == 2 and 0 < _moved(tuned, run) < 0.1


def test_eval_midi_dir_names_what_it_skips(imported, tmp_path, capsys):
  run = imported('cat-drums_4bar', 'q1')
  folder = tmp_path / 'midi'
  folder.mkdir()
  shutil.copy(os.path.join(conversion.FREEDOOM_DIR, 'freedoom1_D_E1M4.mid'), folder)
  (folder / 'broken.mid').write_bytes(b'not a MIDI file')
  assert run_cli(eval_cli, [f'--workdir={run}', f'--midi_dir={folder}', '--batch_size=8',
                            '--workers=1', f'--output={tmp_path / "e.json"}']) == 0
  printed = capsys.readouterr().out
  assert 'from 1 of 2 MIDI files' in printed and '1 skipped: broken.mid (' in printed
  results = json.loads((tmp_path / 'e.json').read_text())
  assert list(results['midi_dir']['skipped']) == ['broken.mid']
  # No window of the kind anywhere: one line naming the files.
  os.remove(folder / 'freedoom1_D_E1M4.mid')
  assert run_cli(eval_cli, [f'--workdir={run}', f'--midi_dir={folder}', '--workers=1']) == 1
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and 'broken.mid' in err and 'none usable' in err


def test_build_estimate_says_what_and_how_long(tmp_path):
  """The line printed before a missing dataset is built (`input_pipeline.get_source`)."""
  from data_pipelines import build
  assert build.build_estimate('freedoom', None, 2) == '67 MIDI files, under a minute'
  for i in range(200):
    (tmp_path / f'{i:03d}.mid').write_bytes(b'')
  slow, fast = build.BUILD_RATES['midi']
  line = build.build_estimate('folder', str(tmp_path), 1)
  from data_pipelines import console
  assert line == (f'200 MIDI files, about {console.duration(200 / fast)} to '
                  f'{console.duration(200 / slow)} with 1 worker process')
