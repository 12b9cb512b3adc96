"""experiments/table1.py: the Table 1 sweep at `smoke` sizes, its JSON / markdown, and resuming.

One real sweep (melody2, three columns, 2 steps each) is shared by the tests of this module; the
resume logic for an interrupted column is checked with the training and evaluation stubbed out.
"""
import json
import math
import os

import pytest

from experiments import table1
from mvae_jax import config_lib

COLUMN_KEYS = ('next', 'recon', 'recon_greedy', 'kl', 'steps', 'train_windows', 'eval_windows',
               'majority', 'ss_rate', 'scheduled_sampling', 'train_wall_s', 'trend', 'params')


def _snapshot(root):
  """{path: mtime_ns} of every checkpoint file and metrics.jsonl under the sweep root."""
  out = {}
  for dirpath, _, files in os.walk(root):
    for f in files:
      if 'checkpoints' in dirpath or f == 'metrics.jsonl':
        p = os.path.join(dirpath, f)
        out[p] = os.stat(p).st_mtime_ns
  return out


@pytest.fixture(scope='module')
def sweep(tfds_dir, tmp_path_factory):
  tmp = tmp_path_factory.mktemp('table1')
  out_json = tmp / 'docs' / 'table1.json'
  # Another family already in the JSON must survive the merge.
  out_json.parent.mkdir()
  out_json.write_text(json.dumps({'drums2': {'vae': {'recon': 0.5}}}))
  argv = ['--family=melody2', '--preset=smoke', '--steps=2', '--ss_rate=1',
          f'--root={tmp / "runs"}', f'--out_json={out_json}', f'--out_md={tmp / "docs" / "m.md"}',
          f'--set=data.data_dir={tfds_dir}', '--set', 'eval.every_steps=2',
          '--eval_num_batches=2']
  first = table1.main(argv)
  return {'tmp': tmp, 'argv': argv, 'first': first, 'json': out_json}


def test_sweep_writes_table1_json_and_markdown(sweep):
  first = sweep['first']
  assert first['actions'] == {'baseline': 'trained', 'vae': 'trained', 'vae_ss': 'trained'}
  data = json.loads(sweep['json'].read_text())
  assert data['drums2'] == {'vae': {'recon': 0.5}}
  assert set(data['melody2']) == {'baseline', 'vae', 'vae_ss'}
  for column, e in data['melody2'].items():
    for key in COLUMN_KEYS:
      assert key in e, (column, key)
    assert e['steps'] == 2 and e['ss_rate'] == 1.0
    assert e['train_windows'] > 0 and e['eval_windows'] > 0
    for key in ('next', 'recon', 'recon_greedy', 'majority'):
      assert 0.0 <= e[key] <= 1.0, (column, key)
    assert list(e['trend']) == ['2']
    assert e['train_wall_s'] > 0
  base, vae, ss = (data['melody2'][c] for c in ('baseline', 'vae', 'vae_ss'))
  assert base['kl'] is None and not base['use_encoder'] and not base['scheduled_sampling']
  assert math.isfinite(vae['kl']) and not vae['scheduled_sampling']
  assert ss['scheduled_sampling'] and ss['p_sample_final'] > 0.5
  # Identical data, sizes and budget apart from what names the column.
  assert vae['sizes'] == ss['sizes'] and vae['params'] == ss['params']
  assert base['params']['total'] < vae['params']['total']

  md = (sweep['tmp'] / 'docs' / 'm.md').read_text()
  assert '| paper: 2-bar melody | 0.723 | 0.619 | 0.986 | 0.951 | 72.9 | 0.989 | 0.987 | 76.2 |' in md
  assert 'Baseline Next' in md and 'VAE+SS Recon' in md and 'train / eval windows' in md
  assert md.count('\n| baseline |') == 1

  rendered = table1.main(['--render_only', f'--out_json={sweep["json"]}',
                          f'--out_md={sweep["tmp"] / "docs" / "all.md"}'])
  all_md = open(rendered['md']).read()
  assert '2-bar melody' in all_md and '2-bar drums' in all_md


def test_second_invocation_skips_finished_columns(sweep):
  before = _snapshot(sweep['tmp'] / 'runs')
  assert any('checkpoints' in p for p in before)
  again = table1.main(sweep['argv'])
  assert again['actions'] == {'baseline': 'cached', 'vae': 'cached', 'vae_ss': 'cached'}
  assert again['seconds'] < 15, again['seconds']
  assert _snapshot(sweep['tmp'] / 'runs') == before  # nothing retrained, no checkpoint written
  for c in ('baseline', 'vae', 'vae_ss'):
    assert again['columns'][c]['recon'] == sweep['first']['columns'][c]['recon']
    assert again['columns'][c]['train_wall_s'] == sweep['first']['columns'][c]['train_wall_s']

  # A missing evaluation is recomputed without training.
  os.remove(sweep['tmp'] / 'runs' / 'melody2' / 'vae' / 'table1_eval_2.json')
  third = table1.main(sweep['argv'] + ['--columns=vae'])
  assert third['actions'] == {'vae': 'evaluated'}
  assert third['columns']['vae']['recon'] == sweep['first']['columns']['vae']['recon']
  assert _snapshot(sweep['tmp'] / 'runs') == before


def test_changed_config_is_refused(sweep):
  with pytest.raises(SystemExit, match='different config'):
    table1.main(sweep['argv'] + ['--columns=vae', '--set=loss.free_bits=1.0'])
  with pytest.raises(SystemExit, match='smaller budget'):
    table1.main([a for a in sweep['argv'] if not a.startswith('--steps')] + ['--steps=1'])


def test_interrupted_column_resumes(sweep, monkeypatch):
  """A column with checkpoints short of the budget goes back to train_and_evaluate (which resumes
  from its latest checkpoint); the wall time of both sessions adds up."""
  from mvae_jax import trainer
  config, _, _ = table1.column_config(
      'melody2', 'vae', preset='smoke', steps=4, ss_rate=1.0,
      sets=config_lib.parse_overrides([f'data.data_dir={os.environ["TFDS_DATA_DIR"]}']),
      baseline_ss=False, flat_dec_sizes=(16,))
  workdir = str(sweep['tmp'] / 'fake' / 'vae')
  os.makedirs(os.path.join(workdir, 'checkpoints', '2'))
  calls = []

  def fake_train(cfg, wd):
    calls.append(cfg.train.num_steps)
    os.makedirs(os.path.join(wd, 'checkpoints', '4'))
    return {}

  def fake_eval(wd, step, opts):
    return {'cached': False, 'seconds': 0.1, 'examples': 16,
            'metrics': {'next_accuracy': 0.5, 'recon_accuracy': 0.4,
                        'recon_greedy_accuracy': 0.3, 'kl': 1.0}}

  monkeypatch.setattr(trainer, 'train_and_evaluate', fake_train)
  monkeypatch.setattr(table1, 'evaluate_column', fake_eval)
  entry, action = table1.run_column('melody2', 'vae', config, workdir,
                                    {'num_batches': 1, 'batch_size': 0, 'seed': 0}, log=print)
  assert action == 'resumed' and calls == [4]
  assert entry['steps'] == 4 and entry['recon'] == 0.4 and set(entry['trend']) == {'2', '4'}
  timing = json.load(open(os.path.join(workdir, 'table1_timing.json')))
  assert [s['from_step'] for s in timing['sessions']] == [2]
  _, action = table1.run_column('melody2', 'vae', config, workdir,
                                {'num_batches': 1, 'batch_size': 0, 'seed': 0}, log=print)
  assert action == 'evaluated' and calls == [4]  # (the stub never caches): no training


def test_ss_rate_for_budget():
  for steps in (1000, 3000, 20000):
    k = table1.ss_rate_for_budget(steps)
    assert table1.sampling_probability(steps / 2, k) == pytest.approx(0.99, abs=1e-3)
    assert table1.sampling_probability(0, k) < 0.05
  assert table1.ss_rate_for_budget(3000) == pytest.approx(155.6, abs=0.5)
  assert table1.ss_rate_for_budget(4) == 1.0  # floor: p starts at 0.5


def test_melody16_columns_differ_only_in_the_decoder():
  flat, _, k = table1.column_config('melody16', 'flat', preset='small', steps=2000, ss_rate=None,
                                    sets={}, baseline_ss=False, flat_dec_sizes=(256, 256))
  hier, _, _ = table1.column_config('melody16', 'hier', preset='small', steps=2000, ss_rate=None,
                                    sets={}, baseline_ss=False, flat_dec_sizes=(256, 256))
  assert flat.model.decoder == 'flat' and tuple(flat.model.dec_sizes) == (256, 256)
  assert hier.model.decoder == 'hier'
  assert flat.train.scheduled_sampling and hier.train.scheduled_sampling
  assert flat.train.ss_rate == hier.train.ss_rate == k
  assert flat.model.enc_sizes == hier.model.enc_sizes and flat.model.z_size == hier.model.z_size
  assert flat.data == hier.data and flat.train.batch_size == hier.train.batch_size


def test_melody32_columns_and_flat_claim():
  """melody32: baseline / vae / vae_ss differ only in what names them; flat swaps the decoder."""
  cfgs = {c: table1.column_config('melody32', c, preset='small', steps=2000, ss_rate=None, sets={},
                                  baseline_ss=False, flat_dec_sizes=(256, 256))[0]
          for c in table1.FAMILIES['melody32']['columns']}
  assert not cfgs['baseline'].model.use_encoder and not cfgs['baseline'].train.scheduled_sampling
  assert cfgs['vae'].model.use_encoder and not cfgs['vae'].train.scheduled_sampling
  assert cfgs['vae_ss'].train.scheduled_sampling and cfgs['vae_ss'].model.decoder == 'hier'
  assert cfgs['flat'].model.decoder == 'flat' and cfgs['flat'].train.scheduled_sampling
  for c in cfgs.values():
    assert c.data == cfgs['vae_ss'].data and c.train.ss_rate == cfgs['vae_ss'].train.ss_rate
  assert cfgs['flat'].model.z_size == cfgs['vae_ss'].model.z_size
  cols = {'flat': {'recon': 0.5, 'recon_greedy': 0.6, 'recon_greedy_event': 0.1,
                   'recon_loss': 300.0, 'trend': {}},
          'vae_ss': {'recon': 0.7, 'recon_greedy': 0.5, 'recon_greedy_event': 0.2,
                     'recon_loss': 250.0, 'kl': 40.0, 'trend': {}}}
  checks = '\n'.join(table1._ordering('melody32', cols))
  assert '- recon: flat 0.500 < vae_ss 0.700? **yes**' in checks
  assert '- recon_greedy: flat 0.600 < vae_ss 0.500? **NO**' in checks
  assert 'hier 250.0 < flat 300.0? **yes**' in checks
  md = table1.render_family('melody32', cols)
  assert '| paper: 32-bar melody | 0.736 | 0.579 | 0.824 | 0.674 | 173.2 | 0.724 | 0.722 | 343.8 |' in md
  assert 'Flat decoder (VAE + SS' in md


def test_trio16_column_reports_every_instrument(tfds_dir, tmp_path):
  """A real trio column (2 steps at smoke size): Next / Recon and the majority level for lead,
  bass and drums reach the JSON and the per-instrument Table 1 rows."""
  out_json = tmp_path / 'table1.json'
  result = table1.main(['--family=trio16', '--preset=smoke', '--steps=2', '--ss_rate=1',
                        '--columns=vae_ss', f'--root={tmp_path / "runs"}',
                        f'--out_json={out_json}', f'--out_md={tmp_path / "t.md"}',
                        f'--set=data.data_dir={tfds_dir}', '--eval_num_batches=1'])
  entry = json.loads(out_json.read_text())['trio16']['vae_ss']
  assert set(entry['parts']) == {'lead', 'bass', 'drums'}
  for name, p in entry['parts'].items():
    for key in ('next', 'recon', 'recon_greedy', 'majority'):
      assert 0.0 <= p[key] <= 1.0, (name, key)
  assert set(entry['trend']['2']['parts']) == {'lead', 'bass', 'drums'}
  md = open(result['md']).read()
  assert '| paper: 16-bar trio drums | 0.810 | 0.221 | 0.926 | 0.808 |' in md
  assert md.count('| ours (freedoom, smoke, 2 steps) ') == 3
  assert '- drums recon' not in md  # one column: no ordering to check


def test_six_rows_table_places_ours_beside_the_paper():
  data = {
      'melody2': {c: {'next': 0.7, 'recon': 0.6, 'kl': None if c == 'baseline' else 33.0,
                      'majority': 0.63, 'steps': 2000, 'preset': 'small'}
                  for c in ('baseline', 'vae', 'vae_ss')},
      'trio16': {'vae': {'kl': 120.5, 'steps': 2000, 'preset': 'small',
                         'parts': {p: {'next': 0.8, 'recon': 0.5, 'majority': 0.4}
                                   for p in table1.TRIO_PARTS}}},
  }
  lines = table1.render_six_rows(data).splitlines()
  assert len(lines) == 2 + 2 * len(table1.SIX_ROWS)
  i = lines.index('| 2-bar melody | paper | 0.723 / 0.619 | 0.986 / 0.951 / 72.9 | '
                  '0.989 / 0.987 / 76.2 | |')
  assert lines[i + 1] == ('| | ours (small, 2000 steps) | 0.700 / 0.600 | 0.700 / 0.600 / 33.0 | '
                          '0.700 / 0.600 / 33.0 | 0.630 |')
  lead = lines.index('| 16-bar trio lead | paper | 0.735 / 0.423 | 0.818 / 0.653 / 177.4 | '
                     '0.763 / 0.761 / 811.6 | |')
  # Only the VAE column was run: the KL (the whole trio's) on the lead row only.
  assert lines[lead + 1] == '| | ours (small, 2000 steps) |  | 0.800 / 0.500 / 120.5 |  | 0.400 |'
  assert lines[lead + 3] == '| | ours (small, 2000 steps) |  | 0.800 / 0.500 |  | 0.400 |'
  assert lines[lines.index('| 32-bar melody | paper | 0.736 / 0.579 | 0.824 / 0.674 / 173.2 | '
                           '0.724 / 0.722 / 343.8 | |') + 1] == '| | ours | no result | | | |'
  assert table1.render_all(data).startswith("### Table 1: the paper's six rows beside ours")


def test_gpu_script_structure_mode_dry_run(tfds_dir, tmp_path):
  """`experiments/table1_gpu.sh --structure --dry_run`: the GPU mode's commands at smoke size on
  the CPU: melody16 hierarchical and flat columns trained and evaluated, then the structure
  report of each run (data, bars shuffled, samples)."""
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, PY=sys.executable, ROOT=str(tmp_path / 'runs'), TFDS_DATA_DIR=tfds_dir,
             OUT_JSON=str(tmp_path / 't.json'), OUT_MD=str(tmp_path / 't.md'),
             PYTHONPATH=root)
  proc = subprocess.run(['bash', 'experiments/table1_gpu.sh', '--structure', '--dry_run'],
                        cwd=root, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert set(json.loads((tmp_path / 't.json').read_text())['melody16']) >= {'hier', 'flat'}
  for column in ('hier', 'flat'):
    report = json.loads((tmp_path / 'runs_dry' / 'melody16' / column / 'structure' /
                         'structure.json').read_text())
    sets = list(report['sets'])
    assert sets[1].endswith('bars shuffled') and sets[2].startswith('samples')
    assert report['sets'][sets[2]]['pieces'] == 8
  bad = subprocess.run(['bash', 'experiments/table1_gpu.sh', '--nope'], cwd=root, env=env,
                       capture_output=True, text=True)
  assert bad.returncode == 2 and 'unknown argument --nope' in bad.stderr
