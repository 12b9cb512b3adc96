"""The studio's JSON API (FastAPI's test client): every operation and every bad input.

Runs: a trained `melody2:smoke` run (4 steps on the Freedoom songs, so its held-out split exists),
an untrained hierarchical `trio16:smoke` run, a `melody2` baseline (no encoder), and the tiny
Magenta `hierdec-mel_16bar` checkpoint imported. Results are compared with what
`mvae_jax.generate.Model` gives for the same inputs, so the API serves exactly the library's
outputs. Uploads are real Freedoom MIDI files, parsed in the bounded worker pool.
"""
import concurrent.futures
import io
import json
import pathlib
import random
import socket
import threading

import jax
import note_seq
import numpy as np
import pretty_midi
import pytest

pytest.importorskip('fastapi')
pytest.importorskip('httpx')
from fastapi.testclient import TestClient  # noqa: E402

from data_pipelines import encoding  # noqa: E402
from mvae_jax import import_magenta  # noqa: E402
from mvae_jax import attributes  # noqa: E402
from mvae_jax.studio import engine, server  # noqa: E402
from tests import make_big_midi  # noqa: E402
from tests.test_generate import INPUT_A, INPUT_B, runs_root, smoke_run  # noqa: E402,F401

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAGENTA = ROOT / 'tests' / 'fixtures' / 'magenta_checkpoints' / 'hierdec-mel_16bar' / 'checkpoint'
MEL, TRIO, BASE, MAG = 'melody2_trained', 'trio16', 'melody2_baseline', 'magenta16'


@pytest.fixture(scope='module')
def studio(runs_root, tfds_dir, tmp_path_factory):  # noqa: F811
  mag = tmp_path_factory.mktemp('imported') / MAG
  import_magenta.import_checkpoint(str(MAGENTA), 'hierdec-mel_16bar', str(mag))
  s = engine.Studio([smoke_run('melody2', runs_root, trained=True, data_dir=tfds_dir),
                     smoke_run('trio16', runs_root), smoke_run('melody2,baseline', runs_root),
                     str(mag)], upload_timeout_s=20)
  yield s
  s.close()


@pytest.fixture(scope='module')
def client(studio):
  with TestClient(server.create_app(studio)) as c:
    yield c


@pytest.fixture(scope='module')
def uploads(client):
  """Freedoom E1M1 and E1M2 uploaded for the melody run: their upload answers."""
  return [ok(client.post(f'/api/runs/{MEL}/uploads?name={p.name}', content=p.read_bytes()))
          for p in (INPUT_A, INPUT_B)]


def ok(r):
  assert r.status_code == 200, r.text
  return r.json()


def error(r, status=422):
  """The one-line error of a refused request (and the server still answers afterwards)."""
  assert r.status_code == status, r.text
  body = r.json()
  assert set(body) <= {'error', 'upload'} and body['error'] and '\n' not in body['error']
  return body['error']


def tokens_of(piece):
  return np.asarray(piece['tokens'], np.int32)


def test_info_describes_every_run(client):
  info = ok(client.get('/api/info'))
  runs = {r['id']: r for r in info['runs']}
  assert list(runs) == [MEL, TRIO, BASE, MAG]
  assert [p['name'] for p in runs[MEL]['parts']] == ['melody']
  assert runs[MEL]['parts'][0]['min_pitch'] == 0 and runs[MEL]['time'] == 32
  assert [(p['name'], p['drums'], p.get('voice')) for p in runs[TRIO]['parts']] == [
      ('lead', False, 'piano'), ('bass', False, 'bass'), ('drums', True, None)]
  assert runs[TRIO]['hierarchical'] and runs[TRIO]['num_bars'] == 16
  assert [r['name'] for r in runs[TRIO]['drum_rows']][:3] == ['kick', 'snare', 'closed hi-hat']
  assert [r['pitch'] for r in runs[TRIO]['drum_rows']] == list(encoding.DRUM_OUTPUT_PITCHES)
  assert not runs[BASE]['use_encoder'] and runs[MAG]['mode'] == 'magenta'
  assert info['limits']['max_upload_bytes'] == engine.MAX_UPLOAD_BYTES
  assert ok(client.get(f'/api/runs/{TRIO}'))['kind'] == 'trio_16bar'


def test_sample_is_the_models_samples_with_notes(client, studio):
  got = ok(client.post(f'/api/runs/{MEL}/sample', json={'num': 3, 'temperature': 0.7,
                                                         'seed': 5}))['pieces']
  want = studio.runs[MEL].model.sample_tokens(3, 0.7, False, 5)
  assert len(got) == 3
  np.testing.assert_array_equal(np.stack([tokens_of(p) for p in got]), want)
  for piece, t in zip(got, want):
    onsets = sorted(np.flatnonzero(t[:, 0] >= 2).tolist())
    assert [n['start'] for n in piece['notes']] == onsets
    assert all(n['pitch'] == t[n['start'], 0] - 2 and n['end'] > n['start'] for n in
               piece['notes'])  # paper mode: min_pitch 0
  again = ok(client.post(f'/api/runs/{MEL}/sample', json={'num': 3, 'temperature': 0.7,
                                                           'seed': 5}))['pieces']
  assert again == got


def test_trio_and_imported_hierarchical_runs_sample(client):
  [piece] = ok(client.post(f'/api/runs/{TRIO}/sample', json={'num': 1, 'greedy': True}))[
      'pieces']
  t = tokens_of(piece)
  assert t.shape == (256, 3)
  drums = [n for n in piece['notes'] if n['part'] == 2]
  assert len(drums) == sum(bin(int(v)).count('1') for v in t[:, 2])
  assert all(n['pitch'] == encoding.DRUM_OUTPUT_PITCHES[n['row']] for n in drums)
  [mag] = ok(client.post(f'/api/runs/{MAG}/sample', json={'num': 1, 'greedy': True}))['pieces']
  assert tokens_of(mag).shape == (256, 1)
  assert all(21 <= n['pitch'] <= 108 for n in mag['notes'])  # magenta mode's pitch range
  [base] = ok(client.post(f'/api/runs/{BASE}/sample', json={'num': 1}))['pieces']
  assert tokens_of(base).shape == (32, 1)


def test_upload_lists_the_clis_windows(client, studio, uploads):
  windows = studio.runs[MEL].model.windows(str(INPUT_A))
  info = uploads[0]
  assert info['name'] == INPUT_A.name and info['bytes'] == INPUT_A.stat().st_size
  assert len(info['windows']) == len(windows) and info['default'] == windows.default
  assert [w['bars'][0] for w in info['windows']] == windows.bars.tolist()
  assert info['windows'][3]['label'] == windows.describe(3)
  assert 'window ' in info['summary'] and '--window' not in info['summary']
  piece = ok(client.get(f'/api/runs/{MEL}/uploads/{info["upload"]}/windows/3'))
  np.testing.assert_array_equal(tokens_of(piece), windows.tokens[3])
  by_bar = ok(client.get(f'/api/runs/{MEL}/uploads/{info["upload"]}/windows/bar:9'))
  np.testing.assert_array_equal(tokens_of(by_bar), windows.tokens[windows.select('bar:9')])
  # The same upload, read for another run (its own windows).
  trio = ok(client.get(f'/api/runs/{TRIO}/uploads/{info["upload"]}'))
  assert trio['num_bars'] == 16 and trio['default'] == studio.runs[TRIO].model.windows(
      str(INPUT_A)).default


def test_interpolate_uploads_and_points_between(client, studio, uploads):
  a, b = uploads[0]['upload'], uploads[1]['upload']
  body = {'a': {'upload': a}, 'b': {'upload': b, 'window': 'bar:3'}, 'steps': 5,
          'temperature': 0.5, 'seed': 2}
  res = ok(client.post(f'/api/runs/{MEL}/interpolate', json=body))
  m = studio.runs[MEL].model
  ta, tb = m.tokens(str(INPUT_A)), m.tokens(str(INPUT_B), 'bar:3')
  np.testing.assert_array_equal(tokens_of(res['inputs'][0]), ta[0])
  np.testing.assert_array_equal(tokens_of(res['inputs'][1]), tb[0])
  want = m.interpolate_tokens(ta, tb, 5, 0.5, False, 2)
  np.testing.assert_array_equal(np.stack([tokens_of(p) for p in res['pieces']]), want)
  assert res['t'] == [0.0, 0.25, 0.5, 0.75, 1.0]
  assert len(res['z_a']) == m.z_size
  # The slider: a point of the path decodes like the path's piece at that t (same noise).
  for k in (0, 4):
    point = ok(client.post(f'/api/runs/{MEL}/point', json={
        'z_a': res['z_a'], 'z_b': res['z_b'], 't': res['t'][k], 'temperature': 0.5,
        'seed': 2}))
    np.testing.assert_array_equal(tokens_of(point['piece']), want[k])


def test_interpolate_held_out_and_page_pieces_on_a_trio(client, studio):
  sample = ok(client.post(f'/api/runs/{TRIO}/sample', json={'num': 2, 'seed': 1,
                                                              'greedy': True}))['pieces']
  res = ok(client.post(f'/api/runs/{TRIO}/interpolate', json={
      'a': {'tokens': sample[0]['tokens'], 'label': 'mine'}, 'b': {'tokens': sample[1]['tokens']},
      'steps': 3, 'greedy': True}))
  assert res['inputs'][0]['label'] == 'mine' and len(res['pieces']) == 3
  m = studio.runs[TRIO].model
  want = m.interpolate_tokens(tokens_of(sample[0]), tokens_of(sample[1]), 3, greedy=True)
  np.testing.assert_array_equal(np.stack([tokens_of(p) for p in res['pieces']]), want)
  ev = ok(client.get(f'/api/runs/{MEL}/eval'))
  assert ev['available'] and ev['count'] > 10
  res = ok(client.post(f'/api/runs/{MEL}/interpolate', json={
      'a': {'eval': 0}, 'b': {'eval': ev['count'] - 1}, 'steps': 2, 'greedy': True}))
  assert res['inputs'][1]['label'] == f'held-out example {ev["count"] - 1}'


def test_reconstruct_held_out_example_and_upload(client, studio, uploads):
  res = ok(client.post(f'/api/runs/{MEL}/reconstruct', json={'input': {'eval': 3}}))
  m = studio.runs[MEL].model
  x = tokens_of(ok(client.get(f'/api/runs/{MEL}/eval/3')))
  np.testing.assert_array_equal(tokens_of(res['input']), x)
  rec = m.reconstruct_tokens(x[None])[0]
  np.testing.assert_array_equal(tokens_of(res['output']), rec)
  assert res['equal_steps'] == pytest.approx(float((rec == x).mean()))
  res = ok(client.post(f'/api/runs/{MEL}/reconstruct', json={
      'input': {'upload': uploads[1]['upload'], 'window': 2}, 'greedy': False, 'seed': 4}))
  start = m.windows(str(INPUT_B)).bars[2]
  assert res['input']['label'] == f'{INPUT_B.name} bars {start}-{start + 1}'
  # An imported Magenta checkpoint reconstructs an uploaded file's 16-bar window.
  info = ok(client.get(f'/api/runs/{MAG}/uploads/{uploads[0]["upload"]}'))
  res = ok(client.post(f'/api/runs/{MAG}/reconstruct', json={
      'input': {'upload': info['upload']}}))
  want = studio.runs[MAG].model.reconstruct_tokens(str(INPUT_A))[0]
  np.testing.assert_array_equal(tokens_of(res['output']), want)


def test_midi_download_holds_the_pieces(client, studio):
  pieces = ok(client.post(f'/api/runs/{TRIO}/sample', json={'num': 2, 'greedy': True}))[
      'pieces']
  r = client.post(f'/api/runs/{TRIO}/midi', json={
      'pieces': [p['tokens'] for p in pieces], 'qpm': 90, 'name': 'my trio'})
  assert r.status_code == 200 and r.headers['content-type'] == 'audio/midi'
  assert 'filename="my trio.mid"' in r.headers['content-disposition']
  ns = note_seq.midi_to_note_sequence(r.content)
  m = studio.runs[TRIO].model
  want = [m.to_note_sequence(tokens_of(p), qpm=90) for p in pieces]
  assert len(ns.notes) == sum(len(w.notes) for w in want)
  assert ns.tempos[0].qpm == pytest.approx(90, rel=1e-5)

  def steps(notes, offset=0):  # (pitch, 16th-note step, drum) of each note
    return sorted((n.pitch, round((n.start_time - offset) * 90 / 60 * 4) , n.is_drum)
                  for n in notes)
  # The second piece starts right after the first's window (16 bars at 90 qpm).
  assert steps(ns.notes) == sorted(steps(want[0].notes) + [
      (p, s + 256, d) for p, s, d in steps(want[1].notes)])


def test_background_jobs_report_progress_and_results(client):
  r = client.post(f'/api/runs/{MEL}/jobs/sample', json={'num': 2, 'seed': 9})
  assert r.status_code == 202
  job = r.json()
  assert job['state'] in ('queued', 'running', 'done') and job['op'] == 'sample'
  for _ in range(600):
    job = ok(client.get(f'/api/jobs/{job["id"]}'))
    if job['state'] in ('done', 'error'):
      break
    assert job['stage']
    threading.Event().wait(0.05)
  assert job['state'] == 'done' and job['progress'] == 1.0
  direct = ok(client.post(f'/api/runs/{MEL}/sample', json={'num': 2, 'seed': 9}))
  assert job['result'] == direct
  r = client.post(f'/api/runs/{MEL}/jobs/interpolate', json={
      'a': {'eval': 0}, 'b': {'upload': 'u999'}})
  assert r.status_code == 202  # bad inputs of a job are reported by the job
  for _ in range(600):
    job = ok(client.get(f'/api/jobs/{r.json()["id"]}'))
    if job['state'] in ('done', 'error'):
      break
    threading.Event().wait(0.05)
  assert job['state'] == 'error' and job['status'] == 404 and 'u999' in job['error']
  assert 'no job' in error(client.get('/api/jobs/j99999'), 404)


def test_requests_arriving_together_do_not_recompile(client):
  compiles = []

  def listener(event, duration, **kw):
    del duration, kw
    if event == '/jax/core/compile/backend_compile_duration':
      compiles.append(event)

  def burst(bodies):
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
      return list(pool.map(lambda b: client.post(f'/api/runs/{MEL}/sample', json=b), bodies))

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    ok(client.post(f'/api/runs/{MEL}/sample', json={'num': 4}))  # compiled (or already)
    compiles.clear()
    rs = burst([{'num': 4, 'seed': s} for s in range(6)])
    assert all(r.status_code == 200 for r in rs)
    assert compiles == []  # the same shape: nothing compiled again
    # Compiled code is shared by every model of one architecture, so other tests in this
    # process may have compiled some of the next shapes: start both from empty caches.
    jax.clear_caches()
    burst([{'num': 19, 'seed': s} for s in range(4)])  # a new shape, 4 requests at once
    together = len(compiles)
    compiles.clear()
    jax.clear_caches()
    ok(client.post(f'/api/runs/{MEL}/sample', json={'num': 37}))  # another new shape, alone
    assert together == len(compiles) > 0  # compiled once, as for one request
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)


def _drum_only_midi() -> bytes:
  pm = pretty_midi.PrettyMIDI(initial_tempo=120)
  drums = pretty_midi.Instrument(program=0, is_drum=True)
  for k in range(64):
    drums.notes.append(pretty_midi.Note(100, 36 if k % 2 == 0 else 38, k * 0.25, k * 0.25 + 0.1))
  pm.instruments.append(drums)
  buf = io.BytesIO()
  pm.write(buf)
  return buf.getvalue()


def _short_melody_midi() -> bytes:
  pm = pretty_midi.PrettyMIDI(initial_tempo=120)
  piano = pretty_midi.Instrument(program=0)
  piano.notes.append(pretty_midi.Note(100, 60, 0.0, 1.0))
  pm.instruments.append(piano)
  buf = io.BytesIO()
  pm.write(buf)
  return buf.getvalue()


def test_bad_uploads_name_the_file_and_the_reason(client, uploads):
  url = f'/api/runs/{MEL}/uploads'
  msg = error(client.post(f'{url}?name=notes.txt', content=b'these are not MIDI bytes'))
  assert msg.startswith('notes.txt: cannot read it as MIDI')
  assert 'is empty' in error(client.post(f'{url}?name=e.mid', content=b''))
  big = b'MThd' + b'\0' * engine.MAX_UPLOAD_BYTES
  msg = error(client.post(f'{url}?name=huge.mid', content=big), 413)
  assert msg.startswith('huge.mid is 4.0 MB') and 'up to 4 MB' in msg
  msg = error(client.post(f'{url}?name=beat.mid', content=_drum_only_midi()))
  assert msg.startswith('beat.mid: no usable 2-bar window') and 'every note is a drum' in msg
  msg = error(client.post(f'{url}?name=../../short.mid', content=_short_melody_midi()))
  assert msg.startswith('short.mid: no usable') and 'too short' in msg
  # A drum file given to a melody model is kept: a drums model could read it.
  r = client.post(f'{url}?name=beat.mid', content=_drum_only_midi())
  assert r.json()['upload']
  uid = uploads[0]['upload']
  assert 'no 2-bar window starts at bar 5000' in error(client.post(
      f'/api/runs/{MEL}/reconstruct', json={'input': {'upload': uid, 'window': 'bar:5000'}}))
  assert 'out of range' in error(client.post(
      f'/api/runs/{MEL}/reconstruct', json={'input': {'upload': uid, 'window': 100000}}))
  assert 'expected a window number' in error(client.get(
      f'/api/runs/{MEL}/uploads/{uid}/windows/middle'))
  assert "no upload 'u404'" in error(client.get(f'/api/runs/{MEL}/uploads/u404'), 404)
  # ... and the server goes on serving.
  ok(client.post(f'/api/runs/{MEL}/sample', json={'num': 1}))


def test_an_upload_that_hangs_the_parser_is_stopped_at_the_time_limit(
    runs_root, tmp_path):  # noqa: F811
  path = tmp_path / 'dense.mid'
  make_big_midi.dense_30k_notes(random.Random('dense_30k_notes.mid')).save(str(path))
  s = engine.Studio([smoke_run('trio16', runs_root)], upload_timeout_s=0.3)
  try:
    with TestClient(server.create_app(s)) as c:
      s.uploads.start_pool().result()
      msg = error(c.post(f'/api/runs/{TRIO}/uploads?name=dense.mid', content=path.read_bytes()))
      assert msg == ('dense.mid: reading it took longer than 0.3 s (the limit per file of the '
                     'data builders), so it was stopped')
      ok(c.post(f'/api/runs/{TRIO}/sample', json={'num': 1}))
  finally:
    s.close()


@pytest.mark.parametrize('body, words', [
    ({'num': 0}, 'num: Input should be greater than or equal to 1'),
    ({'num': 65}, 'num: Input should be less than or equal to 64'),
    ({'temperature': 0}, 'temperature: Input should be greater than 0'),
    ({'temperature': float('nan')}, 'temperature: Input should be a finite number'),
    ({'seed': -1}, 'seed: Input should be greater than or equal to 0'),
    ({'num': 'four'}, 'num: Input should be a valid integer'),
    ({'nmu': 4}, 'nmu: Extra inputs are not permitted'),
])
def test_bad_sample_arguments(client, body, words):
  assert words in error(client.post(f'/api/runs/{MEL}/sample', content=json.dumps(body),
                                    headers={'Content-Type': 'application/json'}))


def test_bad_operation_inputs(client, uploads):
  uid = uploads[0]['upload']
  post = lambda op, body, run=MEL: client.post(f'/api/runs/{run}/{op}', json=body)  # noqa: E731
  assert 'steps: Input should be greater than or equal to 2' == error(post(
      'interpolate', {'a': {'eval': 0}, 'b': {'eval': 1}, 'steps': 1}))
  assert 'exactly one of upload' in error(post(
      'interpolate', {'a': {'eval': 0, 'upload': uid}, 'b': {'eval': 1}}))
  assert 'do not fit this model' in error(post('reconstruct', {'input': {'tokens': [[0]] * 31}}))
  assert 'outside [0, 130)' in error(post('reconstruct', {'input': {'tokens': [[0]] * 31 +
                                                                              [[999]]}}))
  assert 'ragged' in error(post('reconstruct', {'input': {'tokens': [[0]] * 31 + [[0, 1]]}}))
  assert 'does not exist' in error(post('reconstruct', {'input': {'eval': 10**6}}), 404)
  assert 'needs an encoder' in error(post('interpolate', {'a': {'eval': 0}, 'b': {'eval': 0}},
                                          BASE))
  assert 'z_a must be 8 finite numbers' in error(post(
      'point', {'z_a': [0.0] * 3, 'z_b': [0.0] * 8, 't': 0.5}))
  assert 't: Input should be less than or equal to 1' == error(post(
      'point', {'z_a': [0.0] * 8, 'z_b': [0.0] * 8, 't': 1.5}))
  assert "no run 'nope'" in error(post('sample', {}, 'nope'), 404)
  assert 'qpm: Input should be greater than or equal to 20' == error(post(
      'midi', {'pieces': [[[0]] * 32], 'qpm': 5}))
  assert 'pieces: List should have at least 1 item' in error(post('midi', {'pieces': []}))
  assert 'no held-out examples' in ok(client.get(f'/api/runs/{MAG}/eval'))['reason']
  ok(post('sample', {'num': 1}))


def test_attributes_hook(client, studio):
  """No attribute vectors: an empty list (the page hides its panel). With vectors (an
  `attributes.AttributeVectors` file), applying them moves the code."""
  assert ok(client.get(f'/api/runs/{TRIO}/attributes')) == []
  run = studio.runs[MEL]
  z = run.model.z_size
  two = np.zeros(2)
  path = pathlib.Path(attributes.AttributeVectors(
      names=['density', 'range'],
      vectors=np.stack([np.full(z, 3.0, np.float32), np.zeros(z, np.float32)]),
      mean=two, std=two, low_mean=np.array([1.0, 2.0]), high_mean=np.array([9.0, 30.0]),
      low_max=two, high_min=two, count=np.array([8, 8]), low_size=np.array([2, 2]),
      high_size=np.array([2, 2]), num_windows=8, fraction=0.25, z_mean=np.zeros(z, np.float32),
      source='split:train', step=run.model.step).save(attributes.vectors_path(run.model.workdir)))
  run.attributes = None
  try:
    assert ok(client.get(f'/api/runs/{MEL}/attributes')) == [
        {'name': 'density', 'norm': pytest.approx(3.0 * np.sqrt(run.model.z_size)),
         'low': 1.0, 'high': 9.0}, {'name': 'range', 'norm': 0.0, 'low': 2.0, 'high': 30.0}]
    x = {'tokens': ok(client.get(f'/api/runs/{MEL}/eval/5'))['tokens']}
    same = ok(client.post(f'/api/runs/{MEL}/attributes/apply', json={
        'input': x, 'amounts': {'density': 0.0}}))
    rec = ok(client.post(f'/api/runs/{MEL}/reconstruct', json={'input': x}))
    assert same['piece']['tokens'] == rec['output']['tokens']
    moved = ok(client.post(f'/api/runs/{MEL}/attributes/apply', json={
        'input': x, 'amounts': {'density': 2.0}}))
    want = run.model.decode_tokens(run.model.encode(tokens_of(rec['input'])[None])[0] + 6.0,
                                   greedy=True)
    np.testing.assert_array_equal(tokens_of(moved['piece']), want[0])
    assert 'unknown attribute(s) loudness' in error(client.post(
        f'/api/runs/{MEL}/attributes/apply', json={'input': x, 'amounts': {'loudness': 1.0}}))
  finally:
    path.unlink()
    run.attributes = None


def test_page_assets_openapi_and_host_check(client):
  page = client.get('/')
  assert page.status_code == 200 and '<script type="module" src="/static/studio.js">' in page.text
  for asset in ('studio.js', 'roll.js', 'synth.js', 'studio.css', 'favicon.svg', 'api.html'):
    r = client.get(f'/static/{asset}')
    assert r.status_code == 200, asset
    # Everything works offline: no asset loads anything from another host.
    text = r.text.replace('http://www.w3.org/2000/svg', '')  # the SVG namespace: a name only
    assert 'http://' not in text and 'https://' not in text and '//cdn' not in text, asset
  spec = ok(client.get('/api/openapi.json'))
  paths = spec['paths']
  for op in ('sample', 'interpolate', 'point', 'reconstruct'):
    assert f'/api/runs/{{run}}/{op}' in paths and f'/api/runs/{{run}}/jobs/{op}' in paths
  for p in ('/api/runs/{run}/uploads', '/api/runs/{run}/midi', '/api/jobs/{job}',
            '/api/runs/{run}/eval/{index}', '/api/runs/{run}/attributes'):
    assert p in paths
  assert 'binary' in json.dumps(paths['/api/runs/{run}/uploads']['post']['requestBody'])
  assert client.get('/api/docs').status_code == 200
  assert client.get('/docs').status_code == 404  # no CDN-based Swagger page
  r = client.get('/api/info', headers={'Host': 'evil.example.com'})
  assert r.status_code == 400  # DNS rebinding: only loopback names are served


def test_command_line_errors(runs_root, tmp_path, capsys):  # noqa: F811
  from mvae_jax.studio import __main__ as cli
  assert cli.main([f'--workdir={tmp_path}/missing']) == 2
  assert capsys.readouterr().err == f'error: --workdir={tmp_path}/missing: no such directory\n'
  run = smoke_run('melody2', runs_root)
  assert cli.main([f'--workdir={run}', '--port=70000']) == 2
  assert 'not a port number' in capsys.readouterr().err
  assert cli.main([f'--workdir={run}', '--max_upload_mb=nan']) == 2
  assert capsys.readouterr().err == 'error: --max_upload_mb=nan must be in (0, 1024]\n'
  with socket.socket() as taken:
    taken.bind(('127.0.0.1', 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    assert cli.main([f'--workdir={run}', f'--port={port}']) == 1
  assert capsys.readouterr().err == (f'error: cannot listen on 127.0.0.1:{port}: it is in use; '
                                     'pass --port=N, or --port=0 for any free port\n')
  # --host exposes it, with a warning (here the run directory is empty: no model to load).
  (tmp_path / 'empty').mkdir()
  assert cli.main([f'--workdir={tmp_path}/empty', '--host=0.0.0.0', '--port=0']) == 1
  err = capsys.readouterr().err.splitlines()
  assert err[0].startswith('warning: --host=0.0.0.0 makes the studio reachable from other '
                           'machines; it has no login')
  assert err[1].startswith('error: ') and 'empty' in err[1] and len(err) == 2
  assert cli._is_loopback('127.0.0.1') and cli._is_loopback('::1') and cli._is_loopback(
      'localhost') and not cli._is_loopback('0.0.0.0')  # pylint: disable=protected-access
