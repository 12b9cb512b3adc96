"""Magenta's checkpoints imported into mvae_jax reproduce Magenta's own outputs.

Fixtures (tests/fixtures/magenta_checkpoints/, see its README): tiny checkpoints written by the
reference's graph code with every variable random, and the reference's outputs on 8 real windows.
Four have the released configs' structures at the shared sizes; the `extra-*` ones have other
seeds and sizes with unequal layers (a `_big` structure too), so nothing here is tuned to one set
of sizes. Every check goes through the public API of an imported run: `Model.load(RUN)`.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile

import jax
import numpy as np
import pytest

from mvae_jax import config_lib, import_magenta, losses, tf_checkpoint
from mvae_jax.trained_model import Model
from data_pipelines import kinds
from mvae_jax import evaluation
from mvae_jax import generation
from mvae_jax import run as run_lib
from mvae_jax import trainer

ROOT = str(pathlib.Path(__file__).resolve().parents[1])
FIXTURES = pathlib.Path(__file__).resolve().parent / 'fixtures' / 'magenta_checkpoints'
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / 'checkpoint').is_dir())
# The released configs listed at their real sizes (real_sizes/vars_<config>.json).
REAL = sorted(p.stem[len('vars_'):] for p in (FIXTURES / 'real_sizes').glob('vars_*.json'))
ATOL = 1e-5


def config_name(case: str) -> str:
  return case.removeprefix('extra-')


@pytest.fixture(scope='module', autouse=True)
def highest_precision():
  with jax.default_matmul_precision('highest'):
    yield


@pytest.fixture(scope='module')
def imported(tmp_path_factory):
  """case -> (Model of the imported run, inputs, outputs); imported once per case."""
  cache = {}

  def get(case):
    if case not in cache:
      run = tmp_path_factory.mktemp(case) / 'run'
      import_magenta.import_checkpoint(str(FIXTURES / case / 'checkpoint'), config_name(case),
                                       str(run))
      cache[case] = (Model.load(str(run)), np.load(FIXTURES / case / 'inputs.npz'),
                     np.load(FIXTURES / case / 'outputs.npz'))
    return cache[case]
  return get


def test_fixtures_cover_the_four_structures_and_other_sizes():
  assert {config_name(c) for c in CASES} >= {'cat-mel_2bar_small', 'cat-drums_2bar_small',
                                             'hierdec-mel_16bar', 'hierdec-trio_16bar',
                                             'cat-mel_2bar_big'}
  sizes = json.loads((FIXTURES / 'extra-hierdec-mel_16bar' / 'hparams.json').read_text())
  assert sizes['overrides']['dec_rnn_size'][0] != sizes['overrides']['dec_rnn_size'][1]


@pytest.mark.parametrize('case', CASES)
def test_reader_returns_exactly_the_variables(case):
  got = tf_checkpoint.read_checkpoint(str(FIXTURES / case / 'checkpoint'))
  want = np.load(FIXTURES / case / 'variables.npz')
  assert sorted(got) == sorted(want.files)
  for name in want.files:
    assert got[name].dtype == want[name].dtype, name
    assert got[name].shape == want[name].shape, name
    np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def assert_reproduces_reference(model, tokens, outputs):
  """mu, sigma, the teacher-forced logits and losses and the greedy decodes of `model` on the
  fixture's `tokens` are the reference graph's `outputs` (the fixtures' outputs.npz)."""
  mu, sigma = model.encode(tokens)
  np.testing.assert_allclose(mu, outputs['mu'], atol=ATOL, rtol=0)
  np.testing.assert_allclose(sigma, outputs['sigma'], atol=ATOL, rtol=0)
  depths = outputs['part_depths']
  for which, z in (('mu', outputs['mu']), ('zrand', outputs['z_rand'])):
    logits = model.logits(tokens, z)
    assert [lg.shape for lg in logits] == [tokens.shape[:2] + (d,) for d in depths]
    assert all(lg.dtype == np.float32 for lg in logits)
    want = outputs[f'tf_logits_{which}']  # the first rows only (trimmed fixtures)
    got = np.concatenate(logits, axis=-1)[:len(want)]
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0, err_msg=which)
    rloss = np.asarray(losses.reconstruction_loss(logits, tokens))
    np.testing.assert_allclose(rloss, outputs[f'tf_rloss_{which}'], rtol=1e-5, atol=0)
    greedy = model.decode_tokens(z, greedy=True)
    np.testing.assert_array_equal(greedy, outputs[f'greedy_tokens_{which}'], err_msg=which)


@pytest.mark.parametrize('case', CASES)
def test_imported_run_reproduces_magenta(case, imported):
  model, inputs, outputs = imported(case)
  assert model.step == 4242
  assert_reproduces_reference(model, inputs['tokens'], outputs)


def test_checkpoint_paths_state_file_prefix_and_tar(tmp_path):
  src = FIXTURES / 'cat-mel_2bar_small' / 'checkpoint'
  want = tf_checkpoint.read_checkpoint(str(src))
  prefix = str(src / 'model.ckpt-4242')
  assert tf_checkpoint.resolve(str(src)) == prefix
  assert tf_checkpoint.read_checkpoint(prefix).keys() == want.keys()
  # A directory without a state file but with one .index; and Magenta's .tar (plain and gzip).
  bare = tmp_path / 'bare'
  shutil.copytree(src, bare)
  os.remove(bare / 'checkpoint')
  assert tf_checkpoint.resolve(str(bare)) == str(bare / 'model.ckpt-4242')
  for mode, name in (('w', 'cat-mel_2bar_small.tar'), ('w:gz', 'ckpt.tar.gz')):
    with tarfile.open(tmp_path / name, mode) as tar:
      for f in sorted(os.listdir(src)):
        if f != 'checkpoint':
          tar.add(src / f, arcname=f)
    got = tf_checkpoint.read_checkpoint(str(tmp_path / name))
    for k in want:
      np.testing.assert_array_equal(got[k], want[k])


def test_missing_and_corrupt_files_are_one_line_errors(tmp_path):
  src = FIXTURES / 'cat-mel_2bar_small' / 'checkpoint'
  with pytest.raises(tf_checkpoint.CheckpointError, match='no such checkpoint'):
    tf_checkpoint.read_checkpoint(str(tmp_path / 'nothing'))
  broken = tmp_path / 'broken'
  shutil.copytree(src, broken)
  data = broken / 'model.ckpt-4242.data-00000-of-00001'
  original = data.read_bytes()
  raw = bytearray(original)
  raw[100] ^= 0xFF
  data.write_bytes(bytes(raw))
  with pytest.raises(tf_checkpoint.CheckpointError, match='checksum mismatch') as e:
    tf_checkpoint.read_checkpoint(str(broken))
  assert '\n' not in str(e.value)
  data.write_bytes(original[:len(original) // 2])
  with pytest.raises(tf_checkpoint.CheckpointError, match='truncated'):
    tf_checkpoint.read_checkpoint(str(broken))
  os.remove(data)
  with pytest.raises(tf_checkpoint.CheckpointError, match='no such file'):
    tf_checkpoint.read_checkpoint(str(broken))
  index = broken / 'model.ckpt-4242.index'
  index.write_bytes(index.read_bytes()[:-10])
  with pytest.raises(tf_checkpoint.CheckpointError, match='not a TensorFlow checkpoint index'):
    tf_checkpoint.read_checkpoint(str(broken))


def test_cut_short_archives_and_other_files_are_one_line_errors(tmp_path):
  src = FIXTURES / 'cat-mel_2bar_small' / 'checkpoint'
  for mode, name in (('w', 'ckpt.tar'), ('w:gz', 'ckpt.tar.gz')):
    with tarfile.open(tmp_path / name, mode) as tar:
      for f in sorted(os.listdir(src)):
        if f != 'checkpoint':
          tar.add(src / f, arcname=f)
    data = (tmp_path / name).read_bytes()
    for cut in (len(data) // 5, len(data) // 2):
      (tmp_path / f'cut_{name}').write_bytes(data[:cut])
      with pytest.raises(tf_checkpoint.CheckpointError,
                         match='the archive is truncated or damaged') as e:
        tf_checkpoint.read_checkpoint(str(tmp_path / f'cut_{name}'))
      assert '\n' not in str(e.value)
  (tmp_path / 'random.bin').write_bytes(np.random.default_rng(0).bytes(5000))
  with pytest.raises(tf_checkpoint.CheckpointError, match='random.bin: not a TensorFlow checkpoint'):
    tf_checkpoint.read_checkpoint(str(tmp_path / 'random.bin'))


def test_cli_usage_errors_exit_2(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'mvae_jax.import_magenta', f'--checkpoint={tmp_path}',
       '--config=cat-mel_2bar_smal', f'--workdir={tmp_path / "run"}'],
      cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
      timeout=300)
  assert proc.returncode == 2
  [line] = proc.stderr.strip().splitlines()
  assert line.startswith('error: flag --config=cat-mel_2bar_smal: value should be one of')


def test_crc32c_known_values():
  assert tf_checkpoint.crc32c(b'123456789') == 0xE3069283  # the CRC-32C check value
  assert tf_checkpoint.crc32c(b'') == 0
  data = np.random.default_rng(0).integers(0, 256, 10_007, dtype=np.uint8).tobytes()
  r = 0xFFFFFFFF  # bytewise reference
  for b in data:
    r = int(tf_checkpoint._TABLE[(r ^ b) & 0xFF]) ^ (r >> 8)
  assert tf_checkpoint.crc32c(data) == r ^ 0xFFFFFFFF


@pytest.mark.parametrize('wrong, case, variable', [
    ('cat-mel_2bar_big', 'hierdec-mel_16bar', 'decoder/multi_rnn_cell/cell_0/lstm_cell/bias'),
    ('cat-mel_2bar_small', 'cat-drums_2bar_small', 'encoder/cell_0/bidirectional_rnn/'),
    ('hierdec-trio_16bar', 'hierdec-mel_16bar', 'core_decoder/core_decoder_0/decoder'),
])
def test_wrong_config_is_a_one_line_error_naming_the_variable(wrong, case, variable, tmp_path):
  with pytest.raises(import_magenta.ImportMismatchError) as e:
    import_magenta.import_checkpoint(str(FIXTURES / case / 'checkpoint'), wrong,
                                     str(tmp_path / 'run'))
  msg = str(e.value)
  assert '\n' not in msg and variable in msg and 'expected shape' in msg and 'found' in msg
  assert not (tmp_path / 'run' / 'checkpoints').exists()


def test_optimizer_slots_are_ignored_and_extra_variables_are_not(tmp_path):
  variables = tf_checkpoint.read_checkpoint(str(FIXTURES / 'cat-mel_2bar_small' / 'checkpoint'))
  v = import_magenta._Variables(
      {**variables, 'beta1_power': np.float32(0.9), 'encoder/mu/kernel/Adam': np.zeros(3)},
      'cat-mel_2bar_small', 'x')
  v.used.update(n for n in variables)
  v.check_all_used()  # optimiser names do not count
  v.vars['encoder/extra/kernel'] = np.zeros((2, 3), np.float32)
  with pytest.raises(import_magenta.ImportMismatchError, match=r'encoder/extra/kernel \[2, 3\]'):
    v.check_all_used()


def test_cli_imports_and_eval_generate_finetune_work(tmp_path, tfds_dir, make_config):
  """The command line on the fixture .tar; then eval, generate and a 2-step fine-tune."""
  run = tmp_path / 'run'
  src = FIXTURES / 'cat-drums_2bar_small' / 'checkpoint'
  tar = tmp_path / 'cat-drums_2bar_small.tar'
  with tarfile.open(tar, 'w') as t:
    for f in sorted(os.listdir(src)):
      t.add(src / f, arcname=f)
  env = dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).resolve().parents[1]),
             TFDS_DATA_DIR=tfds_dir, JAX_PLATFORMS='cpu')
  cmd = [sys.executable, '-m', 'mvae_jax.import_magenta', f'--checkpoint={tar}',
         '--config=cat-drums_2bar_small', f'--workdir={run}']
  r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
  assert r.returncode == 0, r.stderr
  assert 'imported cat-drums_2bar_small (enc [24], z 8, dec [16, 16]) at step 4242' in r.stdout
  config = json.loads((run / 'config.json').read_text())
  assert config['model']['forget_bias'] == 1.0 and config['model']['dec_sizes'] == [16, 16]
  # A second import into the same directory is refused.
  with pytest.raises(ValueError, match='already holds checkpoints'):
    import_magenta.import_checkpoint(str(tar), 'cat-drums_2bar_small', str(run))
  # The same one-line error from the command line for the wrong config.
  r = subprocess.run(cmd[:4] + ['--config=cat-mel_2bar_small', f'--workdir={tmp_path}/r2'],
                     capture_output=True, text=True, env=env, timeout=300)
  assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
  assert 'expected shape' in r.stderr

  results = evaluation.evaluate_run(str(run), recon_accuracy=True, num_batches=1, batch_size=8)
  assert results['step'] == 4242 and results['examples'] == 8
  assert 0.0 <= results['metrics']['recon_accuracy'] <= 1.0
  paths = generation.run_command('sample', workdir=str(run), num=2, out=str(tmp_path / 'samples'))
  assert sum(p.endswith('.mid') for p in paths) == 2

  # Fine-tune: parameters from the imported run, fresh optimizer, step 0 (the smoke preset with
  # the imported model section).
  model_cfg = {f'model.{k}': tuple(v) if isinstance(v, list) else v
               for k, v in config['model'].items()}
  cfg = make_config('drums2:smoke', **model_cfg, **{
      'data.mode': 'magenta', 'train.init_from': str(run), 'train.num_steps': 2})
  tuned = tmp_path / 'tuned'
  trainer.train_and_evaluate(cfg, str(tuned))
  loaded = run_lib.load(str(tuned))
  params, step = loaded.params, loaded.step
  assert step == 2
  base = Model.load(str(run)).params
  moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                       params, base)
  assert 0 < max(jax.tree.leaves(moved)) < 0.1  # started from the import, then trained


def test_init_from_shape_mismatch_is_a_one_line_error(imported, tmp_path):
  model, _, _ = imported('cat-mel_2bar_small')
  like = jax.tree.map(np.asarray, model.params)
  assert jax.tree.all(jax.tree.map(np.array_equal, run_lib.init_params_from(model.workdir, like),
                                   like))
  like['encoder']['mu']['kernel'] = np.zeros((3, 3), np.float32)
  with pytest.raises(ValueError) as e:
    run_lib.init_params_from(model.workdir, like)
  msg = str(e.value)
  assert '\n' not in msg and "['encoder']['mu']['kernel']" in msg and '(3, 3)' in msg
  with pytest.raises(FileNotFoundError, match='init_from'):
    run_lib.init_params_from(str(tmp_path / 'nothing'), like)
  own = model.config.model.to_dict()
  own['forget_bias'] = 0.0  # same shapes, but the biases would mean something else
  like = jax.tree.map(np.asarray, model.params)
  with pytest.raises(ValueError, match=r'model.forget_bias is 1.0.*--config.model.forget_bias=1.0'):
    run_lib.init_params_from(model.workdir, like, own)


def test_forget_bias_option_is_the_same_function_as_a_shifted_bias():
  """Run-time forget bias 1.0 with bias b == no run-time bias with b + 1 on the forget gate (the
  hierarchical imports above cover the conductor); drum_input='one_hot' widens only the
  encoder's drum input."""
  from mvae_jax.models import MusicVAE
  trio = dict(part_vocab=(90, 90, 512), part_is_drums=(False, False, True), z_size=4,
              enc_sizes=(6,), decoder='hier', dec_sizes=(5,), conductor_sizes=(5,),
              num_segments=2, embedding_size=None)
  tokens = np.zeros((2, 4, 3), np.int32)
  for drum_input, width in (('roll', 90 + 90 + 10), ('one_hot', 90 + 90 + 512)):
    shapes = jax.eval_shape(lambda: MusicVAE(**trio, drum_input=drum_input).init(
        jax.random.PRNGKey(0), tokens, method=MusicVAE.encode))['params']
    assert shapes['encoder']['fwd_0']['input_kernel'].shape[0] == width
  kw = dict(part_vocab=(12,), part_is_drums=(False,), z_size=4, enc_sizes=(6,),
            dec_sizes=(5, 7))
  ours, ref = MusicVAE(**kw), MusicVAE(**kw, forget_bias=1.0)
  tokens = np.random.default_rng(0).integers(0, 12, (2, 6, 1)).astype(np.int32)
  z = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
  p_ref = jax.jit(lambda: ref.init({'params': jax.random.PRNGKey(1), 'z': jax.random.PRNGKey(2)},
                                   tokens))()['params']
  assert not np.any(p_ref['decoder']['melody']['lstm_0']['bias'])  # starts at 0 with the option
  p_ref = jax.tree.map(lambda x: x + 0.3 * jax.random.normal(jax.random.PRNGKey(3), x.shape),
                       p_ref)

  def shifted(path, x):
    if path[-1].key != 'bias' or not any(getattr(k, 'key', '')[:4] in ('lstm', 'fwd_', 'bwd_')
                                         for k in path):
      return x
    h = x.shape[0] // 4
    return x.at[2 * h:3 * h].add(1.0)

  p_ours = jax.tree_util.tree_map_with_path(shifted, p_ref)

  def run(model, params):  # encoder and teacher-forced decoder outputs, one compile
    return jax.jit(lambda p: (
        model.apply({'params': p}, tokens, method=MusicVAE.encode),
        model.apply({'params': p}, tokens, z, method=MusicVAE.decode_teacher_forced)))(params)

  got, want = jax.tree.leaves(run(ref, p_ref)), jax.tree.leaves(run(ours, p_ours))
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, atol=1e-5)
  # And the option matters: the same parameters without it give something else.
  other = jax.tree.leaves(run(ours, p_ref))
  assert min(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(got, other)) > 1e-3


def _real_variables(name):
  """The released checkpoint's variable set at its real size, as zero-copy broadcast arrays
  (`real_sizes/vars_<config>.json`, listed from the reference's graphs), plus Adam slots as
  `music_vae_train` saves them."""
  info = json.loads((FIXTURES / 'real_sizes' / f'vars_{name}.json').read_text())
  out = {}
  for var, shape in info['variables_train']:
    out[var] = np.broadcast_to(np.float32(0), shape) if var != 'global_step' else np.int64(5)
    if var != 'global_step':
      out[var + '/Adam'] = out[var + '/Adam_1'] = out[var]
  out['beta1_power'] = out['beta2_power'] = np.float32(0.9)
  return info, out


# Data augmentation of the released configs (Magenta 2.1.4 configs.py: NoteSequenceAugmenter
# transpose_range=(-5, 5) for cat-mel_2bar_*, no augmenter for the others).
REF_SHIFT = {'cat-mel_2bar_small': (-5, 5), 'cat-mel_2bar_big': (-5, 5)}


@pytest.mark.parametrize('name', REAL)
def test_released_configs_import_at_real_size_and_presets_match_the_reference(name):
  info, variables = _real_variables(name)
  config, params, step = import_magenta.convert(variables, name)
  assert step == 5
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  assert n_params == info['num_params'] - 1 * sum(  # the conductor's dropped zero-input row
      4 * s for s in ([info['hparams']['dec_rnn_size'][0]] if name.startswith('hierdec') else []))
  # The imported sizes are the preset's: the preset is the released config.
  s = import_magenta.CONFIGS[name]
  preset = config_lib.from_file(f'{s.family}:{s.preset}')
  assert config.model.to_dict() == preset.model.to_dict()
  hp = info['hparams']
  m, c = preset.model, preset
  assert (m.z_size, list(m.enc_sizes), list(m.dec_sizes)) == (
      hp['z_size'], hp['enc_rnn_size'], hp['dec_rnn_size'])
  if m.decoder == 'hier':
    assert list(m.conductor_sizes) == hp['dec_rnn_size'] and m.embedding_size is None
  assert m.forget_bias == 1.0
  assert m.drum_input == ('one_hot' if name == 'hierdec-trio_16bar' else 'roll')
  assert (c.loss.free_bits, c.loss.max_beta, c.loss.beta_rate) == (
      hp['free_bits'], hp['max_beta'], hp['beta_rate'])
  assert c.train.batch_size == hp['batch_size']
  assert (c.optim.learning_rate, c.optim.decay_rate, c.optim.min_learning_rate,
          c.optim.grad_clip, c.optim.clip_to_zero_norm) == (
              hp['learning_rate'], hp['decay_rate'], hp['min_learning_rate'], hp['grad_clip'],
              hp['grad_norm_clip_to_zero'])
  if hp['sampling_schedule'] == 'inverse_sigmoid':
    assert c.train.scheduled_sampling and c.train.ss_rate == hp['sampling_rate']
  else:
    assert (hp['sampling_schedule'], hp['sampling_rate']) == ('constant', 0.0)
    assert not c.train.scheduled_sampling
  assert (hp['dropout_keep_prob'], hp['residual_encoder'], hp['residual_decoder']) == (
      1.0, False, False)  # nothing of these in our model
  if name in REF_SHIFT:
    assert c.data.augment and (c.data.shift_min, c.data.shift_max) == REF_SHIFT[name]
  else:
    assert not c.data.augment
  assert kinds.time_steps(c.data.kind) == hp['max_seq_len'] and c.data.mode == 'magenta'


def test_runs_written_before_the_new_fields_still_load(imported, tmp_path):
  """A config.json without model.forget_bias / model.drum_input / train.init_from (a run made
  before they existed) loads with their defaults, the behaviour it was trained with."""
  model, inputs, _ = imported('cat-mel_2bar_small')
  old = tmp_path / 'old'
  shutil.copytree(model.workdir, old)
  raw = json.loads((old / 'config.json').read_text())
  del raw['model']['drum_input'], raw['train']['init_from']
  (old / 'config.json').write_text(json.dumps(raw))
  again = Model.load(str(old))
  assert again.config.model.drum_input == 'roll' and again.config.train.init_from == ''
  np.testing.assert_array_equal(again.encode(inputs['tokens'])[0],
                                model.encode(inputs['tokens'])[0])
