r"""The main job, end to end: `python -m mvae_jax.quickstart [--workdir=runs/melody2_small]`.

1. builds the embedded melody dataset (folk tunes from music21's corpus) the first time;
2. trains `configs/melody2.py:small` (about 3000 steps; resumes if the run directory exists);
3. evaluates the checkpoint on the held-out split (Table 1 metrics, beside the majority-class level);
4. writes 4 samples (temperature 0.5) and a 7-step interpolation between two held-out melodies,
   as MIDI and piano-roll PNG, into `<workdir>/samples/`, and prints every path.

Any other config works too: `--config=configs/drums2.py:small`.
"""
from __future__ import annotations

import json
import os
import pathlib

from absl import app, flags

from mvae_jax import eval as eval_lib
from mvae_jax import generate, parallel, train

_DEFAULT = str(pathlib.Path(__file__).resolve().parents[1] / 'configs' / 'melody2.py') + ':small'
# --config and --workdir are mvae_jax.train's flags; only their defaults differ here.
flags.DEFINE_integer('num_samples', 4, 'Samples to write.')
flags.DEFINE_integer('interpolation_steps', 7, 'Points of the interpolation, endpoints included.')
FLAGS = flags.FLAGS


def run(config, workdir: str, num_samples: int = 4, interpolation_steps: int = 7) -> dict:
  """Train, evaluate, generate; returns {'eval': results, 'outputs': {name: [paths]}}."""
  train.train_and_evaluate(config, workdir)
  results = eval_lib.evaluate_run(workdir, recon_accuracy=True)
  eval_path = eval_lib.write_json(results, os.path.join(workdir, f'eval_{results["step"]}.json'))
  print(eval_lib.details(results))
  print(eval_lib.table1_row(results))
  outputs = {'eval': [eval_path]}
  outputs['samples'] = generate.run_command('sample', workdir=workdir, num=num_samples)
  if config.model.use_encoder:
    outputs['interpolation'] = generate.run_command(
        'interpolate', workdir=workdir, from_eval='0,1', steps=interpolation_steps)
  print('\nwritten:')
  for name, paths in outputs.items():
    for p in paths:
      print(f'  {name:14s} {p}')
  return {'eval': results, 'outputs': outputs}


def main(argv):
  del argv
  parallel.maybe_initialize_distributed()
  out = run(FLAGS.config, FLAGS.workdir, FLAGS.num_samples, FLAGS.interpolation_steps)
  with open(os.path.join(FLAGS.workdir, 'quickstart.json'), 'w') as f:
    json.dump(out, f, indent=2, default=str)


if __name__ == '__main__':
  FLAGS.set_default('config', _DEFAULT)
  FLAGS.set_default('workdir', 'runs/melody2_small')
  app.run(main)
