"""experiments/learning_speed.py: equal-CPU-time variants, trained and evaluated for real at
`smoke` size, then collected into one table."""
import json
import os

from experiments import learning_speed, table1


def test_variants_train_evaluate_and_render(tfds_dir, tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(learning_speed, 'VARIANTS', {'lr 3e-3': {'optim.learning_rate': 3e-3}})
  root, out_json, out_md = tmp_path / 'runs', tmp_path / 'ls.json', tmp_path / 'ls.md'
  common = ['--config=configs/melody2.py:smoke', '--cpu_minutes=0.001', f'--root={root}',
            '--eval_num_batches=1', f'--out_json={out_json}', f'--out_md={out_md}']
  learning_speed.main(common)
  for name, lr in (('lr 3e-3', 3e-3),):
    workdir = root / learning_speed.slug(name)
    result = json.load(open(workdir / 'learning_speed.json'))
    # A tiny budget is floored at 50 steps; the schedules follow the budget.
    assert result['steps'] == 50 and result['batch'] == 8
    config = json.load(open(workdir / 'run' / 'config.json'))
    assert config['optim']['learning_rate'] == lr
    assert config['train']['num_steps'] == 50
    assert config['train']['ss_rate'] == table1.ss_rate_for_budget(50)
    assert abs(config['loss']['beta_rate'] ** 50 - 0.05) < 1e-4
    assert 0.0 <= result['recon_greedy'] <= 1.0 and result['eval_examples'] > 0
    assert result['train_cpu_s'] > 0
  # A second call finds it done and trains nothing.
  capsys.readouterr()
  learning_speed.main(common)
  assert capsys.readouterr().out.count('done before') == 1
  learning_speed.main(common + ['--render_only'])
  rows = [l for l in open(out_md).read().splitlines() if l.startswith('| lr 3e-3 | ')]
  assert len(rows) == 1
  assert [r['name'] for r in json.load(open(out_json))] == ['lr 3e-3']
  assert os.path.exists(root / learning_speed.slug('lr 3e-3') / 'step_timing.json')
