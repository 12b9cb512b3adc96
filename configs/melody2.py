r"""2-bar melody loops: BiLSTM encoder, flat 3-layer LSTM decoder (paper section 2.1).

  python -m mvae_jax.train --config=configs/melody2.py:small --workdir=runs/melody2_small

Presets: paper (appendix sizes, 130 classes; default), magenta (the reference's cat-mel_2bar_small,
90 classes), small (a useful model in about 15 minutes on a 2-core CPU), smoke (seconds, tests).
Modifiers: `,baseline` (decoder only) and `,no_ss` (no scheduled sampling), the other Table 1 columns.
Data: the folk melodies from music21's corpus (built automatically on first use).
"""
from mvae_jax import config_lib

PRESETS = {
    'common': {'data.source': 'folk', 'data.kind': 'mel_2bar'},
    'paper': {
        'model.enc_sizes': (2048,), 'model.z_size': 256, 'model.dec_sizes': (2048, 2048, 2048),
        'loss.free_bits': 48.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.99999,
        'train.batch_size': 512, 'train.num_steps': 100_000,
    },
    'magenta': {
        'data.mode': 'magenta',
        'model.enc_sizes': (512,), 'model.z_size': 256, 'model.dec_sizes': (256, 256),
        'loss.free_bits': 0.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.99999,
        'train.batch_size': 512, 'train.num_steps': 100_000,
    },
    'small': {
        # Measured: 0.13 s per step at batch 64 on 2 cores (benchmarks/RESULTS.md).
        'model.enc_sizes': (128,), 'model.z_size': 64, 'model.dec_sizes': (256,),
        # Schedules shrunk with the step budget: beta reaches 95% of its maximum by step 3000 and
        # the sampling probability passes 0.99 near step 1500 (the paper's rates assume 100k+ steps).
        'loss.free_bits': 48.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.999,
        'train.batch_size': 64, 'train.num_steps': 3000, 'train.ss_rate': 150.0,
        'train.log_every_steps': 50, 'train.checkpoint_every_steps': 500,
        'eval.every_steps': 500, 'eval.num_batches': 8, 'eval.batch_size': 256,
    },
    'smoke': config_lib.SMOKE,
}


def get_config(arg=None):
  return config_lib.build('melody2', PRESETS, arg)


def sweep():
  """The three Table 1 columns at the small size (see launch/sweep.py)."""
  return [{'model.use_encoder': False}, {'train.scheduled_sampling': False}, {}]
