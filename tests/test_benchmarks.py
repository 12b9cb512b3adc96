"""The benchmark drivers' own logic: the reference comparisons' summaries and tables (pure functions
over recorded runs), the bfloat16 accuracy check and the generation benchmark run for real at
`smoke` size."""
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))

import bf16_accuracy  # noqa: E402  pylint: disable=g-import-not-at-top
import compare_reference  # noqa: E402  pylint: disable=g-import-not-at-top
import generate_vs_reference  # noqa: E402  pylint: disable=g-import-not-at-top


def _runs():
  """Two rounds at two batch sizes: float32 ours 1.0 s (2.0 CPU s) in round 0 and 1.2 s in
  round 1, bfloat16 ours 0.5 s, the reference 1.5 s (3.0 CPU s), times batch / 64."""
  runs = []
  for batch in (64, 512):
    for r in (0, 1):
      for who, t in (('ours', 1.0 + 0.2 * r), ('ours_bfloat16', 0.5), ('reference', 1.5)):
        runs.append({'who': who, 'batch': batch, 'round': r, 'median_step_s': t * batch / 64,
                     'cpu_s_per_step': 2 * t * batch / 64, 'loadavg_1m_before': 0.5})
  return runs


def test_summary_pairs_each_of_ours_with_the_reference():
  summary = compare_reference.summarise(_runs())
  assert set(summary) == {'64', '512'}
  s = summary['512']
  f32, bf16 = s['ours_vs_reference'], s['ours_bfloat16_vs_reference']
  assert f32['paired_speedups'] == [1.5, 1.25] and f32['median_paired_speedup'] == 1.375
  assert f32['paired_cpu_speedups'] == [1.5, 1.25]
  assert bf16['paired_speedups'] == [3.0, 3.0] and bf16['median_paired_cpu_speedup'] == 3.0
  # float32's ratios stay at the top level too (older result files are read that way).
  assert s['median_paired_speedup'] == 1.375
  assert s['ours']['median_step_s'] == 8.8 and s['reference']['examples_per_s'] == round(512 / 12, 1)


def test_markdown_table_has_one_row_per_batch_and_dtype():
  out = {'summary': compare_reference.summarise(_runs()), 'cpu_model': 'Test CPU', 'cpus': 2,
         'isa_flags': ['avx2'], 'rounds': 2, 'steps': 3, 'date': 'today', 'xla_flags': ''}
  md = compare_reference.markdown(out)
  assert md.startswith('Machine: Test CPU, 2 cores, ISA avx2')
  rows = [l for l in md.splitlines() if l.startswith('| 64 ') or l.startswith('| 512 ')]
  assert [r.split(' | ')[1] for r in rows] == ['float32', 'bfloat16', 'float32', 'bfloat16']
  assert '**1.38x** (1.50, 1.25)' in rows[0] and '**3.00x**' in rows[1]


def test_bfloat16_offered_only_with_native_bfloat16_products():
  assert compare_reference.default_dtypes(['avx2', 'fma']) == 'float32'
  assert compare_reference.default_dtypes(['avx512f', 'avx512_bf16']) == 'float32,bfloat16'
  assert compare_reference.default_dtypes(['amx_bf16']) == 'float32,bfloat16'


def test_bf16_accuracy_check_runs_on_real_windows(tfds_dir, tmp_path, capsys):
  out_json = tmp_path / 'bf16.json'
  bf16_accuracy.main(['--config=configs/melody2.py:smoke', '--batch=8', '--steps=4',
                      '--eval_batches=1', f'--json={out_json}',
                      '--set', f'data.data_dir={tfds_dir}'])
  result = json.load(open(out_json))
  grads = result['gradients_at_init']
  # bfloat16 operands (8-bit mantissa) with float32 accumulation: close, but not identical.
  assert 0.0 < grads['relative_error'] < 0.05 and grads['min_tensor_cosine'] > 0.99
  assert abs(grads['loss_bfloat16'] - grads['loss_float32']) < 0.01 * grads['loss_float32']
  assert set(result['eval']) == {'float32', 'bfloat16', 'float32_seed1', 'bfloat16_seed1'}
  for metrics in result['eval'].values():
    assert 0.0 <= metrics['eval/next_accuracy'] <= 1.0 and metrics['eval/examples'] == 8
  # A different seed moves the training losses; the same seed in bfloat16 barely does.
  assert result['train']['median_relative_loss_gap_last_quarter_seed1'] > 0
  assert result['step_time']['bfloat16']['median_s'] > 0
  assert '"gradients_at_init"' in capsys.readouterr().out


def _gen_runs():
  """Two rounds of one config at batch 1: ours 2 ms (1 CPU ms) and 4 ms, the reference 6 ms
  (3 CPU ms); the first call 5 s in round 0 and 0.5 s in round 1 (the compilation cache)."""
  runs = []
  for rnd, t in ((0, 0.002), (1, 0.004)):
    ops = {op: {'median_call_s': t, 'cpu_s_per_call': t / 2, 'first_call_s': 5.0 if rnd == 0
                else 0.5} for op in generate_vs_reference.OPS}
    runs.append({'who': 'ours', 'config': 'cat-mel_2bar_small', 'batch': 1, 'round': rnd,
                 'import_s': 2.0, 'setup_s': 1.0, 'loadavg_1m_before': 1.0, 'ops': ops})
    ref = {op: {'median_call_s': 0.006, 'cpu_s_per_call': 0.003, 'first_call_s': 0.2,
                'setup_s': 3.0} for op in generate_vs_reference.OPS}
    runs.append({'who': 'reference', 'config': 'cat-mel_2bar_small', 'batch': 1, 'round': rnd,
                 'import_s': 4.0, 'loadavg_1m_before': 1.5, 'ops': ref})
  return runs


def test_generation_summary_pairs_rounds_and_table_states_the_machine(tmp_path):
  summary = generate_vs_reference.summarise(_gen_runs())
  s = summary['cat-mel_2bar_small/1/interpolate']
  assert s['paired_speedups'] == [3.0, 1.5] and s['median_paired_speedup'] == 2.25
  assert s['paired_cpu_speedups'] == [3.0, 1.5]
  # One interpolation (7 decoded sequences) per call at batch 1.
  assert s['ours']['sequences_per_s'] == round(7 / 0.003, 1)
  assert generate_vs_reference.interpolation_pairs(64) == 9
  out = {'summary': summary, 'runs': _gen_runs(), 'cpu_model': 'Test CPU', 'cpus': 2,
         'isa_flags': ['avx2'], 'rounds': 2, 'calls': 3, 'hier_calls': 2, 'date': 'today',
         'command': 'python benchmarks/generate_vs_reference.py', 'jax': '0'}
  md = generate_vs_reference.markdown(out)
  assert md.startswith('Machine: Test CPU, 2 cores, ISA avx2') and 'load average' in md
  rows = [l for l in md.splitlines() if l.startswith('| cat-mel_2bar_small | 1 |')]
  assert len(rows) == 6  # three operations, in the speed table and the first-call table
  assert '**2.25x** (3.00, 1.50)' in rows[0]
  assert '| 5.00 | 0.50 | 3.00 | 0.20 |' in rows[3]  # cold, cached, graph build, first call
  # The table goes between the markers of a results file, replacing what was there.
  results = tmp_path / 'RESULTS.md'
  results.write_text(f'# R\n{generate_vs_reference.MARK_START}\nPREVIOUS TABLE\n'
                     f'{generate_vs_reference.MARK_END}\n## next\n')
  generate_vs_reference.write_results_md(str(results), md)
  text = results.read_text()
  assert 'PREVIOUS TABLE' not in text and md in text and text.endswith('## next\n')


def test_generation_benchmark_dry_run_at_smoke_size(tmp_path):
  out_json = tmp_path / 'gen.json'
  assert generate_vs_reference.main(['--dry_run', '--batches=1,2', f'--json={out_json}']) == 0
  out = json.load(open(out_json))
  assert {r['config'] for r in out['runs']} == {'melody2:smoke', 'melody16:smoke'}
  for r in out['runs']:
    assert set(r['ops']) == set(generate_vs_reference.OPS)
    assert all(op['median_call_s'] > 0 and op['cpu_s_per_call'] > 0 for op in r['ops'].values())
  assert 'melody16:smoke/2/interpolate' in out['summary']
  assert (tmp_path / 'gen.md').read_text().startswith('Machine: ')


def test_summary_compares_with_the_reference_under_each_allocator():
  runs = _runs() + [dict(r, who='reference_tcmalloc', median_step_s=r['median_step_s'] * 0.9)
                    for r in _runs() if r['who'] == 'reference']
  summary = compare_reference.summarise(runs)['64']
  assert summary['ours_vs_reference']['paired_speedups'] == [1.5, 1.25]
  assert summary['ours_vs_reference_tcmalloc']['paired_speedups'] == [1.35, 1.125]
  out = {'summary': {'64': summary}, 'rounds': 2, 'steps': 3, 'ours_allocator': 'tcmalloc',
         'single_core': [{'who': 'ours', 'batch': 64, 'median_step_s': 0.4}]}
  md = compare_reference.markdown(out)
  rows = [l.split(' | ')[1:4] for l in md.splitlines() if l.startswith('| 64 | ')]
  assert ['float32', 'tcmalloc', 'system'] in rows and ['float32', 'tcmalloc', 'tcmalloc'] in rows
  assert '| 64 | ours | 0.400 |' in md


def test_train_step_benchmark_lists_the_most_expensive_ops():
  import train_step  # noqa: E402  pylint: disable=g-import-not-at-top,import-outside-toplevel
  from mvae_jax import config_lib  # pylint: disable=import-outside-toplevel
  config = config_lib.from_file(os.path.join(ROOT, 'configs', 'melody2.py') + ':smoke',
                                {'train.batch_size': 2})
  result = train_step.benchmark(config, batch=2, steps=1, warmup=1, top=5, places=True)
  ops = result['top_ops']
  assert 1 <= len(ops) <= 5 and all(o['ms_per_step'] >= 0 and o['op'] for o in ops)
  assert [o['ms_per_step'] for o in ops] == sorted((o['ms_per_step'] for o in ops), reverse=True)
  assert result['allocator'] in ('tcmalloc', 'jemalloc', 'system')
  # --places: the last traced step's wall time, split three ways, the middle one by place.
  where = result['places']
  parts = where['product_running_ms'] + where['only_other_ops_ms'] + where['nothing_running_ms']
  assert where['step_ms'] > 0 and abs(parts - where['step_ms']) <= 0.05 * where['step_ms'] + 0.1
  assert where['product_running_ms'] > 0
  by_place = where['only_other_ops_by_place_ms']
  # (ops running at once on two threads each count: the places may sum to more)
  assert sum(by_place.values()) >= 0.95 * where['only_other_ops_ms'] - 0.5
  # The encoder's and the decoder's loops, forward and backward, are all there.
  for place in ('encoder.fwd.loop', 'encoder.bwd.loop', 'decoder.fwd.loop', 'decoder.bwd.loop'):
    assert place in by_place, sorted(by_place)


@pytest.mark.parametrize('op', ['sample', 'encode'])
def test_generation_benchmark_times_sample_and_encode_and_lists_ops(op):
  """benchmarks/sample.py: the decode (tokens) or the encoder at smoke size, with the per-op
  profile (`--top_ops`), as for the training step."""
  import sample  # noqa: E402  pylint: disable=g-import-not-at-top,import-outside-toplevel
  from mvae_jax import config_lib  # pylint: disable=import-outside-toplevel
  config = config_lib.from_file(os.path.join(ROOT, 'configs', 'melody16.py') + ':smoke')
  result = sample.benchmark(config, batch=2, calls=2, op=op, top=4)
  assert result['op'] == op and result['batch'] == 2 and result['median_call_s'] > 0
  ops = result['top_ops']
  assert 1 <= len(ops) <= 4 and all(o['ms_per_step'] >= 0 and o['op'] for o in ops)


def test_product_rate_measures_every_shape_of_the_step(tmp_path):
  import product_rate  # noqa: E402  pylint: disable=g-import-not-at-top,import-outside-toplevel
  out = product_rate.main(['--batch=8', '--dtypes=float32', '--gflop=0.05', '--numpy_n=256',
                            f'--json={tmp_path}/rate.json'])
  with open(tmp_path / 'rate.json') as f:
    saved = json.load(f)
  assert saved['gflop_per_s'] == out['gflop_per_s']
  assert len(saved['gflop_per_s']) == len(product_rate.shapes(8))
  assert all(v > 0 for v in saved['gflop_per_s'].values()) and saved['numpy_4096_float32'] > 0
  assert '[256,602]x[602,2048]' in ' '.join(saved['gflop_per_s'])
  assert saved['machine']
