r"""2-bar melody loops: BiLSTM encoder, flat LSTM decoder (paper section 2.1).

  python -m mvae_jax.train --config=configs/melody2.py:small --workdir=runs/melody2_small

Presets: paper (appendix sizes, 130 classes; default), magenta (the reference's cat-mel_2bar_small,
90 classes), magenta_big (the reference's cat-mel_2bar_big), small (a useful model in minutes on a
2-core CPU), smoke (seconds, tests).
Modifiers: `,baseline` (decoder only) and `,no_ss` (no scheduled sampling), the other Table 1 columns.
Data: the folk melodies from music21's corpus (built automatically on first use).
"""
from mvae_jax import config_lib as lib

PRESETS = {
    'common': {'data.source': 'folk', 'data.kind': 'mel_2bar'},
    'paper': lib.FLAT_PAPER,
    # Transposed by randint(-5, 5), both ends included.
    'magenta': {**lib.FLAT_MAGENTA, 'data.shift_min': -5, 'data.shift_max': 5,
                'loss.free_bits': 0.0, 'loss.max_beta': 0.2, 'loss.beta_rate': 0.99999},
    'magenta_big': {**lib.FLAT_MAGENTA_BIG, 'data.shift_min': -5, 'data.shift_max': 5,
                    'loss.free_bits': 0.0, 'loss.max_beta': 0.5, 'loss.beta_rate': 0.99999},
    'small': {**lib.FLAT_SMALL, 'eval.num_batches': 8},
    'smoke': lib.SMOKE,
}


def get_config(arg=None):
  return lib.build('melody2', PRESETS, arg)


sweep = lib.table1_sweep  # the three Table 1 columns (see launch/sweep.py)
