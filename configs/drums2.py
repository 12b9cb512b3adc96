r"""2-bar drum loops: 512-class drums, 10-value roll encoder input (paper section 2.1).

  python -m mvae_jax.train --config=configs/drums2.py:small --workdir=runs/drums2_small

Presets: paper (default), magenta (the reference's cat-drums_2bar_small), small, smoke.
Modifiers: `,baseline`, `,no_ss`. Data: the Freedoom songs shipped with the project (drums are
never transposed).
"""
from mvae_jax import config_lib

PRESETS = {
    'common': {'data.source': 'freedoom', 'data.kind': 'drums_2bar'},
    'paper': {
        'model.enc_sizes': (2048,), 'model.z_size': 256, 'model.dec_sizes': (2048, 2048, 2048),
        'loss.free_bits': 48.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.99999,
        'train.batch_size': 512, 'train.num_steps': 100_000,
    },
    'magenta': {
        'data.mode': 'magenta',
        'model.enc_sizes': (512,), 'model.z_size': 256, 'model.dec_sizes': (256, 256),
        'loss.free_bits': 48.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.0,
        'train.batch_size': 512, 'train.num_steps': 100_000,
    },
    'small': {
        # Measured: 0.13 s per step at batch 64 on 2 cores (benchmarks/RESULTS.md).
        'model.enc_sizes': (128,), 'model.z_size': 64, 'model.dec_sizes': (256,),
        'loss.free_bits': 48.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.999,
        'train.batch_size': 64, 'train.num_steps': 3000, 'train.ss_rate': 150.0,
        'train.log_every_steps': 50, 'train.checkpoint_every_steps': 500,
        'eval.every_steps': 500, 'eval.num_batches': 0, 'eval.batch_size': 256,
    },
    'smoke': config_lib.SMOKE,
}


def get_config(arg=None):
  return config_lib.build('drums2', PRESETS, arg)


def sweep():
  return [{'model.use_encoder': False}, {'train.scheduled_sampling': False}, {}]
