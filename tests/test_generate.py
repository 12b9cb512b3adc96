"""Sampling, interpolation, reconstruction and their CLI on `smoke` checkpoints of every family.

Checkpoints come from `smoke_run(family)`: a fresh `smoke`-size model saved through the training
code's own state and checkpoint functions (`run_lib.init_state`, `checkpoints.save`), which takes a
second or two and no data; `trained=True` runs `trainer.train_and_evaluate` (4 steps on the Freedoom
songs) instead. Runs are cached for the whole test session (test_eval.py uses them too).
"""
import functools
import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import note_seq
import numpy as np
import pretty_midi
import pytest

from data_pipelines import encoding
from mvae_jax import checkpoints, generate
from tests.conftest import load_config
from data_pipelines import inputs
from data_pipelines import kinds
from mvae_jax import generation
from mvae_jax import run as run_lib
from mvae_jax import trained_model
from mvae_jax import trainer

FAMILIES = ('melody2', 'drums2', 'melody16', 'melody32', 'trio16')
FREEDOOM = pathlib.Path(__file__).resolve().parents[1] / 'data_pipelines' / 'freedoom'
# Freedoom songs with usable windows for every kind (E1M1 and E1M2 have lead, bass and drums).
INPUT_A = FREEDOOM / 'freedoom1_D_E1M1.mid'
INPUT_B = FREEDOOM / 'freedoom1_D_E1M2.mid'

_RUNS: dict = {}


def smoke_run(spec: str, root, *, trained: bool = False, data_dir: str | None = None) -> str:
  """A run directory with a `smoke` checkpoint of `spec` ('melody2' or 'melody2,baseline'),
  made once per session and process under each `root` (tests that write into a run, such as
  attribute vectors, use a root of their own)."""
  key = (spec, trained, str(root), data_dir)
  if key not in _RUNS:
    family, _, mods = spec.partition(',')
    config = load_config(f'{family}:smoke' + (f',{mods}' if mods else ''), data_dir)
    workdir = os.path.join(str(root), spec.replace(',', '_') + ('_trained' if trained else ''))
    if trained:
      trainer.train_and_evaluate(config, workdir)
    else:
      run_lib.write_config(config, workdir)
      model, optimizer = run_lib.create_model(config.model), run_lib.create_optimizer(config)
      shape = (1, kinds.time_steps(config.data.kind), len(config.model.part_vocab))
      init = jax.jit(functools.partial(run_lib.init_state, model=model, optimizer=optimizer,
                                       shape=shape))
      mgr = checkpoints.manager(workdir, async_save=False)
      checkpoints.save(mgr, 1, init(jax.random.PRNGKey(0)), {'next_batch': 1})
      mgr.wait_until_finished()
      mgr.close()
    _RUNS[key] = workdir
  return _RUNS[key]


@pytest.fixture(scope='session')
def runs_root(tmp_path_factory):
  return tmp_path_factory.mktemp('smoke_runs')


def run_cli(module, argv):
  """Runs `python -m <module> argv...` in this process, with the command's own flags (defined
  afresh, as the program defines them); returns main's exit code."""
  from absl import flags
  fv = flags.FlagValues()
  module.define_flags(fv)
  rest = fv([module.__name__] + list(argv))
  saved, module.FLAGS = module.FLAGS, fv
  try:
    return module.main(rest)
  finally:
    module.FLAGS = saved


def check_midi(path, spec, num_windows=1, expected_tokens=None):
  """The MIDI file parses, is 4/4 at 120 qpm, fits `num_windows` windows of `spec`, and has
  the instruments of the spec's parts (and, given the tokens, exactly their notes)."""
  pm = pretty_midi.PrettyMIDI(str(path))
  bar_seconds = 2.0  # 4/4 at 120 qpm
  assert pm.get_end_time() <= num_windows * spec.num_bars * bar_seconds + 1e-6
  ns = note_seq.midi_file_to_note_sequence(str(path))
  assert [(t.numerator, t.denominator) for t in ns.time_signatures] in ([], [(4, 4)])
  assert all(abs(t.qpm - 120.0) < 1e-6 for t in ns.tempos)
  allowed = set()
  for k, part in enumerate(spec.parts):
    allowed.add((True, 0) if part == 'drums' else
                (False, encoding.TRIO_OUTPUT_PROGRAMS[k] if len(spec.parts) > 1 else 0))
  found = {(n.is_drum, 0 if n.is_drum else n.program) for n in ns.notes}
  assert found <= allowed, (found, allowed)
  if expected_tokens is not None:
    want = encoding.windows_to_note_sequence(
        expected_tokens[:, 0] if expected_tokens.shape[-1] == 1 else expected_tokens, spec)
    key = lambda n: (round(n.start_time, 3), n.pitch, n.is_drum)  # noqa: E731
    assert sorted(map(key, ns.notes)) == sorted(map(key, want.notes))
    parts_with_notes = {(p == 'drums') for k, p in enumerate(spec.parts)
                        if np.any(expected_tokens[:, k] >= (1 if p == 'drums' else 2))}
    assert {d for d, _ in found} == parts_with_notes
  return ns


@pytest.mark.parametrize('family', FAMILIES)
def test_sample_interpolate_reconstruct(family, runs_root, tmp_path):
  workdir = smoke_run(family, runs_root)
  model = trained_model.Model.load(workdir)
  spec = model.spec
  assert model.step == 1

  # sample: N pieces at the paper's temperature, each a MIDI and a PNG.
  out = tmp_path / 'sample'
  paths = generation.run_command('sample', workdir=workdir, num=2, out=str(out), seed=3)
  mids = sorted(p for p in paths if p.endswith('.mid'))
  assert len(mids) == 2 and len([p for p in paths if p.endswith('.png')]) == 2
  tokens = model.sample_tokens(2, seed=3)
  assert tokens.shape == (2, spec.num_steps, len(spec.parts))
  for mid, t in zip(mids, tokens):
    check_midi(mid, spec, expected_tokens=t)

  # interpolate between two MIDI files (greedy: deterministic, one compile less).
  out = tmp_path / 'interp'
  paths = generation.run_command('interpolate', workdir=workdir, a=str(INPUT_A), b=str(INPUT_B),
                               steps=3, greedy=True, out=str(out))
  names = sorted(os.path.basename(p) for p in paths)
  assert names == ['input_a.mid', 'input_b.mid', 'interp_00.mid', 'interp_00.png',
                   'interp_01.mid', 'interp_01.png', 'interp_02.mid', 'interp_02.png',
                   'interpolation.mid', 'interpolation.png']
  steps = model.interpolate_tokens(str(INPUT_A), str(INPUT_B), 3, greedy=True)
  for i in range(3):
    check_midi(out / f'interp_{i:02d}.mid', spec, expected_tokens=steps[i])
  ta = model.tokens(str(INPUT_A))[0]
  check_midi(out / 'input_a.mid', spec, expected_tokens=ta)
  # The concatenated file: input A, the 3 steps, input B, each a whole window long.
  whole = check_midi(out / 'interpolation.mid', spec, num_windows=5)
  step1 = [n for n in whole.notes if 2 * spec.num_bars * 2.0 - 1e-6 <= n.start_time
           < 3 * spec.num_bars * 2.0 - 1e-6]
  assert len(step1) == len(model.to_note_sequence(steps[1]).notes)
  # The endpoints of the interpolation are the decoded mu of each input.
  np.testing.assert_array_equal(steps[0], model.reconstruct_tokens(str(INPUT_A))[0])

  # reconstruct a MIDI file: input and reconstruction, and a comparison picture.
  out = tmp_path / 'recon'
  paths = generation.run_command('reconstruct', workdir=workdir, input_path=str(INPUT_B),
                               out=str(out))
  assert {os.path.basename(p) for p in paths} == {
      'input.mid', 'input.png', 'reconstruction.mid', 'reconstruction.png', 'comparison.png'}
  check_midi(out / 'reconstruction.mid', spec,
             expected_tokens=model.reconstruct_tokens(str(INPUT_B))[0])
  check_midi(out / 'input.mid', spec, expected_tokens=model.tokens(str(INPUT_B))[0])


def test_python_api(runs_root):
  model = trained_model.Model.load(smoke_run('melody2', runs_root))
  mu, sigma = model.encode(str(INPUT_A))
  assert mu.shape == sigma.shape == (1, 8) and np.all(sigma > 0)
  # Same window as a NoteSequence, as tokens [time], [time, 1] and [batch, time, 1].
  windows = inputs.midi_windows(str(INPUT_A), model.spec)
  ns = note_seq.midi_file_to_note_sequence(str(INPUT_A))
  for x in (ns, windows[0, :, 0], windows[0], windows[:1]):
    np.testing.assert_allclose(model.encode(x)[0], mu, rtol=1e-5, atol=1e-6)
  assert model.encode(windows[:3])[0].shape == (3, 8)
  # `window` picks among several windows of a file (in time order; by default the first with
  # note onsets in both bars), also by the bar where it starts.
  assert inputs.input_windows(str(INPUT_A), model.spec).default == 0
  np.testing.assert_allclose(model.encode(str(INPUT_A), window=2)[0],
                             model.encode(windows[2])[0], rtol=1e-5, atol=1e-6)
  bars = model.windows(str(INPUT_A)).bars
  np.testing.assert_allclose(model.encode(str(INPUT_A), window=f'bar:{bars[5]}')[0],
                             model.encode(windows[int(np.flatnonzero(bars == bars[5])[0])])[0],
                             rtol=1e-5, atol=1e-6)

  samples = model.sample(3, temperature=0.5, seed=0)
  assert len(samples) == 3 and all(isinstance(s, note_seq.NoteSequence) for s in samples)
  assert all(s.total_time == pytest.approx(4.0) for s in samples)  # 2 bars at 120 qpm
  same = model.sample_tokens(3, seed=0)
  np.testing.assert_array_equal(same, model.sample_tokens(3, seed=0))
  assert not np.array_equal(same, model.sample_tokens(3, seed=1))
  # Greedy decoding of a given z involves no randomness.
  np.testing.assert_array_equal(model.decode_tokens(mu, greedy=True, seed=0),
                                model.decode_tokens(mu, greedy=True, seed=5))

  decoded = model.decode(mu, greedy=True)
  assert len(decoded) == 1
  recon = model.reconstruct(str(INPUT_A))
  assert [n.pitch for n in recon[0].notes] == [n.pitch for n in decoded[0].notes]

  # interpolate: endpoints are the mu of the inputs; sampled points share their noise.
  z = model.interpolation_z(str(INPUT_A), str(INPUT_B), steps=4)
  mu_b, _ = model.encode(str(INPUT_B))
  np.testing.assert_allclose(z[0], mu[0], rtol=1e-6)
  np.testing.assert_allclose(z[-1], mu_b[0], rtol=1e-6)
  pieces = model.interpolate(str(INPUT_A), str(INPUT_B), steps=4, temperature=0.5, seed=1)
  assert len(pieces) == 4
  shared = model.decode_tokens(np.stack([z[1], z[1]]), seed=1, shared_noise=True)
  np.testing.assert_array_equal(shared[0], shared[1])

  path = trained_model.to_midi(pieces[0], os.path.join(model.workdir, 'api', 'x.mid'))
  assert pretty_midi.PrettyMIDI(path).get_end_time() <= 4.0 + 1e-6
  with pytest.raises(inputs.InputError, match='is out of range'):
    model.encode(str(INPUT_A), window=10**6)
  with pytest.raises(inputs.InputError, match='do not fit this model'):
    model.encode(np.zeros((16,), np.int32))
  with pytest.raises(inputs.InputError, match='outside'):
    model.encode(np.full((32,), 500, np.int32))


def test_one_call_paths_equal_the_step_by_step_ones(runs_root):
  """sample_tokens and interpolate_pairs_tokens run as one compiled call each (key, z, slerp
  inside); they give what the separate steps give."""
  model = trained_model.Model.load(smoke_run('melody16', runs_root))
  for seed in (0, 5, -1, 2**32 + 3):  # the seed is passed as PRNGKey reads it
    np.testing.assert_array_equal(jax.random.PRNGKey(trained_model._seed(seed)),
                                  jax.random.PRNGKey(seed))
  # sample: z from fold_in(PRNGKey(seed), 0), decoded with the seed's key; row i does not
  # depend on how many rows are drawn.
  z = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(7), 0), (3, model.z_size))
  sampled = model.sample_tokens(3, seed=7)
  np.testing.assert_array_equal(sampled, model.decode_tokens(np.asarray(z), seed=7))
  np.testing.assert_array_equal(sampled[:1], model.sample_tokens(1, seed=7))
  # interpolate: encode, slerp and decode in one call = interpolation_z then decode_tokens
  # with shared noise, pair by pair; one pair = interpolate_tokens.
  rng = np.random.default_rng(0)
  a = rng.integers(0, model.part_vocab[0], (2, model.time, 1)).astype(np.int32)
  b = rng.integers(0, model.part_vocab[0], (2, model.time, 1)).astype(np.int32)
  for greedy in (False, True):
    pairs = model.interpolate_pairs_tokens(a, b, 5, temperature=0.5, greedy=greedy, seed=3)
    assert pairs.shape == (2, 5, model.time, 1)
    for i in range(2):
      z = model.interpolation_z(a[i], b[i], 5)
      step = model.decode_tokens(z, temperature=0.5, greedy=greedy, seed=3,
                                 shared_noise=not greedy)
      np.testing.assert_array_equal(pairs[i], step)
      np.testing.assert_array_equal(
          pairs[i], model.interpolate_tokens(a[i], b[i], 5, temperature=0.5, greedy=greedy,
                                             seed=3))
  with pytest.raises(inputs.InputError, match='pairs'):
    model.interpolate_pairs_tokens(a, b[:1])
  with pytest.raises(ValueError, match='at least 2'):
    model.interpolate_pairs_tokens(a, b, 1)


def test_compilation_cache_serves_a_new_process(tmp_path):
  """A Model keeps its compiled functions in the persistent cache folder; =off keeps none."""
  script = ('import sys; from mvae_jax import config_lib, trained_model; '
            'from mvae_jax import run as run_lib; import jax, jax.numpy as jnp; '
            "c = config_lib.from_file('melody2:smoke'); m = run_lib.create_model(c.model); "
            "p = jax.jit(m.init)(dict(zip(('params', 'z', 'sample'), jax.random.split("
            "jax.random.PRNGKey(0), 3))), jnp.zeros(run_lib.input_shape(c), jnp.int32))['params']; "
            'model = trained_model.Model(c, m, p); model.sample_tokens(2); '
            'print(jax.config.jax_compilation_cache_dir)')
  root = pathlib.Path(__file__).resolve().parents[1]
  for value, expect_files in ((str(tmp_path / 'xla'), True), ('off', False)):
    env = dict(os.environ, MVAE_JAX_COMPILATION_CACHE=value, JAX_PLATFORMS='cpu',
               PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True,
                         text=True, cwd=str(root))
    assert out.returncode == 0, out.stderr[-2000:]
    cached = list((tmp_path / 'xla').glob('*')) if (tmp_path / 'xla').exists() else []
    if expect_files:
      assert out.stdout.strip().endswith(str(tmp_path / 'xla'))
      assert any('_sample' in f.name for f in cached)  # the one-call sampling function
    else:
      assert out.stdout.strip() == 'None'


def test_baseline_samples_but_cannot_encode(runs_root, tmp_path):
  workdir = smoke_run('melody2,baseline', runs_root)
  model = trained_model.Model.load(workdir)
  tokens = model.sample_tokens(2, seed=0)
  assert tokens.shape == (2, 32, 1)
  paths = generation.run_command('sample', workdir=workdir, num=2, out=str(tmp_path))
  assert len(paths) == 4
  with pytest.raises(ValueError, match='baseline'):
    model.encode(str(INPUT_A))
  with pytest.raises(ValueError, match='baseline'):
    model.interpolate(str(INPUT_A), str(INPUT_B))
  assert run_cli(generate, ['reconstruct', f'--workdir={workdir}', f'--input={INPUT_A}']) == 1


def test_slerp_points_are_equally_spaced():
  a, b = np.array([2.0, 0.0, 0.0]), np.array([0.0, 2.0, 0.0])
  points = trained_model.slerp_points(a, b, 5)
  np.testing.assert_array_equal(points[0], a)
  np.testing.assert_array_equal(points[-1], b)
  np.testing.assert_allclose(np.linalg.norm(points, axis=1), 2.0, rtol=1e-6)
  unit = points / 2.0
  angles = np.arccos(np.clip(np.sum(unit[1:] * unit[:-1], axis=1), -1, 1))
  np.testing.assert_allclose(angles, np.pi / 8, rtol=1e-5)


# ----------------------------------------------------------------------------- unusable inputs

def _write_midi(path, *, numerator=4, seconds=8.0, program=0, is_drum=False, pitch=60,
                extra=()):
  pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
  pm.time_signature_changes.append(pretty_midi.TimeSignature(numerator, 4, 0.0))
  inst = pretty_midi.Instrument(program=program, is_drum=is_drum)
  t = 0.0
  while t < seconds:
    inst.notes.append(pretty_midi.Note(80, pitch, t, t + 0.25))
    t += 0.5
  pm.instruments.append(inst)
  for program_, is_drum_, pitch_ in extra:
    other = pretty_midi.Instrument(program=program_, is_drum=is_drum_)
    other.notes.extend(pretty_midi.Note(80, pitch_, n.start, n.end) for n in inst.notes)
    pm.instruments.append(other)
  pm.write(str(path))
  return str(path)


def test_unusable_inputs_say_why(tmp_path):
  mel2 = encoding.window_spec('mel_2bar', 'paper')
  drums = encoding.window_spec('drums_2bar', 'paper')
  trio = encoding.window_spec('trio_16bar', 'paper')
  mel_mag = encoding.window_spec('mel_2bar', 'magenta')
  cases = [
      (_write_midi(tmp_path / 'waltz.mid', numerator=3), mel2, r'no section in 4/4.*3/4'),
      (_write_midi(tmp_path / 'short.mid', seconds=2.0), mel2, r'too short: .* \d\.\d bars, the '
       'model needs 2'),
      (_write_midi(tmp_path / 'melody.mid'), drums, 'no drums'),
      (_write_midi(tmp_path / 'kit.mid', is_drum=True, pitch=36), mel2, 'every note is a drum'),
      (_write_midi(tmp_path / 'low.mid', pitch=12), mel_mag, r'melody range \(pitches 21\.\.108'),
      (_write_midi(tmp_path / 'strings.mid', program=48), mel_mag, 'program in 0..31'),
      (_write_midi(tmp_path / 'duo.mid', seconds=40.0, extra=[(0, True, 36)]), trio,
       r'missing: bass \(program 32..39\)'),
      (str(tmp_path / 'missing.mid'), mel2, 'no such file'),
  ]
  (tmp_path / 'junk.mid').write_bytes(b'not a midi file at all')
  cases.append((str(tmp_path / 'junk.mid'), mel2, 'cannot read it as MIDI'))
  for path, spec, pattern in cases:
    with pytest.raises(inputs.InputError, match=pattern) as info:
      inputs.midi_windows(path, spec)
    assert os.path.basename(path) in str(info.value)
  # The trio with all three parts is fine.
  ok = _write_midi(tmp_path / 'trio.mid', seconds=40.0, extra=[(33, False, 40), (0, True, 36)])
  assert inputs.midi_windows(ok, trio).shape[1:] == (256, 3)


# ----------------------------------------------------------------------------- the CLI

def test_cli_outputs_and_errors(runs_root, tmp_path, capsys):
  workdir = smoke_run('drums2', runs_root)
  out = tmp_path / 'cli'
  assert run_cli(generate, ['sample', f'--workdir={workdir}', '--num=2', f'--out={out}',
                            '--greedy']) == 0
  printed = capsys.readouterr().out.split()
  assert sorted(os.path.basename(p) for p in printed) == [
      'sample_000.mid', 'sample_000.png', 'sample_001.mid', 'sample_001.png']
  assert all(os.path.exists(p) for p in printed)
  # --out that holds files is refused without --overwrite.
  assert run_cli(generate, ['sample', f'--workdir={workdir}', '--num=2', f'--out={out}']) == 1
  assert 'already holds files; pass --overwrite' in capsys.readouterr().err
  before = (out / 'sample_000.mid').read_bytes()
  assert run_cli(generate, ['sample', f'--workdir={workdir}', '--num=2', f'--out={out}',
                            '--overwrite', '--seed=5']) == 0
  assert (out / 'sample_000.mid').read_bytes() != before
  capsys.readouterr()

  # Default output folder: <workdir>/samples/<command>-<input>-bar<N>-step<step>-<how>-seed<seed>
  # with the window's bar, and the next free index when the same call runs again.
  windows = inputs.input_windows(str(INPUT_A), encoding.window_spec('drums_2bar', 'paper'))
  bar = windows.bars[windows.default]
  folder = os.path.join(workdir, 'samples',
                        f'reconstruct-freedoom1_D_E1M1-bar{bar}-step1-greedy-seed0')
  for expected in (folder, folder + '-2'):
    assert run_cli(generate, ['reconstruct', f'--workdir={workdir}', f'--input={INPUT_A}']) == 0
    captured = capsys.readouterr()
    assert {os.path.dirname(p) for p in captured.out.split()} == {expected}
    assert (f'freedoom1_D_E1M1.mid: {len(windows)} windows of 2 bars, in time order' in
            captured.err)
    assert f'using window {windows.default} (bars {bar}-{bar + 1}' in captured.err
    assert 'pick another with --window=K' in captured.err
  # Sampling twice with the same settings writes two folders.
  for expected in ('sample-step1-T0.5-seed0', 'sample-step1-T0.5-seed0-2'):
    assert run_cli(generate, ['sample', f'--workdir={workdir}', '--num=1']) == 0
    assert {os.path.basename(os.path.dirname(p))
            for p in capsys.readouterr().out.split()} == {expected}
  # A window chosen by its bar.
  other = int(windows.bars[-1])
  assert run_cli(generate, ['reconstruct', f'--workdir={workdir}', f'--input={INPUT_A}',
                            f'--window=bar:{other}']) == 0
  captured = capsys.readouterr()
  assert f'-bar{other}-step1' in captured.out and f'(--window=bar:{other})' in captured.err
  assert run_cli(generate, ['reconstruct', f'--workdir={workdir}', f'--input={INPUT_A}',
                            '--window=bar:100000']) == 1
  assert 'no 2-bar window starts at bar 100000; windows start at bars' in capsys.readouterr().err

  # A missing run / checkpoint.
  assert run_cli(generate, ['sample', f'--workdir={tmp_path / "nowhere"}']) == 1
  assert 'not a mvae_jax run directory' in capsys.readouterr().err
  empty = tmp_path / 'empty'
  empty.mkdir()
  shutil.copy(os.path.join(workdir, 'config.json'), empty / 'config.json')
  assert run_cli(generate, ['sample', f'--workdir={empty}']) == 1
  assert 'holds no checkpoint' in capsys.readouterr().err
  assert run_cli(generate, ['sample', f'--workdir={workdir}', '--checkpoint_step=7']) == 1
  assert 'no checkpoint for step 7' in capsys.readouterr().err

  # config.json edited after training: a clear error naming the parameters, not an Orbax trace.
  edited = tmp_path / 'edited'
  shutil.copytree(workdir, edited)
  config = json.loads((edited / 'config.json').read_text())
  config['model']['dec_sizes'] = [24]
  (edited / 'config.json').write_text(json.dumps(config))
  assert run_cli(generate, ['sample', f'--workdir={edited}']) == 1
  err = capsys.readouterr().err
  assert 'does not match the model' in err and 'decoder/drums/lstm_0' in err

  # Unusable inputs and bad usage.
  melody_only = _write_midi(tmp_path / 'melody.mid')
  assert run_cli(generate, ['reconstruct', f'--workdir={workdir}',
                            f'--input={melody_only}']) == 1
  assert 'no drums' in capsys.readouterr().err
  assert run_cli(generate, ['interpolate', f'--workdir={workdir}', f'--a={INPUT_A}']) == 2
  assert 'needs --a and --b' in capsys.readouterr().err  # a usage error: exit status 2
  assert run_cli(generate, ['dance', f'--workdir={workdir}']) == 2


# ----------------------------------------------------------------------------- input windows

def _has_onsets(tokens, spec):
  """Bars of one window [time, parts] with a note onset (drum hit) in every part."""
  t = tokens.reshape(spec.num_bars, spec.steps_per_bar, -1)
  lowest = np.array([1 if p == 'drums' else 2 for p in spec.parts])
  return (t >= lowest).any(axis=1).all(axis=-1).sum()


@pytest.mark.parametrize('kind', ['mel_2bar', 'drums_2bar', 'trio_16bar'])
def test_windows_of_a_real_file_in_time_order(kind):
  spec = encoding.window_spec(kind, 'paper')
  ns = note_seq.midi_file_to_note_sequence(str(INPUT_A))
  windows = inputs.input_windows(str(INPUT_A), spec)
  # The same windows as the dataset extraction, numbered by where they start.
  extracted = encoding.extract_windows(ns, spec)
  ours = windows.tokens.astype(np.int16).reshape((len(windows),) + spec.shape)
  assert sorted(w.tobytes() for w in ours) == sorted(w.tobytes() for w in extracted)
  assert len(windows) > 10
  assert np.all(np.diff(windows.seconds) >= 0) and np.all(np.diff(windows.bars) >= 0)
  assert windows.bars[0] >= 1
  # At 120 qpm in 4/4 (this file's tempo is constant) a bar lasts 4 quarter notes.
  qpm = ns.tempos[0].qpm if ns.tempos else 120.0
  np.testing.assert_allclose(windows.seconds, (windows.bars - 1) * 4 * 60.0 / qpm, atol=1e-6)
  # The default: the first window in time with note onsets in both bars (a trio: in every bar
  # of every part).
  d = windows.default
  assert _has_onsets(windows.tokens[d], spec) == spec.num_bars
  assert all(_has_onsets(windows.tokens[i], spec) < spec.num_bars for i in range(d))
  if kind == 'mel_2bar':
    # What reconstruct used before: the first window in content order, a window of holds only.
    assert not (extracted[0] >= 2).any()


def test_default_window_has_notes_on_every_freedoom_file():
  spec = encoding.window_spec('mel_2bar', 'paper')
  checked = 0
  for path in sorted(FREEDOOM.glob('*.mid')):
    try:
      windows = inputs.input_windows(str(path), spec)
    except inputs.InputError:
      continue
    checked += 1
    best = max(_has_onsets(t, spec) for t in windows.tokens)
    assert _has_onsets(windows.tokens[windows.default], spec) == best, path.name
    assert best == 2, path.name  # every file with windows has one with notes in both bars
  assert checked >= 55


def _melody_windows(path, notes, meters=((4, 4, 0.0),)):
  """Writes a one-instrument MIDI file at 120 qpm (notes: (pitch, start s, end s); meters:
  (numerator, denominator, time s)) and returns its 2-bar melody windows."""
  pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
  pm.time_signature_changes.extend(pretty_midi.TimeSignature(n, d, t) for n, d, t in meters)
  inst = pretty_midi.Instrument(program=0)
  inst.notes.extend(pretty_midi.Note(80, pitch, start, end) for pitch, start, end in notes)
  pm.instruments.append(inst)
  pm.write(str(path))
  return inputs.input_windows(str(path), encoding.window_spec('mel_2bar', 'paper'))


def test_window_by_number_or_bar(tmp_path):
  # Bars 1-2: one note held for two bars; bars 3-5: a note every beat.
  windows = _melody_windows(tmp_path / 'held.mid', [(60, 0.0, 4.0)] + [
      (62 + k % 3, 4.0 + 0.5 * k, 4.4 + 0.5 * k) for k in range(12)])
  assert windows.bars.tolist() == [1, 2, 3, 4]
  assert windows.default == 2  # bars 3-4: the first with an onset in both bars
  assert 'the first with notes starting in every bar' in windows.summary(2)
  assert windows.describe(2) == 'window 2 (bars 3-4, from 0:04.0)'
  assert windows.select(None) == windows.select('') == 2
  assert windows.select(0) == windows.select('0') == 0
  assert windows.select('bar:2') == 1 and windows.select('BAR:4') == 3
  for bad, pattern in (('bar:7', 'no 2-bar window starts at bar 7; windows start at bars 1, 2, '
                        '3, 4'), ('4', r'has 4 window\(s\) \(0..3\); window=4 is out of range'),
                       ('bar:x', 'bar:N needs a whole bar number'),
                       ('last', 'expected a window number K')):
    with pytest.raises(inputs.InputError, match=pattern):
      windows.select(bad)


def test_output_folder_never_overwrites(tmp_path):
  base = tmp_path / 'sample-step1-T0.5-seed0'
  assert generation.output_folder(str(base), explicit=False, overwrite=False) == str(base)
  base.mkdir()
  assert generation.output_folder(str(base), explicit=False, overwrite=False) == str(base)  # empty
  (base / 'a.mid').write_bytes(b'x')
  assert generation.output_folder(str(base), explicit=False, overwrite=False) == f'{base}-2'
  (tmp_path / 'sample-step1-T0.5-seed0-2').mkdir()
  (tmp_path / 'sample-step1-T0.5-seed0-2' / 'a.mid').write_bytes(b'x')
  assert generation.output_folder(str(base), explicit=False, overwrite=False) == f'{base}-3'
  assert generation.output_folder(str(base), explicit=False, overwrite=True) == str(base)
  with pytest.raises(inputs.InputError, match='already holds files; pass --overwrite'):
    generation.output_folder(str(base), explicit=True, overwrite=False)


def test_bars_count_an_earlier_meter(tmp_path):
  # Two bars of 3/4 (3 s at 120 qpm), then 4/4 with a note every beat for 3 bars.
  windows = _melody_windows(
      tmp_path / 'meters.mid',
      [(60 + k % 5, 0.5 * k, 0.5 * k + 0.4) for k in range(6)]
      + [(62 + k % 3, 3.0 + 0.5 * k, 3.4 + 0.5 * k) for k in range(12)],
      meters=((3, 4, 0.0), (4, 4, 3.0)))
  assert windows.bars.tolist() == [3, 4]
  np.testing.assert_allclose(windows.seconds, [3.0, 5.0], atol=1e-6)


def test_tracks_programs_meters_and_files_without_notes(runs_root, tmp_path, capsys):
  mel2 = encoding.window_spec('mel_2bar', 'paper')
  # Two melody tracks: each window says which; --track picks one.
  duo = _write_midi(tmp_path / 'duo.mid', seconds=16.0, extra=[(40, False, 72)])
  windows = inputs.input_windows(duo, mel2)
  assert windows.tracks == [0, 1]
  assert set(windows.track.tolist()) == {0, 1}
  assert '(Acoustic Grand Piano)' in windows.track_names[0]
  assert '(Violin)' in windows.track_names[1]
  summary = windows.summary(windows.default)
  assert 'track 0 (Acoustic Grand Piano): ' in summary and '--track=N' in summary
  only = inputs.input_windows(duo, mel2, track=1)
  assert set(only.track.tolist()) == {1}
  assert np.all(only.tokens[only.tokens >= 2] == 72 + 2)  # the violin's pitch only
  with pytest.raises(inputs.InputError, match='no melody track 7; its tracks with notes: track 0'):
    inputs.input_windows(duo, mel2, track=7)
  workdir = smoke_run('melody2', runs_root)
  assert run_cli(generate, ['reconstruct', f'--workdir={workdir}', f'--input={duo}', '--track=1',
                            f'--out={tmp_path / "rec"}']) == 0
  assert '; only track 1 (Violin); using window' in capsys.readouterr().err
  pm = pretty_midi.PrettyMIDI(str(tmp_path / 'rec' / 'input.mid'))
  assert {n.pitch for i in pm.instruments for n in i.notes} == {72}

  # The reference's 2-bar rule (programs 0..31) stays the default; any_program lifts it.
  mel_mag = encoding.window_spec('mel_2bar', 'magenta')
  strings = _write_midi(tmp_path / 'strings.mid', program=48)
  with pytest.raises(inputs.InputError, match='--any_program'):
    inputs.input_windows(strings, mel_mag)
  assert len(inputs.input_windows(strings, mel_mag, any_program=True)) > 0

  # One bar of 4/4 then 3/4: the message names the meters and where they start.
  pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
  pm.time_signature_changes += [pretty_midi.TimeSignature(4, 4, 0.0),
                                pretty_midi.TimeSignature(3, 4, 2.0)]
  inst = pretty_midi.Instrument(0)
  inst.notes += [pretty_midi.Note(80, 60, t / 2, t / 2 + 0.25) for t in range(16)]
  pm.instruments.append(inst)
  pm.write(str(tmp_path / 'meters.mid'))
  with pytest.raises(inputs.InputError, match=r'time signatures in the file: 4/4 from 0:00\.0, '
                                              r'3/4 from 0:02\.0'):
    inputs.input_windows(str(tmp_path / 'meters.mid'), mel2)

  # A valid file without notes is called that, not unreadable.
  pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
  pm.instruments.append(pretty_midi.Instrument(0))
  pm.write(str(tmp_path / 'empty.mid'))
  with pytest.raises(inputs.InputError, match=r'empty\.mid: the file has no notes'):
    inputs.input_windows(str(tmp_path / 'empty.mid'), mel2)


def test_model_is_quiet_documented_and_says_what_it_is(runs_root, capfd):
  import logging as py_logging
  from absl import logging as absl_logging
  workdir = smoke_run('melody2', runs_root)
  capfd.readouterr()
  absl_logging.use_absl_handler()  # a notebook's setup: absl's handler on stderr
  py_logging.getLogger('absl').setLevel(py_logging.INFO)
  model = trained_model.Model.load(workdir)
  assert capfd.readouterr().err == ''  # no Orbax / absl lines
  text = repr(model)
  assert text.startswith('Model(melody2:smoke, mel_2bar (paper mode, melody in 130 classes), '
                         'z 8, encoder (16,), flat decoder (16,), step 1, from ')
  pieces = model.sample(2, seed=0)
  assert isinstance(pieces, list) and len(pieces) == 2
  shown = repr(pieces)
  assert shown.splitlines()[0] == '2 pieces (NoteSequences):' and 'notes {' not in shown
  for method in ('sample', 'decode', 'interpolate', 'reconstruct'):
    doc = getattr(trained_model.Model, method).__doc__
    assert doc and 'Returns:' in doc, method
    assert 'Pieces' in str(getattr(trained_model.Model, method).__annotations__['return'])
